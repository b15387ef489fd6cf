"""wsio.asyncio.waiter: the future-like object that recv() waits on.

Every test runs on the pure-Python reference, PythonWaiter, and on the C version from
wsio._speedups when that extension imports: both must behave alike. resume() runs the
waiting task's wake-up at once where no task is running (a loop callback, as the
transport's read callbacks are) and schedules it like asyncio.Future otherwise; the rest
(cancel, callbacks added once done, the state queries) follows asyncio.Future.

The helper in_callback() runs a function in a plain loop callback, where no task is
current, which is where resume() runs callbacks at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar, cast

import pytest

from wsio._accelerator import speedups
from wsio.asyncio.waiter import SPEEDUPS, PythonWaiter, Waiter

T = 5.0

R = TypeVar("R")

# The implementations under test: the C one only where it imports (it may not be built).
IMPLEMENTATIONS: dict[str, type[PythonWaiter]] = {"python": PythonWaiter}
try:
    from wsio import _speedups
except ImportError:
    pass
else:
    # The stub types it as a class of its own, with the same API.
    IMPLEMENTATIONS["c"] = cast("type[PythonWaiter]", _speedups.Waiter)


@pytest.fixture(params=list(IMPLEMENTATIONS.values()), ids=list(IMPLEMENTATIONS))
def waiter_class(request: pytest.FixtureRequest) -> type[PythonWaiter]:
    return cast("type[PythonWaiter]", request.param)


@pytest.fixture(autouse=True)
async def no_task_left() -> AsyncIterator[None]:
    """Ends, in bounded time, the tasks that a test leaves. A task whose wake-up a broken
    waiter lost never ends: the loop's teardown would wait for it forever, so it is
    dropped from the loop's tasks and the test fails."""
    yield
    left = asyncio.all_tasks() - {asyncio.current_task()}
    for task in left:
        task.cancel()
    if left:
        await asyncio.wait(left, timeout=T)
    stranded = [task for task in left if not task.done()]
    for task in stranded:
        asyncio.tasks._unregister_task(task)
    assert not stranded, f"tasks never woken up: {stranded}"


var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def context_with(value: str) -> contextvars.Context:
    """A copy of the current context where ``var`` is ``value``."""
    context = contextvars.copy_context()
    context.run(var.set, value)
    return context


async def in_callback(function: Callable[[], R]) -> R:
    """Runs ``function`` in a plain loop callback, where no task is current, and returns
    what it returns (or raises what it raises). Callbacks that ``function`` schedules with
    call_soon run before this returns: they are queued ahead of the wake-up of the caller."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[R] = loop.create_future()

    def run() -> None:
        try:
            assert asyncio.current_task(loop) is None
            future.set_result(function())
        except Exception as exc:
            future.set_exception(exc)

    loop.call_soon(run)
    async with asyncio.timeout(T):
        return await future


async def finish(*futures: asyncio.Future[Any]) -> None:
    """Waits until the tasks (or futures) are done, T at most. (Not with asyncio.timeout:
    cancelling the wait for a task that a broken waiter never wakes up waits forever.)"""
    _, pending = await asyncio.wait(futures, timeout=T)
    assert not pending, f"never woken up: {pending}"


def capture_errors(loop: asyncio.AbstractEventLoop) -> list[dict[str, Any]]:
    """What the loop's exception handler receives from now on (the loop is the test's)."""
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))
    return errors


def outcome(call: Callable[[], object]) -> object:
    """What a call returns, or the type and arguments of what it raises."""
    try:
        return call()
    except BaseException as exc:
        return type(exc), exc.args


class Calls:
    """Callbacks that record, in order, their name, their argument and ``var`` there."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object, str]] = []

    def callback(self, name: str) -> Callable[[object], None]:
        def callback(waiter: object) -> None:
            self.calls.append((name, waiter, var.get()))

        return callback

    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]


# The module's choice.


async def test_waiter_is_the_accelerated_class_when_speedups_are_on() -> None:
    # WSIO_NO_SPEEDUPS selects the reference; the tests below cover both either way.
    accelerator = speedups()
    assert (accelerator is not None) == SPEEDUPS
    if accelerator is None:
        assert Waiter is PythonWaiter
    else:
        assert cast(object, Waiter) is accelerator.Waiter


# States.


async def test_a_new_waiter_is_pending(waiter_class: type[PythonWaiter]) -> None:
    loop = asyncio.get_running_loop()
    w = waiter_class(loop)
    assert asyncio.isfuture(w)
    assert asyncio.ensure_future(w) is w
    assert w.get_loop() is loop
    assert not w.done()
    assert not w.cancelled()
    assert w._asyncio_future_blocking is False
    with pytest.raises(asyncio.InvalidStateError, match="Result is not ready"):
        w.result()
    with pytest.raises(asyncio.InvalidStateError, match="Exception is not set"):
        w.exception()


async def test_resume_completes_once(waiter_class: type[PythonWaiter]) -> None:
    w = waiter_class(asyncio.get_running_loop())
    assert outcome(w.resume) is None
    assert w.done()
    assert not w.cancelled()
    assert outcome(w.result) is None
    assert w.exception() is None
    w.resume()  # a no-op
    assert w.cancel() is False
    assert w.cancel("too late") is False
    assert w.done() and not w.cancelled() and outcome(w.result) is None


@pytest.mark.parametrize("message", [None, "why", ("any", "object")])
async def test_cancel(waiter_class: type[PythonWaiter], message: Any) -> None:
    w = waiter_class(asyncio.get_running_loop())
    assert w.cancel(message) is True
    assert w.done()
    assert w.cancelled()
    expected_args = () if message is None else (message,)
    with pytest.raises(asyncio.CancelledError) as excinfo:
        w.result()
    assert excinfo.value.args == expected_args
    with pytest.raises(asyncio.CancelledError) as excinfo:
        w.exception()
    assert excinfo.value.args == expected_args
    # Once cancelled, it stays so, with its first message.
    assert w.cancel("again") is False
    w.resume()
    assert w.cancelled()
    with pytest.raises(asyncio.CancelledError) as excinfo:
        w.result()
    assert excinfo.value.args == expected_args


async def test_cancel_takes_msg_as_a_keyword(waiter_class: type[PythonWaiter]) -> None:
    # Task.cancel(msg) calls fut_waiter.cancel(msg=msg).
    w = waiter_class(asyncio.get_running_loop())
    assert w.cancel(msg="why") is True
    with pytest.raises(asyncio.CancelledError, match="why"):
        w.result()


async def test_states_match_asyncio_future(waiter_class: type[PythonWaiter]) -> None:
    # Every sequence of up to 3 operations leaves a waiter in the state it leaves a Future
    # in, with the same returns and exceptions; resume() stands for a set_result(None)
    # that is skipped once the future is done.
    loop = asyncio.get_running_loop()
    operations = ["resume", "cancel", "cancel why"]

    def run(target: Any, operation: str) -> object:
        if operation != "resume":
            return target.cancel(*operation.split()[1:])
        if not isinstance(target, asyncio.Future):
            return target.resume()
        if not target.done():
            target.set_result(None)
        return None

    def trace(target: Any, sequence: tuple[str, ...]) -> list[object]:
        steps: list[object] = []
        for operation in sequence:
            steps.append(outcome(functools.partial(run, target, operation)))
            steps.append([target.done(), target.cancelled()])
            steps.append([outcome(target.result), outcome(target.exception)])
        return steps

    for length in range(4):
        for sequence in itertools.product(operations, repeat=length):
            future: asyncio.Future[None] = loop.create_future()
            w = waiter_class(loop)
            assert trace(w, sequence) == trace(future, sequence), sequence


async def test_asyncio_future_blocking_is_a_settable_flag(
    waiter_class: type[PythonWaiter],
) -> None:
    w = waiter_class(asyncio.get_running_loop())
    w._asyncio_future_blocking = True
    assert w._asyncio_future_blocking is True
    w._asyncio_future_blocking = False
    assert w._asyncio_future_blocking is False


# Awaiting.


@pytest.mark.parametrize("how", ["send", "next"])
async def test_await_by_hand(waiter_class: type[PythonWaiter], how: str) -> None:
    # What a task does with `await waiter`; asyncio.Future's iterator has send() too.
    def step(iterator: Any) -> object:
        return iterator.send(None) if how == "send" else next(iterator)

    loop = asyncio.get_running_loop()
    w = waiter_class(loop)
    iterator = w.__await__()
    assert step(iterator) is w
    assert w._asyncio_future_blocking is True
    w._asyncio_future_blocking = False  # as the task does
    w.resume()
    with pytest.raises(StopIteration) as excinfo:
        step(iterator)
    assert excinfo.value.value is None

    # Stepping again while it is still pending means the waiter wasn't awaited by a task.
    pending = waiter_class(loop)
    iterator = pending.__await__()
    assert step(iterator) is pending
    with pytest.raises(RuntimeError, match="await wasn't used with future"):
        step(iterator)


async def test_awaiting_a_done_waiter_does_not_suspend(waiter_class: type[PythonWaiter]) -> None:
    loop = asyncio.get_running_loop()
    w = waiter_class(loop)
    w.resume()
    with pytest.raises(StopIteration):
        next(w.__await__())
    assert w._asyncio_future_blocking is False
    # A callback scheduled now would run if the task suspended.
    turns: list[str] = []
    loop.call_soon(turns.append, "turn")
    await w  # returns None: see test_await_by_hand
    assert turns == []
    await asyncio.sleep(0)
    assert turns == ["turn"]


async def test_awaiting_a_cancelled_waiter_raises(waiter_class: type[PythonWaiter]) -> None:
    loop = asyncio.get_running_loop()
    w = waiter_class(loop)
    w.cancel("why")
    with pytest.raises(asyncio.CancelledError) as excinfo:
        next(w.__await__())
    assert excinfo.value.args == ("why",)
    turns: list[str] = []
    loop.call_soon(turns.append, "turn")
    with pytest.raises(asyncio.CancelledError) as excinfo:
        await w
    assert excinfo.value.args == ("why",)
    assert turns == []


async def test_a_waiter_of_another_loop_is_refused(waiter_class: type[PythonWaiter]) -> None:
    # The task checks get_loop(), as with a Future.
    other = asyncio.new_event_loop()
    try:
        w = waiter_class(other)

        async def wait() -> None:
            await w

        task = asyncio.create_task(wait())
        await finish(task)
        with pytest.raises(RuntimeError, match="attached to a different loop"):
            task.result()
    finally:
        other.close()


# Resuming a task.


async def test_resume_in_a_callback_runs_the_task_at_once(
    waiter_class: type[PythonWaiter],
) -> None:
    loop = asyncio.get_running_loop()
    w = waiter_class(loop)
    events: list[str] = []

    async def wait() -> str:
        events.append("waiting")
        await w
        events.append("resumed")
        return "finished"

    task = asyncio.create_task(wait())
    await asyncio.sleep(0)
    assert events == ["waiting"]
    # The task took the waiter and cleared the flag, as it does with a Future.
    assert w._asyncio_future_blocking is False

    def resume() -> tuple[list[str], bool, asyncio.Task[Any] | None]:
        w.resume()
        return list(events), task.done(), asyncio.current_task(loop)

    seen, done, current = await in_callback(resume)
    # The task ran to its end inside resume(), and left: no task is current after.
    assert seen == ["waiting", "resumed"]
    assert done
    assert current is None
    assert task.result() == "finished"


async def test_resume_in_a_task_runs_the_task_at_the_next_turn(
    waiter_class: type[PythonWaiter],
) -> None:
    w = waiter_class(asyncio.get_running_loop())
    events: list[str] = []

    async def wait() -> None:
        events.append("waiting")
        await w
        events.append("resumed")

    task = asyncio.create_task(wait())
    await asyncio.sleep(0)
    assert events == ["waiting"]
    w.resume()  # this test is a task: the other can't run inside it
    assert events == ["waiting"]
    assert w.done()
    await asyncio.sleep(0)
    assert events == ["waiting", "resumed"]
    assert task.done()


async def test_resume_soon_always_waits_for_the_next_turn(
    waiter_class: type[PythonWaiter],
) -> None:
    w = waiter_class(asyncio.get_running_loop())
    events: list[str] = []

    async def wait() -> None:
        await w
        events.append("resumed")

    task = asyncio.create_task(wait())
    await asyncio.sleep(0)

    def resume_soon() -> list[str]:
        w.resume_soon()
        assert w.done()
        w.resume()  # done already: a no-op
        return list(events)

    assert await in_callback(resume_soon) == []
    await finish(task)
    assert events == ["resumed"]


async def test_a_task_resumed_at_once_is_current_in_its_own_context(
    waiter_class: type[PythonWaiter],
) -> None:
    loop = asyncio.get_running_loop()
    w = waiter_class(loop)
    var.set("test's")
    seen: list[tuple[bool, str]] = []

    async def wait() -> None:
        var.set("task's")
        await w
        seen.append((asyncio.current_task() is task, var.get()))
        var.set("task's, after")

    task = asyncio.create_task(wait())
    await asyncio.sleep(0)

    def resume() -> tuple[str, str]:
        var.set("callback's")
        w.resume()
        return var.get(), seen[0][1] if seen else "not run"

    # The callback's context is its own, untouched by the task's set().
    assert await in_callback(resume) == ("callback's", "task's")
    assert seen == [(True, "task's")]
    assert var.get() == "test's"
    assert task.done()


async def test_a_task_is_resumed_at_once_again_and_again(
    waiter_class: type[PythonWaiter],
) -> None:
    # After a step inside resume(), the task waits on the next waiter as usual.
    loop = asyncio.get_running_loop()
    waiters = [waiter_class(loop) for _ in range(3)]
    events: list[int] = []

    async def wait() -> None:
        for index, w in enumerate(waiters):
            await w
            events.append(index)

    task = asyncio.create_task(wait())
    await asyncio.sleep(0)
    for index, w in enumerate(waiters):

        def resume(w: PythonWaiter = w) -> list[int]:
            w.resume()
            return list(events)

        assert await in_callback(resume) == list(range(index + 1))
    assert task.done()


async def test_a_task_resumed_at_once_resumes_others_at_the_next_turn(
    waiter_class: type[PythonWaiter],
) -> None:
    loop = asyncio.get_running_loop()
    first, second = waiter_class(loop), waiter_class(loop)
    events: list[str] = []

    async def wait_first() -> None:
        await first
        events.append("first")
        second.resume()  # within a task now
        events.append("first resumed second")

    async def wait_second() -> None:
        await second
        events.append("second")

    tasks = [asyncio.create_task(wait_first()), asyncio.create_task(wait_second())]
    await asyncio.sleep(0)

    def resume() -> list[str]:
        first.resume()
        return list(events)

    assert await in_callback(resume) == ["first", "first resumed second"]
    await finish(*tasks)
    assert events == ["first", "first resumed second", "second"]


async def test_an_error_in_a_task_resumed_at_once_is_the_tasks(
    waiter_class: type[PythonWaiter],
) -> None:
    loop = asyncio.get_running_loop()
    errors = capture_errors(loop)
    w = waiter_class(loop)

    async def wait() -> None:
        await w
        raise ValueError("the task's")

    task = asyncio.create_task(wait())
    await asyncio.sleep(0)
    await in_callback(w.resume)  # doesn't raise
    assert task.done()
    with pytest.raises(ValueError, match="the task's"):
        task.result()
    assert errors == []


# Cancelling a task.


@pytest.mark.parametrize("message", [None, "why"])
async def test_cancelling_the_waiting_task_cancels_the_waiter(
    waiter_class: type[PythonWaiter], message: str | None
) -> None:
    w = waiter_class(asyncio.get_running_loop())
    seen: list[tuple[Any, ...]] = []

    async def wait() -> None:
        try:
            await w
        except asyncio.CancelledError as exc:
            seen.append(exc.args)
            raise

    task = asyncio.create_task(wait())
    await asyncio.sleep(0)
    assert task.cancel(message)
    assert w.cancelled()
    assert seen == []  # the task learns it at its wake-up, a turn later
    await finish(task)
    assert task.cancelled()
    assert seen == [() if message is None else (message,)]


async def test_a_timeout_cancels_a_waiter_never_resumed(
    waiter_class: type[PythonWaiter],
) -> None:
    w = waiter_class(asyncio.get_running_loop())

    async def wait() -> None:
        async with asyncio.timeout(0.01):
            await w

    # Bounded without a second asyncio.timeout, which would raise TimeoutError too.
    task = asyncio.create_task(wait())
    await finish(task)
    with pytest.raises(TimeoutError):
        task.result()
    assert w.cancelled()


async def test_wait_for_cancels_a_waiter_never_resumed(
    waiter_class: type[PythonWaiter],
) -> None:
    w = waiter_class(asyncio.get_running_loop())
    task = asyncio.create_task(asyncio.wait_for(w, 0.01))
    await finish(task)
    with pytest.raises(TimeoutError):
        task.result()
    assert w.cancelled()


async def test_asyncio_wait_and_gather_take_a_waiter(waiter_class: type[PythonWaiter]) -> None:
    loop = asyncio.get_running_loop()
    w = waiter_class(loop)
    future = cast("asyncio.Future[None]", w)  # as far as the type checker can tell
    # asyncio.wait() adds a callback, then removes it on its timeout.
    done, pending = await asyncio.wait([future], timeout=0.01)
    assert (done, pending) == (set(), {future})
    gathered = asyncio.gather(future)
    await in_callback(w.resume)
    await finish(gathered)
    assert list(gathered.result()) == [None]
    done, pending = await asyncio.wait([future], timeout=T)
    assert (done, pending) == ({future}, set())


# Callbacks.


async def test_resume_runs_callbacks_at_once_in_order_in_their_contexts(
    waiter_class: type[PythonWaiter],
) -> None:
    w = waiter_class(asyncio.get_running_loop())
    calls = Calls()
    w.add_done_callback(calls.callback("a"), context=context_with("a's"))
    var.set("test's")
    w.add_done_callback(calls.callback("b"))  # a copy of the current context, made now
    w.add_done_callback(calls.callback("c"), context=None)
    var.set("changed later")
    w.add_done_callback(calls.callback("d"), context=context_with("d's"))

    def resume() -> list[tuple[str, object, str]]:
        w.resume()
        return list(calls.calls)

    expected = [("a", w, "a's"), ("b", w, "test's"), ("c", w, "test's"), ("d", w, "d's")]
    assert await in_callback(resume) == expected
    await asyncio.sleep(0)
    assert calls.calls == expected  # once each


async def test_resume_in_a_task_schedules_callbacks(waiter_class: type[PythonWaiter]) -> None:
    w = waiter_class(asyncio.get_running_loop())
    calls = Calls()
    w.add_done_callback(calls.callback("a"), context=context_with("a's"))
    w.add_done_callback(calls.callback("b"), context=context_with("b's"))
    w.resume()
    assert calls.calls == []
    await asyncio.sleep(0)
    assert calls.calls == [("a", w, "a's"), ("b", w, "b's")]


@pytest.mark.parametrize("complete", ["resume", "cancel"])
async def test_a_callback_added_once_done_runs_at_the_next_turn(
    waiter_class: type[PythonWaiter], complete: str
) -> None:
    w = waiter_class(asyncio.get_running_loop())
    calls = Calls()
    getattr(w, complete)()

    def add() -> list[tuple[str, object, str]]:
        w.add_done_callback(calls.callback("a"), context=context_with("a's"))
        return list(calls.calls)

    # Not at once, even where no task runs; then once, in its context.
    assert await in_callback(add) == []
    assert calls.calls == [("a", w, "a's")]


async def test_cancel_schedules_callbacks(waiter_class: type[PythonWaiter]) -> None:
    w = waiter_class(asyncio.get_running_loop())
    calls = Calls()
    w.add_done_callback(calls.callback("a"), context=context_with("a's"))
    w.add_done_callback(calls.callback("b"), context=context_with("b's"))

    def cancel() -> list[tuple[str, object, str]]:
        assert w.cancel()
        return list(calls.calls)

    assert await in_callback(cancel) == []
    assert calls.calls == [("a", w, "a's"), ("b", w, "b's")]
    await asyncio.sleep(0)
    assert len(calls.calls) == 2


async def test_remove_done_callback(waiter_class: type[PythonWaiter]) -> None:
    w = waiter_class(asyncio.get_running_loop())
    calls = Calls()
    a, b, c = calls.callback("a"), calls.callback("b"), calls.callback("c")
    w.add_done_callback(a)
    w.add_done_callback(b)
    w.add_done_callback(a)
    w.add_done_callback(c)
    assert w.remove_done_callback(a) == 2
    assert w.remove_done_callback(a) == 0
    assert w.remove_done_callback(calls.callback("never added")) == 0
    await in_callback(w.resume)
    assert calls.names() == ["b", "c"]
    assert w.remove_done_callback(b) == 0  # gone once run


class Owner:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def method(self, waiter: object) -> None:
        self.calls.append("method")


async def test_remove_done_callback_compares_by_equality(
    waiter_class: type[PythonWaiter],
) -> None:
    # Each `owner.method` is a new bound method, equal to the others (asyncio relies on it).
    w = waiter_class(asyncio.get_running_loop())
    calls: list[str] = []
    owner = Owner(calls)
    w.add_done_callback(owner.method)
    assert w.remove_done_callback(owner.method) == 1
    await in_callback(w.resume)
    assert calls == []


def add_remove_sequences() -> list[tuple[str, ...]]:
    """Every sequence of up to 4 operations among adding and removing callbacks a and b."""
    operations = ["+a", "+b", "-a", "-b"]
    return [
        sequence
        for length in range(5)
        for sequence in itertools.product(operations, repeat=length)
    ]


async def test_add_and_remove_keep_the_order_of_the_rest(
    waiter_class: type[PythonWaiter],
) -> None:
    # Against a list as the model; the C version keeps the first callback apart.
    loop = asyncio.get_running_loop()
    sequences = add_remove_sequences()

    def check_all() -> None:
        for sequence in sequences:
            w = waiter_class(loop)
            calls = Calls()
            callbacks = {"a": calls.callback("a"), "b": calls.callback("b")}
            model: list[str] = []
            for operation in sequence:
                name = operation[1]
                if operation[0] == "+":
                    w.add_done_callback(callbacks[name])
                    model.append(name)
                else:
                    removed = w.remove_done_callback(callbacks[name])
                    assert removed == model.count(name), sequence
                    model = [kept for kept in model if kept != name]
            w.add_done_callback(calls.callback("last"))
            w.resume()
            assert calls.names() == [*model, "last"], sequence

    await in_callback(check_all)


@pytest.mark.parametrize("position", [0, 1, 2])
@pytest.mark.parametrize(
    ("error_type", "text"),
    [
        (ValueError, "boom"),
        (RuntimeError, "boom"),
        # The callback's own error, though it reads like failing to enter a context.
        (RuntimeError, "cannot enter context: the callback's own error"),
        # Not an Exception, but the loop reports it too (a Handle does).
        (asyncio.CancelledError, "boom"),
    ],
    ids=["ValueError", "RuntimeError", "RuntimeError-cannot-enter", "CancelledError"],
)
async def test_an_error_in_a_callback_goes_to_the_loop(
    waiter_class: type[PythonWaiter], position: int, error_type: type[BaseException], text: str
) -> None:
    error = error_type(text)
    loop = asyncio.get_running_loop()
    errors = capture_errors(loop)
    w = waiter_class(loop)
    calls = Calls()
    failed: list[object] = []

    def fail(waiter: object) -> None:
        failed.append(waiter)
        raise error

    names = ["a", "b"]
    for index in range(3):
        if index == position:
            w.add_done_callback(fail)
        else:
            w.add_done_callback(calls.callback(names.pop(0)))

    def resume() -> tuple[list[str], int]:
        w.resume()  # doesn't raise
        return calls.names(), len(errors)

    # Reported at once, and the others ran.
    assert await in_callback(resume) == (["a", "b"], 1)
    await asyncio.sleep(0)
    assert failed == [w]  # once: not run again a turn later
    assert calls.names() == ["a", "b"]
    assert len(errors) == 1
    assert errors[0]["exception"] is error
    assert errors[0]["callback"] is fail
    assert isinstance(errors[0]["message"], str)


@pytest.mark.parametrize("position", [0, 1])
@pytest.mark.parametrize("exception", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_in_a_callback_is_raised_by_the_loop(
    waiter_class: type[PythonWaiter], position: int, exception: type[BaseException]
) -> None:
    # resume() doesn't raise it into its caller (a transport's callback, which uvloop would
    # catch): it leaves the rest for the next turn and the loop raises it from a handle.
    # On a loop of its own, so that the exception stops that loop, not pytest's.
    loop = asyncio.new_event_loop()
    try:
        errors = capture_errors(loop)
        w = waiter_class(loop)
        calls = Calls()

        def interrupt(waiter: object) -> None:
            calls.calls.append(("interrupt", waiter, var.get()))
            raise exception

        names = ["before"] if position else []
        names += ["interrupt", "after 1", "after 2"]
        for name in names:
            callback = interrupt if name == "interrupt" else calls.callback(name)
            w.add_done_callback(callback, context=context_with(f"{name}'s"))
        returned: list[list[str]] = []

        def resume() -> None:
            w.resume()
            returned.append(calls.names())

        loop.call_soon(resume)
        with pytest.raises(exception):
            loop.run_forever()
        before = (["before"] if position else []) + ["interrupt"]
        assert returned == [before]
        assert w.done()
        # The rest run once each, in order, in their contexts, when the loop goes on.
        loop.run_until_complete(asyncio.sleep(0))
        assert calls.calls[len(before) :] == [
            ("after 1", w, "after 1's"),
            ("after 2", w, "after 2's"),
        ]
        assert errors == []
    finally:
        loop.close()


async def test_a_callback_whose_context_is_in_use_runs_at_the_next_turn(
    waiter_class: type[PythonWaiter],
) -> None:
    loop = asyncio.get_running_loop()
    errors = capture_errors(loop)
    w = waiter_class(loop)
    calls = Calls()
    busy, free = context_with("busy"), context_with("free")
    w.add_done_callback(calls.callback("a"), context=busy)
    w.add_done_callback(calls.callback("b"), context=free)
    w.add_done_callback(calls.callback("c"), context=busy)

    def resume() -> list[tuple[str, object, str]]:
        busy.run(w.resume)  # within busy: it can't be entered again
        return list(calls.calls)

    assert await in_callback(resume) == [("b", w, "free")]
    assert calls.calls == [("b", w, "free"), ("a", w, "busy"), ("c", w, "busy")]
    assert errors == []


async def test_callbacks_may_call_the_waiter_during_resume(
    waiter_class: type[PythonWaiter],
) -> None:
    loop = asyncio.get_running_loop()
    w = waiter_class(loop)
    calls = Calls()
    later = calls.callback("later")
    results: list[object] = []

    def reenter(waiter: PythonWaiter) -> None:
        waiter.resume()
        results.append(waiter.cancel())
        # The callbacks were taken out to run: nothing is left to remove.
        results.append(waiter.remove_done_callback(later))
        waiter.add_done_callback(calls.callback("added"))

    w.add_done_callback(reenter)
    w.add_done_callback(later)

    def resume() -> list[str]:
        w.resume()
        return calls.names()

    assert await in_callback(resume) == ["later"]
    assert results == [False, 0]
    assert calls.names() == ["later", "added"]
    assert w.done() and not w.cancelled()


# Memory.


def count_alive(cls: type) -> int:
    return sum(type(obj) is cls for obj in gc.get_objects())


async def test_a_cancelled_wait_leaves_no_cycle_through_the_waiter(
    waiter_class: type[PythonWaiter],
) -> None:
    # With the collector off, only reference counting frees: a waiter that stays alive
    # once its task is gone is held by a cycle.
    box = [waiter_class(asyncio.get_running_loop())]

    async def wait() -> None:
        # No local variable holds the waiter: the traceback of the CancelledError keeps
        # the frame, whose variables the test doesn't want to count.
        await box.pop()

    gc.collect()
    gc.disable()
    try:
        alive = count_alive(waiter_class)
        task = asyncio.create_task(wait())
        await asyncio.sleep(0)
        assert box == []
        task.cancel("why")
        await finish(task)
        assert task.cancelled()
        del task
        assert count_alive(waiter_class) == alive - 1
    finally:
        gc.enable()


async def test_a_callback_comparing_itself_may_complete_the_waiter(
    waiter_class: type[PythonWaiter],
) -> None:
    # remove_done_callback compares callbacks, which runs their __eq__: one that cancels
    # the waiter meanwhile must leave it consistent (in C, without touching freed memory).
    loop = asyncio.get_running_loop()
    w = waiter_class(loop)
    calls = Calls()

    class Meddler:
        def __call__(self, waiter: object) -> None:
            calls.calls.append(("meddler", waiter, var.get()))

        def __eq__(self, other: object) -> bool:
            w.cancel()
            w.add_done_callback(calls.callback("late"))
            return False

        __hash__ = None  # type: ignore[assignment]

    w.add_done_callback(calls.callback("first"))
    w.add_done_callback(Meddler())
    w.add_done_callback(Meddler())
    assert w.remove_done_callback(lambda waiter: None) == 0
    assert w.cancelled()
    # Everything added ran once, at the next turn; nothing was put back into the waiter.
    for _ in range(3):
        await asyncio.sleep(0)
    assert sorted(calls.names()) == sorted(["first", "meddler", "meddler", "late", "late"])
    assert w.remove_done_callback(calls.callback("first")) == 0


def test_resume_outside_the_running_loop_waits_for_the_loop(
    waiter_class: type[PythonWaiter],
) -> None:
    # Between two runs of the loop no task may run: a task resumed then would find no
    # running loop. The wake-up waits for the loop.
    loop = asyncio.new_event_loop()
    try:
        w = waiter_class(loop)
        steps: list[str] = []

        async def waiting() -> None:
            await w
            steps.append(f"resumed, loop running: {asyncio.get_running_loop() is loop}")

        task = loop.create_task(waiting())
        loop.run_until_complete(asyncio.sleep(0))
        w.resume()
        assert steps == []
        loop.run_until_complete(asyncio.wait_for(task, T))
        assert steps == ["resumed, loop running: True"]
    finally:
        loop.close()


async def test_resume_from_another_thread_leaves_the_task_to_its_loop(
    waiter_class: type[PythonWaiter],
) -> None:
    # The loop runs, idle, while another thread resumes: the task's step is the loop's to
    # run, in the loop's thread, never in the resuming one. (Resuming from another thread
    # isn't thread-safe use: the loop only runs the step once something else wakes it.)
    loop = asyncio.get_running_loop()
    w = waiter_class(loop)
    threads: list[int] = []

    async def waiting() -> None:
        await w
        threads.append(threading.get_ident())

    def resume_later() -> None:
        time.sleep(0.05)
        w.resume()

    task = loop.create_task(waiting())
    await asyncio.sleep(0)
    resumer = threading.Thread(target=resume_later)
    resumer.start()
    # Idle meanwhile, waiting in its selector: no task of it is running.
    await asyncio.sleep(0.2)
    for _ in range(500):
        if task.done():
            break
        await asyncio.sleep(0.01)
    resumer.join(T)
    assert threads == [threading.get_ident()]


async def test_a_context_must_be_a_context(waiter_class: type[PythonWaiter]) -> None:
    w = waiter_class(asyncio.get_running_loop())
    with pytest.raises(TypeError):
        w.add_done_callback(lambda waiter: None, context={})  # type: ignore[arg-type]
