"""The threads WebSocket client: :func:`connect` and :class:`ClientConnection`."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from ssl import SSLSocket
from typing import Any, Unpack, cast

from ..exceptions import InvalidHandshake, InvalidProxyMessage, InvalidStatus
from ..protocol.connection import ClientProtocol
from ..protocol.http11 import Response
from ..protocol.proxy import Proxy, ProxyTunnel
from ..protocol.uri import WebSocketURI
from ..reconnect import Backoff, ProcessException, Reconnection, process_exception
from ..shared.opening import ClientOptions, ClientSettings, Redirects, unix_options
from .connection import Connection
from .tls import TLSInTLS

__all__ = ["ClientConnection", "connect", "reconnecting", "unix_connect"]

#: Bytes asked of the socket per read while talking to a proxy.
_READ_SIZE = 4096


class ClientConnection(Connection):
    """The client's side of a WebSocket connection over threads.

    :attr:`redirects` lists the redirects followed to reach the server, as ``(uri,
    response)`` pairs.
    """

    protocol: ClientProtocol

    def __init__(self, sock: socket.socket, protocol: ClientProtocol, **kwargs: Any) -> None:
        super().__init__(sock, protocol, **kwargs)
        self.redirects: list[tuple[str, Response]] = []

    def _handshake(self, deadline: float | None, leftover: bytes) -> None:
        """Send the opening handshake request, read and check the answer, then start
        the reader thread."""
        with self._mutex:
            self.protocol.send_request(self.protocol.connect())
            if leftover:
                # What came through a proxy's tunnel with its answer is the server's.
                self.protocol.receive_data(leftover)
                self._process_events()
        self._flush()
        self._receive_handshake(deadline)
        if self.protocol.handshake_exc is not None:
            raise self.protocol.handshake_exc
        if self.protocol.response is None:
            # The connection ended before the answer arrived.
            raise self.protocol.close_exc
        # Open, or already closing if the server closed right after the 101: either way
        # the handshake succeeded, and recv() tells the rest.
        self._start_reader(f"wsio reader {self.protocol.uri.url}")


def connect(uri: str, **options: Unpack[ClientOptions]) -> ClientConnection:
    """Open a WebSocket connection: ``with connect(uri) as ws:`` closes it on exit.

    Takes the options of :func:`wsio.connect` (see
    :class:`~wsio.shared.opening.ClientOptions`) but ``write_limit``: :meth:`send`
    returns once the kernel took the bytes.

    :raises InvalidURI: ``uri`` isn't a ``ws://`` or ``wss://`` URI.
    :raises InvalidHandshake: the handshake failed; :class:`~wsio.InvalidStatus` carries
        the server's whole answer when it wasn't 101.
    :raises TimeoutError: ``open_timeout`` passed.
    :raises OSError: the TCP connection failed.
    """
    return _open(ClientSettings(uri, options))


def unix_connect(
    path: str, uri: str | None = None, **options: Unpack[ClientOptions]
) -> ClientConnection:
    """Open a WebSocket connection over the Unix socket at ``path``: as :func:`connect`,
    whose options it takes, with ``uri`` for the ``Host`` header and the request's path
    (``ws://localhost/`` by default, ``wss://localhost/`` with ``ssl``).

    :raises InvalidArgument: a ``proxy``: the socket is reached directly.
    :raises InvalidHandshake: also for a redirect to another origin, which this socket
        can't reach.
    """
    uri, unix = unix_options(uri, options)
    return _open(ClientSettings(uri, unix), path)


def reconnecting(
    uri: str,
    *,
    backoff: Backoff = Backoff(),  # noqa: B008 - frozen: one instance is safely shared
    process_exception: ProcessException = process_exception,
    **options: Unpack[ClientOptions],
) -> Iterator[ClientConnection]:
    """Connect again whenever the connection ends: ``for ws in reconnecting(uri):``
    opens a connection for each turn of the loop and closes it at the end of the turn,
    as ``async for ws in wsio.connect(uri):`` does on asyncio. (:func:`connect` returns
    the connection itself, which iterates over its messages.)

    A failure to open that may be transient is retried after a pause that grows with
    each failure in a row (``backoff``); a fatal one is raised and ends the loop. A
    connection that ended abnormally is reopened after a short random pause (RFC 6455
    §7.2.3). :func:`wsio.reconnect.process_exception` tells transient from fatal unless
    ``process_exception`` replaces it. Takes the options of :func:`connect` too.

    :raises InvalidURI: ``uri`` isn't a ``ws://`` or ``wss://`` URI, at once.
    :raises TypeError: an option that :func:`connect` doesn't take, at once.
    """
    # Checked now, so that a mistake fails here rather than at the first turn.
    settings = ClientSettings(uri, options)
    return _reconnect(settings, Reconnection(backoff, process_exception, options.get("logger")))


def _reconnect(settings: ClientSettings, reconnection: Reconnection) -> Iterator[ClientConnection]:
    while True:
        try:
            connection = _open(settings)
        except Exception as exc:
            time.sleep(reconnection.open_failed(exc))
            continue
        reconnection.opened()
        try:
            yield connection
        finally:
            # Also when the loop breaks or fails: the generator is then closed, here.
            connection.close()
        delay = reconnection.closed(connection.protocol.close_exc)
        if delay:
            time.sleep(delay)


def _open(settings: ClientSettings, path: str | None = None) -> ClientConnection:
    """Connect with ``settings``, to the Unix socket at ``path`` if given, following
    redirects, all within ``open_timeout``."""
    timeout = settings.open_timeout
    deadline = None if timeout is None else time.monotonic() + timeout
    redirects = Redirects(settings, fixed_endpoint=path is not None)
    try:
        while True:
            try:
                connection = _connect_once(
                    settings, redirects.uri, redirects.protocol_kwargs, deadline, path
                )
            except InvalidStatus as exc:
                redirects.follow(exc)
            else:
                connection.redirects = redirects.followed
                return connection
    except InvalidHandshake as exc:
        redirects.annotate(exc)
        raise


def _connect_once(
    settings: ClientSettings,
    uri: WebSocketURI,
    protocol_kwargs: dict[str, Any],
    deadline: float | None,
    path: str | None,
) -> ClientConnection:
    """One attempt: TCP (through the proxy if any) or the Unix socket at ``path``, TLS
    for wss, the HTTP upgrade."""
    proxy = None if path is not None else settings.proxy_for(uri)
    leftover = b""
    if path is not None:
        sock = _unix_connection(path, deadline)
    elif proxy is None:
        sock = socket.create_connection((uri.host, uri.port), _remaining(deadline))
    else:
        sock, leftover = _open_tunnel(settings, proxy, uri, deadline)
    try:
        ssl = settings.ssl_for(uri)
        if ssl is not None:
            if leftover:
                raise InvalidProxyMessage("proxy sent data before the TLS handshake")
            sock.settimeout(_remaining(deadline))
            server_hostname = settings.server_hostname_for(uri)
            if isinstance(sock, SSLSocket):
                # The proxy's own TLS: the server's runs inside it.
                tls = TLSInTLS(sock, ssl, server_hostname)
                tls.do_handshake()
                sock = cast(socket.socket, tls)
            else:
                sock = ssl.wrap_socket(sock, server_hostname=server_hostname)
        connection = ClientConnection(
            sock, ClientProtocol(uri, **protocol_kwargs), **settings.connection_kwargs
        )
    except BaseException:
        sock.close()
        raise
    try:
        connection._handshake(deadline, leftover)
    except BaseException:
        connection._end()
        raise
    return connection


def _unix_connection(path: str, deadline: float | None) -> socket.socket:
    """A socket connected to the Unix socket at ``path``, before ``deadline``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(_remaining(deadline))
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    sock.settimeout(None)
    return sock


def _open_tunnel(
    settings: ClientSettings, proxy: Proxy, uri: WebSocketURI, deadline: float | None
) -> tuple[socket.socket, bytes]:
    """Connect to the proxy and have it open a tunnel to the server; return the socket
    and the bytes that already came through the tunnel."""
    sock = socket.create_connection((proxy.host, proxy.port), _remaining(deadline))
    try:
        proxy_ssl = settings.proxy_ssl_for(proxy)
        if proxy_ssl is not None:
            sock = proxy_ssl.wrap_socket(sock, server_hostname=proxy.host)
        tunnel = ProxyTunnel(proxy, uri.host, uri.port, user_agent=settings.user_agent_header)
        while True:
            for data in tunnel.data_to_send():
                sock.sendall(data)
            if tunnel.error is not None:
                raise tunnel.error
            if tunnel.done:
                return sock, tunnel.leftover()
            sock.settimeout(_remaining(deadline))
            data = sock.recv(_READ_SIZE)
            if data:
                tunnel.receive_data(data)
            else:
                tunnel.receive_eof()
    except BaseException:
        sock.close()
        raise


def _remaining(deadline: float | None) -> float | None:
    """Seconds left before ``deadline``, for a socket's timeout.

    :raises TimeoutError: none left.
    """
    if deadline is None:
        return None
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("timed out during the opening handshake")
    return remaining
