"""Checks of the limits and timeouts that the caller configures, written once for the
core and both I/O layers.

A bad value is refused where it is given, with a message naming the option: a wrong
type raises :class:`TypeError`, a value out of range :class:`~wsio.InvalidArgument`.
Left unchecked, it would fail much later, deep inside the first read or the first
timer, far from the mistake. ``bool`` is refused wherever a number is expected: it is
an ``int`` to Python, but ``max_size=True`` is never what anyone means.
"""

from __future__ import annotations

import math

from ..exceptions import InvalidArgument

__all__ = ["check_count", "check_max_size", "check_timeout"]


def check_count(name: str, value: object, minimum: int, disabled: str | None = None) -> None:
    """Check that option ``name`` is an ``int`` of at least ``minimum``; with
    ``disabled``, ``None`` is allowed too, and means that.

    :raises TypeError: ``value`` isn't an ``int`` (nor ``None`` when allowed).
    :raises InvalidArgument: ``value`` is below ``minimum``.
    """
    if value is None and disabled is not None:
        return
    alternative = "" if disabled is None else f", or None for {disabled}"
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int{alternative}, not {type(value).__name__}")
    if value < minimum:
        raise InvalidArgument(f"{name} must be at least {minimum}{alternative}, not {value}")


def check_max_size(max_size: object) -> None:
    """Check the size limit on incoming messages: 1 byte or more, or ``None``.

    0 is refused rather than taken as a limit that fails every message but empty ones:
    no application wants that, and other libraries read 0 as "no limit", which wsio
    spells ``None``.

    :raises TypeError: ``max_size`` isn't an ``int`` or ``None``.
    :raises InvalidArgument: ``max_size`` is below 1.
    """
    check_count("max_size", max_size, 1, "no limit")


def check_timeout(name: str, value: object) -> None:
    """Check that timeout ``name`` is a finite number of seconds above 0, or ``None``,
    which turns it off.

    0 or less would expire at once, and infinity is spelled ``None``: threads can't
    wait for an infinite time.

    :raises TypeError: ``value`` isn't an ``int``, a ``float`` or ``None``.
    :raises InvalidArgument: ``value`` isn't finite and above 0.
    """
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(value).__name__}")
    if not (value > 0 and math.isfinite(value)):
        raise InvalidArgument(
            f"{name} must be a finite number of seconds above 0 or None, not {value}"
        )
