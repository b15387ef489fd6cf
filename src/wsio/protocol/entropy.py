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

:func:`python_random_bytes` is the reference; :func:`random_bytes` is the C version of
:mod:`wsio._speedups` when it is built, which does the same without a frame of Python: a
client draws a key for every frame it sends.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable

from .._accelerator import speedups

__all__ = ["POOL_SIZE", "python_random_bytes", "random_bytes"]

#: Bytes drawn from the system at a time: masking keys for 1,024 frames.
POOL_SIZE = 4096

# A pool, cut into 4-byte keys by C code as they are taken.
_split = struct.Struct("4s").iter_unpack


class _Pool(threading.local):
    """One thread's pool: ``next_key`` takes its next key, as a 1-tuple, and raises
    :class:`StopIteration` once they are all taken."""

    def __init__(self) -> None:
        self.next_key: Callable[[], tuple[bytes]] = iter(()).__next__


_pool = _Pool()


def _forget_pools() -> None:
    """In a fork's child: drop every pool copied from the parent."""
    global _pool
    _pool = _Pool()


os.register_at_fork(after_in_child=_forget_pools)


def python_random_bytes(size: int) -> bytes:
    """``size`` bytes from the system's cryptographic source, none of them handed out
    before, in this thread or any other, in this process or its parent."""
    if size == 4:
        # A masking key, for every frame a client sends: one call into C. Taking a key is
        # a single step, so that even a signal handler that sends a frame in between
        # can't be handed the same one.
        try:
            return _pool.next_key()[0]
        except StopIteration:
            pass
    if size > POOL_SIZE // 4:
        # Large requests gain nothing from the pool and would drain it.
        return os.urandom(size)
    pieces = []
    for _ in range(-(-size // 4)):
        try:
            pieces.append(_pool.next_key()[0])
        except StopIteration:
            next_key = _pool.next_key = _split(os.urandom(POOL_SIZE)).__next__
            pieces.append(next_key()[0])
    return b"".join(pieces)[:size]


_speedups = speedups()
# A client draws a key for every frame it sends: the C version saves about 1,300
# instructions per key (python -m benchmarks.instructions --only client --pure random_bytes).
random_bytes = python_random_bytes if _speedups is None else _speedups.random_bytes
