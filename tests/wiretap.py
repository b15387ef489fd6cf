"""A tap on a wsio connection of either I/O layer: the frames it reads and writes, parsed from
the raw bytes, so that RSV1 (RFC 7692 §6) and compressed sizes are observed on the wire, not
inferred."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RSV1", "Wire", "WireFrame", "WireLog", "WireMessage", "tap"]

RSV1 = 0x40


@dataclass(frozen=True)
class WireFrame:
    opcode: int
    fin: bool
    rsv: int  # the RSV1-3 bits of the first byte (0x70)
    length: int  # payload bytes on the wire


@dataclass(frozen=True)
class WireMessage:
    opcode: int
    compressed: bool  # RSV1 on its first frame
    frames: int
    length: int  # payload bytes on the wire, all frames


@dataclass
class WireLog:
    """The frames of one direction of a connection, parsed from the raw bytes."""

    http_first: bool = False
    frames: list[WireFrame] = field(default_factory=list)
    total: int = 0
    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        self._buffer += data
        if self.http_first:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            del self._buffer[: end + 4]
            self.http_first = False
        # Bounded: each turn removes one whole frame from the buffer.
        while (frame := self._next_frame()) is not None:
            self.frames.append(frame)

    def _next_frame(self) -> WireFrame | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        length, offset = buffer[1] & 0x7F, 2
        if length == 126:
            if len(buffer) < 4:
                return None
            length, offset = int.from_bytes(buffer[2:4], "big"), 4
        elif length == 127:
            if len(buffer) < 10:
                return None
            length, offset = int.from_bytes(buffer[2:10], "big"), 10
        if buffer[1] & 0x80:
            offset += 4  # masking key
        if len(buffer) < offset + length:
            return None
        frame = WireFrame(buffer[0] & 0x0F, bool(buffer[0] & 0x80), buffer[0] & 0x70, length)
        del buffer[: offset + length]
        return frame

    def messages(self) -> list[WireMessage]:
        """The data messages, in order; control frames are left out."""
        done: list[WireMessage] = []
        current: WireMessage | None = None
        for frame in self.frames:
            if frame.opcode >= 8:
                continue
            if frame.opcode != 0:
                assert current is None, f"a new message inside a fragmented one: {self.frames}"
                current = WireMessage(frame.opcode, bool(frame.rsv & RSV1), 0, 0)
            assert current is not None, f"a continuation frame out of a message: {self.frames}"
            current = WireMessage(
                current.opcode,
                current.compressed,
                current.frames + 1,
                current.length + frame.length,
            )
            if frame.fin:
                done.append(current)
                current = None
        return done

    def compressed(self) -> list[bool]:
        return [message.compressed for message in self.messages()]

    def check_rsv(self) -> None:
        """§6.1: RSV1 only on the first frame of a data message; RSV2 and RSV3 never."""
        for frame in self.frames:
            allowed = RSV1 if frame.opcode in (1, 2) else 0
            assert frame.rsv & ~allowed == 0, f"bad RSV bits: {frame}"


@dataclass
class Wire:
    incoming: WireLog
    outgoing: WireLog

    def check_rsv(self) -> None:
        self.incoming.check_rsv()
        self.outgoing.check_rsv()


def tap(ws: Any, *, before_response: bool = False) -> Wire:
    """Record what wsio connection ``ws`` reads and writes from now on. On a server, call it
    from process_request (``before_response``): the 101 is then skipped on the way out."""
    wire = Wire(WireLog(), WireLog(http_first=before_response))
    # Every byte read reaches the core through receive_data, whichever protocol callback
    # the event loop used.
    protocol = ws.protocol
    received = protocol.receive_data

    def receive_data(data: bytes) -> None:
        wire.incoming.feed(bytes(data))
        received(data)

    protocol.receive_data = receive_data
    transport = getattr(ws, "transport", None)
    if transport is None:
        # The threads layer writes to its socket (whose methods can't be replaced) what
        # the core hands over for writing.
        take = protocol.data_to_send

        def data_to_send() -> list[bytes]:
            writes: list[bytes] = take()
            for data in writes:
                wire.outgoing.feed(bytes(data))
            return writes

        protocol.data_to_send = data_to_send
        return wire
    write = transport.write

    def tapped_write(data: bytes) -> None:
        wire.outgoing.feed(bytes(data))
        write(data)

    transport.write = tapped_write
    # Messages then go through the transport's write() too, rather than to the socket.
    ws._socket_fd = -1
    return wire
