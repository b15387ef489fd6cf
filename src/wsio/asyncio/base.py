"""What every asyncio connection shares, whatever delivers its messages.

A :class:`ConnectionBase` is the :class:`asyncio.Protocol` of one TCP (or TLS) connection.
It moves bytes between the transport and the sans-I/O core (:mod:`wsio.protocol`) and
waits: for the write buffer to drain, for pongs, for the end of the connection. It runs
the opening handshake's end, keepalive, the closing handshake and its timeout, and the
failure of the connection. Every protocol rule, and every decision about what to do when
a timer fires, is the core's.

How received messages reach the application is left to the subclasses, in
:meth:`~ConnectionBase._process_events`: :class:`wsio.asyncio.connection.Connection` queues
them for ``recv()`` and ``async for``; :class:`wsio.asyncio.listener.ListenerConnection`
hands each to a :class:`~wsio.asyncio.listener.Listener` as it is parsed.
"""

from __future__ import annotations

import abc
import asyncio
import asyncio.selector_events
import functools
import os
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self, TypeAlias, Unpack

from .. import defaults
from ..protocol.connection import (
    PreparedMessage,
    Protocol,
    State,
)
from ..protocol.frames import CloseCode, encode_text
from ..shared.broadcast import Outcome, slow_consumer_verdict
from ..shared.connection import (
    BaseConnection,
    ConnectionOptions,
    HandshakeEvent,
)
from ..shared.messages import (
    BYTES_LIKE,
    WHOLE_MESSAGE,
    DataLike,
    ping_payload,
)
from .timers import coarse_timers

__all__ = ["ConnectionBase"]

_Address: TypeAlias = Any
# Read on the path of every message and handshake, where an enum's class attribute costs as
# much as a property call; the asyncio layer's modules take them from here.
_CONNECTING, _OPEN = State.CONNECTING, State.OPEN


class ConnectionBase(
    BaseConnection[asyncio.Future[float]], asyncio.BufferedProtocol, metaclass=abc.ABCMeta
):
    """A WebSocket connection over asyncio, short of the delivery of received messages.

    Outgoing bytes wait in the transport's buffer; above ``write_limit`` bytes, writing
    is paused (:attr:`writing_paused`) until it drains below a quarter of that.
    """

    # Slots: a server holds thousands of connections, and an instance dict costs about
    # 1.5 KiB each. Instances still have a __dict__ (BaseConnection has no slots), so that
    # applications may attach their own attributes to a connection (ws.user = ...); the
    # dict is only allocated when they do.
    __slots__ = (
        "_close_timer",
        "_drain_waiters",
        "_failure_timer",
        "_handshake_over",
        "_lost",
        "_lost_waiter",
        "_lost_waiters",
        "_pong_waiters",
        "_read_buffer",
        "_reading_paused",
        "_reading_payload",
        "_socket_fd",
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
        # The socket that _send_message writes to itself while the transport's buffer is
        # empty, or -1: see _writable_socket().
        self._socket_fd = -1
        # Where the loop reads: shared by the connections of this thread rather than
        # allocated per read (256 KiB for asyncio, mapped and unmapped each time for large
        # messages). buffer_updated() follows each read at once, and the core copies what
        # it keeps before returning (see Protocol.receive_data): the buffer is free for the
        # next read, whichever connection it is for.
        self._read_buffer = _receive_buffer()
        # Whether the last get_buffer() gave the payload of a large frame to read into.
        self._reading_payload = False
        self._reading_paused = False
        self._writing_paused = False
        # Created as something first waits, as are the pings' waiters: most connections
        # never wait for either, and a server holds thousands of them.
        self._drain_waiters: list[asyncio.Future[None]] | None = None
        self._pong_waiters = _NO_PINGS
        self._close_timer: asyncio.TimerHandle | None = None
        self._failure_timer: asyncio.TimerHandle | None = None
        # The connection's one coarse timer at a time (open_timeout, then keepalive), and
        # the slot it is armed in, if any.
        self._timers = coarse_timers(self.loop)
        self._timer_slot: float | None = None
        # Whether the opening handshake is over, whatever its outcome.
        self._handshake_over = False
        # Whether the TCP connection is closed, and what waits for that, if anything.
        self._lost = False
        self._lost_waiter: asyncio.Future[None] | None = None
        # Every future that waits for the end of the connection, _lost_waiter included.
        self._lost_waiters: list[asyncio.Future[None]] | None = None

    # Public API ---------------------------------------------------------------------------

    @property
    def local_address(self) -> _Address:
        """Local address of the socket."""
        return None if self.transport is None else self.transport.get_extra_info("sockname")

    @property
    def remote_address(self) -> _Address:
        """Remote address of the socket."""
        return None if self.transport is None else self.transport.get_extra_info("peername")

    def _write_message(self, message: object, compress: bool | None) -> bool:
        """Send a whole message, ``str`` or bytes-like, without waiting; ``False`` for any
        other type. No fragmented message may be under way.

        :raises ConnectionClosed: the connection is closing or closed.
        """
        if not isinstance(message, WHOLE_MESSAGE):
            return False
        self._send_message(message, compress)
        return True

    def _send_message(self, message: DataLike, compress: bool | None = None) -> None:
        """Send a whole message at once: ``str`` as text, bytes-like as binary. What the
        transport can't write now waits in its buffer.

        With permessage-deflate negotiated, ``compress=False`` sends this message
        uncompressed and ``compress=True`` compresses it whatever its size; by default,
        messages under ``compression_threshold`` bytes go uncompressed (RFC 7692 §6).

        :raises ConnectionClosed: the connection is closing or closed.
        :raises TypeError: an unsupported type.
        :raises InvalidArgument: text that isn't valid Unicode (a lone surrogate).
        """
        # The core hands the frame back to write when nothing else is queued.
        protocol = self.protocol
        if protocol.state is not _OPEN:
            raise protocol.close_exc
        if type(message) is bytes:
            frame = protocol.send_message(message, False, compress)
        elif isinstance(message, str):
            try:
                data = message.encode()
            except UnicodeEncodeError:
                data = encode_text(message, "message")  # raises InvalidArgument
            frame = protocol.send_message(data, True, compress)
        elif isinstance(message, BYTES_LIKE):
            # Other buffers may change once this returns: a copy, taken now.
            frame = protocol.send_message(bytes(message), False, compress)
        else:
            raise TypeError(f"message has an unsupported type: {type(message).__name__}")
        if frame is None:
            # Queued behind other frames, or not a frame the core hands over.
            self._flush()
            return
        # The connection is open: it has its transport.
        transport: asyncio.Transport = self.transport  # type: ignore[assignment]
        if self._socket_fd >= 0:
            # asyncio's plain TCP transport (_writable_socket): its is_closing() and
            # get_write_buffer_size() read as the attributes they return, without two
            # calls of Python per message.
            if transport._closing:  # type: ignore[attr-defined]
                return
            if not transport._buffer:  # type: ignore[attr-defined]
                # What the transport's write() would do with an empty buffer, done here:
                # a send() at once. The transport closes the socket only once it is
                # closing, so the descriptor is still this connection's.
                try:
                    sent = os.write(self._socket_fd, frame)
                except OSError:
                    # EAGAIN: the transport buffers the frame. Any other error: the
                    # transport meets it again and fails the connection, as for its own
                    # send.
                    sent = 0
                if sent == len(frame):
                    return
                frame = memoryview(frame)[sent:]
        elif transport.is_closing():
            return
        transport.write(frame)

    def _send_ping(self, data: DataLike | None) -> asyncio.Future[float]:
        payload = ping_payload(data, self._pong_waiters)
        self._check_open()
        self.protocol.send_ping(payload)
        waiter: asyncio.Future[float] = self.loop.create_future()
        if self._pong_waiters is _NO_PINGS:
            self._pong_waiters = {}
        self._pong_waiters[payload] = (waiter, time.perf_counter())
        self._flush()
        return waiter

    async def wait_closed(self) -> None:
        """Wait until the TCP connection is closed."""
        await self._until_lost()

    async def _until_lost(self) -> None:
        """Wait until the TCP connection is closed, on a future of this caller's own."""
        if self._lost:
            return
        waiter = self._lost_future()
        try:
            await waiter
        except asyncio.CancelledError:
            # A wait given up (a timeout, a cancelled task) leaves nothing listed: polling
            # wait_closed() on a long connection mustn't grow the list without bound.
            if self._lost_waiters is not None and waiter in self._lost_waiters:
                self._lost_waiters.remove(waiter)
            raise

    def _lost_future(self) -> asyncio.Future[None]:
        """A future of the caller's own, done once the TCP connection is closed, which
        :meth:`connection_lost` resolves: cancelling it cancels nobody else's wait, and
        it resumes its waiter a turn of the loop sooner than :func:`asyncio.shield` of a
        shared future would."""
        waiter: asyncio.Future[None] = self.loop.create_future()
        if self._lost:
            waiter.set_result(None)
        elif self._lost_waiters is None:
            self._lost_waiters = [waiter]
        else:
            self._lost_waiters.append(waiter)
        return waiter

    @property
    def _connection_lost(self) -> asyncio.Future[None]:
        """Resolved once the TCP connection is closed: created when first asked for."""
        waiter = self._lost_waiter
        if waiter is None:
            waiter = self._lost_waiter = self._lost_future()
        return waiter

    @property
    def write_buffer_size(self) -> int:
        """Bytes written and not yet sent: those in the transport's buffer, and the rest
        of a large payload still to be masked and written."""
        pending = self.protocol.size_to_send
        return (
            pending if self.transport is None else self.transport.get_write_buffer_size() + pending
        )

    @property
    def writing_paused(self) -> bool:
        """Whether the write buffer went above ``write_limit`` and hasn't drained yet."""
        return self._writing_paused

    @abc.abstractmethod
    def close(self, code: int = 1000, reason: str = "") -> Awaitable[None]:
        """Start the closing handshake; what is returned is done once the TCP connection
        is closed."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close(1000 if exc_type is None else 1011)

    # Inner workings -----------------------------------------------------------------------

    def _offer(
        self, prepared: PreparedMessage, limit: int | None, slow_consumer: str | None
    ) -> Outcome:
        """A broadcast message, handed over without waiting unless this connection is a
        slow consumer (:class:`~wsio.shared.broadcast.Recipient`)."""
        # The unsent bytes: the transport's buffer, the rest of a large frame the core
        # masks a piece at a time, and what waits for a fragmented message to end.
        protocol = self.protocol
        transport = self.transport
        if protocol.state is not _OPEN or transport is None or transport.is_closing():
            return None
        verdict = slow_consumer_verdict(
            transport.get_write_buffer_size() + protocol.size_to_send + protocol.deferred_size,
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
        elif self.protocol.state is _OPEN:
            self.protocol.send_close(code, reason)
            self._flush()
        elif self.protocol.state is _CONNECTING:
            self._abort()

    async def _drain(self) -> None:
        """Wait while the transport's buffer is above the write limit."""
        if not self._writing_paused:
            return
        waiter: asyncio.Future[None] = self.loop.create_future()
        if self._drain_waiters is None:
            self._drain_waiters = []
        self._drain_waiters.append(waiter)
        await waiter
        if self._lost:
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
        if protocol.state is _OPEN:
            # Frames only: no half-close is queued, reading resumes with the queue (recv)
            # and no close is expected while the connection is open.
            while not transport.is_closing():
                for data in protocol.data_to_send():
                    transport.write(data)
                # The rest of a large payload that the core masks a piece at a time: its
                # next piece while the transport is below the write limit, else once it
                # drains (resume_writing).
                if self._writing_paused or not protocol.has_data_to_send:
                    return
            protocol.drop_data_to_send()
            return
        if self._lost:
            # The connection is gone: nothing to write, no close to wait for.
            protocol.drop_data_to_send()
            return
        if self._reading_paused:
            # The closing handshake needs the peer's close frame, wherever it is queued:
            # read on, for close_timeout at most.
            self._reading_paused = False
            if not transport.is_closing():
                transport.resume_reading()
        while True:
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
            # The rest of a large masked payload, as above.
            if self._writing_paused or not protocol.has_data_to_send:
                break
            if transport.is_closing():
                protocol.drop_data_to_send()
                break
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

    @abc.abstractmethod
    def _process_events(self) -> None:
        """Dispatch what the core parsed, then write what it queued: called after each
        read, and whenever the core may have changed state."""

    def _handshake_event(self, event: HandshakeEvent) -> None:
        """Hook for the sides: a handshake message arrived."""

    def _end_handshake(self) -> None:
        """The opening handshake is over, whatever its outcome (sides may extend this)."""
        self._handshake_over = True

    def _arm(self, when: float, callback: Callable[[Self], None]) -> None:
        """Arm the connection's coarse timer: ``callback(self)`` at ``when`` or a little
        later (:mod:`wsio.asyncio.timers`). One at a time: arming replaces the timer armed.
        """
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
            self._arm(self.loop.time() + self.ping_interval, type(self)._keepalive_ping)

    def _keepalive_ping(self) -> None:
        self._timer_slot = None
        if self.protocol.state is not State.OPEN:
            return
        waiter = self._send_ping(None)
        waiter.add_done_callback(self._keepalive_pong)
        if self.ping_timeout is not None:
            self._arm(
                self.loop.time() + self.ping_timeout,
                functools.partial(type(self)._keepalive_timed_out, waiter=waiter),
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
        # A Transport, whose class uvloop's don't subclass (no cast(): a call per accept).
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(self.write_limit)  # type: ignore[attr-defined]
        self._socket_fd = _writable_socket(transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        payload_buffer = self.protocol.payload_buffer
        if payload_buffer is None or payload_buffer.remaining < _PAYLOAD_READ_MIN:
            return self._read_buffer
        # The rest of a large frame's payload goes from the kernel straight into the
        # message, with no copy (Protocol.receive_payload). The flag outlives a read that
        # ends without data only if the connection fails before the next one: the core
        # drops what comes then anyway.
        self._reading_payload = True
        return payload_buffer.prepare()

    def buffer_updated(self, nbytes: int) -> None:
        # data_received() inlined: this runs for every read.
        if self._reading_payload:
            self._reading_payload = False
            self.protocol.receive_payload(nbytes)
        else:
            self.protocol.receive_data(self._read_buffer[:nbytes])
        self._process_events()

    def data_received(self, data: bytes | bytearray | memoryview) -> None:
        if self._lost:
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
        # From here on nothing can be written: _flush has nothing to do.
        self._lost = True
        try:
            if exc is not None and self.protocol.failure is None:
                self.protocol.failure = exc
            if self.protocol.failure is not None:
                # A peer's mistake is no bug of ours: one line at debug level, no traceback.
                self.logger.debug("connection failed: %s", self.protocol.failure)
            self.protocol.receive_eof()
            self.protocol.drop_data_to_send()  # nowhere to write them anymore
            self._process_events()
            for timer in (self._close_timer, self._failure_timer):
                if timer is not None:
                    timer.cancel()
            self._close_timer = self._failure_timer = None
            self._disarm()
            if not self._handshake_over:
                self._end_handshake()
            # Most connections end with neither a ping nor a send waiting: no calls then.
            if self._pong_waiters:
                for waiter in self._abandon_pings():
                    # Nobody may await a keepalive ping's waiter (or one a listener sent and
                    # dropped): don't log it as unretrieved.
                    if not waiter.cancelled():
                        waiter.exception()
            if self._drain_waiters is not None:
                self._resume_drain_waiters()
        finally:
            # Whatever happened, whoever waits for the end of the connection mustn't hang.
            lost_waiters, self._lost_waiters = self._lost_waiters, None
            for lost_waiter in lost_waiters or ():
                if not lost_waiter.done():
                    lost_waiter.set_result(None)

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
        if not self._writing_paused:
            # Writing the rest of a large masked payload may have filled the buffer again.
            self._resume_drain_waiters()

    def _resume_drain_waiters(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)


# The pings' waiters of a connection that sent none, shared: nothing is added to it
# (_send_ping gives the connection its own), and only what is in it is removed.
_NO_PINGS: dict[bytes, tuple[asyncio.Future[float], float]] = {}

_RECEIVE_BUFFER_SIZE = 256 * 1024
_thread_local = threading.local()


#: The least of a large frame's payload still to come for a read to go straight into it:
#: below, a read into the shared buffer may bring the frame's end and what follows in one
#: system call, and copying that end costs little.
_PAYLOAD_READ_MIN = 64 * 1024


# asyncio's plain TCP transport (selector event loops): its write() sends at once when its
# buffer is empty, in a Python method that costs more than the send. On POSIX only, where a
# socket's descriptor is one that os.write() takes (on Windows it is a handle).
_SELECTOR_SOCKET_TRANSPORT: type | None = (
    getattr(asyncio.selector_events, "_SelectorSocketTransport", None)
    if os.name == "posix"
    else None
)


def _writable_socket(transport: asyncio.BaseTransport) -> int:
    """The descriptor of the socket under ``transport`` if it is asyncio's plain TCP
    transport on POSIX, which a message may be sent to directly while the transport's
    buffer is empty; else -1: TLS and other loops' transports (uvloop's write is compiled)
    get every write. The transport's state is read from its ``_closing`` flag and its
    ``_buffer`` (a ``bytearray``, a ``deque`` from Python 3.12 on: empty when nothing waits),
    the attributes that ``is_closing()`` and ``get_write_buffer_size()`` read; a transport
    without them gets every write too."""
    if (
        _SELECTOR_SOCKET_TRANSPORT is None
        or type(transport) is not _SELECTOR_SOCKET_TRANSPORT
        or not isinstance(getattr(transport, "_closing", None), bool)
        or not hasattr(transport, "_buffer")
    ):
        return -1
    sock = transport.get_extra_info("socket")
    return -1 if sock is None else int(sock.fileno())


def _receive_buffer() -> memoryview:
    """The receive buffer of the current thread: one per event loop, not per connection."""
    try:
        buffer: memoryview = _thread_local.receive_buffer
    except AttributeError:
        buffer = _thread_local.receive_buffer = memoryview(bytearray(_RECEIVE_BUFFER_SIZE))
    return buffer
