"""Reconnecting clients: whether to try again, and how long to wait first.

``async for ws in connect(uri)`` opens a connection, hands it to the application, and
opens another when the application comes back for one; the threads client does the same
with ``for``. Every decision of that loop is here, written once and free of I/O: no
sockets, no event loop, no threads, no sleeping. The I/O layers open connections and
sleep for the delays given.

- :class:`Backoff` spaces the attempts out: truncated exponential backoff with jitter, as
  RFC 6455 §7.2.3 asks of clients that reconnect ("the first reconnect attempt SHOULD be
  delayed by a random amount of time", later ones by "increasingly longer amounts").
- :func:`process_exception` tells a transient failure to open (try again) from a fatal
  one (raise it and stop).
- :class:`Reconnection` is the state of one such loop: it turns each failure, and each
  connection that ended, into the delay before the next attempt, and logs it.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import ssl
from collections.abc import Callable, Iterator

from . import defaults
from .exceptions import (
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidArgument,
    InvalidMessage,
    InvalidProxyStatus,
    InvalidStatus,
)
from .protocol.http11 import Response

__all__ = ["Backoff", "ProcessException", "Reconnection", "process_exception"]

#: ``process_exception(exc)``: ``None`` when ``exc`` is transient, else the exception to
#: raise (``exc`` itself or another).
ProcessException = Callable[[Exception], "Exception | None"]

# HTTP statuses that say "not now" rather than "no": the server or a gateway is busy,
# restarting or overloaded (RFC 9110 §15.5.9, §15.6; RFC 6585 §4 for 429).
_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

# SOCKS5 replies about the path to the server rather than about us: network or host
# unreachable, connection refused, TTL expired (RFC 1928 §6).
_TRANSIENT_SOCKS5_REPLIES = frozenset({3, 4, 5, 6})

# TLS errors that mean the connection ended during the TLS handshake, as a reset would.
# Every other one (a certificate that doesn't verify, no common protocol version) comes
# back the same at each attempt.
_TRANSIENT_TLS_ERRORS = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


@dataclasses.dataclass(frozen=True, slots=True)
class Backoff:
    """How a reconnecting client spaces its attempts out.

    After ``n`` failures in a row, the client waits up to ``initial_delay * factor **
    (n - 1)`` seconds, capped at ``max_delay``; ``jitter`` is the fraction of that
    pause drawn at random (1: anywhere between 0 and the pause), so that clients that
    lost the same server at the same moment don't all come back at the same moment.
    """

    initial_delay: float = defaults.BACKOFF_INITIAL_DELAY
    factor: float = defaults.BACKOFF_FACTOR
    max_delay: float = defaults.BACKOFF_MAX_DELAY
    jitter: float = defaults.BACKOFF_JITTER

    def __post_init__(self) -> None:
        if not 0 <= self.initial_delay <= self.max_delay:
            raise InvalidArgument(
                f"backoff delays must satisfy 0 <= initial_delay <= max_delay, not "
                f"{self.initial_delay} and {self.max_delay}"
            )
        if not self.factor >= 1:
            raise InvalidArgument(f"backoff factor must be at least 1, not {self.factor}")
        if not 0 <= self.jitter <= 1:
            raise InvalidArgument(f"backoff jitter must be between 0 and 1, not {self.jitter}")

    def delays(self, random: Callable[[], float] = random.random) -> Iterator[float]:
        """The pauses after 1, 2, 3... failures in a row, without end. ``random()``
        returns a float in [0, 1): the jitter."""
        delay = self.initial_delay
        while True:
            yield delay * (1 - self.jitter * random())
            # Once capped, it stays capped: no float growing towards infinity.
            delay = min(delay * self.factor, self.max_delay)


def process_exception(exc: Exception) -> Exception | None:
    """Whether a failure to open a connection is worth another attempt: ``None`` when
    it is transient, ``exc`` when trying again would most likely fail the same way.

    Transient: network errors (:class:`OSError`, which includes :class:`TimeoutError`
    and so ``open_timeout``; :class:`EOFError`), a connection that ended during the
    opening handshake or the TLS handshake, and refusals that say "not now": HTTP 408,
    429, 500, 502, 503 and 504, from the server or from an HTTP proxy, and the SOCKS5
    replies "network unreachable", "host unreachable", "connection refused" and "TTL
    expired".

    Fatal: everything else, among which an invalid URI, any other status (4xx: the
    request itself is refused), a response that breaks the handshake, a failed
    negotiation, too many redirects, a TLS certificate that doesn't verify.

    ``connect(..., process_exception=...)`` replaces this function; it may return
    another exception, which is then raised instead, chained to ``exc``.
    """
    if isinstance(exc, ssl.SSLError):
        transient = isinstance(exc, _TRANSIENT_TLS_ERRORS)
    elif isinstance(exc, OSError | EOFError | ConnectionClosed):
        transient = True
    elif isinstance(exc, InvalidStatus):
        transient = exc.response.status_code in _TRANSIENT_STATUSES
    elif isinstance(exc, InvalidProxyStatus):
        if exc.response is not None:
            transient = exc.response.status_code in _TRANSIENT_STATUSES
        else:
            transient = exc.reply in _TRANSIENT_SOCKS5_REPLIES
    elif isinstance(exc, InvalidMessage):
        # The connection ended before the whole response arrived.
        transient = isinstance(exc.__cause__, EOFError)
    else:
        transient = False
    return None if transient else exc


def retry_after(exc: Exception) -> float:
    """Seconds that the answer refusing the connection asked the client to wait in a
    ``Retry-After`` header (RFC 9110 §10.2.3), 0 if it didn't. Only the delay form is
    read; a date is ignored rather than compared with a clock this module doesn't read.
    """
    response: Response | None = None
    if isinstance(exc, InvalidStatus | InvalidProxyStatus):
        response = exc.response
    if response is None:
        return 0.0
    values = [value.strip() for value in response.headers.get_all("Retry-After")]
    if len(values) == 1 and values[0].isascii() and values[0].isdigit():
        return float(values[0])
    return 0.0


class Reconnection:
    """The state of one reconnecting loop.

    The I/O layer calls :meth:`opened` when a connection opens, :meth:`open_failed`
    when an attempt fails and :meth:`closed` when a connection it handed out has ended;
    the last two return how long to sleep before the next attempt.
    """

    def __init__(
        self,
        backoff: Backoff,
        process_exception: ProcessException = process_exception,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.backoff = backoff
        self.process_exception = process_exception
        self.logger = logger if logger is not None else logging.getLogger("wsio.client")
        self._random = random
        # The pauses of the current run of failures; None once a connection opened.
        self._delays: Iterator[float] | None = None

    def _next_delay(self) -> float:
        if self._delays is None:
            self._delays = self.backoff.delays(self._random)
        return next(self._delays)

    def opened(self) -> None:
        """A connection opened: the next failure starts the backoff afresh."""
        self._delays = None

    def open_failed(self, exc: Exception) -> float:
        """Seconds to wait before the next attempt after ``exc``, logged at INFO level.

        The backoff's next pause, or longer if the server asked for it with
        ``Retry-After`` (up to the backoff's ``max_delay``).

        :raises Exception: ``exc``, or what ``process_exception`` returned instead,
            when the failure is fatal: the loop ends.
        """
        fatal = self.process_exception(exc)
        if fatal is exc:
            raise exc
        if fatal is not None:
            raise fatal from exc
        delay = max(self._next_delay(), min(retry_after(exc), self.backoff.max_delay))
        self.logger.info("connection failed: %s; reconnecting in %.3g s", _describe(exc), delay)
        return delay

    def closed(self, exc: ConnectionClosed) -> float:
        """Seconds to wait before reopening after a connection ended with ``exc``.

        None after a normal closure (1000, 1001 or 1005 both ways). After an abnormal
        one -- no close frame (1006), an error code, a restart (1012), "try again later"
        (1013) -- the first pause of the backoff, which is random (RFC 6455 §7.2.3):
        clients that lost one server at once come back spread out. If reopening then
        fails, the backoff goes on from there.
        """
        if isinstance(exc, ConnectionClosedOK):
            return 0.0
        delay = self._next_delay()
        self.logger.info("connection closed: %s; reconnecting in %.3g s", exc, delay)
        return delay


def _describe(exc: Exception) -> str:
    """The exception's type and message, for a log line: some messages are empty."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
