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

On asyncio's own loops, no loop timer at all: a thread of the process sleeps until the end
of the next slot of any loop and then wakes that loop (``call_soon_threadsafe``). asyncio's
loop does more at every turn as soon as any timer is on its heap -- it works out how long
to wait and checks the heap again after the wait, about 5,000 instructions a turn on
CPython 3.11 -- and with keepalive on, a timer always is: a server answering one message
at a time would pay that for each message. Other loops (uvloop, whose timers are compiled,
or a loop with a clock of its own) keep a loop timer per slot. Either way, a pending slot
holds its loop's timers until it ends.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["CoarseTimers", "coarse_timers"]

_Owner = TypeVar("_Owner")
_logger = logging.getLogger("wsio")

# Slots are 2**-10 s (about 1 ms) to 1 s long, a power of two: a slot's end is then exact
# in floating point, and deadlines of different lengths can share a slot.
_SHORTEST_SLOT, _LONGEST_SLOT = 2.0**-10, 1.0


class CoarseTimers:
    """The coarse timers of one event loop, at most one per owner (a connection)."""

    __slots__ = ("__weakref__", "_slots", "_woken", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # The end of each slot (in the loop's time) -> the owners whose deadline falls in
        # it, and what to call with each.
        self._slots: dict[float, dict[Any, Callable[[Any], None]]] = {}
        # Whether the slot thread wakes the loop: its clock is time.monotonic(), asyncio's.
        self._woken = getattr(type(loop), "time", None) is asyncio.BaseEventLoop.time

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
            if not (self._woken and _SLOT_THREAD.wake_at(slot, self)):
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


class _SlotThread:
    """The thread that wakes asyncio's loops at the end of their slots, started with the
    first slot; one for the process, whatever the number of loops and threads."""

    def __init__(self) -> None:
        self._reset()
        if hasattr(os, "register_at_fork"):
            # A child of fork() has none of the parent's threads: it starts its own.
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        old_slots: list[tuple[float, int, CoarseTimers]] | None = getattr(self, "_slots", None)
        if old_slots is not None:
            # In a child of fork(), the parent's thread is gone but its frame may still
            # hold the list: the parent's loops and connections mustn't live on through it.
            old_slots.clear()
        self._condition = threading.Condition(threading.Lock())
        # (end of a slot, order of arrival, the timers it belongs to). A pending slot holds
        # its timers, as a loop timer would: connections opened one after the other share
        # them while any of their slots is pending, even when none is open in between. So
        # a closed loop, and the connections still armed in it, live until its last slot
        # ends: at most the longest deadline (ping_interval, ping_timeout, open_timeout)
        # and a second.
        self._slots: list[tuple[float, int, CoarseTimers]] = []
        self._arrivals = itertools.count()
        self._thread: threading.Thread | None = None

    def wake_at(self, slot: float, timers: CoarseTimers) -> bool:
        """Call ``timers._fire(slot)`` in its loop once ``time.monotonic()`` reaches
        ``slot``, holding ``timers`` until then; ``False`` if no thread can be started (the
        caller uses a loop timer)."""
        with self._condition:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="wsio-timers", daemon=True)
                try:
                    thread.start()
                except RuntimeError:  # a platform without threads
                    return False
                self._thread = thread
            heapq.heappush(self._slots, (slot, next(self._arrivals), timers))
            if self._slots[0][0] == slot:
                # The earliest slot now: the thread sleeps until then instead.
                self._condition.notify()
        return True

    def _run(self) -> None:
        condition, slots = self._condition, self._slots
        while True:
            with condition:
                while not slots or slots[0][0] > time.monotonic():
                    condition.wait(slots[0][0] - time.monotonic() if slots else None)
                slot, _, timers = heapq.heappop(slots)
            try:
                timers.loop.call_soon_threadsafe(timers._fire, slot)
            except RuntimeError:
                pass  # a closed loop: none of its callbacks run anymore
            except Exception:
                # The thread must go on for the other loops: this one's slot is lost.
                _logger.exception("the slot thread could not wake a loop")
            # Nothing of a loop held while the thread sleeps.
            del timers


_SLOT_THREAD = _SlotThread()
_thread_local = threading.local()


def coarse_timers(loop: asyncio.AbstractEventLoop) -> CoarseTimers:
    """The coarse timers of ``loop``, shared by the connections that it runs in this thread."""
    reference: weakref.ref[CoarseTimers] | None = getattr(_thread_local, "coarse_timers", None)
    timers = None if reference is None else reference()
    if timers is None or timers.loop is not loop:
        # A new loop in this thread (asyncio.run again, say). Connections keep the timers
        # they were created with, so a switch back and forth loses nothing, only sharing.
        # This thread holds them weakly: they, their loop and the connections armed in
        # them go once neither a connection nor a pending slot needs them.
        timers = CoarseTimers(loop)
        _thread_local.coarse_timers = weakref.ref(timers)
    return timers
