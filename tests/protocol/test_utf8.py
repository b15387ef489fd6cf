"""Incremental UTF-8 validation (RFC 6455 §5.6, §8.1; RFC 3629)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsio.protocol.utf8 import SPEEDUPS, IncrementalValidator

SETTINGS = settings(max_examples=200, deadline=None)

VALID = [
    b"",
    b"Hello",
    "κόσμε".encode(),
    "€".encode(),
    "\U0001f600".encode(),
    b"\x7f",
    b"\xc2\x80",  # U+0080, smallest 2-byte
    b"\xdf\xbf",  # U+07FF
    b"\xe0\xa0\x80",  # U+0800, smallest 3-byte
    b"\xed\x9f\xbf",  # U+D7FF, just below the surrogates
    b"\xee\x80\x80",  # U+E000, just above the surrogates
    b"\xef\xbf\xbf",  # U+FFFF (a noncharacter is still valid UTF-8)
    b"\xf0\x90\x80\x80",  # U+10000, smallest 4-byte
    b"\xf4\x8f\xbf\xbf",  # U+10FFFF, the largest code point
]

# Invalid sequences, with the length of the shortest prefix that already proves it.
INVALID = [
    (b"\xc0\xaf", 1),  # overlong "/": C0 can never start valid UTF-8
    (b"\xc1\xbf", 1),  # overlong
    (b"\xe0\x80\xaf", 2),  # overlong 3-byte
    (b"\xf0\x80\x80\xaf", 2),  # overlong 4-byte
    # U+D800 and U+DFFF, surrogates. ED A0 already rules the sequence out, and the C
    # validator rejects it there; CPython's incremental decoder (the pure-Python fallback)
    # only at the third byte: one byte late, which RFC 6455 tolerates (it asks to fail, not
    # at which byte).
    (b"\xed\xa0\x80", 2 if SPEEDUPS else 3),
    (b"\xed\xbf\xbf", 2 if SPEEDUPS else 3),
    (b"\xf4\x90\x80\x80", 2),  # U+110000, above U+10FFFF
    (b"\xf5\x80\x80\x80", 1),  # F5 can never start valid UTF-8
    (b"\xff", 1),
    (b"\xfe", 1),
    (b"\x80", 1),  # lone continuation byte
    (b"\xbf", 1),
    (b"\xc2\x41", 2),  # missing continuation
    (b"\xe2\x82\x41", 3),
    (b"\xf0\x9f\x98\x41", 4),
]

TRUNCATED = [b"\xc2", b"\xe2", b"\xe2\x82", b"\xf0", b"\xf0\x9f", b"\xf0\x9f\x98"]


@pytest.mark.parametrize("data", VALID)
def test_valid_whole(data: bytes) -> None:
    validator = IncrementalValidator()
    validator.feed(data)
    validator.feed(b"", final=True)


@pytest.mark.parametrize("data", VALID)
def test_valid_one_byte_at_a_time(data: bytes) -> None:
    validator = IncrementalValidator()
    for i in range(len(data)):
        validator.feed(data[i : i + 1])
    validator.feed(b"", final=True)


@pytest.mark.parametrize(("data", "proof"), INVALID)
def test_invalid_whole(data: bytes, proof: int) -> None:
    with pytest.raises(UnicodeDecodeError):
        IncrementalValidator().feed(data, final=True)


@pytest.mark.parametrize(("data", "proof"), INVALID)
def test_invalid_fails_fast(data: bytes, proof: int) -> None:
    """The error is raised by the first byte that rules the sequence out (§8.1 "fail fast"),
    not at the end of the message."""
    validator = IncrementalValidator()
    for i in range(proof - 1):
        validator.feed(data[i : i + 1])
    with pytest.raises(UnicodeDecodeError):
        validator.feed(data[proof - 1 : proof])


@pytest.mark.parametrize(("data", "proof"), INVALID)
def test_invalid_after_valid_prefix(data: bytes, proof: int) -> None:
    validator = IncrementalValidator()
    validator.feed(b"abc \xce\xba")
    with pytest.raises(UnicodeDecodeError):
        validator.feed(data[:proof])


@pytest.mark.parametrize("data", TRUNCATED)
def test_truncated_is_fine_until_final(data: bytes) -> None:
    validator = IncrementalValidator()
    validator.feed(data)
    with pytest.raises(UnicodeDecodeError):
        validator.feed(b"", final=True)


@pytest.mark.parametrize("data", TRUNCATED)
def test_truncated_in_final_piece(data: bytes) -> None:
    with pytest.raises(UnicodeDecodeError):
        IncrementalValidator().feed(b"ok" + data, final=True)


def test_validators_are_independent() -> None:
    first = IncrementalValidator()
    first.feed(b"\xe2\x82")
    second = IncrementalValidator()
    second.feed(b"abc", final=True)
    first.feed(b"\xac", final=True)


@SETTINGS
@given(st.text(max_size=50), st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_valid_text_in_any_pieces(text: str, cuts: list[int]) -> None:
    data = text.encode()
    validator = IncrementalValidator()
    points = sorted({c for c in cuts if 0 < c < len(data)})
    for a, b in zip([0, *points], [*points, len(data)], strict=True):
        validator.feed(data[a:b])
    validator.feed(b"", final=True)


@SETTINGS
@given(st.binary(max_size=40), st.lists(st.integers(min_value=0, max_value=40), max_size=8))
def test_agrees_with_strict_decoding(data: bytes, cuts: list[int]) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        valid = False
    else:
        valid = True
    validator = IncrementalValidator()
    points = sorted({c for c in cuts if 0 < c < len(data)})
    try:
        for a, b in zip([0, *points], [*points, len(data)], strict=True):
            validator.feed(data[a:b])
        validator.feed(b"", final=True)
    except UnicodeDecodeError:
        assert not valid
    else:
        assert valid
