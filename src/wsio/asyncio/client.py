"""The asyncio WebSocket client: :func:`connect` and :class:`ClientConnection`."""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Literal, cast

from .. import defaults
from ..exceptions import (
    InvalidHandshake,
    InvalidProxyMessage,
    InvalidStatus,
    ProxyError,
)
from ..protocol.connection import ClientProtocol, State
from ..protocol.extensions import ClientExtensionFactory
from ..protocol.http11 import HeadersLike, Response
from ..protocol.proxy import Proxy, ProxyTunnel
from ..protocol.uri import WebSocketURI
from ..reconnect import Backoff, ProcessException, Reconnection, process_exception
from ..shared.opening import ClientOptions, ClientSettings, Redirects, unix_options
from .base import ConnectionBase
from .connection import Connection, Opener, check_limits
from .listener import ListenerConnection, ListenerFactory

__all__ = [
    "ClientConnection",
    "ClientListenerConnection",
    "ClientSide",
    "connect",
    "connect_listener",
    "unix_connect",
    "unix_connect_listener",
]


# Declared by each concrete class: ClientSide is one of two bases, which can't both add slots.
_CLIENT_SLOTS = ("_handshake_done", "redirects")


class ClientSide(ConnectionBase):
    """The client's side of a WebSocket connection: the opening handshake.
    :class:`ClientConnection` and :class:`ClientListenerConnection` add the delivery of
    messages.

    :attr:`redirects` lists the redirects followed to reach the server, as ``(uri,
    response)`` pairs.
    """

    __slots__ = ()

    protocol: ClientProtocol
    _handshake_done: asyncio.Future[None]
    redirects: list[tuple[str, Response]]

    def __init__(self, protocol: ClientProtocol, **kwargs: Any) -> None:
        super().__init__(protocol, **kwargs)
        self.redirects: list[tuple[str, Response]] = []
        # Resolved once the opening handshake is over, whatever its outcome.
        self._handshake_done: asyncio.Future[None] = self.loop.create_future()

    def _end_handshake(self) -> None:
        super()._end_handshake()
        # Cancelled if the opening was (open_timeout...): nobody waits for it then.
        if not self._handshake_done.done():
            self._handshake_done.set_result(None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # The opening handshake request, queued in the core before connecting, goes out in
        # the turn of the loop that connected: the coroutine that awaits the connection
        # resumes a turn later.
        self._flush()

    async def _handshake(self) -> None:
        """Wait for the answer to the opening handshake request to be checked."""
        # Awaited as is, not shielded (a turn of the loop more): only this waits for it,
        # and the opening ends with it if cancelled.
        await self._handshake_done
        if self.protocol.handshake_exc is not None:
            self._abort()
            raise self.protocol.handshake_exc
        if self.protocol.response is None:
            # The connection ended before the answer arrived.
            raise self.protocol.close_exc
        # Open, or already closing if the server closed right after the 101: either way
        # the handshake succeeded, and recv() tells the rest.
        if self.protocol.state is State.OPEN:
            self._start_keepalive()


class ClientConnection(ClientSide, Connection):
    """The client's side of a WebSocket connection.

    :attr:`redirects` lists the redirects followed to reach the server, as ``(uri,
    response)`` pairs.
    """

    __slots__ = _CLIENT_SLOTS


class ClientListenerConnection(ClientSide, ListenerConnection):
    """The client's side of a WebSocket connection of :func:`connect_listener`, given to
    its listener.

    :attr:`redirects` lists the redirects followed to reach the server, as ``(uri,
    response)`` pairs.
    """

    __slots__ = _CLIENT_SLOTS

    def _end_handshake(self) -> None:
        super()._end_handshake()
        if self.protocol.handshake_exc is None and self.protocol.response is not None:
            self._open_listener()


class connect(Opener[ClientConnection]):
    """Open a WebSocket connection: ``async with connect(uri) as ws:`` or
    ``ws = await connect(uri)``.

    ``async for ws in connect(uri):`` opens a connection for each turn of the loop and
    closes it at the end of the turn, so that the loop reconnects whenever a connection
    ends. A failure to open that may be transient is retried after a pause that grows
    with each failure in a row (``backoff``); a fatal one is raised and ends the loop.
    A connection that ended abnormally is reopened after a short random pause (RFC 6455
    §7.2.3). See :mod:`wsio.reconnect` for which failures are transient.

    :param ssl: TLS context for ``wss://``; a default, verifying context if omitted.
    :param open_timeout: seconds for TCP connect, TLS and the HTTP upgrade together;
        ``None`` waits forever. Exceeding it raises :class:`TimeoutError`.
    :param origin: value of the ``Origin`` header.
    :param subprotocols: subprotocols to offer, in order of preference.
    :param additional_headers: extra request headers; they replace defaults of the same name.
    :param user_agent_header: value of ``User-Agent``; ``None`` leaves it out.
    :param max_size: largest incoming message in bytes; ``None`` disables the limit.
    :param compression: ``"deflate"`` (default) offers permessage-deflate (RFC 7692);
        ``None`` offers no compression.
    :param compression_threshold: messages shorter than this many bytes are sent
        uncompressed; ``send(..., compress=...)`` decides for one message.
    :param extensions: more extensions to offer, after compression.
    :param proxy: ``http://``, ``https://``, ``socks5://`` or ``socks5h://`` proxy URI;
        ``True`` (default) takes it from ``https_proxy``/``http_proxy``/``all_proxy``
        unless ``no_proxy`` exempts the host; ``None`` connects directly.
    :param proxy_ssl: TLS context for an ``https://`` proxy.
    :param backoff: how ``async for`` spaces its attempts to reconnect.
    :param process_exception: ``(exc) -> Exception | None``: tells ``async for`` whether
        a failure to open is transient (``None``: try again) or fatal (the exception to
        raise); :func:`wsio.reconnect.process_exception` by default.
    :raises InvalidURI: ``uri`` isn't a ``ws://`` or ``wss://`` URI.
    :raises InvalidHandshake: the handshake failed; :class:`~wsio.InvalidStatus` carries
        the server's whole answer when it wasn't 101.
    """

    def __init__(
        self,
        uri: str,
        *,
        ssl: ssl_module.SSLContext | None = None,
        server_hostname: str | None = None,
        origin: str | None = None,
        subprotocols: Sequence[str] | None = None,
        additional_headers: HeadersLike | None = None,
        user_agent_header: str | None = defaults.USER_AGENT,
        open_timeout: float | None = defaults.OPEN_TIMEOUT,
        ping_interval: float | None = defaults.PING_INTERVAL,
        ping_timeout: float | None = defaults.PING_TIMEOUT,
        close_timeout: float | None = defaults.CLOSE_TIMEOUT,
        max_size: int | None = defaults.MAX_SIZE,
        max_queue: int = defaults.MAX_QUEUE,
        write_limit: int = defaults.WRITE_LIMIT,
        compression: str | None = defaults.COMPRESSION,
        compression_threshold: int = defaults.COMPRESSION_THRESHOLD,
        extensions: Sequence[ClientExtensionFactory] = (),
        proxy: str | Literal[True] | None = True,
        proxy_ssl: ssl_module.SSLContext | None = None,
        backoff: Backoff = Backoff(),  # noqa: B008 - frozen: one instance is safely shared
        process_exception: ProcessException = process_exception,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
        **create_connection_kwargs: Any,
    ) -> None:
        # The keyword arguments that both layers' connect take, as given here.
        arguments = locals()
        self._settings = ClientSettings.of(
            uri, {name: arguments[name] for name in ClientOptions.__optional_keys__}
        )
        check_limits(max_queue, write_limit)
        self.uri = self._settings.uri
        self.open_timeout = open_timeout
        self.backoff = backoff
        self.process_exception = process_exception
        self.logger = self._settings.protocol_kwargs["logger"]
        self._connection_kwargs = dict(self._settings.connection_kwargs, write_limit=write_limit)
        self._create_connection_kwargs = create_connection_kwargs
        #: The Unix socket that :class:`unix_connect` connects to; ``None``: TCP.
        self.path: str | None = None
        self.connection: ClientConnection | None = None

    def _redirects(self) -> Redirects:
        """The redirects of one opening, from the URI given."""
        return Redirects(self._settings)

    async def _open(self) -> ClientConnection:
        """Connect, following redirects, all within ``open_timeout``."""
        redirects = self._redirects()
        try:
            async with asyncio.timeout(self.open_timeout):
                while True:
                    try:
                        connection = await self._connect_once(
                            redirects.uri, redirects.protocol_kwargs
                        )
                    except InvalidStatus as exc:
                        redirects.follow(exc)
                    else:
                        connection.redirects = redirects.followed
                        # connect_listener's connections go through here too, as their own
                        # type (_ListenerConnecting).
                        self.connection = cast(ClientConnection, connection)
                        return self.connection
        except InvalidHandshake as exc:
            redirects.annotate(exc)
            raise

    async def __aiter__(self) -> AsyncIterator[ClientConnection]:
        """Yield a new connection each time the application comes back for one, closing
        the previous one first; see the class's documentation."""
        reconnection = Reconnection(self.backoff, self.process_exception, self.logger)
        while True:
            try:
                connection = await self._open()
            except Exception as exc:
                await asyncio.sleep(reconnection.open_failed(exc))
                continue
            reconnection.opened()
            try:
                yield connection
            finally:
                # Also when the application breaks out of the loop or fails in it: the
                # generator is then closed, here, as soon as it is dropped.
                await connection.close()
            delay = reconnection.closed(connection.protocol.close_exc)
            if delay:
                await asyncio.sleep(delay)

    def _new_connection(self, protocol: ClientProtocol) -> ClientSide:
        """The connection of one attempt."""
        return ClientConnection(protocol, **self._connection_kwargs)

    async def _connect_once(
        self, uri: WebSocketURI, protocol_kwargs: dict[str, Any]
    ) -> ClientSide:
        """One attempt: TCP (through the proxy if any), TLS for wss, the HTTP upgrade."""
        loop = asyncio.get_running_loop()
        protocol = ClientProtocol(uri, **protocol_kwargs)
        # Queued now, written as soon as the connection is made (connection_made).
        protocol.send_request(protocol.connect())
        connection = self._new_connection(protocol)
        settings = self._settings
        kwargs = self._create_connection_kwargs
        ssl = settings.ssl_for(uri)
        proxy = None if "sock" in kwargs else settings.proxy_for(uri)
        try:
            if proxy is None:
                if ssl is not None:
                    server_hostname = settings.server_hostname_for(uri)
                    kwargs = dict(kwargs, ssl=ssl, server_hostname=server_hostname)
                await self._create_connection(lambda: connection, uri, kwargs)
            else:
                # Copied: the tunnel adds the proxy's TLS, if any.
                transport, leftover = await self._open_tunnel(proxy, uri, dict(kwargs))
                if ssl is not None and leftover:
                    raise InvalidProxyMessage("proxy sent data before the TLS handshake")
                if ssl is not None:
                    transport.set_protocol(connection)
                    tls_transport = await loop.start_tls(
                        transport,
                        connection,
                        ssl,
                        server_hostname=settings.server_hostname_for(uri),
                    )
                    # A cast, not an isinstance check: uvloop's transports don't subclass it.
                    transport = cast(asyncio.Transport, tls_transport)
                transport.set_protocol(connection)
                connection.connection_made(transport)
                if leftover:
                    # What came through the tunnel with the proxy's answer is the server's;
                    # the core reads it as the answer once the request is sent.
                    connection.data_received(leftover)
                transport.resume_reading()
            await connection._handshake()
        except BaseException:
            connection._abort()
            raise
        return connection

    async def _create_connection(
        self,
        factory: Callable[[], ClientSide],
        uri: WebSocketURI,
        kwargs: dict[str, Any],
    ) -> None:
        """Open the connection to the server itself, or to :attr:`path`, TLS included if
        ``kwargs`` ask."""
        loop = asyncio.get_running_loop()
        # With sock=..., asyncio wants no address.
        socket_given = "sock" in kwargs
        if self.path is None:
            address = (None, None) if socket_given else (uri.host, uri.port)
            await loop.create_connection(factory, *address, **kwargs)
        else:
            path = None if socket_given else self.path
            await loop.create_unix_connection(factory, path, **kwargs)

    async def _open_tunnel(
        self, proxy: Proxy, uri: WebSocketURI, kwargs: dict[str, Any]
    ) -> tuple[asyncio.Transport, bytes]:
        """Connect to the proxy and have it open a tunnel to the server; return the
        transport, paused, and the bytes that already came through the tunnel."""
        loop = asyncio.get_running_loop()
        proxy_ssl = self._settings.proxy_ssl_for(proxy)
        if proxy_ssl is not None:
            kwargs.update(ssl=proxy_ssl, server_hostname=proxy.host)
        tunnel = ProxyTunnel(
            proxy, uri.host, uri.port, user_agent=self._settings.user_agent_header
        )
        transport, opener = await loop.create_connection(
            lambda: _TunnelOpener(tunnel), proxy.host, proxy.port, **kwargs
        )
        try:
            await opener.opened
        except BaseException:
            transport.abort()
            raise
        return transport, tunnel.leftover()


class unix_connect(connect):
    """Open a WebSocket connection over the Unix socket at ``path``: as :class:`connect`,
    whose keyword arguments it takes, with ``uri`` for the ``Host`` header and the
    request's path. ``uri`` defaults to ``ws://localhost/``, or ``wss://localhost/``
    with ``ssl``: TLS works over a Unix socket too.

    :raises InvalidArgument: a ``proxy``: the socket is reached directly.
    """

    def __init__(self, path: str | None = None, uri: str | None = None, **kwargs: Any) -> None:
        uri, kwargs = unix_options(uri, kwargs)
        super().__init__(uri, **kwargs)
        self.path = path

    def _redirects(self) -> Redirects:
        return Redirects(self._settings, fixed_endpoint=True)


class _ListenerConnecting(connect):
    """What :class:`connect_listener` and :class:`unix_connect_listener` add to
    connecting: connections that call a listener."""

    _listener_factory: ListenerFactory

    def _new_connection(self, protocol: ClientProtocol) -> ClientSide:
        return ClientListenerConnection(
            protocol, listener_factory=self._listener_factory, **self._connection_kwargs
        )


class _UnixListenerConnecting(_ListenerConnecting, unix_connect):
    pass


class connect_listener(Opener[ClientListenerConnection]):
    """Open a WebSocket connection that calls a :class:`~wsio.Listener` for each message:
    ``ws = await connect_listener(factory, uri)``, or ``async with connect_listener(factory,
    uri) as ws:``, which closes the connection on exit.

    ``factory`` makes the listener once the opening handshake succeeded (a
    :class:`~wsio.Listener` subclass will do); its ``on_open`` runs before this returns.
    Every keyword argument of :func:`connect` applies the same way (redirects, proxies,
    TLS, limits, timeouts...); ``max_queue`` has no use: messages are delivered as they
    are parsed. Reconnecting with ``async for`` is :func:`connect`'s only.
    """

    def __init__(self, factory: ListenerFactory, uri: str, **kwargs: Any) -> None:
        self._connect: _ListenerConnecting = _ListenerConnecting(uri, **kwargs)
        self._connect._listener_factory = factory

    async def _open(self) -> ClientListenerConnection:
        return cast(ClientListenerConnection, await self._connect._open())


class unix_connect_listener(connect_listener):
    """:class:`connect_listener` over the Unix socket at ``path``, as :class:`unix_connect`."""

    def __init__(
        self,
        factory: ListenerFactory,
        path: str | None = None,
        uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        self._connect = _UnixListenerConnecting(path, uri, **kwargs)
        self._connect._listener_factory = factory


class _TunnelOpener(asyncio.Protocol):
    """Moves the bytes of a :class:`ProxyTunnel` exchange, then hands the transport over."""

    def __init__(self, tunnel: ProxyTunnel) -> None:
        self.tunnel = tunnel
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's don't subclass it
        self.transport = transport
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.tunnel.receive_data(data)
        self._flush()

    def eof_received(self) -> None:
        self.tunnel.receive_eof()
        self._flush()
        # The tunnel failed, or reading was paused when it opened: the transport may close.
        # (Returning True would also make asyncio warn on a TLS connection to the proxy.)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            error = ProxyError("proxy closed the connection")
            error.__cause__ = exc
            self.opened.set_exception(error)

    def _flush(self) -> None:
        for data in self.tunnel.data_to_send():
            self.transport.write(data)
        if self.opened.done():
            return
        if self.tunnel.error is not None:
            self.opened.set_exception(self.tunnel.error)
        elif self.tunnel.done:
            # Nothing more is read until the WebSocket connection takes the transport.
            self.transport.pause_reading()
            self.opened.set_result(None)
