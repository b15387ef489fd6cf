"""WebSocket URIs (RFC 6455 §3), and the ``host [":" port]`` of URIs and of the ``Host``
header (RFC 3986 §3.2, RFC 9110 §7.2)."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import urllib.parse

from ..exceptions import InvalidURI, SecurityError

__all__ = [
    "WebSocketURI",
    "check_text",
    "parse_host_port",
    "parse_uri",
    "resolve_redirect",
    "same_origin",
    "split_authority",
    "split_uri",
    "split_user_info",
]


@dataclasses.dataclass(frozen=True, slots=True)
class WebSocketURI:
    """A parsed ``ws://`` or ``wss://`` URI.

    ``resource_name`` is the path and query sent in the request line (§3: "/" when the
    path is empty); ``user_info`` the credentials embedded in the URI, if any.
    """

    secure: bool
    host: str
    port: int
    resource_name: str
    user_info: tuple[str, str] | None = None

    @property
    def url(self) -> str:
        """The URI as a string, without user info."""
        scheme = "wss" if self.secure else "ws"
        return f"{scheme}://{self.host_header}{self.resource_name}"

    @property
    def host_header(self) -> str:
        """Value of the ``Host`` header: the port is left out when it is the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == (443 if self.secure else 80):
            return host
        return f"{host}:{self.port}"


# RFC 3986 §3: scheme "://" authority path-abempty ["?" query] ["#" fragment], split as
# Appendix B does (any characters in each part; each part is checked on its own).
_URI = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)([^?#]*)(?:\?([^#]*))?(?:#(.*))?", re.S)
# §3.2.2: reg-name = *( unreserved / pct-encoded / sub-delims ), less ",": Host is a
# singleton field, and a comma in it is what two Host lines folded into one look like
# (RFC 9110 §5.3), so it is refused rather than guessed at.
_REG_NAME = re.compile(r"(?:[-A-Za-z0-9._~!$&'()*+;=]|%[0-9A-Fa-f]{2})+")
# §3.2.2: IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ).
_IP_FUTURE = re.compile(r"[vV][0-9A-Fa-f]+\.[-A-Za-z0-9._~!$&'()*+;=:]+")
_PORT = re.compile(r"[0-9]*")
# The usual authority, a name or IPv4 address and maybe a port, in one match: a fast
# path for split_authority, which checks anything else step by step.
_NAME_PORT = re.compile(r"([-A-Za-z0-9._~!$&'()*+;=]+)(?::([0-9]{1,5}))?")
# §3.3, §3.4: what may follow the authority, "%" only as pct-encoded.
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Characters of a path or query left as they are (RFC 3986 §3.3, §3.4: pchar, "/", "?")
# when percent-encoding the others; "%" starts a pct-encoded octet, checked beforehand.
_PATH_SAFE = "!$&'()*+,;=:@/?%"


def split_uri(uri: str) -> tuple[str, str, str, str | None, str | None] | None:
    """The scheme, authority, path, query and fragment of an absolute URI with an
    authority (RFC 3986 §3), ``None`` for anything else; query and fragment are ``None``
    when absent, ``""`` when empty. Nothing is checked but the shape."""
    match = _URI.fullmatch(uri)
    if match is None:
        return None
    scheme, authority, path, query, fragment = match.groups()
    return scheme, authority, path, query, fragment


def split_authority(authority: str) -> tuple[str, int | None]:
    """The host and port of ``host [":" port]`` (RFC 3986 §3.2.2, §3.2.3), as the ``Host``
    header carries it (RFC 9110 §7.2). An IP literal keeps its brackets; the port is
    ``None`` when absent or empty (§6.2.3: then it is the scheme's default).

    :raises ValueError: not a valid host and port; the message says why.
    """
    match = _NAME_PORT.fullmatch(authority)
    if match is not None:
        host, port_text = match.groups()
        if port_text is None:
            return host, None
        port = int(port_text)
        if port <= 65535:
            return host, port
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise ValueError("unterminated IPv6 address")
        host, port_text = authority[: end + 1], authority[end + 1 :]
        if port_text and not port_text.startswith(":"):
            raise ValueError("invalid characters after IPv6 address")
        literal = host[1:-1]
        if not _IP_FUTURE.fullmatch(literal):
            # A zone ID (RFC 6874) means nothing to another host: not accepted.
            try:
                ipaddress.IPv6Address("%" if "%" in literal else literal)
            except ValueError:
                raise ValueError("invalid IPv6 address") from None
    else:
        host, colon, port_text = authority.partition(":")
        port_text = colon + port_text
        if not host:
            raise ValueError("empty host")
        if not _REG_NAME.fullmatch(host):
            raise ValueError("invalid host")
    port_text = port_text[1:]
    if not port_text:
        return host, None
    if not _PORT.fullmatch(port_text):
        raise ValueError("port isn't a number")
    digits = port_text.lstrip("0")
    if len(digits) > 5 or int(digits or "0") > 65535:
        raise ValueError("port isn't between 0 and 65535")
    return host, int(digits or "0")


def parse_uri(uri: str) -> WebSocketURI:
    """Parse and validate a WebSocket URI (RFC 6455 §3).

    Characters that a URI can't hold in its path or query (spaces, non-ASCII...) are
    percent-encoded as UTF-8, and an internationalized host name is converted to its
    ASCII form (IDNA), so that the request line and ``Host`` header stay valid.

    :raises InvalidURI: not a ``ws``/``wss`` URI, a control character or lone surrogate,
        an invalid host or port, an invalid percent-encoding, or a fragment.
    """
    try:
        check_text(uri)
    except ValueError as exc:
        raise InvalidURI(uri, str(exc)) from None
    parts = split_uri(uri)
    if parts is None or parts[0].lower() not in ("ws", "wss"):
        scheme = uri.partition(":")[0].lower()
        if scheme in ("ws", "wss"):
            raise InvalidURI(uri, "hostname isn't provided")
        raise InvalidURI(uri, "scheme isn't ws or wss")
    scheme, authority, path, query, fragment = parts
    # §3: "Fragment identifiers are meaningless in the context of WebSocket URIs".
    if fragment is not None:
        raise InvalidURI(uri, "fragment identifier is meaningless")
    user_info, host_port = split_user_info(authority)
    try:
        host, port = parse_host_port(host_port)
    except ValueError as exc:
        raise InvalidURI(uri, str(exc)) from None
    secure = scheme.lower() == "wss"
    if port is None:
        port = 443 if secure else 80
    resource_name = path or "/"
    if query is not None:
        resource_name += "?" + query
    if _BAD_PERCENT.search(resource_name):
        raise InvalidURI(uri, "invalid percent-encoding in path or query")
    resource_name = urllib.parse.quote(resource_name, safe=_PATH_SAFE)
    return WebSocketURI(secure, host, port, resource_name, user_info)


def check_text(uri: str) -> None:
    """Refuse what no URI may hold, whatever its scheme: control characters (RFC 3986
    §2) and lone surrogates, which have no encoding.

    :raises ValueError: the reason.
    """
    if _CONTROL.search(uri):
        raise ValueError("control character in URI")
    try:
        uri.encode()
    except UnicodeEncodeError:
        raise ValueError("lone surrogate in URI") from None


def split_user_info(authority: str) -> tuple[tuple[str, str] | None, str]:
    """The credentials of ``userinfo@host:port``, percent-decoded (``None`` without
    ``@``), and ``host:port``."""
    raw_user_info, at, host_port = authority.rpartition("@")
    if not at:
        return None, host_port
    username, _, password = raw_user_info.partition(":")
    return (urllib.parse.unquote(username), urllib.parse.unquote(password)), host_port


def parse_host_port(host_port: str) -> tuple[str, int | None]:
    """The host to connect to, as a name to resolve (ASCII, IDNA for an internationalized
    one) or an address (an IPv6 one without brackets), and the port (``None``: the
    scheme's default) of ``host [":" port]`` in a URI.

    :raises ValueError: the host or port is invalid, or the port is 0, which can't be
        connected to; the message says why.
    """
    if not host_port or host_port.startswith(":"):
        raise ValueError("hostname isn't provided")
    if not host_port.isascii():
        # An IP literal and a port are ASCII: only a name can be internationalized.
        name, colon, port_text = host_port.partition(":")
        try:
            host_port = name.encode("idna").decode() + colon + port_text
        except UnicodeError:
            raise ValueError("invalid internationalized domain name") from None
    host, port = split_authority(host_port)
    if port == 0:
        raise ValueError("port 0 can't be connected to")
    if host.startswith("["):
        if _IP_FUTURE.fullmatch(host[1:-1]):
            raise ValueError("IPvFuture addresses aren't supported")
        return host[1:-1].lower(), port
    try:
        # What the resolver will be given, so that it fails here rather than there:
        # empty labels (a..b) and labels over 63 characters.
        host.encode("idna")
    except UnicodeError:
        raise ValueError("invalid domain name") from None
    return host.lower(), port


def resolve_redirect(uri: WebSocketURI, location: str) -> WebSocketURI:
    """The URI that a ``Location`` header redirects ``uri`` to (RFC 9110 §10.2.2).

    ``Location`` may be relative; ``http``/``https`` map to ``ws``/``wss``, as the
    WebSocket handshake is an HTTP request to the same resource.

    :raises InvalidURI: the target isn't an HTTP or WebSocket URI.
    :raises SecurityError: the redirect leaves TLS (``wss`` to ``ws``).
    """
    target = urllib.parse.urljoin(uri.url.replace("ws", "http", 1), location.strip())
    scheme, _, rest = target.partition(":")
    scheme = {"http": "ws", "https": "wss"}.get(scheme.lower(), scheme.lower())
    new_uri = parse_uri(f"{scheme}:{rest}")
    if uri.secure and not new_uri.secure:
        raise SecurityError(f"redirect from wss to ws refused: {location}")
    # Credentials in the original URI aren't sent to another origin.
    if new_uri.user_info is None and uri.user_info is not None and same_origin(uri, new_uri):
        new_uri = dataclasses.replace(new_uri, user_info=uri.user_info)
    return new_uri


def same_origin(first: WebSocketURI, second: WebSocketURI) -> bool:
    """Whether two URIs share scheme, host and port (RFC 6454 §5)."""
    return (first.secure, first.host.lower(), first.port) == (
        second.secure,
        second.host.lower(),
        second.port,
    )
