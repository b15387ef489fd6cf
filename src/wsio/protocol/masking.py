"""Masking of frame payloads (RFC 6455 §5.3).

Every frame sent by a client is masked with a fresh 4-byte key; the payload is XORed with
the key repeated. Unmasking is the same operation. Payloads arrive in pieces, so the key
can be applied from any offset into the payload.

:func:`apply_mask` is the C version from :mod:`wsio._speedups` when that extension is built
and the environment variable ``WSIO_NO_SPEEDUPS`` is unset or empty; otherwise it is
:func:`python_apply_mask`, the reference. :data:`SPEEDUPS` tells which.
"""

from __future__ import annotations

from .._accelerator import speedups

__all__ = ["SPEEDUPS", "apply_mask", "python_apply_mask"]


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


_speedups = speedups()
#: Whether :func:`apply_mask` is the C implementation.
SPEEDUPS = _speedups is not None
apply_mask = python_apply_mask if _speedups is None else _speedups.apply_mask
