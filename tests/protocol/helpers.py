"""Helpers shared by the unit tests of the sans-I/O core: a frame builder written
independently of :func:`wsio.protocol.frames.serialize_frame`, deterministic randomness,
and shortcuts to feed a :class:`Protocol` and collect what it produced."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Generator, Iterable
from typing import TypeVar

from hypothesis import strategies as st

from wsio.protocol.connection import Event, Protocol, Side
from wsio.protocol.streams import StreamReader

T = TypeVar("T")

#: The masking key used by every client in these tests.
MASK = b"\x37\xfa\x21\x3d"
#: Another key, to check that the receiver uses the key of each frame.
OTHER_MASK = b"\xa5\x5a\x0f\xf0"
#: The 16 bytes whose base64 is the example key of RFC 6455 §1.3 and §4.2.2.
RFC_NONCE = b"the sample nonce"
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

# Opcodes, spelled as plain integers so that the tests don't depend on the enum.
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def fixed_random(n: int) -> bytes:
    """Deterministic ``random_bytes``: the RFC nonce for keys, :data:`MASK` for masks."""
    if n == 16:
        return RFC_NONCE
    if n == 4:
        return MASK
    return bytes(i & 0xFF for i in range(n))


def xor(payload: bytes, mask: bytes) -> bytes:
    """Mask ``payload`` byte by byte (RFC 6455 §5.3), the slow and obvious way."""
    return bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
    length: int | None = None,
    encoding: int | None = None,
) -> bytes:
    """Build one frame by hand (RFC 6455 §5.2).

    :param rsv: raw RSV bits, already shifted (0x40, 0x20, 0x10).
    :param length: declared payload length, when it must differ from ``len(payload)``.
    :param encoding: 7, 16 or 64 to force a length encoding, minimal or not.
    """
    declared = len(payload) if length is None else length
    if encoding is None:
        encoding = 7 if declared < 126 else 16 if declared < 65536 else 64
    first = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if mask is not None else 0
    if encoding == 7:
        head = bytes([first, mask_bit | declared])
    elif encoding == 16:
        head = bytes([first, mask_bit | 126]) + declared.to_bytes(2, "big")
    else:
        head = bytes([first, mask_bit | 127]) + declared.to_bytes(8, "big")
    if mask is None:
        return head + payload
    return head + mask + xor(payload, mask)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


#: Close payloads of every kind: valid, and each way of being invalid (RFC 6455 §5.5,
#: §5.5.1, §7.4).
CLOSE_PAYLOADS = [
    b"",
    b"\x03",  # 1 byte: no room for a code
    close_payload(1000),
    close_payload(1000, b"bye"),
    close_payload(1001, "é€\U0001f600".encode()),
    close_payload(1014),
    close_payload(3000),
    close_payload(4999, b"x" * 123),  # the longest payload, 125 bytes
    close_payload(1000, b"x" * 124),  # 126 bytes: too long for a control frame
    close_payload(999),
    close_payload(1004),
    close_payload(1005),
    close_payload(1006),
    close_payload(1015),
    close_payload(1016),
    close_payload(2999),
    close_payload(5000),
    close_payload(0),
    close_payload(65535),
    close_payload(1000, b"ok\xff"),
    close_payload(1000, b"\xc0\xaf"),  # overlong
    close_payload(1000, b"\xed\xa0\x80"),  # a surrogate
    close_payload(1000, b"\xf4\x90\x80\x80"),  # beyond U+10FFFF
    close_payload(1000, b"\xe2\x82"),  # cut short
]


@st.composite
def close_frames(draw: st.DrawFn, mask_expected: bool) -> bytes:
    """A close frame, valid or broken in any way -- payload, opcode, FIN, RSV bits, mask
    bit, length encoding -- possibly cut, possibly followed by other bytes."""
    payload = draw(
        st.one_of(
            st.sampled_from(CLOSE_PAYLOADS),
            st.builds(close_payload, st.integers(0, 65535), st.text(max_size=40).map(str.encode)),
            st.builds(close_payload, st.sampled_from([1000, 1001, 3000, 4999]), st.binary()),
            st.binary(max_size=130),
        )
    )
    right_mask = MASK if mask_expected else None
    mask = draw(st.sampled_from([right_mask, right_mask, None if mask_expected else MASK]))
    opcode = draw(st.sampled_from([CLOSE, CLOSE, CLOSE, PING, TEXT, 0xB]))
    fin = draw(st.sampled_from([True, True, False]))
    rsv = draw(st.sampled_from([0, 0, 0x10, 0x20, 0x40]))
    encoding = draw(st.sampled_from([None, None, 16, 64]))
    data = frame(opcode, payload, fin=fin, rsv=rsv, mask=mask, encoding=encoding)
    data = data[: draw(st.one_of(st.none(), st.integers(0, len(data))))]
    return data + draw(st.sampled_from([b"", b"", b"\x88\x00", b"\x81\x00", b"\x00"]))


def to(receiver: Side, opcode: int, payload: bytes = b"", **kwargs: object) -> bytes:
    """A frame as the peer of ``receiver`` sends it: masked towards a server only."""
    mask = MASK if receiver is Side.SERVER else None
    return frame(opcode, payload, mask=mask, **kwargs)  # type: ignore[arg-type]


def sent_by(sender: Side, opcode: int, payload: bytes = b"", **kwargs: object) -> bytes:
    """A frame exactly as ``sender`` serializes it with :func:`fixed_random` masks."""
    mask = MASK if sender is Side.CLIENT else None
    return frame(opcode, payload, mask=mask, **kwargs)  # type: ignore[arg-type]


def other(side: Side) -> Side:
    return Side.CLIENT if side is Side.SERVER else Side.SERVER


def make(side: Side, **kwargs: object) -> Protocol:
    """An open connection with deterministic masks."""
    return Protocol(side, random_bytes=fixed_random, **kwargs)  # type: ignore[arg-type]


def feed(protocol: Protocol, data: bytes, chunk: int | None = None) -> None:
    """Feed ``data``, all at once or ``chunk`` bytes at a time."""
    if chunk is None:
        protocol.receive_data(data)
        return
    for i in range(0, len(data), chunk):
        protocol.receive_data(data[i : i + chunk])


def chop(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """Split ``data`` at the given offsets (any order, out-of-range ones ignored)."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def exchange(protocol: Protocol, data: bytes) -> tuple[list[Event], list[bytes]]:
    """Feed ``data``; return the events and the writes it caused."""
    protocol.receive_data(data)
    return protocol.events_received(), protocol.data_to_send()


Parser = Callable[[StreamReader], Generator[None, None, T]]


def parse_all(parser: Parser[T], data: bytes, *, eof: bool = True) -> T:
    """Run ``parser`` over a reader that already holds ``data``, then EOF if ``eof``.

    :raises BlockingIOError: the parser still waits for more bytes.
    """
    reader = StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    gen = parser(reader)
    try:
        next(gen)
    except StopIteration as exc:
        return exc.value  # type: ignore[no-any-return]
    raise BlockingIOError("parser waits for more data")


def parse_pieces(parser: Parser[T], pieces: Iterable[bytes], *, eof: bool = True) -> T:
    """Run ``parser`` while feeding ``pieces`` one at a time, then EOF if ``eof``.

    :raises BlockingIOError: the parser still waits for more bytes.
    """
    reader = StreamReader()
    gen = parser(reader)
    try:
        next(gen)
        for piece in pieces:
            reader.feed_data(piece)
            gen.send(None)
        if eof:
            reader.feed_eof()
            gen.send(None)
    except StopIteration as exc:
        return exc.value  # type: ignore[no-any-return]
    raise BlockingIOError("parser waits for more data")


@dataclasses.dataclass(frozen=True)
class Frame:
    """A frame decoded from what a protocol wrote, payload already unmasked."""

    fin: bool
    rsv: int
    opcode: int
    payload: bytes
    mask: bytes | None


def decode_frames(data: bytes) -> list[Frame]:
    """Decode a sequence of complete frames (RFC 6455 §5.2), independently of the core."""
    frames = []
    i = 0
    while i < len(data):
        first, second = data[i], data[i + 1]
        i += 2
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(data[i : i + 2], "big")
            i += 2
        elif length == 127:
            length = int.from_bytes(data[i : i + 8], "big")
            i += 8
        mask = None
        if second & 0x80:
            mask = data[i : i + 4]
            i += 4
        payload = data[i : i + length]
        assert len(payload) == length, "truncated frame"
        i += length
        if mask is not None:
            payload = xor(payload, mask)
        frames.append(Frame(bool(first & 0x80), first & 0x70, first & 0x0F, payload, mask))
    return frames


def output(protocol: Protocol) -> tuple[list[Frame], bool]:
    """The frames ``protocol`` wrote since the last call, and whether it half-closed TCP.

    Checks on the way that EOF comes last and that frames are masked with :data:`MASK` by a
    client and unmasked by a server (§5.1).
    """
    writes = protocol.data_to_send()
    eof = b"" in writes
    if eof:
        assert writes.index(b"") == len(writes) - 1, f"data after EOF: {writes!r}"
    frames = decode_frames(b"".join(writes))
    expected_mask = MASK if protocol.side is Side.CLIENT else None
    for item in frames:
        assert item.mask == expected_mask
    return frames, eof


def time_in_thread(
    function: Callable[[], object], timeout: float, expected: tuple[type[BaseException], ...]
) -> float:
    """Run ``function`` in a daemon thread, where it may raise one of ``expected``; fail if
    it isn't done within ``timeout``. Returns the time it took.

    For the linear-time tests of parsers fed hostile input: a superlinear parser doesn't
    finish, and the test fails instead of hanging.
    """
    elapsed: list[float] = []

    def run() -> None:
        start = time.perf_counter()
        with contextlib.suppress(*expected):
            function()
        elapsed.append(time.perf_counter() - start)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"not done within {timeout} s"
    assert elapsed, "it raised something else than " + ", ".join(e.__name__ for e in expected)
    return elapsed[0]


def assert_linear_time(
    build: Callable[[int], T],
    parse: Callable[[T], object],
    size: int,
    expected: tuple[type[BaseException], ...],
) -> None:
    """``parse`` the hostile input that ``build`` makes, of ``size`` and of a tenth of it,
    where it may raise one of ``expected``. Timing is only compared loosely: a linear
    parser takes about 10 times as long for 10 times the input, a quadratic one about 100
    times, and on the whole size a quadratic one doesn't finish within the bound."""
    small_input, large_input = build(size // 10), build(size)
    small = time_in_thread(lambda: parse(small_input), 20, expected)
    large = time_in_thread(lambda: parse(large_input), 20, expected)
    # Very loose: only a superlinear parser, or a very noisy machine, gets near this.
    assert large < 60 * small + 2.0, (small, large)


def parser_buffers(protocol: Protocol) -> dict[str, int]:
    """The lengths of the bytes and strings that the parser's suspended frames hold, by
    ``generator.variable``: the parser may wait long for the rest of a message, and so
    does whatever these refer to."""
    found: dict[str, int] = {}
    generator = protocol._parser
    while isinstance(generator, Generator) and generator.gi_frame is not None:
        for name, value in generator.gi_frame.f_locals.items():
            if isinstance(value, memoryview):
                with contextlib.suppress(ValueError):  # released: it refers to nothing
                    found[f"{generator.gi_code.co_name}.{name}"] = value.nbytes
            elif isinstance(value, bytes | bytearray | str):
                found[f"{generator.gi_code.co_name}.{name}"] = len(value)
        generator = generator.gi_yieldfrom
    return found
