"""The connection API shared by both sides, over real sockets on 127.0.0.1.

Most tests run a wsio client against a wsio server; a raw peer (tests/rawpeer.py) stands in
for the other side where the test needs to see or shape the exact frames.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import wsio
from rawpeer import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Frame

EchoServerFactory = Callable[..., Awaitable[tuple[Any, int]]]
WsPairFactory = Callable[..., Awaitable[Any]]

T = 5.0  # upper bound of every wait that should succeed


def url(port: int, path: str = "/") -> str:
    return f"ws://127.0.0.1:{port}{path}"


class Recorder:
    """A handler that hands its connection to the test, then waits until released.

    ``ws = await rec.connection()`` gives the server-side connection; the test then drives
    both sides. What the handler saw when the connection ended is kept in :attr:`closed_exc`.
    """

    def __init__(self, body: Callable[[Any], Awaitable[None]] | None = None) -> None:
        self.got: asyncio.Queue[Any] = asyncio.Queue()
        self.release = asyncio.Event()
        self.body = body
        self.closed_exc: BaseException | None = None
        self.done = asyncio.Event()

    async def __call__(self, ws: Any) -> None:
        self.got.put_nowait(ws)
        try:
            if self.body is not None:
                await self.body(ws)
            else:
                await self.release.wait()
        except wsio.ConnectionClosed as exc:
            self.closed_exc = exc
            raise
        finally:
            self.done.set()

    async def connection(self) -> Any:
        async with asyncio.timeout(T):
            return await self.got.get()


async def drain_frames(peer: Any, count: int) -> list[Frame]:
    frames = []
    for _ in range(count):
        frame = await peer.recv_frame(timeout=T)
        assert frame is not None, "EOF before the expected frames"
        frames.append(frame)
    return frames


# Sending and receiving ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("hello", "hello"),
        ("", ""),
        ("café ☕ 𝄞", "café ☕ 𝄞"),
        (b"\x00\x01\xff", b"\x00\x01\xff"),
        (b"", b""),
        (bytearray(b"bytearray"), b"bytearray"),
        (memoryview(b"memoryview"), b"memoryview"),
        (memoryview(b"__sliced__")[2:-2], b"sliced"),
    ],
    ids=[
        "str",
        "empty-str",
        "unicode",
        "bytes",
        "empty-bytes",
        "bytearray",
        "memoryview",
        "memoryview-slice",
    ],
)
async def test_send_recv_types(
    echo_server: EchoServerFactory, message: Any, expected: str | bytes
) -> None:
    _, port = await echo_server()
    async with asyncio.timeout(T), wsio.connect(url(port)) as ws:
        await ws.send(message)
        received = await ws.recv()
    assert type(received) is type(expected)
    assert received == expected


async def test_text_and_binary_frames_on_the_wire(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("client")
    await pair.ws.send("text")
    await pair.ws.send(b"binary")
    await pair.ws.send(bytearray(b"ba"))
    await pair.ws.send(memoryview(b"mv"))
    frames = await drain_frames(pair.peer, 4)
    assert [(f.opcode, f.fin, f.payload) for f in frames] == [
        (OP_TEXT, True, b"text"),
        (OP_BINARY, True, b"binary"),
        (OP_BINARY, True, b"ba"),
        (OP_BINARY, True, b"mv"),
    ]
    # A client masks every frame.
    assert all(f.masked for f in frames)


async def test_recv_text_and_binary_from_raw_peer(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("client")
    await pair.peer.send_frame(OP_TEXT, "héllo")
    await pair.peer.send_frame(OP_BINARY, b"\xde\xad")
    # A fragmented text message, split in the middle of a UTF-8 sequence.
    encoded = "€uro".encode()
    await pair.peer.send_frame(OP_TEXT, encoded[:1], fin=False)
    await pair.peer.send_frame(OP_CONT, encoded[1:3], fin=False)
    await pair.peer.send_frame(OP_CONT, encoded[3:], fin=True)
    async with asyncio.timeout(T):
        assert await pair.ws.recv() == "héllo"
        assert await pair.ws.recv() == b"\xde\xad"
        assert await pair.ws.recv() == "€uro"


@pytest.mark.parametrize("role", ["client", "server"])
async def test_send_iterable_is_one_fragmented_message(ws_pair: WsPairFactory, role: str) -> None:
    pair = await ws_pair(role)
    await pair.ws.send(["frag1", "frag2", "frag3"])
    await pair.ws.send([b"a", bytearray(b"b"), memoryview(b"c")])
    frames = await drain_frames(pair.peer, 6)
    assert [(f.opcode, f.fin, f.payload) for f in frames] == [
        (OP_TEXT, False, b"frag1"),
        (OP_CONT, False, b"frag2"),
        (OP_CONT, True, b"frag3"),
        (OP_BINARY, False, b"a"),
        (OP_CONT, False, b"b"),
        (OP_CONT, True, b"c"),
    ]
    assert all(f.masked == pair.wsio_masks for f in frames)


async def test_send_single_item_iterable(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("client")
    await pair.ws.send(("only",))
    await pair.ws.send(iter([b"x"]))
    frames = await drain_frames(pair.peer, 2)
    assert [(f.opcode, f.fin, f.payload) for f in frames] == [
        (OP_TEXT, True, b"only"),
        (OP_BINARY, True, b"x"),
    ]


async def test_send_empty_iterable_sends_nothing(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("client")
    await pair.ws.send([])
    await pair.ws.send("after")
    frame = await pair.peer.recv_frame(timeout=T)
    assert frame is not None
    assert (frame.opcode, frame.payload) == (OP_TEXT, b"after")


async def test_send_async_iterable(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("client")

    async def fragments() -> AsyncIterator[str]:
        for part in ("as", "ync", ""):
            await asyncio.sleep(0.01)
            yield part

    await pair.ws.send(fragments())
    frames = await drain_frames(pair.peer, 3)
    assert [(f.opcode, f.fin, f.payload) for f in frames] == [
        (OP_TEXT, False, b"as"),
        (OP_CONT, False, b"ync"),
        (OP_CONT, True, b""),
    ]


async def test_fragmented_messages_reassembled_end_to_end(
    echo_server: EchoServerFactory,
) -> None:
    _, port = await echo_server()

    async def binary_parts() -> AsyncIterator[bytes]:
        for i in range(5):
            yield bytes([i]) * 1000

    async with asyncio.timeout(T), wsio.connect(url(port)) as ws:
        await ws.send(["a" * 100, "é" * 100, "z"])
        assert await ws.recv() == "a" * 100 + "é" * 100 + "z"
        await ws.send(binary_parts())
        assert await ws.recv() == b"".join(bytes([i]) * 1000 for i in range(5))


async def test_send_while_fragmented_send_in_progress_waits(ws_pair: WsPairFactory) -> None:
    """Frames of two messages never interleave (RFC 6455 §5.4)."""
    pair = await ws_pair("client")
    gate = asyncio.Event()

    async def slow() -> AsyncIterator[str]:
        yield "one-"
        await gate.wait()
        yield "two"

    async with asyncio.timeout(T):
        first = asyncio.create_task(pair.ws.send(slow()))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(pair.ws.send("other"))
        await asyncio.sleep(0.05)
        assert not second.done()
        gate.set()
        await first
        await second
    frames = await drain_frames(pair.peer, 3)
    assert [(f.opcode, f.fin, f.payload) for f in frames] == [
        (OP_TEXT, False, b"one-"),
        (OP_CONT, True, b"two"),
        (OP_TEXT, True, b"other"),
    ]


@pytest.mark.parametrize(
    "message",
    [42, 3.5, None, object(), int],
    ids=["int", "float", "None", "object", "type"],
)
async def test_send_unsupported_type(ws_pair: WsPairFactory, message: Any) -> None:
    pair = await ws_pair("client")
    with pytest.raises(TypeError):
        await pair.ws.send(message)
    # Nothing was sent: the connection is still usable.
    await pair.ws.send("still open")
    frame = await pair.peer.recv_frame(timeout=T)
    assert frame is not None
    assert frame.payload == b"still open"
    assert pair.ws.state is wsio.State.OPEN


async def test_send_dict_is_rejected(ws_pair: WsPairFactory) -> None:
    """As in websockets: a dict is almost always a mistake (json.dumps forgotten), so it is
    rejected rather than sent as fragments made of its keys."""
    pair = await ws_pair("client")
    with pytest.raises(TypeError):
        await pair.ws.send({"key": "value"})
    await pair.ws.send("after")
    frame = await pair.peer.recv_frame(timeout=T)
    assert frame is not None
    assert (frame.opcode, frame.fin, frame.payload) == (OP_TEXT, True, b"after")


async def test_send_iterable_of_unsupported_type(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("client")
    with pytest.raises(TypeError):
        await pair.ws.send([1, 2, 3])
    # The first fragment was rejected before anything was sent.
    await pair.ws.send("still open")
    frame = await pair.peer.recv_frame(timeout=T)
    assert frame is not None
    assert (frame.opcode, frame.payload) == (OP_TEXT, b"still open")


@pytest.mark.parametrize(
    "fragments",
    [["text", b"bytes"], [b"bytes", "text"], ["a", "b", bytearray(b"c")]],
    ids=["str-then-bytes", "bytes-then-str", "late-bytearray"],
)
async def test_send_mixed_fragment_types(ws_pair: WsPairFactory, fragments: list[Any]) -> None:
    """A message half sent can't be completed: TypeError, and the connection fails (1011),
    as in websockets."""
    pair = await ws_pair("client")
    with pytest.raises(TypeError):
        await pair.ws.send(fragments)
    frames = await pair.peer.recv_frames_until_close(timeout=T)
    assert frames, "no frame at all"
    assert frames[-1].opcode == OP_CLOSE
    assert frames[-1].close_code == 1011
    # No frame completes the broken message.
    assert not any(f.fin for f in frames[:-1])
    with pytest.raises(wsio.ConnectionClosedError):
        await pair.ws.send("more")


async def test_async_iterable_raising_fails_connection(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("client")

    async def broken() -> AsyncIterator[str]:
        yield "part1"
        yield "part2"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await pair.ws.send(broken())
    frames = await pair.peer.recv_frames_until_close(timeout=T)
    assert [(f.opcode, f.fin, f.payload) for f in frames[:-1]] == [(OP_TEXT, False, b"part1")]
    assert frames[-1].opcode == OP_CLOSE
    assert frames[-1].close_code == 1011


async def test_async_iterable_raising_before_first_frame(ws_pair: WsPairFactory) -> None:
    """Nothing was sent yet: the error propagates and the connection stays usable."""
    pair = await ws_pair("client")

    async def broken() -> AsyncIterator[str]:
        yield "never sent"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await pair.ws.send(broken())
    await pair.ws.send("fine")
    frame = await pair.peer.recv_frame(timeout=T)
    assert frame is not None
    assert (frame.opcode, frame.fin, frame.payload) == (OP_TEXT, True, b"fine")


# recv(timeout=..., decode=...) ----------------------------------------------------------------


async def test_recv_timeout_expires_then_next_message_is_received(
    ws_pair: WsPairFactory,
) -> None:
    pair = await ws_pair("client")
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(TimeoutError, match=r"no message received in 0\.05 s"):
        await pair.ws.recv(timeout=0.05)
    assert 0.04 <= loop.time() - start < T
    assert pair.ws.state is wsio.State.OPEN
    await pair.peer.send_frame(OP_TEXT, "after")
    assert await pair.ws.recv(timeout=T) == "after"


async def test_recv_timeout_returns_a_message_that_comes_in_time(
    ws_pair: WsPairFactory,
) -> None:
    pair = await ws_pair("client")
    receiving = asyncio.create_task(pair.ws.recv(timeout=T))
    await asyncio.sleep(0.01)
    await pair.peer.send_frame(OP_BINARY, b"in time")
    assert await asyncio.wait_for(receiving, T) == b"in time"


@pytest.mark.parametrize("timeout", [0, -1])
async def test_recv_timeout_zero_takes_only_a_queued_message(
    ws_pair: WsPairFactory, timeout: float
) -> None:
    pair = await ws_pair("client")
    with pytest.raises(TimeoutError, match="no message received"):
        await pair.ws.recv(timeout=timeout)
    await pair.peer.send_frame(OP_TEXT, "queued")
    # Wait for it to be queued without taking it.
    async with asyncio.timeout(T):
        while not pair.ws._messages:
            await asyncio.sleep(0.005)
    assert await pair.ws.recv(timeout=timeout) == "queued"


async def test_recv_timeout_loses_no_message(ws_pair: WsPairFactory) -> None:
    # Messages arrive every millisecond or so while the receiver times out about as often:
    # some arrive as a timeout expires. Every one must come out once, in order.
    pair = await ws_pair("client", max_queue=1000)
    count = 200

    async def send_all() -> None:
        for index in range(count):
            await pair.peer.send_frame(OP_TEXT, str(index))
            await asyncio.sleep(0.001 * (index % 3))

    sending = asyncio.create_task(send_all())
    received: list[str | bytes] = []
    timeouts = 0
    async with asyncio.timeout(T):
        while len(received) < count:
            try:
                received.append(await pair.ws.recv(timeout=0.001))
            except TimeoutError:
                timeouts += 1
    await sending
    assert received == [str(index) for index in range(count)]
    assert timeouts > 0


async def test_recv_timeout_on_a_closed_connection_raises_connection_closed(
    echo_server: EchoServerFactory,
) -> None:
    _, port = await echo_server()
    async with asyncio.timeout(T):
        ws = await wsio.connect(url(port))
        await ws.close()
        for timeout in (0, 1):
            with pytest.raises(wsio.ConnectionClosedOK):
                await ws.recv(timeout=timeout)


async def test_recv_timeout_keeps_the_concurrency_rule(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("client")
    first = asyncio.create_task(pair.ws.recv())
    await asyncio.sleep(0.01)
    for timeout in (0, 1):
        with pytest.raises(wsio.ConcurrencyError):
            await pair.ws.recv(timeout=timeout)
    await pair.peer.send_frame(OP_TEXT, "first")
    assert await asyncio.wait_for(first, T) == "first"


async def test_recv_timeout_inside_a_caller_timeout(ws_pair: WsPairFactory) -> None:
    # The caller's own deadline, shorter, still wins, as a cancellation of its own.
    pair = await ws_pair("client")
    with pytest.raises(TimeoutError) as caught:
        async with asyncio.timeout(0.02):
            await pair.ws.recv(timeout=T)
    assert "no message received" not in str(caught.value)
    await pair.peer.send_frame(OP_TEXT, "kept")
    assert await pair.ws.recv(timeout=T) == "kept"


@pytest.mark.parametrize(
    ("opcode", "payload", "decode", "expected"),
    [
        (OP_TEXT, "héllo", False, "héllo".encode()),
        (OP_TEXT, "héllo", True, "héllo"),
        (OP_BINARY, "héllo".encode(), True, "héllo"),
        (OP_BINARY, b"\xff\x00", False, b"\xff\x00"),
        (OP_TEXT, "", False, b""),
        (OP_BINARY, b"", True, ""),
    ],
    ids=[
        "text-as-bytes",
        "text-as-str",
        "binary-as-str",
        "binary-as-bytes",
        "empty-text",
        "empty-binary",
    ],
)
async def test_recv_decode(
    ws_pair: WsPairFactory, opcode: int, payload: Any, decode: bool, expected: str | bytes
) -> None:
    pair = await ws_pair("client")
    await pair.peer.send_frame(opcode, payload)
    received = await asyncio.wait_for(pair.ws.recv(decode=decode), T)
    assert type(received) is type(expected)
    assert received == expected


async def test_recv_decode_true_on_invalid_utf8_binary(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("client")
    await pair.peer.send_frame(OP_BINARY, b"ok \xc0\xaf")
    await pair.peer.send_frame(OP_BINARY, b"next")
    with pytest.raises(UnicodeDecodeError) as caught:
        await asyncio.wait_for(pair.ws.recv(decode=True), T)
    # Where and what, and the whole message, for whoever wants to look at it.
    assert (caught.value.start, caught.value.object) == (3, b"ok \xc0\xaf")
    assert "invalid start byte" in str(caught.value)
    # The message was consumed; the connection goes on.
    assert pair.ws.state is wsio.State.OPEN
    assert await asyncio.wait_for(pair.ws.recv(decode=True), T) == "next"


async def test_recv_decode_with_timeout(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("client")
    with pytest.raises(TimeoutError):
        await pair.ws.recv(timeout=0.01, decode=False)
    await pair.peer.send_frame(OP_TEXT, "late")
    assert await pair.ws.recv(timeout=T, decode=False) == b"late"


# Iteration -----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [1000, 1001])
async def test_async_iteration_ends_quietly_on_normal_close(
    echo_server: EchoServerFactory, code: int
) -> None:
    async def handler(ws: Any) -> None:
        for i in range(3):
            await ws.send(f"m{i}")
        await ws.close(code)

    _, port = await echo_server(handler=handler)
    received = []
    async with asyncio.timeout(T), wsio.connect(url(port)) as ws:
        async for message in ws:
            received.append(message)
    assert received == ["m0", "m1", "m2"]
    assert ws.close_code == code


async def test_async_iteration_ends_when_handler_returns(echo_server: EchoServerFactory) -> None:
    async def handler(ws: Any) -> None:
        await ws.send("only")

    _, port = await echo_server(handler=handler)
    async with asyncio.timeout(T), wsio.connect(url(port)) as ws:
        received = [message async for message in ws]
    assert received == ["only"]
    assert ws.close_code == 1000


@pytest.mark.parametrize("code", [1011, 4000, 3000, 1008])
async def test_async_iteration_raises_on_error_close(
    echo_server: EchoServerFactory, code: int
) -> None:
    async def handler(ws: Any) -> None:
        await ws.send("before")
        await ws.close(code, "nope")

    _, port = await echo_server(handler=handler)
    received = []
    async with asyncio.timeout(T), wsio.connect(url(port)) as ws:
        with pytest.raises(wsio.ConnectionClosedError) as excinfo:
            async for message in ws:
                received.append(message)
    assert received == ["before"]
    assert excinfo.value.code == code
    assert excinfo.value.reason == "nope"
    assert excinfo.value.rcvd is not None
    assert excinfo.value.rcvd.code == code


async def test_async_iteration_raises_on_abnormal_closure(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("client")
    await pair.peer.send_frame(OP_TEXT, "last")
    await asyncio.sleep(0.05)
    pair.peer.abort()
    received = []
    async with asyncio.timeout(T):
        with pytest.raises(wsio.ConnectionClosedError) as excinfo:
            async for message in pair.ws:
                received.append(message)
    assert received == ["last"]
    assert excinfo.value.code == 1006
    assert excinfo.value.rcvd is None


async def test_async_iteration_on_empty_close_payload(ws_pair: WsPairFactory) -> None:
    """A close frame without a code counts as 1005: a normal closure."""
    pair = await ws_pair("client")
    await pair.peer.send_frame(OP_TEXT, "x")
    await pair.peer.send_close(None)
    async with asyncio.timeout(T):
        received = [m async for m in pair.ws]
    assert received == ["x"]
    assert pair.ws.close_code == 1005


# Concurrency and state -------------------------------------------------------------------------


async def test_concurrent_recv_raises_concurrency_error(echo_server: EchoServerFactory) -> None:
    _, port = await echo_server()
    async with asyncio.timeout(T), wsio.connect(url(port)) as ws:
        first = asyncio.create_task(ws.recv())
        await asyncio.sleep(0.01)
        with pytest.raises(wsio.ConcurrencyError):
            await ws.recv()
        # The first recv() is unaffected.
        await ws.send("for the first")
        assert await first == "for the first"
        # And recv() works again once nobody waits.
        await ws.send("again")
        assert await ws.recv() == "again"
    assert issubclass(wsio.ConcurrencyError, wsio.WebSocketError)


async def test_cancelled_recv_does_not_lose_messages(echo_server: EchoServerFactory) -> None:
    _, port = await echo_server()
    async with asyncio.timeout(T), wsio.connect(url(port)) as ws:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await ws.recv()
        await ws.send("kept")
        assert await ws.recv() == "kept"


async def test_recv_and_send_after_normal_close(echo_server: EchoServerFactory) -> None:
    _, port = await echo_server()
    async with asyncio.timeout(T):
        ws = await wsio.connect(url(port))
        await ws.close()
        with pytest.raises(wsio.ConnectionClosedOK) as excinfo:
            await ws.recv()
        assert excinfo.value.code == 1000
        with pytest.raises(wsio.ConnectionClosedOK):
            await ws.send("late")
        with pytest.raises(wsio.ConnectionClosedOK):
            await ws.send(["late", "fragments"])
        with pytest.raises(wsio.ConnectionClosedOK):
            await ws.ping()
        with pytest.raises(wsio.ConnectionClosedOK):
            await ws.pong()


async def test_recv_and_send_after_error_close(echo_server: EchoServerFactory) -> None:
    _, port = await echo_server()
    async with asyncio.timeout(T):
        ws = await wsio.connect(url(port))
        await ws.close(4001, "custom")
        with pytest.raises(wsio.ConnectionClosedError) as excinfo:
            await ws.recv()
        assert excinfo.value.code == 4001
        assert excinfo.value.reason == "custom"
        assert excinfo.value.sent is not None
        assert excinfo.value.sent.code == 4001
        with pytest.raises(wsio.ConnectionClosedError):
            await ws.send(b"late")


async def test_pending_recv_raises_when_closing(echo_server: EchoServerFactory) -> None:
    _, port = await echo_server()
    async with asyncio.timeout(T):
        ws = await wsio.connect(url(port))
        receiving = asyncio.create_task(ws.recv())
        await asyncio.sleep(0.01)
        await ws.close()
        with pytest.raises(wsio.ConnectionClosedOK):
            await receiving


async def test_send_after_peer_close_frame(ws_pair: WsPairFactory) -> None:
    """Once the peer's close frame is in, sending raises even before TCP is closed."""
    pair = await ws_pair("server")
    await pair.peer.send_close(1000)
    frames = await pair.peer.recv_frames_until_close(timeout=T)
    assert frames[-1].close_code == 1000
    with pytest.raises(wsio.ConnectionClosedOK) as excinfo:
        await pair.ws.send("too late")
    assert excinfo.value.rcvd is not None
    assert excinfo.value.rcvd_then_sent is True
    pair.peer.close()


async def test_messages_received_before_close_are_still_delivered(
    ws_pair: WsPairFactory,
) -> None:
    pair = await ws_pair("client")
    await pair.peer.send_frame(OP_TEXT, "one")
    await pair.peer.send_frame(OP_BINARY, b"two")
    await pair.peer.send_close(1000)
    # Let wsio process everything before reading.
    frames = await pair.peer.recv_frames_until_close(timeout=T)
    assert frames[-1].close_code == 1000
    async with asyncio.timeout(T):
        assert await pair.ws.recv() == "one"
        assert await pair.ws.recv() == b"two"
        with pytest.raises(wsio.ConnectionClosedOK):
            await pair.ws.recv()


async def test_state_and_close_attributes(echo_server: EchoServerFactory) -> None:
    rec = Recorder()
    _, port = await echo_server(handler=rec)
    async with asyncio.timeout(T):
        ws = await wsio.connect(url(port))
        server_ws = await rec.connection()
        assert ws.state is wsio.State.OPEN
        assert server_ws.state is wsio.State.OPEN
        assert ws.close_code is None
        assert ws.close_reason is None
        assert server_ws.close_code is None
        await ws.close(1000, "done")
        assert ws.state is wsio.State.CLOSED
        assert ws.close_code == 1000
        assert ws.close_reason == "done"
        await server_ws.wait_closed()
        assert server_ws.state is wsio.State.CLOSED
        assert server_ws.close_code == 1000
        assert server_ws.close_reason == "done"


async def test_addresses(echo_server: EchoServerFactory) -> None:
    rec = Recorder()
    _, port = await echo_server(handler=rec)
    async with asyncio.timeout(T), wsio.connect(url(port)) as ws:
        server_ws = await rec.connection()
        assert ws.remote_address[:2] == ("127.0.0.1", port)
        assert server_ws.local_address[:2] == ("127.0.0.1", port)
        assert server_ws.remote_address[:2] == ws.local_address[:2]
        rec.release.set()


async def test_context_manager_closes_with_1000(echo_server: EchoServerFactory) -> None:
    rec = Recorder(body=lambda ws: ws.recv())
    _, port = await echo_server(handler=rec)
    async with asyncio.timeout(T):
        async with wsio.connect(url(port)) as ws:
            await rec.connection()
        assert ws.state is wsio.State.CLOSED
        assert ws.close_code == 1000
        await rec.done.wait()
    assert isinstance(rec.closed_exc, wsio.ConnectionClosedOK)
    assert rec.closed_exc.code == 1000


async def test_connection_context_manager_closes_with_1011_on_error(
    echo_server: EchoServerFactory,
) -> None:
    """``async with await connect(...)``: an exception in the block closes with 1011."""
    rec = Recorder(body=lambda ws: ws.recv())
    _, port = await echo_server(handler=rec)
    async with asyncio.timeout(T):
        ws = await wsio.connect(url(port))
        with pytest.raises(ZeroDivisionError):
            async with ws:
                await rec.connection()
                1 / 0  # noqa: B018
        await rec.done.wait()
    assert ws.close_code == 1011
    assert isinstance(rec.closed_exc, wsio.ConnectionClosedError)
    assert rec.closed_exc.code == 1011


# Ping and pong -------------------------------------------------------------------------------


async def test_ping_returns_latency(echo_server: EchoServerFactory) -> None:
    _, port = await echo_server()
    async with asyncio.timeout(T), wsio.connect(url(port), ping_interval=None) as ws:
        assert ws.latency == 0.0
        latency = await ws.ping()
        assert isinstance(latency, float)
        assert 0 < latency < T
        assert ws.latency == latency
        latency2 = await ws.ping(b"payload")
        assert isinstance(latency2, float)
        assert ws.latency == latency2
        assert isinstance(await ws.ping("text payload"), float)
        assert isinstance(await ws.ping(b"x" * 125), float)


async def test_server_side_ping(echo_server: EchoServerFactory) -> None:
    latencies: list[float] = []

    async def handler(ws: Any) -> None:
        latencies.append(await ws.ping(b"from server"))
        latencies.append(ws.latency)

    _, port = await echo_server(handler=handler)
    async with asyncio.timeout(T), wsio.connect(url(port)) as ws:
        with contextlib.suppress(wsio.ConnectionClosedOK):
            await ws.recv()
    assert len(latencies) == 2
    assert latencies[0] > 0
    assert latencies[0] == latencies[1]


async def test_ping_on_the_wire_and_matching_pong(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("client", ping_interval=None)
    async with asyncio.timeout(T):
        pinging = asyncio.create_task(pair.ws.ping(b"abc"))
        frame = await pair.peer.recv_frame(timeout=T)
        assert frame is not None
        assert (frame.opcode, frame.payload) == (OP_PING, b"abc")
        # An unrelated pong doesn't resolve it.
        await pair.peer.send_frame(OP_PONG, b"zzz")
        await asyncio.sleep(0.05)
        assert not pinging.done()
        await pair.peer.send_frame(OP_PONG, b"abc")
        latency = await pinging
    assert latency >= 0.05
    assert pair.ws.latency == latency


async def test_pong_acknowledges_earlier_pings(ws_pair: WsPairFactory) -> None:
    """A pong answers the ping with its payload and every ping sent before it (§5.5.3)."""
    pair = await ws_pair("client", ping_interval=None)
    async with asyncio.timeout(T):
        first = asyncio.create_task(pair.ws.ping(b"1"))
        second = asyncio.create_task(pair.ws.ping(b"2"))
        frames = await drain_frames(pair.peer, 2)
        assert [f.payload for f in frames] == [b"1", b"2"]
        await pair.peer.send_frame(OP_PONG, b"2")
        assert isinstance(await first, float)
        assert isinstance(await second, float)


async def test_pending_ping_raises_when_connection_closes(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("client", ping_interval=None)
    async with asyncio.timeout(T):
        pinging = asyncio.create_task(pair.ws.ping(b"never answered"))
        await pair.peer.recv_frame(timeout=T)
        pair.peer.abort()
        with pytest.raises(wsio.ConnectionClosedError):
            await pinging


async def test_ping_same_payload_twice(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("client", ping_interval=None)
    async with asyncio.timeout(T):
        first = asyncio.create_task(pair.ws.ping(b"same"))
        await asyncio.sleep(0)
        with pytest.raises(wsio.ConcurrencyError):
            await pair.ws.ping(b"same")
        await pair.peer.recv_frame(timeout=T)
        await pair.peer.send_frame(OP_PONG, b"same")
        assert isinstance(await first, float)


@pytest.mark.parametrize("payload", [b"x" * 126, "é" * 63, bytearray(200)])
async def test_ping_payload_too_long(ws_pair: WsPairFactory, payload: Any) -> None:
    pair = await ws_pair("client", ping_interval=None)
    with pytest.raises(wsio.InvalidArgument):
        await pair.ws.ping(payload)
    with pytest.raises(ValueError):
        await pair.ws.pong(b"y" * 126)
    # The connection is still usable, and nothing was sent.
    await pair.ws.send("after")
    frame = await pair.peer.recv_frame(timeout=T)
    assert frame is not None
    assert (frame.opcode, frame.payload) == (OP_TEXT, b"after")


async def test_pong(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("client", ping_interval=None)
    await pair.ws.pong(b"heartbeat")
    await pair.ws.pong()
    await pair.ws.pong("text")
    frames = await drain_frames(pair.peer, 3)
    assert [(f.opcode, f.payload) for f in frames] == [
        (OP_PONG, b"heartbeat"),
        (OP_PONG, b""),
        (OP_PONG, b"text"),
    ]


async def test_wsio_answers_pings_automatically(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("server", ping_interval=None)
    await pair.peer.send_frame(OP_PING, b"are you there")
    frame = await pair.peer.recv_frame(timeout=T)
    assert frame is not None
    assert (frame.opcode, frame.payload, frame.masked) == (OP_PONG, b"are you there", False)


# Closing -----------------------------------------------------------------------------------------


async def test_close_code_and_reason_seen_by_peer(echo_server: EchoServerFactory) -> None:
    rec = Recorder(body=lambda ws: ws.recv())
    _, port = await echo_server(handler=rec)
    async with asyncio.timeout(T):
        ws = await wsio.connect(url(port))
        server_ws = await rec.connection()
        await ws.close(4000, "bye")
        await rec.done.wait()
        await server_ws.wait_closed()
    assert isinstance(rec.closed_exc, wsio.ConnectionClosedError)
    assert rec.closed_exc.code == 4000
    assert rec.closed_exc.reason == "bye"
    assert rec.closed_exc.rcvd == wsio.Close(4000, "bye")
    assert server_ws.close_code == 4000
    assert server_ws.close_reason == "bye"
    assert ws.close_code == 4000
    assert ws.close_reason == "bye"


async def test_close_frame_on_the_wire(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("server")
    closing = asyncio.create_task(pair.ws.close(4000, "bye ☕"))
    frame = await pair.peer.recv_frame(timeout=T)
    assert frame is not None
    assert frame.opcode == OP_CLOSE
    assert frame.close_code == 4000
    assert frame.close_reason == "bye ☕".encode()
    await pair.peer.send_close(4000, "bye ☕")
    # The server closes TCP first (§7.1.1); the client then closes its side.
    assert await pair.peer.wait_eof(T)
    pair.peer.close()
    async with asyncio.timeout(T):
        await closing
    assert pair.ws.close_code == 4000


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (1005, ""),
        (1006, ""),
        (999, ""),
        (1015, ""),
        (5000, ""),
        (1000, "x" * 124),
        (1000, "é" * 62),
    ],
    ids=["1005", "1006", "999", "1015", "5000", "reason-124", "reason-124-utf8"],
)
async def test_close_invalid_arguments(
    echo_server: EchoServerFactory, code: int, reason: str
) -> None:
    _, port = await echo_server()
    async with asyncio.timeout(T), wsio.connect(url(port)) as ws:
        with pytest.raises(wsio.InvalidArgument):
            await ws.close(code, reason)
        # Still open and usable.
        assert ws.state is wsio.State.OPEN
        assert ws.close_code is None
        await ws.send("still here")
        assert await ws.recv() == "still here"
    assert ws.close_code == 1000


async def test_close_reason_of_123_bytes(echo_server: EchoServerFactory) -> None:
    rec = Recorder(body=lambda ws: ws.recv())
    _, port = await echo_server(handler=rec)
    reason = "r" * 123
    async with asyncio.timeout(T):
        ws = await wsio.connect(url(port))
        await ws.close(1000, reason)
        await rec.done.wait()
    assert ws.close_reason == reason
    assert isinstance(rec.closed_exc, wsio.ConnectionClosedOK)
    assert rec.closed_exc.reason == reason


async def test_close_is_idempotent(echo_server: EchoServerFactory) -> None:
    _, port = await echo_server()
    async with asyncio.timeout(T):
        ws = await wsio.connect(url(port))
        await asyncio.gather(ws.close(), ws.close(4000))
        assert ws.close_code == 1000
        await ws.close()
        await ws.close(4000, "ignored")
        # Invalid arguments after the close don't matter any more either.
        await ws.close(1005)
        await ws.wait_closed()
    assert ws.state is wsio.State.CLOSED
    assert ws.close_code == 1000
    assert ws.close_reason == ""


async def test_wait_closed(echo_server: EchoServerFactory) -> None:
    async def handler(ws: Any) -> None:
        await asyncio.sleep(0.1)
        await ws.close(1001, "later")

    _, port = await echo_server(handler=handler)
    async with asyncio.timeout(T):
        ws = await wsio.connect(url(port))
        waiter = asyncio.create_task(ws.wait_closed())
        await asyncio.sleep(0.02)
        assert not waiter.done()
        await waiter
        # Nobody called recv(): the closing handshake still completed.
        assert ws.state is wsio.State.CLOSED
        assert ws.close_code == 1001
        assert ws.close_reason == "later"
        # Again, returns at once.
        await ws.wait_closed()


async def test_waits_for_the_close_given_up_leave_nothing_behind(
    echo_server: EchoServerFactory,
) -> None:
    """Polling wait_closed() with a timeout on a connection that stays open keeps no
    trace of the waits given up, however many there are."""
    _, port = await echo_server()
    async with asyncio.timeout(T):
        ws = await wsio.connect(url(port))
        for _ in range(100):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.wait_closed(), 0.0001)
        assert not ws._lost_waiters
        waiter = asyncio.create_task(ws.wait_closed())
        await ws.close()
        await waiter


async def test_close_timeout_when_peer_does_not_answer(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("server", close_timeout=0.3)
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(T):
        await pair.ws.close()
    elapsed = loop.time() - start
    assert 0.2 <= elapsed < 2
    assert pair.ws.state is wsio.State.CLOSED
    frames = await pair.peer.recv_frames_until_close(timeout=T)
    assert frames[-1].close_code == 1000
    with pytest.raises(wsio.ConnectionClosed):
        await pair.ws.recv()


async def test_client_close_waits_for_server_tcp_close(ws_pair: WsPairFactory) -> None:
    """The server closes TCP first (§7.1.1); the client's close() returns after that."""
    pair = await ws_pair("client")
    closing = asyncio.create_task(pair.ws.close(1000, "client bye"))
    frame = await pair.peer.recv_frame(timeout=T)
    assert frame is not None
    assert frame.close_code == 1000
    await pair.peer.send_close(1000, "client bye")
    await asyncio.sleep(0.05)
    assert not closing.done()
    pair.peer.close()
    async with asyncio.timeout(T):
        await closing
    assert pair.ws.close_code == 1000
    with pytest.raises(wsio.ConnectionClosedOK):
        await pair.ws.recv()


async def test_client_close_bounded_when_server_keeps_tcp_open(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("client", close_timeout=0.3)
    loop = asyncio.get_running_loop()
    start = loop.time()
    closing = asyncio.create_task(pair.ws.close())
    frame = await pair.peer.recv_frame(timeout=T)
    assert frame is not None
    assert frame.close_code == 1000
    await pair.peer.send_close(1000)
    # The raw server never closes TCP: the client gives up after close_timeout.
    async with asyncio.timeout(T):
        await closing
    assert 0.2 <= loop.time() - start < 2
    assert pair.ws.state is wsio.State.CLOSED
    assert pair.ws.close_code == 1000
    assert await pair.peer.wait_eof(T)


async def test_peer_initiated_close_is_answered(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("server")
    await pair.peer.send_close(4100, "peer")
    frames = await pair.peer.recv_frames_until_close(timeout=T)
    assert frames[-1].close_code == 4100
    assert frames[-1].close_reason == b"peer"
    assert await pair.peer.wait_eof(T)
    pair.peer.close()
    async with asyncio.timeout(T):
        await pair.ws.wait_closed()
    assert pair.ws.close_code == 4100
    assert pair.ws.close_reason == "peer"


# Limits ------------------------------------------------------------------------------------------


async def test_max_size_client_receiving(echo_server: EchoServerFactory) -> None:
    async def body(ws: Any) -> None:
        await ws.send("x" * 1000)
        await ws.send("y" * 1001)
        await ws.recv()

    rec = Recorder(body)
    _, port = await echo_server(handler=rec)
    async with asyncio.timeout(T):
        ws = await wsio.connect(url(port), max_size=1000)
        assert await ws.recv() == "x" * 1000
        with pytest.raises(wsio.ConnectionClosedError) as excinfo:
            await ws.recv()
        assert excinfo.value.code == 1009
        assert isinstance(excinfo.value.__cause__, wsio.PayloadTooBig)
        await rec.done.wait()
        await ws.wait_closed()
    assert isinstance(rec.closed_exc, wsio.ConnectionClosedError)
    assert rec.closed_exc.code == 1009
    assert ws.close_code == 1009


async def test_max_size_server_receiving(echo_server: EchoServerFactory) -> None:
    _, port = await echo_server(max_size=100)
    async with asyncio.timeout(T):
        ws = await wsio.connect(url(port))
        await ws.send(b"a" * 100)
        assert await ws.recv() == b"a" * 100
        # Fragmented: the limit applies to the whole message.
        await ws.send([b"b" * 60, b"b" * 60])
        with pytest.raises(wsio.ConnectionClosedError) as excinfo:
            await ws.recv()
    assert excinfo.value.code == 1009
    assert excinfo.value.rcvd is not None
    assert excinfo.value.rcvd.code == 1009


async def test_max_size_none_disables_limit(echo_server: EchoServerFactory) -> None:
    _, port = await echo_server(max_size=None)
    big = b"z" * (2**20 + 1)
    async with asyncio.timeout(T), wsio.connect(url(port), max_size=None) as ws:
        await ws.send(big)
        assert await ws.recv() == big


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
async def test_large_messages_are_read_into_their_payload(
    echo_server: EchoServerFactory,
    payload_reads: collections.Counter[str],
    server_ssl_context: Any,
    client_ssl_context: Any,
    tls: bool,
) -> None:
    """Both sides read most of an uncompressed large frame's payload from the transport
    straight into the message, masked or not, and the message is intact; small ones
    around it too."""
    large = os.urandom(3 * 2**20 + 5)
    _, port = await echo_server(
        max_size=2**22, compression=None, ssl=server_ssl_context if tls else None
    )
    uri = f"wss://localhost:{port}/" if tls else url(port)
    ssl = client_ssl_context if tls else None
    async with (
        asyncio.timeout(T),
        wsio.connect(uri, max_size=2**22, compression=None, ssl=ssl) as ws,
    ):
        for message in (large, b"small", large[::-1], "text"):
            await ws.send(message)
            assert await ws.recv() == message
    assert payload_reads["server"] > 0
    assert payload_reads["client"] > 0


async def test_a_failure_between_payload_reads_drops_what_comes_after() -> None:
    """get_buffer() hands out a large frame's payload, the read brings nothing (no
    buffer_updated), the connection fails, and the next read goes into the shared buffer:
    what it brings is dropped quietly, as anything after a failure is."""
    from unittest import mock

    from wsio.asyncio.connection import Connection
    from wsio.protocol.connection import Protocol, Side, State
    from wsio.protocol.masking import python_apply_mask

    ws = Connection(Protocol(Side.SERVER, state=State.OPEN), ping_interval=None)
    transport = mock.MagicMock()
    transport.is_closing.return_value = False
    transport.get_write_buffer_size.return_value = 0
    ws.connection_made(transport)
    mask = os.urandom(4)
    payload = os.urandom(200 * 1024)
    frame = b"\x82\xff" + len(payload).to_bytes(8, "big") + mask + python_apply_mask(payload, mask)
    shared = ws.get_buffer(-1)
    shared[:100_000] = frame[:100_000]
    ws.buffer_updated(100_000)
    assert ws.protocol.payload_buffer is not None
    with ws.get_buffer(-1) as view:
        assert len(view) >= 64 * 1024
    ws.protocol.fail(1011, "stop")
    assert ws.get_buffer(-1) is shared
    shared[:10] = frame[100_000:100_010]
    ws.buffer_updated(10)
    assert ws.protocol.payload_buffer is None
    assert not ws.protocol.receiving


async def test_default_max_size_is_1_mib(echo_server: EchoServerFactory) -> None:
    _, port = await echo_server()
    async with asyncio.timeout(T):
        ws = await wsio.connect(url(port))
        await ws.send(b"z" * 2**20)
        assert len(await ws.recv()) == 2**20
        await ws.send(b"z" * (2**20 + 1))
        with pytest.raises(wsio.ConnectionClosedError) as excinfo:
            await ws.recv()
    assert excinfo.value.code == 1009


async def test_max_queue_pauses_reading(echo_server: EchoServerFactory) -> None:
    count = 20
    sent = asyncio.Event()

    async def handler(ws: Any) -> None:
        for i in range(count):
            await ws.send(f"message {i}")
            # Separate TCP segments, so that reading can pause between them.
            await asyncio.sleep(0.005)
        sent.set()
        await ws.recv()

    _, port = await echo_server(handler=handler)
    async with asyncio.timeout(T), wsio.connect(url(port), max_queue=2) as ws:
        assert ws.transport is not None
        while ws.transport.is_reading():
            await asyncio.sleep(0.005)
        await sent.wait()
        # Reading stays paused while the application doesn't read.
        await asyncio.sleep(0.05)
        assert not ws.transport.is_reading()
        received = [await ws.recv(), await ws.recv()]
        # The queue is drained: reading resumes.
        assert ws.transport.is_reading()
        while len(received) < count:
            received.append(await ws.recv())
        assert received == [f"message {i}" for i in range(count)]
        assert ws.transport.is_reading()


@pytest.mark.parametrize("max_queue", [0, -1])
async def test_max_queue_below_one_is_refused_up_front(max_queue: int) -> None:
    # Reading would pause before the first message and never resume.
    async def handler(ws: Any) -> None:
        raise AssertionError("no connection is made")  # pragma: no cover

    with pytest.raises(wsio.InvalidArgument, match="max_queue"):
        wsio.serve(handler, "127.0.0.1", 0, max_queue=max_queue)
    with pytest.raises(wsio.InvalidArgument, match="max_queue"):
        wsio.connect("ws://127.0.0.1:1/", max_queue=max_queue)


async def test_negative_write_limit_is_refused_up_front() -> None:
    # The transport would refuse set_write_buffer_limits() on every connection.
    async def handler(ws: Any) -> None:
        raise AssertionError("no connection is made")  # pragma: no cover

    with pytest.raises(wsio.InvalidArgument, match="write_limit"):
        wsio.serve(handler, "127.0.0.1", 0, write_limit=-1)
    with pytest.raises(wsio.InvalidArgument, match="write_limit"):
        wsio.connect("ws://127.0.0.1:1/", write_limit=-1)


async def test_max_queue_on_server(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("server", max_queue=4)
    transport = pair.ws.transport
    assert transport.is_reading()
    for i in range(12):
        await pair.peer.send_frame(OP_BINARY, bytes([i]))
    async with asyncio.timeout(T):
        while transport.is_reading():
            await asyncio.sleep(0.01)
        received = []
        while len(received) < 12:
            received.append(await pair.ws.recv())
    assert received == [bytes([i]) for i in range(12)]
    assert transport.is_reading()


async def test_write_limit_makes_send_wait(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("server", write_limit=1024)
    ws = pair.ws
    # Raw peer isn't reading: fill the kernel buffers, then wsio's own buffer.
    payload = b"w" * (16 * 2**20)
    sending = asyncio.create_task(ws.send(payload))
    await asyncio.sleep(0.3)
    assert not sending.done(), "send() returned while the peer wasn't reading"
    assert ws.transport.get_write_buffer_size() > 1024
    # Let the peer read: send() completes.
    async with asyncio.timeout(T):
        frame = await pair.peer.recv_frame(timeout=T)
        await sending
    assert frame is not None
    assert frame.opcode == OP_BINARY
    assert frame.payload == payload


async def test_write_limit_on_client(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("client", write_limit=4096)
    ws = pair.ws
    payload = "c" * (8 * 2**20)
    sending = asyncio.create_task(ws.send(payload))
    await asyncio.sleep(0.3)
    assert not sending.done(), "send() returned while the peer wasn't reading"
    async with asyncio.timeout(T):
        frame = await pair.peer.recv_frame(timeout=T)
        await sending
    assert frame is not None
    assert frame.text == payload


async def test_send_waiting_on_write_limit_raises_when_connection_lost(
    ws_pair: WsPairFactory,
) -> None:
    pair = await ws_pair("server", write_limit=1024)
    sending = asyncio.create_task(pair.ws.send(b"q" * (16 * 2**20)))
    await asyncio.sleep(0.2)
    assert not sending.done()
    pair.peer.abort()
    async with asyncio.timeout(T):
        with pytest.raises(wsio.ConnectionClosedError):
            await sending


# Keepalive -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["client", "server"])
async def test_keepalive_sends_pings(ws_pair: WsPairFactory, role: str) -> None:
    pair = await ws_pair(role, ping_interval=0.2, ping_timeout=0.5)
    loop = asyncio.get_running_loop()
    start = loop.time()
    pings = []
    async with asyncio.timeout(T):
        while len(pings) < 3:
            frame = await pair.peer.recv_frame(timeout=T)
            assert frame is not None
            assert frame.opcode == OP_PING
            assert len(frame.payload) <= 125
            pings.append(frame)
            # Answer, so that the connection stays open.
            await pair.peer.send_frame(OP_PONG, frame.payload)
    elapsed = loop.time() - start
    assert 0.5 <= elapsed < 2
    assert pair.ws.state is wsio.State.OPEN
    assert len({p.payload for p in pings}) == 3
    assert pair.ws.latency > 0


@pytest.mark.parametrize("role", ["client", "server"])
async def test_keepalive_timeout_fails_with_1011(ws_pair: WsPairFactory, role: str) -> None:
    pair = await ws_pair(role, ping_interval=0.2, ping_timeout=0.2)
    loop = asyncio.get_running_loop()
    start = loop.time()
    receiving = asyncio.create_task(pair.ws.recv())
    # The raw peer reads but never answers pings.
    frames = await pair.peer.recv_frames_until_close(timeout=T)
    elapsed = loop.time() - start
    assert frames[0].opcode == OP_PING
    assert frames[-1].opcode == OP_CLOSE
    assert frames[-1].close_code == 1011
    assert elapsed < 0.4 + 0.4
    async with asyncio.timeout(T):
        with pytest.raises(wsio.ConnectionClosedError) as excinfo:
            await receiving
    assert excinfo.value.code == 1011
    assert pair.ws.close_code == 1011


async def test_keepalive_end_to_end_keeps_connection_open(
    echo_server: EchoServerFactory,
) -> None:
    _, port = await echo_server(ping_interval=0.1, ping_timeout=0.3)
    async with (
        asyncio.timeout(T),
        wsio.connect(url(port), ping_interval=0.1, ping_timeout=0.3) as ws,
    ):
        await asyncio.sleep(0.6)
        assert ws.state is wsio.State.OPEN
        assert ws.latency > 0
        await ws.send("alive")
        assert await ws.recv() == "alive"


async def test_keepalive_disabled(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("client", ping_interval=None)
    with pytest.raises(TimeoutError):
        await pair.peer.recv_frame(timeout=0.3)
    assert pair.ws.state is wsio.State.OPEN


# TLS -----------------------------------------------------------------------------------------


async def test_wss_round_trip(
    echo_server: EchoServerFactory, server_ssl_context: Any, client_ssl_context: Any
) -> None:
    rec = Recorder()

    async def body(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    rec.body = body
    _, port = await echo_server(handler=rec, ssl=server_ssl_context)
    async with (
        asyncio.timeout(T),
        wsio.connect(f"wss://localhost:{port}/tls", ssl=client_ssl_context) as ws,
    ):
        await ws.send("secure text")
        assert await ws.recv() == "secure text"
        await ws.send(b"\x00" * 100_000)
        assert await ws.recv() == b"\x00" * 100_000
        assert ws.transport.get_extra_info("ssl_object") is not None
        server_ws = await rec.connection()
        assert server_ws.request.path == "/tls"
    async with asyncio.timeout(T):
        await rec.done.wait()
    assert ws.close_code == 1000
    assert server_ws.close_code == 1000


async def test_wss_with_raw_peer_both_roles(ws_pair: WsPairFactory) -> None:
    for role in ("client", "server"):
        pair = await ws_pair(role, tls=True)
        await pair.peer.send_frame(OP_TEXT, f"over tls to {role}")
        async with asyncio.timeout(T):
            assert await pair.ws.recv() == f"over tls to {role}"
        await pair.ws.send(b"back")
        frame = await pair.peer.recv_frame(timeout=T)
        assert frame is not None
        assert frame.payload == b"back"
