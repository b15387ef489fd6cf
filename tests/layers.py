"""wsio's two I/O layers behind one asynchronous interface, for the suites that run on both.

A test that takes the ``layer`` fixture (tests/conftest.py) and is marked ``both_layers``
runs twice, ids ``[asyncio-...]`` and ``[threads-...]``, with a :class:`Layer` in hand:

- :meth:`Layer.echo_server`: a server echoing every message, written natively for the
  layer (``async for`` / ``for``), yielding its port;
- :meth:`Layer.echo_client`: a client echoing every message until the connection ends;
- :meth:`Layer.serve` and :meth:`Layer.connect`: a server running an ``async`` handler,
  and a client, whose connection offers the asyncio connection's coroutines (``recv``,
  ``send``, ``ping``, ``close``, ``wait_closed``, ``async for``...).

On the asyncio layer these are wsio's own objects. On the threads layer, every blocking
call runs in a thread of its own (:func:`in_thread`) and the connection is wrapped in a
:class:`ThreadsConnection`; a threads server's handler thread runs the ``async`` handler on
the test's event loop and waits for it, so that the server sees it return or raise as the
handler, and closes the connection accordingly (1000, or 1011).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import wsio
import wsio.sync
from wsio.asyncio.connection import Opener

AsyncHandler = Callable[[Any], Awaitable[None]]

#: Seconds a threads server gets to shut down: its connections close and their threads end.
SHUTDOWN_TIMEOUT = 15.0
#: Seconds :meth:`ThreadsConnection.wait_closed` waits for the TCP connection to end.
WAIT_CLOSED_TIMEOUT = 15.0
#: The marker of the threads runs, which ``make test`` leaves out of its pure-Python pass.
THREADS_MARK = "threads_layer"


async def in_thread(function: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking call in a daemon thread of its own and await its outcome.

    Not the event loop's executor: a call that a test abandons (a ``recv()`` whose task is
    cancelled keeps waiting until the connection ends) mustn't take one of its few workers
    nor hold up the loop's shutdown.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(outcome: Any, failed: bool) -> None:
        if future.done():
            return  # the awaiting task was cancelled
        if failed:
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    def run() -> None:
        try:
            outcome, failed = function(*args, **kwargs), False
        except BaseException as exc:
            outcome, failed = exc, True
        # The loop may be closed already: nobody waits for the outcome any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, outcome, failed)

    threading.Thread(target=run, name=f"in_thread {function.__name__}", daemon=True).start()
    return await future


class ThreadsConnection:
    """A :class:`wsio.sync.Connection` with the asyncio connection's coroutines; its other
    attributes (``state``, ``close_code``, ``protocol``...) are the connection's own."""

    def __init__(self, connection: wsio.sync.Connection) -> None:
        self.sync = connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sync, name)

    async def recv(self, timeout: float | None = None, decode: bool | None = None) -> Any:
        return await in_thread(self.sync.recv, timeout, decode)

    async def send(self, message: Any, *, compress: bool | None = None) -> None:
        await in_thread(self.sync.send, message, compress=compress)

    async def ping(self, data: Any = None) -> float:
        latency: float = await in_thread(self.sync.ping, data)
        return latency

    async def pong(self, data: Any = b"") -> None:
        await in_thread(self.sync.pong, data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await in_thread(self.sync.close, code, reason)

    async def wait_closed(self) -> None:
        """Wait until the connection is closed, without closing it: until its reader
        thread ended it (the TCP connection is closed, the end logged), as the asyncio
        layer's ``wait_closed()`` waits for ``connection_lost``. The state turns CLOSED
        a little earlier, as the core sees the end of the stream."""
        closed = self.sync._closed
        async with asyncio.timeout(WAIT_CLOSED_TIMEOUT):
            while not closed.is_set():
                await asyncio.sleep(0.01)

    async def __aiter__(self) -> AsyncIterator[Any]:
        while True:
            try:
                yield await self.recv()
            except wsio.ConnectionClosedOK:
                return

    async def __aenter__(self) -> ThreadsConnection:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        # The threads connection's own exit: close with 1000, or 1011 after an exception.
        await in_thread(self.sync.__exit__, *exc_info)


class Served:
    """A running server: its port, and a shutdown started without waiting for its end
    (a handshake can then be finished while the server is closing)."""

    def __init__(
        self,
        port: int,
        close: Callable[[], None],
        wait_closed: Callable[[], Awaitable[None]],
    ) -> None:
        self.port = port
        self.close = close
        self.wait_closed = wait_closed


class ThreadsOpener(Opener[ThreadsConnection]):
    """What :meth:`ThreadsLayer.connect` returns: awaitable, or an async context manager
    that closes the connection on exit, as :func:`wsio.connect`'s answer is."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self._url = url
        self._options = options

    async def _open(self) -> ThreadsConnection:
        return ThreadsConnection(await in_thread(wsio.sync.connect, self._url, **self._options))


class Layer(abc.ABC):
    """One I/O layer of wsio, as the shared suites drive it; see the module's docstring."""

    name: str

    def __repr__(self) -> str:
        return f"<{self.name} layer>"

    @abc.abstractmethod
    def serve(
        self, handler: AsyncHandler, **options: Any
    ) -> contextlib.AbstractAsyncContextManager[Served]:
        """Serve ``handler`` on a free loopback port with ``options`` while in the block."""

    @abc.abstractmethod
    def connect(self, url: str, **options: Any) -> Opener[Any]:
        """Connect to ``url`` with ``options``: await it, or use it as an async context
        manager, like :func:`wsio.connect`."""

    @abc.abstractmethod
    def echo_server(self, **options: Any) -> contextlib.AbstractAsyncContextManager[int]:
        """Serve an echo handler natively written for the layer; yield the port."""

    @abc.abstractmethod
    async def echo_client(self, url: str, **options: Any) -> None:
        """Connect to ``url`` and echo every message until the connection ends, natively
        written for the layer. A connection that ends, even failed (while ``connect``
        still returned, say), is a normal outcome: the peer judges the wire."""


class AsyncioLayer(Layer):
    name = "asyncio"

    @contextlib.asynccontextmanager
    async def serve(self, handler: AsyncHandler, **options: Any) -> AsyncIterator[Served]:
        async with wsio.serve(handler, "127.0.0.1", 0, **options) as server:
            port: int = server.sockets[0].getsockname()[1]
            yield Served(port, server.close, server.wait_closed)

    def connect(self, url: str, **options: Any) -> Opener[Any]:
        return wsio.connect(url, **options)

    @contextlib.asynccontextmanager
    async def echo_server(self, **options: Any) -> AsyncIterator[int]:
        async def echo(ws: wsio.ServerConnection) -> None:
            with contextlib.suppress(wsio.ConnectionClosed):
                async for message in ws:
                    await ws.send(message)

        async with self.serve(echo, **options) as served:
            yield served.port

    async def echo_client(self, url: str, **options: Any) -> None:
        with contextlib.suppress(wsio.ConnectionClosed):
            async with wsio.connect(url, **options) as ws:
                async for message in ws:
                    await ws.send(message)


class ThreadsLayer(Layer):
    name = "threads"

    @contextlib.asynccontextmanager
    async def serve(self, handler: AsyncHandler, **options: Any) -> AsyncIterator[Served]:
        loop = asyncio.get_running_loop()

        def run(ws: wsio.sync.ServerConnection) -> None:
            # Raises what the handler raised: the server answers as it would to its own.
            asyncio.run_coroutine_threadsafe(handler(ThreadsConnection(ws)), loop).result()

        async with self._serving(run, **options) as served:
            yield served

    @contextlib.asynccontextmanager
    async def _serving(
        self, handler: Callable[[wsio.sync.ServerConnection], None], **options: Any
    ) -> AsyncIterator[Served]:
        """Run ``wsio.sync.serve(handler, ...)``'s ``serve_forever()`` in a thread; shut
        the server down on exit, within :data:`SHUTDOWN_TIMEOUT`."""
        server = wsio.sync.serve(handler, "127.0.0.1", 0, **options)
        accepting = threading.Thread(target=server.serve_forever, daemon=True)
        accepting.start()
        shutdown: list[asyncio.Task[Any]] = []

        def close() -> None:
            if not shutdown:
                shutdown.append(asyncio.ensure_future(in_thread(server.shutdown)))

        async def wait_closed() -> None:
            close()
            try:
                async with asyncio.timeout(SHUTDOWN_TIMEOUT):
                    await shutdown[0]
                    await in_thread(accepting.join)
            except TimeoutError:
                raise AssertionError(
                    f"the threads server did not shut down within {SHUTDOWN_TIMEOUT} s"
                ) from None

        try:
            yield Served(server.socket.getsockname()[1], close, wait_closed)
        finally:
            await wait_closed()

    def connect(self, url: str, **options: Any) -> Opener[Any]:
        return ThreadsOpener(url, options)

    @contextlib.asynccontextmanager
    async def echo_server(self, **options: Any) -> AsyncIterator[int]:
        def echo(ws: wsio.sync.ServerConnection) -> None:
            with contextlib.suppress(wsio.ConnectionClosed):
                for message in ws:
                    ws.send(message)

        async with self._serving(echo, **options) as served:
            yield served.port

    async def echo_client(self, url: str, **options: Any) -> None:
        def run() -> None:
            with (
                contextlib.suppress(wsio.ConnectionClosed),
                wsio.sync.connect(url, **options) as ws,
            ):
                for message in ws:
                    ws.send(message)

        await in_thread(run)


LAYERS: dict[str, Layer] = {layer.name: layer for layer in (AsyncioLayer(), ThreadsLayer())}

#: The params of the ``layer`` fixture in the suites marked ``both_layers``.
PARAMS = [
    pytest.param("asyncio", id="asyncio"),
    pytest.param("threads", id="threads", marks=getattr(pytest.mark, THREADS_MARK)),
]
