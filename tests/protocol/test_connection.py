"""The connection state machine on an open connection: frames in, events and frames out
(RFC 6455 §5, §7, §8.1), on both sides, byte for byte."""

from __future__ import annotations

import dataclasses
import itertools
import tracemalloc

import hypothesis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsio.exceptions import (
    ConcurrencyError,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidArgument,
    InvalidState,
    PayloadTooBig,
    ProtocolError,
)
from wsio.protocol.connection import (
    BinaryMessage,
    Ping,
    Pong,
    Protocol,
    Side,
    State,
    TextMessage,
)
from wsio.protocol.frames import Close
from wsio.protocol.masking import MASKED_PIECE

from .helpers import (
    BINARY,
    CLOSE,
    CONT,
    MASK,
    OTHER_MASK,
    PING,
    PONG,
    TEXT,
    Frame,
    chop,
    close_payload,
    decode_frames,
    exchange,
    feed,
    frame,
    make,
    other,
    output,
    parser_buffers,
    sent_by,
    to,
)

INVALID_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000]
VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]


@pytest.fixture(params=[Side.SERVER, Side.CLIENT], ids=["server", "client"])
def side(request: pytest.FixtureRequest) -> Side:
    return request.param  # type: ignore[no-any-return]


def assert_failed(protocol: Protocol, code: int) -> None:
    """The protocol failed the connection with ``code`` (§7.1.7): it queued a close frame
    with that code, a server also closed TCP, and input is no longer processed."""
    frames, eof = output(protocol)
    assert frames, "no close frame was sent"
    assert frames[-1].opcode == CLOSE
    assert frames[-1].payload[:2] == code.to_bytes(2, "big")
    assert eof is (protocol.side is Side.SERVER)
    assert isinstance(protocol.failure, ProtocolError)
    assert protocol.failure.close_code == code
    assert protocol.close_sent is not None and protocol.close_sent.code == code
    assert protocol.state is State.CLOSING
    assert not protocol.receiving
    assert protocol.close_expected()
    # Nothing more is processed, not even a valid frame or a close frame.
    protocol.receive_data(to(protocol.side, TEXT, b"after") + to(protocol.side, CLOSE))
    assert protocol.events_received() == []
    assert protocol.data_to_send() == []
    exc = protocol.close_exc
    assert isinstance(exc, ConnectionClosedError)
    assert exc.code == code
    assert exc.__cause__ is protocol.failure


def assert_open(protocol: Protocol) -> None:
    assert protocol.state is State.OPEN
    assert protocol.failure is None
    assert protocol.receiving


# Initial state


def test_initial_state(side: Side) -> None:
    protocol = make(side)
    assert protocol.side is side
    assert_open(protocol)
    assert protocol.close_code is None
    assert protocol.close_reason is None
    assert protocol.close_rcvd is None and protocol.close_sent is None
    assert not protocol.close_expected()
    assert protocol.events_received() == []
    assert protocol.data_to_send() == []


# Sending (§5.2, §5.3, §5.4): clients mask every frame, servers none


def test_send_text(side: Side) -> None:
    protocol = make(side)
    protocol.send_text("café".encode())
    assert protocol.data_to_send() == [sent_by(side, TEXT, "café".encode())]


def test_send_binary(side: Side) -> None:
    protocol = make(side)
    protocol.send_binary(b"\x00\xff")
    assert protocol.data_to_send() == [sent_by(side, BINARY, b"\x00\xff")]


def test_send_empty(side: Side) -> None:
    protocol = make(side)
    protocol.send_text(b"")
    protocol.send_binary(b"")
    assert protocol.data_to_send() == [sent_by(side, TEXT), sent_by(side, BINARY)]


@pytest.mark.parametrize("length", [125, 126, 65535, 65536])
def test_send_length_encodings(side: Side, length: int) -> None:
    protocol = make(side)
    data = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    protocol.send_binary(data)
    assert b"".join(protocol.data_to_send()) == sent_by(side, BINARY, data)


def test_server_writes_a_large_payload_without_copying_it() -> None:
    """From 128 KiB on, a server's frame is its header, then the payload object itself."""
    protocol = make(Side.SERVER)
    data = bytes(131072)
    protocol.send_binary(data)
    header, payload = protocol.data_to_send()
    assert header == sent_by(Side.SERVER, BINARY, data)[:10]
    assert payload is data


def take_all(protocol: Protocol) -> list[list[bytes]]:
    """What data_to_send() returns, call after call, until nothing is left (at most 100)."""
    rounds = []
    for _ in range(100):
        if not protocol.has_data_to_send:
            return rounds
        rounds.append(protocol.data_to_send())
    raise AssertionError("data_to_send() never ran dry")


def test_client_masks_a_larger_payload_a_piece_at_a_time() -> None:
    """Past MASKED_PIECE, a client's frame is masked one piece per call of data_to_send(),
    its header with the first: the bytes are the frame's, in order, and a ping queued
    meanwhile goes after the last piece."""
    protocol = make(Side.CLIENT)
    data = bytes(range(256)) * (MASKED_PIECE // 256 * 2 + 1)  # two pieces and 256 bytes
    protocol.send_binary(data)
    assert protocol.size_to_send == 14 + len(data)
    first = protocol.data_to_send()
    assert [len(b) for b in first] == [14 + MASKED_PIECE]
    assert protocol.has_data_to_send
    assert protocol.size_to_send == len(data) - MASKED_PIECE
    protocol.send_ping(b"after")
    rounds = take_all(protocol)
    assert [[len(b) for b in writes] for writes in rounds] == [[MASKED_PIECE], [256], [11]]
    assert b"".join(first + rounds[0] + rounds[1]) == sent_by(Side.CLIENT, BINARY, data)
    assert rounds[2] == [sent_by(Side.CLIENT, PING, b"after")]
    assert protocol.size_to_send == 0


def test_client_masks_queued_large_payloads_one_after_the_other() -> None:
    """Two larger frames queued back to back, between smaller ones (a fragmented message
    and a close): each frame whole, in the order they were queued."""
    protocol = make(Side.CLIENT)
    first, second = b"a" * (MASKED_PIECE + 4), b"b" * (MASKED_PIECE + 1)
    protocol.send_text(first, fin=False)
    protocol.send_ping(b"between")
    protocol.send_continuation(second, fin=True)
    protocol.send_close(1000)
    stream = b"".join(itertools.chain.from_iterable(take_all(protocol)))
    assert stream == b"".join(
        [
            sent_by(Side.CLIENT, TEXT, first, fin=False),
            sent_by(Side.CLIENT, PING, b"between"),
            sent_by(Side.CLIENT, CONT, second),
            sent_by(Side.CLIENT, CLOSE, close_payload(1000)),
        ]
    )


def test_client_send_message_hands_back_a_frame_of_up_to_one_piece() -> None:
    protocol = make(Side.CLIENT)
    data = bytes(MASKED_PIECE)
    assert protocol.send_message(data, False) == sent_by(Side.CLIENT, BINARY, data)
    assert protocol.send_message(data + b"!", False) is None
    assert [len(b) for b in protocol.data_to_send()] == [14 + MASKED_PIECE]
    assert protocol.has_data_to_send


def test_dropping_what_is_queued_forgets_the_pieces_left() -> None:
    protocol = make(Side.CLIENT)
    protocol.send_binary(bytes(3 * MASKED_PIECE))
    protocol.data_to_send()
    protocol.drop_data_to_send()
    assert not protocol.has_data_to_send
    assert protocol.data_to_send() == []
    protocol.send_ping(b"next")
    assert protocol.data_to_send() == [sent_by(Side.CLIENT, PING, b"next")]


def test_client_holds_one_masked_piece_at_a_time() -> None:
    """Sending a 16 MiB frame, whose pieces are written (dropped here) as they come,
    allocates a piece at a time, not a masked copy of the payload."""
    protocol = make(Side.CLIENT)
    data = bytes(16 * MASKED_PIECE)
    tracemalloc.start()
    try:
        protocol.send_binary(data)
        for _ in range(100):
            if not protocol.has_data_to_send:
                break
            protocol.data_to_send()
        _, peak = tracemalloc.get_traced_memory()
        assert not protocol.has_data_to_send
    finally:
        tracemalloc.stop()
    # The piece, and the pure-Python masking's temporaries (big integers): a few pieces,
    # whatever the size of the payload.
    assert peak < 4 * MASKED_PIECE


def test_send_fragmented(side: Side) -> None:
    protocol = make(side)
    protocol.send_text(b"Hel", fin=False)
    protocol.send_ping(b"in between")
    protocol.send_continuation(b"l", fin=False)
    protocol.send_continuation(b"o", fin=True)
    protocol.send_binary(b"next")
    assert protocol.data_to_send() == [
        sent_by(side, TEXT, b"Hel", fin=False),
        sent_by(side, PING, b"in between"),
        sent_by(side, CONT, b"l", fin=False),
        sent_by(side, CONT, b"o"),
        sent_by(side, BINARY, b"next"),
    ]


def test_send_message_hands_back_the_frame(side: Side) -> None:
    """With nothing queued, send_message returns the frame instead of queueing it."""
    protocol = make(side)
    assert protocol.send_message("café".encode(), True) == sent_by(side, TEXT, "café".encode())
    assert protocol.send_message(b"\x00\xff", False) == sent_by(side, BINARY, b"\x00\xff")
    assert protocol.data_to_send() == []


def test_send_message_queues_behind_what_waits(side: Side) -> None:
    protocol = make(side)
    protocol.send_ping(b"first")
    assert protocol.send_message(b"second", False) is None
    assert protocol.data_to_send() == [
        sent_by(side, PING, b"first"),
        sent_by(side, BINARY, b"second"),
    ]


def test_send_message_refused_in_a_fragmented_message_or_once_closing(side: Side) -> None:
    protocol = make(side)
    protocol.send_text(b"Hel", fin=False)
    with pytest.raises(InvalidState):
        protocol.send_message(b"x", False)
    protocol.send_continuation(b"lo", fin=True)
    protocol.send_close(1000)
    with pytest.raises(InvalidState):
        protocol.send_message(b"x", False)


def test_server_send_message_queues_a_large_payload_without_copying_it() -> None:
    protocol = make(Side.SERVER)
    data = bytes(131072)
    assert protocol.send_message(data, False) is None
    header, payload = protocol.data_to_send()
    assert header == sent_by(Side.SERVER, BINARY, data)[:10]
    assert payload is data


def test_send_ping_pong(side: Side) -> None:
    protocol = make(side)
    protocol.send_ping(b"")
    protocol.send_ping(b"x" * 125)
    protocol.send_pong(b"heartbeat")
    assert protocol.data_to_send() == [
        sent_by(side, PING),
        sent_by(side, PING, b"x" * 125),
        sent_by(side, PONG, b"heartbeat"),
    ]


def test_client_uses_a_fresh_mask_per_frame() -> None:
    """§5.3: a new masking key for every frame, taken from ``random_bytes``."""
    masks = iter([MASK, OTHER_MASK])
    protocol = Protocol(Side.CLIENT, random_bytes=lambda n: next(masks))
    protocol.send_text(b"one")
    protocol.send_text(b"two")
    assert protocol.data_to_send() == [
        frame(TEXT, b"one", mask=MASK),
        frame(TEXT, b"two", mask=OTHER_MASK),
    ]


def test_server_uses_no_randomness() -> None:
    def forbidden(n: int) -> bytes:
        raise AssertionError("a server needs no random bytes")

    protocol = Protocol(Side.SERVER, random_bytes=forbidden)
    protocol.send_text(b"x")
    protocol.receive_data(frame(PING, b"p", mask=MASK))
    protocol.send_close(1000)
    assert len(protocol.data_to_send()) == 3


@pytest.mark.parametrize(
    ("code", "reason", "payload"),
    [
        (None, "", b""),
        (1000, "", b"\x03\xe8"),
        (1001, "bye", b"\x03\xe9bye"),
        (4999, "é" * 61 + "x", b"\x13\x87" + ("é" * 61 + "x").encode()),
    ],
)
def test_send_close(side: Side, code: int | None, reason: str, payload: bytes) -> None:
    protocol = make(side)
    protocol.send_close(code, reason)
    assert protocol.data_to_send() == [sent_by(side, CLOSE, payload)]
    assert protocol.state is State.CLOSING
    assert protocol.close_sent == Close(1005 if code is None else code, reason)
    assert protocol.close_expected()


# Caller misuse raises at once and changes nothing


@pytest.mark.parametrize("code", [1005, 1006, 999, 0, 1004, 1015, 1016, 2999, 5000])
def test_send_close_invalid_code(side: Side, code: int) -> None:
    protocol = make(side)
    with pytest.raises(InvalidArgument):
        protocol.send_close(code)
    assert_open(protocol)
    assert protocol.data_to_send() == []


def test_send_close_reason_too_long(side: Side) -> None:
    protocol = make(side)
    with pytest.raises(InvalidArgument):
        protocol.send_close(1000, "€" * 41 + "x")  # 124 bytes
    with pytest.raises(InvalidArgument):
        protocol.send_close(1000, "x" * 124)
    assert_open(protocol)
    assert protocol.data_to_send() == []


def test_send_close_reason_not_encodable(side: Side) -> None:
    protocol = make(side)
    with pytest.raises(InvalidArgument, match="lone surrogate"):
        protocol.send_close(1000, "bye \ud800")
    assert_open(protocol)
    assert protocol.data_to_send() == []


def test_send_close_reason_without_code(side: Side) -> None:
    protocol = make(side)
    with pytest.raises(InvalidArgument):
        protocol.send_close(None, "reason")
    assert_open(protocol)


def test_send_ping_too_long(side: Side) -> None:
    protocol = make(side)
    with pytest.raises(InvalidArgument):
        protocol.send_ping(b"x" * 126)
    with pytest.raises(InvalidArgument):
        protocol.send_pong(b"x" * 126)
    assert protocol.data_to_send() == []


def test_send_ping_same_payload_twice(side: Side) -> None:
    protocol = make(side)
    protocol.send_ping(b"a")
    with pytest.raises(ConcurrencyError):
        protocol.send_ping(b"a")
    assert protocol.data_to_send() == [sent_by(side, PING, b"a")]


@pytest.mark.parametrize(
    "command",
    [
        lambda p: p.send_text(b"x"),
        lambda p: p.send_binary(b"x"),
        lambda p: p.send_continuation(b"x", fin=True),
        lambda p: p.send_ping(b"x"),
        lambda p: p.send_pong(b"x"),
        lambda p: p.send_close(1000),
        lambda p: p.send_close(),
    ],
    ids=["text", "binary", "continuation", "ping", "pong", "close", "close-empty"],
)
@pytest.mark.parametrize("how", ["sent", "received", "failed", "eof"])
def test_send_after_close(side: Side, command: object, how: str) -> None:
    """§5.5.1: no data frame after a close frame; the connection is over for the caller."""
    protocol = make(side)
    if how == "sent":
        protocol.send_close(1000)
    elif how == "received":
        protocol.receive_data(to(side, CLOSE, close_payload(1000)))
    elif how == "failed":
        protocol.receive_data(to(side, TEXT, b"\xff"))
    else:
        protocol.receive_eof()
    protocol.data_to_send()
    with pytest.raises(InvalidState):
        command(protocol)  # type: ignore[operator]
    assert protocol.data_to_send() == []


def test_continuation_without_start(side: Side) -> None:
    protocol = make(side)
    with pytest.raises(InvalidState):
        protocol.send_continuation(b"x", fin=True)
    with pytest.raises(InvalidState):
        protocol.send_continuation(b"x", fin=False)
    protocol.send_text(b"a")
    with pytest.raises(InvalidState):
        protocol.send_continuation(b"x", fin=True)
    assert protocol.data_to_send() == [sent_by(side, TEXT, b"a")]


def test_new_message_while_fragmenting(side: Side) -> None:
    protocol = make(side)
    protocol.send_binary(b"a", fin=False)
    with pytest.raises(InvalidState):
        protocol.send_text(b"b")
    with pytest.raises(InvalidState):
        protocol.send_binary(b"b")
    protocol.send_continuation(b"c", fin=True)
    protocol.send_text(b"d")
    assert protocol.data_to_send() == [
        sent_by(side, BINARY, b"a", fin=False),
        sent_by(side, CONT, b"c"),
        sent_by(side, TEXT, b"d"),
    ]


def test_receive_data_after_eof(side: Side) -> None:
    protocol = make(side)
    protocol.receive_eof()
    with pytest.raises(InvalidState):
        protocol.receive_data(b"x")


def test_receive_empty_data_is_not_eof(side: Side) -> None:
    protocol = make(side)
    assert exchange(protocol, b"") == ([], [])
    assert_open(protocol)
    assert exchange(protocol, to(side, TEXT, b"x")) == ([TextMessage("x")], [])


def test_receive_eof_twice(side: Side) -> None:
    protocol = make(side)
    protocol.receive_eof()
    protocol.data_to_send()
    protocol.receive_eof()
    assert protocol.data_to_send() == []
    assert protocol.state is State.CLOSED


# Receiving data frames (§5.2, §5.4, §5.6)


def test_receive_text(side: Side) -> None:
    protocol = make(side)
    events, writes = exchange(protocol, to(side, TEXT, "café ☺".encode()))
    assert events == [TextMessage("café ☺")]
    assert writes == []


def test_receive_binary(side: Side) -> None:
    protocol = make(side)
    assert exchange(protocol, to(side, BINARY, b"\x00\xff")) == ([BinaryMessage(b"\x00\xff")], [])


def test_receive_empty(side: Side) -> None:
    protocol = make(side)
    events, _ = exchange(protocol, to(side, TEXT) + to(side, BINARY))
    assert events == [TextMessage(""), BinaryMessage(b"")]


def test_receive_several_frames_in_one_chunk(side: Side) -> None:
    protocol = make(side)
    data = to(side, TEXT, b"a") + to(side, BINARY, b"b") + to(side, TEXT, b"c")
    events, _ = exchange(protocol, data)
    assert events == [TextMessage("a"), BinaryMessage(b"b"), TextMessage("c")]


def test_rfc_examples() -> None:
    """The frames of RFC 6455 §5.7, received by a client (unmasked) and a server (masked)."""
    client = make(Side.CLIENT)
    data = bytes.fromhex("810548656c6c6f010348656c80026c6f890548656c6c6f")
    client.receive_data(data)
    assert client.events_received() == [TextMessage("Hello"), TextMessage("Hello"), Ping(b"Hello")]
    server = make(Side.SERVER)
    server.receive_data(bytes.fromhex("818537fa213d7f9f4d51588a8537fa213d7f9f4d5158"))
    assert server.events_received() == [TextMessage("Hello"), Pong(b"Hello")]


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_receive_length_encodings(side: Side, length: int) -> None:
    protocol = make(side)
    data = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    events, _ = exchange(protocol, to(side, BINARY, data))
    assert events == [BinaryMessage(data)]


@pytest.mark.parametrize(
    ("length", "encoding"), [(0, 16), (5, 16), (125, 16), (0, 64), (5, 64), (65535, 64)]
)
def test_receive_non_minimal_length_encodings(side: Side, length: int, encoding: int) -> None:
    """§5.2 asks senders for the minimal encoding; a receiver can read any."""
    protocol = make(side)
    data = b"z" * length
    events, writes = exchange(protocol, to(side, BINARY, data, encoding=encoding))
    assert events == [BinaryMessage(data)]
    assert writes == []
    assert_open(protocol)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7])
def test_receive_in_small_chunks(side: Side, chunk: int) -> None:
    protocol = make(side)
    data = to(side, TEXT, "κόσμε".encode() * 30) + to(side, BINARY, bytes(300))
    feed(protocol, data, chunk)
    assert protocol.events_received() == [
        TextMessage("κόσμε" * 30),
        BinaryMessage(bytes(300)),
    ]


def test_server_uses_the_key_of_each_frame() -> None:
    protocol = make(Side.SERVER)
    data = frame(TEXT, b"one", mask=MASK) + frame(TEXT, b"two", mask=OTHER_MASK)
    assert exchange(protocol, data)[0] == [TextMessage("one"), TextMessage("two")]


def test_receive_fragmented(side: Side) -> None:
    protocol = make(side)
    data = (
        to(side, TEXT, b"He", fin=False)
        + to(side, CONT, b"", fin=False)
        + to(side, CONT, b"llo", fin=False)
        + to(side, CONT, b"!")
        + to(side, BINARY, b"a", fin=False)
        + to(side, CONT, b"b")
    )
    events, _ = exchange(protocol, data)
    assert events == [TextMessage("Hello!"), BinaryMessage(b"ab")]


def test_receive_fragment_by_fragment(side: Side) -> None:
    protocol = make(side)
    assert exchange(protocol, to(side, TEXT, b"a", fin=False)) == ([], [])
    assert exchange(protocol, to(side, CONT, b"b", fin=False)) == ([], [])
    assert exchange(protocol, to(side, CONT, b"c")) == ([TextMessage("abc")], [])


def test_receive_multibyte_character_split_across_fragments(side: Side) -> None:
    protocol = make(side)
    data = to(side, TEXT, b"\xe2", fin=False) + to(side, CONT, b"\x82", fin=False)
    data += to(side, CONT, b"\xac")
    assert exchange(protocol, data)[0] == [TextMessage("€")]


def test_receive_valid_text_in_one_byte_fragments(side: Side) -> None:
    """§8.1 applies to the whole message: fragments may split characters anywhere."""
    protocol = make(side)
    payload = "κόσμε €\U0001f600".encode()
    data = to(side, TEXT, payload[:1], fin=False)
    for i in range(1, len(payload) - 1):
        data += to(side, CONT, payload[i : i + 1], fin=False)
    data += to(side, CONT, payload[-1:])
    feed(protocol, data, 1)
    assert protocol.events_received() == [TextMessage("κόσμε €\U0001f600")]
    assert protocol.data_to_send() == []


def test_receive_data_while_closing(side: Side) -> None:
    """§7.1.2/§1.4: after sending a close frame, data keeps coming until the peer's."""
    protocol = make(side)
    protocol.send_close(1000)
    protocol.data_to_send()
    assert exchange(protocol, to(side, TEXT, b"late")) == ([TextMessage("late")], [])


# Framing violations (§5.1, §5.2, §5.4, §5.5): fail with 1002


def test_messages_before_a_violation_are_delivered(side: Side) -> None:
    protocol = make(side)
    protocol.receive_data(to(side, TEXT, b"first") + to(side, 0x3) + to(side, TEXT, b"never"))
    assert protocol.events_received() == [TextMessage("first")]
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10, 0x70])
@pytest.mark.parametrize("opcode", [TEXT, BINARY, PING, CLOSE])
def test_rsv_bits(side: Side, rsv: int, opcode: int) -> None:
    """§5.2: nonzero RSV bits without a negotiated extension."""
    protocol = make(side)
    protocol.receive_data(to(side, opcode, b"", rsv=rsv))
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)


def test_rsv_bit_on_continuation(side: Side) -> None:
    protocol = make(side)
    protocol.receive_data(to(side, TEXT, b"a", fin=False) + to(side, CONT, b"b", rsv=0x40))
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("opcode", [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcodes(side: Side, opcode: int) -> None:
    """§5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail_"."""
    protocol = make(side)
    protocol.receive_data(to(side, TEXT, b"before") + to(side, opcode, b"x"))
    assert protocol.events_received() == [TextMessage("before")]
    assert_failed(protocol, 1002)


def test_reserved_opcode_fails_on_the_header(side: Side) -> None:
    """The violation is detected from the first two bytes, without waiting for more."""
    protocol = make(side)
    protocol.receive_data(to(side, 0xB, b"x" * 100)[:2])
    assert_failed(protocol, 1002)


def test_server_rejects_unmasked_frames() -> None:
    """§5.1: "The server MUST close the connection upon receiving a frame that is not
    masked" (with 1002, §7.4.1)."""
    protocol = make(Side.SERVER)
    protocol.receive_data(frame(TEXT, b"Hello"))
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE, CONT])
def test_server_rejects_unmasked_control_frames(opcode: int) -> None:
    protocol = make(Side.SERVER)
    protocol.receive_data(frame(opcode, b""))
    assert_failed(protocol, 1002)


def test_client_rejects_masked_frames() -> None:
    """§5.1: "A client MUST close a connection if it detects a masked frame"."""
    protocol = make(Side.CLIENT)
    protocol.receive_data(frame(TEXT, b"Hello", mask=MASK))
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)


def test_client_rejects_masked_frames_with_zero_key() -> None:
    protocol = make(Side.CLIENT)
    protocol.receive_data(frame(PING, b"", mask=b"\x00\x00\x00\x00"))
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
def test_fragmented_control_frame(side: Side, opcode: int) -> None:
    """§5.5: "All control frames ... MUST NOT be fragmented"."""
    protocol = make(side)
    protocol.receive_data(to(side, opcode, close_payload(1000), fin=False))
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
@pytest.mark.parametrize("length", [126, 127, 1000])
def test_control_frame_too_long(side: Side, opcode: int, length: int) -> None:
    """§5.5: "All control frames MUST have a payload length of 125 bytes or less"."""
    protocol = make(side)
    protocol.receive_data(to(side, opcode, close_payload(1000) + b"x" * (length - 2)))
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("opcode", [PING, PONG])
def test_control_frame_of_125_bytes(side: Side, opcode: int) -> None:
    protocol = make(side)
    events, _ = exchange(protocol, to(side, opcode, b"x" * 125))
    assert len(events) == 1
    assert events[0].data == b"x" * 125  # type: ignore[union-attr]
    assert_open(protocol)


def test_continuation_without_a_message(side: Side) -> None:
    """§5.4: continuation frames only follow a non-final data frame."""
    protocol = make(side)
    protocol.receive_data(to(side, CONT, b"x"))
    assert_failed(protocol, 1002)


def test_continuation_after_a_complete_message(side: Side) -> None:
    protocol = make(side)
    protocol.receive_data(to(side, TEXT, b"a") + to(side, CONT, b"b"))
    assert protocol.events_received() == [TextMessage("a")]
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("first", [TEXT, BINARY])
@pytest.mark.parametrize("second", [TEXT, BINARY])
@pytest.mark.parametrize("fin", [True, False])
def test_new_data_frame_inside_a_fragmented_message(
    side: Side, first: int, second: int, fin: bool
) -> None:
    """§5.4: fragments of one message are not interleaved with another message."""
    protocol = make(side)
    protocol.receive_data(to(side, first, b"a", fin=False) + to(side, second, b"b", fin=fin))
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("max_size", [None, 2**20])
def test_64_bit_length_with_the_top_bit(side: Side, max_size: int | None) -> None:
    """§5.2: "the most significant bit MUST be 0"."""
    protocol = make(side, max_size=max_size)
    header = to(side, BINARY, b"", length=2**63 + 5, encoding=64)
    protocol.receive_data(header[:10])
    assert_failed(protocol, 1002)


# Control frames: ping, pong (§5.5.2, §5.5.3)


def test_ping_is_answered(side: Side) -> None:
    protocol = make(side)
    events, writes = exchange(protocol, to(side, PING, b"are you there?"))
    assert events == [Ping(b"are you there?")]
    assert writes == [sent_by(side, PONG, b"are you there?")]


def test_empty_ping_is_answered(side: Side) -> None:
    protocol = make(side)
    assert exchange(protocol, to(side, PING)) == ([Ping(b"")], [sent_by(side, PONG)])


def test_each_ping_is_answered(side: Side) -> None:
    protocol = make(side)
    events, writes = exchange(protocol, to(side, PING, b"1") + to(side, PING, b"2"))
    assert events == [Ping(b"1"), Ping(b"2")]
    assert writes == [sent_by(side, PONG, b"1"), sent_by(side, PONG, b"2")]


def test_pings_of_one_read_cost_bounded_pongs(side: Side) -> None:
    """§5.5.3: a flood of pings in one read gets pongs for the first ones, then one for
    the latest, in place of the last queued: a few kilobytes whatever the flood."""
    protocol = make(side)
    payloads = [b"%04d" % i + bytes(121) for i in range(1000)]
    events, writes = exchange(protocol, b"".join(to(side, PING, p) for p in payloads))
    assert events == [Ping(p) for p in payloads]
    pongs = [f.payload for f in decode_frames(b"".join(writes))]
    assert 1 < len(pongs) < 100
    assert pongs == payloads[: len(pongs) - 1] + payloads[-1:]
    assert sum(map(len, writes)) <= 4096 + 2 * len(sent_by(side, PONG, payloads[0]))
    # Once taken, the next read's pings get pongs of their own.
    assert exchange(protocol, to(side, PING, b"1") + to(side, PING, b"2")) == (
        [Ping(b"1"), Ping(b"2")],
        [sent_by(side, PONG, b"1"), sent_by(side, PONG, b"2")],
    )


def test_paused_pongs_keep_only_the_latest_ping(side: Side) -> None:
    """§5.5.3: while the I/O layer can't write, a flood of pings costs one payload, and
    the latest ping is answered when writing resumes."""
    protocol = make(side)
    protocol.pause_pongs()
    for i in range(1000):
        payload = str(i).encode()
        assert exchange(protocol, to(side, PING, payload)) == ([Ping(payload)], [])
    protocol.resume_pongs()
    assert protocol.data_to_send() == [sent_by(side, PONG, b"999")]
    protocol.resume_pongs()
    assert protocol.data_to_send() == []
    assert exchange(protocol, to(side, PING, b"x")) == ([Ping(b"x")], [sent_by(side, PONG, b"x")])
    assert_open(protocol)


def test_paused_pongs_without_ping(side: Side) -> None:
    protocol = make(side)
    protocol.pause_pongs()
    protocol.resume_pongs()
    assert protocol.data_to_send() == []


def test_paused_pong_after_our_close(side: Side) -> None:
    """§5.5.2: pings are answered until the peer's close frame arrives."""
    protocol = make(side)
    protocol.pause_pongs()
    protocol.send_close(1000)
    assert protocol.data_to_send() == [sent_by(side, CLOSE, close_payload(1000))]
    assert exchange(protocol, to(side, PING, b"p")) == ([Ping(b"p")], [])
    protocol.resume_pongs()
    assert protocol.data_to_send() == [sent_by(side, PONG, b"p")]


def test_paused_pong_dropped_once_close_received(side: Side) -> None:
    """§5.5.2: no pong is due once the peer's close frame arrived; the close echo is one
    frame and isn't held back."""
    protocol = make(side)
    protocol.pause_pongs()
    protocol.receive_data(to(side, PING, b"p") + to(side, CLOSE, close_payload(1000)))
    assert protocol.data_to_send()[0] == sent_by(side, CLOSE, close_payload(1000))
    protocol.resume_pongs()
    assert protocol.data_to_send() == []


def test_paused_pong_dropped_after_failure(side: Side) -> None:
    """§7.1.7: nothing more is processed once the connection failed; the failure's close
    frame is one frame and isn't held back."""
    protocol = make(side)
    protocol.pause_pongs()
    protocol.receive_data(to(side, PING, b"p") + to(side, 0x3))
    assert protocol.events_received() == [Ping(b"p")]
    assert_failed(protocol, 1002)
    protocol.resume_pongs()
    assert protocol.data_to_send() == []


@pytest.mark.parametrize("chunk", [None, 1])
def test_ping_between_fragments(side: Side, chunk: int | None) -> None:
    """§5.4: control frames MAY be injected in the middle of a fragmented message."""
    protocol = make(side)
    data = (
        to(side, TEXT, "Hél".encode(), fin=False)
        + to(side, PING, b"ping")
        + to(side, CONT, b"l", fin=False)
        + to(side, PONG, b"pong")
        + to(side, CONT, b"o")
    )
    feed(protocol, data, chunk)
    assert protocol.events_received() == [Ping(b"ping"), Pong(b"pong"), TextMessage("Héllo")]
    assert protocol.data_to_send() == [sent_by(side, PONG, b"ping")]
    assert_open(protocol)


def test_ping_while_closing_is_answered(side: Side) -> None:
    """§5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in
    response, unless it already received a Close frame." Having sent one doesn't count:
    only data frames are forbidden after sending a close frame (§5.5.1)."""
    protocol = make(side)
    protocol.send_close(1000)
    protocol.data_to_send()
    events, writes = exchange(protocol, to(side, PING, b"still there?"))
    assert events == [Ping(b"still there?")]
    assert writes == [sent_by(side, PONG, b"still there?")]


def test_pong_acknowledges_its_ping_and_earlier_ones(side: Side) -> None:
    """§5.5.3: a pong may answer only the most recent ping."""
    protocol = make(side)
    for payload in [b"1", b"2", b"3"]:
        protocol.send_ping(payload)
    protocol.data_to_send()
    assert exchange(protocol, to(side, PONG, b"2")) == ([Pong(b"2", (b"1", b"2"))], [])
    assert exchange(protocol, to(side, PONG, b"2")) == ([Pong(b"2", ())], [])
    assert exchange(protocol, to(side, PONG, b"1")) == ([Pong(b"1", ())], [])
    assert exchange(protocol, to(side, PONG, b"3")) == ([Pong(b"3", (b"3",))], [])


def test_unsolicited_pong(side: Side) -> None:
    """§5.5.3: "A response to an unsolicited Pong frame is not expected"."""
    protocol = make(side)
    protocol.send_ping(b"mine")
    protocol.data_to_send()
    assert exchange(protocol, to(side, PONG, b"other")) == ([Pong(b"other", ())], [])
    assert exchange(protocol, to(side, PONG, b"mine")) == ([Pong(b"mine", (b"mine",))], [])


def test_empty_pong_acknowledges_empty_ping(side: Side) -> None:
    protocol = make(side)
    protocol.send_ping(b"")
    protocol.data_to_send()
    assert exchange(protocol, to(side, PONG)) == ([Pong(b"", (b"",))], [])


def test_ping_payload_reusable_once_acknowledged(side: Side) -> None:
    protocol = make(side)
    protocol.send_ping(b"a")
    protocol.receive_data(to(side, PONG, b"a"))
    protocol.send_ping(b"a")
    assert protocol.data_to_send() == [sent_by(side, PING, b"a")] * 2


def test_pong_default_acknowledged_is_empty() -> None:
    assert Pong(b"x").acknowledged == ()


# Closing handshake (§5.5.1, §7)


def test_peer_closes_with_empty_payload(side: Side) -> None:
    """§5.5.1: echo the close; §7.1.5: no code received means 1005."""
    protocol = make(side)
    protocol.receive_data(to(side, CLOSE))
    assert protocol.events_received() == []
    frames, eof = output(protocol)
    assert [(f.opcode, f.payload) for f in frames] == [(CLOSE, b"")]
    assert eof is (side is Side.SERVER)
    assert protocol.close_rcvd == Close(1005)
    assert protocol.close_sent == Close(1005)
    assert protocol.close_code == 1005
    assert protocol.close_reason == ""
    exc = protocol.close_exc
    assert isinstance(exc, ConnectionClosedOK)
    assert exc.code == 1005


@pytest.mark.parametrize("code", VALID_CLOSE_CODES)
def test_peer_closes_with_valid_code(side: Side, code: int) -> None:
    """§5.5.1: answer with a close frame that "typically echos the status code it
    received"; the reason of the answer is the endpoint's choice."""
    protocol = make(side)
    protocol.receive_data(to(side, CLOSE, close_payload(code, b"reason")))
    assert protocol.events_received() == []
    frames, eof = output(protocol)
    assert [f.opcode for f in frames] == [CLOSE]
    assert frames[0].payload[:2] == close_payload(code)
    assert frames[0].payload[2:] in (b"", b"reason")
    assert eof is (side is Side.SERVER)
    assert protocol.close_rcvd == Close(code, "reason")
    assert protocol.close_sent is not None and protocol.close_sent.code == code
    assert protocol.close_rcvd_then_sent is True
    assert protocol.state is State.CLOSING
    assert protocol.close_code == code
    assert protocol.close_reason == "reason"
    assert protocol.failure is None
    assert not protocol.receiving


@pytest.mark.parametrize("code", [1012, 1013, 1014])
def test_peer_closes_with_iana_registered_code(side: Side, code: int) -> None:
    """1012-1014 were registered with IANA after RFC 6455 (§11.7 registry)."""
    protocol = make(side)
    protocol.receive_data(to(side, CLOSE, close_payload(code)))
    assert protocol.failure is None
    assert protocol.close_rcvd == Close(code)


@pytest.mark.parametrize("code", INVALID_CLOSE_CODES)
def test_peer_closes_with_invalid_code(side: Side, code: int) -> None:
    """§7.4.1, §7.4.2: codes that may not appear in a close frame fail with 1002."""
    protocol = make(side)
    protocol.receive_data(to(side, CLOSE, close_payload(code)))
    assert_failed(protocol, 1002)


def test_peer_closes_with_one_byte_payload(side: Side) -> None:
    """§5.5.1: the body starts with a 2-byte code."""
    protocol = make(side)
    protocol.receive_data(to(side, CLOSE, b"\x03"))
    assert_failed(protocol, 1002)


def test_peer_closes_with_123_byte_reason(side: Side) -> None:
    protocol = make(side)
    reason = "é" * 61 + "x"
    protocol.receive_data(to(side, CLOSE, close_payload(1000, reason.encode())))
    assert protocol.close_rcvd == Close(1000, reason)
    assert protocol.failure is None


@pytest.mark.parametrize("reason", [b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ab\xe2"])
def test_peer_closes_with_invalid_utf8_reason(side: Side, reason: bytes) -> None:
    """§5.5.1: the reason is UTF-8; §8.1: invalid UTF-8 fails with 1007."""
    protocol = make(side)
    protocol.receive_data(to(side, CLOSE, close_payload(1000, reason)))
    assert_failed(protocol, 1007)


def test_data_after_close_is_ignored(side: Side) -> None:
    """§1.4, §5.5.1: nothing follows a close frame; whatever does is dropped."""
    protocol = make(side)
    protocol.receive_data(to(side, CLOSE, close_payload(1000)) + to(side, TEXT, b"ignored"))
    protocol.data_to_send()
    garbage = to(side, PING, b"ignored") + to(side, 0x3) + b"\xff" * 10
    assert exchange(protocol, garbage) == ([], [])
    assert protocol.failure is None
    assert protocol.close_rcvd == Close(1000)


def test_close_between_fragments(side: Side) -> None:
    """A close frame may come between fragments: the partial message is dropped."""
    protocol = make(side)
    protocol.receive_data(
        to(side, TEXT, b"part", fin=False) + to(side, CLOSE, close_payload(1001))
    )
    assert protocol.events_received() == []
    frames, _ = output(protocol)
    assert [(f.opcode, f.payload) for f in frames] == [(CLOSE, close_payload(1001))]
    assert protocol.failure is None


def test_server_closes_tcp_after_closing_handshake_it_started() -> None:
    """§7.1.1: "the server SHOULD close [the TCP connection] first"."""
    protocol = make(Side.SERVER)
    protocol.send_close(1000, "bye")
    assert protocol.data_to_send() == [sent_by(Side.SERVER, CLOSE, close_payload(1000, b"bye"))]
    assert not protocol.peer_done
    assert exchange(protocol, to(Side.SERVER, CLOSE, close_payload(1000))) == ([], [b""])
    assert protocol.close_rcvd_then_sent is False
    assert protocol.state is State.CLOSING
    assert protocol.close_expected()
    # Nothing may follow the client's close frame: TCP closes rather than half-closes.
    assert protocol.peer_done
    protocol.receive_eof()
    assert protocol.data_to_send() == []
    assert protocol.state is State.CLOSED
    assert not protocol.close_expected()
    assert protocol.failure is None


def test_server_closes_tcp_after_closing_handshake_the_client_started() -> None:
    protocol = make(Side.SERVER)
    protocol.receive_data(to(Side.SERVER, CLOSE, close_payload(1000)))
    assert protocol.data_to_send() == [sent_by(Side.SERVER, CLOSE, close_payload(1000)), b""]
    assert protocol.close_expected()
    assert protocol.peer_done
    protocol.receive_eof()
    assert protocol.data_to_send() == []
    assert protocol.state is State.CLOSED


def test_client_waits_for_the_server_to_close_tcp() -> None:
    """§7.1.1: the client waits for the server's TCP close, then closes its side."""
    protocol = make(Side.CLIENT)
    protocol.send_close(1000)
    assert protocol.data_to_send() == [sent_by(Side.CLIENT, CLOSE, close_payload(1000))]
    assert exchange(protocol, to(Side.CLIENT, CLOSE, close_payload(1000))) == ([], [])
    assert protocol.state is State.CLOSING
    assert protocol.close_expected()
    protocol.receive_eof()
    assert protocol.data_to_send() == [b""]
    assert protocol.state is State.CLOSED
    assert not protocol.close_expected()
    assert protocol.failure is None


def test_client_answers_the_server_close_and_waits() -> None:
    protocol = make(Side.CLIENT)
    protocol.receive_data(to(Side.CLIENT, CLOSE, close_payload(1001)))
    assert protocol.data_to_send() == [sent_by(Side.CLIENT, CLOSE, close_payload(1001))]
    assert protocol.close_expected()
    protocol.receive_eof()
    assert protocol.data_to_send() == [b""]
    assert protocol.state is State.CLOSED
    assert isinstance(protocol.close_exc, ConnectionClosedOK)


def test_close_expected_while_open(side: Side) -> None:
    protocol = make(side)
    protocol.receive_data(to(side, TEXT, b"x") + to(side, PING))
    assert not protocol.close_expected()


# close_exc, close_code, close_reason


@pytest.mark.parametrize(
    ("ours", "theirs", "ok"),
    [
        (1000, 1000, True),
        (1001, 1000, True),
        (1000, None, True),
        (None, None, True),
        (1000, 1002, False),
        (1011, 1011, False),
        (4000, 1000, False),
    ],
)
def test_close_exc_when_we_close_first(
    side: Side, ours: int | None, theirs: int | None, ok: bool
) -> None:
    protocol = make(side)
    protocol.send_close(ours, "ours" if ours else "")
    payload = b"" if theirs is None else close_payload(theirs, b"theirs")
    protocol.receive_data(to(side, CLOSE, payload))
    exc = protocol.close_exc
    assert isinstance(exc, ConnectionClosedOK if ok else ConnectionClosedError)
    assert exc.code == (1005 if ours is None else ours)
    assert exc.reason == ("ours" if ours else "")
    assert exc.rcvd_then_sent is False
    assert protocol.close_code == exc.code


@pytest.mark.parametrize(
    ("theirs", "ok"), [(1000, True), (1001, True), (None, True), (1003, False), (3000, False)]
)
def test_close_exc_when_they_close_first(side: Side, theirs: int | None, ok: bool) -> None:
    protocol = make(side)
    payload = b"" if theirs is None else close_payload(theirs, b"theirs")
    protocol.receive_data(to(side, CLOSE, payload))
    exc = protocol.close_exc
    assert isinstance(exc, ConnectionClosedOK if ok else ConnectionClosedError)
    assert exc.code == (1005 if theirs is None else theirs)
    assert exc.reason == ("" if theirs is None else "theirs")
    assert exc.rcvd_then_sent is True
    assert exc.__cause__ is None


def test_close_exc_without_close_frames(side: Side) -> None:
    """§7.1.5: a TCP close without a close frame is 1006."""
    protocol = make(side)
    protocol.receive_eof()
    exc = protocol.close_exc
    assert isinstance(exc, ConnectionClosedError)
    assert exc.code == 1006
    assert exc.rcvd is None and exc.sent is None
    assert isinstance(exc.__cause__, EOFError)
    assert protocol.close_code == 1006
    assert protocol.close_reason == ""


def test_close_exc_when_the_peer_never_answers(side: Side) -> None:
    protocol = make(side)
    protocol.send_close(1000)
    protocol.close_timeout_expired()
    exc = protocol.close_exc
    assert isinstance(exc, ConnectionClosedError)
    assert exc.sent == Close(1000)
    assert exc.rcvd is None
    assert isinstance(exc.__cause__, TimeoutError)
    assert protocol.state is State.CLOSED


# End of stream


def test_eof_between_frames(side: Side) -> None:
    protocol = make(side)
    protocol.receive_data(to(side, TEXT, b"a"))
    protocol.receive_eof()
    assert protocol.events_received() == [TextMessage("a")]
    assert protocol.data_to_send() == [b""]
    assert protocol.state is State.CLOSED
    assert isinstance(protocol.failure, EOFError)
    assert not protocol.receiving


@pytest.mark.parametrize("cut", [1, 2, 3, 6])
def test_eof_in_the_middle_of_a_frame(side: Side, cut: int) -> None:
    protocol = make(side)
    protocol.receive_data(to(side, TEXT, b"Hello")[:-cut])
    protocol.receive_eof()
    assert protocol.events_received() == []
    assert protocol.data_to_send() == [b""]
    assert protocol.state is State.CLOSED
    assert isinstance(protocol.failure, EOFError)
    assert protocol.close_code == 1006


def test_eof_in_the_middle_of_a_fragmented_message(side: Side) -> None:
    protocol = make(side)
    protocol.receive_data(to(side, TEXT, b"a", fin=False))
    protocol.receive_eof()
    assert protocol.events_received() == []
    assert isinstance(protocol.failure, EOFError)


def test_eof_after_closing_handshake_is_no_failure(side: Side) -> None:
    protocol = make(side)
    protocol.receive_data(to(side, CLOSE, close_payload(1000)))
    protocol.receive_eof()
    assert protocol.failure is None
    assert protocol.state is State.CLOSED
    assert isinstance(protocol.close_exc, ConnectionClosedOK)


# Timers owned by the I/O layer, and failing on purpose


def test_ping_timeout_expired(side: Side) -> None:
    """§7.1.7: fail the connection; 1011 says the endpoint couldn't go on."""
    protocol = make(side)
    protocol.send_ping(b"keepalive")
    protocol.data_to_send()
    protocol.ping_timeout_expired()
    frames, eof = output(protocol)
    assert [f.payload[:2] for f in frames] == [close_payload(1011)]
    assert eof is (side is Side.SERVER)
    assert isinstance(protocol.failure, TimeoutError)
    assert protocol.close_exc.code == 1011
    assert exchange(protocol, to(side, PONG, b"keepalive")) == ([], [])


def test_fail(side: Side) -> None:
    protocol = make(side)
    protocol.fail(1008, "policy")
    frames, eof = output(protocol)
    assert [f.payload for f in frames] == [close_payload(1008, b"policy")]
    assert eof is (side is Side.SERVER)
    assert not protocol.receiving
    # The peer may still be sending, unaware: half-close and read on, so that closing
    # with its bytes unread doesn't reset the connection over our close frame.
    assert not protocol.peer_done
    assert exchange(protocol, to(side, TEXT, b"x")) == ([], [])
    protocol.receive_eof()
    assert protocol.peer_done


def test_fail_while_closing_sends_no_second_close(side: Side) -> None:
    protocol = make(side)
    protocol.send_close(1000)
    protocol.data_to_send()
    protocol.fail(1011)
    frames, _ = output(protocol)
    assert frames == []
    assert protocol.close_sent == Close(1000)


def test_close_timeout_after_the_closing_handshake(side: Side) -> None:
    protocol = make(side)
    protocol.send_close(1000)
    protocol.receive_data(to(side, CLOSE, close_payload(1000)))
    protocol.close_timeout_expired()
    assert protocol.failure is None
    assert protocol.state is State.CLOSED
    assert isinstance(protocol.close_exc, ConnectionClosedOK)


# UTF-8 (§5.6, §8.1): invalid text fails with 1007, as soon as the bytes prove it

INVALID_UTF8 = [
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xf5\x80\x80\x80",
    b"\xff",
    b"\x80",
    "κόσμε".encode() + b"\xed\xa0\x80" + b"edited",
]


@pytest.mark.parametrize("payload", INVALID_UTF8)
@pytest.mark.parametrize("chunk", [None, 1])
def test_invalid_utf8_in_a_frame(side: Side, payload: bytes, chunk: int | None) -> None:
    protocol = make(side)
    feed(protocol, to(side, TEXT, payload), chunk)
    assert protocol.events_received() == []
    assert_failed(protocol, 1007)


@pytest.mark.parametrize("payload", [b"\xe2\x82", b"ok\xf0\x9f\x98", b"\xc2"])
def test_truncated_utf8_at_the_end_of_a_frame(side: Side, payload: bytes) -> None:
    protocol = make(side)
    protocol.receive_data(to(side, TEXT, payload))
    assert_failed(protocol, 1007)


def test_truncated_utf8_at_the_end_of_a_fragmented_message(side: Side) -> None:
    protocol = make(side)
    protocol.receive_data(to(side, TEXT, b"ok\xe2", fin=False))
    assert protocol.data_to_send() == []
    protocol.receive_data(to(side, CONT, b"\x82", fin=False))
    assert protocol.data_to_send() == []
    protocol.receive_data(to(side, CONT, b""))
    assert_failed(protocol, 1007)


def test_invalid_utf8_in_binary_is_fine(side: Side) -> None:
    protocol = make(side)
    assert exchange(protocol, to(side, BINARY, b"\xc0\xaf"))[0] == [BinaryMessage(b"\xc0\xaf")]


@pytest.mark.parametrize("invalid", [b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"])
def test_fail_fast_on_the_invalid_fragment(side: Side, invalid: bytes) -> None:
    """§8.1 (Autobahn 6.4.x): the second of three fragments is invalid; the connection
    fails right after it, without waiting for the end of the message."""
    protocol = make(side)
    assert exchange(protocol, to(side, TEXT, "κόσμε".encode(), fin=False)) == ([], [])
    protocol.receive_data(to(side, CONT, invalid, fin=False))
    assert protocol.events_received() == []
    assert_failed(protocol, 1007)


@pytest.mark.parametrize("invalid", [b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"])
def test_fail_fast_within_a_frame(side: Side, invalid: bytes) -> None:
    """§8.1 (Autobahn 6.4.3/6.4.4): one frame, delivered in pieces; the connection fails
    once the invalid bytes arrived, before the rest of the frame."""
    protocol = make(side)
    valid = "κόσμε".encode()
    data = to(side, TEXT, valid + invalid + b"edited")
    header = len(data) - len(valid + invalid + b"edited")
    assert exchange(protocol, data[: header + len(valid)]) == ([], [])
    protocol.receive_data(data[header + len(valid) : header + len(valid) + len(invalid)])
    assert protocol.events_received() == []
    assert_failed(protocol, 1007)


def test_fail_fast_within_a_continuation_frame(side: Side) -> None:
    protocol = make(side)
    protocol.receive_data(to(side, TEXT, b"ok", fin=False))
    data = to(side, CONT, b"abc\xf4\x90\x80\x80" + b"x" * 100)
    header = 6 if side is Side.SERVER else 2  # the mask follows the 2 bytes towards a server
    protocol.receive_data(data[: header + 3])
    assert protocol.data_to_send() == []
    protocol.receive_data(data[header + 3 : header + 5])  # F4 90: above U+10FFFF
    assert_failed(protocol, 1007)


# Size limit (max_size): 1009, decided from the declared length


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_message_at_the_limit(side: Side, opcode: int) -> None:
    protocol = make(side, max_size=10)
    events, _ = exchange(protocol, to(side, opcode, b"0123456789"))
    assert len(events) == 1
    assert_open(protocol)


@pytest.mark.parametrize(
    ("length", "encoding", "header_size"), [(11, 7, 2), (126, 16, 4), (2**40, 64, 10)]
)
def test_declared_length_over_the_limit(
    side: Side, length: int, encoding: int, header_size: int
) -> None:
    """The header alone decides: not a single payload byte is needed."""
    protocol = make(side, max_size=10)
    protocol.receive_data(to(side, BINARY, b"", length=length, encoding=encoding)[:header_size])
    assert isinstance(protocol.failure, PayloadTooBig)
    assert_failed(protocol, 1009)


def test_default_limit_is_1_mib(side: Side) -> None:
    protocol = make(side)
    protocol.receive_data(to(side, BINARY, b"", length=2**20, encoding=64)[:10])
    assert protocol.failure is None
    protocol = make(side)
    protocol.receive_data(to(side, BINARY, b"", length=2**20 + 1, encoding=64)[:10])
    assert_failed(protocol, 1009)


def test_no_limit(side: Side) -> None:
    protocol = make(side, max_size=None)
    data = bytes(2**20 + 10)
    assert exchange(protocol, to(side, BINARY, data))[0] == [BinaryMessage(data)]


def test_fragments_summing_past_the_limit(side: Side) -> None:
    protocol = make(side, max_size=10)
    protocol.receive_data(to(side, TEXT, b"012345", fin=False))
    assert protocol.data_to_send() == []
    protocol.receive_data(to(side, CONT, b"", length=5)[:2])
    assert_failed(protocol, 1009)


def test_fragments_summing_to_the_limit(side: Side) -> None:
    protocol = make(side, max_size=10)
    data = to(side, TEXT, b"0123", fin=False) + to(side, CONT, b"456", fin=False)
    data += to(side, CONT, b"789")
    assert exchange(protocol, data)[0] == [TextMessage("0123456789")]
    # The count starts over with the next message.
    assert exchange(protocol, to(side, BINARY, b"0123456789"))[0] == [BinaryMessage(b"0123456789")]


def test_many_small_fragments_past_the_limit(side: Side) -> None:
    protocol = make(side, max_size=10)
    data = b"".join(to(side, TEXT if i == 0 else CONT, b"x", fin=False) for i in range(10))
    protocol.receive_data(data)
    assert protocol.data_to_send() == []
    protocol.receive_data(to(side, CONT, b"x"))
    assert_failed(protocol, 1009)


def test_control_frames_do_not_count(side: Side) -> None:
    protocol = make(side, max_size=10)
    data = to(side, TEXT, b"01234", fin=False) + to(side, PING, b"p" * 100)
    data += to(side, CONT, b"56789")
    events, _ = exchange(protocol, data)
    assert events == [Ping(b"p" * 100), TextMessage("0123456789")]
    assert exchange(protocol, to(side, CLOSE, close_payload(1000, b"r" * 100)))[0] == []
    assert protocol.failure is None


# Holding a failure until the application handled earlier messages (hold_failures)


def test_hold_failures(side: Side) -> None:
    protocol = make(side, hold_failures=True)
    protocol.receive_data(to(side, TEXT, b"before") + to(side, 0x3) + to(side, TEXT, b"after"))
    assert protocol.events_received() == [TextMessage("before")]
    assert protocol.data_to_send() == []
    assert isinstance(protocol.failure, ProtocolError)
    assert protocol.failure_held
    assert not protocol.receiving
    assert protocol.state is State.OPEN
    # The application may still answer the message that came before the violation.
    protocol.send_text(b"answer")
    assert protocol.data_to_send() == [sent_by(side, TEXT, b"answer")]
    # Input stays ignored meanwhile.
    assert exchange(protocol, to(side, PING, b"x")) == ([], [])
    protocol.release_failure()
    assert not protocol.failure_held
    assert_failed(protocol, 1002)


def test_hold_failures_keeps_the_close_code(side: Side) -> None:
    protocol = make(side, hold_failures=True, max_size=4)
    protocol.receive_data(to(side, BINARY, b"12345"))
    assert protocol.failure_held
    protocol.release_failure()
    assert_failed(protocol, 1009)


def test_release_failure_without_failure(side: Side) -> None:
    protocol = make(side, hold_failures=True)
    assert not protocol.failure_held
    protocol.release_failure()
    assert_open(protocol)
    assert protocol.data_to_send() == []


def test_held_failure_dropped_by_another_failure(side: Side) -> None:
    protocol = make(side, hold_failures=True)
    protocol.receive_data(to(side, TEXT, b"\xff"))
    assert protocol.failure_held
    protocol.ping_timeout_expired()
    assert not protocol.failure_held
    frames, _ = output(protocol)
    assert [f.payload[:2] for f in frames] == [close_payload(1011)]
    protocol.release_failure()
    assert output(protocol) == ([], False)


def test_fail_cuts_a_long_reason(side: Side) -> None:
    """§5.5: the close payload must fit in 125 bytes; the reason is informative."""
    protocol = make(side)
    protocol.fail(1011, "é" * 100)
    frames, _ = output(protocol)
    assert frames[0].payload == close_payload(1011, ("é" * 61).encode())


# Properties


PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

_valid_close_codes = st.sampled_from([*VALID_CLOSE_CODES, 1012, 1013, 1014])


@dataclasses.dataclass
class Conversation:
    """What a peer sends: data fragments and control frames in order, maybe a close."""

    steps: list[tuple[str, int, bytes, bool]]
    close: tuple[int, str] | None


@st.composite
def conversations(draw: st.DrawFn) -> Conversation:
    steps: list[tuple[str, int, bytes, bool]] = []
    pings = 0

    def controls() -> None:
        nonlocal pings
        for opcode, payload in draw(
            st.lists(st.tuples(st.sampled_from([PING, PONG]), st.binary(max_size=125)), max_size=2)
        ):
            if opcode == PING:  # unique payloads: one ping per payload may be pending
                payload = b"%d:" % pings + payload[:110]
                pings += 1
            steps.append(("control", opcode, payload, True))

    for _ in range(draw(st.integers(0, 5))):
        controls()
        if draw(st.booleans()):
            opcode, data = TEXT, draw(st.text(max_size=40)).encode()
        else:
            opcode, data = BINARY, draw(st.binary(max_size=300))
        cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=4))))
        bounds = [0, *cuts, len(data)]
        pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
        for i, piece in enumerate(pieces):
            if i > 0:
                controls()
            steps.append(("data", opcode if i == 0 else CONT, piece, i == len(pieces) - 1))
    controls()
    close = None
    if draw(st.booleans()):
        reason = draw(st.text(max_size=20).filter(lambda r: len(r.encode()) <= 123))
        close = (draw(_valid_close_codes), reason)
    return Conversation(steps, close)


@PROPERTY_SETTINGS
@given(
    st.sampled_from([Side.SERVER, Side.CLIENT]),
    conversations(),
    st.lists(st.integers(0, 3000), max_size=12),
)
def test_valid_conversations_in_any_chops(
    side: Side, conversation: Conversation, cuts: list[int]
) -> None:
    """Whatever the sender serializes, fed in any pieces, yields the same events; every
    ping is answered, and the pongs acknowledge the sender's pings one by one."""
    sender = make(other(side))
    receiver = make(side)
    expected_events: list[object] = []
    expected_pongs: list[bytes] = []
    message = b""
    for kind, opcode, payload, fin in conversation.steps:
        if kind == "control":
            if opcode == PING:
                sender.send_ping(payload)
                expected_events.append(Ping(payload))
                expected_pongs.append(payload)
            else:
                sender.send_pong(payload)
                expected_events.append(Pong(payload, ()))
            continue
        if opcode == TEXT:
            sender.send_text(payload, fin=fin)
            kind_of_message = TEXT
        elif opcode == BINARY:
            sender.send_binary(payload, fin=fin)
            kind_of_message = BINARY
        else:
            sender.send_continuation(payload, fin=fin)
        message = payload if opcode != CONT else message + payload
        if fin:
            if kind_of_message == TEXT:
                expected_events.append(TextMessage(message.decode()))
            else:
                expected_events.append(BinaryMessage(message))
    if conversation.close is not None:
        sender.send_close(*conversation.close)
    data = b"".join(sender.data_to_send())

    for piece in chop(data, cuts):
        receiver.receive_data(piece)
    assert receiver.events_received() == expected_events
    assert receiver.failure is None
    frames, eof = output(receiver)
    pongs = [f.payload for f in frames if f.opcode == PONG]
    assert pongs == expected_pongs
    if conversation.close is None:
        assert [f.opcode for f in frames] == [PONG] * len(pongs)
        assert receiver.state is State.OPEN
        assert not eof
    else:
        code = conversation.close[0]
        assert frames[-1].opcode == CLOSE
        assert frames[-1].payload[:2] == close_payload(code)
        assert eof is (side is Side.SERVER)
        assert receiver.close_rcvd == Close(*conversation.close)

    # Back to the sender: each pong acknowledges exactly its ping.
    sender.receive_data(b"".join(f_bytes for f_bytes in _reserialize(receiver.side, frames)))
    acknowledged = [e.acknowledged for e in sender.events_received() if isinstance(e, Pong)]
    assert acknowledged == [(payload,) for payload in expected_pongs]


def _reserialize(sender: Side, frames: list[Frame]) -> list[bytes]:
    return [sent_by(sender, f.opcode, f.payload, fin=f.fin) for f in frames]


_INVALID_UTF8 = st.sampled_from([b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xe2\x82"])


@st.composite
def hostile_inputs(draw: st.DrawFn) -> tuple[Side, bytes]:
    """Sequences of frames that are mostly valid, with the occasional violation, so that
    parsing goes deep and reaches every rule."""
    side = draw(st.sampled_from([Side.SERVER, Side.CLIENT]))
    mask = MASK if side is Side.SERVER else None
    data = b""
    in_message = False
    text = False
    for _ in range(draw(st.integers(0, 10))):
        if in_message:
            opcode = draw(st.sampled_from([CONT, CONT, CONT, PING, PONG] * 2 + [CLOSE]))
        else:
            opcode = draw(st.sampled_from([TEXT, TEXT, BINARY, BINARY, PING, PONG] * 2 + [CLOSE]))
            text = opcode == TEXT
        if opcode == CLOSE:
            payload = draw(
                st.sampled_from([b"", close_payload(1000), close_payload(1001, b"bye")])
                | st.tuples(st.integers(0, 5000), st.binary(max_size=6)).map(
                    lambda c: close_payload(*c)
                )
                | st.binary(max_size=3)
            )
        elif opcode in (PING, PONG):
            payload = draw(st.binary(max_size=125))
        elif text:
            payload = draw(
                st.text(max_size=30).map(str.encode)
                | st.text(max_size=30).map(str.encode)
                | st.tuples(st.text(max_size=5), _INVALID_UTF8).map(lambda t: t[0].encode() + t[1])
            )
        else:
            payload = draw(st.binary(max_size=100))
        fin = True
        if opcode in (TEXT, BINARY, CONT):
            fin = draw(st.booleans())
            in_message = not fin
        rsv = 0
        frame_mask = mask
        encoding = 7 if len(payload) < 126 else 16
        if draw(st.integers(0, 19)) == 0:  # break a rule, or stretch one
            mutation = draw(st.sampled_from(["opcode", "rsv", "mask", "fin", "long", "encoding"]))
            if mutation == "opcode":
                opcode = draw(st.integers(0, 15))
            elif mutation == "rsv":
                rsv = draw(st.sampled_from([0x40, 0x20, 0x10]))
            elif mutation == "mask":
                frame_mask = OTHER_MASK if mask is None else None
            elif mutation == "fin":
                fin = not fin
            elif mutation == "long":
                payload += bytes(draw(st.integers(1, 200)))
                encoding = 16
            else:
                encoding = draw(st.sampled_from([16, 64]))
        data += frame(opcode, payload, fin=fin, rsv=rsv, mask=frame_mask, encoding=encoding)
    data += draw(st.just(b"") | st.binary(max_size=20))
    return side, data


def _check_robustness(
    side: Side, pieces: list[bytes], eof: bool, max_size: int | None, hold: bool
) -> None:
    protocol = make(side, max_size=max_size, hold_failures=hold)
    events: list[object] = []
    writes: list[bytes] = []
    for piece in pieces:
        protocol.receive_data(piece)  # never raises on peer input
        events += protocol.events_received()
        writes += protocol.data_to_send()
    if hold:
        protocol.release_failure()
        writes += protocol.data_to_send()
    if eof:
        protocol.receive_eof()
        events += protocol.events_received()
        writes += protocol.data_to_send()
        assert protocol.state is State.CLOSED

    for event in events:
        assert isinstance(event, TextMessage | BinaryMessage | Ping | Pong)
        if isinstance(event, TextMessage):
            assert isinstance(event.data, str)
        if isinstance(event, BinaryMessage) and max_size is not None:
            assert len(event.data) <= max_size
    if b"" in writes:
        assert writes.index(b"") == len(writes) - 1
    frames = decode_frames(b"".join(writes))
    for item in frames:
        assert item.mask == (MASK if side is Side.CLIENT else None)
        assert item.fin and item.rsv == 0 and item.opcode in (CLOSE, PONG)
    # Every ping is answered while no close frame was received (§5.5.2).
    assert [f.payload for f in frames if f.opcode == PONG] == [
        e.data for e in events if isinstance(e, Ping)
    ]
    assert len([f for f in frames if f.opcode == CLOSE]) <= 1
    failure = protocol.failure
    hypothesis.event(f"failure: {getattr(failure, 'close_code', type(failure).__name__)}")
    hypothesis.event(f"events: {min(len(events), 3)}")
    assert failure is None or isinstance(failure, ProtocolError | EOFError)
    if isinstance(failure, ProtocolError):
        assert failure.close_code in (1002, 1007, 1009)
        assert frames[-1].opcode == CLOSE
        assert frames[-1].payload[:2] == close_payload(failure.close_code)
        assert protocol.close_exc.code == failure.close_code
    elif protocol.close_rcvd is not None:
        assert frames[-1].opcode == CLOSE
        assert frames[-1].payload[:2] == protocol.close_rcvd.serialize()[:2]


@PROPERTY_SETTINGS
@given(
    hostile_inputs(),
    st.lists(st.integers(0, 2000), max_size=10),
    st.booleans(),
    st.sampled_from([None, 8, 64, 2**20]),
    st.booleans(),
)
def test_hostile_frames_never_raise(
    case: tuple[Side, bytes], cuts: list[int], eof: bool, max_size: int | None, hold: bool
) -> None:
    side, data = case
    _check_robustness(side, chop(data, cuts), eof, max_size, hold)


@PROPERTY_SETTINGS
@given(
    st.sampled_from([Side.SERVER, Side.CLIENT]),
    st.binary(max_size=200),
    st.lists(st.integers(0, 200), max_size=10),
    st.booleans(),
)
def test_random_bytes_never_raise(side: Side, data: bytes, cuts: list[int], eof: bool) -> None:
    _check_robustness(side, chop(data, cuts), eof, 64, False)


# Large binary frames, streamed into the delivered bytes as they arrive

#: Streamed whenever not entirely buffered; around the C buffer's first 64 KiB.
STREAMED_LENGTHS = [300, 64 * 1024 + 1, 200 * 1024]


def large_payload(length: int) -> bytes:
    """Bytes of period 251, prime to the mask's 4: any slip of the mask's offset shows."""
    return (bytes(range(251)) * (length // 251 + 1))[:length]


def header_size(side: Side, length: int) -> int:
    """Bytes before the payload of a frame sent to ``side``: masked towards a server."""
    size = 2 if length < 126 else 4 if length < 65536 else 10
    return size + 4 if side is Side.SERVER else size


_large_streams: dict[tuple[Side, int], bytes] = {}


def large_then_small(side: Side, length: int) -> bytes:
    """A large binary frame then a text frame and a ping, as the peer of ``side`` sends
    them (built once: the helpers mask byte by byte)."""
    key = (side, length)
    if key not in _large_streams:
        _large_streams[key] = (
            to(side, BINARY, large_payload(length))
            + to(side, TEXT, b"after")
            + to(side, PING, b"ping")
        )
    return _large_streams[key]


def assert_streamed(side: Side, length: int, pieces: list[bytes]) -> None:
    """Feeding ``pieces`` of :func:`large_then_small` gives its three events in order, the
    message no earlier than its last byte, and the pong."""
    protocol = make(side)
    end = header_size(side, length) + length
    events: list[object] = []
    fed = 0
    for piece in pieces:
        protocol.receive_data(piece)
        fed += len(piece)
        new = protocol.events_received()
        if fed < end:
            assert new == [], f"events before the frame's last byte ({fed} of {end})"
        events += new
    assert events == [BinaryMessage(large_payload(length)), TextMessage("after"), Ping(b"ping")]
    assert type(events[0].data) is bytes  # type: ignore[attr-defined]
    assert protocol.data_to_send() == [sent_by(side, PONG, b"ping")]
    assert_open(protocol)


# Cut points, from the header's size and the end of the large frame.
PIECE_PLANS = {
    "header byte by byte, then the rest": lambda h, e: [*range(1, h + 1)],
    "header byte by byte, then 64 KiB pieces": lambda h, e: [
        *range(1, h + 1),
        *range(h, e + 65536, 65536),
    ],
    "odd pieces across the frame's end": lambda h, e: [*range(1, h), *range(h, e + 8200, 4093)],
    "last payload byte with the next frames": lambda h, e: [h, e - 1],
    "frame's end with half of the next frame": lambda h, e: [h, e - 100, e + 4],
    "byte by byte around the frame's end": lambda h, e: [h, *range(e - 3, e + 10)],
    "some payload with the header": lambda h, e: [h + 5, h + 6, e + 1],
}


@pytest.mark.parametrize("length", STREAMED_LENGTHS)
@pytest.mark.parametrize("plan", list(PIECE_PLANS))
def test_large_binary_message_in_pieces(side: Side, length: int, plan: str) -> None:
    data = large_then_small(side, length)
    cuts = PIECE_PLANS[plan](header_size(side, length), header_size(side, length) + length)
    assert_streamed(side, length, chop(data, cuts))


def test_streamed_binary_message_byte_by_byte(side: Side) -> None:
    data = large_then_small(side, 300)
    assert_streamed(side, 300, [data[i : i + 1] for i in range(len(data))])


@PROPERTY_SETTINGS
@given(
    st.sampled_from([Side.SERVER, Side.CLIENT]),
    st.sampled_from(STREAMED_LENGTHS),
    st.booleans(),
    st.lists(st.integers(0, 2**18), max_size=12),
)
def test_large_binary_message_in_any_pieces(
    side: Side, length: int, header_by_byte: bool, cuts: list[int]
) -> None:
    data = large_then_small(side, length)
    header = [*range(1, header_size(side, length) + 1)] if header_by_byte else []
    assert_streamed(side, length, chop(data, [*header, *(c % len(data) for c in cuts)]))


def test_streamed_payload_does_not_keep_the_received_buffer(side: Side) -> None:
    """An I/O layer may reuse its receive buffer as soon as receive_data returns."""
    data = large_then_small(side, 200 * 1024)
    buffer = bytearray(16384)
    protocol = make(side)
    for start in range(0, len(data), len(buffer)):
        piece = data[start : start + len(buffer)]
        buffer[: len(piece)] = piece
        protocol.receive_data(memoryview(buffer)[: len(piece)])
        buffer[:] = b"\xaa" * len(buffer)
    events = protocol.events_received()
    assert events == [
        BinaryMessage(large_payload(200 * 1024)),
        TextMessage("after"),
        Ping(b"ping"),
    ]


def test_large_message_at_the_limit_is_streamed(side: Side) -> None:
    protocol = make(side, max_size=200 * 1024)
    data = to(side, BINARY, large_payload(200 * 1024))
    protocol.receive_data(data[:1000])
    assert protocol.events_received() == []
    protocol.receive_data(data[1000:])
    assert protocol.events_received() == [BinaryMessage(large_payload(200 * 1024))]
    assert_open(protocol)


@pytest.mark.parametrize("chunk", [None, 1])
def test_large_declared_length_over_the_limit_fails_before_the_payload(
    side: Side, chunk: int | None
) -> None:
    protocol = make(side, max_size=200 * 1024 - 1)
    feed(protocol, to(side, BINARY, b"", length=200 * 1024), chunk)  # header and mask only
    assert isinstance(protocol.failure, PayloadTooBig)
    assert protocol.events_received() == []
    assert_failed(protocol, 1009)


@pytest.mark.parametrize("received", [0, 1, 65536, 200 * 1024 - 1])
def test_eof_in_the_middle_of_a_streamed_payload(side: Side, received: int) -> None:
    protocol = make(side)
    header = header_size(side, 200 * 1024)
    data = large_then_small(side, 200 * 1024)[: header + received]
    protocol.receive_data(data[: header + 1])  # the header and maybe a first byte
    protocol.receive_data(data[header + 1 :])
    protocol.receive_eof()
    assert protocol.events_received() == []
    assert protocol.data_to_send() == [b""]
    assert protocol.state is State.CLOSED
    assert isinstance(protocol.failure, EOFError)
    assert protocol.close_code == 1006
    assert not protocol.receiving


def feed_reads(protocol: Protocol, data: bytes, read_size: int) -> int:
    """Feed ``data`` as an I/O layer that reads at most ``read_size`` bytes at a time does:
    straight into the payload buffer's view while a large frame's payload is under way,
    through :meth:`Protocol.receive_data` otherwise. Return how many reads went into the
    payload."""
    position = in_place = 0
    while position < len(data):
        payload_buffer = protocol.payload_buffer
        if payload_buffer is None:
            piece = data[position : position + read_size]
            protocol.receive_data(piece)
            position += len(piece)
            continue
        view = payload_buffer.prepare()
        size = min(len(view), read_size, len(data) - position)
        assert size > 0
        view[:size] = data[position : position + size]
        view[size:] = b"\xaa" * (len(view) - size)  # bytes beyond the read don't count
        view.release()
        protocol.receive_payload(size)
        position += size
        in_place += 1
    return in_place


@pytest.mark.parametrize("read_size", [1, 4093, 65536, 300_000])
@pytest.mark.parametrize("length", STREAMED_LENGTHS)
def test_large_binary_message_read_into_its_payload(
    side: Side, length: int, read_size: int
) -> None:
    """Bytes read straight into the payload buffer's view (unmasked there, on a server)
    make the same message as bytes fed to receive_data; what follows the frame is parsed
    as usual."""
    protocol = make(side)
    data = large_then_small(side, length)
    in_place = feed_reads(protocol, data, read_size)
    assert in_place > 0 or read_size >= len(data)
    assert protocol.events_received() == [
        BinaryMessage(large_payload(length)),
        TextMessage("after"),
        Ping(b"ping"),
    ]
    assert protocol.payload_buffer is None
    assert protocol.data_to_send() == [sent_by(side, PONG, b"ping")]
    assert_open(protocol)


def test_payload_buffer_only_while_a_large_payload_is_under_way(side: Side) -> None:
    protocol = make(side)
    assert protocol.payload_buffer is None
    with pytest.raises(InvalidState, match="no payload is being received"):
        protocol.receive_payload(0)
    data = large_then_small(side, 200 * 1024)
    protocol.receive_data(data[:100_000])
    assert protocol.payload_buffer is not None
    assert (
        protocol.payload_buffer.remaining == header_size(side, 200 * 1024) + 200 * 1024 - 100_000
    )
    protocol.receive_data(data[100_000:])
    assert protocol.payload_buffer is None


@pytest.mark.parametrize("nbytes", [-1, 10**9])
def test_receive_payload_beyond_the_view_is_refused(side: Side, nbytes: int) -> None:
    protocol = make(side)
    data = large_then_small(side, 200 * 1024)
    protocol.receive_data(data[:100_000])
    assert protocol.payload_buffer is not None
    remaining = protocol.payload_buffer.remaining
    with pytest.raises(ValueError, match="commit"):
        protocol.receive_payload(nbytes)
    assert protocol.payload_buffer.remaining == remaining
    protocol.receive_data(data[100_000:])
    assert protocol.events_received()[0] == BinaryMessage(large_payload(200 * 1024))


def test_receive_payload_after_a_failure_is_dropped(side: Side) -> None:
    """A read into the payload that completes after the connection failed (an I/O layer
    whose reads complete later, as on Windows) is dropped, like any input then."""
    protocol = make(side)
    data = large_then_small(side, 200 * 1024)
    protocol.receive_data(data[:100_000])
    assert protocol.payload_buffer is not None
    view = protocol.payload_buffer.prepare()
    protocol.fail(1011, "stop")
    view[:1000] = data[100_000:101_000]
    protocol.receive_payload(1000)
    view.release()
    assert protocol.payload_buffer is None
    assert protocol.events_received() == []


def test_receive_payload_after_eof_is_refused(side: Side) -> None:
    protocol = make(side)
    data = large_then_small(side, 200 * 1024)
    protocol.receive_data(data[:100_000])
    payload_buffer = protocol.payload_buffer
    assert payload_buffer is not None
    protocol.receive_eof()
    assert protocol.payload_buffer is None
    with pytest.raises(InvalidState, match="after end of stream"):
        protocol.receive_payload(0)


@pytest.mark.parametrize("how", ["fail", "ping_timeout_expired"])
def test_failing_while_streaming_a_payload_stops_it(side: Side, how: str) -> None:
    """§7.1.7: no more data is processed: neither the rest of the message nor the ping."""
    protocol = make(side)
    data = large_then_small(side, 200 * 1024)
    protocol.receive_data(data[:100_000])
    if how == "fail":
        protocol.fail(1011, "stop")
    else:
        protocol.ping_timeout_expired()
    frames, eof = output(protocol)
    assert [f.opcode for f in frames] == [CLOSE]
    assert frames[0].payload[:2] == close_payload(1011)
    assert eof is (side is Side.SERVER)
    assert not protocol.receiving
    assert exchange(protocol, data[100_000:150_000]) == ([], [])
    assert exchange(protocol, data[150_000:]) == ([], [])
    protocol.receive_eof()
    assert protocol.events_received() == []


def test_closing_while_streaming_a_payload_still_delivers_it(side: Side) -> None:
    """§7.1.2: after sending a close frame, data keeps coming until the peer's close."""
    protocol = make(side)
    data = large_then_small(side, 200 * 1024)
    protocol.receive_data(data[:100_000])
    protocol.send_close(1000)
    protocol.data_to_send()
    protocol.receive_data(data[100_000:])
    assert protocol.events_received() == [
        BinaryMessage(large_payload(200 * 1024)),
        TextMessage("after"),
        Ping(b"ping"),
    ]
    assert protocol.state is State.CLOSING


_BIG = 300_000


@pytest.mark.parametrize(
    ("frames", "piece_size"),
    [
        # The general parser's whole-frame path (a ping first keeps the C fast path out).
        ([(PING, b"p", True), (TEXT, b"t" * _BIG, True)], None),
        # Text streamed piece by piece, for UTF-8 to fail early.
        ([(TEXT, b"t" * _BIG, True)], 65_536),
        # A large binary frame filled as it arrives.
        ([(BINARY, b"b" * _BIG, True)], 65_536),
        # A fragmented message.
        ([(BINARY, b"b" * _BIG, False), (CONT, b"b" * _BIG, True)], None),
    ],
    ids=["after-ping", "streamed-text", "large-binary", "fragmented"],
)
def test_parser_keeps_no_message_once_delivered(
    frames: list[tuple[int, bytes, bool]], piece_size: int | None
) -> None:
    # Idle memory: once the message is handed over and dropped, nothing of it may stay
    # alive with the connection while the parser waits for the next frame.
    server = make(Side.SERVER)
    data = b"".join(to(Side.SERVER, opcode, payload, fin=fin) for opcode, payload, fin in frames)
    feed(server, data, piece_size)
    events = server.events_received()
    assert len(events[-1].data) == sum(len(payload) for _, payload, _ in frames if payload != b"p")
    del events
    assert max(parser_buffers(server).values(), default=0) < 1024, parser_buffers(server)
