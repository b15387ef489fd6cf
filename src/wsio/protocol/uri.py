"""WebSocket URIs (RFC 6455 §3)."""

from __future__ import annotations

import dataclasses
import urllib.parse

from ..exceptions import InvalidURI, SecurityError

__all__ = ["WebSocketURI", "parse_uri", "resolve_redirect", "same_origin"]


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


def parse_uri(uri: str) -> WebSocketURI:
    """Parse and validate a WebSocket URI.

    :raises InvalidURI: not a ``ws``/``wss`` URI, no host, a fragment, or a bad port.
    """
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme not in ("ws", "wss"):
        raise InvalidURI(uri, "scheme isn't ws or wss")
    if parsed.hostname is None:
        raise InvalidURI(uri, "hostname isn't provided")
    # §3: "Fragment identifiers are meaningless in the context of WebSocket URIs".
    if parsed.fragment:
        raise InvalidURI(uri, "fragment identifier is meaningless")
    secure = parsed.scheme == "wss"
    try:
        port = parsed.port
    except ValueError as exc:
        raise InvalidURI(uri, "port isn't a number between 0 and 65535") from exc
    if port is None:
        port = 443 if secure else 80
    resource_name = parsed.path or "/"
    if parsed.query:
        resource_name += "?" + parsed.query
    # Non-ASCII characters are percent-encoded so that the request line stays ASCII.
    resource_name = urllib.parse.quote(resource_name, safe="!#$%&'()*+,/:;=?@[]~")
    user_info = None
    if parsed.username is not None:
        user_info = (
            urllib.parse.unquote(parsed.username),
            urllib.parse.unquote(parsed.password or ""),
        )
    host = parsed.hostname
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        host = host.encode("idna").decode()
    return WebSocketURI(secure, host, port, resource_name, user_info)


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
