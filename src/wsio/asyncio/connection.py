"""The asyncio I/O layer shared by clients and servers.

A :class:`Connection` is the :class:`asyncio.Protocol` of one TCP (or TLS) connection and
the object the application uses. It moves bytes between the transport and the sans-I/O
core (:mod:`wsio.protocol`) and waits: for messages, for the write buffer to drain, for
pongs, for the end of the connection. Every protocol rule, and every decision about what
to do when a timer fires, is the core's.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import threading
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Mapping,
)
from types import TracebackType
from typing import Any, Generic, TypeAlias, TypeVar, Unpack, cast
from typing import Protocol as TypingProtocol

from .. import defaults
from ..exceptions import ConcurrencyError, ConnectionClosedOK
from ..protocol.connection import (
    Pong,
    PreparedMessage,
    Protocol,
    State,
)
from ..protocol.frames import CloseCode
from ..protocol.utf8 import convert
from ..shared.broadcast import Outcome, slow_consumer_verdict
from ..shared.connection import (
    HANDSHAKE_EVENTS,
    MESSAGE_EVENTS,
    BaseConnection,
    ConnectionOptions,
    HandshakeEvent,
)
from ..shared.messages import (
    Data,
    DataLike,
    abandon_fragmented,
    check_limits,
    control_payload,
    fragment_bytes,
    ping_payload,
    queue_fragment,
    queue_message,
)
from .timers import coarse_timers

__all__ = ["Connection", "Data", "Opener", "check_limits"]

_Address: TypeAlias = Any


class _Closable(TypingProtocol):
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


_Opened = TypeVar("_Opened", bound=_Closable)


class Connection(BaseConnection[asyncio.Future[float]], asyncio.BufferedProtocol):
    """A WebSocket connection over asyncio; see :class:`~wsio.asyncio.client.ClientConnection`
    and :class:`~wsio.asyncio.server.ServerConnection` for the two sides.

    Incoming messages wait in a queue of ``max_queue`` messages; when it is full, reading
    from the network pauses, so a peer cannot make it grow. Outgoing bytes wait in the
    transport's buffer; above ``write_limit`` bytes, :meth:`send` waits for it to drain.
    """

    # Slots: a server holds thousands of connections, and an instance dict costs about
    # 1.5 KiB each. Instances still have a __dict__ (BaseConnection has no slots), so that
    # applications may attach their own attributes to a connection (ws.user = ...); the
    # dict is only allocated when they do.
    __slots__ = (
        "_close_timer",
        "_connection_lost",
        "_drain_waiters",
        "_failure_timer",
        "_fragmented_send",
        "_handshake_over",
        "_message_waiter",
        "_messages",
        "_pong_waiters",
        "_read_buffer",
        "_reading_paused",
        "_timer_slot",
        "_timers",
        "_writing_paused",
        "close_timeout",
        "latency",
        "logger",
        "loop",
        "max_queue",
        "ping_interval",
        "ping_timeout",
        "protocol",
        "transport",
        "write_limit",
    )

    def __init__(
        self,
        protocol: Protocol,
        *,
        write_limit: int = defaults.WRITE_LIMIT,
        **options: Unpack[ConnectionOptions],
    ) -> None:
        super().__init__(protocol, **options)
        self.write_limit = write_limit
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        # Where the loop reads: shared by the connections of this thread rather than
        # allocated per read (256 KiB for asyncio, mapped and unmapped each time for large
        # messages). buffer_updated() follows each read at once, and the core copies what
        # it keeps before returning (see Protocol.receive_data): the buffer is free for the
        # next read, whichever connection it is for.
        self._read_buffer = _receive_buffer()
        # A list, not a deque: an empty deque costs 600 bytes, and reading pauses at
        # max_queue messages, so pop(0) only ever moves a few pointers.
        self._messages: list[Data] = []
        self._message_waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._fragmented_send: asyncio.Future[None] | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._failure_timer: asyncio.TimerHandle | None = None
        # The connection's one coarse timer at a time (open_timeout, then keepalive), and
        # the slot it is armed in, if any.
        self._timers = coarse_timers(self.loop)
        self._timer_slot: float | None = None
        # Whether the opening handshake is over, whatever its outcome.
        self._handshake_over = False
        # Resolved once the TCP connection is closed.
        self._connection_lost: asyncio.Future[None] = self.loop.create_future()

    # Public API ---------------------------------------------------------------------------

    @property
    def local_address(self) -> _Address:
        """Local address of the socket."""
        return None if self.transport is None else self.transport.get_extra_info("sockname")

    @property
    def remote_address(self) -> _Address:
        """Remote address of the socket."""
        return None if self.transport is None else self.transport.get_extra_info("peername")

    def recv(
        self, timeout: float | None = None, decode: bool | None = None
    ) -> Coroutine[Any, Any, Data]:
        """Wait for the next message: ``str`` for text, ``bytes`` for binary.

        :param timeout: seconds to wait for a message; ``None`` waits as long as the
            connection is open, 0 or less takes a message only if one is queued. A
            message that arrives as the timeout expires is kept for the next call.
        :param decode: ``False`` returns text messages as ``bytes`` (their UTF-8, which
            the core validated as it arrived); ``True`` returns binary messages decoded
            from UTF-8 as ``str``; ``None`` leaves each message its own type.
        :raises TimeoutError: no message came within ``timeout``.
        :raises UnicodeDecodeError: with ``decode=True``, a binary message that isn't
            valid UTF-8: it is consumed, and the error's ``object`` holds it.
        :raises ConnectionClosed: the connection is closed and no message is left.
        :raises ConcurrencyError: another coroutine is already waiting in :meth:`recv`.
        """
        if timeout is None and decode is None:
            # The common case goes straight to the coroutine that receives: nothing
            # around it to create, resume and return through.
            return self._receive(False)
        return self._receive_within(timeout, decode)

    async def _receive_within(self, timeout: float | None, decode: bool | None) -> Data:
        """:meth:`recv` with a timeout or a conversion."""
        if (
            timeout is None
            or self._messages
            or self._message_waiter is not None
            or not self.protocol.receiving
        ):
            # _receive won't wait: it returns a queued message or raises at once.
            message = await self._receive(False)
        elif timeout <= 0:
            raise TimeoutError("no message received")
        else:
            # On expiry, the task is cancelled where it waits, before it takes a message:
            # one that arrived meanwhile stays at the head of the queue.
            try:
                async with asyncio.timeout(timeout):
                    message = await self._receive(False)
            except TimeoutError:
                raise TimeoutError(f"no message received in {timeout:.3g} s") from None
        return message if decode is None else convert(message, decode)

    def __aiter__(self) -> AsyncIterator[Data]:
        """Iterate over messages; stop quietly on a normal closure (1000, 1001, 1005)."""
        return self

    async def _receive(self, iterating: bool = True) -> Data:
        """What :meth:`recv` and :meth:`__anext__` return: the next message; with
        ``iterating``, :class:`StopAsyncIteration` on a normal closure."""
        if self._message_waiter is not None:
            raise ConcurrencyError("another coroutine is already running recv()")
        messages = self._messages
        if not messages:
            protocol = self.protocol
            while not messages and protocol.receiving:
                # Set while a coroutine waits: what makes another recv() a concurrent one.
                self._message_waiter = self.loop.create_future()
                try:
                    await self._message_waiter
                finally:
                    self._message_waiter = None
            if not messages:
                # The application took every message before a violation: fail now.
                self._release_failure()
                exc = protocol.close_exc
                if iterating and isinstance(exc, ConnectionClosedOK):
                    raise StopAsyncIteration
                raise exc
        message = messages.pop(0)
        if len(messages) <= self.max_queue // 4:
            if self._reading_paused:
                self._reading_paused = False
                if self.transport is not None and not self.transport.is_closing():
                    self.transport.resume_reading()
            if self.protocol.parsing_paused:
                # Messages held back in the core's buffer, undecoded, come next.
                self._process_events()
        return message

    # The coroutine that receives, called directly: no frame around it to create, resume
    # and return through for each message.
    __anext__ = _receive

    async def send(
        self,
        message: DataLike | Iterable[DataLike] | AsyncIterable[DataLike],
        *,
        compress: bool | None = None,
    ) -> None:
        """Send a message: ``str`` as text, bytes-like as binary, an iterable or async
        iterable of either as one fragmented message (every fragment of the same type).

        With permessage-deflate negotiated, ``compress=False`` sends this message
        uncompressed and ``compress=True`` compresses it whatever its size; by default,
        messages under ``compression_threshold`` bytes go uncompressed (RFC 7692 §6).

        Waits while the write buffer is above ``write_limit``.

        :raises ConnectionClosed: the connection is closing or closed.
        :raises TypeError: an unsupported type, or fragments of mixed types.
        :raises InvalidArgument: text that isn't valid Unicode (a lone surrogate); nothing
            is sent, or for a fragment, the message fails with 1011 as for any bad one.
        """
        while self._fragmented_send is not None:
            # Another coroutine is sending a fragmented message: frames can't interleave.
            await asyncio.shield(self._fragmented_send)
        if self._write_message(message, compress):
            if self._writing_paused:
                await self._drain()
        elif isinstance(message, Mapping):
            # A dict is iterable, but sending its keys as fragments is never what's meant.
            raise TypeError("message is a dict-like object: serialize it first")
        elif isinstance(message, Iterable):
            # Not str or bytes-like (_write_message took those): fragments.
            await self._send_fragments(_aiter_sync(cast(Iterable[DataLike], message)), compress)
        elif isinstance(message, AsyncIterable):
            await self._send_fragments(aiter(message), compress)
        else:
            raise TypeError(f"message has an unsupported type: {type(message).__name__}")

    def _write_message(self, message: object, compress: bool | None) -> bool:
        """Send a whole message, ``str`` or bytes-like, without waiting; ``False`` for any
        other type. No fragmented message may be under way.

        :raises ConnectionClosed: the connection is closing or closed.
        """
        if not queue_message(self.protocol, message, compress):
            return False
        self._flush()
        return True

    async def _send_fragments(
        self, fragments: AsyncIterator[DataLike], compress: bool | None
    ) -> None:
        """Send a fragmented message (RFC 6455 §5.4), holding off other sends meanwhile.

        Each fragment is sent once the next one is known, so that the last carries FIN.
        If the iterable fails half-way, the message can't be completed: the connection
        fails with 1011.
        """
        self._fragmented_send = self.loop.create_future()
        started = False
        try:
            try:
                current = await anext(fragments)
            except StopAsyncIteration:
                return
            text = isinstance(current, str)
            while True:
                data = fragment_bytes(current, text)
                try:
                    current = await anext(fragments)
                    fin = False
                except StopAsyncIteration:
                    fin = True
                queue_fragment(
                    self.protocol, data, first=not started, text=text, fin=fin, compress=compress
                )
                started = True
                self._flush()
                await self._drain()
                if fin:
                    return
        except BaseException:
            if started:
                abandon_fragmented(self.protocol)
                self._flush()
            raise
        finally:
            self._fragmented_send.set_result(None)
            self._fragmented_send = None

    async def ping(self, data: DataLike | None = None) -> float:
        """Send a ping and wait for the matching pong; return the round-trip time in
        seconds. Without ``data``, a random 4-byte payload is used.

        :raises ConnectionClosed: the connection closed before the pong arrived.
        :raises InvalidArgument: ``data`` is over 125 bytes.
        :raises ConcurrencyError: a ping with the same payload is already waiting.
        """
        waiter = self._send_ping(data)
        return await asyncio.shield(waiter)

    def _send_ping(self, data: DataLike | None) -> asyncio.Future[float]:
        payload = ping_payload(data, self._pong_waiters)
        self._check_open()
        self.protocol.send_ping(payload)
        waiter: asyncio.Future[float] = self.loop.create_future()
        self._pong_waiters[payload] = (waiter, time.perf_counter())
        self._flush()
        return waiter

    async def pong(self, data: DataLike = b"") -> None:
        """Send an unsolicited pong, e.g. as a unidirectional heartbeat (RFC 6455 §5.5.3)."""
        payload = control_payload(data, "pong payload")
        self._check_open()
        self.protocol.send_pong(payload)
        self._flush()
        await self._drain()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Perform the closing handshake and wait until the TCP connection is closed.

        Returns after ``close_timeout`` at most, aborting the connection if the peer
        doesn't cooperate. Idempotent.

        :raises InvalidArgument: a code that may not be sent or a reason over 123 bytes.
        """
        self._start_closing(code, reason)
        if not self._connection_lost.done():  # as a handler returns, it often is
            await asyncio.shield(self._connection_lost)

    async def wait_closed(self) -> None:
        """Wait until the TCP connection is closed."""
        await asyncio.shield(self._connection_lost)

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.close()
        else:
            await self.close(1011)

    # Inner workings -----------------------------------------------------------------------

    def _offer(
        self, prepared: PreparedMessage, limit: int | None, slow_consumer: str | None
    ) -> Outcome:
        """A broadcast message, handed over without waiting unless this connection is a
        slow consumer (:class:`~wsio.shared.broadcast.Recipient`)."""
        # The unsent bytes: the transport's buffer, and what waits for a fragmented
        # message to end.
        protocol = self.protocol
        transport = self.transport
        if protocol.state is not State.OPEN or transport is None or transport.is_closing():
            return None
        verdict = slow_consumer_verdict(
            transport.get_write_buffer_size() + protocol.deferred_size,
            self.broadcast_policy,
            limit,
            slow_consumer,
        )
        if verdict == "close":
            self._start_closing(CloseCode.TRY_AGAIN_LATER, "slow consumer")
        elif verdict is None:
            protocol.send_prepared(prepared)
            self._flush()
            return "delivered"
        return verdict

    def _start_closing(self, code: int, reason: str) -> None:
        """Start the closing handshake without waiting: with the close frame of a failure
        held back, if there is one; with ``code`` and ``reason`` otherwise."""
        if self.protocol.failure_held:
            self._release_failure()
        elif self.protocol.state is State.OPEN:
            self.protocol.send_close(code, reason)
            self._flush()
        elif self.protocol.state is State.CONNECTING:
            self._abort()

    async def _drain(self) -> None:
        """Wait while the transport's buffer is above the write limit."""
        if not self._writing_paused:
            return
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._drain_waiters.append(waiter)
        await waiter
        if self._connection_lost.done():
            # What was buffered may never have reached the peer.
            raise self.protocol.close_exc

    def _flush(self) -> None:
        """Write what the core queued, half-close when it says so, and arm the close
        timer once the peer is expected to end the connection."""
        transport = self.transport
        if transport is None:
            # Not connected yet (a client's TLS through a proxy may deliver data first):
            # whoever connects flushes next.
            return
        protocol = self.protocol
        if protocol.state is State.OPEN:
            # Frames only: no half-close is queued, reading resumes with the queue (recv)
            # and no close is expected while the connection is open.
            writes = protocol.data_to_send()
            if not transport.is_closing():
                for data in writes:
                    transport.write(data)
            return
        if self._reading_paused:
            # The closing handshake needs the peer's close frame, wherever it is queued:
            # read on, for close_timeout at most.
            self._reading_paused = False
            if not transport.is_closing():
                transport.resume_reading()
        for data in protocol.data_to_send():
            if transport.is_closing():
                continue
            if data:
                transport.write(data)
            elif transport.can_write_eof() and not protocol.stream_ended:
                # On asyncio's loop the FIN goes now, where close() alone would send it a
                # turn of the loop later; either way, what is buffered is written first.
                try:
                    transport.write_eof()
                except OSError as exc:
                    # The peer reset the connection and the kernel knows it before the
                    # loop does: shutdown() fails (ENOTCONN) where the write before it
                    # went through. Nothing is left to half-close.
                    self._lose(exc)
                    continue
                if protocol.peer_done:
                    # Nothing is left to read: don't wait for the peer's end of the stream.
                    transport.close()
            else:
                # TLS can't half-close, and once the peer ended its side there is nothing
                # to wait for: close, after flushing what is buffered.
                transport.close()
        if (
            self._close_timer is None
            and self.close_timeout is not None
            and protocol.close_expected()
            # TCP closed with nothing left to write ends at the next turn of the loop: no
            # timer to arm and cancel. TLS (it can't half-close) may wait for the peer's
            # close_notify, and buffered bytes for the peer to read them: those need one.
            and not (
                transport.is_closing()
                and transport.can_write_eof()
                and not transport.get_write_buffer_size()
            )
        ):
            self._close_timer = self.loop.call_later(self.close_timeout, self._close_timed_out)

    def _release_failure(self) -> None:
        if self._failure_timer is not None:
            self._failure_timer.cancel()
            self._failure_timer = None
        if self.protocol.failure_held:
            self.protocol.release_failure()
            self._flush()

    def _close_timed_out(self) -> None:
        self.protocol.close_timeout_expired()
        self._abort()

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _lose(self, exc: OSError) -> None:
        """The transport failed under us: drop the connection, with ``exc`` as its cause
        unless the connection had failed already."""
        if self.protocol.failure is None:
            self.protocol.failure = exc
        self._abort()

    def _process_events(self) -> None:
        """Dispatch what the core parsed, then write what it queued."""
        protocol = self.protocol
        messages = self._messages
        events = protocol.events_received()
        if protocol.parsing_paused and len(messages) + len(events) < self.max_queue:
            # The core paused at the room it was last given, and the application has
            # taken messages since: go on decoding, up to the queue's bound.
            protocol.allow_messages(self.max_queue - len(messages) - len(events))
            events += protocol.events_received()
        for event in events:
            if isinstance(event, MESSAGE_EVENTS):
                messages.append(event.data)
            elif isinstance(event, Pong):
                self._acknowledge(event.acknowledged)
            elif isinstance(event, HANDSHAKE_EVENTS):
                self._handshake_event(event)
        # A held failure has its failure set: the attribute is cheaper than the property.
        if protocol.failure is not None and protocol.failure_held:
            # Let the application handle the messages that came before the violation --
            # an echo goes out before the close frame -- and fail when it comes back for
            # more, or after a short grace if it doesn't.
            if not messages:
                protocol.release_failure()
            elif self._failure_timer is None:
                self._failure_timer = self.loop.call_later(
                    defaults.FAILURE_GRACE, self._release_failure
                )
        if protocol.state is not State.OPEN or protocol.has_data_to_send:
            self._flush()
        if not self._handshake_over and protocol.state is not State.CONNECTING:
            self._end_handshake()
        message_waiter = self._message_waiter
        if (
            message_waiter is not None
            and not message_waiter.done()
            and (messages or not protocol.receiving)
        ):
            # The receiver runs at the next turn of the loop. Running its wake-up here,
            # inside the read callback, saves about 5,500 instructions per 16 B message
            # echoed (benchmarks.instructions) and 6 % of a server's CPU per message with
            # one connection, but costs 7 to 10 % more CPU per message with 16, client and
            # server (python -m benchmarks, cpu16x1 and cpu16x16 against the task echo).
            message_waiter.set_result(None)
        if (
            len(messages) >= self.max_queue
            and not self._reading_paused
            and protocol.state is State.OPEN
        ):
            self._reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()
        room = self.max_queue - len(messages)
        if room > 0 and protocol.parsing_paused:
            # The core holds back messages that the queue has room for: decode them.
            self._process_events()
        else:
            # What the queue has room for by the next read.
            protocol.allow_messages(room)

    def _handshake_event(self, event: HandshakeEvent) -> None:
        """Hook for the sides: a handshake message arrived."""

    def _end_handshake(self) -> None:
        """The opening handshake is over, whatever its outcome (sides may extend this)."""
        self._handshake_over = True

    def _arm(self, when: float, callback: Callable[[], None]) -> None:
        """Arm the connection's coarse timer: ``callback`` at ``when`` or a little later
        (:mod:`wsio.asyncio.timers`). One at a time: arming replaces the timer armed."""
        self._disarm()
        self._timer_slot = self._timers.call_at(when, self, callback)

    def _disarm(self) -> None:
        if self._timer_slot is not None:
            self._timers.cancel(self._timer_slot, self)
            self._timer_slot = None

    # Keepalive runs on the coarse timer rather than a task: a task per connection costs
    # over a kilobyte, which matters with thousands of idle connections.

    def _start_keepalive(self) -> None:
        """Send a ping every ``ping_interval`` once the previous one was answered; if no
        pong comes within ``ping_timeout``, let the core fail the connection (RFC 6455
        §5.5.2 used as a heartbeat)."""
        if self.ping_interval is not None:
            self._arm(self.loop.time() + self.ping_interval, self._keepalive_ping)

    def _keepalive_ping(self) -> None:
        self._timer_slot = None
        if self.protocol.state is not State.OPEN:
            return
        waiter = self._send_ping(None)
        waiter.add_done_callback(self._keepalive_pong)
        if self.ping_timeout is not None:
            self._arm(
                self.loop.time() + self.ping_timeout,
                functools.partial(self._keepalive_timed_out, waiter),
            )

    def _keepalive_pong(self, waiter: asyncio.Future[float]) -> None:
        if waiter.cancelled() or waiter.exception() is not None:
            return  # the connection closed
        self._disarm()
        self._start_keepalive()

    def _keepalive_timed_out(self, waiter: asyncio.Future[float]) -> None:
        self._timer_slot = None
        if not waiter.done() and self.protocol.state is State.OPEN:
            self.logger.info("keepalive ping timed out after %.3g s", self.ping_timeout)
            self.protocol.ping_timeout_expired()
            self._process_events()

    # asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's don't subclass it
        self.transport = transport
        transport.set_write_buffer_limits(self.write_limit)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        # data_received() inlined: this runs for every read.
        self.protocol.receive_data(self._read_buffer[:nbytes])
        self._process_events()

    def data_received(self, data: bytes | bytearray | memoryview) -> None:
        if self._connection_lost.done():
            # A read that was pending as the transport closed (Windows' proactor loop
            # delivers those): nothing can answer it now.
            return
        self.protocol.receive_data(data)
        self._process_events()

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self._process_events()
        # A server whose answer is still due (the client ended its side after the
        # request) keeps the transport open to write it, where TCP can half-close;
        # otherwise returning None lets the transport close itself.
        transport = self.transport
        if (
            transport is not None
            and self.protocol.state is State.CONNECTING
            and transport.can_write_eof()
        ):
            return True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            if exc is not None and self.protocol.failure is None:
                self.protocol.failure = exc
            if self.protocol.failure is not None:
                # A peer's mistake is no bug of ours: one line at debug level, no traceback.
                self.logger.debug("connection failed: %s", self.protocol.failure)
            self.protocol.receive_eof()
            self.protocol.data_to_send()  # nowhere to write them anymore
            self._process_events()
            for timer in (self._close_timer, self._failure_timer):
                if timer is not None:
                    timer.cancel()
            self._close_timer = self._failure_timer = None
            self._disarm()
            if not self._handshake_over:
                self._end_handshake()
            for waiter in self._abandon_pings():
                # Nobody may await a keepalive ping's waiter: don't log it as unretrieved.
                waiter.exception()
            self._resume_drain_waiters()
        finally:
            # Whatever happened, whoever waits for the end of the connection mustn't hang.
            if not self._connection_lost.done():
                self._connection_lost.set_result(None)

    def pause_writing(self) -> None:
        # Reading goes on: two peers that stream to each other while reading would
        # deadlock otherwise. The pongs that the peer's pings call for wait instead.
        self._writing_paused = True
        self.protocol.pause_pongs()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self.protocol.resume_pongs()
        if self.protocol.has_data_to_send:
            self._flush()
        self._resume_drain_waiters()

    def _resume_drain_waiters(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


_RECEIVE_BUFFER_SIZE = 256 * 1024
_thread_local = threading.local()


def _receive_buffer() -> memoryview:
    """The receive buffer of the current thread: one per event loop, not per connection."""
    try:
        buffer: memoryview = _thread_local.receive_buffer
    except AttributeError:
        buffer = _thread_local.receive_buffer = memoryview(bytearray(_RECEIVE_BUFFER_SIZE))
    return buffer


class Opener(abc.ABC, Generic[_Opened]):
    """What :func:`~wsio.connect` and :func:`~wsio.serve` return: ``await`` it for the opened
    object, or use it as an async context manager that closes that object on exit."""

    @abc.abstractmethod
    async def _open(self) -> _Opened:
        """Open the connection or start the server."""

    def __await__(self) -> Generator[Any, None, _Opened]:
        return self._open().__await__()

    async def __aenter__(self) -> _Opened:
        self._opened = await self._open()
        return self._opened

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._opened.__aexit__(exc_type, exc_value, traceback)


async def _aiter_sync(items: Iterable[DataLike]) -> AsyncIterator[DataLike]:
    for item in items:
        yield item
