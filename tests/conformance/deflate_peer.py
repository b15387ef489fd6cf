"""A raw permessage-deflate peer for the Autobahn 12.x/13.x-style tests: it negotiates the
extension by itself, compresses and decompresses with Python's zlib, independently of wsio,
and judges what wsio sends against the agreed parameters (RFC 7692).

- :func:`parse_header`, :func:`check_answer`, :func:`agreed_by_answer`: the handshake, from
  the raw side's point of view.
- :class:`Agreed`: who may use context takeover and which windows, in each direction.
- :class:`Codec`: the raw side's compressor and a strict decompressor for wsio's messages.
- :func:`workload` and :func:`run_exchange`: Autobahn's message sizes and fragmentations,
  sent compressed, echoes checked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import zlib
from dataclasses import dataclass
from typing import Any

from rawpeer import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Frame,
    RawConnection,
    build_frame,
    close_payload,
)

PMD = "permessage-deflate"
TAIL = b"\x00\x00\xff\xff"
KiB = 1024

#: (message size, fragment size of the compressed payload or None), as in Autobahn 12/13.
SIZES: list[tuple[int, int | None]] = [
    (16, None),
    (64, None),
    (256, None),
    (1 * KiB, None),
    (4 * KiB, None),
    (8 * KiB, None),
    (16 * KiB, None),
    (32 * KiB, None),
    (64 * KiB, None),
    (128 * KiB, None),
    (8 * KiB, 256),
    (16 * KiB, 256),
    (32 * KiB, 256),
    (64 * KiB, 256),
    (128 * KiB, 256),
    (128 * KiB, 1 * KiB),
    (128 * KiB, 4 * KiB),
    (128 * KiB, 32 * KiB),
]

#: wsio's default compression threshold: shorter messages may go uncompressed.
THRESHOLD = 128

Params = list[tuple[str, str | None]]


# Handshake -------------------------------------------------------------------------------


def parse_header(values: list[str]) -> list[tuple[str, Params]]:
    """A simple parser, enough for the well-formed headers of these tests."""
    out: list[tuple[str, Params]] = []
    for value in values:
        for element in value.split(","):
            if not element.strip():
                continue
            name, *params = (p.strip() for p in element.split(";"))
            parsed: Params = []
            for param in params:
                key, eq, val = param.partition("=")
                parsed.append((key.strip(), val.strip().strip('"') if eq else None))
            out.append((name, parsed))
    return out


def check_answer(offer: Params, answer: Params) -> None:
    """RFC 7692 §7.1: the server's answer must fit the client's offer."""
    names = [name for name, _ in answer]
    assert len(names) == len(set(names)), f"duplicate parameters: {answer}"
    offered = dict(offer)
    answered = dict(answer)
    known = {
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
    }
    assert set(answered) <= known, f"unknown parameters: {answer}"
    for flag in ("server_no_context_takeover", "client_no_context_takeover"):
        assert answered.get(flag) is None, f"{flag} with a value: {answer}"
    if "server_no_context_takeover" in offered:
        assert "server_no_context_takeover" in answered, "server_no_context_takeover ignored"
    for param in ("server_max_window_bits", "client_max_window_bits"):
        if param in answered:
            value = answered[param]
            assert value is not None and value in {str(b) for b in range(8, 16)}, answer
    if offered.get("server_max_window_bits") is not None:
        assert "server_max_window_bits" in answered, "server_max_window_bits ignored"
        assert int(answered["server_max_window_bits"] or 0) <= int(
            offered["server_max_window_bits"] or 0
        )
    if "client_max_window_bits" in answered:
        assert "client_max_window_bits" in offered, "client_max_window_bits not offered"
        if offered["client_max_window_bits"] is not None:
            assert int(answered["client_max_window_bits"] or 0) <= int(
                offered["client_max_window_bits"]
            )


@dataclass(frozen=True)
class Agreed:
    """The agreed parameters, as seen from the raw side (``peer``) facing wsio."""

    peer_no_context: bool
    peer_bits: int
    wsio_no_context: bool
    wsio_bits: int


def agreed_by_answer(offer: Params, answer: Params, *, raw_is_client: bool) -> Agreed:
    """What the answer to the offer means for each direction (RFC 7692 §7.1)."""
    offered, answered = dict(offer), dict(answer)
    server_no_context = "server_no_context_takeover" in answered
    # A client that offered client_no_context_takeover promised not to use context.
    client_no_context = "client_no_context_takeover" in answered or (
        "client_no_context_takeover" in offered
    )
    server_bits = int(answered.get("server_max_window_bits") or 15)
    client_bits = int(
        answered.get("client_max_window_bits") or offered.get("client_max_window_bits") or 15
    )
    if raw_is_client:
        return Agreed(client_no_context, client_bits, server_no_context, server_bits)
    return Agreed(server_no_context, server_bits, client_no_context, client_bits)


# Compression -----------------------------------------------------------------------------


class Codec:
    """The raw side's compression state for one connection."""

    def __init__(self, agreed: Agreed) -> None:
        self.agreed = agreed
        self._compressor: Any = None
        self._decompressor: Any = None

    def _new_compressor(self) -> Any:
        if self.agreed.peer_bits == 8:
            # zlib can't make a 256-byte window; Huffman coding without back-references
            # fits any window.
            return zlib.compressobj(9, zlib.DEFLATED, -9, 8, zlib.Z_HUFFMAN_ONLY)
        return zlib.compressobj(9, zlib.DEFLATED, -self.agreed.peer_bits)

    def compress(self, data: bytes) -> bytes:
        """One message, compressed as RFC 7692 §7.2.1 says."""
        if self._compressor is None or self.agreed.peer_no_context:
            self._compressor = self._new_compressor()
        payload: bytes = self._compressor.compress(data) + self._compressor.flush(
            zlib.Z_SYNC_FLUSH
        )
        assert payload.endswith(TAIL)
        return payload[: -len(TAIL)]

    def decompress(self, payload: bytes) -> bytes:
        """One of wsio's messages. A fresh decompressor when wsio may not use context
        takeover; the agreed window only, enforced by taking the output in small steps (zlib
        then checks every back-reference against its window)."""
        if self._decompressor is None or self.agreed.wsio_no_context:
            self._decompressor = zlib.decompressobj(wbits=-max(self.agreed.wsio_bits, 9))
        decompressor = self._decompressor
        data = payload + TAIL
        out = bytearray()
        while True:
            chunk = decompressor.decompress(data, 64)
            out += chunk
            data = decompressor.unconsumed_tail
            if not data and not chunk:
                break
        assert not decompressor.unused_data, "data after the end of wsio's DEFLATE stream"
        return bytes(out)


# Workload --------------------------------------------------------------------------------


def _json_text(size: int) -> bytes:
    rng = random.Random(1213)
    records = []
    length = 0
    while length < size:
        record = {
            "id": rng.randrange(10**9),
            "name": "".join(rng.choice("abcdefghijklmnopqrstuvwxyzé") for _ in range(8)),
            "tags": [rng.choice(["alpha", "beta", "gamma", "delta", "€uro"]) for _ in range(3)],
            "score": round(rng.random() * 100, 3),
            "active": rng.random() < 0.5,
        }
        line = json.dumps(record, ensure_ascii=False)
        records.append(line)
        length += len(line.encode()) + 2
    return ("[" + ",\n".join(records) + "]").encode()


def _binary(size: int) -> bytes:
    rng = random.Random(1312)
    blocks = [rng.randbytes(rng.randint(16, 400)) for _ in range(64)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(blocks)
        out += rng.randbytes(rng.randint(0, 40))
    return bytes(out[:size])


#: About 400 KB of each: consecutive slices wrap around, so messages differ and refer to
#: each other (as Autobahn's slices of a test file do).
TEXT_DATA = _json_text(400 * KiB)
BINARY_DATA = _binary(400 * KiB)


def _slices(data: bytes, sizes: list[int], utf8: bool) -> list[bytes]:
    out = []
    pos = 0
    for size in sizes:
        end = pos + size
        piece = data[pos:end] if end <= len(data) else data[pos:] + data[: end - len(data)]
        pos = end % len(data)
        if utf8:
            # Keep text valid: drop the characters cut at either end, pad with spaces.
            kept = piece.decode(errors="ignore").encode()
            piece = kept + b" " * (size - len(kept))
        out.append(piece)
    return out


Message = tuple[int, bytes, int | None]


def workload(sizes: list[tuple[int, int | None]] = SIZES) -> list[Message]:
    """Every size and fragmentation, as text then as binary: (opcode, data, fragment)."""
    texts = _slices(TEXT_DATA, [s for s, _ in sizes], utf8=True)
    binaries = _slices(BINARY_DATA, [s for s, _ in sizes], utf8=False)
    return [(OP_TEXT, data, frag) for data, (_, frag) in zip(texts, sizes, strict=True)] + [
        (OP_BINARY, data, frag) for data, (_, frag) in zip(binaries, sizes, strict=True)
    ]


# Exchange --------------------------------------------------------------------------------


def _show(data: bytes) -> str:
    return f"<{len(data)} bytes sha1:{hashlib.sha1(data).hexdigest()[:12]}>"


def message_frames(
    opcode: int, payload: bytes, frag: int | None, mask: bytes | None, *, compressed: bool
) -> bytes:
    """The frames of one message: RSV1 on the first only (RFC 7692 §6.1)."""
    if frag is None:
        pieces = [payload]
    else:
        pieces = [payload[i : i + frag] for i in range(0, len(payload), frag)] or [b""]
    return b"".join(
        build_frame(
            opcode if i == 0 else OP_CONT,
            piece,
            fin=i == len(pieces) - 1,
            rsv1=compressed and i == 0,
            mask=mask,
        )
        for i, piece in enumerate(pieces)
    )


@dataclass
class Echo:
    opcode: int
    compressed: bool
    data: bytes
    frames: int


async def read_message(conn: RawConnection, *, wsio_masks: bool, timeout: float) -> Echo:
    """The next data message from wsio, checking every frame on the way; pings and pongs
    are skipped."""
    opcode: int | None = None
    compressed = False
    payload = bytearray()
    count = 0
    while True:
        frame: Frame | None = await conn.recv_frame(timeout)
        assert frame is not None, "wsio closed the TCP connection"
        assert frame.masked == wsio_masks, f"mask bit {frame.masked}: {frame!r}"
        assert not (frame.rsv2 or frame.rsv3), f"RSV2/RSV3 set: {frame!r}"
        if frame.opcode in (OP_PING, OP_PONG):
            assert not frame.rsv1, f"RSV1 on a control frame: {frame!r}"
            continue
        assert frame.opcode != OP_CLOSE, f"wsio closed: {frame.close_code} {frame.close_reason!r}"
        count += 1
        if opcode is None:
            assert frame.opcode in (OP_TEXT, OP_BINARY), f"expected a new message: {frame!r}"
            opcode, compressed = frame.opcode, frame.rsv1
        else:
            assert frame.opcode == OP_CONT, f"expected a continuation: {frame!r}"
            assert not frame.rsv1, "RSV1 on a continuation frame"
        payload += frame.payload
        if frame.fin:
            return Echo(opcode, compressed, bytes(payload), count)


async def run_exchange(
    conn: RawConnection,
    agreed: Agreed,
    messages: list[Message],
    *,
    wsio_masks: bool,
    timeout: float = 10.0,
) -> list[Echo]:
    """Send each message compressed (fragmented as asked), check its echo, then close.

    Echoes must decompress (under the agreed rules) to the same type and data; with a
    window of more than 8 bits, wsio must compress what reaches its threshold; with 8 bits
    it can't (zlib), so it must send uncompressed messages.
    """
    codec = Codec(agreed)
    mask = conn.default_mask
    echoes = []
    for index, (opcode, data, frag) in enumerate(messages):
        payload = codec.compress(data)
        await conn.send(message_frames(opcode, payload, frag, mask, compressed=True))
        echo = await read_message(conn, wsio_masks=wsio_masks, timeout=timeout)
        what = f"message #{index} ({len(data)} bytes, fragments {frag})"
        got = codec.decompress(echo.data) if echo.compressed else echo.data
        assert echo.opcode == opcode, f"{what}: echoed with opcode {echo.opcode}"
        assert got == data, f"{what}: echo {_show(got)} instead of {_show(data)}"
        if agreed.wsio_bits == 8:
            assert not echo.compressed, f"{what}: compressed with a window zlib can't make"
        elif len(data) >= THRESHOLD:
            assert echo.compressed, f"{what}: not compressed"
        echoes.append(echo)
    # Closing handshake, as Autobahn does it: 1000 and a clean close back.
    with contextlib.suppress(ConnectionError, OSError):
        await conn.send(build_frame(OP_CLOSE, close_payload(1000), mask=mask))
    while True:
        frame = await conn.recv_frame(timeout)
        assert frame is not None, "no close frame in answer to ours"
        if frame.opcode == OP_CLOSE:
            assert frame.close_code == 1000, frame
            break
        assert frame.opcode in (OP_PING, OP_PONG), f"data after our close: {frame!r}"
    return echoes
