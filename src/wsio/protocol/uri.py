"""WebSocket URIs (RFC 6455 §3)."""

from __future__ import annotations

import dataclasses
import urllib.parse

from ..exceptions import InvalidURI

__all__ = ["WebSocketURI", "parse_uri"]


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
