"""What :meth:`~wsio.asyncio.connection.Connection.recv` waits on: a future-like object
that resumes the waiting task where the message was read.

Why: with an :class:`asyncio.Future`, a message read in the transport's callback sets the
future's result, which schedules the task's wake-up with ``loop.call_soon``; the handler
runs at the next turn of the loop. Between the two, the loop polls its selector again and
builds and runs a handle. For a server echoing small messages, that costs as much as
parsing the message. :meth:`Waiter.resume` runs the wake-up at once instead, inside the read
callback: the handler takes the message, sends its answer and waits again before the loop
goes on.

When: only where the waiter's loop is the one running in this thread and no task is (a
transport's callback): a task can't step inside another, nor run outside its loop. Within
a task, or if the task's context is in use, the wake-up is scheduled as an
:class:`asyncio.Future` would. The connection resumes at once only for a message, once the
whole read is processed and its state is consistent; the end of the stream wakes the
receiver at the next turn.

What changes for the handler: nothing it can see, but two things for whoever watches the
loop. In asyncio's debug mode, the time the handler runs counts against the transport's
read callback. A KeyboardInterrupt or SystemExit raised by the handler is raised by the
loop at its next turn, from a handle, as it was with a future: not from the transport's
callback, which uvloop would catch.

How: asyncio's tasks accept any object with the future protocol (:func:`asyncio.isfuture`):
the task finds ``_asyncio_future_blocking`` set, checks :meth:`get_loop`, and registers its
wake-up with :meth:`add_done_callback`; the wake-up calls :meth:`result`. The task's step
runs as it would from the loop: it is the current task, in its own context. Cancellation
(:meth:`cancel`) and callbacks added once done go through ``loop.call_soon``.

:class:`Waiter` is the C version from :mod:`wsio._speedups` when that extension is built
and ``WSIO_NO_SPEEDUPS`` is unset; :class:`PythonWaiter` is the reference and the fallback.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from .._accelerator import speedups

__all__ = ["SPEEDUPS", "PythonWaiter", "Waiter"]

_PENDING, _DONE, _CANCELLED = 0, 1, 2

_Callback = Callable[[Any], object]


class PythonWaiter:
    """A future-like object, without a value, that :meth:`resume` completes."""

    __slots__ = (
        "_asyncio_future_blocking",
        "_callbacks",
        "_cancel_message",
        "_loop",
        "_state",
        "_yielded",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, /) -> None:
        self._loop = loop
        #: Set while a task is to wait for the waiter (the asyncio future protocol).
        self._asyncio_future_blocking = False
        self._callbacks: list[tuple[_Callback, contextvars.Context]] = []
        self._cancel_message: Any = None
        self._state = _PENDING
        self._yielded = False

    def resume(self) -> None:
        """Mark the waiter done and resume whoever awaits it: now, when its loop is the one
        running in this thread and no task is (a read callback), else at the next turn of
        the loop. Does nothing if the waiter is done already."""
        if self._state != _PENDING:
            return
        if not self._callbacks:
            self._state = _DONE
            return
        loop = self._loop
        # Decided before the waiter is marked done: on an error, it stays pending. A task
        # can't resume outside its loop, running in this thread, nor step inside another.
        now = asyncio._get_running_loop() is loop and asyncio.current_task(loop) is None
        self._state = _DONE
        if not now:
            self._schedule_callbacks()
            return
        callbacks, self._callbacks = self._callbacks, []
        for index, (callback, context) in enumerate(callbacks):
            try:
                self._run(callback, context)
            except BaseException as exc:  # KeyboardInterrupt, SystemExit, a failed report
                # The others run at the next turn, and the loop raises the exception from
                # a handle of its own rather than from here, inside the caller's callback,
                # which it may catch (uvloop's transports do).
                for later, later_context in callbacks[index + 1 :]:
                    loop.call_soon(later, self, context=later_context)
                loop.call_soon(_reraise, exc)
                return

    def _run(self, callback: _Callback, context: contextvars.Context) -> None:
        """Run ``callback(self)`` in ``context`` now, reporting its exception to the loop
        as if the loop had run it; raise KeyboardInterrupt and SystemExit."""
        try:
            context.run(callback, self)
        except RuntimeError as exc:
            if not _context_in_use(exc):
                self._report(callback, exc)
                return
            # The context is in use (entered higher up the stack): a turn later.
            self._loop.call_soon(callback, self, context=context)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._report(callback, exc)

    def resume_soon(self) -> None:
        """Mark the waiter done and resume whoever awaits it at the next turn of the loop,
        as :meth:`asyncio.Future.set_result` does. Does nothing if the waiter is done."""
        if self._state != _PENDING:
            return
        self._state = _DONE
        self._schedule_callbacks()

    def _schedule_callbacks(self) -> None:
        callbacks, self._callbacks = self._callbacks, []
        for callback, context in callbacks:
            self._loop.call_soon(callback, self, context=context)

    def _report(self, callback: _Callback, exc: BaseException) -> None:
        """Hand a callback's exception to the loop, as if the loop had run the callback."""
        self._loop.call_exception_handler(
            {"message": "Exception in callback", "exception": exc, "callback": callback}
        )

    def add_done_callback(
        self, callback: _Callback, /, *, context: contextvars.Context | None = None
    ) -> None:
        if context is None:
            context = contextvars.copy_context()
        elif type(context) is not contextvars.Context:
            raise TypeError("add_done_callback() context must be a Context")
        if self._state == _PENDING:
            self._callbacks.append((callback, context))
        else:
            self._loop.call_soon(callback, self, context=context)

    def remove_done_callback(self, callback: _Callback, /) -> int:
        # Comparing may run Python code (__eq__), which may complete the waiter meanwhile:
        # only a list still in place is replaced.
        callbacks = self._callbacks
        kept = [item for item in callbacks if item[0] != callback]
        if self._callbacks is callbacks:
            self._callbacks = kept
        return len(callbacks) - len(kept)

    def cancel(self, msg: Any = None) -> bool:
        if self._state != _PENDING:
            return False
        self._state = _CANCELLED
        self._cancel_message = msg
        self._schedule_callbacks()
        return True

    def result(self) -> None:
        if self._state == _DONE:
            return None
        if self._state == _CANCELLED:
            raise self._cancelled_error()
        raise asyncio.InvalidStateError("Result is not ready.")

    def exception(self) -> BaseException | None:
        if self._state == _DONE:
            return None
        if self._state == _CANCELLED:
            raise self._cancelled_error()
        raise asyncio.InvalidStateError("Exception is not set.")

    def _cancelled_error(self) -> asyncio.CancelledError:
        if self._cancel_message is None:
            return asyncio.CancelledError()
        return asyncio.CancelledError(self._cancel_message)

    def done(self) -> bool:
        return self._state != _PENDING

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def __await__(self) -> Generator[Any, None, None]:
        if self._state == _PENDING and not self._yielded:
            self._yielded = True
            self._asyncio_future_blocking = True
            yield self
        if self._state == _PENDING:
            raise RuntimeError("await wasn't used with future")
        return self.result()

    __iter__ = __await__


def _reraise(exc: BaseException) -> None:
    """Raise, from a handle of the loop, what a callback raised in :meth:`Waiter.resume`."""
    raise exc


def _context_in_use(exc: RuntimeError) -> bool:
    """Whether ``Context.run`` itself refused to run: the error was raised in the frame
    that called it, not below, and says so (a callback may raise a RuntimeError too)."""
    traceback = exc.__traceback__
    return (
        traceback is not None
        and traceback.tb_next is None
        and str(exc).startswith("cannot enter context")
    )


_speedups = speedups()
#: Whether :class:`Waiter` is the C implementation.
SPEEDUPS = _speedups is not None
Waiter = PythonWaiter
# The type checker knows the Python class only; _speedups.pyi declares the same API.
if not TYPE_CHECKING and _speedups is not None:
    Waiter = _speedups.Waiter
