"""Faults of the network and of the application (BAD-INPUT.md items 28–36).

Timers are shortened (``ping_interval=0.5`` and the like) so the suite stays fast; every wait
is bounded. Most tests run in both roles: wsio as the server (the raw peer is a client) and
wsio as the client (the raw peer is a server). Those marked ``both_layers`` run on both I/O
layers (tests/layers.py); the others look into asyncio's transport or time the layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import wsio
from rawpeer import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RawClient,
    RawServer,
    ServerConn,
    build_frame,
)

WsPairFactory = Callable[..., Awaitable[Any]]
EchoServerFactory = Callable[..., Awaitable[tuple[Any, int]]]

STEP = 3.0


@pytest.fixture(params=["server", "client"])
def role(request: pytest.FixtureRequest) -> str:
    """wsio's role in the test."""
    param: str = request.param
    return param


def assert_no_traceback_logged(caplog: pytest.LogCaptureFixture) -> None:
    """No log record carries a traceback, and nothing is logged at ERROR or above."""
    gc.collect()  # surfaces "Task exception was never retrieved" and the like
    for record in caplog.records:
        assert record.exc_info is None, (record.name, record.getMessage())
        assert record.levelno < logging.ERROR, (record.name, record.getMessage())
    assert "Traceback" not in caplog.text


async def peer_answers_close(pair: Any) -> None:
    """The raw peer answers wsio's close frame and closes TCP when its role says so."""
    await pair.peer.send_close(1000)
    if pair.role == "server":
        # A client closes TCP once the server has (RFC 6455 §7.1.1).
        assert await pair.peer.wait_eof(STEP), "wsio server did not close TCP"
    pair.peer.close()


# -- 28. Half-open connection: keepalive -----------------------------------------------------

KEEPALIVE = {"ping_interval": 0.5, "ping_timeout": 0.5, "close_timeout": 0.5}


async def test_silent_peer_is_detected_by_keepalive(ws_pair: WsPairFactory, role: str) -> None:
    pair = await ws_pair(role, **KEEPALIVE)
    started = time.monotonic()
    pending = asyncio.ensure_future(pair.ws.recv())
    try:
        # The peer reads but never answers (a half-open connection looks the same to wsio).
        frames = await pair.peer.recv_frames_until_close(timeout=STEP)
        detected = time.monotonic() - started
        assert [f.opcode for f in frames] == [OP_PING, OP_CLOSE], frames
        assert frames[-1].close_code == 1011
        assert 0.9 <= detected <= 1.0 + 0.5, f"detected after {detected:.2f}s"
        with pytest.raises(wsio.ConnectionClosedError) as caught:
            await asyncio.wait_for(pending, STEP)
    finally:
        pending.cancel()
    assert caught.value.code == 1011
    assert time.monotonic() - started <= 1.0 + 0.5 + 0.5 + 0.5
    assert await pair.peer.wait_eof(STEP), "wsio did not close TCP"
    with pytest.raises(wsio.ConnectionClosedError):
        await asyncio.wait_for(pair.ws.send("too late"), STEP)


async def test_keepalive_fails_a_pending_send(ws_pair: WsPairFactory, role: str) -> None:
    # The peer neither reads nor answers: send() blocks on the full buffer, and the keepalive
    # timeout must still end the connection and make that pending send() raise.
    pair = await ws_pair(role, write_limit=16384, **KEEPALIVE)
    chunk = bytes(1 << 20)

    async def flood() -> None:
        for _ in range(256):  # 256 MiB at most; it blocks long before
            await pair.ws.send(chunk)

    started = time.monotonic()
    sender = asyncio.ensure_future(flood())
    try:
        with pytest.raises(wsio.ConnectionClosedError) as caught:
            await asyncio.wait_for(sender, 5)
    finally:
        sender.cancel()
    elapsed = time.monotonic() - started
    assert elapsed <= 1.0 + 0.5 + 0.5 + 0.5, f"pending send() raised after {elapsed:.2f}s"
    assert caught.value.code in (1011, 1006)
    assert await pair.peer.wait_eof(STEP), "wsio did not close TCP"


# -- 29. close() against a peer that never answers -------------------------------------------


async def test_close_returns_after_close_timeout(ws_pair: WsPairFactory, role: str) -> None:
    pair = await ws_pair(role, close_timeout=0.5)
    started = time.monotonic()
    await asyncio.wait_for(pair.ws.close(), STEP)
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed <= 1.2, f"close() returned after {elapsed:.2f}s"
    frames = await pair.peer.recv_frames_until_close(timeout=STEP)
    assert [(f.opcode, f.close_code) for f in frames] == [(OP_CLOSE, 1000)]
    assert await pair.peer.wait_eof(0.5), "TCP was not aborted"
    with pytest.raises(wsio.ConnectionClosedError) as caught:
        await asyncio.wait_for(pair.ws.recv(), STEP)
    assert caught.value.sent is not None and caught.value.sent.code == 1000
    assert caught.value.rcvd is None


# -- 30. A peer that never reads -------------------------------------------------------------


async def wait_until_stalled(progress: Callable[[], int], quiet: float, limit: float) -> int:
    """Poll ``progress()`` until it has not changed for ``quiet`` seconds; bounded by ``limit``."""
    deadline = time.monotonic() + limit
    last, since = progress(), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        now = progress()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    raise AssertionError(f"still progressing after {limit}s (at {last})")


async def test_send_waits_when_peer_does_not_read(ws_pair: WsPairFactory, role: str) -> None:
    write_limit = 32768
    pair = await ws_pair(role, write_limit=write_limit)
    chunk_size = 65536
    count = 1024  # 64 MiB, far more than the kernel buffers
    sent = 0

    async def flood() -> None:
        nonlocal sent
        for i in range(count):
            await pair.ws.send(struct.pack("!I", i) + bytes(chunk_size - 4))
            sent += 1

    sender = asyncio.ensure_future(flood())
    try:
        stalled_at = await wait_until_stalled(lambda: sent, quiet=0.5, limit=10)
        assert not sender.done()
        assert stalled_at < count
        # wsio buffers at most write_limit plus the frame being written.
        buffered = pair.ws.transport.get_write_buffer_size()
        assert buffered <= write_limit + chunk_size + 14, buffered
        # Reading resumes the sender, and the stream is intact and in order.
        for i in range(stalled_at + 8):
            frame = await pair.peer.recv_frame(STEP)
            assert frame is not None and frame.opcode == OP_BINARY
            assert len(frame.payload) == chunk_size
            assert struct.unpack("!I", frame.payload[:4])[0] == i
        assert sent > stalled_at
        # The peer vanishes: the pending send() raises.
        pair.peer.abort()
        with pytest.raises(wsio.ConnectionClosedError) as caught:
            await asyncio.wait_for(sender, STEP)
        assert caught.value.code == 1006
    finally:
        sender.cancel()


@pytest.mark.parametrize("message_first", [False, True])
async def test_pings_from_a_peer_that_never_reads(
    ws_pair: WsPairFactory, role: str, message_first: bool
) -> None:
    """RFC 6455 §5.5.3: pongs wait with the write buffer, one for the latest ping. A peer
    that floods pings and never reads costs write_limit and a few kilobytes, not a pong a
    ping, and the connection works on once it reads. With a message sent first, writing is
    paused throughout the flood and the latest ping's pong goes out when it resumes."""
    write_limit = 32768
    # Small kernel buffers on the way of the pongs: they reach wsio's write buffer sooner.
    pair = await ws_pair(
        role, write_limit=write_limit, ping_interval=None, peer_receive_buffer=4096
    )
    pair.ws.transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
    )
    mask = None if role == "client" else b"\x01\x02\x03\x04"
    payload_size = 125
    pong_size = 2 + (4 if role == "client" else 0) + payload_size
    frame_size = len(build_frame(OP_PING, bytes(payload_size), mask=mask))
    per_batch = 262144 // frame_size
    batches = 20_000_000 // (per_batch * frame_size)
    # A message first: an empty one leaves the buffer empty; a large one keeps it above
    # write_limit (the kernel buffers are small), so send() waits and writing is paused.
    message = bytes(131072) if message_first else b""
    sender = asyncio.ensure_future(pair.ws.send(message))
    await asyncio.sleep(0)
    assert sender.done() is not message_first
    # At most write_limit, then what one read may add: the pongs that the core queues
    # before it answers only the latest (4 KiB), or the message.
    bound = write_limit + 4096 + pong_size + (len(message) + 10 if message_first else 0)
    highest = 0
    last = b""
    for batch in range(batches):
        pings = []
        for i in range(per_batch):
            last = struct.pack("!II", batch, i).ljust(payload_size, b"-")
            pings.append(build_frame(OP_PING, last, mask=mask))
        await pair.peer.send(b"".join(pings), timeout=STEP)
        highest = max(highest, pair.ws.transport.get_write_buffer_size())
    assert highest <= bound, highest
    # The peer reads: pongs, the latest ping's last, then the connection works on.
    frame = await pair.peer.recv_frame(STEP)
    assert frame is not None and frame.opcode == OP_BINARY and frame.payload == message
    await asyncio.wait_for(sender, STEP)
    for _ in range(batches * per_batch + 1):
        frame = await pair.peer.recv_frame(STEP)
        assert frame is not None and frame.opcode == OP_PONG
        if frame.payload == last:
            break
    else:
        raise AssertionError("no pong for the latest ping")
    await pair.ws.send("still here")
    frame = await pair.peer.recv_frame(STEP)
    assert frame is not None and frame.opcode == OP_TEXT and frame.payload == b"still here"
    await pair.peer.send_frame(OP_TEXT, "me too")
    assert await asyncio.wait_for(pair.ws.recv(), STEP) == "me too"


# -- 31. An application that never reads -----------------------------------------------------


async def test_reading_pauses_at_max_queue(ws_pair: WsPairFactory, role: str) -> None:
    max_queue = 4
    # close_timeout bounds the teardown, see test_close_with_a_full_queue_is_prompt.
    pair = await ws_pair(role, max_queue=max_queue, close_timeout=1)
    size = 256 * 1024
    count = 400  # 100 MiB, far more than the kernel buffers
    sent = 0

    async def stream() -> None:
        nonlocal sent
        for i in range(count):
            payload = struct.pack("!I", i) + bytes(size - 4)
            await pair.peer.send_frame(OP_BINARY, payload, timeout=60)
            sent += 1

    streamer = asyncio.ensure_future(stream())
    try:
        stalled_at = await wait_until_stalled(lambda: sent, quiet=0.5, limit=15)
        assert not streamer.done()
        assert stalled_at < count
        # wsio stopped reading from the socket: the kernel buffers hold the rest.
        assert not pair.ws.transport.is_reading()
        # Reading resumes, messages are intact and in order, and the peer gets going again.
        for i in range(stalled_at + 8):
            message = await asyncio.wait_for(pair.ws.recv(), STEP)
            assert len(message) == size
            assert struct.unpack("!I", message[:4])[0] == i
        assert sent > stalled_at
    finally:
        streamer.cancel()
        await asyncio.gather(streamer, return_exceptions=True)


async def test_close_with_a_full_queue_is_prompt(ws_pair: WsPairFactory, role: str) -> None:
    # Reading is paused (the queue is full) when the application decides to close: the
    # peer's close frame must still be read, so close() completes without close_timeout.
    pair = await ws_pair(role, max_queue=2, close_timeout=2)
    for _ in range(10):
        await pair.peer.send_frame(OP_BINARY, bytes(1000))
    await asyncio.sleep(0.2)  # wsio has read up to its limit and paused
    started = time.monotonic()
    closing = asyncio.ensure_future(pair.ws.close())
    try:
        frames = await pair.peer.recv_frames_until_close(timeout=STEP)
        assert [(f.opcode, f.close_code) for f in frames] == [(OP_CLOSE, 1000)]
        await peer_answers_close(pair)
        await asyncio.wait_for(closing, STEP)
    finally:
        closing.cancel()
    elapsed = time.monotonic() - started
    assert elapsed <= 1.0, f"close() took {elapsed:.2f}s (close_timeout=2)"


# -- 32. Reset or EOF in the middle of a frame -----------------------------------------------


@pytest.mark.parametrize(
    ("tls", "fault"),
    [
        (False, "reset"),
        (False, "eof"),
        (True, "reset"),
        (True, "eof-without-close-notify"),
        (True, "truncated-record"),
    ],
)
async def test_connection_lost_mid_frame_is_1006(
    ws_pair: WsPairFactory,
    role: str,
    tls: bool,
    fault: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    pair = await ws_pair(role, tls=tls)
    await pair.peer.send_frame(OP_TEXT, "before")
    frame = build_frame(OP_BINARY, bytes(100), mask=pair.peer.default_mask)
    await pair.peer.send(frame[:30])
    assert await asyncio.wait_for(pair.ws.recv(), STEP) == "before"
    pending = asyncio.ensure_future(pair.ws.recv())
    await asyncio.sleep(0.05)  # wsio has read the partial frame
    started = time.monotonic()
    if fault == "reset":
        pair.peer.reset_connection()
    elif fault == "truncated-record":
        pair.peer.send_below_tls(b"\x17\x03\x03\x00\x40" + bytes(10))  # 10 of 64 bytes
        pair.peer.shutdown_tcp()
    else:
        pair.peer.shutdown_tcp()
    try:
        with pytest.raises(wsio.ConnectionClosedError) as caught:
            await asyncio.wait_for(pending, STEP)
    finally:
        pending.cancel()
    assert time.monotonic() - started <= 0.5
    assert caught.value.code == 1006
    assert caught.value.rcvd is None
    with pytest.raises(wsio.ConnectionClosedError):
        await asyncio.wait_for(pair.ws.send("after"), STEP)
    await asyncio.sleep(0.1)
    assert_no_traceback_logged(caplog)


# -- 33. TLS: a ClientHello, then silence ----------------------------------------------------


def client_hello(context: ssl.SSLContext) -> bytes:
    """The first flight of a TLS client, produced without a socket."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    data = outgoing.read()
    assert data[:1] == b"\x16", data[:5]  # a handshake record
    return data


@pytest.mark.parametrize("hello", [True, False], ids=["client-hello", "nothing"])
async def test_tls_silence_closed_at_open_timeout(
    echo_server: EchoServerFactory,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
    hello: bool,
) -> None:
    caplog.set_level(logging.INFO)
    _, port = await echo_server(ssl=server_ssl_context, open_timeout=1)
    client = await RawClient.open("127.0.0.1", port)  # plain TCP: we speak TLS by hand
    started = time.monotonic()
    try:
        if hello:
            await client.send(client_hello(client_ssl_context))
        assert await client.wait_eof(STEP), "server kept the silent connection"
        elapsed = time.monotonic() - started
        assert 0.8 <= elapsed <= 2.0, f"closed after {elapsed:.2f}s, open_timeout=1"
    finally:
        client.abort()
    await asyncio.sleep(0.1)
    assert_no_traceback_logged(caplog)


async def test_client_open_timeout_covers_tls(client_ssl_context: ssl.SSLContext) -> None:
    async def silent(conn: ServerConn) -> None:
        await conn.wait_eof(STEP)  # swallow the ClientHello, never answer

    async with RawServer(silent) as srv:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                wsio.connect(
                    f"wss://127.0.0.1:{srv.port}/", ssl=client_ssl_context, open_timeout=1
                ),
                STEP,
            )
        elapsed = time.monotonic() - started
        assert 0.8 <= elapsed <= 2.0, f"gave up after {elapsed:.2f}s, open_timeout=1"
        await srv.wait_scripts(STEP)
        assert srv.connections[0].eof


# -- 34. Pongs -------------------------------------------------------------------------------


@pytest.mark.both_layers
async def test_stray_pongs_are_ignored(ws_pair: WsPairFactory, role: str) -> None:
    pair = await ws_pair(role)
    await pair.peer.send_frame(OP_PONG, b"unsolicited")
    await pair.peer.send_frame(OP_PONG, b"")
    ping = asyncio.ensure_future(pair.ws.ping(b"abc"))
    try:
        frame = await pair.peer.recv_frame(STEP)
        assert frame is not None and (frame.opcode, frame.payload) == (OP_PING, b"abc")
        await pair.peer.send_frame(OP_PONG, b"wrong")
        await asyncio.sleep(0.1)
        assert not ping.done(), "a pong with another payload answered the ping"
        await pair.peer.send_frame(OP_PONG, b"abc")
        await pair.peer.send_frame(OP_PONG, b"abc")
        latency = await asyncio.wait_for(ping, STEP)
    finally:
        ping.cancel()
    assert isinstance(latency, float) and 0 <= latency < STEP
    await pair.peer.send_frame(OP_PONG, b"abc")
    await pair.peer.send_frame(OP_TEXT, "still ok")
    assert await asyncio.wait_for(pair.ws.recv(), STEP) == "still ok"
    await pair.ws.send("reply")
    frame = await pair.peer.recv_frame(STEP)
    assert frame is not None and (frame.opcode, frame.text) == (OP_TEXT, "reply")


# -- 35. A handler that blocks the event loop ------------------------------------------------


async def test_blocking_handler_causes_no_spurious_close(echo_server: EchoServerFactory) -> None:
    async def handler(ws: Any) -> None:
        async for message in ws:
            if message == "block":
                time.sleep(2)  # blocks the event loop on purpose
            await ws.send(message)

    _, port = await echo_server(handler)  # default timers
    client = await RawClient.open("127.0.0.1", port)
    try:
        assert (await client.handshake()).status_code == 101
        await client.send_frame(OP_TEXT, "block")
        await asyncio.sleep(0.2)  # the loop is blocked now; these wait in the kernel
        await client.send_frame(OP_PING, b"during")
        await client.send_frame(OP_TEXT, "after")
        frames = [await client.recv_frame(STEP) for _ in range(3)]
        assert all(f is not None for f in frames)
        seen = sorted((f.opcode, f.payload) for f in frames if f is not None)
        assert seen == [(OP_TEXT, b"after"), (OP_TEXT, b"block"), (OP_PONG, b"during")]
        await client.send_close(1000)
        closing = await client.recv_frames_until_close(STEP)
        assert [(f.opcode, f.close_code) for f in closing] == [(OP_CLOSE, 1000)]
        assert await client.wait_eof(STEP)
    finally:
        client.abort()


# -- 36. API misuse --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "misuse",
    [
        "close(1005)",
        "close(1006)",
        "close(999)",
        "close(1015)",
        "close(5000)",
        "close(1000, 'r' * 124)",
        "close(1000, 'é' * 62)",
        "ping(b'p' * 126)",
        "pong(b'p' * 126)",
        # Lone surrogates have no UTF-8 encoding.
        "close(1000, 'a\\ud800')",
        "ping('\\udfff')",
        "pong('p\\ud800')",
        "send('text \\ud800')",
        "send(['\\ud800', 'b'])",
    ],
)
@pytest.mark.both_layers
async def test_misuse_raises_invalid_argument(
    ws_pair: WsPairFactory, role: str, misuse: str
) -> None:
    pair = await ws_pair(role)
    call = eval(f"pair.ws.{misuse}", {"pair": pair})  # a coroutine, not awaited yet
    with pytest.raises(wsio.InvalidArgument):
        await asyncio.wait_for(call, STEP)
    assert issubclass(wsio.InvalidArgument, ValueError)
    # Nothing was written: the next frame on the wire is the next message.
    await pair.ws.send("ok")
    frame = await pair.peer.recv_frame(STEP)
    assert frame is not None and (frame.opcode, frame.text) == (OP_TEXT, "ok")
    await pair.peer.send_frame(OP_TEXT, "still open")
    assert await asyncio.wait_for(pair.ws.recv(), STEP) == "still open"


@pytest.mark.both_layers
async def test_close_reason_of_123_bytes_is_allowed(ws_pair: WsPairFactory, role: str) -> None:
    pair = await ws_pair(role, close_timeout=0.5)
    reason = "é" * 61 + "x"  # 123 bytes
    closing = asyncio.ensure_future(pair.ws.close(4000, reason))
    try:
        frame = await pair.peer.recv_frame(STEP)
        assert frame is not None and frame.opcode == OP_CLOSE
        assert (frame.close_code, frame.close_reason) == (4000, reason.encode())
    finally:
        closing.cancel()


@pytest.mark.both_layers
async def test_two_concurrent_recv(ws_pair: WsPairFactory, role: str) -> None:
    pair = await ws_pair(role)
    first = asyncio.ensure_future(pair.ws.recv())
    try:
        await asyncio.sleep(0.05)
        with pytest.raises(wsio.ConcurrencyError):
            await asyncio.wait_for(pair.ws.recv(), STEP)
        await pair.peer.send_frame(OP_TEXT, "for the first")
        assert await asyncio.wait_for(first, STEP) == "for the first"
    finally:
        first.cancel()
    await pair.peer.send_frame(OP_TEXT, "next")
    assert await asyncio.wait_for(pair.ws.recv(), STEP) == "next"


@pytest.mark.both_layers
async def test_send_and_recv_after_close(ws_pair: WsPairFactory, role: str) -> None:
    pair = await ws_pair(role)
    closing = asyncio.ensure_future(pair.ws.close())
    try:
        frame = await pair.peer.recv_frame(STEP)
        assert frame is not None and (frame.opcode, frame.close_code) == (OP_CLOSE, 1000)
        await peer_answers_close(pair)
        await asyncio.wait_for(closing, STEP)
    finally:
        closing.cancel()
    with pytest.raises(wsio.ConnectionClosedOK) as caught:
        await pair.ws.send("late")
    assert caught.value.code == 1000
    with pytest.raises(wsio.ConnectionClosedOK):
        await asyncio.wait_for(pair.ws.recv(), STEP)
    with pytest.raises(wsio.ConnectionClosed):
        await asyncio.wait_for(pair.ws.ping(b"late"), STEP)
    # Nothing more reached the wire after the close frame.
    assert pair.peer.eof or await pair.peer.wait_eof(STEP)
    assert not pair.peer.parser.buffer, bytes(pair.peer.parser.buffer)
