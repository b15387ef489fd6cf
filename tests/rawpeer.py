"""A raw WebSocket peer for tests: sends any bytes, records what comes back.

This is an independent, deliberately permissive implementation of just enough of RFC 6455 to
drive wsio over real sockets. It never imports wsio. It can build frames that break the protocol
on purpose (reserved bits, bad opcodes, wrong masking, lying or non-minimal lengths) and
handshakes that break HTTP, and it parses whatever the other side sends without judging it, so
that tests can assert on the exact bytes wsio produced.

Pieces:

- :func:`build_frame`, :func:`close_payload`, :func:`mask_bytes`, :func:`accept_key`,
  :func:`build_request`, :func:`build_response`: pure byte builders.
- :class:`Frame` and :class:`FrameParser`: an incremental frame parser (RFC 6455 §5.2).
- :class:`HTTPRequest`, :class:`HTTPResponse` and :func:`parse_http_head`.
- :class:`RawClient`: a TCP (or TLS) client that performs an opening handshake, or anything else.
- :class:`RawServer`: a TCP (or TLS) server running a test script per connection.

Every wait takes a timeout (default :data:`DEFAULT_TIMEOUT` seconds) and raises
:class:`TimeoutError` when it runs out, so a misbehaving implementation never hangs a test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import socket
import ssl as ssl_module
import struct
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Literal, cast

__all__ = [
    "DEFAULT_MASK",
    "DEFAULT_TIMEOUT",
    "GUID",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "Frame",
    "FrameParser",
    "HTTPRequest",
    "HTTPResponse",
    "HeaderSpec",
    "PeerClosed",
    "RawClient",
    "RawConnection",
    "RawServer",
    "ServerConn",
    "accept_key",
    "build_frame",
    "build_request",
    "build_response",
    "close_payload",
    "mask_bytes",
    "parse_http_head",
]

GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
"""The magic GUID of RFC 6455 §1.3."""

OP_CONT: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA

DEFAULT_MASK: Final = b"\x01\x02\x03\x04"
"""The masking key used when none is given (deterministic, so failures are reproducible)."""

DEFAULT_TIMEOUT: Final = 5.0
"""Seconds every wait lasts unless told otherwise."""

MAX_HEAD: Final = 1 << 20
"""Largest HTTP head the peer is willing to buffer (bytes)."""

LengthEncoding = Literal[7, 16, 64]

HeaderSpec = Mapping[str, str | None] | Iterable[tuple[str, str | None]]
"""Headers given to the builders: ``(name, value)`` pairs or a dict.

A name that matches a default header (case-insensitively) replaces it; a value of ``None``
removes it; repeating a name sends it several times; other names are appended in order.
"""


class _Default:
    """Sentinel type: "use the connection's default" (masking)."""

    def __repr__(self) -> str:
        return "<default>"


_DEFAULT: Final = _Default()


# --------------------------------------------------------------------------------------------
# Pure builders
# --------------------------------------------------------------------------------------------


def accept_key(key: str | bytes) -> str:
    """Return the ``Sec-WebSocket-Accept`` value for a ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    raw = key.encode("latin-1") if isinstance(key, str) else key
    return base64.b64encode(hashlib.sha1(raw.strip() + GUID).digest()).decode("ascii")


def mask_bytes(payload: bytes, mask: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``mask`` (RFC 6455 §5.3); masking is its own inverse."""
    if len(mask) != 4:
        raise ValueError("mask must be 4 bytes")
    if not payload:
        return b""
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big"
    )


def close_payload(code: int, reason: bytes | str = b"") -> bytes:
    """Return a close frame payload: a 2-byte big-endian ``code`` then ``reason`` as given.

    Any code in 0..65535 and any reason bytes are allowed, valid or not.
    """
    raw = reason.encode("utf-8") if isinstance(reason, str) else reason
    return struct.pack("!H", code) + raw


def build_frame(
    opcode: int,
    payload: bytes | str = b"",
    *,
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    mask: bytes | None = DEFAULT_MASK,
    length_encoding: LengthEncoding | None = None,
    declared_length: int | None = None,
) -> bytes:
    """Return the bytes of one frame (RFC 6455 §5.2), legal or not.

    ``opcode`` is any 4-bit value. ``payload`` (``str`` is UTF-8 encoded) is given unmasked; it
    is masked with ``mask`` unless ``mask`` is ``None`` (an unmasked frame, as a server sends).
    ``length_encoding`` forces the payload length field: ``7`` (the 7-bit field, only for
    lengths up to 125), ``16`` (126 + 2 bytes) or ``64`` (127 + 8 bytes), so that non-minimal
    encodings can be produced; ``None`` picks the minimal one. ``declared_length`` writes a
    length other than ``len(payload)`` in the header (a frame that lies about its size, e.g. a
    64-bit length with its top bit set); only ``payload`` is actually appended.
    """
    if not 0 <= opcode <= 0xF:
        raise ValueError(f"opcode out of range: {opcode}")
    data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    length = len(data) if declared_length is None else declared_length
    if not 0 <= length < 1 << 64:
        raise ValueError(f"length out of range: {length}")
    if length_encoding is None:
        length_encoding = 7 if length <= 125 else 16 if length <= 0xFFFF else 64
    first = (
        (0x80 if fin else 0)
        | (0x40 if rsv1 else 0)
        | (0x20 if rsv2 else 0)
        | (0x10 if rsv3 else 0)
        | opcode
    )
    mask_bit = 0x80 if mask is not None else 0
    if length_encoding == 7:
        if length > 125:
            raise ValueError("a 7-bit length cannot exceed 125")
        head = struct.pack("!BB", first, mask_bit | length)
    elif length_encoding == 16:
        if length > 0xFFFF:
            raise ValueError("a 16-bit length cannot exceed 65535")
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    elif length_encoding == 64:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    else:
        raise ValueError(f"length_encoding must be 7, 16, 64 or None, not {length_encoding!r}")
    if mask is None:
        return head + data
    return head + mask + mask_bytes(data, mask)


def _merge_headers(
    defaults: Sequence[tuple[str, str]], overrides: HeaderSpec | None
) -> list[tuple[str, str]]:
    """Apply a :data:`HeaderSpec` to default headers (see its docstring for the rules)."""
    given = list(overrides.items()) if isinstance(overrides, Mapping) else list(overrides or ())
    given_names = {name.lower() for name, _ in given}
    merged = [(n, v) for n, v in defaults if n.lower() not in given_names]
    merged.extend((n, v) for n, v in given if v is not None)
    return merged


def _encode_head(start_line: bytes, headers: Sequence[tuple[str, str]]) -> bytes:
    lines = [start_line]
    lines.extend(f"{name}: {value}".encode("latin-1") for name, value in headers)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def build_request(
    path: str = "/",
    *,
    host: str = "127.0.0.1",
    key: str | None = None,
    headers: HeaderSpec | None = None,
    method: str = "GET",
    version: str = "HTTP/1.1",
    body: bytes = b"",
) -> bytes:
    """Return an opening handshake request (RFC 6455 §4.1), valid unless told otherwise.

    Default headers are ``Host``, ``Upgrade: websocket``, ``Connection: Upgrade``,
    ``Sec-WebSocket-Key`` (``key``, random when ``None``) and ``Sec-WebSocket-Version: 13``;
    ``headers`` edits them (see :data:`HeaderSpec`). ``body`` is appended as is (no
    ``Content-Length`` is added for it).
    """
    if key is None:
        key = base64.b64encode(os.urandom(16)).decode("ascii")
    defaults = [
        ("Host", host),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]
    start = f"{method} {path} {version}".encode("latin-1")
    return _encode_head(start, _merge_headers(defaults, headers)) + body


def build_response(
    key: str | None,
    *,
    status_line: bytes = b"HTTP/1.1 101 Switching Protocols",
    headers: HeaderSpec | None = None,
    body: bytes = b"",
) -> bytes:
    """Return an opening handshake response (RFC 6455 §4.2.2), valid unless told otherwise.

    Default headers are ``Upgrade: websocket``, ``Connection: Upgrade`` and
    ``Sec-WebSocket-Accept`` computed from ``key`` (omitted when ``key`` is ``None``); ``headers``
    edits them (see :data:`HeaderSpec`), e.g. ``{"Sec-WebSocket-Accept": "wrong"}``.
    """
    defaults = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
    if key is not None:
        defaults.append(("Sec-WebSocket-Accept", accept_key(key)))
    return _encode_head(status_line, _merge_headers(defaults, headers)) + body


# --------------------------------------------------------------------------------------------
# Parsers
# --------------------------------------------------------------------------------------------


@dataclass
class Frame:
    """One frame as it was on the wire; ``payload`` is already unmasked."""

    fin: bool
    rsv1: bool
    rsv2: bool
    rsv3: bool
    opcode: int
    masked: bool
    payload: bytes
    mask_key: bytes | None = None
    length_encoding: LengthEncoding = 7
    """Which length field the sender used: 7, 16 (126) or 64 (127)."""

    @property
    def is_minimal(self) -> bool:
        """Whether the length used the shortest encoding (RFC 6455 §5.2 requires it)."""
        n = len(self.payload)
        return self.length_encoding == (7 if n <= 125 else 16 if n <= 0xFFFF else 64)

    @property
    def close_code(self) -> int | None:
        """The status code of a close frame, ``None`` when the payload is shorter than 2."""
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        code: int = struct.unpack("!H", self.payload[:2])[0]
        return code

    @property
    def close_reason(self) -> bytes:
        """The raw reason bytes of a close frame."""
        return self.payload[2:] if self.opcode == OP_CLOSE else b""

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8 (strict)."""
        return self.payload.decode("utf-8")


class FrameParser:
    """Incremental frame parser: :meth:`feed` bytes, then take frames with :meth:`next_frame`.

    It accepts anything that is structurally a frame (any opcode, bits or masking) and never
    validates; unconsumed bytes stay in :attr:`buffer`.
    """

    def __init__(self, max_payload: int = 1 << 26) -> None:
        self.buffer = bytearray()
        self.max_payload = max_payload

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def next_frame(self) -> Frame | None:
        """Return the next complete frame, or ``None`` when more bytes are needed."""
        buf = self.buffer
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        masked = bool(b1 & 0x80)
        length = b1 & 0x7F
        pos = 2
        encoding: LengthEncoding = 7
        if length == 126:
            if len(buf) < 4:
                return None
            (length,) = struct.unpack_from("!H", buf, 2)
            pos, encoding = 4, 16
        elif length == 127:
            if len(buf) < 10:
                return None
            (length,) = struct.unpack_from("!Q", buf, 2)
            pos, encoding = 10, 64
        if length > self.max_payload:
            raise ValueError(f"frame declares {length} bytes, over the test parser's limit")
        mask_key = None
        if masked:
            if len(buf) < pos + 4:
                return None
            mask_key = bytes(buf[pos : pos + 4])
            pos += 4
        if len(buf) < pos + length:
            return None
        payload = bytes(buf[pos : pos + length])
        del buf[: pos + length]
        if mask_key is not None:
            payload = mask_bytes(payload, mask_key)
        return Frame(
            fin=bool(b0 & 0x80),
            rsv1=bool(b0 & 0x40),
            rsv2=bool(b0 & 0x20),
            rsv3=bool(b0 & 0x10),
            opcode=b0 & 0x0F,
            masked=masked,
            payload=payload,
            mask_key=mask_key,
            length_encoding=encoding,
        )

    def frames(self) -> list[Frame]:
        """Return all complete frames buffered so far."""
        out = []
        while (frame := self.next_frame()) is not None:
            out.append(frame)
        return out


def _parse_headers(lines: Sequence[bytes]) -> list[tuple[str, str]]:
    headers = []
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep:
            raise ValueError(f"malformed header line: {line!r}")
        headers.append((name.decode("latin-1").strip(), value.decode("latin-1").strip()))
    return headers


def parse_http_head(raw: bytes) -> tuple[bytes, list[tuple[str, str]]]:
    """Split an HTTP head (ending with an empty line) into its start line and headers."""
    lines = raw.split(b"\r\n")
    while lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise ValueError("empty HTTP head")
    return lines[0], _parse_headers(lines[1:])


class _Headers:
    """Case-insensitive look-up helpers over a ``headers`` list of ``(name, value)``."""

    headers: list[tuple[str, str]]

    def get_all(self, name: str) -> list[str]:
        """All values of header ``name`` (case-insensitive), in order."""
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header(self, name: str) -> str | None:
        """The only value of header ``name``; ``None`` when absent; error when repeated."""
        values = self.get_all(name)
        if len(values) > 1:
            raise AssertionError(f"header {name} appears {len(values)} times: {values}")
        return values[0] if values else None

    def has_token(self, name: str, token: str) -> bool:
        """Whether comma-separated header ``name`` contains ``token`` (case-insensitive)."""
        return any(
            t.strip().lower() == token.lower() for v in self.get_all(name) for t in v.split(",")
        )


@dataclass
class HTTPResponse(_Headers):
    """A parsed HTTP response head (and body, when it had a ``Content-Length``)."""

    status_code: int
    reason: str
    headers: list[tuple[str, str]]
    raw: bytes
    """The head exactly as received, including the final empty line."""
    version: str = "HTTP/1.1"
    body: bytes = b""

    @classmethod
    def parse(cls, raw: bytes) -> HTTPResponse:
        start, headers = parse_http_head(raw)
        parts = start.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ValueError(f"malformed status line: {start!r}")
        reason = parts[2] if len(parts) > 2 else ""
        return cls(int(parts[1]), reason, headers, raw, version=parts[0])


@dataclass
class HTTPRequest(_Headers):
    """A parsed HTTP request head."""

    method: str
    path: str
    version: str
    headers: list[tuple[str, str]]
    raw: bytes
    """The head exactly as received, including the final empty line."""

    @classmethod
    def parse(cls, raw: bytes) -> HTTPRequest:
        start, headers = parse_http_head(raw)
        parts = start.decode("latin-1").split(" ")
        if len(parts) != 3:
            raise ValueError(f"malformed request line: {start!r}")
        return cls(parts[0], parts[1], parts[2], headers, raw)


class PeerClosed(EOFError):
    """The peer closed the connection before a complete HTTP head arrived."""

    def __init__(self, partial: bytes) -> None:
        super().__init__(f"connection closed after {len(partial)} bytes of HTTP head")
        self.partial = partial


# --------------------------------------------------------------------------------------------
# Connections
# --------------------------------------------------------------------------------------------


class RawConnection:
    """One side of a TCP (or TLS) connection, with frame and HTTP helpers.

    Everything received is kept in :attr:`received` (the raw log); bytes not consumed yet wait
    in :attr:`parser`'s buffer. Reading stops at EOF, which includes a connection reset
    (:attr:`reset` is then ``True``) and TLS errors such as a missing ``close_notify``.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        default_mask: bytes | None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.default_mask = default_mask
        self.parser = FrameParser()
        self.received = bytearray()
        self.eof = False
        self.reset = False
        self.read_error: BaseException | None = None

    # -- low level ------------------------------------------------------------------------

    @property
    def transport(self) -> asyncio.Transport:
        # A cast, not an isinstance check: uvloop's transports don't subclass it.
        return cast(asyncio.Transport, self.writer.transport)

    async def _read_more(self) -> bool:
        """Read one chunk into the parser buffer; ``False`` at EOF. Call under a timeout."""
        if self.eof:
            return False
        try:
            data = await self.reader.read(65536)
        except (ConnectionResetError, BrokenPipeError) as exc:
            self.reset, self.read_error, data = True, exc, b""
        except OSError as exc:  # includes ssl.SSLError
            self.read_error, data = exc, b""
        if not data:
            self.eof = True
            return False
        self.received += data
        self.parser.feed(data)
        return True

    async def send(self, data: bytes, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Write raw bytes and wait (bounded) until the transport buffer drains."""
        self.writer.write(data)
        async with asyncio.timeout(timeout):
            await self.writer.drain()

    async def send_chopped(
        self,
        data: bytes,
        chop_size: int = 1,
        delay: float = 0.0,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Write ``data`` in ``chop_size``-byte pieces, each flushed, ``delay`` seconds apart.

        TCP_NODELAY is set, so each piece leaves as its own segment in practice.
        """
        with contextlib.suppress(OSError, AttributeError):
            sock = self.writer.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(data), chop_size):
            await self.send(data[i : i + chop_size], timeout=timeout)
            if delay:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)

    async def send_frame(
        self,
        opcode: int,
        payload: bytes | str = b"",
        *,
        mask: bytes | _Default | None = _DEFAULT,
        timeout: float = DEFAULT_TIMEOUT,
        fin: bool = True,
        rsv1: bool = False,
        rsv2: bool = False,
        rsv3: bool = False,
        length_encoding: LengthEncoding | None = None,
        declared_length: int | None = None,
    ) -> None:
        """Build a frame with :func:`build_frame` and send it.

        ``mask`` defaults to the role's rule: masked with :data:`DEFAULT_MASK` for a client,
        unmasked for a server; pass ``None`` or 4 bytes to choose.
        """
        frame = build_frame(
            opcode,
            payload,
            fin=fin,
            rsv1=rsv1,
            rsv2=rsv2,
            rsv3=rsv3,
            mask=self.default_mask if isinstance(mask, _Default) else mask,
            length_encoding=length_encoding,
            declared_length=declared_length,
        )
        await self.send(frame, timeout=timeout)

    async def send_close(
        self,
        code: int | None = 1000,
        reason: bytes | str = b"",
        *,
        mask: bytes | _Default | None = _DEFAULT,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Send a close frame (``code=None`` sends an empty payload)."""
        payload = b"" if code is None else close_payload(code, reason)
        await self.send_frame(OP_CLOSE, payload, mask=mask, timeout=timeout)

    # -- receiving ------------------------------------------------------------------------

    async def recv_frame(self, timeout: float = DEFAULT_TIMEOUT) -> Frame | None:
        """Return the next frame, ``None`` at EOF; :class:`TimeoutError` when none arrives."""
        async with asyncio.timeout(timeout):
            while True:
                frame = self.parser.next_frame()
                if frame is not None:
                    return frame
                if not await self._read_more():
                    return None

    async def recv_frames_until_close(self, timeout: float = DEFAULT_TIMEOUT) -> list[Frame]:
        """Return frames up to and including a close frame, or up to EOF (then no close).

        ``timeout`` bounds the whole wait; :class:`TimeoutError` when it runs out.
        """
        frames: list[Frame] = []
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.recv_frame(timeout=timeout)
                if frame is None:
                    return frames
                frames.append(frame)
                if frame.opcode == OP_CLOSE:
                    return frames

    async def wait_eof(self, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """Return ``True`` once the peer has closed TCP (FIN or RST), ``False`` on timeout.

        Data arriving meanwhile is kept (frames can still be taken afterwards).
        """
        try:
            async with asyncio.timeout(timeout):
                while await self._read_more():
                    pass
        except TimeoutError:
            return False
        return True

    async def _read_head(self, timeout: float) -> bytes:
        async with asyncio.timeout(timeout):
            while True:
                end = self.parser.buffer.find(b"\r\n\r\n")
                if end >= 0:
                    head = bytes(self.parser.buffer[: end + 4])
                    del self.parser.buffer[: end + 4]
                    return head
                if len(self.parser.buffer) > MAX_HEAD:
                    raise ValueError("HTTP head too large for the test peer")
                if not await self._read_more():
                    raise PeerClosed(bytes(self.parser.buffer))

    async def _read_exactly(self, n: int, timeout: float) -> bytes:
        async with asyncio.timeout(timeout):
            while len(self.parser.buffer) < n:
                if not await self._read_more():
                    break
        data = bytes(self.parser.buffer[:n])
        del self.parser.buffer[:n]
        return data

    async def read_http_response(self, timeout: float = DEFAULT_TIMEOUT) -> HTTPResponse:
        """Read and parse an HTTP response head, and its body when it has a Content-Length.

        Raises :class:`PeerClosed` (with the partial bytes) when the peer closes first. Bytes
        after the head/body stay buffered, to be parsed as frames.
        """
        response = HTTPResponse.parse(await self._read_head(timeout))
        length = response.header("Content-Length")
        if length is not None and length.strip().isdigit():
            response.body = await self._read_exactly(int(length), timeout)
        return response

    async def read_http_request(self, timeout: float = DEFAULT_TIMEOUT) -> HTTPRequest:
        """Read and parse an HTTP request head (see :meth:`read_http_response`)."""
        return HTTPRequest.parse(await self._read_head(timeout))

    # -- closing --------------------------------------------------------------------------

    def _fileno(self) -> int:
        sock = self.writer.get_extra_info("socket")
        assert sock is not None, "no socket"
        fileno: int = sock.fileno()
        return fileno

    def send_below_tls(self, data: bytes) -> None:
        """Write ``data`` straight to the TCP socket, under TLS (e.g. a truncated TLS record).

        Flush earlier writes first (``await send(...)``) or the order is undefined.
        """
        os.write(self._fileno(), data)

    def shutdown_tcp(self) -> None:
        """Send a TCP FIN at once, under TLS if any (so no ``close_notify``); keep reading."""
        sock = socket.socket(fileno=os.dup(self._fileno()))
        try:
            sock.shutdown(socket.SHUT_WR)
        finally:
            sock.close()

    def half_close(self) -> None:
        """Send FIN (plain TCP only) and keep reading."""
        self.writer.write_eof()

    def close(self) -> None:
        """Close the connection gracefully (FIN; TLS ``close_notify`` first when on TLS)."""
        self.writer.close()

    def abort(self) -> None:
        """Drop the connection at once, discarding unsent data."""
        self.transport.abort()

    def reset_connection(self) -> None:
        """Abort with a TCP RST (SO_LINGER 0), like a crashed peer; no TLS ``close_notify``."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    async def wait_closed(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait (bounded) for our side of the transport to be closed."""
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(timeout):
                await self.writer.wait_closed()


class RawClient(RawConnection):
    """A raw client. Frames it sends are masked with :data:`DEFAULT_MASK` unless told otherwise.

    Use ``async with await RawClient.open(...) as c:`` or call :meth:`close` yourself.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        host: str,
        port: int,
    ) -> None:
        super().__init__(reader, writer, default_mask=DEFAULT_MASK)
        self.host = host
        self.port = port
        self.key: str | None = None
        self.response: HTTPResponse | None = None

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        ssl: ssl_module.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        receive_buffer: int | None = None,
    ) -> RawClient:
        """Connect (and complete the TLS handshake when ``ssl`` is given).

        ``receive_buffer`` sets the socket's SO_RCVBUF before it connects: TCP then offers a
        window that fits it. Shrunk after the connection exists, the buffer drops segments
        that the window let through, window updates riding on them included, and two peers
        that both stopped reading can stall each other for seconds."""
        sock = None
        if receive_buffer is not None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            sock.setblocking(False)
        async with asyncio.timeout(timeout):
            if sock is not None:
                await asyncio.get_running_loop().sock_connect(sock, (host, port))
                reader, writer = await asyncio.open_connection(
                    sock=sock,
                    ssl=ssl,
                    server_hostname=server_hostname if ssl is not None else None,
                )
            else:
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    ssl=ssl,
                    server_hostname=server_hostname if ssl is not None else None,
                )
        return cls(reader, writer, host=host, port=port)

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()

    @property
    def expected_accept(self) -> str:
        """The ``Sec-WebSocket-Accept`` a correct server answers to our key."""
        assert self.key is not None, "no handshake sent"
        return accept_key(self.key)

    async def handshake(
        self,
        path: str = "/",
        headers: HeaderSpec | None = None,
        request: bytes | None = None,
        *,
        key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> HTTPResponse:
        """Send an upgrade request and return the parsed response (whatever its status).

        By default a valid request built by :func:`build_request` (``headers`` edits it);
        when ``request`` is given, those exact bytes are sent instead.
        """
        if request is None:
            self.key = key or base64.b64encode(os.urandom(16)).decode("ascii")
            request = build_request(
                path, host=f"{self.host}:{self.port}", key=self.key, headers=headers
            )
        await self.send(request, timeout=timeout)
        self.response = await self.read_http_response(timeout)
        return self.response


class ServerConn(RawConnection):
    """A connection accepted by :class:`RawServer`; frames are sent unmasked by default."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer, default_mask=None)
        self.request: HTTPRequest | None = None

    async def read_request(self, timeout: float = DEFAULT_TIMEOUT) -> HTTPRequest:
        """Read the client's HTTP request head."""
        self.request = await self.read_http_request(timeout)
        return self.request

    async def accept(
        self,
        request: HTTPRequest | None = None,
        *,
        extra_headers: HeaderSpec | None = None,
        status_line: bytes = b"HTTP/1.1 101 Switching Protocols",
        body: bytes = b"",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Send a response to ``request`` (default: the last one read; read one if none).

        By default a correct ``101``; ``extra_headers`` edits the default headers (see
        :data:`HeaderSpec`, e.g. ``{"Sec-WebSocket-Accept": "wrong"}`` or ``{"Upgrade": None}``)
        and ``status_line``/``body`` replace the rest.
        """
        if request is None:
            request = self.request or await self.read_request(timeout)
        key = request.get_all("Sec-WebSocket-Key")
        response = build_response(
            key[0] if key else None, status_line=status_line, headers=extra_headers, body=body
        )
        await self.send(response, timeout=timeout)

    async def handshake(self, timeout: float = DEFAULT_TIMEOUT) -> HTTPRequest:
        """Read a request and accept it with a correct ``101``; return the request."""
        request = await self.read_request(timeout)
        await self.accept(request, timeout=timeout)
        return request


Script = Callable[[ServerConn], Awaitable[None]]


class RawServer:
    """A raw server on ``127.0.0.1``, port chosen by the OS, running ``script`` per connection.

    ::

        async def script(conn: ServerConn) -> None:
            await conn.handshake()
            await conn.send_frame(OP_TEXT, "hi")

        async with RawServer(script) as srv:
            ...  # connect to srv.url

    Exceptions raised by scripts are collected in :attr:`errors` and the first one is re-raised
    when the block exits (unless the block itself raised). On exit, scripts get ``exit_timeout``
    seconds to finish, then are cancelled and :class:`TimeoutError` is raised.
    """

    def __init__(
        self,
        script: Script,
        *,
        ssl: ssl_module.SSLContext | None = None,
        host: str = "127.0.0.1",
        exit_timeout: float = DEFAULT_TIMEOUT,
        receive_buffer: int | None = None,
    ) -> None:
        self.script = script
        self.receive_buffer = receive_buffer
        self.ssl = ssl
        self.host = host
        self.exit_timeout = exit_timeout
        self.port = 0
        self.connections: list[ServerConn] = []
        self.errors: list[BaseException] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._connected = asyncio.Event()

    @property
    def url(self) -> str:
        """``ws://host:port`` (``wss://`` with TLS), without a path."""
        scheme = "wss" if self.ssl is not None else "ws"
        return f"{scheme}://{self.host}:{self.port}"

    async def _on_connect(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        conn = ServerConn(reader, writer)
        self.connections.append(conn)
        self._connected.set()
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.script(conn)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            self._tasks.discard(task)
            conn.abort()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._on_connect, self.host, 0, ssl=self.ssl)
        if self.receive_buffer is not None:
            # Accepted sockets inherit it, and offer a window that fits it from the SYN on
            # (see RawClient.open).
            for listener in self._server.sockets:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def wait_connection(self, timeout: float = DEFAULT_TIMEOUT) -> ServerConn:
        """Wait (bounded) for the first connection and return it."""
        async with asyncio.timeout(timeout):
            await self._connected.wait()
        return self.connections[0]

    async def wait_scripts(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait (bounded) until every running script has returned."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.wait(set(self._tasks))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        timed_out = False
        if exc is None:
            try:
                await self.wait_scripts(self.exit_timeout)
            except TimeoutError:
                timed_out = True
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.exit_timeout)
        for conn in self.connections:
            conn.abort()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.exit_timeout):
                await self._server.wait_closed()
        if exc is None:
            if self.errors:
                raise self.errors[0]
            if timed_out:
                raise TimeoutError("a RawServer script was still running at exit")
