"""What a connection of either I/O layer tells from its core, and the settling of the
pings that pongs answer: written once for :mod:`wsio.asyncio` and :mod:`wsio.sync`."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypedDict, TypeVar
from typing import Protocol as TypingProtocol

from .. import defaults
from ..protocol.arguments import check_max_size, check_timeout
from ..protocol.connection import (
    BinaryMessage,
    Protocol,
    RequestReceived,
    ResponseReceived,
    State,
    TextMessage,
)
from ..protocol.http11 import Request, Response
from .messages import check_limits

__all__ = [
    "HANDSHAKE_EVENTS",
    "MESSAGE_EVENTS",
    "BaseConnection",
    "ConnectionOptions",
    "HandshakeEvent",
    "PongWaiter",
    "connection_options",
    "opening_options",
]

# Tuples, not unions: isinstance() is faster with them, and these run for every message.
#: The core's events that carry a message for the application.
MESSAGE_EVENTS = (TextMessage, BinaryMessage)
#: The core's events that carry the opening handshake's request or response.
HANDSHAKE_EVENTS = (RequestReceived, ResponseReceived)
#: One of :data:`HANDSHAKE_EVENTS`.
HandshakeEvent = RequestReceived | ResponseReceived


class ConnectionOptions(TypedDict, total=False):
    """The options of an open connection, which ``connect`` and ``serve`` take in both
    I/O layers, with their defaults in :mod:`wsio.defaults`:

    - ``ping_interval``, ``ping_timeout``: keepalive; ``None`` disables either.
    - ``close_timeout``: seconds for the closing handshake.
    - ``max_queue``: incoming messages queued before reading pauses.
    """

    ping_interval: float | None
    ping_timeout: float | None
    close_timeout: float | None
    max_queue: int


def connection_options(options: Mapping[str, Any]) -> ConnectionOptions:
    """The :class:`ConnectionOptions` among ``options``, checked and completed with their
    defaults.

    :raises TypeError: an option of the wrong type.
    :raises InvalidArgument: ``max_queue`` below 1, a timeout not above 0.
    """
    max_queue = options.get("max_queue", defaults.MAX_QUEUE)
    check_limits(max_queue)
    settings = ConnectionOptions(
        ping_interval=options.get("ping_interval", defaults.PING_INTERVAL),
        ping_timeout=options.get("ping_timeout", defaults.PING_TIMEOUT),
        close_timeout=options.get("close_timeout", defaults.CLOSE_TIMEOUT),
        max_queue=max_queue,
    )
    for name, value in settings.items():
        if name != "max_queue":
            check_timeout(name, value)
    return settings


def opening_options(options: Mapping[str, Any]) -> tuple[float | None, int | None]:
    """``open_timeout`` and ``max_size`` among ``options``, which ``connect`` and
    ``serve`` take besides the :class:`ConnectionOptions`, checked and completed with
    their defaults: a bad value is refused as the client or server is configured, not
    when each connection's core is made.

    :raises TypeError: either is of the wrong type.
    :raises InvalidArgument: ``open_timeout`` not above 0, ``max_size`` below 1.
    """
    open_timeout = options.get("open_timeout", defaults.OPEN_TIMEOUT)
    check_timeout("open_timeout", open_timeout)
    max_size = options.get("max_size", defaults.MAX_SIZE)
    check_max_size(max_size)
    return open_timeout, max_size


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

    It holds the sans-I/O core (:attr:`protocol`), the :class:`ConnectionOptions`, and
    the pings waiting for a pong (``_pong_waiters``: each payload mapped to its waiter
    and the :func:`time.perf_counter` time it went out).
    """

    protocol: Protocol
    ping_interval: float | None
    ping_timeout: float | None
    close_timeout: float | None
    max_queue: int
    #: Round-trip time of the last ping answered, in seconds.
    latency: float
    _pong_waiters: dict[bytes, tuple[_Waiter, float]]

    def __init__(
        self,
        protocol: Protocol,
        *,
        ping_interval: float | None = defaults.PING_INTERVAL,
        ping_timeout: float | None = defaults.PING_TIMEOUT,
        close_timeout: float | None = defaults.CLOSE_TIMEOUT,
        max_queue: int = defaults.MAX_QUEUE,
    ) -> None:
        # The options come checked (connection_options): a server makes thousands of
        # connections with the same ones.
        self.protocol = protocol
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.max_queue = max_queue
        # The core decodes no more messages than the queue has room for.
        protocol.allow_messages(max_queue)
        self.logger = protocol.logger
        self.latency = 0.0
        self._pong_waiters = {}

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

    @property
    def broadcast_policy(self) -> tuple[int | None, str]:
        """The ``broadcast_limit`` and ``slow_consumer`` policy that a broadcast applies to
        this connection unless told otherwise: its server's, or the defaults."""
        return defaults.BROADCAST_LIMIT, defaults.SLOW_CONSUMER

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
        if not self._pong_waiters:
            return []  # the common case, once per connection
        waiters = [waiter for waiter, _ in self._pong_waiters.values()]
        self._pong_waiters.clear()
        close_exc = self.protocol.close_exc
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(close_exc)
        return waiters
