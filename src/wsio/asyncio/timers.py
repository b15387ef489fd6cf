"""Coarse timers: deadlines that are nearly always cancelled long before they fall due.

Every connection has one such deadline at a time: the end of the opening handshake
(``open_timeout``), then the next keepalive ping (``ping_interval``) or its pong
(``ping_timeout``). A loop timer each costs a :class:`asyncio.TimerHandle`, a push on the
loop's heap (compared in Python) and a cancelled entry left there until it falls due:
about 15,000 instructions per connection and deadline, a few percent of a whole
handshake. Here the deadlines of a loop share one loop timer per slot of time, and arming or
cancelling one is a dict operation.

A deadline fires at the end of its slot, late by less than 1/16 of its delay and less than a
second: a keepalive ping due in 20 s goes out within 21 s, an ``open_timeout`` of 10 s
closes the connection within 10.5 s.
"""

from __future__ import annotations

import asyncio
import math
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["CoarseTimers", "coarse_timers"]

_Owner = TypeVar("_Owner")

# Slots are 2**-10 s (about 1 ms) to 1 s long, a power of two: a slot's end is then exact
# in floating point, and deadlines of different lengths can share a slot.
_SHORTEST_SLOT, _LONGEST_SLOT = 2.0**-10, 1.0


class CoarseTimers:
    """The coarse timers of one event loop, at most one per owner (a connection)."""

    __slots__ = ("__weakref__", "_slots", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # The end of each slot (in the loop's time) -> the owners whose deadline falls in
        # it, and what to call with each.
        self._slots: dict[float, dict[Any, Callable[[Any], None]]] = {}

    def call_at(self, when: float, owner: _Owner, callback: Callable[[_Owner], None]) -> float:
        """Call ``callback(owner)`` at ``when`` (the loop's time), or slightly later (see
        the module); return the slot, for :meth:`cancel`. ``owner`` has at most one timer.

        ``callback`` is called with ``owner`` rather than bound to it: a function of the
        owner's class is shared, where a bound method would cost each owner 64 bytes for
        as long as its timer is armed.
        """
        # The slot's length: the largest power of two at most delay / 16, within bounds.
        delay = when - self.loop.time()
        if delay >= _LONGEST_SLOT * 16:
            length = _LONGEST_SLOT
        elif delay <= _SHORTEST_SLOT * 16:
            length = _SHORTEST_SLOT
        else:
            # delay is in [2**(e - 1), 2**e): delay / 16 in [2**(e - 5), 2**(e - 4)).
            length = math.ldexp(1.0, math.frexp(delay)[1] - 5)
        slot = math.ceil(when / length) * length
        callbacks = self._slots.get(slot)
        if callbacks is None:
            self.loop.call_at(slot, self._fire, slot)
            callbacks = self._slots[slot] = {}
        callbacks[owner] = callback
        return slot

    def cancel(self, slot: float, owner: object) -> None:
        """Cancel the timer of ``owner`` in ``slot``; nothing if it already fired."""
        callbacks = self._slots.get(slot)
        if callbacks is not None:
            callbacks.pop(owner, None)

    def _fire(self, slot: float) -> None:
        callbacks = self._slots[slot]
        # The slot stays registered while it fires: a callback may cancel another timer of
        # the slot, or arm one that falls in it (a deadline already due), and both apply.
        try:
            while callbacks:
                owner, callback = callbacks.popitem()
                try:
                    callback(owner)
                except Exception as exc:
                    # One failing callback mustn't stop the other connections' deadlines.
                    self.loop.call_exception_handler(
                        {"message": "coarse timer callback failed", "exception": exc}
                    )
        finally:
            if callbacks:
                # A BaseException (KeyboardInterrupt...) cut the slot short: the rest fire
                # at the loop's next turn, if it runs again.
                self.loop.call_soon(self._fire, slot)
            else:
                del self._slots[slot]


_thread_local = threading.local()


def coarse_timers(loop: asyncio.AbstractEventLoop) -> CoarseTimers:
    """The coarse timers of ``loop``, shared by the connections that it runs in this thread."""
    reference: weakref.ref[CoarseTimers] | None = getattr(_thread_local, "coarse_timers", None)
    timers = None if reference is None else reference()
    if timers is None or timers.loop is not loop:
        # A new loop in this thread (asyncio.run again, say). Connections keep the timers
        # they were created with, so a switch back and forth loses nothing, only sharing.
        # The thread holds them weakly: they, their loop and the connections armed in
        # them go once neither a connection nor a pending slot needs them.
        timers = CoarseTimers(loop)
        _thread_local.coarse_timers = weakref.ref(timers)
    return timers
