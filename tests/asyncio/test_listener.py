"""Listeners (wsio.Listener, serve_listener, connect_listener): messages handed to
callbacks as they are parsed, every check of the asyncio API kept.

Peers: wsio's own asyncio API, raw peers (tests/rawpeer.py) for what a library won't send,
and the ``websockets`` package.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import wsio
from rawpeer import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_TEXT,
    RawClient,
    RawServer,
    ServerConn,
    build_frame,
    build_request,
    build_response,
)
from wsio.asyncio.listener import ListenerConnection

T = 5.0  # upper bound of every wait that should succeed
HOST = "127.0.0.1"


class Recorder(wsio.Listener):
    """Records what it is told; echoes messages when ``echo`` is set."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.calls: list[str] = []
        self.messages: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.ws: ListenerConnection | None = None

    def on_open(self, ws: ListenerConnection) -> None:
        self.calls.append("open")
        self.ws = ws

    def on_message(self, ws: ListenerConnection, message: str | bytes) -> None:
        self.calls.append("message")
        self.messages.put_nowait(message)
        if self.echo:
            ws.send(message)

    def on_close(self, ws: ListenerConnection) -> None:
        self.calls.append("close")
        if not self.closed.done():
            self.closed.set_result(ws.close_code)

    def on_pause_writing(self, ws: ListenerConnection) -> None:
        self.calls.append("pause")

    def on_resume_writing(self, ws: ListenerConnection) -> None:
        self.calls.append("resume")

    async def next(self) -> str | bytes:
        async with asyncio.timeout(T):
            return await self.messages.get()

    async def wait_closed(self) -> int | None:
        async with asyncio.timeout(T):
            return await self.closed


class Factory:
    """Makes listeners and keeps them, for the test to look at."""

    def __init__(self, make: Callable[[], Recorder] = lambda: Recorder(echo=True)) -> None:
        self.make = make
        self.made: list[Recorder] = []

    def __call__(self) -> Recorder:
        listener = self.make()
        self.made.append(listener)
        return listener


async def listener_server(factory: Any, **kwargs: Any) -> tuple[wsio.Server, str]:
    server = await wsio.serve_listener(factory, HOST, 0, **kwargs)
    port = server.sockets[0].getsockname()[1]
    return server, f"ws://{HOST}:{port}/"


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[Factory, str]]:
    factory = Factory()
    server, uri = await listener_server(factory)
    async with server:
        yield factory, uri


# Echo, both sides ----------------------------------------------------------------------


async def test_server_listener_echoes_text_and_binary(echo_server: tuple[Factory, str]) -> None:
    factory, uri = echo_server
    async with wsio.connect(uri, proxy=None) as ws:
        for message in ("héllo", b"\x00\xff", "", b"", "x" * 70000, b"y" * 300000):
            await ws.send(message)
            assert await ws.recv() == message
    listener = factory.made[0]
    assert await listener.wait_closed() == 1000
    assert listener.calls[0] == "open" and listener.calls[-1] == "close"
    assert listener.calls.count("close") == 1


async def test_client_listener_against_asyncio_server() -> None:
    async def echo(ws: wsio.ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async with wsio.serve(echo, HOST, 0) as server:
        port = server.sockets[0].getsockname()[1]
        factory = Factory(Recorder)
        async with wsio.connect_listener(factory, f"ws://{HOST}:{port}/", proxy=None) as ws:
            assert isinstance(ws, wsio.ClientListenerConnection)
            listener = factory.made[0]
            # on_open ran before connect_listener returned.
            assert listener.calls == ["open"] and listener.ws is ws
            ws.send("text")
            ws.send(bytearray(b"binary"))
            ws.send(memoryview(b"view"))
            assert [await listener.next() for _ in range(3)] == ["text", b"binary", b"view"]
        assert await listener.wait_closed() == 1000
        assert ws.state is wsio.State.CLOSED


async def test_connect_listener_awaited_then_closed(echo_server: tuple[Factory, str]) -> None:
    _, uri = echo_server
    factory = Factory(Recorder)
    ws = await wsio.connect_listener(factory, uri, proxy=None)
    assert ws.state is wsio.State.OPEN and ws.subprotocol is None
    assert ws.request is not None and ws.response is not None
    assert ws.response.status_code == 101
    assert ws.remote_address[0] == HOST
    ws.send(b"ping?")
    assert await factory.made[0].next() == b"ping?"
    latency = await ws.ping()
    assert latency >= 0 and ws.latency == latency
    closed = ws.close(4000, "bye")
    assert ws.state is wsio.State.CLOSING
    await asyncio.wait_for(closed, T)
    assert ws.close_code == 4000 and ws.close_reason == "bye"
    assert factory.made[0].calls.count("close") == 1


async def test_each_close_returns_a_wait_of_its_own(echo_server: tuple[Factory, str]) -> None:
    """What close() returns is the caller's: cancelling it stops no other wait for the
    end of the connection, nor the closing handshake."""
    _, uri = echo_server
    ws = await wsio.connect_listener(Factory(Recorder), uri, proxy=None)
    dropped, kept = ws.close(), ws.close()
    assert dropped is not kept
    dropped.cancel()
    waiting = asyncio.ensure_future(ws.wait_closed())
    await asyncio.wait_for(kept, T)
    await asyncio.wait_for(waiting, T)
    assert dropped.cancelled() and ws.close_code == 1000


async def test_fragmented_and_compressed_messages_arrive_whole(
    echo_server: tuple[Factory, str],
) -> None:
    factory, uri = echo_server
    async with wsio.connect(uri, proxy=None, compression="deflate") as ws:
        await ws.send(["frag", "mented"])
        assert await ws.recv() == "fragmented"
        await ws.send(b"z" * 100000, compress=True)
        assert await ws.recv() == b"z" * 100000
    listener = factory.made[0]
    assert [await listener.next() for _ in range(2)] == ["fragmented", b"z" * 100000]


async def test_compressed_messages_decoded_one_at_a_time() -> None:
    # Many small compressed messages that inflate to max_size each, arriving in one read:
    # the listener gets each before the next is decoded.
    sizes: list[int] = []

    class Measure(Recorder):
        def on_message(self, ws: ListenerConnection, message: str | bytes) -> None:
            sizes.append(len(message))
            super().on_message(ws, message)

    factory = Factory(Measure)
    server, uri = await listener_server(factory, max_size=2**20)
    async with server, wsio.connect(uri, proxy=None) as ws:
        for _ in range(20):
            await ws.send(b"\x00" * 2**20, compress=True)
        listener = factory.made[0]
        for _ in range(20):
            assert await listener.next() == b"\x00" * 2**20
    assert sizes == [2**20] * 20


async def test_large_messages_are_read_into_their_payload(
    payload_reads: collections.Counter[str],
) -> None:
    """A listener's connection, too, reads a large frame's payload straight into the
    message."""
    large = os.urandom(3 * 2**20 + 5)
    factory = Factory()
    server, uri = await listener_server(factory, max_size=2**22, compression=None)
    async with server, wsio.connect(uri, proxy=None, max_size=2**22, compression=None) as ws:
        await ws.send(large)
        assert await factory.made[0].next() == large
        assert await ws.recv() == large
    assert payload_reads["server"] > 0


# Peer mistakes and limits -------------------------------------------------------------


async def test_invalid_utf8_fails_with_1007(echo_server: tuple[Factory, str]) -> None:
    factory, uri = echo_server
    port = int(uri.rsplit(":", 1)[1].strip("/"))
    async with await RawClient.open(HOST, port) as client:
        await client.handshake()
        await client.send_frame(OP_TEXT, "ok")
        await client.send_frame(OP_TEXT, b"\xc0\xaf")
        frames = await client.recv_frames_until_close()
        assert frames[0].opcode == OP_TEXT and frames[0].payload == b"ok"
        assert frames[-1].opcode == OP_CLOSE and frames[-1].close_code == 1007
    listener = factory.made[0]
    assert await listener.wait_closed() == 1007
    assert listener.calls == ["open", "message", "close"]


async def test_fragment_with_invalid_utf8_fails_before_the_end(
    echo_server: tuple[Factory, str],
) -> None:
    factory, uri = echo_server
    port = int(uri.rsplit(":", 1)[1].strip("/"))
    async with await RawClient.open(HOST, port) as client:
        await client.handshake()
        await client.send_frame(OP_TEXT, "valid", fin=False)
        await client.send_frame(OP_CONT, b"\xed\xa0\x80", fin=False)
        frames = await client.recv_frames_until_close()
        assert frames[-1].close_code == 1007
    assert await factory.made[0].wait_closed() == 1007
    assert "message" not in factory.made[0].calls


async def test_message_over_max_size_fails_with_1009() -> None:
    factory = Factory()
    server, uri = await listener_server(factory, max_size=10)
    async with server, wsio.connect(uri, proxy=None) as ws:
        await ws.send(b"0123456789")
        assert await ws.recv() == b"0123456789"
        await ws.send(b"0123456789a")
        with pytest.raises(wsio.ConnectionClosedError) as raised:
            await ws.recv()
        assert raised.value.rcvd is not None and raised.value.rcvd.code == 1009
    assert await factory.made[0].wait_closed() == 1009
    ws = factory.made[0].ws
    assert ws is not None
    with pytest.raises(wsio.ConnectionClosedError) as raised:
        ws.send(b"late")
    assert isinstance(raised.value.__cause__, wsio.PayloadTooBig)


async def test_unmasked_frame_fails_with_1002_no_traceback(
    echo_server: tuple[Factory, str], caplog: pytest.LogCaptureFixture
) -> None:
    factory, uri = echo_server
    port = int(uri.rsplit(":", 1)[1].strip("/"))
    with caplog.at_level(logging.DEBUG, logger="wsio"):
        async with await RawClient.open(HOST, port) as client:
            await client.handshake()
            await client.send_frame(OP_BINARY, b"unmasked", mask=None)
            frames = await client.recv_frames_until_close()
            assert frames[-1].close_code == 1002
        assert await factory.made[0].wait_closed() == 1002
    assert "message" not in factory.made[0].calls
    assert not any(record.exc_info for record in caplog.records)


# Application bugs ---------------------------------------------------------------------


class Failing(Recorder):
    def on_message(self, ws: ListenerConnection, message: str | bytes) -> None:
        super().on_message(ws, message)
        raise ValueError("bug in on_message")


async def test_on_message_raising_closes_with_1011_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    factory = Factory(Failing)
    server, uri = await listener_server(factory)
    with caplog.at_level(logging.ERROR, logger="wsio"):
        async with server, wsio.connect(uri, proxy=None) as ws:
            await ws.send("one")
            await ws.send("two")  # dropped: the connection is closing
            with pytest.raises(wsio.ConnectionClosedError) as raised:
                await ws.recv()
            assert raised.value.rcvd is not None and raised.value.rcvd.code == 1011
        assert await factory.made[0].wait_closed() == 1011
    assert factory.made[0].calls == ["open", "message", "close"]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "listener failed"
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)


class FailingIn(Recorder):
    """Raises from ``method`` (after recording the call)."""

    method = ""

    def on_open(self, ws: ListenerConnection) -> None:
        super().on_open(ws)
        self._fail("on_open")

    def on_close(self, ws: ListenerConnection) -> None:
        super().on_close(ws)
        self._fail("on_close")

    def _fail(self, method: str) -> None:
        if method == self.method:
            raise RuntimeError(f"bug in {method}")


@pytest.mark.parametrize(
    ("method", "code"),
    [
        ("on_open", 1011),  # the connection fails
        ("on_close", 1000),  # it's over already: logged only
    ],
)
async def test_on_open_or_on_close_raising(
    method: str, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    class Failing(FailingIn):
        pass

    Failing.method = method
    factory = Factory(Failing)
    server, uri = await listener_server(factory)
    with caplog.at_level(logging.ERROR, logger="wsio"):
        async with server, wsio.connect(uri, proxy=None) as ws:
            if method == "on_open":
                with pytest.raises(wsio.ConnectionClosedError):
                    await ws.recv()
        assert ws.close_code == code
        assert await factory.made[0].wait_closed() == code
    assert any(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in caplog.records)


async def test_client_listener_raising_closes_with_1011() -> None:
    async def greet(ws: wsio.ServerConnection) -> None:
        await ws.send("hello")
        await ws.wait_closed()

    async with wsio.serve(greet, HOST, 0) as server:
        port = server.sockets[0].getsockname()[1]
        factory = Factory(Failing)
        ws = await wsio.connect_listener(factory, f"ws://{HOST}:{port}/", proxy=None)
        assert await factory.made[0].wait_closed() == 1011
        assert ws.close_code == 1011


# Closing ------------------------------------------------------------------------------


async def test_listener_closes_from_on_message() -> None:
    class CloseOnMessage(Recorder):
        def on_message(self, ws: ListenerConnection, message: str | bytes) -> None:
            super().on_message(ws, message)
            ws.close(4001, "done")
            with pytest.raises(wsio.ConnectionClosed):
                ws.send("too late")

    factory = Factory(CloseOnMessage)
    server, uri = await listener_server(factory)
    async with server, wsio.connect(uri, proxy=None) as ws:
        await ws.send("first")
        await ws.send("second")  # not delivered: the listener closed the connection
        with pytest.raises(wsio.ConnectionClosedError):
            await ws.recv()
        assert ws.close_code == 4001 and ws.close_reason == "done"
    listener = factory.made[0]
    assert await listener.wait_closed() == 4001
    assert listener.calls == ["open", "message", "close"]


async def test_peer_closes_then_send_raises(echo_server: tuple[Factory, str]) -> None:
    factory, uri = echo_server
    async with wsio.connect(uri, proxy=None) as ws:
        await ws.send("before")
        assert await ws.recv() == "before"
    listener = factory.made[0]
    assert await listener.wait_closed() == 1000
    assert listener.ws is not None
    with pytest.raises(wsio.ConnectionClosedOK):
        listener.ws.send("after")
    with pytest.raises(wsio.ConnectionClosedOK) as raised:
        listener.ws.send(b"after")
    # As the state check raises it: nothing that the core raised shown with it.
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    with pytest.raises(wsio.ConnectionClosedOK):
        listener.ws.ping()
    # close() after the end is a no-op, and what it returns is done.
    assert listener.ws.close().done()
    assert listener.calls.count("close") == 1


async def test_peer_vanishes_on_close_once_with_1006(echo_server: tuple[Factory, str]) -> None:
    factory, uri = echo_server
    port = int(uri.rsplit(":", 1)[1].strip("/"))
    client = await RawClient.open(HOST, port)
    await client.handshake()
    await client.send_frame(OP_TEXT, "x")
    assert (await client.recv_frame()).payload == b"x"  # type: ignore[union-attr]
    client.abort()
    listener = factory.made[0]
    assert await listener.wait_closed() == 1006
    assert listener.calls.count("close") == 1


async def test_server_close_closes_listeners_with_1001() -> None:
    factory = Factory()
    server, uri = await listener_server(factory)
    ws = await wsio.connect(uri, proxy=None)
    await ws.send("x")
    assert await ws.recv() == "x"
    assert len(server.connections) == 1
    server.close()
    async with asyncio.timeout(T):
        await server.wait_closed()
    assert await factory.made[0].wait_closed() == 1001
    await ws.wait_closed()


async def test_async_with_connection_closes_it() -> None:
    factory = Factory()
    server, uri = await listener_server(factory)
    async with server:
        client_factory = Factory(Recorder)
        ws = await wsio.connect_listener(client_factory, uri, proxy=None)
        async with ws:
            ws.send("x")
            assert await client_factory.made[0].next() == "x"
        assert ws.state is wsio.State.CLOSED and ws.close_code == 1000


# Flow control -------------------------------------------------------------------------


async def test_backpressure_callbacks_with_a_peer_that_stops_reading() -> None:
    chunk = b"x" * 65536
    paused = asyncio.Event()
    resumed = asyncio.Event()

    class Flood(Recorder):
        def on_open(self, ws: ListenerConnection) -> None:
            super().on_open(ws)
            # Bounded: the write buffer crosses write_limit long before 1,000 chunks.
            for _ in range(1000):
                if ws.writing_paused:
                    break
                ws.send(chunk)

        def on_pause_writing(self, ws: ListenerConnection) -> None:
            super().on_pause_writing(ws)
            paused.set()

        def on_resume_writing(self, ws: ListenerConnection) -> None:
            super().on_resume_writing(ws)
            resumed.set()

    factory = Factory(Flood)
    server, uri = await listener_server(factory, write_limit=256 * 1024)
    port = int(uri.rsplit(":", 1)[1].strip("/"))
    async with server:
        async with await RawClient.open(HOST, port, receive_buffer=4096) as client:
            await client.handshake()
            client.transport.pause_reading()
            async with asyncio.timeout(T):
                await paused.wait()
            ws = factory.made[0].ws
            assert ws is not None and ws.writing_paused
            assert ws.write_buffer_size > 256 * 1024
            sent = ws.write_buffer_size
            client.transport.resume_reading()
            received = 0
            async with asyncio.timeout(T):
                while not resumed.is_set():
                    frame = await client.recv_frame()
                    assert frame is not None
                    received += len(frame.payload)
            assert received > 0 and not ws.writing_paused
            assert ws.write_buffer_size < sent
        assert factory.made[0].calls[:3] == ["open", "pause", "resume"]


async def test_pause_reading_holds_messages() -> None:
    class Pausing(Recorder):
        def on_message(self, ws: ListenerConnection, message: str | bytes) -> None:
            super().on_message(ws, message)
            if message == "pause":
                ws.pause_reading()

    factory = Factory(Pausing)
    server, uri = await listener_server(factory)
    async with server, wsio.connect(uri, proxy=None) as ws:
        for message in ("pause", "a", "b"):
            await ws.send(message)
        listener = factory.made[0]
        assert await listener.next() == "pause"
        # Nothing more is read meanwhile: the peer's ping waits too.
        pong = asyncio.ensure_future(ws.ping())
        for _ in range(10):
            await asyncio.sleep(0)
        assert listener.messages.empty() and not pong.done()
        assert listener.ws is not None and listener.ws.reading_paused
        listener.ws.resume_reading()
        assert not listener.ws.reading_paused
        assert [await listener.next() for _ in range(2)] == ["a", "b"]
        await asyncio.wait_for(pong, T)


async def test_pause_reading_in_on_open_holds_the_first_messages() -> None:
    class PausedAtOpen(Recorder):
        def on_open(self, ws: ListenerConnection) -> None:
            super().on_open(ws)
            ws.pause_reading()

    factory = Factory(lambda: PausedAtOpen(echo=True))
    server, uri = await listener_server(factory)
    async with server, wsio.connect(uri, proxy=None) as ws:
        await ws.send("a")
        await ws.send(b"b")
        for _ in range(10):
            await asyncio.sleep(0)
        listener = factory.made[0]
        assert listener.messages.empty()
        assert listener.ws is not None and listener.ws.reading_paused
        listener.ws.resume_reading()
        assert [await listener.next() for _ in range(2)] == ["a", b"b"]
        # Delivered as each read comes once resumed: the echo of a later message too.
        await ws.send("c")
        async with asyncio.timeout(T):
            assert [await ws.recv() for _ in range(3)] == ["a", b"b", "c"]


# Several messages in one write: each read is delivered as it is parsed --------------------


def port_of(uri: str) -> int:
    return int(uri.rsplit(":", 1)[1].strip("/"))


async def test_messages_and_control_frames_of_one_write(
    echo_server: tuple[Factory, str],
) -> None:
    factory, uri = echo_server
    async with await RawClient.open(HOST, port_of(uri)) as client:
        await client.handshake()
        await client.send(
            build_frame(OP_TEXT, "a")
            + build_frame(OP_BINARY, b"b")
            + build_frame(0x9, b"ping")
            + build_frame(OP_TEXT, "c", fin=False)
            + build_frame(OP_CONT, "d")
            + build_frame(OP_BINARY, b"e")
        )
        frames = [await client.recv_frame() for _ in range(5)]
        await client.send(build_frame(OP_CLOSE, b"\x03\xe8"))
        frames += await client.recv_frames_until_close()
    assert [(f.opcode, f.payload) for f in frames] == [
        (OP_TEXT, b"a"),
        (OP_BINARY, b"b"),
        (0xA, b"ping"),
        (OP_TEXT, b"cd"),
        (OP_BINARY, b"e"),
        (OP_CLOSE, b"\x03\xe8"),
    ]
    listener = factory.made[0]
    assert await listener.wait_closed() == 1000
    assert listener.calls == ["open"] + ["message"] * 4 + ["close"]


class Acting(Recorder):
    """Acts on the message "act" with ``action``."""

    action: Callable[[ListenerConnection], object] = staticmethod(lambda ws: None)

    def on_message(self, ws: ListenerConnection, message: str | bytes) -> None:
        super().on_message(ws, message)
        if message == "act":
            type(self).action(ws)


async def act_in_one_write(
    action: Callable[[ListenerConnection], object],
) -> tuple[Recorder, list[Any]]:
    """Send "before", "act", "after" in one write to a listener whose "act" does
    ``action``; return the listener and the frames that came back until the close."""
    listener_class = type("Act", (Acting,), {"action": staticmethod(action)})
    factory = Factory(listener_class)
    server, uri = await listener_server(factory)
    async with server, await RawClient.open(HOST, port_of(uri)) as client:
        await client.handshake()
        await client.send(b"".join(build_frame(OP_TEXT, t) for t in ("before", "act", "after")))
        frames = await client.recv_frames_until_close()
        await client.send(build_frame(OP_CLOSE, frames[-1].payload))  # the closing handshake
        listener = factory.made[0]
        await listener.wait_closed()
    return listener, frames


def received(listener: Recorder) -> list[str | bytes]:
    return [listener.messages.get_nowait() for _ in range(listener.messages.qsize())]


async def test_close_in_the_middle_of_a_read_stops_delivery() -> None:
    listener, frames = await act_in_one_write(lambda ws: ws.close(4001, "done"))
    assert received(listener) == ["before", "act"]
    assert frames[-1].opcode == OP_CLOSE and frames[-1].close_code == 4001


async def test_raise_in_the_middle_of_a_read_fails_with_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fail(ws: ListenerConnection) -> None:
        raise ValueError("bug")

    with caplog.at_level(logging.ERROR, logger="wsio"):
        listener, frames = await act_in_one_write(fail)
    assert received(listener) == ["before", "act"]
    assert frames[-1].opcode == OP_CLOSE and frames[-1].close_code == 1011
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        "listener failed"
    ]


async def test_send_in_the_middle_of_a_read_keeps_the_order() -> None:
    def send_then_close(ws: ListenerConnection) -> None:
        ws.send("reply")
        ws.close()

    listener, frames = await act_in_one_write(send_then_close)
    assert received(listener) == ["before", "act"]
    assert [(f.opcode, f.payload) for f in frames[:-1]] == [(OP_TEXT, b"reply")]
    assert frames[-1].close_code == 1000


async def test_pause_in_the_middle_of_a_read_holds_the_rest() -> None:
    paused: list[ListenerConnection] = []

    def pause(ws: ListenerConnection) -> None:
        ws.pause_reading()
        paused.append(ws)

    factory = Factory(type("Act", (Acting,), {"action": staticmethod(pause)}))
    server, uri = await listener_server(factory)
    async with server, await RawClient.open(HOST, port_of(uri)) as client:
        await client.handshake()
        await client.send(
            b"".join(build_frame(OP_TEXT, t) for t in ("before", "act", "after", "last"))
        )
        listener = factory.made[0]
        assert [await listener.next() for _ in range(2)] == ["before", "act"]
        for _ in range(10):
            await asyncio.sleep(0)
        assert listener.messages.empty()
        [ws] = paused
        ws.resume_reading()
        assert [await listener.next() for _ in range(2)] == ["after", "last"]
        await client.send(build_frame(OP_CLOSE, b"\x03\xe8"))
        assert await listener.wait_closed() == 1000


# Handshake: hooks, subprotocols, rejection, redirects ---------------------------------


async def test_process_request_rejects_without_a_listener() -> None:
    def process_request(ws: wsio.ServerListenerConnection, request: wsio.Request) -> Any:
        if request.path == "/forbidden":
            return ws.respond(403, "Forbidden\n")
        return None

    factory = Factory()
    server, uri = await listener_server(factory, process_request=process_request)
    async with server:
        with pytest.raises(wsio.InvalidStatus) as raised:
            await wsio.connect_listener(Factory(Recorder), uri + "forbidden", proxy=None)
        assert raised.value.response.status_code == 403
        assert factory.made == []
        async with wsio.connect(uri + "ok", proxy=None) as ws:
            await ws.send("fine")
            assert await ws.recv() == "fine"
        assert factory.made[0].calls[0] == "open"


async def test_async_hooks_and_subprotocol() -> None:
    async def process_request(ws: Any, request: wsio.Request) -> None:
        await asyncio.sleep(0)

    async def process_response(ws: Any, request: wsio.Request, response: wsio.Response) -> None:
        response.headers["X-Hook"] = "yes"

    def select_subprotocol(ws: Any, offered: Any) -> str | None:
        return "chat" if "chat" in offered else None

    factory = Factory()
    server, uri = await listener_server(
        factory,
        process_request=process_request,
        process_response=process_response,
        select_subprotocol=select_subprotocol,
    )
    async with server, wsio.connect(uri, proxy=None, subprotocols=["chat"]) as ws:
        assert ws.subprotocol == "chat"
        assert ws.response is not None and ws.response.headers["X-Hook"] == "yes"
        # A message sent with the request's answer still comes after on_open.
        await ws.send("hi")
        assert await ws.recv() == "hi"
    listener = factory.made[0]
    assert listener.calls[:2] == ["open", "message"]
    assert listener.ws is not None and listener.ws.subprotocol == "chat"


async def test_messages_sent_with_the_request_follow_on_open() -> None:
    factory = Factory()
    server, uri = await listener_server(factory)
    port = int(uri.rsplit(":", 1)[1].strip("/"))
    async with server, await RawClient.open(HOST, port) as client:
        request = build_request("/", host=f"{HOST}:{port}", key="dGhlIHNhbXBsZSBub25jZQ==")
        frame = build_frame(OP_TEXT, "early", mask=b"abcd")
        response = await client.handshake(request=request + frame)
        assert response.status_code == 101
        frame_back = await client.recv_frame()
        assert frame_back is not None and frame_back.payload == b"early"
        assert factory.made[0].calls[:2] == ["open", "message"]


async def test_connect_listener_follows_redirects(echo_server: tuple[Factory, str]) -> None:
    _, target = echo_server

    def redirect(ws: Any, request: wsio.Request) -> wsio.Response:
        response = ws.respond(302, "")
        response.headers["Location"] = target
        return response

    async def never(ws: wsio.ServerConnection) -> None:
        raise AssertionError("not reached")

    async with wsio.serve(never, HOST, 0, process_request=redirect) as redirector:
        port = redirector.sockets[0].getsockname()[1]
        client_factory = Factory(Recorder)
        async with wsio.connect_listener(client_factory, f"ws://{HOST}:{port}/", proxy=None) as ws:
            assert [uri for uri, _ in ws.redirects] == [f"ws://{HOST}:{port}/"]
            # One listener: the redirect made none.
            assert len(client_factory.made) == 1
            ws.send("redirected")
            assert await client_factory.made[0].next() == "redirected"


async def test_client_listener_gets_messages_sent_with_the_101() -> None:
    async def script(conn: ServerConn) -> None:
        request = await conn.read_request()
        key = request.get_all("Sec-WebSocket-Key")[0]
        await conn.send(build_response(key) + build_frame(OP_TEXT, "with the 101", mask=None))
        await conn.recv_frames_until_close()
        await conn.send_close(1000)

    async with RawServer(script) as raw:
        factory = Factory(Recorder)
        async with wsio.connect_listener(factory, raw.url, proxy=None):
            assert await factory.made[0].next() == "with the 101"
        assert factory.made[0].calls == ["open", "message", "close"]


# Unix sockets -------------------------------------------------------------------------


async def test_unix_listener_server_and_client(socket_path: str) -> None:
    path = socket_path
    factory = Factory()
    async with wsio.unix_serve_listener(factory, path):
        client_factory = Factory(Recorder)
        async with wsio.unix_connect_listener(client_factory, path) as ws:
            ws.send("over unix")
            assert await client_factory.made[0].next() == "over unix"
    assert await factory.made[0].wait_closed() == 1000


# Interop: the websockets package ------------------------------------------------------


async def test_websockets_client_against_listener_server(
    echo_server: tuple[Factory, str],
) -> None:
    from websockets.asyncio.client import connect

    factory, uri = echo_server
    async with connect(uri, proxy=None) as ws:
        for message in ("text", b"bytes", "é" * 1000):
            await ws.send(message)
            assert await ws.recv() == message
    assert await factory.made[0].wait_closed() == 1000


async def test_listener_client_against_websockets_server() -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(echo, HOST, 0) as server:
        port = server.sockets[0].getsockname()[1]
        factory = Factory(Recorder)
        async with wsio.connect_listener(factory, f"ws://{HOST}:{port}/", proxy=None) as ws:
            ws.send("compressed?" * 100)
            ws.send(b"binary")
            listener = factory.made[0]
            assert await listener.next() == "compressed?" * 100
            assert await listener.next() == b"binary"
        assert await listener.wait_closed() == 1000
