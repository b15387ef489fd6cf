"""What :meth:`~wsio.asyncio.connection.Connection.recv` waits on: a future-like object
that resumes the waiting task where the message was read.

Why: with an :class:`asyncio.Future`, a message read in the transport's callback sets the
future's result, which schedules the task's wake-up with ``loop.call_soon``; the handler
runs at the next turn of the loop. Between the two, the loop polls its selector again and
builds and runs a handle. For a server echoing small messages, that costs as much as
parsing the message. :meth:`Waiter.resume` runs the wake-up at once instead, inside the read
callback: the handler takes the message, sends its answer and waits again before the loop
goes on.

When: only where no task is running on the loop (a transport's callback, a timer's): a task
can't step inside another. Within a task, or if the task's context is in use, the wake-up
is scheduled as an :class:`asyncio.Future` would. The connection resumes only once its
state is consistent, after the whole read is processed.

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

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        #: Set while a task is to wait for the waiter (the asyncio future protocol).
        self._asyncio_future_blocking = False
        self._callbacks: list[tuple[_Callback, contextvars.Context]] = []
        self._cancel_message: Any = None
        self._state = _PENDING
        self._yielded = False

    def resume(self) -> None:
        """Mark the waiter done and resume whoever awaits it: now, when no task is running
        on the loop (a read callback), else at the next turn of the loop. Does nothing if
        the waiter is done already."""
        if self._state != _PENDING:
            return
        self._state = _DONE
        if not self._callbacks:
            return
        loop = self._loop
        if asyncio.current_task(loop) is not None:
            # Inside a task: another can't run until it yields.
            self._schedule_callbacks()
            return
        callbacks, self._callbacks = self._callbacks, []
        for index, (callback, context) in enumerate(callbacks):
            try:
                context.run(callback, self)
            except RuntimeError as exc:
                if not _context_in_use(exc):
                    self._report(callback, exc)
                    continue
                # The context is in use (entered higher up the stack): a turn later.
                loop.call_soon(callback, self, context=context)
            except (KeyboardInterrupt, SystemExit):
                # The remaining callbacks run at the next turn.
                for later, later_context in callbacks[index + 1 :]:
                    loop.call_soon(later, self, context=later_context)
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
        self, callback: _Callback, *, context: contextvars.Context | None = None
    ) -> None:
        if context is None:
            context = contextvars.copy_context()
        if self._state == _PENDING:
            self._callbacks.append((callback, context))
        else:
            self._loop.call_soon(callback, self, context=context)

    def remove_done_callback(self, callback: _Callback) -> int:
        kept = [item for item in self._callbacks if item[0] != callback]
        removed = len(self._callbacks) - len(kept)
        self._callbacks = kept
        return removed

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
