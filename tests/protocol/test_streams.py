"""The generator-based reader that the parsers of the core are written over."""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsio.protocol.streams import StreamReader

from .helpers import chop, parse_all, parse_pieces

SETTINGS = settings(max_examples=200, deadline=None)


def read_line(max_length: int) -> Any:
    return lambda reader: reader.read_line(max_length)


def read_exact(n: int) -> Any:
    return lambda reader: reader.read_exact(n)


def read_some(n: int) -> Any:
    return lambda reader: reader.read_some(n)


def read_to_eof(max_length: int) -> Any:
    return lambda reader: reader.read_to_eof(max_length)


def two_lines(reader: StreamReader) -> Generator[None, None, tuple[bytes, bytes, bytes]]:
    first = yield from reader.read_line(100)
    second = yield from reader.read_line(100)
    return first, second, bytes(reader.buffer)


# read_line


def test_read_line_strips_crlf() -> None:
    assert parse_all(read_line(100), b"hello\r\nrest", eof=False) == b"hello"


def test_read_line_empty_line() -> None:
    assert parse_all(read_line(100), b"\r\n", eof=False) == b""


def test_read_line_leaves_the_rest() -> None:
    assert parse_all(two_lines, b"a\r\nb\r\nc") == (b"a", b"b", b"c")


def test_read_line_waits_for_the_end_of_line() -> None:
    with pytest.raises(BlockingIOError):
        parse_all(read_line(100), b"hello\r", eof=False)


def test_read_line_in_pieces() -> None:
    assert parse_pieces(read_line(100), [b"he", b"l", b"lo\r", b"\n"], eof=False) == b"hello"


def test_read_line_bare_lf() -> None:
    with pytest.raises(ValueError, match="CRLF"):
        parse_all(read_line(100), b"hello\n")


def test_read_line_lone_lf() -> None:
    with pytest.raises(ValueError, match="CRLF"):
        parse_all(read_line(100), b"\n")


@pytest.mark.parametrize("length", [5, 6, 7])
def test_read_line_limit_includes_crlf(length: int) -> None:
    """The limit counts the CRLF: "hello" + CRLF is 7 bytes, too long for 6."""
    if length >= 7:
        assert parse_all(read_line(length), b"hello\r\n") == b"hello"
    else:
        with pytest.raises(ValueError, match="longer than"):
            parse_all(read_line(length), b"hello\r\n")


def test_read_line_too_long_without_end_of_line() -> None:
    """A line that never ends fails as soon as it exceeds the limit, without EOF."""
    with pytest.raises(ValueError, match="longer than"):
        parse_pieces(read_line(10), [b"x" * 6, b"x" * 6], eof=False)


def test_read_line_eof() -> None:
    with pytest.raises(EOFError):
        parse_all(read_line(100), b"partial")


def test_read_line_eof_on_empty_stream() -> None:
    with pytest.raises(EOFError):
        parse_all(read_line(100), b"")


# read_exact


def test_read_exact() -> None:
    assert parse_all(read_exact(3), b"abcdef", eof=False) == b"abc"


def test_read_exact_zero() -> None:
    assert parse_all(read_exact(0), b"", eof=False) == b""


def test_read_exact_in_pieces() -> None:
    assert parse_pieces(read_exact(5), [b"a", b"bc", b"", b"def"], eof=False) == b"abcde"


def test_read_exact_waits() -> None:
    with pytest.raises(BlockingIOError):
        parse_all(read_exact(5), b"abcd", eof=False)


def test_read_exact_eof() -> None:
    with pytest.raises(EOFError):
        parse_all(read_exact(5), b"abcd")


def test_read_exact_returns_bytes() -> None:
    assert type(parse_all(read_exact(2), b"ab")) is bytes


# read_some


def test_read_some_returns_what_is_there() -> None:
    assert parse_all(read_some(10), b"abc", eof=False) == b"abc"


def test_read_some_at_most_n() -> None:
    assert parse_all(read_some(2), b"abc", eof=False) == b"ab"


def test_read_some_waits_for_one_byte() -> None:
    with pytest.raises(BlockingIOError):
        parse_all(read_some(2), b"", eof=False)
    assert parse_pieces(read_some(4), [b"", b"x"], eof=False) == b"x"


def test_read_some_eof() -> None:
    with pytest.raises(EOFError):
        parse_all(read_some(2), b"")


# read_to_eof


def test_read_to_eof() -> None:
    assert parse_all(read_to_eof(100), b"abc") == (b"abc", False)


def test_read_to_eof_waits_for_eof() -> None:
    with pytest.raises(BlockingIOError):
        parse_all(read_to_eof(100), b"abc", eof=False)


def test_read_to_eof_exactly_the_limit() -> None:
    assert parse_all(read_to_eof(3), b"abc") == (b"abc", False)


def test_read_to_eof_stops_past_the_limit_without_eof() -> None:
    assert parse_pieces(read_to_eof(3), [b"ab", b"cd"], eof=False) == (b"abc", True)


def test_read_to_eof_empty() -> None:
    assert parse_all(read_to_eof(3), b"") == (b"", False)


# buffer management


def test_feed_after_eof() -> None:
    reader = StreamReader()
    reader.feed_eof()
    with pytest.raises(EOFError):
        reader.feed_data(b"x")


def test_feed_bytes_like() -> None:
    reader = StreamReader()
    reader.feed_data(bytearray(b"ab"))
    reader.feed_data(memoryview(b"cd"))
    assert reader.buffer == b"abcd"


def test_discard() -> None:
    reader = StreamReader()
    reader.feed_data(b"abc")
    reader.discard()
    assert reader.buffer == b""
    assert not reader.eof


@SETTINGS
@given(
    st.lists(st.binary(max_size=20).filter(lambda b: b"\n" not in b), min_size=1, max_size=5),
    st.lists(st.integers(min_value=0, max_value=120), max_size=10),
)
def test_lines_in_any_pieces(lines: list[bytes], cuts: list[int]) -> None:
    data = b"".join(line + b"\r\n" for line in lines)

    def read_all(reader: StreamReader) -> Generator[None, None, list[bytes]]:
        result = []
        for _ in lines:
            result.append((yield from reader.read_line(100)))
        return result

    assert parse_pieces(read_all, chop(data, cuts), eof=False) == lines


@SETTINGS
@given(st.binary(max_size=50), st.lists(st.integers(min_value=0, max_value=50), max_size=10))
def test_read_exact_in_any_pieces(data: bytes, cuts: list[int]) -> None:
    assert parse_pieces(partial(StreamReader.read_exact, n=len(data)), chop(data, cuts)) == data
