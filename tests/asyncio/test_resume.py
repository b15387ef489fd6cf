"""When recv() wakes up, and what happens around that wake-up.

A message read in the transport's callback wakes the task waiting in recv() through an
asyncio.Future: the task runs at the next turn of the loop, whether the read came in a
callback or within a task. These tests pin that down, and that cancellation, timeouts and
errors around the wake-up behave: no message is lost, and the loop sees what the handler
raises.
"""

from __future__ import annotations

import asyncio
import logging
import os
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


async def test_handler_raising_after_a_message_closes_with_1011(
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


async def test_message_read_in_a_callback_resumes_at_the_next_turn() -> None:
    ws = await open_connection()
    receiver = asyncio.create_task(ws.recv())
    await asyncio.sleep(0)
    done_after_read: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def read() -> None:
        ws.data_received(masked_text("soon"))
        done_after_read.set_result(receiver.done())

    asyncio.get_running_loop().call_soon(read)
    async with asyncio.timeout(T):
        assert not await done_after_read
        assert await receiver == "soon"


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


async def test_receiver_timing_out_then_woken_by_a_callback() -> None:
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
def test_system_exit_from_a_handler_stops_the_loop(loop_name: str) -> None:
    # The loop stops with it, on asyncio's loop as on uvloop. In a process of its own: the
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
