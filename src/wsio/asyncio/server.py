"""The asyncio WebSocket server: :func:`serve` and :class:`ServerConnection`."""

from __future__ import annotations

import abc
import asyncio
import contextvars
import functools
import inspect
import logging
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from types import TracebackType
from typing import Any, TypeVar

from .. import defaults
from ..exceptions import ConnectionClosed
from ..protocol.connection import ServerProtocol, State
from ..protocol.extensions import ServerExtensionFactory
from ..protocol.handshake import Origin
from ..protocol.http11 import Request, Response
from ..shared.serving import (
    SHUTTING_DOWN,
    ServerOptions,
    ServerSettings,
    answer_request,
    failed_hook_answer,
    log_no_upgrade,
)
from .base import _CONNECTING, _OPEN, ConnectionBase
from .connection import Connection, Opener, check_limits
from .listener import ListenerConnection, ListenerFactory

__all__ = [
    "Server",
    "ServerConnection",
    "ServerListenerConnection",
    "ServerSide",
    "serve",
    "serve_listener",
    "unix_serve",
    "unix_serve_listener",
]

Handler = Callable[["ServerConnection"], Awaitable[None]]
ProcessRequest = Callable[
    ["ServerConnection", Request], "Response | Awaitable[Response | None] | None"
]
ProcessResponse = Callable[
    ["ServerConnection", Request, Response], "Response | Awaitable[Response | None] | None"
]
SelectSubprotocol = Callable[["ServerConnection", Sequence[str]], "str | None"]

_T = TypeVar("_T")

# What a hook or handler may raise that is no bug of the application: these stop its task
# (the loop, for the first two) instead of being answered with 500 or closed with 1011.
_STOPS_LOOP = (KeyboardInterrupt, SystemExit)
_ENDS_TASK = (*_STOPS_LOOP, GeneratorExit, asyncio.CancelledError)


# Declared by each concrete class: ServerSide is one of two bases, which can't both add slots.
_SERVER_SLOTS = (
    "_answered_by_hook",
    "_handler_task",
    "_hook_awaited",
    "_open_deadline",
    "server",
    "username",
)


class ServerSide(ConnectionBase):
    """The server's side of one WebSocket connection: the opening handshake, the hooks,
    the server's bookkeeping. :class:`ServerConnection` and
    :class:`~wsio.asyncio.server.ServerListenerConnection` add the delivery of messages."""

    __slots__ = ()

    protocol: ServerProtocol
    _answered_by_hook: bool
    _handler_task: asyncio.Task[None] | None
    _hook_awaited: bool
    _open_deadline: float | None
    server: Server
    username: str | None

    def __init__(self, server: Server) -> None:
        settings = server.settings
        super().__init__(
            settings.make_protocol(self),
            write_limit=server.write_limit,
            **settings.connection_kwargs,
        )
        self.server = server
        # The loop creates the protocol when it accepts the TCP connection, before any TLS
        # handshake: open_timeout runs from here.
        timeout = settings.open_timeout
        self._open_deadline = None if timeout is None else self.loop.time() + timeout
        # Runs the hooks, if any, then the handler. A connection gets one once its request
        # arrived (with hooks) or once it upgraded (without): none while it waits for a
        # request, which keeps a connection that never sends one cheap.
        self._handler_task: asyncio.Task[None] | None = None
        # Whether process_request answered instead of upgrading.
        self._answered_by_hook = False
        # Whether a hook awaited, with reading paused meanwhile.
        self._hook_awaited = False
        #: The user authenticated by :func:`basic_auth`, if any.
        self.username: str | None = None

    @property
    def broadcast_policy(self) -> tuple[int | None, str]:
        return self.server.settings.broadcast_policy

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.server._connections[self] = None
        if self._open_deadline is not None:
            # Disarmed when the opening handshake ends.
            self._arm(self._open_deadline, type(self)._open_timed_out)
            self._open_deadline = None  # a float less to keep per open connection
        if self.server.closing:
            # Its TLS handshake was under way when the server started closing: the loop
            # runs TLS, so the connection only shows up now. It gets the same 503.
            self._refuse_while_closing()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
            if self._handler_task is not None and self.protocol.response is None:
                # A hook is still running, and nobody is left to answer: without this,
                # one that never returns would outlive the connection and its timeout.
                self._handler_task.cancel()
        finally:
            # Whatever happened, a closed connection mustn't hold the server's shutdown.
            self.server._connections.pop(self, None)

    def _open_timed_out(self) -> None:
        """``open_timeout`` passed before the end of the HTTP upgrade: give up on it."""
        self._timer_slot = None
        self.logger.info(
            "opening handshake timed out after %s s", self.server.settings.open_timeout
        )
        # The handshake is over, and that line said how: nothing more to log when the
        # abort ends the connection.
        super()._end_handshake()
        if self._handler_task is not None:
            self._handler_task.cancel()  # a hook still running
        self._abort()

    def _handshake_event(self, event: object) -> None:
        # The request arrived.
        settings = self.server.settings
        if settings.process_request is None and settings.process_response is None:
            # Nothing can await: answer before the loop reads again, with neither a task
            # nor a turn of the loop between the request and its answer.
            # A server closing meanwhile turns a 101 into 503 (_send_answer).
            request = self.protocol.request
            assert request is not None
            try:
                response = self.protocol.accept(request)
            except _STOPS_LOOP:
                raise
            except BaseException as exc:
                # select_subprotocol is the application's and may raise.
                response = failed_hook_answer(self.protocol, exc)
            self._send_answer(response, dispatching=True)
        else:
            self._handler_task = self.loop.create_task(self._run_with_hooks())

    def _end_handshake(self) -> None:
        super()._end_handshake()
        response = self.protocol.response
        if response is None or response.status_code != 101:
            self._disarm()  # open_timeout
            log_no_upgrade(self.protocol, response, self._answered_by_hook)
            return
        # Frames that came with the request may have closed the connection already: the
        # application still gets the messages before them, then the closure.
        if self.protocol.state is _OPEN and self.ping_interval is not None:
            self._start_keepalive()  # in place of open_timeout
        else:
            self._disarm()  # open_timeout
        self._upgraded()

    @abc.abstractmethod
    def _upgraded(self) -> None:
        """The connection upgraded: hand it to the application."""

    @abc.abstractmethod
    async def _run_handler(self) -> None:
        """Hand the connection upgraded after the hooks to the application, in their task
        (whose end :meth:`_upgraded` sees to)."""

    async def _run_with_hooks(self) -> None:
        """Answer the request with the hooks' say, then run the handler if it upgraded."""
        try:
            await self._answer_request()
        except BaseException:
            # Cancelled (open_timeout, the server closing), or a hook raised CancelledError,
            # KeyboardInterrupt or SystemExit: nothing else will answer the request now.
            if self.server.closing:
                self._send_answer(self.respond(*SHUTTING_DOWN))
            if self.protocol.state is State.CONNECTING:
                self._abort()
            raise
        response = self.protocol.response
        if response is not None and response.status_code == 101:
            await self._run_handler()

    def _refuse_while_closing(self) -> None:
        """The server is closing: answer 503 now, rather than when the request arrives.

        Browsers open spare connections ahead of need and may never send a request on
        them; waiting for one would hold the shutdown until open_timeout. A client that
        sends its request afterwards reads the 503 as the answer. A connection that
        started a request is left to finish it.
        """
        if not self.protocol.request_started:
            self.protocol.send_response(self.respond(*SHUTTING_DOWN))
            self._process_events()
            # Nothing was read, so nothing is left to wait for: close once it's written.
            assert self.transport is not None
            self.transport.close()

    def respond(self, status: HTTPStatus | int, text: str) -> Response:
        """A plain-text HTTP response, for ``process_request`` to return instead of
        upgrading (health checks, errors, challenges)."""
        return self.protocol.reject(status, text)

    async def _answer_request(self) -> None:
        """Answer the opening handshake request with the hooks' say
        (:func:`~wsio.shared.serving.answer_request`), awaiting what they return."""
        request = self.protocol.request
        assert request is not None
        response: Response
        try:
            if self.server.closing:
                response = self.respond(*SHUTTING_DOWN)
            else:
                steps = answer_request(self, request, self.server.settings)
                try:
                    answer = next(steps)
                    while True:
                        answer = steps.send(await self._hook_answer(answer))
                except StopIteration as done:
                    response, self._answered_by_hook = done.value
        except _ENDS_TASK:
            raise
        except BaseException as exc:
            response = failed_hook_answer(self.protocol, exc)
        self._send_answer(response)

    def _send_answer(self, response: Response, dispatching: bool = False) -> None:
        """Send the answer to the request, unless the connection ended meanwhile;
        ``dispatching``: from :meth:`_process_events`, which writes it and ends the
        opening handshake once it returns."""
        transport = self.transport
        assert transport is not None
        if self.protocol.state is not _CONNECTING or transport.is_closing():
            # The connection ended, or a hook closed it. (Once the request is in, the core
            # stays CONNECTING after the end of the stream, an answer being still due.)
            return
        if self.server.closing and response.status_code == 101:
            # The server is closing (it may have started while a hook ran): its open
            # connections are being closed already, and this one mustn't open after them.
            response = self.respond(*SHUTTING_DOWN)
        try:
            self.protocol.send_response(response)
        except Exception as exc:
            # A hook's Response that can't be serialized (a str body, say). The core
            # queued nothing of it, and the handshake is still to answer.
            self.protocol.send_response(failed_hook_answer(self.protocol, exc))
        if dispatching and not self.protocol.has_events:
            # Nothing came behind the request: what the dispatch does next is all there
            # is to do.
            return
        self._process_events()
        if self._hook_awaited and not self._reading_paused and not transport.is_closing():
            transport.resume_reading()

    async def _hook_answer(self, answer: object) -> object:
        """What a hook returned, awaited if it is awaitable.

        While a hook awaits (up to ``open_timeout``), nothing more is read from the client,
        so that it can't make the server buffer without bound; reading resumes once the
        answer is sent. Without a hook that awaits, the answer goes before the loop reads
        again (the task resumes ahead of the next reads): there is nothing to pause for,
        and pausing would cost two system calls per handshake.
        """
        if inspect.isawaitable(answer):
            assert self.transport is not None
            self._hook_awaited = True
            self.transport.pause_reading()
            return await answer
        return answer


class ServerConnection(ServerSide, Connection):
    """The server's side of one WebSocket connection, passed to the handler."""

    __slots__ = _SERVER_SLOTS

    def _upgraded(self) -> None:
        task = self._handler_task
        if task is None:
            # The handler's coroutine is the task, with no coroutine around it (a frame
            # less to keep per open connection): what follows the handler runs from the
            # task's end, in the task's context.
            context = contextvars.copy_context()
            handling = None
            try:
                handling = self.server.handler(self)
                task = self.loop.create_task(handling, context=context)  # type: ignore[arg-type]
            except Exception as exc:
                # A handler that isn't a coroutine function.
                task = self.loop.create_task(_handling(handling, exc), context=context)
            self._handler_task = task
            task.add_done_callback(self._handler_done, context=context)
        else:
            # The task that ran the hooks goes on with the handler (_run_with_hooks).
            task.add_done_callback(self._handler_done)

    async def _run_handler(self) -> None:
        await self.server.handler(self)

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        """The handler returned or raised: close the connection, with 1011 after a bug.

        :meth:`close`, :meth:`wait_closed` and the server's shutdown wait for the end of
        the TCP connection, not for the handler.
        """
        if task.cancelled():
            # Nothing will close the connection now, and the peer mustn't be left
            # waiting for its own timeouts.
            self._abort()
            return
        exc = task.exception()
        if exc is None:
            self._start_closing(1000, "")
        elif isinstance(exc, ConnectionClosed):
            # The peer closed while the handler was sending or receiving: not a bug, and
            # often the peer's mistake. One line, no traceback.
            self.logger.debug("connection closed during handler: %s", exc)
        elif isinstance(exc, _ENDS_TASK):
            # The handler raised CancelledError, KeyboardInterrupt or SystemExit.
            self._abort()
        else:
            self.logger.error("connection handler failed", exc_info=exc)
            self._start_closing(1011, "")


async def _handling(handling: Awaitable[None] | None, exc: Exception) -> None:
    """What a handler that isn't a coroutine function returned, awaited, or else what it
    raised, raised in the task."""
    if handling is None:
        raise exc
    await handling


class ServerListenerConnection(ServerSide, ListenerConnection):
    """The server's side of one WebSocket connection of :func:`serve_listener`, given to
    its listener."""

    __slots__ = _SERVER_SLOTS

    def __init__(self, server: Server, listener_factory: ListenerFactory) -> None:
        super().__init__(server)
        self._listener_factory = listener_factory

    def _upgraded(self) -> None:
        self._open_listener()

    async def _run_handler(self) -> None:
        """Nothing to run: the listener was told as the connection upgraded."""


class Server:
    """A running WebSocket server; see :func:`serve`.

    Closing it stops accepting connections, answers handshakes in progress with 503, and
    closes open connections with 1001 (going away).
    """

    def __init__(
        self,
        handler: Handler,
        settings: ServerSettings,
        *,
        write_limit: int = defaults.WRITE_LIMIT,
    ) -> None:
        self.handler = handler
        self.settings = settings
        self.write_limit = write_limit
        self.closing = False
        # A dict as an ordered set: at 5,000 connections a set's table takes 100 bytes
        # per connection, a dict's 30.
        self._connections: dict[ServerSide, None] = {}
        self._server: asyncio.Server | None = None
        self._close_task: asyncio.Task[None] | None = None

    @property
    def sockets(self) -> Sequence[socket.socket]:
        """The listening sockets."""
        assert self._server is not None
        return self._server.sockets

    @property
    def connections(self) -> set[Any]:
        """The connections currently open or opening: :class:`ServerConnection` objects,
        or :class:`ServerListenerConnection` objects for :func:`serve_listener`."""
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
        for connection in connections:
            if connection.state is State.CONNECTING:
                connection._refuse_while_closing()
                if close_connections and connection._handler_task is not None:
                    # A hook is running: it gets no longer than the connections (its
                    # task answers 503), even without open_timeout to bound it.
                    connection._handler_task.cancel()
        if close_connections:
            await asyncio.gather(
                *(c.close(1001) for c in connections if c.state is State.OPEN),
                return_exceptions=True,
            )
        # Connections still opening have no task yet, or never get one: wait for each to
        # end, then for the handlers, which may outlive their connection.
        if connections:
            await asyncio.wait([c._connection_lost for c in connections])
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
        for "no header"); ``None`` accepts every origin. Others get 403.
    :param subprotocols: supported subprotocols, the client's preference deciding.
    :param select_subprotocol: ``(connection, offered) -> str | None`` replaces that choice;
        it must return one of ``offered`` or ``None``.
    :param compression: ``"deflate"`` (default) accepts permessage-deflate offers
        (RFC 7692); ``None`` declines compression.
    :param compression_threshold: messages shorter than this many bytes are sent
        uncompressed; ``send(..., compress=...)`` decides for one message.
    :param server_no_context_takeover: compress each message afresh rather than with the
        context of the previous ones (RFC 7692 §7.1.1.1): a little less compression, and
        :func:`~wsio.broadcast` then compresses a message once for all connections.
    :param extensions: more extensions to accept, after compression.
    :param process_request: ``(connection, request) -> Response | None``, plain or
        coroutine, called before the handshake is checked: a response returned is sent
        instead of upgrading (health checks, pages, 401 challenges; see :func:`basic_auth`).
    :param process_response: ``(connection, request, response) -> Response | None``, plain
        or coroutine, called with the 101 before it is sent; edit it or return another.
    :param server_header: value of the ``Server`` header; ``None`` leaves it out.
    :param max_size: largest incoming message in bytes; ``None`` disables the limit.
    :param open_timeout: seconds from the TCP accept to the end of the HTTP upgrade,
        TLS included (enforced within 1/16 of it, and within a second).
    :param broadcast_limit: unsent bytes above which a connection is a slow consumer for
        :func:`~wsio.broadcast`; ``None``: never.
    :param slow_consumer: what a broadcast does with a slow consumer: ``"skip"`` the
        message for it, or ``"close"`` it with 1013.
    :param reuse_port: let several processes (or servers) listen on one port, the kernel
        spreading connections between them (Linux ``SO_REUSEPORT``). It is passed to
        :meth:`asyncio.loop.create_server`, as is any keyword argument ``serve`` doesn't
        take itself (``backlog``, ``sock``...).
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
        select_subprotocol: SelectSubprotocol | None = None,
        compression: str | None = defaults.COMPRESSION,
        compression_threshold: int = defaults.COMPRESSION_THRESHOLD,
        server_no_context_takeover: bool = False,
        extensions: Sequence[ServerExtensionFactory] = (),
        process_request: ProcessRequest | None = None,
        process_response: ProcessResponse | None = None,
        server_header: str | None = defaults.SERVER_HEADER,
        open_timeout: float | None = defaults.OPEN_TIMEOUT,
        ping_interval: float | None = defaults.PING_INTERVAL,
        ping_timeout: float | None = defaults.PING_TIMEOUT,
        close_timeout: float | None = defaults.CLOSE_TIMEOUT,
        max_size: int | None = defaults.MAX_SIZE,
        max_queue: int = defaults.MAX_QUEUE,
        write_limit: int = defaults.WRITE_LIMIT,
        broadcast_limit: int | None = defaults.BROADCAST_LIMIT,
        slow_consumer: str = defaults.SLOW_CONSUMER,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
        **create_server_kwargs: Any,
    ) -> None:
        # The keyword arguments that both layers' serve take, as given here.
        arguments = locals()
        settings = ServerSettings(
            {name: arguments[name] for name in ServerOptions.__optional_keys__}
        )
        check_limits(max_queue, write_limit)
        self.server = Server(handler, settings, write_limit=write_limit)
        self._host = host
        # None with sock=..., as asyncio's create_server wants it.
        self._port: Any = port
        self._create_server_kwargs = create_server_kwargs

    async def _open(self) -> Server:
        server = self.server
        settings = server.settings
        kwargs = dict(self._create_server_kwargs)
        if settings.ssl is not None:
            # The loop's own TLS, set up as it accepts: a protocol that started TLS itself
            # (start_tls) could read the ClientHello first on uvloop, which starts reading
            # once connection_made returns, and answer it as a bad HTTP request.
            kwargs["ssl"] = settings.ssl
            kwargs.setdefault("ssl_handshake_timeout", settings.open_timeout)
        server._server = await self._create_server(self._connection_factory(server), kwargs)
        return server

    def _connection_factory(self, server: Server) -> Callable[[], ServerSide]:
        """What makes the connection of each TCP connection accepted."""
        return functools.partial(ServerConnection, server)

    async def _create_server(
        self, factory: Callable[[], ServerSide], kwargs: dict[str, Any]
    ) -> asyncio.Server:
        """Listen where the arguments say, TLS included if ``kwargs`` ask."""
        loop = asyncio.get_running_loop()
        return await loop.create_server(factory, self._host, self._port, **kwargs)


class unix_serve(serve):
    """Start a WebSocket server on the Unix socket at ``path``: as :class:`serve`, whose
    keyword arguments it takes (``ssl`` included: TLS works over a Unix socket too).
    Keyword arguments it doesn't take go to :meth:`asyncio.loop.create_unix_server`."""

    def __init__(self, handler: Handler, path: str | None = None, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._path = path

    async def _create_server(
        self, factory: Callable[[], ServerSide], kwargs: dict[str, Any]
    ) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        return await loop.create_unix_server(factory, self._path, **kwargs)


async def _no_handler(connection: ServerConnection) -> None:
    """The handler of a listener server: never called, its listeners get the messages."""


class _ListenerServing(serve):
    """What :class:`serve_listener` and :class:`unix_serve_listener` add to serving."""

    _listener_factory: ListenerFactory

    def _connection_factory(self, server: Server) -> Callable[[], ServerSide]:
        return functools.partial(ServerListenerConnection, server, self._listener_factory)


class serve_listener(_ListenerServing):
    """Start a WebSocket server whose connections call a :class:`~wsio.Listener` for each
    message, with no task per connection: ``async with serve_listener(factory, host,
    port) as server:``, or ``await serve_listener(...)`` for the :class:`Server`.

    ``factory`` makes the listener of each connection once its opening handshake
    succeeded (a :class:`~wsio.Listener` subclass will do). Every keyword argument of
    :func:`serve` applies the same way (hooks, limits, timeouts, TLS...); ``max_queue``
    has no use: messages are delivered as they are parsed.
    """

    def __init__(
        self,
        factory: ListenerFactory,
        host: str | Sequence[str] | None = None,
        port: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(_no_handler, host, port, **kwargs)
        self._listener_factory = factory


class unix_serve_listener(_ListenerServing, unix_serve):
    """:class:`serve_listener` on the Unix socket at ``path``, as :class:`unix_serve`."""

    def __init__(self, factory: ListenerFactory, path: str | None = None, **kwargs: Any) -> None:
        super().__init__(_no_handler, path, **kwargs)
        self._listener_factory = factory
