"""Unpredictable bytes for masking keys and handshake keys, drawn from the system in bulk.

RFC 6455 §5.3 asks a client for a fresh masking key per frame, and §10.3 for one the
application can't predict: bytes from a cryptographic source, the operating system's
(:func:`os.urandom`). Asking the system for 4 bytes per frame costs a system call per
frame; :func:`random_bytes` asks for :data:`POOL_SIZE` bytes at a time and hands them
out in order, each byte once.

Each thread draws from a pool of its own, so that threads never hand out the same bytes
and need no lock. A child process made by :func:`os.fork` starts with empty pools: it
copies its parent's memory, and the bytes the parent has yet to hand out must not be
handed out again by the child.
"""

from __future__ import annotations

import os
import threading

__all__ = ["POOL_SIZE", "random_bytes"]

#: Bytes drawn from the system at a time: masking keys for 1,024 frames.
POOL_SIZE = 4096


class _Pool(threading.local):
    """One thread's bytes: those before ``offset`` were handed out."""

    buffer = b""
    offset = 0


_pool = _Pool()


def _forget_pools() -> None:
    """In a fork's child: drop every pool copied from the parent."""
    global _pool
    _pool = _Pool()


os.register_at_fork(after_in_child=_forget_pools)


def random_bytes(size: int) -> bytes:
    """``size`` bytes from the system's cryptographic source, none of them handed out
    before, in this thread or any other, in this process or its parent."""
    pool = _pool
    offset = pool.offset
    end = offset + size
    buffer = pool.buffer
    if end > len(buffer):
        if size > POOL_SIZE // 4:
            # Large requests gain nothing from the pool and would drain it.
            return os.urandom(size)
        # The bytes left over are dropped rather than joined to the new ones: one copy
        # less, and the pool never hands them out.
        buffer = pool.buffer = os.urandom(POOL_SIZE)
        offset = 0
        end = size
    pool.offset = end
    return buffer[offset:end]
