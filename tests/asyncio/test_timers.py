"""wsio.asyncio.timers: the coarse timers of open_timeout and keepalive."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from wsio.asyncio import timers as timers_module
from wsio.asyncio.timers import CoarseTimers, coarse_timers

T = 5.0
#: Each test so marked runs with the slots woken by the slot thread, then by a loop timer.
BOTH_WAKE_UPS = pytest.mark.parametrize("woken", [True, False], ids=["slot thread", "loop timer"])


class Owner:
    """A connection, as far as the timers can tell."""


async def wait_until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(T):
        while not predicate():
            await asyncio.sleep(0.001)


@BOTH_WAKE_UPS
@pytest.mark.parametrize("delay", [0.0, 0.004, 0.05, 0.3])
async def test_fires_after_its_deadline_late_by_at_most_a_16th(delay: float, woken: bool) -> None:
    loop = asyncio.get_running_loop()
    timers = CoarseTimers(loop)
    timers._woken = woken
    fired: list[float] = []
    deadline = loop.time() + delay
    slot = timers.call_at(deadline, Owner(), lambda _: fired.append(loop.time()))
    # The slot ends at or after the deadline, by less than the slot's longest length.
    assert deadline <= slot <= deadline + max(delay / 16, 2**-10)
    await wait_until(lambda: bool(fired))
    assert fired[0] >= slot - 0.001  # the loop runs timers up to its clock's resolution early


async def test_long_deadlines_are_late_by_less_than_a_second() -> None:
    loop = asyncio.get_running_loop()
    timers = CoarseTimers(loop)
    owner = Owner()
    for delay in (16.0, 20.0, 3600.0):
        deadline = loop.time() + delay
        slot = timers.call_at(deadline, owner, lambda _: None)
        assert deadline <= slot < deadline + 1
        timers.cancel(slot, owner)


@BOTH_WAKE_UPS
async def test_cancelled_timer_never_fires(woken: bool) -> None:
    loop = asyncio.get_running_loop()
    timers = CoarseTimers(loop)
    timers._woken = woken
    owner, other = Owner(), Owner()
    fired: list[Owner] = []
    deadline = loop.time() + 0.02
    slot = timers.call_at(deadline, owner, fired.append)
    timers.call_at(deadline, other, fired.append)
    timers.cancel(slot, owner)
    await wait_until(lambda: bool(fired))
    await asyncio.sleep(0.05)
    assert fired == [other]
    # Cancelling after it fired is harmless.
    timers.cancel(slot, other)


@pytest.fixture
async def wake_ups(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The wake-ups that the timers ask for, of the running loop (its ``call_at``) or of
    the slot thread: the end of each slot."""
    loop = asyncio.get_running_loop()
    asked: list[float] = []
    call_at, wake_at = loop.call_at, timers_module._SLOT_THREAD.wake_at

    def counting_call_at(when: float, callback: Callable[..., Any], *args: Any) -> Any:
        asked.append(when)
        return call_at(when, callback, *args)

    def counting_wake_at(slot: float, timers: CoarseTimers) -> bool:
        asked.append(slot)
        return wake_at(slot, timers)

    monkeypatch.setattr(loop, "call_at", counting_call_at)
    monkeypatch.setattr(timers_module._SLOT_THREAD, "wake_at", counting_wake_at)
    return asked


@BOTH_WAKE_UPS
async def test_deadlines_of_a_slot_share_one_wake_up(woken: bool, wake_ups: list[float]) -> None:
    loop = asyncio.get_running_loop()
    timers = CoarseTimers(loop)
    timers._woken = woken
    now = loop.time()
    slots = {Owner(): 0.0 for _ in range(1000)}
    for owner in slots:
        slots[owner] = timers.call_at(now + 20, owner, lambda _: None)
    # 1000 deadlines within a few milliseconds, 1 s slots: one wake-up, two at a boundary.
    assert len(set(slots.values())) == len(wake_ups) <= 2
    for owner, slot in slots.items():
        timers.cancel(slot, owner)


@BOTH_WAKE_UPS
async def test_connections_one_after_the_other_share_the_timers(
    woken: bool, wake_ups: list[float]
) -> None:
    """A pending slot holds its timers: the next connection, opened once the last one has
    gone, arms its deadline in the same timers and the same slot, with no wake-up of its
    own."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    first = coarse_timers(loop)
    first._woken = woken
    owner = Owner()
    slot = first.call_at(deadline, owner, lambda _: None)
    first.cancel(slot, owner)
    reference = weakref.ref(first)
    del first
    gc.collect()
    second = coarse_timers(loop)
    assert second is reference()
    owner = Owner()
    assert second.call_at(deadline, owner, lambda _: None) == slot
    second.cancel(slot, owner)
    assert wake_ups == [slot]


async def test_a_failing_callback_does_not_stop_the_others() -> None:
    loop = asyncio.get_running_loop()
    timers = CoarseTimers(loop)
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))
    fired: list[int] = []
    try:
        await fire_three(timers, fired)
    finally:
        loop.set_exception_handler(None)
    assert len(errors) == 1
    assert isinstance(errors[0]["exception"], RuntimeError)


async def fire_three(timers: CoarseTimers, fired: list[int]) -> None:
    """Three deadlines in one slot; the second one's callback raises."""
    loop = timers.loop

    def fail(owner: Owner) -> None:
        raise RuntimeError("bug")

    deadline = loop.time() + 0.01
    timers.call_at(deadline, Owner(), lambda _: fired.append(1))
    timers.call_at(deadline, Owner(), fail)
    timers.call_at(deadline, Owner(), lambda _: fired.append(2))
    await wait_until(lambda: len(fired) == 2)


async def test_callbacks_may_cancel_and_arm_in_the_slot_that_fires() -> None:
    """A callback may cancel another deadline of the same slot, which then doesn't fire,
    or arm one that falls in that slot (already due), which fires with it, before the
    loop's next turn."""
    loop = asyncio.get_running_loop()
    timers = CoarseTimers(loop)
    first, second, third = Owner(), Owner(), Owner()
    fired: list[str] = []
    deadline = loop.time() + 0.01
    slots: dict[Owner, float] = {}

    def fire(me: Owner, other: Owner) -> None:
        fired.append("first" if me is first else "second")
        timers.cancel(slots[other], other)
        loop.call_soon(fired.append, "next turn")
        timers.call_at(slots[me], third, lambda _: fired.append("third"))

    slots[first] = timers.call_at(deadline, first, lambda _: fire(first, second))
    slots[second] = timers.call_at(deadline, second, lambda _: fire(second, first))
    assert slots[first] == slots[second]
    await wait_until(lambda: "next turn" in fired)
    # Whichever ran first cancelled the other.
    assert fired in (["first", "third", "next turn"], ["second", "third", "next turn"])


def test_each_loop_has_its_own_timers() -> None:
    async def current() -> CoarseTimers:
        return coarse_timers(asyncio.get_running_loop())

    async def twice() -> tuple[CoarseTimers, CoarseTimers]:
        return await current(), await current()

    first_a, first_b = asyncio.run(twice())
    assert first_a is first_b
    second, _ = asyncio.run(twice())
    assert second is not first_a
    assert second.loop is not first_a.loop


def test_timers_go_with_the_last_connection_that_uses_them() -> None:
    """Once its slots have ended, nothing keeps a loop or a connection alive through its
    timers."""

    async def armed_and_cancelled() -> weakref.ref[CoarseTimers]:
        loop = asyncio.get_running_loop()
        timers = coarse_timers(loop)
        owner = Owner()
        timers.cancel(timers.call_at(loop.time() + 0.001, owner, lambda _: None), owner)
        await wait_until(lambda: not timers._slots)  # the slot ends and fires, empty
        return weakref.ref(timers)

    reference = asyncio.run(armed_and_cancelled())
    # The slot thread lets go of them right after it woke the loop: soon, not at once.
    deadline = time.monotonic() + T
    while reference() is not None and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.001)
    assert reference() is None


def test_a_base_exception_leaves_the_rest_of_the_slot_for_the_next_turn() -> None:
    fired: list[str] = []

    def interrupt(owner: Owner) -> None:
        raise KeyboardInterrupt

    async def arm(timers: CoarseTimers) -> None:
        deadline = timers.loop.time() + 0.005
        timers.call_at(deadline, Owner(), lambda _: fired.append("a"))
        timers.call_at(deadline, Owner(), interrupt)
        timers.call_at(deadline, Owner(), lambda _: fired.append("b"))
        await asyncio.sleep(T)

    loop = asyncio.new_event_loop()
    try:
        timers = CoarseTimers(loop)
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(arm(timers))
        # The application caught it and runs the loop again: the rest still fire.
        loop.run_until_complete(asyncio.sleep(0.01))
        assert sorted(fired) == ["a", "b"]
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


async def test_asyncio_loop_keeps_no_timer_for_pending_deadlines() -> None:
    """On asyncio's loop the slot thread wakes the loop: its heap stays empty, and its
    turns don't work out a timeout for a deadline seconds away."""
    loop = asyncio.get_running_loop()
    timers = CoarseTimers(loop)
    owner = Owner()
    slot = timers.call_at(loop.time() + 20, owner, lambda _: None)
    assert not loop._scheduled  # type: ignore[attr-defined]
    timers.cancel(slot, owner)


async def a_later_deadline_fires() -> bool:
    """Whether a deadline of the running loop fires, armed once the slots that the test
    armed in another loop 1 ms ahead have ended."""
    loop = asyncio.get_running_loop()
    fired: list[Owner] = []
    await asyncio.sleep(0.01)
    timers = CoarseTimers(loop)
    timers.call_at(loop.time() + 0.001, Owner(), fired.append)
    await wait_until(lambda: bool(fired))
    return True


def test_a_closed_loop_does_not_stop_the_slot_thread() -> None:
    """A loop closed with a slot pending: its slot is dropped, other loops' still fire."""
    closed = asyncio.new_event_loop()
    try:
        # Held until the slot ends, as a connection would hold them.
        closed_timers = CoarseTimers(closed)
        closed_timers.call_at(closed.time() + 0.001, Owner(), lambda _: None)
    finally:
        closed.close()

    assert asyncio.run(a_later_deadline_fires())
    del closed_timers


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork()")
def test_a_forked_child_has_a_slot_thread_of_its_own() -> None:
    """fork() keeps none of the parent's threads: the child's deadlines fire all the same."""

    async def arm() -> None:
        loop = asyncio.get_running_loop()
        fired: list[Owner] = []
        timers = CoarseTimers(loop)
        timers.call_at(loop.time() + 0.001, Owner(), fired.append)
        await wait_until(lambda: bool(fired))

    asyncio.run(arm())  # the parent's thread runs
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            asyncio.run(arm())
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork()")
def test_a_forked_child_keeps_none_of_the_parents_timers() -> None:
    """The parent's pending slots hold its timers; in a child of fork(), whose slot thread
    starts afresh, nothing holds them anymore."""

    def armed() -> weakref.ref[CoarseTimers]:
        loop = asyncio.new_event_loop()
        timers = CoarseTimers(loop)
        timers.call_at(loop.time() + 20, Owner(), lambda _: None)
        loop.close()
        return weakref.ref(timers)

    reference = armed()
    gc.collect()
    assert reference() is not None  # the parent's slot thread holds them
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            gc.collect()
            code = 0 if reference() is None else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_loop_that_cannot_be_woken_does_not_stop_the_slot_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whatever a loop raises when woken, the thread logs it and goes on for the others."""

    class Unwakeable(asyncio.SelectorEventLoop):
        def call_soon_threadsafe(self, *args: Any, **kwargs: Any) -> Any:
            raise ValueError("cannot be woken")

    broken = Unwakeable()
    try:
        broken_timers = CoarseTimers(broken)
        assert broken_timers._woken
        broken_timers.call_at(broken.time() + 0.001, Owner(), lambda _: None)
        with caplog.at_level(logging.ERROR, logger="wsio"):
            assert asyncio.run(a_later_deadline_fires())
        assert "could not wake a loop" in caplog.text
    finally:
        broken.close()
