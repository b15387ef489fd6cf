"""The tiny buffered reader that the parsers of the core are written over.

Parsers are generators: they ``yield`` when they need more bytes and ``return`` their
result, so that they read as straight-line code while the core stays sans-I/O. The I/O
layer feeds bytes with :meth:`StreamReader.feed_data` and resumes the parser.
"""

from __future__ import annotations

from collections.abc import Generator

__all__ = ["StreamReader"]


class StreamReader:
    """A buffer of received bytes, with generator-based read methods."""

    __slots__ = ("buffer", "eof")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.eof = False

    def feed_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes. Not allowed after :meth:`feed_eof`."""
        if self.eof:
            raise EOFError("data received after end of stream")
        self.buffer += data

    def feed_eof(self) -> None:
        """Record that the stream ended."""
        self.eof = True

    def discard(self) -> None:
        """Drop buffered bytes, e.g. once the core stops processing input."""
        del self.buffer[:]

    def read_line(self, max_length: int) -> Generator[None, None, bytes]:
        """Read one line ending with CRLF, returned without it.

        :raises ValueError: the line exceeds ``max_length`` bytes (its end included).
        :raises EOFError: the stream ended first.
        """
        start = 0
        while (end := self.buffer.find(b"\n", start)) == -1:
            if len(self.buffer) > max_length:
                raise ValueError(f"line longer than {max_length} bytes")
            if self.eof:
                raise EOFError(f"stream ends after {len(self.buffer)} bytes, before end of line")
            start = len(self.buffer)
            yield
        if end + 1 > max_length:
            raise ValueError(f"line longer than {max_length} bytes")
        if end == 0 or self.buffer[end - 1] != 0x0D:
            raise ValueError("line doesn't end with CRLF")
        line = bytes(self.buffer[: end - 1])
        del self.buffer[: end + 1]
        return line

    def read_exact(self, n: int) -> Generator[None, None, bytes]:
        """Read exactly ``n`` bytes.

        :raises EOFError: the stream ended first.
        """
        while len(self.buffer) < n:
            if self.eof:
                raise EOFError(f"stream ends after {len(self.buffer)} bytes, expected {n}")
            yield
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def read_some(self, n: int) -> Generator[None, None, bytes]:
        """Read at least one and at most ``n`` bytes (``n`` > 0).

        :raises EOFError: the stream ended first.
        """
        while not self.buffer:
            if self.eof:
                raise EOFError(f"stream ends, expected {n} more bytes")
            yield
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def read_to_eof(self, max_length: int) -> Generator[None, None, tuple[bytes, bool]]:
        """Read until the end of the stream, or until more than ``max_length`` bytes came.

        Returns the bytes kept (``max_length`` at most) and whether more were there, so a
        peer that streams without end cannot make the reader wait or buffer past the limit.
        """
        while not self.eof and len(self.buffer) <= max_length:
            yield
        truncated = len(self.buffer) > max_length
        data = bytes(self.buffer[:max_length])
        del self.buffer[:]
        return data, truncated
