"""Echo clients, one per library, driven by the orchestrator over stdin/stdout.

``python -m benchmarks.clients LIB PORT [--peer ws|echo] [--loop L]`` connects to
``ws://127.0.0.1:PORT/``, prints ``{"ready": true}``, then answers one JSON command per line
of stdin with one JSON line on stdout:

- ``throughput`` (size, conns, duration, warmup, repeats, text): every connection sends a
  message, waits for its echo, checks it, and starts over; messages per second per run,
  the CPU time per message of the measured process (``--measure-pid``, the server;
  by default the client itself) and the messages of each run;
- ``latency`` (same): one connection; median and 99th percentile of the round trips (µs);
- ``handshakes`` (duration, warmup, repeats): open and close one connection after the
  other; handshakes per second, CPU time per handshake and the handshakes of each run;
- ``idle`` (count): open ``count`` more connections and keep them idle;
- ``quit``.

``raw`` is the load generator for the server rows: asyncio sockets with pre-built frames.
It writes one of 8 frames masked with random keys, built once per run (the server can't
tell: it unmasks whatever key comes), and compares the whole answer, header included, with
the exact bytes a server must send back: the unmasked frame from a WebSocket server, the
frame itself from the plain TCP echo (``--peer echo``). It answers pings (the keepalive of
wsio and websockets) and checks the status and ``Sec-WebSocket-Accept`` of the handshake
and the close frame of the closing handshake. Nothing less would still be checking.

``wsio-sync`` and ``websockets-sync`` are the clients over threads (``wsio.sync.connect``,
``websockets.sync.client.connect``): each connection opens, runs its round trips and
closes in a thread of its own, as an application over threads does, while the event loop
of the process only hands out the commands and waits.
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import base64
import concurrent.futures
import functools
import os
import statistics
import time
from collections.abc import Callable
from typing import Any, cast

from .common import (
    HOST,
    LOOPS,
    MAX_SIZE,
    answer,
    build_frame,
    check_response,
    make_payload,
    prepare_child,
    serve_commands,
)
from .common import run_loop as _run_loop

__all__ = ["CLIENTS", "main"]

_OPEN_TIMEOUT = 30.0
_CLOSE_TIMEOUT = 10.0
_IDLE_CONCURRENCY = 64
_N_FRAMES = 8  # distinct masks cycled by the raw client

_CLOSE_1000 = b"\x03\xe8"


class EchoError(Exception):
    """A reply that isn't the echo of what was sent."""


def cpu_ns(pid: int) -> int:
    """CPU time used so far by every thread of process ``pid``, in ns."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as schedstat:
                total += int(schedstat.read().split()[0])
        except OSError:  # the thread ended meanwhile
            continue
    return total


class Run:
    """Shared state of the connections of one timed run."""

    __slots__ = ("count", "cpu", "elapsed", "samples", "stop")

    def __init__(self, latency: bool) -> None:
        self.count = 0
        self.elapsed = 0.0
        #: CPU time of the measured process (server or client) during the run, in ns.
        self.cpu = 0
        self.stop = False
        #: Round-trip times in ns, for the latency row.
        self.samples: list[int] | None = [] if latency else None


class Message:
    """A message in every form the drivers need."""

    def __init__(self, size: int, text: bool) -> None:
        self.text = text
        self.data = make_payload(size, text)
        self.value: str | bytes = self.data.decode() if text else self.data
        self.opcode = 1 if text else 2
        keys = [os.urandom(4) for _ in range(_N_FRAMES)]
        #: Masked frames for the raw client, and the answer a WebSocket server must send.
        self.frames = [build_frame(self.opcode, self.data, key) for key in keys]
        self.reply = build_frame(self.opcode, self.data)


class Driver(abc.ABC):
    """One client library."""

    def __init__(self, port: int, echo_peer: bool, aiofastnet: bool) -> None:
        self.port = port
        self.uri = f"ws://{HOST}:{port}/"
        self.echo_peer = echo_peer
        self.aiofastnet = aiofastnet

    async def setup(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Called once before any connection."""

    @abc.abstractmethod
    async def connect(self) -> Any:
        """Open a connection (TCP and opening handshake)."""

    @abc.abstractmethod
    async def close(self, conn: Any) -> None:
        """Perform the closing handshake and wait for the end of the TCP connection."""

    @abc.abstractmethod
    async def echo_loop(self, conn: Any, message: Message, run: Run) -> None:
        """Round trips of ``message`` on ``conn`` until ``run.stop``."""


def _check_echo(run: Run, value: str | bytes, reply: Any, start: int) -> None:
    """Check the reply to ``value`` sent at ``start`` (``perf_counter_ns``), and count it."""
    if run.samples is not None:
        run.samples.append(time.perf_counter_ns() - start)
    if reply != value:
        raise EchoError(f"reply of {len(reply)} bytes isn't the echo")
    # The threads of a run (_ThreadDriver) share the count: under the GIL, CPython (3.11
    # and later) switches threads at calls and backward jumps only, never within this.
    run.count += 1


class _AsyncioDriver(Driver):
    """Libraries with ``send()`` / ``recv()`` coroutines: the loop is the same for all."""

    async def echo_loop(self, conn: Any, message: Message, run: Run) -> None:
        value = message.value
        send, recv = conn.send, conn.recv
        clock = time.perf_counter_ns
        while not run.stop:
            start = clock()
            await send(value)
            _check_echo(run, value, await recv(), start)


class WsioDriver(_AsyncioDriver):
    async def connect(self) -> Any:
        import wsio

        return await wsio.connect(self.uri, compression=None, max_size=MAX_SIZE, proxy=None)

    async def close(self, conn: Any) -> None:
        await conn.close()


class WebsocketsDriver(_AsyncioDriver):
    async def connect(self) -> Any:
        from websockets.asyncio.client import connect

        return await connect(self.uri, compression=None, max_size=MAX_SIZE, proxy=None)

    async def close(self, conn: Any) -> None:
        await conn.close()


class _ThreadDriver(Driver):
    """Libraries with blocking ``send()`` / ``recv()``: every call runs in a thread of a
    pool, so the connections of a run go each in a thread of its own, at once."""

    def __init__(self, port: int, echo_peer: bool, aiofastnet: bool) -> None:
        super().__init__(port, echo_peer, aiofastnet)
        # As many threads as connections opened at once by the idle command, which is
        # more than a run has connections.
        self.pool = concurrent.futures.ThreadPoolExecutor(_IDLE_CONCURRENCY)

    @abc.abstractmethod
    def connect_blocking(self) -> Any:
        """Open a connection, blocking the calling thread."""

    async def _in_thread(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, function, *args)

    async def connect(self) -> Any:
        return await self._in_thread(self.connect_blocking)

    async def close(self, conn: Any) -> None:
        await self._in_thread(conn.close)

    async def echo_loop(self, conn: Any, message: Message, run: Run) -> None:
        await self._in_thread(self._echo_loop, conn, message, run)

    @staticmethod
    def _echo_loop(conn: Any, message: Message, run: Run) -> None:
        value = message.value
        send, recv = conn.send, conn.recv
        clock = time.perf_counter_ns
        while not run.stop:
            start = clock()
            send(value)
            _check_echo(run, value, recv(), start)


class WsioSyncDriver(_ThreadDriver):
    def connect_blocking(self) -> Any:
        import wsio.sync

        return wsio.sync.connect(self.uri, compression=None, max_size=MAX_SIZE, proxy=None)


class WebsocketsSyncDriver(_ThreadDriver):
    def connect_blocking(self) -> Any:
        from websockets.sync.client import connect

        return connect(self.uri, compression=None, max_size=MAX_SIZE, proxy=None)


class AiohttpDriver(Driver):
    async def setup(self) -> None:
        import aiohttp

        # No pool limit: the idle rows hold thousands of connections.
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def connect(self) -> Any:
        return await self.session.ws_connect(self.uri, max_msg_size=MAX_SIZE)

    async def close(self, conn: Any) -> None:
        await conn.close()

    async def echo_loop(self, conn: Any, message: Message, run: Run) -> None:
        from aiohttp import WSMsgType

        text = message.text
        value = message.value
        expected_type = WSMsgType.TEXT if text else WSMsgType.BINARY
        send = conn.send_str if text else conn.send_bytes
        receive = conn.receive
        samples = run.samples
        clock = time.perf_counter_ns
        while not run.stop:
            start = clock()
            await send(value)
            msg = await receive()
            if samples is not None:
                samples.append(clock() - start)
            if msg.type is not expected_type or msg.data != value:
                raise EchoError(f"reply isn't the echo: {msg.type!r}")
            run.count += 1


class _Job:
    """A run on one callback-driven connection (picows, wsio's listener, raw).

    ``done`` is an :class:`asyncio.Future`, or a wsio ``Waiter`` for the task client resumed
    inside the read callback; a Waiter has no exception: ``failure`` holds it.
    """

    __slots__ = ("done", "failure", "message", "run", "sent_at")

    def __init__(self, message: Message, run: Run, done: Any) -> None:
        self.message = message
        self.run = run
        self.done = done
        self.failure: BaseException | None = None
        self.sent_at = 0


def _finish(job: _Job, exc: BaseException | None = None) -> None:
    done = job.done
    if done.done():
        return
    if not isinstance(done, asyncio.Future):
        job.failure = exc
        done.resume()
    elif exc is None:
        done.set_result(None)
    else:
        done.set_exception(exc)


def _echoed(job: _Job, ok: bool) -> bool:
    """Count the echo that a callback-driven connection received for ``job``; return
    whether to send the next message, or ``False`` once the run stopped or failed."""
    if not ok:
        _finish(job, EchoError("reply isn't the echo"))
        return False
    run = job.run
    if run.samples is not None:
        run.samples.append(time.perf_counter_ns() - job.sent_at)
    run.count += 1
    if run.stop:
        _finish(job)
        return False
    if run.samples is not None:
        job.sent_at = time.perf_counter_ns()
    return True


class PicowsDriver(Driver):
    def __init__(self, port: int, echo_peer: bool, aiofastnet: bool) -> None:
        super().__init__(port, echo_peer, aiofastnet)
        from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

        self.close_ok = WSCloseCode.OK
        data_types = (WSMsgType.TEXT, WSMsgType.BINARY)
        continuation = WSMsgType.CONTINUATION

        class Listener(WSListener):
            def __init__(self) -> None:
                self.transport: WSTransport | None = None
                self.job: _Job | None = None
                self.msg_type = WSMsgType.BINARY
                self.parts: list[bytes] = []

            def on_ws_connected(self, transport: WSTransport) -> None:
                self.transport = transport

            def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
                msg_type = frame.msg_type
                job = self.job
                if job is None:
                    if msg_type in data_types or msg_type is continuation:
                        raise EchoError("unexpected message")
                    return
                message = job.message
                if msg_type in data_types or msg_type is continuation:
                    if not frame.fin or self.parts:
                        self.parts.append(frame.get_payload_as_bytes())
                        if not frame.fin:
                            return
                        data = b"".join(self.parts)
                        self.parts.clear()
                        ok = data == message.data
                    elif message.text:
                        ok = frame.get_payload_as_utf8_text() == message.value
                    else:
                        ok = frame.get_payload_as_bytes() == message.data
                    if _echoed(job, ok):
                        transport.send(self.msg_type, message.data)
                    elif job.run.stop:
                        self.job = None

            def on_ws_disconnected(self, transport: WSTransport) -> None:
                if self.job is not None:
                    _finish(self.job, ConnectionError("disconnected during a run"))

        self.listener_class = Listener

    async def connect(self) -> Any:
        from picows import ws_connect

        _, listener = await ws_connect(
            self.listener_class,
            self.uri,
            max_frame_size=MAX_SIZE,
            use_aiofastnet=self.aiofastnet,
        )
        return listener

    async def close(self, conn: Any) -> None:
        conn.transport.send_close(self.close_ok)
        async with asyncio.timeout(_CLOSE_TIMEOUT):
            await conn.transport.wait_disconnected()

    async def echo_loop(self, conn: Any, message: Message, run: Run) -> None:
        from picows import WSMsgType

        job = _Job(message, run, asyncio.get_running_loop().create_future())
        conn.job = job
        conn.msg_type = WSMsgType.TEXT if message.text else WSMsgType.BINARY
        job.sent_at = time.perf_counter_ns()
        conn.transport.send(conn.msg_type, message.data)
        await job.done


class WsioListenerDriver(Driver):
    """``wsio.connect_listener``: the next message is sent from ``on_message``, as the
    picows driver does from ``on_ws_frame``; no task wakes per message."""

    def __init__(self, port: int, echo_peer: bool, aiofastnet: bool) -> None:
        super().__init__(port, echo_peer, aiofastnet)
        import wsio

        class Client(wsio.Listener):
            def __init__(self) -> None:
                self.job: _Job | None = None

            def on_message(self, ws: wsio.ListenerConnection, message: str | bytes) -> None:
                job = self.job
                if job is None:
                    raise EchoError("unexpected message")
                value = job.message.value
                if _echoed(job, message == value):
                    ws.send(value)
                elif job.run.stop:
                    self.job = None

            def on_close(self, ws: wsio.ListenerConnection) -> None:
                if self.job is not None:
                    _finish(self.job, ConnectionError("disconnected during a run"))

        self.listener_class = Client

    async def connect(self) -> Any:
        import wsio

        return await wsio.connect_listener(
            self.listener_class, self.uri, compression=None, max_size=MAX_SIZE, proxy=None
        )

    async def close(self, conn: Any) -> None:
        await conn.close()

    async def echo_loop(self, conn: Any, message: Message, run: Run) -> None:
        job = _Job(message, run, asyncio.get_running_loop().create_future())
        conn.listener.job = job
        job.sent_at = time.perf_counter_ns()
        conn.send(message.value)
        await job.done


class _Phase:
    HANDSHAKE = 0
    OPEN = 1
    CLOSING = 2


class RawProtocol(asyncio.BufferedProtocol):
    """A WebSocket client with no library: pre-built frames, byte-exact checks."""

    def __init__(self, echo_peer: bool) -> None:
        self.loop = asyncio.get_running_loop()
        self.echo_peer = echo_peer
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray(4096)
        self.n = 0
        self.phase = _Phase.HANDSHAKE
        self.key = base64.b64encode(os.urandom(16))
        self.waiter: asyncio.Future[None] = self.loop.create_future()
        self.lost: asyncio.Future[None] = self.loop.create_future()
        self.job: _Job | None = None
        # What the peer must send next, byte for byte; empty when nothing is expected.
        self.expected = b""
        self.index = 0
        self.close_frame = build_frame(8, _CLOSE_1000, os.urandom(4))

    # asyncio callbacks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's aren't subclasses
        self.transport.write(
            b"GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (HOST.encode(), transport.get_extra_info("peername")[1], self.key)
        )

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.n == len(self.buf):
            self._grow(2 * len(self.buf))
        return memoryview(self.buf)[self.n :]

    def buffer_updated(self, nbytes: int) -> None:
        n = self.n = self.n + nbytes
        expected = self.expected
        # Fast path: exactly the expected echo, in one piece.
        if n == len(expected) and self.buf.startswith(expected):
            self.n = 0
            self._echoed()
        elif n < len(expected) and self.buf[0] != 0x89:
            return  # more to come
        else:
            self._slow_path()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        error = ConnectionError(f"connection lost: {exc}")
        if not self.waiter.done():
            self.waiter.set_exception(error)
            self.waiter.exception()
        if self.job is not None:
            _finish(self.job, error)

    # Inner workings ------------------------------------------------------------------------

    def _grow(self, size: int) -> None:
        # A new buffer: the transport may still hold a view of the old one.
        new = bytearray(size)
        new[: self.n] = self.buf[: self.n]
        self.buf = new

    def _consume(self, size: int) -> None:
        rest = self.n - size
        if rest:
            self.buf[:rest] = self.buf[size : self.n]
        self.n = rest

    def _fail(self, exc: Exception) -> None:
        if not self.waiter.done():
            self.waiter.set_exception(exc)
            self.waiter.exception()
        if self.job is not None:
            _finish(self.job, exc)
            self.job = None
        if self.transport is not None:
            self.transport.abort()

    def _slow_path(self) -> None:
        if self.phase == _Phase.HANDSHAKE:
            end = self.buf.find(b"\r\n\r\n", 0, self.n)
            if end < 0:
                if self.n > 16384:
                    self._fail(EchoError("handshake response too long"))
                return
            head = bytes(self.buf[:end])
            self._consume(end + 4)
            error = self._check_response(head)
            if error:
                self._fail(EchoError(error))
                return
            self.phase = _Phase.OPEN
            self.waiter.set_result(None)
        while self.n:
            first = self.buf[0]
            if not self.echo_peer and first in (0x88, 0x89, 0x8A):
                # A control frame from a WebSocket server: unmasked, at most 125 bytes.
                if self.n < 2:
                    return
                second = self.buf[1]
                if second > 125:
                    self._fail(EchoError(f"bad control frame header {bytes(self.buf[:2])!r}"))
                    return
                size = 2 + second
                if self.n < size:
                    return
                payload = bytes(self.buf[2:size])
                self._consume(size)
                if first == 0x89:
                    assert self.transport is not None
                    self.transport.write(build_frame(0xA, payload, os.urandom(4)))
                elif first == 0x88:
                    self._close_received(payload)
                continue
            expected = self.expected
            if not expected:
                self._fail(EchoError(f"unexpected data: {bytes(self.buf[:16])!r}"))
                return
            if self.n < len(expected):
                return
            if not self.buf.startswith(expected):
                self._fail(EchoError(f"reply isn't the echo: {bytes(self.buf[:16])!r}"))
                return
            self._consume(len(expected))
            self._echoed()

    def _check_response(self, head: bytes) -> str:
        return check_response(head, self.key)

    def _close_received(self, payload: bytes) -> None:
        if self.phase != _Phase.CLOSING:
            self._fail(EchoError(f"unexpected close frame {payload!r}"))
        elif payload[:2] not in (b"", _CLOSE_1000):
            self._fail(EchoError(f"close frame with code {payload[:2]!r}"))
        elif not self.waiter.done():
            self.waiter.set_result(None)

    def _echoed(self) -> None:
        if self.phase == _Phase.CLOSING:
            # The plain TCP echo sent our close frame back.
            self.expected = b""
            if not self.waiter.done():
                self.waiter.set_result(None)
            return
        job = self.job
        if job is None:
            self._fail(EchoError("unexpected echo"))
            return
        run = job.run
        samples = run.samples
        if samples is not None:
            samples.append(time.perf_counter_ns() - job.sent_at)
        run.count += 1
        if run.stop:
            self.job = None
            self.expected = b""
            _finish(job)
            return
        self._send_next(job)

    def _send_next(self, job: _Job) -> None:
        index = self.index = (self.index + 1) % _N_FRAMES
        frame = job.message.frames[index]
        if self.echo_peer:
            self.expected = frame
        if job.run.samples is not None:
            job.sent_at = time.perf_counter_ns()
        assert self.transport is not None
        self.transport.write(frame)

    # Driver API ----------------------------------------------------------------------------

    def start(self, job: _Job) -> None:
        message = job.message
        if len(self.buf) < len(message.reply) + 4096:
            self._grow(len(message.reply) + 4096)
        self.job = job
        if not self.echo_peer:
            self.expected = message.reply
        self._send_next(job)

    async def close(self) -> None:
        assert self.transport is not None
        self.phase = _Phase.CLOSING
        self.waiter = self.loop.create_future()
        self.expected = self.close_frame if self.echo_peer else b""
        self.transport.write(self.close_frame)
        async with asyncio.timeout(_CLOSE_TIMEOUT):
            await self.waiter
            if self.echo_peer:
                self.transport.close()
            await self.lost  # a WebSocket server closes the TCP connection first
        self.transport.close()


class RawDriver(Driver):
    protocol_class = RawProtocol

    async def connect(self) -> Any:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: self.protocol_class(self.echo_peer), HOST, self.port
        )
        await protocol.waiter
        return protocol

    async def close(self, conn: Any) -> None:
        await conn.close()

    async def echo_loop(self, conn: Any, message: Message, run: Run) -> None:
        job = _Job(message, run, asyncio.get_running_loop().create_future())
        conn.start(job)
        await job.done


class TaskRawProtocol(RawProtocol):
    """The raw client, except that each reply wakes the task that sent the message."""

    def _echoed(self) -> None:
        job = self.job
        if self.phase == _Phase.CLOSING or job is None:
            super()._echoed()
            return
        self.job = None
        self.expected = b""
        job.run.count += 1
        _finish(job)


class TaskRawDriver(RawDriver):
    """The raw client driven the way ``await ws.send(m); await ws.recv()`` drives a client:
    a task awaits each reply before sending the next message. It is the ceiling for any
    client library with that API: the price of waking a task per message, and nothing else.
    """

    protocol_class = TaskRawProtocol

    def new_waiter(self, loop: asyncio.AbstractEventLoop) -> Any:
        return loop.create_future()

    async def echo_loop(self, conn: Any, message: Message, run: Run) -> None:
        loop = asyncio.get_running_loop()
        samples = run.samples
        clock = time.perf_counter_ns
        new_waiter = self.new_waiter
        while not run.stop:
            # Timed in the task, as the library clients are: the wake-up is included.
            start = clock()
            job = _Job(message, run, new_waiter(loop))
            conn.start(job)
            await job.done
            if job.failure is not None:
                raise job.failure
            if samples is not None:
                samples.append(clock() - start)


class TaskResumedRawDriver(TaskRawDriver):
    """The task client, with each reply resuming the task inside the read callback, as
    wsio resumes a task awaiting ``recv()``: the same API ceiling, whatever wakes the task."""

    def __init__(self, port: int, echo_peer: bool, aiofastnet: bool) -> None:
        super().__init__(port, echo_peer, aiofastnet)
        from wsio.asyncio.waiter import Waiter

        self.waiter_class = Waiter

    def new_waiter(self, loop: asyncio.AbstractEventLoop) -> Any:
        return self.waiter_class(loop)


CLIENTS: dict[str, type[Driver]] = {
    "wsio": WsioDriver,
    "wsio-listener": WsioListenerDriver,
    "websockets": WebsocketsDriver,
    "aiohttp": AiohttpDriver,
    "picows": PicowsDriver,
    "raw": RawDriver,
    "task": TaskRawDriver,
    "task-resumed": TaskResumedRawDriver,
    "wsio-sync": WsioSyncDriver,
    "websockets-sync": WebsocketsSyncDriver,
}


# Commands ------------------------------------------------------------------------------------


class Worker:
    """Runs the orchestrator's commands with one driver."""

    def __init__(self, driver: Driver, measured_pid: int) -> None:
        self.driver = driver
        self.measured_pid = measured_pid
        self.idle_conns: list[Any] = []

    async def _connect_all(self, count: int) -> list[Any]:
        semaphore = asyncio.Semaphore(_IDLE_CONCURRENCY)

        async def one() -> Any:
            async with semaphore:
                return await self.driver.connect()

        async with asyncio.timeout(_OPEN_TIMEOUT + count / 100):
            return list(await asyncio.gather(*(one() for _ in range(count))))

    async def _close_all(self, conns: list[Any], check: bool = True) -> None:
        """Close ``conns``; unless ``check``, after a failure, ignore what goes wrong."""
        semaphore = asyncio.Semaphore(_IDLE_CONCURRENCY)

        async def one(conn: Any) -> None:
            async with semaphore:
                await self.driver.close(conn)

        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT + len(conns) / 100):
                results = await asyncio.gather(
                    *(one(conn) for conn in conns), return_exceptions=not check
                )
        except TimeoutError:
            if check:
                raise
            results = []
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result

    async def _timed(
        self, conns: list[Any], message: Message, warmup: float, duration: float, latency: bool
    ) -> Run:
        run = Run(latency)
        tasks = [asyncio.create_task(self.driver.echo_loop(conn, message, run)) for conn in conns]
        try:
            for phase in ("warmup", "run"):
                if phase == "run":
                    run.count = 0
                    if run.samples is not None:
                        run.samples.clear()
                    start = time.perf_counter()
                    cpu_start = cpu_ns(self.measured_pid)
                done, _ = await asyncio.wait(
                    tasks,
                    timeout=warmup if phase == "warmup" else duration,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if done:
                    exc = next(iter(done)).exception()
                    raise exc if exc is not None else EchoError("echo loop ended early")
            count = run.count
            elapsed = time.perf_counter() - start
            cpu = cpu_ns(self.measured_pid) - cpu_start
            run.stop = True
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await asyncio.gather(*tasks)
        finally:
            run.stop = True
            for task in tasks:
                task.cancel()
        run.count = count
        run.elapsed = elapsed
        run.cpu = cpu
        return run

    async def throughput(self, args: dict[str, Any]) -> dict[str, Any]:
        # Fresh connections for every command: with 16 connections, the timing of their
        # round trips can settle in a fast or a slow pattern that lasts as long as they do
        # (seen: 30 or 52 µs of server CPU per 64 KiB message, same server, same code).
        message = Message(args["size"], args.get("text", False))
        conns = await self._connect_all(args["conns"])
        values, cpu, counts = [], [], []
        try:
            for _ in range(args["repeats"]):
                run = await self._timed(conns, message, args["warmup"], args["duration"], False)
                values.append(run.count / run.elapsed)
                cpu.append(run.cpu / 1000 / max(run.count, 1))
                counts.append(run.count)
        except BaseException:
            await self._close_all(conns, check=False)
            raise
        await self._close_all(conns)
        return {"values": values, "cpu_us": cpu, "counts": counts}

    async def latency(self, args: dict[str, Any]) -> dict[str, Any]:
        message = Message(args["size"], args.get("text", False))
        conns = await self._connect_all(1)
        medians, p99s = [], []
        try:
            for _ in range(args["repeats"]):
                run = await self._timed(conns, message, args["warmup"], args["duration"], True)
                assert run.samples is not None
                samples = sorted(run.samples)
                if not samples:
                    raise EchoError("no round trip completed")
                medians.append(statistics.median(samples) / 1000)
                p99s.append(samples[min(len(samples) - 1, int(0.99 * len(samples)))] / 1000)
        except BaseException:
            await self._close_all(conns, check=False)
            raise
        await self._close_all(conns)
        return {"values": medians, "p99": p99s}

    async def handshakes(self, args: dict[str, Any]) -> dict[str, Any]:
        values, cpu, counts = [], [], []
        driver = self.driver
        for _ in range(args["repeats"]):
            for phase in ("warmup", "run"):
                start = now = time.perf_counter()
                cpu_start = cpu_ns(self.measured_pid)
                end = start + (args["warmup"] if phase == "warmup" else args["duration"])
                count = 0
                while now < end:
                    async with asyncio.timeout(_OPEN_TIMEOUT):
                        conn = await driver.connect()
                        await driver.close(conn)
                    count += 1
                    now = time.perf_counter()
            values.append(count / (now - start))
            cpu.append((cpu_ns(self.measured_pid) - cpu_start) / 1000 / count)
            counts.append(count)
        return {"values": values, "cpu_us": cpu, "counts": counts}

    async def idle(self, args: dict[str, Any]) -> dict[str, Any]:
        self.idle_conns.extend(await self._connect_all(args["count"]))
        return {"open": len(self.idle_conns)}


async def _serve_commands(driver: Driver, measured_pid: int) -> None:
    await driver.setup()
    worker = Worker(driver, measured_pid)
    commands: dict[str, Callable[[dict[str, Any]], Any]] = {
        "throughput": worker.throughput,
        "latency": worker.latency,
        "handshakes": worker.handshakes,
        "idle": worker.idle,
    }
    answer({"ready": True})
    await serve_commands({op: functools.partial(_call, run) for op, run in commands.items()})


async def _call(run: Callable[[dict[str, Any]], Any], **request: Any) -> dict[str, Any]:
    """A worker's command, which takes its request as one dict."""
    result: dict[str, Any] = await run(request)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.clients")
    parser.add_argument("name", choices=sorted(CLIENTS))
    parser.add_argument("port", type=int)
    parser.add_argument("--peer", choices=("ws", "echo"), default="ws")
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    parser.add_argument("--cpu", type=int, default=None)
    parser.add_argument("--aiofastnet", action="store_true")
    parser.add_argument(
        "--measure-pid", type=int, default=None, help="process whose CPU time is reported"
    )
    args = parser.parse_args(argv)
    prepare_child(args.cpu)
    driver = CLIENTS[args.name](args.port, args.peer == "echo", args.aiofastnet)
    measured_pid = args.measure_pid or os.getpid()
    _run_loop(args.loop, lambda: _serve_commands(driver, measured_pid))


if __name__ == "__main__":
    main()
