"""recv() resumes its task inside the read callback that brought the message.

A handler waiting in recv() runs as soon as its message is parsed, within the transport's
callback, instead of a turn of the loop later (wsio.asyncio.waiter). These tests pin down
when that happens and that the handler can't tell: it is still its own task, in its own
context, and cancellation, timeouts and errors behave as with an asyncio.Future.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import ssl
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import wsio
from wsio.asyncio.connection import Connection
from wsio.protocol.connection import Protocol, Side, State

EchoServerFactory = Callable[..., Awaitable[tuple[Any, int]]]

T = 5.0


def url(port: int, tls: bool = False) -> str:
    return f"{'wss' if tls else 'ws'}://127.0.0.1:{port}/"


def masked_text(text: str) -> bytes:
    """A client's text frame (RFC 6455 §5.2), masked, under 126 bytes of payload."""
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


class Trace:
    """Records, in order, when a connection starts and ends processing what it read, and
    when it writes."""

    def __init__(self, ws: Any) -> None:
        self.events: list[str] = []
        self.reading = False
        process, write = ws._process_events, ws.transport.write

        def traced_process() -> None:
            self.events.append("read")
            self.reading = True
            try:
                process()
            finally:
                self.reading = False
                self.events.append("read done")

        def traced_write(data: Any) -> None:
            self.events.append("write")
            write(data)

        # Instance attributes, looked up at each call. (TLS hands reads to a bound method
        # taken once, so the read callback itself can't be wrapped; this is where it
        # dispatches what it parsed.) Messages go through the transport's write(), where
        # they can be traced, rather than to the socket directly.
        ws._process_events = traced_process
        ws.transport.write = traced_write
        ws._socket_fd = -1


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
async def test_server_handler_answers_inside_the_read_callback(
    echo_server: EchoServerFactory,
    tls: bool,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    traces: asyncio.Queue[Trace] = asyncio.Queue()

    async def handler(ws: Any) -> None:
        traces.put_nowait(Trace(ws))
        async for message in ws:
            await ws.send(message)

    _, port = await echo_server(handler=handler, ssl=server_ssl_context if tls else None)
    async with asyncio.timeout(T):
        async with wsio.connect(url(port, tls), ssl=client_ssl_context if tls else None) as ws:
            trace = await traces.get()
            for message in ("one", "two"):
                await ws.send(message)
                assert await ws.recv() == message
    # Each echo was written before the read that brought its message returned.
    assert trace.events[:6] == ["read", "write", "read done"] * 2


async def test_client_recv_returns_inside_the_read_callback(
    echo_server: EchoServerFactory,
) -> None:
    _, port = await echo_server()
    async with asyncio.timeout(T), wsio.connect(url(port)) as ws:
        trace = Trace(ws)
        task = asyncio.current_task()
        await ws.send("ping")
        assert await ws.recv() == "ping"
        assert trace.reading
        assert asyncio.current_task() is task


async def test_resumed_handler_is_its_own_task_in_its_own_context(
    echo_server: EchoServerFactory,
) -> None:
    variable: contextvars.ContextVar[str] = contextvars.ContextVar("variable")
    seen: asyncio.Future[tuple[bool, str, bool]] = asyncio.get_running_loop().create_future()

    async def handler(ws: Any) -> None:
        task = asyncio.current_task()
        variable.set("handler's")
        trace = Trace(ws)
        await ws.recv()
        seen.set_result((trace.reading, variable.get(), asyncio.current_task() is task))
        await ws.send("seen")

    _, port = await echo_server(handler=handler)
    async with asyncio.timeout(T), wsio.connect(url(port)) as ws:
        await ws.send("go")
        assert await ws.recv() == "seen"
        assert await seen == (True, "handler's", True)
    # The handler's set() stayed in the handler's context.
    assert variable.get("unset") == "unset"


async def test_handler_raising_after_a_resume_closes_with_1011(
    echo_server: EchoServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))

    async def handler(ws: Any) -> None:
        await ws.recv()
        raise RuntimeError("handler bug")

    _, port = await echo_server(handler=handler)
    with caplog.at_level(logging.ERROR):
        async with asyncio.timeout(T):
            ws = await wsio.connect(url(port))
            await ws.send("fail now")
            with pytest.raises(wsio.ConnectionClosedError) as excinfo:
                await ws.recv()
    assert excinfo.value.code == 1011
    # The error ended the handler's task, which reported it; the transport never saw it.
    assert any(
        r.exc_info is not None and "handler bug" in str(r.exc_info[1]) for r in caplog.records
    )
    assert errors == []


class FakeTransport(asyncio.Transport):
    """Just enough of a transport for a connection fed by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def can_write_eof(self) -> bool:
        return False

    def close(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


async def open_connection() -> Connection:
    ws = Connection(Protocol(Side.SERVER, state=State.OPEN), ping_interval=None)
    ws.connection_made(FakeTransport())
    return ws


async def test_message_read_within_a_task_resumes_at_the_next_turn() -> None:
    # A task can't step inside another: data handed over by a task (as a client does with
    # what a proxy sent after its answer) wakes the receiver the usual way.
    ws = await open_connection()
    receiver = asyncio.create_task(ws.recv())
    await asyncio.sleep(0)
    ws.data_received(masked_text("later"))
    assert not receiver.done()
    async with asyncio.timeout(T):
        assert await receiver == "later"


async def test_message_read_in_a_callback_resumes_at_once() -> None:
    ws = await open_connection()
    receiver = asyncio.create_task(ws.recv())
    await asyncio.sleep(0)
    done_after_read: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def read() -> None:
        ws.data_received(masked_text("now"))
        done_after_read.set_result(receiver.done())

    asyncio.get_running_loop().call_soon(read)
    async with asyncio.timeout(T):
        assert await done_after_read
        assert await receiver == "now"


async def test_message_arriving_as_the_receiver_is_cancelled_is_kept() -> None:
    ws = await open_connection()
    receiver = asyncio.create_task(ws.recv())
    await asyncio.sleep(0)

    def cancel_then_read() -> None:
        receiver.cancel()
        ws.data_received(masked_text("kept"))

    asyncio.get_running_loop().call_soon(cancel_then_read)
    async with asyncio.timeout(T):
        with pytest.raises(asyncio.CancelledError):
            await receiver
        assert await ws.recv() == "kept"


async def test_receiver_timing_out_then_resumed_in_a_callback() -> None:
    ws = await open_connection()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await ws.recv()
    receiver = asyncio.create_task(ws.recv())
    await asyncio.sleep(0)
    asyncio.get_running_loop().call_soon(ws.data_received, masked_text("after"))
    async with asyncio.timeout(T):
        assert await receiver == "after"


def masked_close() -> bytes:
    """A client's close frame with code 1000 (RFC 6455 §5.5.1), masked."""
    mask = os.urandom(4)
    payload = b"\x03\xe8"
    return b"\x88\x82" + mask + bytes(byte ^ mask[index] for index, byte in enumerate(payload))


async def test_message_and_close_in_one_read() -> None:
    ws = await open_connection()
    receiver = asyncio.create_task(ws.recv())
    await asyncio.sleep(0)
    asyncio.get_running_loop().call_soon(
        ws.data_received, masked_text("last words") + masked_close()
    )
    async with asyncio.timeout(T):
        assert await receiver == "last words"
        with pytest.raises(wsio.ConnectionClosedOK):
            await ws.recv()


class PausingTransport(FakeTransport):
    def __init__(self) -> None:
        super().__init__()
        self.pauses = 0

    def pause_reading(self) -> None:
        self.pauses += 1

    def resume_reading(self) -> None:
        pass


async def test_a_full_read_taken_at_once_does_not_pause_reading() -> None:
    # A read that brings max_queue messages to a handler that takes them all inside the
    # read callback leaves nothing queued: no reason to pause reading.
    ws = Connection(Protocol(Side.SERVER, state=State.OPEN), ping_interval=None, max_queue=4)
    transport = PausingTransport()
    ws.connection_made(transport)
    received: list[str] = []

    async def handler() -> None:
        async for message in ws:
            received.append(str(message))

    task = asyncio.create_task(handler())
    await asyncio.sleep(0)
    burst = b"".join(masked_text(str(index)) for index in range(4))
    asyncio.get_running_loop().call_soon(ws.data_received, burst)
    async with asyncio.timeout(T):
        while len(received) < 4:
            await asyncio.sleep(0)
    assert transport.pauses == 0
    # Messages left queued still pause it: a receiver that doesn't come back for them.
    task.cancel()
    asyncio.get_running_loop().call_soon(ws.data_received, burst)
    await asyncio.sleep(0)
    assert transport.pauses == 1


SYSTEM_EXIT_FROM_A_HANDLER = """
import asyncio, sys
import wsio

async def handler(ws):
    await ws.recv()
    raise SystemExit("from the handler")

async def main():
    async with wsio.serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with wsio.connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("stop")
            await asyncio.sleep(20)  # the loop stops long before this ends
    print("the loop went on")

if sys.argv[1] == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_system_exit_from_a_resumed_handler_stops_the_loop(loop_name: str) -> None:
    # As with a task woken by a future: the loop stops with it. The handler runs inside
    # the read callback, and uvloop catches what such a callback raises; the waiter makes
    # the loop raise it from a handle of its own instead. In a process of its own: the
    # exit must end that process, not pytest's.
    result = subprocess.run(
        [sys.executable, "-c", SYSTEM_EXIT_FROM_A_HANDLER, loop_name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "from the handler" in result.stderr
    assert "the loop went on" not in result.stdout
