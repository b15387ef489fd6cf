"""The opening handshake (RFC 6455 §4): building and checking requests and responses.

These functions hold every rule of the handshake; the client and server protocols of
:mod:`wsio.protocol.connection` call them, and so could any other integration of the core.
"""

from __future__ import annotations

import binascii
import dataclasses
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import TypeAlias

from ..exceptions import (
    InvalidArgument,
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidOrigin,
    InvalidStatus,
    InvalidUpgrade,
    NegotiationError,
)
from .auth import basic_authorization
from .extensions import (
    ClientExtensionFactory,
    Extension,
    ExtensionParameter,
    ServerExtensionFactory,
    build_extensions,
    parse_extensions,
)
from .http11 import _FIELD_VALUE_TEXT, Headers, HeadersLike, Request, Response, build_response
from .uri import WebSocketURI

__all__ = [
    "GUID",
    "HANDSHAKE_FIELDS",
    "RESPONSE_RULES",
    "Check",
    "Origin",
    "accept_extensions",
    "accept_key",
    "accept_response",
    "build_accept",
    "build_rejection",
    "build_request",
    "check_origin",
    "check_request",
    "check_response",
    "check_subprotocols",
    "generate_key",
    "negotiate_extensions",
    "offered_subprotocols",
    "parse_token_list",
    "redirect_location",
    "response_checks",
    "select_subprotocol",
    "serialized_accept",
]

#: The GUID that RFC 6455 §1.3 concatenates to the key to compute the accept value.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: An allowed origin for ``origins``: an exact string, a pattern, or ``None`` for requests
#: without an ``Origin`` header.
Origin: TypeAlias = "str | re.Pattern[str] | None"

_sha1: Callable[[bytes], hashlib._Hash]
try:
    # CPython's own SHA-1: a hash object costs a quarter less to make than OpenSSL's.
    from _sha1 import sha1 as _sha1  # type: ignore[import-not-found,no-redef]
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import sha1 as _sha1

_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_PROTOCOL = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+(/[-!#$%&'*+.^_`|~0-9a-zA-Z]+)?")


#: Header fields by lowercase name, as ``Headers.by_name()`` returns them.
_Fields: TypeAlias = Mapping[str, list[str]]


def generate_key(random_bytes: Callable[[int], bytes]) -> str:
    """A fresh ``Sec-WebSocket-Key``: 16 random bytes, base64-encoded (§4.1)."""
    return binascii.b2a_base64(random_bytes(16), newline=False).decode()


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value matching ``key`` (§4.2.2 step 5.4)."""
    return _accept_bytes(key).decode()


def _accept_bytes(key: str) -> bytes:
    """:func:`accept_key`, as the ASCII bytes of a head."""
    return binascii.b2a_base64(_sha1((key + GUID).encode()).digest(), newline=False)


def parse_token_list(
    values: Iterable[str], header: str, element: re.Pattern[str] = _TOKEN
) -> list[str]:
    """Parse comma-separated tokens from one or more header values (RFC 9110 §5.6.1).

    Empty elements are allowed and skipped, as the list syntax requires. ``element`` is
    the grammar of one element: a token by default.

    :raises InvalidHeaderValue: an element doesn't match it.
    """
    tokens = []
    for value in values:
        for item in value.split(","):
            item = item.strip(" \t")
            if not item:
                continue
            if not element.fullmatch(item):
                raise InvalidHeaderValue(header, value)
            tokens.append(item)
    return tokens


def _upgrade_protocols(values: Sequence[str]) -> list[str]:
    """The protocols of the ``Upgrade`` header's ``values``: ``name["/" version]`` (RFC
    9110 §7.8)."""
    try:
        return parse_token_list(values, "Upgrade", _PROTOCOL)
    except InvalidHeaderValue as exc:
        raise InvalidUpgrade("Upgrade", exc.value) from exc


def _single(values: Sequence[str], name: str) -> str:
    """The value of header ``name``, which must appear exactly once: ``values`` are all
    those it has."""
    if not values:
        raise InvalidHeader(name)
    if len(values) > 1:
        raise InvalidHeaderValue(name, "more than one " + name + " header")
    return values[0]


def _field_values(message: Request | Response, fields: _Fields | None, name: str) -> list[str]:
    """Every value of header ``name`` in ``message``: from ``fields``, its
    ``headers.by_name()``, when the caller computed it for several lookups."""
    if fields is None:
        return message.headers.get_all(name)
    return fields.get(name.lower(), [])


def check_subprotocols(subprotocols: Sequence[str] | None) -> None:
    """Check the subprotocols that a client offers or a server supports: each is a
    token (§4.1 item 10, §11.3.4), or it could never be negotiated.

    :raises TypeError: ``subprotocols`` is a string (which would be taken as a sequence
        of one-letter subprotocols) or holds something else than strings.
    :raises InvalidArgument: a subprotocol isn't a token.
    """
    if isinstance(subprotocols, str):
        raise TypeError(f"subprotocols must be a sequence of str, not a str: [{subprotocols!r}]")
    for protocol in subprotocols or ():
        if not isinstance(protocol, str):
            raise TypeError(f"subprotocol must be a str, not {type(protocol).__name__}")
        if not _TOKEN.fullmatch(protocol):
            raise InvalidArgument(f"subprotocol isn't a token: {protocol!r}")


def build_request(
    uri: WebSocketURI,
    key: str,
    *,
    origin: str | None = None,
    subprotocols: Sequence[str] | None = None,
    additional_headers: HeadersLike | None = None,
    user_agent: str | None = None,
    extensions: Sequence[ClientExtensionFactory] = (),
) -> Request:
    """The client's opening handshake request (§4.1).

    :raises InvalidArgument: a subprotocol that isn't a token (§4.1 item 10), or a
        header value that can't be sent.
    :raises TypeError: ``subprotocols`` isn't a sequence of strings.
    """
    check_subprotocols(subprotocols)
    fields = [
        ("Host", uri.host_header),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]
    if origin is not None:
        fields.append(("Origin", origin))
    if extensions:
        fields.append(
            (
                "Sec-WebSocket-Extensions",
                build_extensions([(factory.name, factory.offer()) for factory in extensions]),
            )
        )
    if subprotocols:
        fields.append(("Sec-WebSocket-Protocol", ", ".join(subprotocols)))
    if user_agent is not None:
        fields.append(("User-Agent", user_agent))
    if uri.user_info is not None:
        # Credentials in the URI become HTTP Basic authentication.
        fields.append(("Authorization", basic_authorization(*uri.user_info)))
    headers = _request_headers(fields)
    if additional_headers is not None:
        extra = Headers(additional_headers)
        for name in extra:
            # Extra headers override the defaults of the same name rather than repeat them.
            if name in headers:
                del headers[name]
        headers.update(extra)
    return Request(uri.resource_name, headers)


def _request_headers(fields: list[tuple[str, str]]) -> Headers:
    """Headers of ``fields``, whose names are tokens, with the values checked as
    ``headers[name] = value`` checks them, all in one match: a field value is a run of
    field characters, tab included, so values joined by tabs match as each one does."""
    try:
        valid = _FIELD_VALUE_TEXT.fullmatch("\t".join([value for _, value in fields]))
    except TypeError:  # a value that isn't a str
        valid = None
    if valid is None:
        # Field by field, for the error of the first value refused.
        return Headers(fields)
    return Headers.from_valid(fields)


#: Statuses whose ``Location`` a client follows (RFC 9110 §15.4).
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def redirect_location(response: Response) -> str | None:
    """The ``Location`` of a redirect response that the client should follow, else ``None``."""
    if response.status_code not in REDIRECT_STATUSES:
        return None
    locations = response.headers.get_all("Location")
    return locations[0] if len(locations) == 1 else None


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """The verdict of one rule of the client's check of a handshake response (§4.1).

    ``detail`` says what the response had, or why the rule failed.
    """

    rule: str
    passed: bool
    detail: str


class _Offer:
    """What the client's request offered, to check the answer against, and the
    extensions that the answer accepted, once its rule made them."""

    __slots__ = ("accepted", "extensions", "key", "subprotocols")

    def __init__(
        self,
        key: str,
        subprotocols: Sequence[str] | None,
        extensions: Sequence[ClientExtensionFactory],
    ) -> None:
        self.key = key
        self.subprotocols = subprotocols
        self.extensions = extensions
        self.accepted: list[Extension] = []


def accept_extensions(
    response: Response,
    factories: Sequence[ClientExtensionFactory],
    fields: _Fields | None = None,
) -> list[Extension]:
    """The extensions that the server's answer accepted, from those offered (§9.1).
    ``fields`` is ``response.headers.by_name()``, if the caller has it already.

    :raises NegotiationError: an extension that wasn't offered, accepted twice, or with
        parameters that its offer doesn't allow.
    :raises InvalidHeaderFormat: a malformed header.
    """
    accepted: list[Extension] = []
    available = {factory.name: factory for factory in factories}
    offered = _field_values(response, fields, "Sec-WebSocket-Extensions")
    for name, parameters in parse_extensions(offered):
        factory = available.pop(name, None)
        if factory is None:
            raise NegotiationError(f"server accepted an extension that wasn't offered: {name}")
        extension = factory.accept(parameters)
        if any(extension.rsv_bits & other.rsv_bits for other in accepted):
            raise NegotiationError(f"{name} claims reserved bits already taken")
        accepted.append(extension)
    return accepted


def negotiate_extensions(
    request: Request,
    factories: Sequence[ServerExtensionFactory],
    fields: _Fields | None = None,
) -> tuple[str | None, list[Extension]]:
    """The server's choice among the client's offers (§9.1): the value of the
    ``Sec-WebSocket-Extensions`` answer (``None`` for none) and the extensions.
    ``fields`` is ``request.headers.by_name()``, if the caller has it already.

    Offers are considered in the client's order; unknown extensions are ignored.

    :raises InvalidHeaderFormat: a malformed header (HTTP 400).
    """
    offers = parse_extensions(_field_values(request, fields, "Sec-WebSocket-Extensions"))
    if not offers or not factories:
        return None, []
    answer: list[tuple[str, list[ExtensionParameter]]] = []
    accepted: list[Extension] = []
    for factory in sorted(factories, key=lambda f: _first_offer(offers, f.name)):
        result = factory.negotiate([params for name, params in offers if name == factory.name])
        if result is None:
            continue
        parameters, extension = result
        if any(extension.rsv_bits & other.rsv_bits for other in accepted):
            continue
        answer.append((factory.name, parameters))
        accepted.append(extension)
    return (build_extensions(answer) if answer else None), accepted


def _first_offer(offers: Sequence[tuple[str, object]], name: str) -> int:
    for index, (offered, _) in enumerate(offers):
        if offered == name:
            return index
    return len(offers)


# Each rule gets the answer, its fields by lowercase name (response.headers.by_name(),
# built once for all the rules) and the client's offer.


def _rule_status(response: Response, fields: _Fields, offer: _Offer) -> str:
    # §4.1: "If the status code received from the server is not 101, the client handles
    # the response per HTTP procedures." The reason phrase is never looked at.
    if response.status_code != 101:
        raise InvalidStatus(response)
    return "101"


def _rule_upgrade(response: Response, fields: _Fields, offer: _Offer) -> str:
    values = fields.get("upgrade", ())
    # The usual answer, one line of just the token, needs no parsing.
    if len(values) == 1 and values[0].lower() == "websocket":
        return values[0]
    upgrade = _upgrade_protocols(values)
    if not (len(upgrade) == 1 and upgrade[0].lower() == "websocket"):
        raise InvalidUpgrade("Upgrade", ", ".join(upgrade) or None)
    return upgrade[0]


def _rule_connection(response: Response, fields: _Fields, offer: _Offer) -> str:
    values = fields.get("connection", ())
    # The usual answer, one line of just the token, needs no parsing.
    if len(values) == 1 and values[0].lower() == "upgrade":
        return values[0]
    connection = parse_token_list(values, "Connection")
    if "upgrade" not in map(str.lower, connection):
        raise InvalidUpgrade("Connection", ", ".join(connection) or None)
    return ", ".join(connection)


def _rule_accept(response: Response, fields: _Fields, offer: _Offer) -> str:
    accept = _single(fields.get("sec-websocket-accept", ()), "Sec-WebSocket-Accept")
    if accept != accept_key(offer.key):
        raise InvalidHeaderValue(
            "Sec-WebSocket-Accept", f"{accept}, expected {accept_key(offer.key)}"
        )
    return accept


def _rule_extensions(response: Response, fields: _Fields, offer: _Offer) -> str:
    # §4.1 item 5: each extension in the answer must be one the client offered.
    extensions = offer.accepted = accept_extensions(response, offer.extensions, fields)
    return ", ".join(extension.name for extension in extensions) or "none"


def _rule_subprotocol(response: Response, fields: _Fields, offer: _Offer) -> str:
    protocols = parse_token_list(
        fields.get("sec-websocket-protocol", ()), "Sec-WebSocket-Protocol"
    )
    if len(protocols) > 1:
        raise NegotiationError(f"server selected several subprotocols: {', '.join(protocols)}")
    if protocols and protocols[0] not in (offer.subprotocols or ()):
        raise NegotiationError(f"server selected a subprotocol not offered: {protocols[0]}")
    return protocols[0] if protocols else "none"


#: The rules a client checks on the server's answer (§4.1, client requirements 1–6), in
#: order; each raises the matching :class:`InvalidHandshake` when broken.
RESPONSE_RULES: tuple[tuple[str, Callable[[Response, _Fields, _Offer], str]], ...] = (
    ("status code is 101", _rule_status),
    ("Upgrade is websocket", _rule_upgrade),
    ("Connection includes Upgrade", _rule_connection),
    ("Sec-WebSocket-Accept matches the key", _rule_accept),
    ("extensions were offered", _rule_extensions),
    ("subprotocol was offered", _rule_subprotocol),
)


def check_response(
    response: Response,
    key: str,
    subprotocols: Sequence[str] | None,
    extensions: Sequence[ClientExtensionFactory] = (),
    fields: _Fields | None = None,
) -> str | None:
    """Check the server's answer (§4.1, client requirements 1–6); return the subprotocol.
    ``fields`` is ``response.headers.by_name()``, if the caller has it already.

    Only the status code matters: the reason phrase is free text and is never examined.

    :raises InvalidStatus: the status isn't 101.
    :raises InvalidUpgrade: ``Upgrade`` or ``Connection`` doesn't confirm the upgrade.
    :raises InvalidHeader: ``Sec-WebSocket-Accept`` is missing or wrong.
    :raises NegotiationError: a subprotocol or extension that wasn't offered.
    """
    return accept_response(response, key, subprotocols, extensions, fields)[0]


def accept_response(
    response: Response,
    key: str,
    subprotocols: Sequence[str] | None,
    extensions: Sequence[ClientExtensionFactory] = (),
    fields: _Fields | None = None,
) -> tuple[str | None, list[Extension]]:
    """:func:`check_response`, which returns the subprotocol, and the extensions that
    the answer accepted (:func:`accept_extensions`), made once for both.

    :raises InvalidHandshake: as :func:`check_response`.
    """
    offer = _Offer(key, subprotocols, extensions)
    if fields is None:
        fields = response.headers.by_name()
    for _, rule in RESPONSE_RULES:
        rule(response, fields, offer)
    protocols = fields.get("sec-websocket-protocol")
    return (protocols[0].strip() if protocols else None), offer.accepted


def response_checks(
    response: Response,
    key: str,
    subprotocols: Sequence[str] | None,
    extensions: Sequence[ClientExtensionFactory] = (),
) -> list[Check]:
    """Every rule of :func:`check_response` with its verdict, for inspection (``wsio probe``).

    After a status other than 101 the other rules don't apply and aren't listed.
    """
    offer = _Offer(key, subprotocols, extensions)
    fields = response.headers.by_name()
    checks = []
    for name, rule in RESPONSE_RULES:
        try:
            checks.append(Check(name, True, rule(response, fields, offer)))
        except InvalidStatus:
            return [Check(name, False, f"status code is {response.status_code}")]
        except InvalidHandshake as exc:
            checks.append(Check(name, False, str(exc)))
    return checks


def check_request(request: Request, fields: _Fields | None = None) -> str:
    """Check a client's opening handshake request (§4.2.1); return its key.

    ``fields`` is ``request.headers.by_name()``, if the caller has it already.

    Each failure carries the HTTP status that the server answers with
    (:attr:`InvalidHandshake.http_status`).
    """
    if request.version != "HTTP/1.1":
        raise InvalidMessage(
            f"WebSocket needs HTTP/1.1, not {request.version}",
            HTTPStatus.HTTP_VERSION_NOT_SUPPORTED,
        )
    if request.method != "GET":
        raise InvalidMessage(
            f"WebSocket needs a GET request, not {request.method}",
            HTTPStatus.METHOD_NOT_ALLOWED,
        )
    if fields is None:
        fields = request.headers.by_name()
    # A body would be read as WebSocket frames: refuse it rather than smuggle it.
    lengths = fields.get("content-length")
    if "transfer-encoding" in fields or (
        lengths is not None and any(value.strip() != "0" for value in lengths)
    ):
        raise InvalidMessage("WebSocket handshake request must not have a body")
    _single(fields.get("host", ()), "Host")
    # The values that most clients send pass at once: there is nothing in them to parse.
    upgrade_values = fields.get("upgrade", ())
    if upgrade_values != ["websocket"]:
        # map() rather than a generator: no frame to create and resume per token.
        upgrade = _upgrade_protocols(upgrade_values)
        if "websocket" not in map(str.lower, upgrade):
            raise InvalidUpgrade("Upgrade", ", ".join(upgrade) or None)
    connection_values = fields.get("connection", ())
    if connection_values != ["Upgrade"]:
        connection = parse_token_list(connection_values, "Connection")
        if "upgrade" not in map(str.lower, connection):
            raise InvalidUpgrade("Connection", ", ".join(connection) or None)
    version = fields.get("sec-websocket-version", ())
    if version != ["13"]:
        exc = InvalidHeaderValue("Sec-WebSocket-Version", ", ".join(version) or None)
        exc.http_status = HTTPStatus.UPGRADE_REQUIRED
        raise exc
    key = _single(fields.get("sec-websocket-key", ()), "Sec-WebSocket-Key")
    try:
        # Strict: only the base64 alphabet and padding where it belongs.
        raw_key = binascii.a2b_base64(key.encode(), strict_mode=True)
    except binascii.Error as exc:
        raise InvalidHeaderValue("Sec-WebSocket-Key", key) from exc
    if len(raw_key) != 16:
        raise InvalidHeaderValue("Sec-WebSocket-Key", key)
    return key


def check_origin(
    request: Request,
    origins: Sequence[Origin],
    fields: _Fields | None = None,
) -> str | None:
    """Check the ``Origin`` header against the allowed ``origins`` (§4.2.1 step 8, §10.2).

    Strings match exactly (scheme, host and port), patterns must match the whole value,
    ``None`` allows requests without ``Origin``. ``fields`` is
    ``request.headers.by_name()``, if the caller has it already.

    :raises InvalidOrigin: not allowed (HTTP 403).
    :raises InvalidHeader: repeated (HTTP 400).
    """
    values = _field_values(request, fields, "Origin")
    if len(values) > 1:
        raise InvalidHeaderValue("Origin", "more than one Origin header")
    origin = values[0] if values else None
    for allowed in origins:
        if allowed is None or isinstance(allowed, str):
            if origin == allowed:
                return origin
        elif origin is not None and allowed.fullmatch(origin):
            return origin
    raise InvalidOrigin(origin)


def offered_subprotocols(request: Request, fields: _Fields | None = None) -> list[str]:
    """The subprotocols that the client offers, in its order of preference (§4.1).
    ``fields`` is ``request.headers.by_name()``, if the caller has it already."""
    return parse_token_list(
        _field_values(request, fields, "Sec-WebSocket-Protocol"), "Sec-WebSocket-Protocol"
    )


def select_subprotocol(
    request: Request,
    subprotocols: Sequence[str] | None,
    fields: _Fields | None = None,
) -> str | None:
    """The first subprotocol the client offers that the server supports, if any (§4.2.2).
    ``fields`` is ``request.headers.by_name()``, if the caller has it already."""
    if not subprotocols:
        return None
    offered = offered_subprotocols(request, fields)
    for protocol in offered:
        if protocol in subprotocols:
            return protocol
    return None


#: The fields of a 101 that the handshake sets (§4.2.2 step 5), in lowercase: an
#: application adding its own fields to the answer can't set these.
HANDSHAKE_FIELDS = frozenset(
    {
        "upgrade",
        "connection",
        "sec-websocket-accept",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-version",
    }
)


def build_accept(
    key: str,
    *,
    subprotocol: str | None = None,
    extensions: str | None = None,
    server_header: str | None = None,
) -> Response:
    """The server's 101 answer (§4.2.2 step 5).

    Without a subprotocol or extensions, its headers also hold the head that serializes
    the answer, made from constant parts around the accept value (see
    :func:`serialized_accept`).
    """
    accept = _accept_bytes(key)
    # Constants and base64: nothing for the checks of headers[...] = ... to catch.
    headers = Headers.from_valid(
        [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept.decode()),
        ]
    )
    if extensions is not None:
        headers["Sec-WebSocket-Extensions"] = extensions
    if subprotocol is not None:
        headers["Sec-WebSocket-Protocol"] = subprotocol
    if server_header is not None:
        headers._items.append(_server_field(server_header))
    if extensions is None and subprotocol is None:
        end = _ACCEPT_ENDS.get(server_header)
        if end is None:
            end = _accept_end(server_header)
        if end:
            headers._head = _ACCEPT_START + accept + end
    return Response(101, _SWITCHING_PROTOCOLS, headers)


_SWITCHING_PROTOCOLS = "Switching Protocols"
# What a 101 without a subprotocol or extensions holds before its accept value, and after
# it, by Server field (b"": the value doesn't serialize to a head that parses back to it).
_ACCEPT_START = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: "
)
_ACCEPT_ENDS: dict[str | None, bytes] = {}


def _accept_end(server_header: str | None) -> bytes:
    """What follows the accept value in the head of a 101 with this Server field, checked
    by serializing such an answer the general way and parsing it back; remembered for up
    to 16 values."""
    headers = Headers.from_valid([("Upgrade", "websocket"), ("Connection", "Upgrade")])
    headers._items.append(("Sec-WebSocket-Accept", "=" * 28))
    if server_header is not None:
        headers._items.append(_server_field(server_header))
    head = Response(101, _SWITCHING_PROTOCOLS, headers).serialize()
    copy = Headers.from_valid([])
    copy._shed_into(head)
    end = head[len(_ACCEPT_START) + 28 :] if copy._head is not None and copy == headers else b""
    if not head.startswith(_ACCEPT_START):  # pragma: no cover - the constant is wrong
        end = b""
    if len(_ACCEPT_ENDS) < 16:
        _ACCEPT_ENDS[server_header] = end
    return end


def serialized_accept(response: Response, head: bytes) -> bytes | None:
    """What ``response.serialize()`` gives, if ``response`` is still the 101 that
    :func:`build_accept` made with ``head`` (its headers' ``_head``), unedited: ``head``
    itself. ``None`` otherwise.

    Any edit of the headers drops that head (see :class:`~wsio.protocol.http11.Headers`);
    the status line and body are compared with those of the answer built.
    """
    if (
        response.headers._head is head
        and response.status_code == 101
        and response.reason_phrase == _SWITCHING_PROTOCOLS
        and response.version == "HTTP/1.1"
        and not response.body
    ):
        return head
    return None


# The Server field of each value seen, checked once: a server sends the same in every 101.
_SERVER_FIELDS: dict[str, tuple[str, str]] = {}


def _server_field(value: str) -> tuple[str, str]:
    """The field ``Server: value``, checked as ``headers["Server"] = value`` checks it.

    :raises InvalidArgument: not a valid field value.
    :raises TypeError: not a ``str``.
    """
    field = _SERVER_FIELDS.get(value) if isinstance(value, str) else None
    if field is None:
        Headers(Server=value)  # the checks
        field = ("Server", value)
        if len(_SERVER_FIELDS) < 16:
            _SERVER_FIELDS[value] = field
    return field


def build_rejection(exc: InvalidHandshake, *, server_header: str | None = None) -> Response:
    """The server's answer to a request that fails the handshake, from the failure.

    426 tells the client what to upgrade to (RFC 9110 §15.5.22, RFC 6455 §4.4), 405 what
    method to use; every rejection closes the connection.
    """
    headers = Headers()
    status = exc.http_status
    if status == HTTPStatus.UPGRADE_REQUIRED:
        if isinstance(exc, InvalidHeader) and exc.name == "Sec-WebSocket-Version":
            headers["Sec-WebSocket-Version"] = "13"
        else:
            headers["Upgrade"] = "websocket"
    elif status == HTTPStatus.METHOD_NOT_ALLOWED:
        headers["Allow"] = "GET"
    if server_header is not None:
        headers["Server"] = server_header
    return build_response(status, f"Failed to open a WebSocket connection: {exc}.\n", headers)
