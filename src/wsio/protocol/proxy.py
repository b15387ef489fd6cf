"""Tunnels through proxies, sans I/O: HTTP ``CONNECT`` (RFC 9110 §9.3.6) and SOCKS5
(RFC 1928, with username/password authentication from RFC 1929).

A :class:`ProxyTunnel` is fed what the proxy sends and says what to send it, like the
connection core. Once :attr:`ProxyTunnel.done`, the stream is a plain pipe to the
WebSocket server and the opening handshake (with TLS first, for ``wss``) starts on it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import struct
from collections.abc import Generator, Mapping

from .. import defaults
from ..exceptions import (
    InvalidHandshake,
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    ProxyError,
)
from .auth import basic_authorization
from .http11 import Headers, Request, parse_response
from .streams import StreamReader
from .uri import WebSocketURI, check_text, parse_host_port, split_uri, split_user_info

__all__ = ["Proxy", "ProxyTunnel", "parse_proxy", "proxy_from_environment"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}


@dataclasses.dataclass(frozen=True, slots=True)
class Proxy:
    """A parsed proxy URI.

    ``socks5h`` resolves the server's name at the proxy; ``socks5`` too, since resolving it
    locally would leak the name to the local resolver for no gain.
    """

    scheme: str
    host: str
    port: int
    user_info: tuple[str, str] | None = None

    @property
    def secure(self) -> bool:
        """Whether the connection to the proxy itself uses TLS."""
        return self.scheme == "https"


def parse_proxy(proxy: str) -> Proxy:
    """Parse ``http://``, ``https://``, ``socks5://`` or ``socks5h://`` proxy URIs.

    A proxy without a scheme (``host:port``) is an HTTP proxy, as in curl.

    :raises InvalidProxy: another scheme, no host, a path, or a ``:`` in the username.
    """
    try:
        check_text(proxy)
    except ValueError as exc:
        raise InvalidProxy(proxy, str(exc)) from None
    parts = split_uri(proxy if "://" in proxy else f"http://{proxy}")
    if parts is None or parts[0].lower() not in _DEFAULT_PORTS:
        scheme = parts[0] if parts is not None else proxy.partition(":")[0]
        raise InvalidProxy(proxy, f"scheme {scheme or '(none)'} isn't supported")
    scheme, authority, path, query, fragment = parts
    scheme = scheme.lower()
    if path not in ("", "/") or query is not None or fragment is not None:
        raise InvalidProxy(proxy, "a proxy URI has no path, query or fragment")
    user_info, host_port = split_user_info(authority)
    try:
        host, port = parse_host_port(host_port)
    except ValueError as exc:
        raise InvalidProxy(proxy, str(exc)) from None
    if user_info is not None and ":" in user_info[0]:
        raise InvalidProxy(proxy, "a username can't contain ':'")
    return Proxy(scheme, host, port or _DEFAULT_PORTS[scheme], user_info)


def proxy_from_environment(
    uri: WebSocketURI, environ: Mapping[str, str] | None = None
) -> str | None:
    """The proxy to reach ``uri`` through, from ``https_proxy`` (wss), ``http_proxy`` (ws)
    or ``all_proxy``, unless ``no_proxy`` exempts the host; ``None`` for a direct
    connection. Lower-case names win over upper-case ones, as in curl and urllib.
    """
    if environ is None:
        environ = os.environ
    proxies: dict[str, str] = {}
    cgi = "REQUEST_METHOD" in environ
    # Upper-case names first, so that lower-case ones override them.
    for name, value in sorted(environ.items(), key=lambda item: item[0].islower()):
        # In a CGI script, HTTP_PROXY may come from a request's Proxy header ("httpoxy").
        if value and name.lower().endswith("_proxy") and not (cgi and name == "HTTP_PROXY"):
            proxies[name.lower()[:-6]] = value
    if _exempt(uri, proxies.get("no", "")):
        return None
    return proxies.get("https" if uri.secure else "http") or proxies.get("all")


def _exempt(uri: WebSocketURI, no_proxy: str) -> bool:
    """Whether ``no_proxy`` exempts ``uri``: ``*``, a host or domain (``example.com`` and
    ``.example.com`` both match subdomains), ``host:port``, an IP address or network."""
    host = uri.host.lower().rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if entry == "*":
            return True
        if not entry:
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry.strip("[]"), strict=False):
                    return True
                continue
            except ValueError:
                pass
        name, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if port and (not port.isdigit() or int(port) != uri.port):
            continue
        name = name.lstrip("*").lstrip(".").rstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


class ProxyTunnel:
    """The exchange that asks a proxy for a tunnel to ``host:port``.

    Feed it with :meth:`receive_data` / :meth:`receive_eof`; send what
    :meth:`data_to_send` returns. When :attr:`done`, the tunnel is open and
    :meth:`leftover` holds any bytes that already came through it; when :attr:`error` is
    set, the proxy refused or broke the exchange.
    """

    def __init__(
        self, proxy: Proxy, host: str, port: int, *, user_agent: str | None = None
    ) -> None:
        self.proxy = proxy
        self.host = host
        self.port = port
        self.user_agent = user_agent
        self.done = False
        self.error: ProxyError | None = None
        self._reader = StreamReader()
        self._writes: list[bytes] = []
        if proxy.scheme.startswith("socks"):
            self._parser = self._socks5()
        else:
            self._parser = self._http_connect()
        self._advance()

    def receive_data(self, data: bytes) -> None:
        self._reader.feed_data(data)
        self._advance()

    def receive_eof(self) -> None:
        self._reader.feed_eof()
        self._advance()

    def data_to_send(self) -> list[bytes]:
        writes, self._writes = self._writes, []
        return writes

    def leftover(self) -> bytes:
        """Bytes received after the proxy's answer: the start of the tunneled stream."""
        data = bytes(self._reader.buffer)
        self._reader.discard()
        return data

    def _advance(self) -> None:
        if self.done or self.error is not None:
            return
        try:
            next(self._parser)
        except StopIteration:
            self.done = True
        except ProxyError as exc:
            self.error = exc
        except InvalidHandshake as exc:
            self.error = InvalidProxyMessage(f"invalid answer from proxy: {exc}")
            self.error.__cause__ = exc
        except EOFError as exc:
            self.error = InvalidProxyMessage("proxy closed the connection")
            self.error.__cause__ = exc

    def _http_connect(self) -> Generator[None, None, None]:
        """HTTP CONNECT (RFC 9110 §9.3.6): any 2xx opens the tunnel."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        authority = f"{host}:{self.port}"
        # Through Headers, whose checks keep a bad User-Agent from adding header lines.
        headers = Headers(Host=authority)
        if self.user_agent is not None:
            headers["User-Agent"] = self.user_agent
        if self.proxy.user_info is not None:
            headers["Proxy-Authorization"] = basic_authorization(*self.proxy.user_info)
        self._writes.append(Request(authority, headers, "CONNECT").serialize())
        # Interim 1xx answers are skipped by parse_response (RFC 9110 §15.2).
        response = yield from parse_response(
            self._reader, max_body_size=defaults.MAX_BODY_SIZE, connect=True
        )
        if not 200 <= response.status_code < 300:
            raise InvalidProxyStatus(
                f"proxy rejected connection: HTTP {response.status_code}", response=response
            )

    def _socks5(self) -> Generator[None, None, None]:
        """SOCKS5 CONNECT (RFC 1928), with username/password if given (RFC 1929)."""
        reader = self._reader
        credentials = self.proxy.user_info
        # §3: version 5, then the methods offered: 0 (none) and, with credentials, 2
        # (username/password, RFC 1929); the proxy picks.
        self._writes.append(b"\x05\x02\x00\x02" if credentials else b"\x05\x01\x00")
        version, method = yield from reader.read_exact(2)
        if version != 5:
            raise InvalidProxyMessage(f"not a SOCKS5 proxy: version {version}")
        if method not in ((0, 2) if credentials else (0,)):
            raise InvalidProxyStatus(f"SOCKS5 proxy refused the authentication methods: {method}")
        if method == 2 and credentials is not None:
            username, password = (part.encode() for part in credentials)
            if len(username) > 255 or len(password) > 255:
                raise ProxyError("SOCKS5 credentials are limited to 255 bytes each")
            self._writes.append(
                b"\x01" + bytes([len(username)]) + username + bytes([len(password)]) + password
            )
            _, status = yield from reader.read_exact(2)
            if status != 0:
                raise InvalidProxyStatus("SOCKS5 proxy rejected the credentials", reply=status)
        # §4: CONNECT to an IP address or, else, to a domain name resolved by the proxy.
        try:
            address = ipaddress.ip_address(self.host)
        except ValueError:
            name = self.host.encode("idna")
            if len(name) > 255:
                raise ProxyError("host name too long for SOCKS5") from None
            destination = b"\x03" + bytes([len(name)]) + name
        else:
            kind = b"\x01" if address.version == 4 else b"\x04"
            destination = kind + address.packed
        self._writes.append(b"\x05\x01\x00" + destination + struct.pack("!H", self.port))
        version, reply, _, address_type = yield from reader.read_exact(4)
        if version != 5:
            raise InvalidProxyMessage(f"not a SOCKS5 reply: version {version}")
        if reply != 0:
            raise InvalidProxyStatus(
                f"SOCKS5 proxy refused the connection: {_SOCKS5_REPLIES.get(reply, reply)}",
                reply=reply,
            )
        # The bound address that follows tells nothing we need; read past it.
        if address_type == 1:
            yield from reader.read_exact(4 + 2)
        elif address_type == 4:
            yield from reader.read_exact(16 + 2)
        elif address_type == 3:
            (length,) = yield from reader.read_exact(1)
            yield from reader.read_exact(length + 2)
        else:
            raise InvalidProxyMessage(f"invalid SOCKS5 address type {address_type}")


# RFC 1928 §6.
_SOCKS5_REPLIES = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}
