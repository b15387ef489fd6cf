"""A client's large frame, masked a piece at a time: the asyncio connections take the next
piece only while the transport's buffer is below the write limit, and send() returns once
all of it is in the transport (RFC 6455 §5.3)."""

from __future__ import annotations

import asyncio

import pytest

from wsio.asyncio.connection import Connection
from wsio.asyncio.listener import Listener, ListenerConnection
from wsio.protocol.connection import PreparedMessage, Protocol, Side, State
from wsio.protocol.masking import MASKED_PIECE, python_apply_mask

T = 5.0  # upper bound of every wait that should succeed

LIMIT = 64 * 1024
PAYLOAD = bytes(range(256)) * (5 * MASKED_PIECE // 256) + b"tail"


class FlowTransport(asyncio.Transport):
    """A transport that keeps what is written until :meth:`drain` lets it go, with the
    flow control of asyncio's: pause_writing above the high-water mark, resume_writing
    once at or below the low one."""

    def __init__(self) -> None:
        super().__init__()
        self.protocol: asyncio.BaseProtocol | None = None
        self.buffer = bytearray()
        self.sent = bytearray()
        self.high = self.low = 0
        self.paused = False
        # The buffer's size each time a write went above the write limit.
        self.writes_over_limit: list[int] = []

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        assert high is not None
        self.high, self.low = high, high // 4 if low is None else low

    def get_write_buffer_size(self) -> int:
        return len(self.buffer)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if len(self.buffer) > self.high:
            self.writes_over_limit.append(len(self.buffer))
        self.buffer += data
        if not self.paused and len(self.buffer) > self.high:
            self.paused = True
            assert self.protocol is not None
            self.protocol.pause_writing()  # type: ignore[attr-defined]

    def drain(self, size: int) -> None:
        """The kernel took ``size`` bytes."""
        self.sent += self.buffer[:size]
        del self.buffer[:size]
        if self.paused and len(self.buffer) <= self.low:
            self.paused = False
            assert self.protocol is not None
            self.protocol.resume_writing()  # type: ignore[attr-defined]

    def is_closing(self) -> bool:
        return False

    def can_write_eof(self) -> bool:
        return False


def frame_header(payload: bytes) -> bytes:
    """The header of the client's binary frame of ``payload``, without its masking key."""
    return b"\x82\xff" + len(payload).to_bytes(8, "big")


def check_frame(sent: bytes, payload: bytes) -> None:
    """``sent`` is the client's binary frame of ``payload``, masked with the key it carries."""
    header = frame_header(payload)
    assert sent[: len(header)] == header
    mask = sent[len(header) : len(header) + 4]
    assert python_apply_mask(sent[len(header) + 4 :], mask) == payload


def connect(connection: Connection | ListenerConnection) -> FlowTransport:
    transport = FlowTransport()
    transport.set_protocol(connection)
    connection.connection_made(transport)
    return transport


async def test_send_takes_a_piece_while_the_transport_is_below_the_limit() -> None:
    ws = Connection(Protocol(Side.CLIENT, state=State.OPEN), ping_interval=None, write_limit=LIMIT)
    transport = connect(ws)
    sending = asyncio.create_task(ws.send(PAYLOAD))
    await asyncio.sleep(0)
    # One piece went to the transport, which paused; the core holds the rest.
    assert not sending.done()
    assert ws.writing_paused
    assert ws.protocol.has_data_to_send
    assert len(transport.buffer) == 14 + MASKED_PIECE
    assert ws.write_buffer_size == 14 + len(PAYLOAD)
    async with asyncio.timeout(T):
        for _ in range(1000):
            if sending.done():
                break
            transport.drain(48 * 1024)
            await asyncio.sleep(0)
        await sending
    # send() returned once the last piece was in the transport, below the limit.
    assert not ws.protocol.has_data_to_send
    assert len(transport.buffer) <= LIMIT // 4 + 4
    transport.drain(len(transport.buffer))
    check_frame(bytes(transport.sent), PAYLOAD)
    # No piece was written while the buffer was above the limit.
    assert transport.writes_over_limit == []


async def test_a_broadcast_counts_the_pieces_still_to_write() -> None:
    """For a slow consumer's verdict, what the core still holds of a large frame is
    unsent, as what the transport holds is."""
    ws = Connection(Protocol(Side.CLIENT, state=State.OPEN), ping_interval=None, write_limit=LIMIT)
    transport = connect(ws)
    sending = asyncio.create_task(ws.send(PAYLOAD))
    await asyncio.sleep(0)
    assert len(transport.buffer) < 2 * MASKED_PIECE < ws.write_buffer_size
    prepared = PreparedMessage(b"news", text=False)
    assert ws._offer(prepared, 2 * MASKED_PIECE, "skip") == "skip"
    sending.cancel()


class HoldingTransport(FlowTransport):
    """A transport that keeps the objects written, not copies, until they are sent, as
    asyncio's does on Python 3.12 and later with what the kernel didn't take at once."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[bytes | bytearray | memoryview] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.held.append(data)


async def test_a_frame_held_by_the_transport_is_not_overwritten() -> None:
    """Large frames are built in a buffer reused from one to the next, but not while the
    transport holds a view of the last one: the frames it sends later are intact."""
    ws = Connection(Protocol(Side.CLIENT, state=State.OPEN), ping_interval=None)
    transport = HoldingTransport()
    transport.set_protocol(ws)
    ws.connection_made(transport)
    messages = [bytes([index]) * 300_000 for index in range(3)]
    for message in messages:
        await ws.send(message)
    for sent, message in zip(transport.held, messages, strict=True):
        check_frame(bytes(sent), message)


class Recorder(Listener):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_pause_writing(self, ws: ListenerConnection) -> None:
        self.calls.append("pause")

    def on_resume_writing(self, ws: ListenerConnection) -> None:
        self.calls.append("resume")


@pytest.mark.parametrize("drained", [16 * 1024, MASKED_PIECE + 64 * 1024])
async def test_listener_is_told_of_one_pause_for_a_large_frame(drained: int) -> None:
    """A listener's send() is written at once, the first piece of a large frame only: the
    rest follows as the transport drains. Resuming pauses again until the last piece is
    in, and the listener hears of a pause and of a resume, not of those in between."""
    ws = ListenerConnection(
        Protocol(Side.CLIENT, state=State.OPEN),
        listener_factory=Recorder,
        ping_interval=None,
        write_limit=LIMIT,
    )
    transport = connect(ws)
    ws._open_listener()  # as a client or server does once the handshake succeeded
    listener = ws.listener
    assert isinstance(listener, Recorder)
    ws.send(PAYLOAD)
    assert listener.calls == ["pause"]
    for _ in range(1000):
        if not transport.buffer:
            break
        transport.drain(drained)
    assert listener.calls == ["pause", "resume"]
    assert not ws.writing_paused and not ws.protocol.has_data_to_send
    check_frame(bytes(transport.sent), PAYLOAD)
    assert transport.writes_over_limit == []
