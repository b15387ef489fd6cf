"""What a connection of either I/O layer tells from its core, and the settling of the
pings that pongs answer: written once for :mod:`wsio.asyncio` and :mod:`wsio.sync`."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Generic, TypeVar
from typing import Protocol as TypingProtocol

from ..protocol.connection import Protocol, State
from ..protocol.http11 import Request, Response

__all__ = ["BaseConnection", "PongWaiter"]


class PongWaiter(TypingProtocol):
    """What waits for a pong: an :class:`asyncio.Future` or a
    :class:`concurrent.futures.Future` of the round-trip time."""

    def done(self) -> bool: ...

    def set_result(self, result: float, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


_Waiter = TypeVar("_Waiter", bound=PongWaiter)


class BaseConnection(Generic[_Waiter]):
    """The part of a connection common to both I/O layers, whose pings wait on
    ``_Waiter``.

    Subclasses set :attr:`protocol` (the sans-I/O core), :attr:`latency` and
    ``_pong_waiters`` (each ping's payload mapped to its waiter and the
    :func:`time.perf_counter` time it went out).
    """

    protocol: Protocol
    #: Round-trip time of the last ping answered, in seconds.
    latency: float
    _pong_waiters: dict[bytes, tuple[_Waiter, float]]

    @property
    def state(self) -> State:
        """State of the connection: CONNECTING, OPEN, CLOSING or CLOSED."""
        return self.protocol.state

    @property
    def request(self) -> Request | None:
        """The opening handshake request."""
        return getattr(self.protocol, "request", None)

    @property
    def response(self) -> Response | None:
        """The opening handshake response."""
        return getattr(self.protocol, "response", None)

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol negotiated during the opening handshake, if any."""
        return getattr(self.protocol, "subprotocol", None)

    @property
    def close_code(self) -> int | None:
        """Code of the first close frame of the closing handshake (1006 if none was
        exchanged); ``None`` while the connection is open."""
        return self.protocol.close_code

    @property
    def close_reason(self) -> str | None:
        """Reason of the first close frame of the closing handshake; ``None`` while open."""
        return self.protocol.close_reason

    def _check_open(self) -> None:
        """:raises ConnectionClosed: the connection is closing or closed."""
        if self.protocol.state is not State.OPEN:
            raise self.protocol.close_exc

    def _acknowledge(self, acknowledged: Iterable[bytes]) -> None:
        """Settle the pings that a pong answered (RFC 6455 §5.5.3: a pong answers the
        ping it echoes and those sent before it), and record the latency."""
        # perf_counter, not the event loop's clock: uvloop's ticks in milliseconds.
        now = time.perf_counter()
        for payload in acknowledged:
            waiter, sent_at = self._pong_waiters.pop(payload)
            self.latency = now - sent_at
            if not waiter.done():
                waiter.set_result(self.latency)

    def _abandon_pings(self) -> list[_Waiter]:
        """The connection ended: fail the pings still waiting for a pong with the
        reason it closed; return their waiters."""
        waiters = [waiter for waiter, _ in self._pong_waiters.values()]
        self._pong_waiters.clear()
        if waiters:
            close_exc = self.protocol.close_exc
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(close_exc)
        return waiters
