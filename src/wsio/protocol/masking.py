"""Masking of frame payloads (RFC 6455 §5.3).

Every frame sent by a client is masked with a fresh 4-byte key; the payload is XORed with
the key repeated. Unmasking is the same operation. Payloads arrive in pieces, so the key
can be applied from any offset into the payload.

:func:`apply_mask`, :func:`join_masked` and :class:`PayloadBuffer` are the C versions from
:mod:`wsio._speedups` when that extension is built and the environment variable
``WSIO_NO_SPEEDUPS`` is unset or empty; otherwise they are :func:`python_apply_mask`,
:func:`python_join_masked` and :class:`PythonPayloadBuffer`, the reference.
:data:`SPEEDUPS` tells which.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._accelerator import speedups

__all__ = [
    "MASKED_PIECE",
    "SPEEDUPS",
    "MaskedPieces",
    "PayloadBuffer",
    "PythonPayloadBuffer",
    "apply_mask",
    "byte_view",
    "join_masked",
    "python_apply_mask",
    "python_join_masked",
]


def python_apply_mask(data: bytes | bytearray | memoryview, mask: bytes, offset: int = 0) -> bytes:
    """XOR ``data`` with ``mask`` repeated, as if ``data`` started ``offset`` bytes into the
    payload (RFC 6455 §5.3: octet i is XORed with mask octet i mod 4)."""
    length = len(data)
    if length == 0:
        return b""
    shift = offset & 3
    if shift:
        mask = mask[shift:] + mask[:shift]
    # Big-integer XOR runs in C over the whole buffer: the fastest pure-Python way.
    key = (mask * ((length >> 2) + 1))[:length]
    value = int.from_bytes(data, "little") ^ int.from_bytes(key, "little")
    return value.to_bytes(length, "little")


def python_join_masked(
    header: bytes | bytearray | memoryview, payload: bytes | bytearray | memoryview, mask: bytes
) -> bytes | memoryview:
    """``header``, then ``payload`` XORed with ``mask`` (§5.3): a frame a client sends, or
    a piece of one. The C version builds a large one in a buffer that it reuses once no
    view of it is left, and returns a view of it: a client that sends large messages
    allocates none of their size per message."""
    return bytes(header) + python_apply_mask(payload, mask)


def byte_view(data: bytes | bytearray | memoryview) -> memoryview:
    """A view of ``data`` indexed by byte, whatever its item size or layout (a strided or
    multi-byte view is copied), as the C code reads buffers."""
    view = memoryview(data)
    if view.format != "B" or not view.c_contiguous:
        view = memoryview(view.tobytes())
    return view


#: How much of a larger payload a client masks at a time: a multiple of 4, so that each
#: piece starts at the first octet of the masking key. Smaller pieces cost more than they
#: save: each is a write, and on loopback each write wakes the peer (with pieces of 64 or
#: 256 KiB, a client echoing 1 MiB messages spent 30-40 % more CPU per message).
MASKED_PIECE = 1024 * 1024


class MaskedPieces:
    """A frame a client sends, its ``header`` then its payload masked with ``mask`` a
    piece at a time as it is written (§5.3), rather than all at once into a copy as large
    as the payload.

    The sender holds the payload, which it had anyway, and one masked piece of
    :data:`MASKED_PIECE` bytes at most: a frame of a hundred megabytes doesn't cost a
    hundred more. ``len()`` is what is left to take.
    """

    __slots__ = ("_header", "_mask", "_offset", "_payload")

    def __init__(self, header: bytes, payload: bytes, mask: bytes) -> None:
        self._header = header
        self._payload = memoryview(payload)
        self._mask = mask
        self._offset = 0

    def __len__(self) -> int:
        return len(self._header) + len(self._payload) - self._offset

    def next_piece(self) -> bytes | memoryview:
        """The next piece of the frame, the header with the first; ``b""`` once all of it
        was taken."""
        start = self._offset
        self._offset = end = min(start + MASKED_PIECE, len(self._payload))
        header, self._header = self._header, b""
        return join_masked(header, self._payload[start:end], self._mask)


#: The first allocation of a :class:`PayloadBuffer`, at most: it grows with what arrives.
PAYLOAD_INITIAL = 64 * 1024


class PythonPayloadBuffer:
    """The payload of a frame of a declared length, unmasked with ``mask`` (if given) as
    pieces are written (§5.3), then handed over as bytes by :meth:`finish`.

    The parser streams large frames through it; the C version writes each piece straight
    into the bytes object it hands over, so that a payload is copied once. An I/O layer
    may read the stream straight into it instead: :meth:`prepare`, then :meth:`commit`.

    It grows with what arrives, to four times what came plus :data:`PAYLOAD_INITIAL`,
    never to the declared length at once: a peer must send a quarter of what it makes us
    allocate (less :data:`PAYLOAD_INITIAL`). It does not grow while a view from
    :meth:`prepare` exists (``BufferError``).
    """

    __slots__ = ("_data", "_filled", "_length", "_mask")

    def __init__(self, length: int, mask: bytes | bytearray | memoryview | None = None) -> None:
        if length < 0:
            raise ValueError("PayloadBuffer() length must be >= 0")
        if mask is not None:
            mask = bytes(mask)  # a copy: the caller may reuse its buffer
            if len(mask) != 4:
                raise ValueError(f"PayloadBuffer() mask must be 4 bytes long, not {len(mask)}")
        self._length = length
        self._mask = mask
        self._filled = 0
        self._data: bytearray | None = bytearray(self._capacity(0))

    def _buffer(self) -> bytearray:
        if self._data is None:
            raise ValueError("PayloadBuffer is finished")
        return self._data

    def _capacity(self, received: int) -> int:
        """The capacity once ``received`` bytes of the payload have come."""
        return min(self._length, 4 * received + PAYLOAD_INITIAL)

    @staticmethod
    def _grow(buffer: bytearray, capacity: int) -> None:
        # A bytearray with a view can't be resized: it raises BufferError itself.
        buffer.extend(bytes(capacity - len(buffer)))

    @property
    def remaining(self) -> int:
        """Bytes still expected."""
        return 0 if self._data is None else self._length - self._filled

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append the start of ``data``, unmasked, up to the declared length; return how
        many bytes were taken."""
        buffer = self._buffer()
        view = byte_view(data)
        start = self._filled
        piece = view[: self._length - start]
        end = start + len(piece)
        if end > len(buffer):
            self._grow(buffer, self._capacity(end))
        buffer[start:end] = piece if self._mask is None else apply_mask(piece, self._mask, start)
        self._filled = end
        return len(piece)

    def prepare(self) -> memoryview:
        """A writable view of the part of the payload not yet filled, grown first if less
        than half is free (at least twice as large: large reads, few reallocations): where
        the next bytes of the stream may be read in place; :meth:`commit` then counts the
        first ``nbytes``. Empty once the payload is complete."""
        buffer = self._buffer()
        if self._filled > len(buffer) // 2 and len(buffer) < self._length:
            self._grow(buffer, self._capacity(self._filled))
        return memoryview(buffer)[self._filled :]

    def commit(self, nbytes: int) -> None:
        """Count the first ``nbytes`` of the last :meth:`prepare` view as written,
        unmasking them in place."""
        buffer = self._buffer()
        start = self._filled
        if not 0 <= nbytes <= len(buffer) - start:
            raise ValueError(f"commit() of {nbytes} bytes, with {len(buffer) - start} prepared")
        end = start + nbytes
        if self._mask is not None:
            buffer[start:end] = apply_mask(buffer[start:end], self._mask, start)
        self._filled = end

    def finish(self) -> bytes:
        """The complete payload; only once, and only when complete."""
        buffer = self._buffer()
        if self._filled != self._length:
            raise ValueError(f"PayloadBuffer has {self._filled} of {self._length} bytes")
        self._data = None
        return bytes(buffer)


# What the C versions save, in instructions on a server echoing messages (python -m
# benchmarks.instructions --pure NAME): apply_mask, which the other C pieces don't need,
# 49,000 per 1 KiB text message that comes in two reads, 2.6 M per 64 KiB one, 3,600 per
# handshake (its close frame); PayloadBuffer 184,000 per 64 KiB binary message in two
# reads.
_speedups = speedups()
#: Whether :func:`apply_mask`, :func:`join_masked` and :class:`PayloadBuffer` are the C
#: implementations.
SPEEDUPS = _speedups is not None
apply_mask = python_apply_mask if _speedups is None else _speedups.apply_mask
join_masked = python_join_masked if _speedups is None else _speedups.join_masked
PayloadBuffer = PythonPayloadBuffer
# The type checker knows the Python class only; _speedups.pyi declares the same API.
if not TYPE_CHECKING and _speedups is not None:
    PayloadBuffer = _speedups.PayloadBuffer
