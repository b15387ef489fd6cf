"""The asyncio WebSocket server: :func:`serve` and :class:`ServerConnection`."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from types import TracebackType
from typing import Any

from .. import defaults
from ..exceptions import ConnectionClosed
from ..protocol.connection import ServerProtocol, State
from ..protocol.handshake import Origin
from .connection import Connection, Opener

__all__ = ["Server", "ServerConnection", "serve"]

Handler = Callable[["ServerConnection"], Awaitable[None]]

_logger = logging.getLogger("wsio.server")


class ServerConnection(Connection):
    """The server's side of one WebSocket connection, passed to the handler."""

    protocol: ServerProtocol

    def __init__(self, protocol: ServerProtocol, server: Server, **kwargs: Any) -> None:
        super().__init__(protocol, **kwargs)
        self.server = server
        self._handler_task: asyncio.Task[None] | None = None
        self._request_ready: asyncio.Future[None] = self.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.server._connections.add(self)
        self._handler_task = self.loop.create_task(self._run())

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.server._connections.discard(self)

    async def _run(self) -> None:
        """Open the connection (TLS, then the HTTP upgrade, within ``open_timeout`` of the
        TCP accept), run the handler, close."""
        server = self.server
        try:
            async with asyncio.timeout(server.open_timeout):
                if server.ssl is not None:
                    await self._start_tls(server.ssl)
                await asyncio.wait(
                    [self._request_ready, self._handshake_done],
                    return_when=asyncio.FIRST_COMPLETED,
                )
                self._answer_request()
                await asyncio.shield(self._handshake_done)
        except TimeoutError:
            self.logger.info("opening handshake timed out after %s s", server.open_timeout)
            self._abort()
            return
        except (OSError, ssl_module.SSLError) as exc:
            self.logger.info("opening handshake failed: %s", exc)
            self._abort()
            return
        if self.protocol.state is not State.OPEN:
            if self.protocol.handshake_exc is not None:
                self.logger.info("opening handshake failed: %s", self.protocol.handshake_exc)
            await self.wait_closed()
            return
        self._start_keepalive()
        try:
            await server.handler(self)
        except ConnectionClosed:
            # The peer closed while the handler was sending or receiving: not a bug.
            self.logger.debug("connection closed during handler", exc_info=True)
        except Exception:
            self.logger.error("connection handler failed", exc_info=True)
            await self.close(1011)
        else:
            await self.close()

    async def _start_tls(self, context: ssl_module.SSLContext) -> None:
        """Upgrade the accepted TCP connection to TLS, inside the open timeout."""
        assert self.transport is not None
        self._writes_held = True
        try:
            transport = await self.loop.start_tls(self.transport, self, context, server_side=True)
        finally:
            self._writes_held = False
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._flush()

    def _handshake_event(self, event: object) -> None:
        if not self._request_ready.done():
            self._request_ready.set_result(None)

    def _answer_request(self) -> None:
        if self.protocol.state is not State.CONNECTING or self.protocol.request is None:
            return
        if self.server.closing:
            response = self.protocol.reject(
                HTTPStatus.SERVICE_UNAVAILABLE, "Server is shutting down.\n"
            )
        else:
            response = self.protocol.accept(self.protocol.request)
        self.protocol.send_response(response)
        self._process_events()


class Server:
    """A running WebSocket server; see :func:`serve`.

    Closing it stops accepting connections, answers handshakes in progress with 503, and
    closes open connections with 1001 (going away).
    """

    def __init__(
        self,
        handler: Handler,
        *,
        ssl: ssl_module.SSLContext | None,
        open_timeout: float | None,
        make_connection: Callable[[Server], ServerConnection],
    ) -> None:
        self.handler = handler
        self.ssl = ssl
        self.open_timeout = open_timeout
        self.closing = False
        self._make_connection = make_connection
        self._connections: set[ServerConnection] = set()
        self._server: asyncio.Server | None = None
        self._close_task: asyncio.Task[None] | None = None

    @property
    def sockets(self) -> Sequence[socket.socket]:
        """The listening sockets."""
        assert self._server is not None
        return self._server.sockets

    @property
    def connections(self) -> set[ServerConnection]:
        """The connections currently open or opening."""
        return set(self._connections)

    def is_serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    def close(self, close_connections: bool = True) -> None:
        """Stop the server; ``await`` :meth:`wait_closed` for it to finish."""
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(
                self._close(close_connections)
            )

    async def _close(self, close_connections: bool) -> None:
        self.closing = True
        assert self._server is not None
        self._server.close()
        connections = list(self._connections)
        if close_connections:
            await asyncio.gather(
                *(c.close(1001) for c in connections if c.state is State.OPEN),
                return_exceptions=True,
            )
        tasks = [c._handler_task for c in connections if c._handler_task is not None]
        if tasks:
            await asyncio.wait(tasks)
        await self._server.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the server is closed and every connection handler returned."""
        if self._close_task is None:
            assert self._server is not None
            await self._server.wait_closed()
        else:
            await asyncio.shield(self._close_task)

    async def serve_forever(self) -> None:
        """Serve until cancelled or closed."""
        assert self._server is not None
        try:
            await self._server.serve_forever()
        except asyncio.CancelledError:
            if self._close_task is None:
                raise
        await self.wait_closed()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()


class serve(Opener[Server]):
    """Start a WebSocket server: ``async with serve(handler, host, port) as server:``.

    ``await serve(...)`` works too and returns the :class:`Server`. ``handler`` is a
    coroutine function called with each :class:`ServerConnection` once the opening
    handshake succeeded; the connection is closed when it returns (1000) or raises (1011).

    :param origins: allowed values of the ``Origin`` header (strings, patterns, ``None``
        for "no header"); ``None`` accepts every origin.
    :param subprotocols: supported subprotocols, the client's preference deciding.
    :param max_size: largest incoming message in bytes; ``None`` disables the limit.
    :param open_timeout: seconds from the TCP accept to the end of the HTTP upgrade,
        TLS included.
    """

    def __init__(
        self,
        handler: Handler,
        host: str | Sequence[str] | None = None,
        port: int | None = None,
        *,
        ssl: ssl_module.SSLContext | None = None,
        origins: Sequence[Origin] | None = None,
        subprotocols: Sequence[str] | None = None,
        server_header: str | None = defaults.SERVER_HEADER,
        open_timeout: float | None = defaults.OPEN_TIMEOUT,
        ping_interval: float | None = defaults.PING_INTERVAL,
        ping_timeout: float | None = defaults.PING_TIMEOUT,
        close_timeout: float | None = defaults.CLOSE_TIMEOUT,
        max_size: int | None = defaults.MAX_SIZE,
        max_queue: int = defaults.MAX_QUEUE,
        write_limit: int = defaults.WRITE_LIMIT,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
        **create_server_kwargs: Any,
    ) -> None:
        if logger is None:
            logger = _logger

        def make_connection(server: Server) -> ServerConnection:
            protocol = ServerProtocol(
                origins=origins,
                subprotocols=subprotocols,
                server_header=server_header,
                max_size=max_size,
                hold_failures=True,
                logger=logger,
            )
            return ServerConnection(
                protocol,
                server,
                ping_interval=ping_interval,
                ping_timeout=ping_timeout,
                close_timeout=close_timeout,
                max_queue=max_queue,
                write_limit=write_limit,
            )

        self.server = Server(
            handler, ssl=ssl, open_timeout=open_timeout, make_connection=make_connection
        )
        self._host = host
        # None with sock=..., as asyncio's create_server wants it.
        self._port: Any = port
        self._create_server_kwargs = create_server_kwargs

    async def _open(self) -> Server:
        loop = asyncio.get_running_loop()
        server = self.server
        server._server = await loop.create_server(
            lambda: server._make_connection(server),
            self._host,
            self._port,
            **self._create_server_kwargs,
        )
        return server
