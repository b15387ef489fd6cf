"""The optional C accelerator (``wsio._speedups``) against the pure-Python reference.

Both implementations must give identical results: the same masked bytes, the same
accept/reject decision for UTF-8, the C validator failing no later than the Python one
(a surrogate fails at its second byte in C, at its third in CPython's codec).

When ``WSIO_NO_SPEEDUPS`` is unset the extension must be built: its absence fails this
module loudly instead of silently testing the fallback twice.
"""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsio.protocol import masking, utf8
from wsio.protocol.masking import python_apply_mask
from wsio.protocol.utf8 import PythonIncrementalValidator

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
    assert masking.SPEEDUPS is utf8.SPEEDUPS is (not NO_SPEEDUPS)
    if NO_SPEEDUPS:
        assert masking.apply_mask is python_apply_mask
        assert utf8.IncrementalValidator is PythonIncrementalValidator
    else:
        assert masking.apply_mask is _speedups.apply_mask
        assert utf8.IncrementalValidator is _speedups.Utf8Validator


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
    assert _speedups.validate_utf8(stream) is (data in VALID)
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
    assert _speedups.validate_utf8(data) is (run(PythonIncrementalValidator, [data]) is None)


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
    assert _speedups.validate_utf8(data)


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
    assert _speedups.validate_utf8(data) is (run(PythonIncrementalValidator, [data]) is None)


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
    assert not _speedups.validate_utf8(data)


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
            assert _speedups.validate_utf8(stream) is (data in VALID)


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
    assert _speedups.validate_utf8(memoryview(data)) is (where == "none")


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
    with pytest.raises(TypeError, match="bytes-like"):
        _speedups.validate_utf8("text")  # type: ignore[arg-type]


def test_utf8_state_is_unchanged_by_an_error() -> None:
    # As with CPython's incremental decoder: the open sequence is still open.
    validator = _speedups.Utf8Validator()
    validator.feed(b"\xe2\x82")
    with pytest.raises(UnicodeDecodeError):
        validator.feed(b"\x41")
    with pytest.raises(UnicodeDecodeError, match="unexpected end of data"):
        validator.feed(b"", final=True)
    validator.feed(b"\xac", final=True)
