"""The optional C accelerator (``wsio._speedups``) against the pure-Python reference.

Both implementations must give identical results: the same masked bytes, the same
accept/reject decision for UTF-8, the C validator failing no later than the Python one
(a surrogate fails at its second byte in C, at its third in CPython's codec), the same
serialized frames, and the same offset and events from the receive fast path.

When ``WSIO_NO_SPEEDUPS`` is unset the extension must be built: its absence fails this
module loudly instead of silently testing the fallback twice.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import random
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsio.asyncio import waiter
from wsio.exceptions import InvalidState, ProtocolError
from wsio.protocol import entropy, frames, http11, masking, utf8
from wsio.protocol.connection import BinaryMessage, Protocol, Side, TextMessage
from wsio.protocol.extensions import PerMessageDeflate
from wsio.protocol.frames import (
    Close,
    Opcode,
    python_deliver_messages,
    python_parse_close,
    python_parse_messages,
    python_serialize_frame,
)
from wsio.protocol.http11 import (
    python_field_values,
    python_fields_by_name,
    python_head_fields,
)
from wsio.protocol.masking import MASKED_PIECE, python_apply_mask, python_join_masked
from wsio.protocol.utf8 import PythonIncrementalValidator

from .helpers import (
    BINARY,
    CLOSE,
    CLOSE_PAYLOADS,
    CONT,
    MASK,
    PING,
    PONG,
    TEXT,
    close_frames,
    frame,
    make,
    xor,
)

NO_SPEEDUPS = bool(os.environ.get("WSIO_NO_SPEEDUPS"))

try:
    from wsio import _speedups
except ImportError as exc:  # pragma: no cover - only on a broken build
    if not NO_SPEEDUPS:
        raise ImportError(
            "wsio._speedups is not built: install wsio with a C compiler "
            "(pip install -e .), or set WSIO_NO_SPEEDUPS=1 to test the pure-Python code only"
        ) from exc
    pytest.skip("wsio._speedups is not built", allow_module_level=True)

SETTINGS = settings(max_examples=300, deadline=None)
MASKS = st.binary(min_size=4, max_size=4)
# Offsets as the Python code takes them: any int, negative and beyond 64 bits included.
OFFSETS = st.one_of(st.integers(0, 300), st.integers(-(2**70), 2**70))


# Selection ----------------------------------------------------------------------------


def test_selection_follows_the_environment() -> None:
    assert masking.SPEEDUPS is utf8.SPEEDUPS is waiter.SPEEDUPS is (not NO_SPEEDUPS)
    if NO_SPEEDUPS:
        assert masking.apply_mask is python_apply_mask
        assert utf8.IncrementalValidator is PythonIncrementalValidator
        assert waiter.Waiter is waiter.PythonWaiter
        assert entropy.random_bytes is entropy.python_random_bytes
    else:
        assert masking.apply_mask is _speedups.apply_mask
        assert utf8.IncrementalValidator is _speedups.Utf8Validator
        assert waiter.Waiter is _speedups.Waiter
        assert entropy.random_bytes is _speedups.random_bytes


SELECTED = (
    "from wsio.protocol import masking, utf8; "
    "print(masking.SPEEDUPS, utf8.SPEEDUPS, masking.apply_mask.__name__, "
    "utf8.IncrementalValidator.__name__)"
)
BLOCKED = "import sys; sys.modules['wsio._speedups'] = None; " + SELECTED  # import fails


@pytest.mark.parametrize(
    ("value", "code", "expected"),
    [
        ("", SELECTED, "True True apply_mask Utf8Validator"),
        ("1", SELECTED, "False False python_apply_mask PythonIncrementalValidator"),
        ("", BLOCKED, "False False python_apply_mask PythonIncrementalValidator"),
    ],
    ids=["unset", "set", "not-built"],
)
def test_selection_at_import(value: str, code: str, expected: str) -> None:
    env = {**os.environ, "WSIO_NO_SPEEDUPS": value}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == expected


def test_frames_selection_follows_the_environment() -> None:
    assert frames.SPEEDUPS is (not NO_SPEEDUPS)
    if NO_SPEEDUPS:
        assert frames.serialize_frame is python_serialize_frame
        assert frames.parse_messages is python_parse_messages
        assert frames.parse_close is python_parse_close
        assert frames.deliver_messages is python_deliver_messages
    else:
        assert frames.serialize_frame is _speedups.serialize_frame
        assert frames.parse_messages is _speedups.parse_messages
        assert frames.parse_close is _speedups.parse_close
        assert frames.deliver_messages is _speedups.deliver_messages


FRAMES_SELECTED = (
    "from wsio.protocol import frames; "
    "print(frames.SPEEDUPS, frames.serialize_frame.__name__, frames.parse_messages.__name__,"
    " frames.deliver_messages.__name__)"
)
FRAMES_BLOCKED = "import sys; sys.modules['wsio._speedups'] = None; " + FRAMES_SELECTED


@pytest.mark.parametrize(
    ("value", "code", "expected"),
    [
        ("", FRAMES_SELECTED, "True serialize_frame parse_messages deliver_messages"),
        (
            "1",
            FRAMES_SELECTED,
            "False python_serialize_frame python_parse_messages python_deliver_messages",
        ),
        (
            "",
            FRAMES_BLOCKED,
            "False python_serialize_frame python_parse_messages python_deliver_messages",
        ),
    ],
    ids=["unset", "set", "not-built"],
)
def test_frames_selection_at_import(value: str, code: str, expected: str) -> None:
    env = {**os.environ, "WSIO_NO_SPEEDUPS": value}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == expected


# Masking ------------------------------------------------------------------------------


@SETTINGS
@given(st.binary(max_size=200), MASKS, OFFSETS)
def test_mask_same_as_python(data: bytes, mask: bytes, offset: int) -> None:
    assert _speedups.apply_mask(data, mask, offset) == python_apply_mask(data, mask, offset)


@SETTINGS
@given(st.binary(max_size=200), MASKS, st.integers(0, 3))
def test_mask_same_as_python_for_bytes_like(data: bytes, mask: bytes, offset: int) -> None:
    expected = python_apply_mask(data, mask, offset)
    doubled = memoryview(bytes(b for pair in zip(data, data, strict=True) for b in pair))
    for view in (bytearray(data), memoryview(data), memoryview(bytearray(data)), doubled[::2]):
        result = _speedups.apply_mask(view, memoryview(mask), offset)
        assert type(result) is bytes
        assert result == expected


@pytest.mark.parametrize(
    "length",
    # Around the 8- and 32-byte strides, and around 64 KiB, where the GIL is released.
    [*range(70), 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 64 * 1024 + 7, 1024 * 1024 + 5],
)
@pytest.mark.parametrize("offset", range(4))
def test_mask_lengths(length: int, offset: int) -> None:
    rng = random.Random(length * 4 + offset)
    data, mask = rng.randbytes(length), rng.randbytes(4)
    assert _speedups.apply_mask(data, mask, offset) == python_apply_mask(data, mask, offset)


def test_mask_keywords() -> None:
    expected = python_apply_mask(b"Hello", b"\x37\xfa\x21\x3d", 1)
    assert _speedups.apply_mask(b"Hello", b"\x37\xfa\x21\x3d", offset=1) == expected
    assert _speedups.apply_mask(offset=1, mask=b"\x37\xfa\x21\x3d", data=b"Hello") == expected


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (("text", b"abcd"), {}, TypeError, "argument 'data' must be a bytes-like object"),
        ((b"x", "abcd"), {}, TypeError, "argument 'mask' must be a bytes-like object"),
        ((b"x", bytearray(b"abcd"), 1.0), {}, TypeError, "argument 'offset' must be int"),
        ((b"x", b"abc"), {}, ValueError, "mask must be 4 bytes long, not 3"),
        ((b"x", memoryview(b"abcde")), {}, ValueError, "mask must be 4 bytes long, not 5"),
        ((b"x",), {}, TypeError, "missing required argument 'mask'"),
        ((), {"mask": b"abcd"}, TypeError, "missing required argument 'data'"),
        ((b"x", b"abcd", 0, 0), {}, TypeError, "at most 3 arguments"),
        ((b"x", b"abcd"), {"data": b"y"}, TypeError, "multiple values for argument 'data'"),
        ((b"x", b"abcd"), {"key": 1}, TypeError, "unexpected keyword argument 'key'"),
    ],
)
def test_mask_bad_arguments(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        _speedups.apply_mask(*args, **kwargs)


def test_mask_keeps_the_source_exported_while_working() -> None:
    # Without the GIL (large input), a bytearray can't be resized under the C code: the
    # buffer export forbids it. After the call, the export is released.
    data = bytearray(1024 * 1024)
    assert _speedups.apply_mask(data, b"\x01\x02\x03\x04") == b"\x01\x02\x03\x04" * (1 << 18)
    data.extend(b"more")  # would raise BufferError if the export had leaked


@SETTINGS
@given(st.binary(max_size=14), st.binary(max_size=300), MASKS)
def test_join_masked_same_as_python(header: bytes, payload: bytes, mask: bytes) -> None:
    result = _speedups.join_masked(header, payload, mask)
    assert result == python_join_masked(header, payload, mask)
    assert bytes(result) == header + python_apply_mask(payload, mask)


def test_join_masked_reuses_its_buffer_once_no_view_is_left() -> None:
    """The result is a view of one buffer, reused by the next call once the view is gone;
    while it lives, the next result is new bytes and the view keeps its content."""
    payload, mask = os.urandom(300_000), os.urandom(4)
    first = _speedups.join_masked(b"head", payload, mask)
    assert isinstance(first, memoryview)
    buffer = first.obj
    second = _speedups.join_masked(b"", payload[::-1], mask)
    assert type(second) is bytes
    assert bytes(first) == b"head" + python_apply_mask(payload, mask)
    derived = first[10:]
    del first
    # A view derived from the result holds the buffer too, as a transport's slice would.
    assert type(_speedups.join_masked(b"", b"x", mask)) is bytes
    del derived
    third = _speedups.join_masked(b"", payload[:1000], mask)
    assert isinstance(third, memoryview) and third.obj is buffer
    assert bytes(third) == python_apply_mask(payload[:1000], mask)
    del third
    # A larger one grows the buffer; a smaller one after it reuses the grown buffer.
    larger = _speedups.join_masked(b"", payload * 2, mask)
    assert bytes(larger) == python_apply_mask(payload * 2, mask)
    del larger
    assert bytes(_speedups.join_masked(b"h", payload, mask)) == b"h" + python_apply_mask(
        payload, mask
    )


def test_join_masked_from_threads() -> None:
    """Threads building large frames at once (the GIL is released while masking) each
    get their own bytes: the buffer is claimed before the GIL is let go."""
    errors: list[str] = []

    def build(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(30):
            payload, mask = rng.randbytes(200_000 + rng.randrange(100)), rng.randbytes(4)
            result = _speedups.join_masked(b"", payload, mask)
            if bytes(result) != python_apply_mask(payload, mask):
                errors.append(f"thread {seed}: wrong bytes")

    threads = [threading.Thread(target=build, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((b"", b"x", b"abc"), ValueError, "mask must be 4 bytes long, not 3"),
        (("h", b"x", b"abcd"), TypeError, "argument 'header' must be a bytes-like object"),
        ((b"", None, b"abcd"), TypeError, "argument 'payload' must be a bytes-like object"),
        ((b"", b"x"), TypeError, "takes 3 arguments"),
    ],
)
def test_join_masked_bad_arguments(
    args: tuple[object, ...], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        _speedups.join_masked(*args)


# UTF-8 ---------------------------------------------------------------------------------

# Classic invalid sequences (Markus Kuhn's stress test, RFC 3629 §3 and §10).
INVALID = [
    b"\xc0\xaf",  # overlong "/"
    b"\xc1\xbf",
    b"\xe0\x80\x80",  # overlong 3-byte
    b"\xe0\x9f\xbf",
    b"\xf0\x80\x80\x80",  # overlong 4-byte
    b"\xf0\x8f\xbf\xbf",
    b"\xed\xa0\x80",  # U+D800
    b"\xed\xbf\xbf",  # U+DFFF
    b"\xed\xa0\x80\xed\xb0\x80",  # a surrogate pair, as CESU-8 would write it
    b"\xf4\x90\x80\x80",  # U+110000
    b"\xf7\xbf\xbf\xbf",
    b"\xf5\x80\x80\x80",
    b"\xf8\x88\x80\x80\x80",  # 5-byte form
    b"\xfc\x84\x80\x80\x80\x80",  # 6-byte form
    b"\xfe",
    b"\xff",
    b"\x80",  # lone continuation bytes
    b"\xbf",
    b"\x80\xbf\x80",
    b"\xc2\x41",  # missing continuation
    b"\xe2\x82\x41",
    b"\xf0\x9f\x98\x41",
    b"\xe2\x82\xc2\xa2",  # a lead byte where a continuation belongs
    b"\xf0\x9f\xc3\xa9",
    b"\xf0\x9f\x98\xff",
    b"\xc2",  # truncated at the end
    b"\xe2\x82",
    b"\xf0\x9f\x98",
    b"\xf4\x8f\xbf",
]
VALID = [
    b"",
    b"plain ASCII, long enough for the 8-byte fast path",
    "κόσμε, 世界, \U0001f600, \x7f\x80\u07ff\u0800\ud7ff\ue000\uffff\U00010000".encode(
        "utf-8", "surrogatepass"
    ),
    b"\xf4\x8f\xbf\xbf",  # U+10FFFF
]
# Bytes that make interesting neighbours: range edges of RFC 3629's table.
EDGES = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF]
EDGES += [0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFE, 0xFF]
NEAR_UTF8 = st.one_of(
    st.lists(
        st.one_of(
            st.text(max_size=6).map(str.encode),
            st.sampled_from(EDGES).map(lambda b: bytes([b])),
        ),
        max_size=12,
    ).map(b"".join),
    # Valid text with one byte replaced.
    st.tuples(st.text(min_size=1, max_size=12), st.integers(0), st.integers(0, 255)).map(
        lambda t: (lambda d, k: d[:k] + bytes([t[2]]) + d[k + 1 :])(
            t[0].encode(), t[1] % len(t[0].encode())
        )
    ),
)
CUTS = st.lists(st.integers(0, 80), max_size=8)

Validator = Callable[[], Any]  # either implementation


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    return [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]


def run(factory: Validator, chunks: list[bytes]) -> tuple[int, int, int, str] | None:
    """Feeds ``chunks`` then the end; returns None if all is valid, else the index of the
    call that raised (``len(chunks)`` for the final one) and the error's start, end (as
    positions in the whole stream) and reason."""
    validator = factory()
    fed = 0
    for index, chunk in enumerate([*chunks, b""]):
        try:
            validator.feed(chunk, final=index == len(chunks))
        except UnicodeDecodeError as exc:
            # The error's object is the bytes held from earlier pieces plus this one.
            base = fed + len(chunk) - len(exc.object)
            return index, base + exc.start, base + exc.end, exc.reason
        fed += len(chunk)
    return None


def assert_agree(chunks: list[bytes]) -> None:
    c, python = run(_speedups.Utf8Validator, chunks), run(PythonIncrementalValidator, chunks)
    assert (c is None) == (python is None), (c, python)
    if c is not None and python is not None:
        assert c[0] <= python[0], "the C validator failed later than the Python one"
        if c[0] == python[0]:
            assert c == python


def valid_in_c(data: bytes | memoryview) -> bool:
    """Whether the C validator accepts ``data`` fed whole, as the last piece."""
    try:
        _speedups.Utf8Validator().feed(data, final=True)
    except UnicodeDecodeError:
        return False
    return True


def can_continue(prefix: bytes) -> bool:
    """Whether some bytes appended to ``prefix`` make valid UTF-8. An open sequence needs at
    most 3 more bytes, and one of 80, 90, A0 is allowed at each position after any lead."""
    for size in range(4):
        for tail in itertools.product(b"\x80\x90\xa0", repeat=size):
            try:
                (prefix + bytes(tail)).decode()
            except UnicodeDecodeError:
                continue
            return True
    return False


def fails_at(chunks: Iterator[bytes]) -> int | None:
    """Index of the piece at which the C validator raises, counting the final call."""
    validator = _speedups.Utf8Validator()
    index = -1
    for index, chunk in enumerate(chunks):
        try:
            validator.feed(chunk)
        except UnicodeDecodeError:
            return index
    try:
        validator.feed(b"", final=True)
    except UnicodeDecodeError:
        return index + 1
    return None


@pytest.mark.parametrize("data", INVALID + VALID)
@pytest.mark.parametrize("prefix", [b"", b"ok \xce\xba ", b"0123456789abcdef"])
def test_utf8_classic_sequences_whole_and_byte_by_byte(prefix: bytes, data: bytes) -> None:
    stream = prefix + data + b"tail"
    assert_agree([stream])
    assert_agree([bytes([b]) for b in stream])
    assert valid_in_c(stream) is (data in VALID)
    # Byte by byte, the C validator fails at exactly the first byte that rules it out.
    first_bad = next((k for k in range(len(stream)) if not can_continue(stream[: k + 1])), None)
    assert fails_at(bytes([b]) for b in stream) == first_bad


@pytest.mark.parametrize("data", INVALID)
def test_utf8_classic_sequences_cut_at_the_end(data: bytes) -> None:
    assert_agree([data])
    assert_agree([b"ab", data])
    assert_agree([bytes([b]) for b in data])


@SETTINGS
@given(st.sampled_from(INVALID + VALID), st.binary(max_size=20), CUTS)
def test_utf8_classic_sequences_in_random_pieces(
    data: bytes, before: bytes, cuts: list[int]
) -> None:
    stream = before.decode("ascii", "ignore").encode() + data
    assert_agree(pieces(stream, cuts))


@SETTINGS
@given(st.binary(max_size=60), CUTS)
def test_utf8_random_bytes(data: bytes, cuts: list[int]) -> None:
    assert_agree(pieces(data, cuts))
    assert valid_in_c(data) is (run(PythonIncrementalValidator, [data]) is None)


@SETTINGS
@given(NEAR_UTF8, CUTS)
def test_utf8_near_valid_bytes(data: bytes, cuts: list[int]) -> None:
    assert_agree(pieces(data, cuts))
    assert_agree([data[k : k + 1] for k in range(len(data))])
    # Byte by byte, the C validator fails at exactly the first byte that rules the data out,
    # or else at the end if a sequence is left open.
    first_bad = next((k for k in range(len(data)) if not can_continue(data[: k + 1])), None)
    if first_bad is None and run(PythonIncrementalValidator, [data]) is not None:
        first_bad = len(data)
    assert fails_at(data[k : k + 1] for k in range(len(data))) == first_bad


@SETTINGS
@given(st.text(max_size=80), CUTS)
def test_utf8_valid_text_in_any_pieces(text: str, cuts: list[int]) -> None:
    data = text.encode()
    assert run(_speedups.Utf8Validator, pieces(data, cuts)) is None
    assert valid_in_c(data)


# Long enough for the C validator's 64-byte blocks (from the 4th byte of a piece on).
LONG_TEXT = st.text(min_size=70, max_size=400).map(str.encode)
CLASSIC_INVALID = st.sampled_from(INVALID)


@SETTINGS
@given(LONG_TEXT, st.integers(0), st.integers(0, 255), st.lists(st.integers(0, 1200)))
def test_utf8_long_text_with_a_byte_replaced(
    text: bytes, where: int, byte: int, cuts: list[int]
) -> None:
    where %= len(text)
    data = text[:where] + bytes([byte]) + text[where + 1 :]
    assert_agree([data])
    assert_agree(pieces(data, cuts))
    assert valid_in_c(data) is (run(PythonIncrementalValidator, [data]) is None)


@SETTINGS
@given(LONG_TEXT, st.integers(0), CLASSIC_INVALID, st.lists(st.integers(0, 1200)))
def test_utf8_long_text_with_an_invalid_sequence(
    text: bytes, where: int, invalid: bytes, cuts: list[int]
) -> None:
    # Inserted between characters, or cutting one.
    where %= len(text) + 1
    data = text[:where] + invalid + text[where:]
    assert_agree([data])
    assert_agree(pieces(data, cuts))
    assert not valid_in_c(data)


@pytest.mark.parametrize("data", INVALID + VALID)
def test_utf8_sequences_at_every_offset_of_long_pieces(data: bytes) -> None:
    # The C validator checks 64-byte blocks once past a first non-ASCII character: put the
    # sequence at every position relative to the blocks, among ASCII (blocks skipped
    # whole) and among 2-byte characters.
    for filler in (b"x", b"\xce\xba"):
        for offset in range(140):
            before = (filler * 140)[:offset]
            if filler != b"x" and offset % 2:
                before = before[:-1] + b"x"
            stream = b"\xc3\xa9\xc3\xa9" + before + data + filler * 70
            assert_agree([stream])
            assert valid_in_c(stream) is (data in VALID)


@pytest.mark.parametrize("where", ["none", "start", "middle", "end", "cut"])
def test_utf8_large(where: str) -> None:
    # Over 64 KiB, the scan runs without the GIL.
    data = bytearray(("wsio κόσμε 世界 \U0001f600 " * 40000).encode())
    if where == "start":
        data[0] = 0xFF
    elif where == "middle":
        data[len(data) // 2 : len(data) // 2 + 3] = b"\xed\xa0\x80"
    elif where == "end":
        data[-1] = 0x80
    elif where == "cut":
        data += b"\xf0\x9f"
    whole = bytes(data)
    assert_agree([whole])
    assert_agree(pieces(whole, [70000, 70001, 300001, 600002]))
    assert valid_in_c(memoryview(data)) is (where == "none")


def test_utf8_validator_api() -> None:
    validator = _speedups.Utf8Validator()
    validator.feed(data=b"\xe2\x82")
    validator.feed(memoryview(b"\xac"), final=True)
    validator.feed(bytearray(b"reusable after the end \xe2\x82\xac"), True)
    with pytest.raises(TypeError, match="takes no arguments"):
        _speedups.Utf8Validator(1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="bytes-like"):
        validator.feed("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="missing required argument 'data'"):
        validator.feed()  # type: ignore[call-arg]


def test_utf8_state_is_unchanged_by_an_error() -> None:
    # As with CPython's incremental decoder: the open sequence is still open.
    validator = _speedups.Utf8Validator()
    validator.feed(b"\xe2\x82")
    with pytest.raises(UnicodeDecodeError):
        validator.feed(b"\x41")
    with pytest.raises(UnicodeDecodeError, match="unexpected end of data"):
        validator.feed(b"", final=True)
    validator.feed(b"\xac", final=True)


# Frames: serialize_frame ----------------------------------------------------------------

# Around the 7-, 16- and 64-bit length encodings (RFC 6455 §5.2).
BOUNDARY_LENGTHS = [0, 1, 2, 124, 125, 126, 127, 128, 65534, 65535, 65536, 65537]


def random_payload(length: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(length)


PAYLOADS = st.one_of(
    st.binary(max_size=300),
    st.builds(random_payload, st.sampled_from(BOUNDARY_LENGTHS), st.integers(0, 2**32)),
)
# Valid values mostly, and some around what fits in the first byte.
OPCODE_VALUES = st.one_of(st.integers(0, 15), st.integers(-2, 0x101))
RSV_VALUES = st.one_of(st.sampled_from([0, 0x10, 0x20, 0x40, 0x70]), st.integers(-2, 0x101))
#: Contiguous bytes-like types that both implementations take.
CONTIGUOUS = st.sampled_from([bytes, bytearray, memoryview])


def outcome(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """What a call returned, or the type of the exception it raised."""
    try:
        return "returned", function(*args, **kwargs)
    except Exception as exc:
        return "raised", type(exc)


@SETTINGS
@given(OPCODE_VALUES, PAYLOADS, st.booleans(), RSV_VALUES, st.one_of(st.none(), MASKS), CONTIGUOUS)
def test_serialize_frame_same_as_python(
    opcode: int,
    payload: bytes,
    fin: bool,
    rsv: int,
    mask: bytes | None,
    convert: Callable[[bytes], Any],
) -> None:
    c = outcome(_speedups.serialize_frame, opcode, convert(payload), fin, rsv, mask)
    python = outcome(python_serialize_frame, opcode, convert(payload), fin=fin, rsv=rsv, mask=mask)
    assert c == python
    assert c[0] == "raised" or type(c[1]) is bytes


@SETTINGS
@given(PAYLOADS, MASKS)
def test_serialize_frame_bytes_like_mask(payload: bytes, mask: bytes) -> None:
    expected = python_serialize_frame(Opcode.BINARY, payload, mask=mask)
    strided = memoryview(bytes(b for byte in mask for b in (byte, 0)))[::2]
    for key in (bytearray(mask), memoryview(mask), strided):
        assert _speedups.serialize_frame(Opcode.BINARY, payload, mask=key) == expected


def test_serialize_frame_strided_payload() -> None:
    payload = memoryview(bytes(range(200)))[::2]
    expected = python_serialize_frame(Opcode.BINARY, bytes(payload))
    assert _speedups.serialize_frame(Opcode.BINARY, payload) == expected


def test_serialize_frame_keywords() -> None:
    expected = python_serialize_frame(Opcode.TEXT, b"Hello", False, 0x40, MASK)
    serialize = _speedups.serialize_frame
    assert serialize(Opcode.TEXT, b"Hello", False, 0x40, MASK) == expected
    assert serialize(Opcode.TEXT, b"Hello", mask=MASK, rsv=0x40, fin=False) == expected
    assert serialize(mask=MASK, payload=b"Hello", opcode=1, rsv=0x40, fin=0) == expected
    assert serialize(Opcode.TEXT, b"Hello", mask=None) == python_serialize_frame(1, b"Hello")


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((1, "text"), {}, TypeError, "argument 'payload' must be a bytes-like object"),
        ((1, None), {}, TypeError, "argument 'payload' must be a bytes-like object"),
        ((1, b"x"), {"mask": "abcd"}, TypeError, "argument 'mask' must be a bytes-like object"),
        ((1.0, b"x"), {}, TypeError, "integer"),
        ((1, b"x"), {"rsv": 0.0}, TypeError, "integer"),
        ((1, b"x"), {"mask": b"abc"}, ValueError, "mask must be 4 bytes long, not 3"),
        ((1, b""), {"mask": bytearray(5)}, ValueError, "mask must be 4 bytes long, not 5"),
        ((1, b"x"), {"mask": b""}, ValueError, "mask must be 4 bytes long, not 0"),
        ((1,), {}, TypeError, "missing required argument 'payload'"),
        ((), {"payload": b"x"}, TypeError, "missing required argument 'opcode'"),
        ((1, b"x", True, 0, None, 0), {}, TypeError, "at most 5 arguments"),
        ((1, b"x"), {"opcode": 2}, TypeError, "multiple values for argument 'opcode'"),
        ((1, b"x"), {"masked": True}, TypeError, "unexpected keyword argument 'masked'"),
        ((-1, b"x"), {}, ValueError, "opcode and rsv must fit in a byte"),
        ((1, b"x"), {"rsv": 0x100}, ValueError, "opcode and rsv must fit in a byte"),
    ],
)
def test_serialize_frame_bad_arguments(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        _speedups.serialize_frame(*args, **kwargs)


@pytest.mark.parametrize(
    ("opcode", "rsv"), [(2**63, 0), (-(2**63) - 1, 0), (1, 2**64), (1, -(2**70))]
)
def test_serialize_frame_huge_opcode_or_rsv_is_value_error(opcode: int, rsv: int) -> None:
    with pytest.raises(ValueError):
        python_serialize_frame(opcode, b"", rsv=rsv)
    with pytest.raises(ValueError):
        _speedups.serialize_frame(opcode, b"", rsv=rsv)


# Frames: parse_messages -----------------------------------------------------------------

Events = list[tuple[str, type, object]]


def text_event(text: str) -> tuple[str, type, object]:
    return "text", type(text), text


def binary_event(data: bytes) -> tuple[str, type, object]:
    return "binary", type(data), data


def parse_with(
    function: Callable[..., int], data: Any, mask_expected: bool, max_size: int
) -> tuple[int, Events]:
    events: Events = []
    offset = function(data, events, mask_expected, max_size, text_event, binary_event)
    return offset, events


#: Every bytes-like form of the input that both implementations take.
BYTES_LIKE: list[Callable[[bytes], Any]] = [
    bytes,
    bytearray,
    memoryview,
    lambda d: memoryview(b"--" + d)[2:],  # not at the start of its buffer
    lambda d: memoryview(bytes(b for byte in d for b in (byte, 0)))[::2],  # strided
]

# Text payloads of an exact size in bytes, for lengths that span the encodings and the C
# code's stack buffer for unmasking text (512 bytes).
TEXT_LENGTHS = [*BOUNDARY_LENGTHS, 511, 512, 513]
CHARS = ["x", "é", "€", "\U0001f600"]


def text_of_length(length: int, char: str) -> bytes:
    encoded = char.encode()
    return encoded * (length // len(encoded)) + b"x" * (length % len(encoded))


TEXT_PAYLOADS = st.one_of(
    st.text(max_size=20).map(str.encode),
    st.builds(text_of_length, st.sampled_from(TEXT_LENGTHS), st.sampled_from(CHARS)),
)
INVALID_TEXT = st.builds(
    lambda before, invalid, after: before.encode() + invalid + after.encode(),
    st.text(max_size=8),
    st.sampled_from(INVALID),
    st.text(max_size=8),
)
BINARY_PAYLOADS = st.one_of(
    st.binary(max_size=20),
    st.builds(random_payload, st.sampled_from(TEXT_LENGTHS), st.integers(0, 2**32)),
)
FRAME_KINDS = [
    "text",
    "binary",
    "invalid text",
    "control",
    "continuation",
    "reserved opcode",
    "fragment",
    "rsv",
    "wrong mask bit",
    "huge length",
]


@st.composite
def frame_in_stream(draw: st.DrawFn, mask_expected: bool) -> tuple[bytes, bool, int]:
    """A frame; whether the fast path takes it, max_size aside; its declared length."""
    # Half of the frames are taken, at least until max_size or a cut intervenes.
    kind = draw(st.one_of(st.sampled_from(["text", "binary"]), st.sampled_from(FRAME_KINDS)))
    mask = draw(MASKS) if mask_expected else None
    opcode, fin, rsv, length = draw(st.sampled_from([TEXT, BINARY])), True, 0, None
    if kind == "text":
        opcode, payload = TEXT, draw(TEXT_PAYLOADS)
    elif kind == "invalid text":
        opcode, payload = TEXT, draw(INVALID_TEXT)
    else:
        payload = draw(TEXT_PAYLOADS if opcode == TEXT else BINARY_PAYLOADS)
    if kind == "binary":
        opcode = BINARY
    elif kind == "control":
        opcode, payload = draw(st.sampled_from([CLOSE, PING, PONG])), payload[:125]
    elif kind == "continuation":
        opcode, fin = CONT, draw(st.booleans())
    elif kind == "reserved opcode":
        opcode = draw(st.sampled_from([0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF]))
    elif kind == "fragment":
        fin = False
    elif kind == "rsv":
        rsv = draw(st.sampled_from([0x10, 0x20, 0x40, 0x70]))
    elif kind == "wrong mask bit":
        mask = None if mask_expected else draw(MASKS)
    elif kind == "huge length":
        # The top bit set (§5.2), or more than any buffer holds.
        payload, length = b"", draw(st.sampled_from([2**63, 2**64 - 1, 2**62, 2**32]))
    declared = len(payload) if length is None else length
    # Non-minimal length encodings are taken, as by the general parser.
    encodings = [None, 64] + ([16] if declared < 65536 else [])
    encoding = draw(st.sampled_from(encodings)) if length is None else 64
    data = frame(opcode, payload, fin=fin, rsv=rsv, mask=mask, length=length, encoding=encoding)
    taken = kind in ("text", "binary") and not (kind == "text" and not is_utf8(payload))
    return data, taken, declared


def is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


@st.composite
def frame_streams(draw: st.DrawFn) -> tuple[bytes, bool, int, int]:
    """Frames, possibly cut, mask_expected, max_size, and the offset where the fast path
    must stop: the end of the last of the leading frames that it takes."""
    mask_expected = draw(st.booleans())
    frames_ = draw(st.lists(frame_in_stream(mask_expected), max_size=6))
    sizes = {declared for _, _, declared in frames_ if declared < 2**32}
    # No limit, or one at a message's size, or one byte off.
    edges = sorted({0, *(max(n + d, -1) for n in sizes for d in (-1, 0, 1))})
    max_size = draw(st.one_of(st.just(-1), st.sampled_from(edges)))
    stream = b"".join(data for data, _, _ in frames_)
    stream = stream[: draw(st.one_of(st.none(), st.integers(0, len(stream))))]
    stop = 0
    for data, taken, declared in frames_:
        fits = max_size < 0 or declared <= max_size
        if not (taken and fits and stop + len(data) <= len(stream)):
            break
        stop += len(data)
    return stream, mask_expected, max_size, stop


@SETTINGS
@given(frame_streams())
def test_parse_messages_same_as_python(case: tuple[bytes, bool, int, int]) -> None:
    stream, mask_expected, max_size, stop = case
    for convert in BYTES_LIKE:
        c = parse_with(_speedups.parse_messages, convert(stream), mask_expected, max_size)
        python = parse_with(python_parse_messages, convert(stream), mask_expected, max_size)
        assert c == python
    assert c[0] == stop


@SETTINGS
@given(
    st.binary(max_size=40).map(lambda data: b"\x81" + data) | st.binary(max_size=40),
    st.booleans(),
    st.integers(-1, 40),
)
def test_parse_messages_random_bytes_same_as_python(
    data: bytes, mask_expected: bool, max_size: int
) -> None:
    c = parse_with(_speedups.parse_messages, data, mask_expected, max_size)
    assert c == parse_with(python_parse_messages, data, mask_expected, max_size)
    # deliver_messages hands over the same messages.
    assert c == deliver_with(_speedups.deliver_messages, data, mask_expected, max_size)
    assert c == deliver_with(python_deliver_messages, data, mask_expected, max_size)


def test_parse_messages_appends_what_the_callbacks_return() -> None:
    data = frame(TEXT, b"Hello") + frame(BINARY, b"abc")
    events: list[object] = ["already there"]
    assert _speedups.parse_messages(data, events, False, -1, len, list) == len(data)
    assert events == ["already there", 5, [97, 98, 99]]


def test_parse_messages_builds_the_core_events_as_their_class_does() -> None:
    # The C version sets the `data` slot of TextMessage and BinaryMessage instead of
    # calling them: the events are the same objects of the same classes.
    data = frame(TEXT, "é".encode()) + frame(BINARY, b"\x00") + frame(TEXT, b"")
    built: list[object] = []
    assert _speedups.parse_messages(data, built, False, -1, TextMessage, BinaryMessage) == len(
        data
    )
    called: list[object] = []
    python_parse_messages(data, called, False, -1, TextMessage, BinaryMessage)
    assert built == called == [TextMessage("é"), BinaryMessage(b"\x00"), TextMessage("")]
    assert [type(event) for event in built] == [TextMessage, BinaryMessage, TextMessage]
    assert hash(built[0]) == hash(TextMessage("é"))


@dataclasses.dataclass(frozen=True, slots=True)
class Checked:
    """A one-field dataclass with a __post_init__: it must be called, not slot-built."""

    data: str | bytes

    def __post_init__(self) -> None:
        if self.data == "reject":
            raise ValueError("rejected")


def test_parse_messages_calls_a_class_with_more_than_a_data_slot() -> None:
    events: list[object] = []
    with pytest.raises(ValueError, match="rejected"):
        _speedups.parse_messages(frame(TEXT, b"reject"), events, False, -1, Checked, Checked)
    assert _speedups.parse_messages(frame(BINARY, b"ok"), events, False, -1, Checked, Checked)
    assert events == [Checked(b"ok")]


class Boom(Exception):
    pass


def explode(value: object) -> object:
    if value in ("boom", b"boom"):
        raise Boom
    return value


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
@pytest.mark.parametrize("function", [_speedups.parse_messages, python_parse_messages])
def test_parse_messages_callback_exception_propagates(
    function: Callable[..., int], opcode: int
) -> None:
    data = frame(opcode, b"ok") + frame(opcode, b"boom") + frame(opcode, b"never")
    events: list[object] = []
    with pytest.raises(Boom):
        function(data, events, False, -1, explode, explode)
    assert events == ["ok" if opcode == TEXT else b"ok"]


def test_parse_messages_releases_the_buffer() -> None:
    # A bytearray can't be resized while exported: after the call, on success or on error,
    # the export is released.
    data = bytearray(frame(BINARY, b"ok") + frame(BINARY, b"boom"))
    assert _speedups.parse_messages(data, [], False, 2, explode, explode) == 4
    data.extend(b"more")
    with pytest.raises(Boom):
        _speedups.parse_messages(data, [], False, -1, explode, explode)
    data.extend(b"more")


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((b"", [], False, -1, str), {}, r"takes 6 arguments \(5 given\)"),
        ((b"", [], False, -1, str, bytes, None), {}, r"takes 6 arguments \(7 given\)"),
        ((), {}, r"takes 6 arguments \(0 given\)"),
        ((b"", [], False, -1, str), {"binary_message": bytes}, "keyword arguments"),
        ((b"", (), False, -1, str, bytes), {}, "argument 'events' must be a list"),
        ((b"", None, False, -1, str, bytes), {}, "argument 'events' must be a list"),
        (("text", [], False, -1, str, bytes), {}, "argument 'data' must be a bytes-like"),
        ((None, [], False, -1, str, bytes), {}, "argument 'data' must be a bytes-like"),
        ((b"", [], False, 1.0, str, bytes), {}, "integer"),
    ],
)
def test_parse_messages_bad_arguments(
    args: tuple[object, ...], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        _speedups.parse_messages(*args, **kwargs)


@pytest.mark.parametrize("max_size", [2**63, 2**64, -(2**63) - 1])
def test_parse_messages_max_size_beyond_64_bits(max_size: int) -> None:
    data = frame(BINARY, b"abc")
    expected = parse_with(python_parse_messages, data, False, max_size)
    assert expected == (len(data), [binary_event(b"abc")])
    assert parse_with(_speedups.parse_messages, data, False, max_size) == expected
    assert deliver_with(_speedups.deliver_messages, data, False, max_size) == expected
    assert deliver_with(python_deliver_messages, data, False, max_size) == expected


# Frames: parse_close --------------------------------------------------------------------


def expected_close(data: bytes, mask_expected: bool) -> tuple[int, str, bytes] | None:
    """What the close fast path must give, from the core's own reading of a close
    payload (Close.parse) and the frame rules, spelled out independently."""
    if len(data) < 2 or data[0] != 0x88 or bool(data[1] & 0x80) is not mask_expected:
        return None
    length = data[1] & 0x7F
    start = 6 if mask_expected else 2
    if length > 125 or len(data) < start + length:
        return None
    payload = data[start : start + length]
    if mask_expected:
        payload = xor(payload, data[2:6])
    try:
        close = Close.parse(payload)
    except ProtocolError:
        return None
    return close.code, close.reason, payload


@pytest.mark.parametrize("mask_expected", [True, False])
@pytest.mark.parametrize("payload", CLOSE_PAYLOADS)
def test_parse_close_same_as_python(payload: bytes, mask_expected: bool) -> None:
    mask = MASK if mask_expected else None
    for data in (
        frame(CLOSE, payload, mask=mask),
        frame(CLOSE, payload, mask=mask) + b"\x81\x00",  # what follows is ignored
        frame(CLOSE, payload, mask=None if mask_expected else MASK),  # wrong mask bit
        frame(CLOSE, payload, mask=mask, fin=False),
        frame(CLOSE, payload, mask=mask, rsv=0x40),
        frame(CLOSE, payload, mask=mask, encoding=16),
        frame(PING, payload, mask=mask),
        frame(CLOSE, payload, mask=mask)[:-1],
    ):
        expected = expected_close(data, mask_expected)
        for convert in BYTES_LIKE:
            assert _speedups.parse_close(convert(data), mask_expected) == expected
            assert python_parse_close(convert(data), mask_expected) == expected


def test_parse_close_gives_1005_for_an_empty_payload() -> None:
    for function in (_speedups.parse_close, python_parse_close):
        code, reason, payload = function(b"\x88\x00", False)
        assert (type(code), code, reason, payload) == (int, 1005, "", b"")


@SETTINGS
@given(st.booleans().flatmap(lambda m: st.tuples(close_frames(m), st.just(m))))
def test_parse_close_random_frames_same_as_python(case: tuple[bytes, bool]) -> None:
    data, mask_expected = case
    expected = expected_close(data, mask_expected)
    assert _speedups.parse_close(data, mask_expected) == expected
    assert python_parse_close(data, mask_expected) == expected


@SETTINGS
@given(st.binary(max_size=40).map(lambda data: b"\x88" + data), st.booleans())
def test_parse_close_random_bytes_same_as_python(data: bytes, mask_expected: bool) -> None:
    assert _speedups.parse_close(data, mask_expected) == python_parse_close(data, mask_expected)


def test_parse_close_arguments() -> None:
    with pytest.raises(TypeError):
        _speedups.parse_close(b"\x88\x00")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _speedups.parse_close("\x88\x00", False)  # type: ignore[arg-type]


# Frames: deliver_messages ---------------------------------------------------------------

DELIVERERS = pytest.mark.parametrize(
    "function", [_speedups.deliver_messages, python_deliver_messages], ids=["c", "python"]
)


def deliver_with(
    function: Callable[..., int],
    data: Any,
    mask_expected: bool,
    max_size: int,
    stop_after: int | None = None,
) -> tuple[int, Events]:
    """What ``function`` consumed and delivered, with a deliver callback that declines
    the rest after ``stop_after`` messages."""
    delivered: Events = []

    def deliver(message: str | bytes) -> bool:
        delivered.append(
            text_event(message) if isinstance(message, str) else binary_event(message)
        )
        return stop_after is None or len(delivered) < stop_after

    offset = function(data, len(data), deliver, mask_expected, max_size)
    return offset, delivered


@SETTINGS
@given(frame_streams(), st.one_of(st.none(), st.integers(1, 6)))
def test_deliver_messages_same_as_parse_messages(
    case: tuple[bytes, bool, int, int], stop_after: int | None
) -> None:
    stream, mask_expected, max_size, stop = case
    parsed = parse_with(python_parse_messages, stream, mask_expected, max_size)
    for convert in BYTES_LIKE:
        c = deliver_with(
            _speedups.deliver_messages, convert(stream), mask_expected, max_size, stop_after
        )
        python = deliver_with(
            python_deliver_messages, convert(stream), mask_expected, max_size, stop_after
        )
        assert c == python
    if stop_after is None or stop_after >= len(parsed[1]):
        # Every message the fast path takes, and where it stops.
        assert c == parsed
        assert c[0] == stop
    else:
        # Up to the end of the message after which delivery stopped.
        assert c[1] == parsed[1][:stop_after]
        assert c[0] == parse_with(python_parse_messages, stream[: c[0]], mask_expected, -1)[0]
        assert c[0] < stop


@DELIVERERS
@pytest.mark.parametrize("result", [False, None, 0, b"", []])
def test_deliver_messages_stops_at_a_false_result(
    function: Callable[..., int], result: object
) -> None:
    first = frame(BINARY, b"one")
    data = first + frame(BINARY, b"two")
    delivered: list[object] = []

    def deliver(message: object) -> object:
        delivered.append(message)
        return result

    assert function(data, len(data), deliver, False, -1) == len(first)
    assert delivered == [b"one"]


@DELIVERERS
@pytest.mark.parametrize("result", [True, 1, "yes", [0]])
def test_deliver_messages_goes_on_at_a_true_result(
    function: Callable[..., int], result: object
) -> None:
    data = frame(TEXT, b"one") + frame(BINARY, b"two")
    delivered: list[object] = []

    def deliver(message: object) -> object:
        delivered.append(message)
        return result

    assert function(data, len(data), deliver, False, -1) == len(data)
    assert delivered == ["one", b"two"]


class Untruthful:
    def __bool__(self) -> bool:
        raise Boom


@DELIVERERS
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_deliver_messages_callback_exception_propagates(
    function: Callable[..., int], opcode: int
) -> None:
    data = frame(opcode, b"ok") + frame(opcode, b"boom") + frame(opcode, b"never")
    delivered: list[object] = []

    def deliver(message: object) -> bool:
        delivered.append(explode(message))
        return True

    with pytest.raises(Boom):
        function(data, len(data), deliver, False, -1)
    assert delivered == (["ok"] if opcode == TEXT else [b"ok"])
    with pytest.raises(Boom):
        function(data, len(data), lambda message: Untruthful(), False, -1)


def test_deliver_messages_releases_the_buffer() -> None:
    data = bytearray(frame(BINARY, b"ok") + frame(BINARY, b"boom"))
    assert _speedups.deliver_messages(data, len(data), explode, False, 2) == 4
    data.extend(b"more")
    with pytest.raises(Boom):
        _speedups.deliver_messages(data, len(data), explode, False, -1)
    data.extend(b"more")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((b"", 0, print, False), r"takes 5 arguments \(4 given\)"),
        ((b"", 0, print, False, -1, None), r"takes 5 arguments \(6 given\)"),
        (("text", 0, print, False, -1), "argument 'data' must be a bytes-like"),
        ((None, 0, print, False, -1), "argument 'data' must be a bytes-like"),
        ((b"", 0, print, False, 1.0), "integer"),
        ((b"", None, print, False, -1), "integer"),
    ],
)
def test_deliver_messages_bad_arguments(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        _speedups.deliver_messages(*args)


def test_deliver_messages_calls_nothing_callable_when_nothing_parses() -> None:
    # deliver is called only for a message: a non-callable is an error only then.
    assert _speedups.deliver_messages(b"\x88\x00", 2, None, False, -1) == 0
    with pytest.raises(TypeError):
        _speedups.deliver_messages(frame(BINARY, b""), 2, None, False, -1)


@DELIVERERS
@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 6, 7, 100])
def test_deliver_messages_reads_size_bytes_only(function: Callable[..., int], size: int) -> None:
    # Frames of 4, 2 and 3 bytes: a size may cut any of them.
    data = frame(BINARY, b"ab") + frame(BINARY, b"") + frame(TEXT, b"c")
    delivered: list[str | bytes] = []

    def deliver(message: str | bytes) -> bool:
        delivered.append(message)
        return True

    consumed = function(data, size, deliver, False, -1)
    events = [text_event(m) if isinstance(m, str) else binary_event(m) for m in delivered]
    assert (consumed, events) == parse_with(python_parse_messages, data[:size], False, -1)


@DELIVERERS
def test_deliver_messages_refuses_a_negative_size(function: Callable[..., int]) -> None:
    with pytest.raises(ValueError, match="negative"):
        function(b"", -1, print, False, -1)


# Protocol.send_message and Protocol.receive_messages -------------------------------------

#: How the connection stands when the message is sent: each leads send_message to another
#: path (the C twin builds the frame in the first case only).
SENDING_STATES = ("open", "queued", "fragment", "closing", "deflate")
#: Around the length encodings and the payload that a server queues apart (128 KiB).
# Around the sizes where a payload goes apart from its header: a server's, a client's.
SEND_SIZES = st.sampled_from(
    [0, 1, 125, 126, 65535, 65536, 131071, 131072, MASKED_PIECE, MASKED_PIECE + 1]
)


def sending_protocol(side: Side, state: str) -> Protocol:
    protocol = make(side)
    if state == "queued":
        protocol.send_ping(b"first")
    elif state == "fragment":
        protocol.send_text(b"Hel", fin=False)
    elif state == "closing":
        protocol.send_close(1000)
    elif state == "deflate":
        protocol._use_extensions(
            [
                PerMessageDeflate(
                    remote_no_context_takeover=False,
                    local_no_context_takeover=False,
                    remote_max_window_bits=15,
                    local_max_window_bits=15,
                    compression_threshold=8,
                )
            ]
        )
    return protocol


def send_outcome(send: Callable[[], object]) -> object:
    try:
        return send()
    except Exception as exc:
        return type(exc), str(exc)


def both_send_message(
    side: Side, state: str, data: Any, text: Any, compress: bool | None, keywords: bool
) -> None:
    twin, reference = sending_protocol(side, state), sending_protocol(side, state)
    if keywords:
        outcome = send_outcome(lambda: twin.send_message(data, text=text, compress=compress))
    else:
        outcome = send_outcome(lambda: twin.send_message(data, text, compress))
    assert outcome == send_outcome(
        lambda: Protocol._python_send_message(reference, data, text, compress)
    )
    assert twin.data_to_send() == reference.data_to_send()


def test_method_twins_selected() -> None:
    assert (Protocol.send_message is Protocol._python_send_message) is NO_SPEEDUPS
    assert (Protocol.receive_messages is Protocol._python_receive_messages) is NO_SPEEDUPS


@SETTINGS
@given(
    st.sampled_from(Side),
    st.sampled_from(SENDING_STATES),
    st.one_of(st.binary(max_size=200), SEND_SIZES.map(bytes)),
    st.sampled_from([True, False, 1, 0, None]),
    st.sampled_from([None, True, False]),
    st.booleans(),
)
def test_send_message_twin_same_as_python(
    side: Side, state: str, data: bytes, text: Any, compress: bool | None, keywords: bool
) -> None:
    """Every path of send_message: the frame handed back, or what is queued, or what is
    raised, is the same from the C twin as from the Python method."""
    both_send_message(side, state, data, text, compress, keywords)


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_send_message_twin_bytes_like(kind: Callable[[bytes], Any]) -> None:
    both_send_message(Side.SERVER, "open", kind(b"payload"), False, None, False)


def _raise_os_error(size: int) -> bytes:
    raise OSError("no entropy")


@pytest.mark.parametrize(
    "random_bytes",
    [
        lambda size: bytearray(b"wxyz"),
        lambda size: memoryview(b"wxyz"),
        lambda size: b"wxy",
        lambda size: b"wxyz!",
        lambda size: "wxyz",
        lambda size: None,
        _raise_os_error,
    ],
    ids=["bytearray", "memoryview", "short", "long", "str", "none", "raises"],
)
def test_send_message_twin_client_masking_keys(random_bytes: Callable[[int], Any]) -> None:
    """A client's frame is masked with what ``random_bytes(4)`` returns: any 4-byte
    buffer is used, anything else refused, the same way by the C twin as by the Python
    method; nothing is queued either way."""
    twin, reference = (Protocol(Side.CLIENT, random_bytes=random_bytes) for _ in range(2))
    outcome = send_outcome(lambda: twin.send_message(b"payload", False))
    assert outcome == send_outcome(
        lambda: Protocol._python_send_message(reference, b"payload", False)
    )
    assert twin.data_to_send() == reference.data_to_send() == []


def test_send_message_twin_in_a_subclass() -> None:
    """A subclass with slots of its own lays them out elsewhere: the twin reads them
    there, then in the base class again."""

    class Subclass(Protocol):
        __slots__ = ("extra",)

    for protocol in (make(Side.SERVER), Subclass(Side.SERVER), make(Side.SERVER)):
        assert protocol.send_message(b"x", False) == frame(BINARY, b"x")
        protocol.send_text(b"a", fin=False)
        with pytest.raises(InvalidState):
            protocol.send_message(b"x", False)


def test_send_message_twin_arguments() -> None:
    protocol = make(Side.SERVER)
    with pytest.raises(TypeError):
        protocol.send_message(b"x")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        protocol.send_message(b"x", False, None, None)  # type: ignore[call-arg]
    if not NO_SPEEDUPS:
        with pytest.raises(TypeError):
            _speedups.send_message_twin(None, None, None, 0, 0)  # type: ignore[arg-type]


def receive_outcome(
    receive: Callable[..., bool],
    mask_expected: bool,
    max_size: int,
    before: str,
    data: Any,
    size: int,
    stop_after: int | None,
) -> tuple[object, list[str | bytes], list[Any], list[bytes]]:
    """What ``receive`` delivers, returns or raises on a new connection, and the events
    and the writes it leaves."""
    protocol = make(Side.SERVER if mask_expected else Side.CLIENT)
    # Set past the option's check, which refuses 0: a limit of the fast path too.
    protocol.max_size = None if max_size < 0 else max_size
    if before == "buffered":
        protocol.receive_data(b"\x82")
    elif before == "fragment":
        protocol.receive_data(frame(TEXT, b"a", fin=False, mask=MASK if mask_expected else None))
    delivered: list[str | bytes] = []

    def deliver(message: str | bytes) -> bool:
        delivered.append(message)
        return stop_after is None or len(delivered) < stop_after

    outcome = send_outcome(lambda: receive(protocol, data, size, deliver))
    return outcome, delivered, protocol.events_received(), protocol.data_to_send()


@SETTINGS
@given(
    frame_streams(),
    st.one_of(st.none(), st.integers(1, 6)),
    st.sampled_from(["between", "buffered", "fragment"]),
    st.sampled_from([bytearray, memoryview]),
)
def test_receive_messages_twin_same_as_python(
    case: tuple[bytes, bool, int, int],
    stop_after: int | None,
    before: str,
    kind: Callable[[bytes], Any],
) -> None:
    """What receive_messages delivers, returns or raises, and the events and the writes it
    leaves, are the same from the C twin as from the Python method: between messages, with
    part of a frame buffered, or in the middle of a fragmented message."""
    stream, mask_expected, max_size, _ = case
    data = kind(stream + b"\x81\x7f stale")
    outcomes = [
        receive_outcome(receive, mask_expected, max_size, before, data, len(stream), stop_after)
        for receive in (Protocol.receive_messages, Protocol._python_receive_messages)
    ]
    assert outcomes[0] == outcomes[1]


def test_receive_messages_twin_arguments() -> None:
    protocol = make(Side.SERVER)
    with pytest.raises(ValueError):
        protocol.receive_messages(bytearray(2), -1, print)
    with pytest.raises(TypeError):
        protocol.receive_messages(bytearray(2), 2)  # type: ignore[call-arg]
    assert protocol.receive_messages(
        bytearray(frame(BINARY, b"", mask=MASK)), size=6, deliver=bool
    )
    if not NO_SPEEDUPS:
        with pytest.raises(TypeError):
            _speedups.receive_messages_twin(None, None)  # type: ignore[arg-type]


# Payload buffer -------------------------------------------------------------------------

PAYLOAD_BUFFERS = pytest.mark.parametrize(
    "factory", [_speedups.PayloadBuffer, masking.PythonPayloadBuffer], ids=["c", "python"]
)
# Around the C buffer's first allocation (64 KiB) and its growth steps.
BUFFER_LENGTHS = st.one_of(
    st.sampled_from([0, 1, 2, 3, 4, 5, 65535, 65536, 65537, 131072, 131073, 262144, 262145]),
    st.integers(0, 300 * 1024),
)
# Pieces offered to write(): a size, often more than what remains, and a contiguous form.
BUFFER_PIECES = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 9), st.integers(0, 70_000), st.integers(0, 400 * 1024)),
        st.sampled_from(BYTES_LIKE[:4]),
    ),
    max_size=8,
)


def write_both(c: Any, python: Any, piece: Any) -> int:
    taken = c.write(piece)
    assert python.write(piece) == taken
    assert c.remaining == python.remaining
    return taken  # type: ignore[no-any-return]


@SETTINGS
@given(BUFFER_LENGTHS, st.one_of(st.none(), MASKS), BUFFER_PIECES, st.integers(0, 2**32))
def test_payload_buffer_same_as_python(
    length: int,
    mask: bytes | None,
    pieces_: list[tuple[int, Callable[[bytes], Any]]],
    seed: int,
) -> None:
    data = random_payload(length + 10, seed)  # 10 bytes more than declared
    c, python = _speedups.PayloadBuffer(length, mask), masking.PythonPayloadBuffer(length, mask)
    assert c.remaining == python.remaining == length
    position = 0
    for size, convert in pieces_:
        piece = data[position : position + size]
        taken = write_both(c, python, convert(piece))
        assert taken == min(len(piece), length - position)  # the extra bytes are not taken
        position += taken
    if position < length:
        assert outcome(c.finish) == outcome(python.finish) == ("raised", ValueError)
        position += write_both(c, python, data[position:])
    assert position == length
    assert c.remaining == 0
    assert write_both(c, python, b"more") == 0
    result = c.finish()
    assert type(result) is bytes
    assert result == python.finish()
    assert result == (data[:length] if mask is None else python_apply_mask(data[:length], mask))


# Steps on both buffers: write a piece (size, form), or read into prepare()'s view
# (None, size), committing at most what the view holds.
BUFFER_STEPS = st.lists(
    st.one_of(
        st.tuples(st.integers(0, 70_000), st.sampled_from(BYTES_LIKE[:4])),
        st.tuples(st.none(), st.one_of(st.integers(0, 9), st.integers(0, 400 * 1024))),
    ),
    max_size=10,
)


@SETTINGS
@given(BUFFER_LENGTHS, st.one_of(st.none(), MASKS), BUFFER_STEPS, st.integers(0, 2**32))
def test_payload_buffer_read_in_place_same_as_python(
    length: int,
    mask: bytes | None,
    steps: list[tuple[int | None, Any]],
    seed: int,
) -> None:
    """Pieces read into prepare()'s view and committed, between written ones, give the
    views of the same sizes (the same growth) and the same payload as the Python twin."""
    data = random_payload(length, seed)
    c, python = _speedups.PayloadBuffer(length, mask), masking.PythonPayloadBuffer(length, mask)
    position = 0
    for first, second in steps:
        if first is not None:
            position += write_both(c, python, second(data[position : position + first]))
            continue
        with c.prepare() as c_view, python.prepare() as python_view:
            assert len(c_view) == len(python_view) <= length - position
            size = min(second, len(c_view))
            c_view[:size] = python_view[:size] = data[position : position + size]
        c.commit(size)
        python.commit(size)
        position += size
        assert c.remaining == python.remaining == length - position
    position += write_both(c, python, data[position:])
    result = c.finish()
    assert result == python.finish()
    assert result == (data if mask is None else python_apply_mask(data, mask))


@PAYLOAD_BUFFERS
def test_payload_buffer_prepare_grows_geometrically(factory: Callable[..., Any]) -> None:
    """Each view is at least half of the buffer: a reader filling it whole triggers few
    reallocations and no tiny reads."""
    buffer = factory(10 * 2**20)
    sizes = []
    while buffer.remaining:
        with buffer.prepare() as view:
            sizes.append(len(view))
            view[:] = bytes(len(view))
        buffer.commit(sizes[-1])
    assert sizes[0] == 64 * 1024
    assert len(sizes) <= 5
    assert len(buffer.finish()) == 10 * 2**20


@PAYLOAD_BUFFERS
def test_payload_buffer_does_not_grow_while_viewed(factory: Callable[..., Any]) -> None:
    """The bytes under a view stay where they are: growing waits for the view to go."""
    buffer = factory(200_000)
    view = buffer.prepare()
    assert len(view) == 64 * 1024
    view[:] = b"x" * len(view)
    buffer.commit(len(view))
    with pytest.raises(BufferError):
        buffer.prepare()
    with pytest.raises(BufferError):
        buffer.write(b"y")
    assert buffer.remaining == 200_000 - 64 * 1024
    view.release()
    assert buffer.write(b"y" * (200_000 - 64 * 1024)) == 200_000 - 64 * 1024
    assert buffer.finish() == b"x" * 64 * 1024 + b"y" * (200_000 - 64 * 1024)


@PAYLOAD_BUFFERS
def test_payload_buffer_view_outlives_finish(factory: Callable[..., Any]) -> None:
    """A view that the loop still holds when the payload completes stays valid."""
    buffer = factory(5, MASK)
    view = buffer.prepare()
    view[:] = python_apply_mask(b"Hello", MASK)
    buffer.commit(5)
    result = buffer.finish()
    assert result == b"Hello"
    assert bytes(view) == b"Hello"
    del result
    assert bytes(view) == b"Hello"
    view.release()


@PAYLOAD_BUFFERS
@pytest.mark.parametrize("nbytes", [-1, 7])
def test_payload_buffer_commits_what_was_prepared_only(
    factory: Callable[..., Any], nbytes: int
) -> None:
    buffer = factory(6, MASK)
    with pytest.raises(ValueError, match="commit"):
        buffer.commit(nbytes)
    assert buffer.remaining == 6
    buffer.commit(6)
    assert buffer.remaining == 0
    assert len(buffer.prepare()) == 0
    buffer.finish()
    with pytest.raises(ValueError, match="is finished"):
        buffer.prepare()
    with pytest.raises(ValueError, match="is finished"):
        buffer.commit(0)


@PAYLOAD_BUFFERS
def test_payload_buffer_allocates_as_data_is_read_in_place(factory: Callable[..., Any]) -> None:
    """Reads into the view grow the buffer as writes do, with what came: a peer declaring a
    huge frame and sending little must not make us allocate it."""
    import tracemalloc

    tracemalloc.start()
    try:
        buffer = factory(2**31 - 1, MASK)
        received = 0
        while received < 100_000:
            with buffer.prepare() as view:
                size = min(len(view), 100_000 - received)
                view[:size] = bytes(size)
            buffer.commit(size)
            received += size
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert buffer.remaining == 2**31 - 1 - 100_000
    assert peak < 1024 * 1024


@PAYLOAD_BUFFERS
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1,), "length must be >= 0"),
        ((-(2**40), MASK), "length must be >= 0"),
        ((5, b"abc"), "mask must be 4 bytes long, not 3"),
        ((5, b""), "mask must be 4 bytes long, not 0"),
        ((5, bytearray(5)), "mask must be 4 bytes long, not 5"),
    ],
)
def test_payload_buffer_bad_arguments(
    factory: Callable[..., Any], args: tuple[object, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        factory(*args)


@PAYLOAD_BUFFERS
@pytest.mark.parametrize("data", ["text", None, 5])
def test_payload_buffer_write_needs_bytes_like(factory: Callable[..., Any], data: object) -> None:
    buffer = factory(5, MASK)
    with pytest.raises(TypeError):
        buffer.write(data)
    assert buffer.remaining == 5


@PAYLOAD_BUFFERS
@pytest.mark.parametrize("mask", [None, MASK])
def test_payload_buffer_finishes_once_and_complete(
    factory: Callable[..., Any], mask: bytes | None
) -> None:
    buffer = factory(5, mask)
    with pytest.raises(ValueError, match="has 0 of 5 bytes"):
        buffer.finish()
    assert buffer.write(b"abc") == 3
    with pytest.raises(ValueError, match="has 3 of 5 bytes"):
        buffer.finish()
    # A failed finish() changes nothing: writing goes on.
    assert buffer.write(memoryview(b"defgh")) == 2
    assert buffer.remaining == 0
    assert buffer.finish() == (b"abcde" if mask is None else python_apply_mask(b"abcde", MASK))
    with pytest.raises(ValueError, match="is finished"):
        buffer.finish()
    with pytest.raises(ValueError, match="is finished"):
        buffer.write(b"x")
    with pytest.raises(ValueError, match="is finished"):
        buffer.write(b"")


@PAYLOAD_BUFFERS
def test_payload_buffer_of_zero_bytes(factory: Callable[..., Any]) -> None:
    buffer = factory(0, MASK)
    assert buffer.remaining == 0
    assert buffer.write(b"abc") == 0
    assert buffer.finish() == b""


@PAYLOAD_BUFFERS
def test_payload_buffer_allocates_as_data_arrives(factory: Callable[..., Any]) -> None:
    """A peer declaring a huge frame and sending little must not make us allocate it."""
    import tracemalloc

    piece = random_payload(100_000, 0)
    tracemalloc.start()
    try:
        buffer = factory(2**31 - 1, MASK)
        assert buffer.write(piece) == len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert buffer.remaining == 2**31 - 1 - len(piece)
    assert peak < 1024 * 1024


@pytest.mark.parametrize(
    "mask",
    [bytearray(MASK), memoryview(MASK)],
    ids=["bytearray", "memoryview"],
)
def test_payload_buffer_bytes_like_mask(mask: bytearray | memoryview) -> None:
    expected = python_apply_mask(b"Hello", MASK)
    factories: list[Callable[..., Any]] = [_speedups.PayloadBuffer, masking.PythonPayloadBuffer]
    for factory in factories:
        buffer = factory(5, mask)
        assert buffer.write(b"H") == 1
        assert buffer.write(b"ello") == 4
        assert buffer.finish() == expected


def test_payload_buffer_remaining_after_finish_same_as_python() -> None:
    outcomes = []
    for factory in (_speedups.PayloadBuffer, masking.PythonPayloadBuffer):
        buffer = factory(1)
        buffer.write(b"x")
        buffer.finish()
        outcomes.append(outcome(getattr, buffer, "remaining"))
    assert outcomes[0] == outcomes[1]


def test_payload_buffer_strided_piece_same_as_python() -> None:
    strided = BYTES_LIKE[4](b"Hello")
    c = outcome(_speedups.PayloadBuffer(5, MASK).write, strided)
    assert c == outcome(masking.PythonPayloadBuffer(5, MASK).write, strided)


# Head fields ----------------------------------------------------------------------------


def test_head_fields_selection_follows_the_environment() -> None:
    assert http11.SPEEDUPS is (not NO_SPEEDUPS)
    expected = python_head_fields if NO_SPEEDUPS else _speedups.head_fields
    assert http11.head_fields is expected


def both_head_fields(head: bytes, shared: dict[str, str], max_shared: int = 4) -> Any:
    """What both versions return for ``head``, each from its own copy of ``shared``, and
    what each left in it: asserted equal."""
    outcomes = []
    for head_fields in (_speedups.head_fields, python_head_fields):
        mine = dict(shared)
        outcomes.append((head_fields(head, mine, max_shared), mine))
    assert outcomes[0] == outcomes[1]
    # Names found in shared are the very objects it holds.
    fields, mine = outcomes[0]
    for name, _ in fields or ():
        if name in shared:
            assert name is shared[name]
    return outcomes[0][0]


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", []),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", [("Host", "a")]),
        (b"GET / HTTP/1.1\r\nX:\r\nY: \t\r\n\r\n", [("X", ""), ("Y", "")]),
        (b"GET / HTTP/1.1\r\nX: \t a \t b\t \r\n\r\n", [("X", "a \t b")]),
        (b"GET / HTTP/1.1\r\nX: caf\xe9\xff\r\n\r\n", [("X", "caf\xe9\xff")]),
        (b"HTTP/1.1 101\r\nA: 1\r\nA: 2\r\n\r\n", [("A", "1"), ("A", "2")]),
        (b"\r\n\r\n", []),
        # Not a head that ends with an empty line.
        (b"GET / HTTP/1.1\r\nHost: a\r\n", None),
        (b"GET / HTTP/1.1\r\n\n", None),
        (b"\r\n", None),
        (b"", None),
        # A bare LF in the start line or in a field line, a bare CR.
        (b"GET /\n HTTP/1.1\r\nHost: a\r\n\r\n", None),
        (b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", None),
        (b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", None),
        # Not a field line: no colon, whitespace before it, folding, an empty name, a
        # name that isn't a token, a control character in the value.
        (b"GET / HTTP/1.1\r\nHost\r\n\r\n", None),
        (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", None),
        (b"GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n", None),
        (b"GET / HTTP/1.1\r\n: a\r\n\r\n", None),
        (b"GET / HTTP/1.1\r\nH(st: a\r\n\r\n", None),
        (b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", None),
        (b"GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n", None),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\x00\r\n\r\n", None),
    ],
)
def test_head_fields_same_as_python(head: bytes, expected: Any) -> None:
    assert both_head_fields(head, {}) == expected


def test_head_fields_share_names() -> None:
    head = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: b\r\nConnection: c\r\n\r\n"
    host = "".join(["Ho", "st"])  # not the interned literal
    assert both_head_fields(head, {host: host}, max_shared=2) == [
        ("Host", "a"),
        ("Upgrade", "b"),
        ("Connection", "c"),
    ]


# Pieces of heads: valid field lines and every kind of invalid byte or line.
HEAD_PIECES = st.sampled_from(
    [
        b"Host",
        b"X-A",
        b":",
        b" ",
        b"\t",
        b"a",
        b"\xe9",
        b"\r\n",
        b"\r",
        b"\n",
        b"\x00",
        b"\x7f",
        b"(",
        b"!#$%&'*+-.^_`|~",
        b"GET / HTTP/1.1",
    ]
)


@SETTINGS
@given(
    st.lists(HEAD_PIECES, max_size=24),
    st.booleans(),
    st.dictionaries(st.sampled_from(["Host", "X-A", "a"]), st.just(""), max_size=3),
)
def test_head_fields_same_as_python_on_any_head(
    pieces: list[bytes], ended: bool, shared: dict[str, str]
) -> None:
    head = b"".join(pieces) + (b"\r\n\r\n" if ended else b"")
    both_head_fields(head, {name: name for name in shared})


def test_head_fields_arguments() -> None:
    with pytest.raises(TypeError):
        _speedups.head_fields(bytearray(b"\r\n\r\n"), {}, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _speedups.head_fields(b"\r\n\r\n", [], 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _speedups.head_fields(b"\r\n\r\n", {})  # type: ignore[call-arg]


# Header fields by name --------------------------------------------------------------------

FIELD_NAMES = [
    "Host",
    "host",
    "HOST",
    "Upgrade",
    "Sec-WebSocket-Key",
    "sec-websocket-key",
    "X",
    "",
    "\u212aey",  # KELVIN SIGN: lowers to an ASCII "k"
    "\u0130x",  # lowers to two characters
    "caf\u00e9",
    "CAF\u00c9",
]


def test_field_lookups_selection_follows_the_environment() -> None:
    if NO_SPEEDUPS:
        assert http11.field_values is python_field_values
        assert http11.fields_by_name is python_fields_by_name
    else:
        assert http11.field_values is _speedups.field_values
        assert http11.fields_by_name is _speedups.fields_by_name


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=6)),
            st.text(max_size=4),
        ),
        max_size=12,
    ),
    st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=6)),
)
def test_field_lookups_same_as_python(items: list[tuple[str, str]], name: str) -> None:
    key = name.lower()
    values = _speedups.field_values(items, key)
    assert values == python_field_values(items, key)
    assert values == [v for n, v in items if n.lower() == key]
    by_name = _speedups.fields_by_name(items)
    assert by_name == python_fields_by_name(items)
    assert list(by_name) == list(python_fields_by_name(items))
    # The values are the very objects of the items.
    for name_, value in items:
        assert any(v is value for v in by_name[name_.lower()])


@pytest.mark.parametrize("name", FIELD_NAMES)
def test_field_lookups_same_as_python_on_names(name: str) -> None:
    items = [(other, str(index)) for index, other in enumerate(FIELD_NAMES)]
    assert _speedups.field_values(items, name.lower()) == python_field_values(items, name.lower())
    assert _speedups.fields_by_name(items) == python_fields_by_name(items)


def test_field_lookups_arguments() -> None:
    for bad in ([("Host",)], [["Host", "x"]], [(1, "x")], ("Host", "x")):
        with pytest.raises(TypeError):
            _speedups.field_values(bad, "host")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            _speedups.fields_by_name(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _speedups.field_values([], b"host")  # type: ignore[arg-type]
