"""Choice of the optional C accelerator, :mod:`wsio._speedups`, made once at import time."""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["speedups"]


def speedups() -> ModuleType | None:
    """The accelerator, or ``None`` when it isn't built (no C compiler at install time) or
    the environment variable ``WSIO_NO_SPEEDUPS`` is set to a non-empty value, which
    selects the pure-Python reference code, e.g. to test it."""
    if os.environ.get("WSIO_NO_SPEEDUPS"):
        return None
    try:
        from wsio import _speedups
    except ImportError:
        return None
    return _speedups
