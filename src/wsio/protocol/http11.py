"""The part of HTTP/1.1 that the opening handshake needs (RFC 9110, RFC 9112).

Requests and responses are parsed with limits on line length, header count and body size,
so that a hostile peer cannot make the core buffer without bound. Only what a WebSocket
handshake can contain is supported: a request has no body; a response that isn't 101 may
have one (``Content-Length``, chunked, or up to the end of the stream), which is kept for
the caller up to a limit.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, MutableMapping
from http import HTTPStatus
from typing import (
    TYPE_CHECKING,
    NoReturn,
    Protocol,
    TypeAlias,
    TypeVar,
    overload,
    runtime_checkable,
)

from .. import defaults
from .._accelerator import speedups
from ..exceptions import InvalidArgument, InvalidMessage, SecurityError
from .streams import StreamReader
from .uri import split_authority, split_uri

__all__ = [
    "Headers",
    "HeadersLike",
    "MultipleValuesError",
    "Request",
    "Response",
    "parse_request",
    "parse_response",
]

# The default of Headers.get.
_D = TypeVar("_D")


class MultipleValuesError(LookupError):
    """A header that must appear once appears several times."""


class Headers(MutableMapping[str, str]):
    """HTTP header fields: an ordered list of (name, value), names case-insensitive.

    The list of field lines is the storage and is kept as received or built, repeats
    included: :meth:`raw_items` returns every line in order, :meth:`get_all` every value
    of one name.

    Read as a mapping (``headers[name]``, ``get``, ``keys``, ``items``, ``values``,
    ``dict(headers)``), each name appears once, spelled as in its first line, and maps
    to its value. A field on several lines maps to:

    - its values joined with ``", "``, in order: RFC 9110 §5.3 lets a recipient combine
      field lines so without changing the meaning of the message. Every list-valued
      field (``Via``, ``Sec-WebSocket-Protocol``, ``Sec-WebSocket-Extensions``...)
      allows it, and so does any field unknown here, since a sender may repeat only a
      list-valued field (§5.3);
    - for ``Set-Cookie``, which can't be combined (RFC 9110 §5.3, RFC 6265 §3), its
      values joined with ``"\\n"``: one cookie per line, so nothing is lost and
      ``splitlines()`` gives each back, and the joined value, which
      ``headers[name] = value`` refuses, can't go out as one field by mistake;
    - for a field whose definition allows one value only (``Host``, ``Content-Length``,
      ``Authorization``, ``Sec-WebSocket-Key``...), :class:`MultipleValuesError`: the
      message is malformed and no single value would be true to it. This is the
      behaviour of the ``websockets`` package for every repeated field, and the server's
      Basic authentication answers 400 to repeated credentials through it.

    ``headers[name] = value`` appends a line, as in ``websockets``: ``Set-Cookie`` twice
    sets two cookies. :meth:`replace` sets a single value; ``del headers[name]`` removes
    every line of ``name``; :meth:`update` appends every line of its argument, all those
    of a :class:`Headers` included.

    Two :class:`Headers` are equal when they hold the same lines in the same order; a
    :class:`Headers` and another mapping compare as mappings, names ignoring case, as an
    ``OrderedDict`` and a ``dict`` do.

    Names and values are checked as they are set, so that nothing set can garble or
    split the message sent: a name must be a token (RFC 9110 §5.1) and a value a field
    value (§5.5): no control character but HTAB (CR, LF and NUL included, which could
    smuggle other fields in), and no character above U+00FF (see below). Anything else
    raises :class:`~wsio.InvalidArgument`, and a name or value that isn't a ``str``
    :class:`TypeError`. Spaces and tabs around a value may be set, but aren't part of
    it (§5.5): the recipient drops them.

    Each character of a value stands for one octet of the message, as ISO-8859-1 maps
    them: U+0000-U+00FF to 0x00-0xFF. The parser decodes what it receives so and the
    request and response are serialized so, so that a value goes through a connection
    unchanged, including octets 0x80-0xFF (obs-text), which RFC 9110 §5.5 tells a
    recipient to treat as opaque data: ``value.encode("iso-8859-1")`` gives back the
    octets received, to decode as a field's own definition says (UTF-8, say). Python's
    :mod:`http.client`, Node.js, the ``ByteString`` of browsers and the ``websockets``
    package map header octets to text in the same way. Text that needs other characters
    must be encoded by the caller before it is set, for instance with RFC 8187's
    percent-encoding, or ``text.encode().decode("iso-8859-1")`` to send its UTF-8 octets.
    New fields should keep to ASCII (§5.5).

    There is no index by name: a handshake has a dozen fields, which a scan reads about
    as fast as a dict, and every open connection keeps its handshake's headers, where an
    index would double their memory. Headers parsed from a message also remember its
    head: an open connection keeps that head alone (:meth:`_shed`) and parses its
    fields again if they are read.
    """

    __slots__ = ("_head", "_lines")

    def __init__(self, items: HeadersLike | None = None, /, **fields: str) -> None:
        self._lines: list[tuple[str, str]] | None = []
        # The head that the lines were parsed from, while they are still what it says.
        self._head: bytes | None = None
        if items is not None:
            self.update(items)
        if fields:
            self.update(fields)

    @classmethod
    def from_valid(cls, items: Iterable[tuple[str, str]]) -> Headers:
        """Headers made of ``items``, taken as they are: only for fields known to be valid
        (constants, values computed here), since the checks of ``headers[name] = value``
        are skipped. Never for anything that came from outside."""
        headers = cls.__new__(cls)
        headers._lines = list(items)
        headers._head = None
        return headers

    @property
    def _items(self) -> list[tuple[str, str]]:
        """The field lines, the storage: parsed again from the head if shed."""
        lines = self._lines
        if lines is None:
            assert self._head is not None
            lines = self._lines = _fields_of_head(self._head)
        return lines

    @_items.setter
    def _items(self, items: list[tuple[str, str]]) -> None:
        self._lines = items
        self._head = None

    def _shed(self) -> None:
        """Keep only the head the fields were parsed from, unless they were edited since:
        an open connection keeps its handshake's messages, and a head costs a third of
        its fields parsed."""
        if self._head is not None:
            self._lines = None

    def _shed_into(self, head: bytes) -> None:
        """:meth:`_shed`, for fields that ``head`` serializes (as :meth:`__str__` does,
        after a start line): kept as that head alone if parsing it gives them back,
        which a value with whitespace around it doesn't (the whitespace isn't part of the
        value, RFC 9110 §5.5)."""
        # A few searches of the head rather than a look at each value: they find every
        # such value, and at worst an empty one or a colon followed by whitespace inside
        # a value, which only keeps the fields as they are. find() rather than ``in``:
        # ``bytes in bytes`` first tries its operand as an int, and builds and drops a
        # TypeError each time (2,000 instructions).
        find = head.find
        if find(b":  ") < 0 and find(b": \t") < 0 and find(b" \r\n") < 0 and find(b"\t\r\n") < 0:
            self._head = head
            self._lines = None

    def _values(self, name: str) -> list[str]:
        return field_values(self._items, name.lower())

    def _names(self) -> dict[str, str]:
        """The spelling of each name's first line, by lowercase name, in order."""
        names: dict[str, str] = {}
        for name, _ in self._items:
            names.setdefault(name.lower(), name)
        return names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names().values())

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self._values(name))

    def __getitem__(self, name: str) -> str:
        """The value of ``name``; see the class for a field on several lines.

        :raises KeyError: no line of ``name``.
        :raises MultipleValuesError: several lines of a field that has one value.
        """
        values = self._values(name)
        if len(values) == 1:
            return values[0]
        if not values:
            raise KeyError(name)
        key = name.lower()
        if key in _SINGLE_VALUED:
            raise MultipleValuesError(f"{name} header appears {len(values)} times")
        return ("\n" if key == "set-cookie" else ", ").join(values)

    def __setitem__(self, name: str, value: str) -> None:
        """Append a field; use :meth:`replace` to set a single value.

        :raises InvalidArgument: a name that isn't a token, or a value that isn't a field
            value (see the class).
        :raises TypeError: a name or value that isn't a ``str``.
        """
        if not (isinstance(name, str) and _TOKEN_TEXT.fullmatch(name)):
            _refuse_name(name)
        if not (isinstance(value, str) and _FIELD_VALUE_TEXT.fullmatch(value)):
            _refuse_value(name, value)
        items = self._items
        self._head = None  # edited: the fields are no longer what the head says
        items.append((name, value))

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        items = [(n, v) for n, v in self._items if n.lower() != key]
        if len(items) == len(self._items):
            raise KeyError(name)
        self._items = items

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._items == other._items
        if not isinstance(other, Mapping):
            return NotImplemented
        try:
            mine = {name.lower(): self[name] for name in self}
        except MultipleValuesError:
            return False
        theirs = {(k.lower() if isinstance(k, str) else k): v for k, v in other.items()}
        return mine == theirs

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self._items!r})"

    def __str__(self) -> str:
        return "".join([f"{name}: {value}\r\n" for name, value in self._items]) + "\r\n"

    @overload
    def get(self, name: str, /) -> str | None: ...

    @overload
    def get(self, name: str, /, default: str | _D) -> str | _D: ...

    def get(self, name: str, /, default: object = None) -> object:
        """The value of ``name`` as ``headers[name]`` gives it; ``default`` when absent.

        :raises MultipleValuesError: several lines of a field that has one value.
        """
        # Mapping.get would raise KeyError and catch it for an absent field: a handshake
        # looks up fields that most don't carry.
        values = self._values(name)
        if len(values) == 1:
            return values[0]
        if not values:
            return default
        return self[name]

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order; an empty list when absent."""
        return self._values(name)

    def raw_items(self) -> list[tuple[str, str]]:
        """Every (name, value), in order, repeats included, names spelled as given."""
        return list(self._items)

    def by_name(self) -> dict[str, list[str]]:
        """Every value of every field, in order, by lowercase name: one pass for the many
        lookups of a handshake check, rather than a scan for each. Built on demand and
        not kept."""
        return fields_by_name(self._items)

    def replace(self, name: str, value: str) -> None:
        """Set ``name`` to a single value, dropping earlier ones."""
        if name in self:
            del self[name]
        self[name] = value

    def update(self, items: HeadersLike = (), /, **fields: str) -> None:
        """Append fields from ``items`` (see :data:`HeadersLike`) and keyword arguments."""
        if isinstance(items, Headers):
            pairs: Iterable[tuple[str, str]] = items._items
        elif isinstance(items, Mapping):
            pairs = items.items()
        elif isinstance(items, SupportsKeysAndGetItem):
            # keys(), as dict() calls it: such an object needn't be iterable.
            pairs = [(name, items[name]) for name in items.keys()]  # noqa: SIM118
        else:
            pairs = items
        for name, value in pairs:
            self[name] = value
        for name, value in fields.items():
            self[name] = value

    def clear(self) -> None:
        self._items = []

    def copy(self) -> Headers:
        return Headers.from_valid(self._items)


def _refuse_name(name: object) -> NoReturn:
    """Raise the error for a field name that :meth:`Headers.__setitem__` refused."""
    if not isinstance(name, str):
        raise TypeError(f"header name must be a str, not {type(name).__name__}")
    raise InvalidArgument(f"invalid header name: {name!r}")


def _refuse_value(name: str, value: object) -> NoReturn:
    """Raise the error for a field value that :meth:`Headers.__setitem__` refused,
    saying what is wrong with it."""
    if not isinstance(value, str):
        raise TypeError(f"value of header {name} must be a str, not {type(value).__name__}")
    bad = _NOT_FIELD_CHAR_TEXT.search(value)
    assert bad is not None
    if bad.group() > "\xff":
        reason = f"{bad.group()!r} isn't one octet in ISO-8859-1: encode the value first"
    else:
        reason = f"control character {bad.group()!r}"
    raise InvalidArgument(f"invalid value for header {name}: {value!r}: {reason}")


@runtime_checkable
class SupportsKeysAndGetItem(Protocol):  # pragma: no cover - never called
    """What ``dict()`` takes as a mapping: ``keys()`` and ``[]``."""

    def keys(self) -> Iterable[str]: ...

    def __getitem__(self, name: str, /) -> str: ...


#: What :class:`Headers` is built or updated from: another :class:`Headers` (every line),
#: a mapping or anything with ``keys()`` and ``[]``, or (name, value) pairs.
HeadersLike: TypeAlias = (
    Headers | Mapping[str, str] | SupportsKeysAndGetItem | Iterable[tuple[str, str]]
)

# Fields defined to hold one value, not a comma-separated list: a message that repeats
# one is malformed (RFC 9110 §5.3), and the lines joined would mean something else.
# RFC 9110 §6.6.1, §7.2, §7.6.2, §8.3, §8.6-§8.8, §10.1-§10.2, §11.6.2, §11.7.2, §13.1;
# RFC 9111 §5.1, §5.3; RFC 6454 §7; RFC 6455 §11.3.1, §11.3.3.
_SINGLE_VALUED = frozenset(
    {
        "age",
        "authorization",
        "content-length",
        "content-location",
        "content-type",
        "date",
        "etag",
        "expires",
        "from",
        "host",
        "if-modified-since",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "origin",
        "proxy-authorization",
        "referer",
        "retry-after",
        "sec-websocket-accept",
        "sec-websocket-key",
        "server",
        "user-agent",
    }
)

_T = TypeVar("_T")
#: The key of a table of values found valid: an authority or a request line.
_K = TypeVar("_K", str, bytes)


@dataclasses.dataclass(slots=True)
class Request:
    """An HTTP request of the opening handshake.

    ``path`` is the request target in origin-form, the path and query (RFC 9112 §3.2.1),
    also when the request line carried it in absolute-form; ``head`` keeps the request
    line as it was.
    """

    path: str
    headers: Headers
    method: str = "GET"
    version: str = "HTTP/1.1"
    #: The request line and header lines exactly as received, for inspection.
    head: bytes = b""

    def serialize(self) -> bytes:
        """The request as sent, text encoded as ISO-8859-1 (see :class:`Headers`).

        :raises InvalidArgument: a method, target or version that doesn't fit in a
            request line (RFC 9112 §3).
        """
        request_line = f"{self.method} {self.path} {self.version}"
        if request_line not in _VALID_START_LINES:
            if not _REQUEST_LINE_TEXT.fullmatch(request_line):
                raise InvalidArgument(f"invalid request line: {request_line!r}")
            _remember_valid(request_line)
        return f"{request_line}\r\n{self.headers}".encode("iso-8859-1")


@dataclasses.dataclass(slots=True)
class Response:
    """An HTTP response of the opening handshake.

    ``reason_phrase`` is kept verbatim, possibly empty: it is free text and never examined
    (RFC 9112 §4). ``head`` keeps the status line and headers verbatim, as received.
    ``body_truncated`` tells that the body was longer than the limit and was
    cut to it.
    """

    status_code: int
    reason_phrase: str
    headers: Headers
    body: bytes = b""
    body_truncated: bool = False
    version: str = "HTTP/1.1"
    #: The status line and header lines exactly as received, for inspection.
    head: bytes = b""

    def serialize(self) -> bytes:
        """The response as sent, text encoded as ISO-8859-1 (see :class:`Headers`).

        :raises InvalidArgument: a version, status code or reason phrase that doesn't
            fit in a status line (RFC 9112 §4).
        """
        if self.reason_phrase:
            status_line = f"{self.version} {self.status_code} {self.reason_phrase}"
        else:
            status_line = f"{self.version} {self.status_code}"
        # One match for the whole line: a status code that isn't an int of three digits
        # formats as something else (True, 101.0, 1000), which the line refuses.
        if status_line not in _VALID_START_LINES:
            if not _STATUS_LINE_TEXT.fullmatch(status_line):
                raise InvalidArgument(f"invalid status line: {status_line!r}")
            _remember_valid(status_line)
        return f"{status_line}\r\n{self.headers}".encode("iso-8859-1") + self.body


# Start lines already found valid, which most messages sent repeat (a server's 101, a
# client's request line): a lookup, rather than a match each time. Bounded, so that
# lines that don't repeat only stop it from growing.
_VALID_START_LINES: set[str] = set()
_MAX_VALID_START_LINES = 64


def _remember_valid(start_line: str) -> None:
    if len(_VALID_START_LINES) < _MAX_VALID_START_LINES:
        _VALID_START_LINES.add(start_line)


def build_response(
    status: HTTPStatus | int,
    text: str = "",
    headers: HeadersLike | None = None,
) -> Response:
    """A response with a plain-text body, a ``Content-Length`` and ``Connection: close``.

    Used for every handshake a server refuses: the connection is closed after it, so no
    second request can ride on it.
    """
    status = HTTPStatus(status)
    body = text.encode()
    response_headers = Headers(headers)
    response_headers.replace("Connection", "close")
    response_headers.replace("Content-Type", "text/plain; charset=utf-8")
    response_headers.replace("Content-Length", str(len(body)))
    return Response(status.value, status.phrase, response_headers, body)


# RFC 9110 §5.6.2: tchar; §5.5: field-vchar (visible characters and obs-text), as
# character classes for patterns over bytes or over text decoded as ISO-8859-1 (one
# character per byte).
_TCHAR = r"[-!#$%&'*+.^_`|~0-9a-zA-Z]"
_FIELD_VCHAR = r"[\x21-\x7e\x80-\xff]"
_FIELD_CHAR = r"[\x09\x20-\x7e\x80-\xff]"  # field-vchar, space and tab
# §5.5: field-value, without the whitespace around it, which isn't part of it.
_FIELD_CONTENT = rf"(?:{_FIELD_VCHAR}(?:{_FIELD_CHAR}*{_FIELD_VCHAR})?)?"
# §5.1: field-name = token.
_TOKEN = re.compile(f"{_TCHAR}+".encode())
# §5.5: field-value = *field-content.
_FIELD_VALUE = re.compile(f"{_FIELD_CHAR}*".encode("iso-8859-1"))
# A field line as _add_field accepts it, CRLF included, in a head decoded as ISO-8859-1:
# the name, and the value without the whitespace around it (RFC 9112 §5). The whitespace
# runs are possessive (*+): a value of spaces followed by an invalid byte would otherwise
# be retried at every split of the run between them, in quadratic time.
_FIELD_LINE = re.compile(
    rf"^({_TCHAR}+):[ \t]*+({_FIELD_CONTENT})[ \t]*+\r\n",
    re.MULTILINE,
)
_STATUS_CODE = re.compile(rb"[0-9]{3}")
_TOKEN_TEXT = re.compile(f"{_TCHAR}+")
# What Headers accepts: a field value, possibly with whitespace around it, as text of
# ISO-8859-1.
_FIELD_VALUE_TEXT = re.compile(f"{_FIELD_CHAR}*")
_NOT_FIELD_CHAR_TEXT = re.compile(f"[^{_FIELD_CHAR[1:-1]}]")
# RFC 9112 §2.3, §3, §4: the start lines that Request and Response serialize.
_VERSION_TEXT = r"HTTP/[0-9]\.[0-9]"
_REQUEST_TARGET_TEXT = r"[\x21-\x7e]+"
_REQUEST_TARGET = re.compile(_REQUEST_TARGET_TEXT.encode())
_REQUEST_LINE_TEXT = re.compile(f"{_TCHAR}+ {_REQUEST_TARGET_TEXT} {_VERSION_TEXT}")
_STATUS_LINE_TEXT = re.compile(f"{_VERSION_TEXT} [0-9]{{3}}(?: {_FIELD_CHAR}*)?")
# RFC 9112 §3.2.1: origin-form = absolute-path [ "?" query ], where absolute-path is
# 1*( "/" segment ) and a segment is made of pchar (RFC 3986 §3.3, §3.4).
_ORIGIN_FORM = re.compile(
    r"/(?:[-A-Za-z0-9._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*"
    r"(?:\?(?:[-A-Za-z0-9._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*)?"
)
#: Default ports of the schemes that an absolute-form target may have (RFC 9110 §4.2,
#: RFC 6455 §3).
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
_DIGITS = re.compile(r"[0-9]+")
_CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]+")


def _read_line(
    reader: StreamReader, max_length: int, what: str, status: HTTPStatus
) -> Generator[None, None, bytes]:
    try:
        return (yield from reader.read_line(max_length))
    except ValueError as exc:
        if str(exc).startswith("line longer"):
            raise SecurityError(f"{what} longer than {max_length} bytes", status) from exc
        raise InvalidMessage(f"{what} doesn't end with CRLF", HTTPStatus.BAD_REQUEST) from exc
    except EOFError as exc:
        raise EOFError(f"connection closed while reading {what}") from exc


def _parse_head(
    reader: StreamReader,
    max_line_length: int,
    max_headers: int,
    start_line_limit: tuple[str, HTTPStatus],
    parse_start_line: Callable[[bytes], _T],
    counted: int = 0,
) -> Generator[None, None, tuple[_T, Headers, bytes]]:
    """The start line as ``parse_start_line`` reads it, the header fields, and the head
    verbatim (RFC 9112 §2.1). ``start_line_limit`` names the start line and the status
    to answer when it is over ``max_line_length``; ``counted`` header fields of
    ``max_headers`` are already taken.

    A handshake usually arrives in one read: one regular expression then checks and
    splits all the field lines of a head that arrived whole, with one call where a line
    read alone takes several. Anything else -- a head still incomplete or longer than a
    line may be, a bare LF, an invalid line, a header count over its limit -- is read line
    by line, which reports the exact failure, and fails on a bad start line without
    waiting for more.
    """
    buffer = reader.buffer
    while not buffer and not reader.eof:
        yield
    end = buffer.find(b"\r\n\r\n")
    # A head no longer than a line can't have a line over the limit.
    if 0 <= end <= max_line_length - 4:
        raw_head = bytes(buffer[: end + 4])
        fields = head_fields(raw_head, _SHARED_TEXT, _MAX_SHARED_TEXT)
        if fields is not None and len(fields) + counted <= max_headers:
            del buffer[: end + 4]
            start_line = parse_start_line(raw_head[: raw_head.find(b"\r\n")])
            headers = Headers.from_valid(fields)
            headers._head = raw_head
            return start_line, headers, raw_head
    what, status = start_line_limit
    line = yield from _read_line(reader, max_line_length, what, status)
    start_line = parse_start_line(line)
    head = [line]
    headers = yield from _parse_headers(reader, max_line_length, max_headers, head, counted)
    raw_head = b"\r\n".join(head) + b"\r\n"
    headers._head = raw_head
    return start_line, headers, raw_head


def python_head_fields(
    head: bytes, shared: dict[str, str], max_shared: int
) -> list[tuple[str, str]] | None:
    """The header fields of ``head``, which ends with an empty line, if every line after
    its start line is a field line that _FIELD_LINE matches (as _add_field reads it) and
    its start line holds no bare LF; ``None`` otherwise. Each name is taken from
    ``shared`` if there, else added to it while it holds fewer than ``max_shared`` (see
    _shared_text)."""
    if not head.endswith(b"\r\n\r\n"):
        return None
    text = head.decode("iso-8859-1")
    fields = _FIELD_LINE.findall(text, text.find("\r\n") + 2, len(text) - 2)
    # Each field line matched holds one LF: as many LFs as matches (plus those of the
    # start line and of the empty line) means that every line matched.
    if text.count("\n") != len(fields) + 2:
        return None
    for index, (name, value) in enumerate(fields):
        known = shared.get(name)
        if known is None:
            if len(shared) < max_shared:
                shared[name] = name
        else:
            fields[index] = (known, value)
    return fields


def _fields_of_head(head: bytes) -> list[tuple[str, str]]:
    """The fields of a head that :func:`_parse_head` accepted (or that a message sent
    serializes): each of its field lines matches _FIELD_LINE."""
    fields = head_fields(head, _SHARED_TEXT, _MAX_SHARED_TEXT)
    assert fields is not None
    return fields


def _parse_headers(
    reader: StreamReader,
    max_line_length: int,
    max_headers: int,
    head: list[bytes],
    counted: int = 0,
) -> Generator[None, None, Headers]:
    """Header fields up to the empty line (RFC 9112 §5); lines read are added to ``head``,
    and ``counted`` fields of ``max_headers`` are already taken."""
    headers = Headers()
    while True:
        line = yield from _read_line(
            reader, max_line_length, "header line", HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
        )
        head.append(line)
        if line == b"":
            return headers
        if len(headers._items) + counted >= max_headers:
            raise SecurityError(
                f"more than {max_headers} header fields",
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
            )
        _add_field(headers, line)


def _add_field(headers: Headers, line: bytes) -> None:
    """Check a header line and add its field (RFC 9112 §5)."""
    name, colon, raw_value = line.partition(b":")
    # No whitespace may precede the colon and obsolete line folding is refused
    # (RFC 9112 §5.1, §5.2): both have been used to smuggle requests.
    if not colon or not _TOKEN.fullmatch(name):
        raise InvalidMessage(f"invalid header line: {line[:80]!r}", HTTPStatus.BAD_REQUEST)
    value = raw_value.strip(b" \t")
    if not _FIELD_VALUE.fullmatch(value):
        raise InvalidMessage(f"invalid value in {name.decode()} header", HTTPStatus.BAD_REQUEST)
    # Checked above on the bytes, more strictly than Headers.__setitem__ would.
    headers._items.append((_shared_text(name.decode()), value.decode("iso-8859-1")))


# Field names, methods and versions as received, shared between messages: every open
# connection keeps the request of its handshake, and clients spell these the same way.
# Bounded, so that a peer sending made-up names only stops it from growing.
_SHARED_TEXT: dict[str, str] = {}
_MAX_SHARED_TEXT = 256


def _shared_text(text: str) -> str:
    shared = _SHARED_TEXT.get(text)
    if shared is not None:
        return shared
    if len(_SHARED_TEXT) < _MAX_SHARED_TEXT:
        _SHARED_TEXT[text] = text
    return text


def python_field_values(items: list[tuple[str, str]], key: str) -> list[str]:
    """The values of the fields of ``items`` whose lowercase name is ``key``, in order:
    the lookup of one field, names case-insensitive (RFC 9110 §5.1)."""
    size = len(key)
    # A loop rather than a list comprehension, which is a function call of its own;
    # comparing lengths first skips most lower() calls, except for names outside ASCII,
    # whose lowercase may be of another length.
    values = []
    for n, v in items:
        if (len(n) == size or not n.isascii()) and n.lower() == key:
            values.append(v)
    return values


def python_fields_by_name(items: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Every value of the fields of ``items``, in order, by lowercase name."""
    fields: dict[str, list[str]] = {}
    for name, value in items:
        key = name.lower()
        values = fields.get(key)
        if values is None:
            fields[key] = [value]
        else:
            values.append(value)
    return fields


# The C versions of field_values and fields_by_name save 6,200 instructions per server
# handshake, on its request's Host lookup and the fields by name that accept() checks.
# The C version checks and splits the field lines of a 160-byte handshake request in
# about 4,000 instructions, where the regular expression and the sharing of names take
# 30,000.
_speedups = speedups()
#: Whether :func:`head_fields`, :func:`field_values` and :func:`fields_by_name` are the C
#: implementations.
SPEEDUPS = _speedups is not None
head_fields = python_head_fields
field_values = python_field_values
fields_by_name = python_fields_by_name
# The type checker knows the Python functions only; _speedups.pyi declares the same API.
if not TYPE_CHECKING and _speedups is not None:
    head_fields = _speedups.head_fields
    field_values = _speedups.field_values
    fields_by_name = _speedups.fields_by_name


# What _parse_head answers a start line over the limit with (a constant: an enum's class
# attribute costs as much as a property call).
_REQUEST_LINE_LIMIT = ("request line", HTTPStatus.REQUEST_URI_TOO_LONG)
_STATUS_LINE_LIMIT = ("status line", HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)


def parse_request(
    reader: StreamReader,
    *,
    max_line_length: int = defaults.MAX_LINE_LENGTH,
    max_headers: int = defaults.MAX_HEADERS,
) -> Generator[None, None, Request]:
    """Parse the head of an HTTP request (RFC 9112 §3).

    Any method and any HTTP/1.x version are parsed; whether they are acceptable for a
    WebSocket upgrade is the handshake's decision. Bodies are never read here. The
    target and ``Host`` follow :func:`_origin_form`: ``path`` is always origin-form.

    :raises InvalidMessage: malformed request, request target or ``Host`` header
        (``http_status`` 400).
    :raises SecurityError: a limit was exceeded (``http_status`` 414 or 431).
    :raises EOFError: the stream ended before the end of the head.
    """
    (method, target, version), headers, raw_head = yield from _parse_head(
        reader,
        max_line_length,
        max_headers,
        _REQUEST_LINE_LIMIT,
        _request_line,
    )
    return Request(_origin_form(target, headers), headers, method, version, raw_head)


def _origin_form(target: str, headers: Headers) -> str:
    """The path and query of ``target``, once it and the ``Host`` field are checked.

    A server answers 400 to a target that is neither origin-form (``/path?query``,
    RFC 9112 §3.2.1) nor absolute-form (``ws://host/path?query``, §3.2.2) with an
    ``http``, ``https``, ``ws`` or ``wss`` URI without user info (RFC 9110 §4.2.4):
    asterisk-form and authority-form (§3.2.3, §3.2.4) belong to ``OPTIONS`` and
    ``CONNECT``, which a WebSocket server doesn't serve.

    ``Host`` may not appear twice and must hold ``uri-host [":" port]`` (RFC 9112 §3.2,
    RFC 9110 §7.2) with a host: a WebSocket URI always has one (RFC 6455 §3), so an empty
    ``Host`` is refused. (A missing ``Host`` is refused by the handshake's check, which
    needs it whatever the version.) After an absolute-form
    target, ``Host`` is replaced by the target's authority (RFC 9112 §3.2.2); the two
    must name the same host and port, since an application routing on ``Host`` would
    otherwise see another server than the one the target names.
    """
    hosts = headers.get_all("Host")
    if len(hosts) > 1:
        raise InvalidMessage("more than one Host header")
    host = _host_port(hosts[0], "Host header") if hosts else None
    if target.startswith("/"):
        path = target
    else:
        parts = split_uri(target)
        if parts is None or parts[0].lower() not in _DEFAULT_PORTS:
            raise InvalidMessage(
                f"request target isn't origin-form or an absolute http(s) or ws(s) URI: "
                f"{target[:80]!r}"
            )
        scheme, authority, path, query, fragment = parts
        if fragment is not None or "@" in authority:
            raise InvalidMessage(f"invalid request target: {target[:80]!r}")
        target_host = _host_port(authority, "authority in request target")
        if host is not None:
            default = _DEFAULT_PORTS[scheme.lower()]
            if (host[0].lower(), host[1] or default) != (
                target_host[0].lower(),
                target_host[1] or default,
            ):
                raise InvalidMessage(
                    f"Host header {hosts[0][:80]!r} doesn't match request target {target[:80]!r}"
                )
            headers._items = [
                (name, authority if name.lower() == "host" else value)
                for name, value in headers._items
            ]
        path = (path or "/") + ("" if query is None else "?" + query)
    if path not in _VALID_PATHS:
        if not _ORIGIN_FORM.fullmatch(path):
            raise InvalidMessage(f"invalid request target: {target[:80]!r}")
        _remember(_VALID_PATHS, path, None, _MAX_VALID_PATHS)
    return path


# Paths already found to be in origin-form: the clients of a server ask for the same few
# again and again. Bounded in number and length, so that paths that don't repeat only
# stop it from growing.
_VALID_PATHS: dict[str, None] = {}
_MAX_VALID_PATHS = 64


# Authorities already found valid, with their host and port: the clients of a server send
# the same few Host values again and again. Bounded in number and length, so that values
# that don't repeat only stop it from growing.
_VALID_AUTHORITIES: dict[str, tuple[str, int | None]] = {}
_MAX_VALID_AUTHORITIES = 64
#: The longest authority or request line remembered as valid.
_MAX_REMEMBERED_LENGTH = 256


def _remember(table: dict[_K, _T], key: _K, parsed: _T, max_entries: int) -> None:
    """Keep what ``key``, found valid, parsed to, unless ``table`` is full or ``key`` too
    long: values that don't repeat then only stop it from growing."""
    if len(table) < max_entries and len(key) <= _MAX_REMEMBERED_LENGTH:
        table[key] = parsed


def _host_port(authority: str, where: str) -> tuple[str, int | None]:
    """``split_authority`` of a received ``authority``, failing as a request does."""
    host_port = _VALID_AUTHORITIES.get(authority)
    if host_port is not None:
        return host_port
    try:
        host_port = split_authority(authority)
    except ValueError as exc:
        raise InvalidMessage(f"invalid {where} {authority[:80]!r}: {exc}") from None
    _remember(_VALID_AUTHORITIES, authority, host_port, _MAX_VALID_AUTHORITIES)
    return host_port


# Request lines already found valid, with their method, target and version as text: the
# clients of a server send the same few again and again. Bounded in number and length, so
# that lines that don't repeat only stop it from growing.
_VALID_REQUEST_LINES: dict[bytes, tuple[str, str, str]] = {}
_MAX_VALID_REQUEST_LINES = 64


def _request_line(line: bytes) -> tuple[str, str, str]:
    """The method, target and version of a request line (RFC 9112 §3), as text; the
    method and version shared between messages (see _shared_text)."""
    known = _VALID_REQUEST_LINES.get(line)
    if known is not None:
        return known
    parts = line.split(b" ")
    if len(parts) != 3:
        raise InvalidMessage(f"invalid request line: {line[:80]!r}", HTTPStatus.BAD_REQUEST)
    method, target, version = parts
    # GET, the method of every handshake, is a token: no match needed.
    if method != b"GET" and not _TOKEN.fullmatch(method):
        raise InvalidMessage(f"invalid method: {method[:80]!r}", HTTPStatus.BAD_REQUEST)
    if not _REQUEST_TARGET.fullmatch(target):
        raise InvalidMessage(f"invalid request target: {target[:80]!r}", HTTPStatus.BAD_REQUEST)
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise InvalidMessage(
            f"unsupported protocol version: {version[:80]!r}",
            HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
        )
    parsed = (
        _shared_text(method.decode()),
        target.decode("ascii"),
        _shared_text(version.decode()),
    )
    _remember(_VALID_REQUEST_LINES, line, parsed, _MAX_VALID_REQUEST_LINES)
    return parsed


def parse_response(
    reader: StreamReader,
    *,
    max_line_length: int = defaults.MAX_LINE_LENGTH,
    max_headers: int = defaults.MAX_HEADERS,
    max_body_size: int = defaults.MAX_BODY_SIZE,
    connect: bool = False,
) -> Generator[None, None, Response]:
    """Parse an HTTP response (RFC 9112 §4, §6); read its body unless it is a 101.

    The reason phrase is kept verbatim and may be absent altogether: ``HTTP/1.1 101`` is a
    complete status line. A body longer than ``max_body_size`` is cut to it.

    Interim answers (1xx other than 101: ``100 Continue``, ``103 Early Hints``...) are
    read and dropped, as a client must (RFC 9110 §15.2); the response returned is the
    final one. Each interim answer costs one header field of ``max_headers``, plus its
    own fields, so that every head read, interim or final, counts against that one
    budget: a server can't make us read more than ``max_headers`` heads, each bounded
    by the line limit.

    With ``connect``, the response answers a ``CONNECT`` request: a 2xx has no body.

    :raises InvalidMessage: malformed response.
    :raises SecurityError: a line or the header count, interim answers included,
        exceeds its limit.
    :raises EOFError: the stream ended before the end of the head.
    """
    counted = 0
    while True:
        (version, status_code, reason), headers, raw_head = yield from _parse_head(
            reader,
            max_line_length,
            max_headers,
            _STATUS_LINE_LIMIT,
            _status_line,
            counted,
        )
        if not 100 <= status_code < 200 or status_code == 101:
            break
        counted += len(headers._items) + 1
        if counted > max_headers:
            raise SecurityError(f"more than {max_headers} header fields, interim answers included")
    response = Response(
        status_code,
        reason.decode("iso-8859-1"),
        headers,
        version=version.decode(),
        head=raw_head,
    )
    if status_code == 101 or (connect and 200 <= status_code < 300):
        # The bytes after the head belong to the WebSocket connection (101) or to the
        # tunnel that a proxy opened in answer to CONNECT (RFC 9110 §9.3.6).
        return response
    response.body, response.body_truncated = yield from _read_body(
        reader, response, max_line_length, max_body_size
    )
    return response


def _status_line(line: bytes) -> tuple[bytes, int, bytes]:
    """The version, status code and reason phrase of a status line (RFC 9112 §4)."""
    version, _, rest = line.partition(b" ")
    status, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise InvalidMessage(f"unsupported protocol version: {version[:80]!r}")
    if not _STATUS_CODE.fullmatch(status):
        raise InvalidMessage(f"invalid status code: {status[:80]!r}")
    if not _FIELD_VALUE.fullmatch(reason):
        raise InvalidMessage(f"invalid reason phrase: {reason[:80]!r}")
    return version, int(status), reason


def _read_body(
    reader: StreamReader, response: Response, max_line_length: int, max_body_size: int
) -> Generator[None, None, tuple[bytes, bool]]:
    """The body of a response, cut to ``max_body_size`` (RFC 9112 §6.3)."""
    # 1xx answers are interim: parse_response never reads a body after them.
    if response.status_code in (204, 304):
        return b"", False
    headers = response.headers
    try:
        if "Transfer-Encoding" in headers:
            encodings = ",".join(headers.get_all("Transfer-Encoding"))
            if encodings.strip().lower() != "chunked":
                raise InvalidMessage(f"unsupported transfer encoding: {encodings}")
            return (yield from _read_chunked(reader, max_line_length, max_body_size))
        lengths = headers.get_all("Content-Length")
        if lengths:
            # One value, even if repeated alike: a body whose end is in doubt could
            # smuggle another message (RFC 9112 §6.3).
            if len(lengths) > 1:
                raise InvalidMessage(f"Content-Length header appears {len(lengths)} times")
            raw_length = lengths[0]
            if not _DIGITS.fullmatch(raw_length):
                raise InvalidMessage(f"invalid Content-Length: {raw_length}")
            length = int(raw_length)
            data = yield from reader.read_exact(min(length, max_body_size))
            return data, length > max_body_size
        return (yield from reader.read_to_eof(max_body_size))
    except EOFError:
        # A body cut by the end of the stream is still worth showing to the caller.
        data = bytes(reader.buffer[:max_body_size])
        reader.discard()
        return data, True


def _read_chunked(
    reader: StreamReader, max_line_length: int, max_body_size: int
) -> Generator[None, None, tuple[bytes, bool]]:
    """A chunked body (RFC 9112 §7.1), stopping once ``max_body_size`` is exceeded."""
    body = bytearray()
    try:
        while True:
            line = yield from _read_line(
                reader, max_line_length, "chunk size line", HTTPStatus.BAD_REQUEST
            )
            size_text = line.split(b";", 1)[0].strip(b" \t")
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise InvalidMessage(f"invalid chunk size: {size_text[:80]!r}")
            size = int(size_text, 16)
            if size == 0:
                return bytes(body), False
            wanted = min(size, max_body_size + 1 - len(body))
            while wanted > 0:
                # Keep what arrives, so that a body cut by the end of the stream is kept.
                piece = yield from reader.read_some(wanted)
                body += piece
                wanted -= len(piece)
            if len(body) > max_body_size:
                return bytes(body[:max_body_size]), True
            if (yield from reader.read_exact(2)) != b"\r\n":
                raise InvalidMessage("chunk doesn't end with CRLF")
    except EOFError:
        return bytes(body[:max_body_size]), True
