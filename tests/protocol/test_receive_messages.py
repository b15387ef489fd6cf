"""Protocol.receive_messages: whole messages handed to a callback as they are parsed,
everything else left to the general parser with every rule checked (RFC 6455 §5)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from wsio.exceptions import InvalidState
from wsio.protocol.connection import BinaryMessage, Ping, Protocol, Side, State, TextMessage

from .helpers import BINARY, CLOSE, CONT, PING, PONG, TEXT, feed, frame, make, sent_by, to


class Collector:
    """A deliver callback that records messages and declines after ``stop_after``."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.messages: list[str | bytes] = []
        self.stop_after = stop_after

    def __call__(self, message: str | bytes) -> bool:
        self.messages.append(message)
        return self.stop_after is None or len(self.messages) < self.stop_after


def receive(protocol: Protocol, data: bytes, deliver: Callable[[str | bytes], object]) -> bool:
    """``data`` at the start of a larger buffer, as a BufferedProtocol reads it."""
    return protocol.receive_messages(bytearray(data + b"\x81\x7f stale bytes"), len(data), deliver)


@pytest.mark.parametrize("side", [Side.SERVER, Side.CLIENT])
def test_whole_messages_are_delivered_without_events(side: Side) -> None:
    protocol = make(side)
    deliver = Collector()
    data = to(side, TEXT, "é".encode()) + to(side, BINARY, b"\x00\x01") + to(side, TEXT)
    assert receive(protocol, data, deliver) is True
    assert deliver.messages == ["é", b"\x00\x01", ""]
    assert protocol.events_received() == []
    assert not protocol.has_data_to_send


def test_a_control_frame_and_what_follows_go_to_the_general_parser() -> None:
    protocol = make(Side.SERVER)
    deliver = Collector()
    data = (
        to(Side.SERVER, TEXT, b"a") + to(Side.SERVER, PING, b"p") + to(Side.SERVER, BINARY, b"b")
    )
    assert receive(protocol, data, deliver) is False
    assert deliver.messages == ["a"]
    assert protocol.events_received() == [Ping(b"p"), BinaryMessage(b"b")]
    assert protocol.data_to_send() == [sent_by(Side.SERVER, PONG, b"p")]
    # Between messages again: the next read is delivered.
    assert receive(protocol, to(Side.SERVER, TEXT, b"c"), deliver) is True
    assert deliver.messages == ["a", "c"]


def test_what_follows_a_declined_message_becomes_events() -> None:
    protocol = make(Side.SERVER)
    deliver = Collector(stop_after=1)
    data = b"".join(to(Side.SERVER, TEXT, text.encode()) for text in ("a", "b", "c"))
    assert receive(protocol, data, deliver) is False
    assert deliver.messages == ["a"]
    assert protocol.events_received() == [TextMessage("b"), TextMessage("c")]


def test_fragments_and_partial_frames_are_reassembled() -> None:
    protocol = make(Side.SERVER)
    deliver = Collector()
    first = to(Side.SERVER, TEXT, b"he", fin=False)
    rest = to(Side.SERVER, CONT, b"llo") + to(Side.SERVER, BINARY, b"next")
    assert receive(protocol, first + rest[:3], deliver) is False
    assert receive(protocol, rest[3:], deliver) is False
    assert deliver.messages == []
    assert protocol.events_received() == [TextMessage("hello"), BinaryMessage(b"next")]
    # A frame cut across reads: its start waits in the buffer, its end completes it.
    whole = to(Side.SERVER, BINARY, b"x" * 300)
    assert receive(protocol, whole[:100], deliver) is False
    assert receive(protocol, whole[100:], deliver) is False
    assert protocol.events_received() == [BinaryMessage(b"x" * 300)]
    assert receive(protocol, to(Side.SERVER, BINARY, b"y"), deliver) is True
    assert deliver.messages == [b"y"]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (to(Side.SERVER, TEXT, b"\xc0\xaf"), 1007),
        (frame(TEXT, b"x"), 1002),
        (to(Side.SERVER, TEXT, b"x", rsv=0x40), 1002),
        (to(Side.SERVER, 0x3, b"x"), 1002),
        (to(Side.SERVER, BINARY, b"x" * 11), 1009),
    ],
    ids=["invalid-utf8", "unmasked", "rsv", "reserved-opcode", "too-big"],
)
def test_violations_fail_after_the_messages_before_them(data: bytes, code: int) -> None:
    protocol = make(Side.SERVER, max_size=10)
    deliver = Collector()
    assert receive(protocol, to(Side.SERVER, TEXT, b"ok") + data, deliver) is False
    assert deliver.messages == ["ok"]
    assert protocol.events_received() == []
    assert protocol.state is State.CLOSING
    assert protocol.close_sent is not None and protocol.close_sent.code == code
    # Nothing is delivered after the failure.
    assert receive(protocol, to(Side.SERVER, TEXT, b"late"), deliver) is False
    assert deliver.messages == ["ok"]


def test_a_close_frame_ends_delivery() -> None:
    protocol = make(Side.SERVER)
    deliver = Collector()
    data = to(Side.SERVER, CLOSE, b"\x03\xe8") + to(Side.SERVER, TEXT, b"after")
    assert receive(protocol, data, deliver) is False
    assert deliver.messages == []
    assert protocol.state is State.CLOSING


def test_data_after_the_end_of_the_stream_is_refused() -> None:
    protocol = make(Side.SERVER)
    protocol.receive_eof()
    with pytest.raises(InvalidState):
        receive(protocol, to(Side.SERVER, TEXT, b"x"), Collector())


def test_a_delivery_exception_propagates() -> None:
    protocol = make(Side.SERVER)

    def deliver(message: str | bytes) -> bool:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        receive(protocol, to(Side.SERVER, TEXT, b"x"), deliver)


def test_same_messages_as_receive_data() -> None:
    data = b"".join(
        to(Side.SERVER, opcode, payload)
        for opcode, payload in [(TEXT, b"a"), (BINARY, b"b" * 200), (PING, b""), (TEXT, b"c")]
    )
    reference = make(Side.SERVER)
    feed(reference, data, 7)
    protocol = make(Side.SERVER)
    received: list[object] = []

    def deliver(message: str | bytes) -> bool:
        received.append(
            TextMessage(message) if isinstance(message, str) else BinaryMessage(message)
        )
        return True

    for start in range(0, len(data), 7):
        receive(protocol, data[start : start + 7], deliver)
        received.extend(protocol.events_received())
    assert received == reference.events_received()
