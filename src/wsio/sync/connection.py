"""The threads I/O layer shared by clients and servers.

A :class:`Connection` owns a blocking socket and moves bytes between it and the sans-I/O
core (:mod:`wsio.protocol`). Once the opening handshake is over, a reader thread per
connection reads the socket, feeds the core, queues the messages it parses, answers what
the core says to answer and runs the connection's timers (keepalive, the close timeout,
the grace before the close frame of a failure). The application's threads call
:meth:`~Connection.recv`, :meth:`~Connection.send`, :meth:`~Connection.ping` and
:meth:`~Connection.close`: one thread may receive at a time, any number may send.

Backpressure goes both ways. Reading stops while ``max_queue`` messages wait for
:meth:`~Connection.recv`, so that a peer can't make the queue grow; :meth:`~Connection.send`
returns once the kernel took the bytes, so a peer that doesn't read makes it wait.

Locks, always taken in this order: ``_send_lock`` (one message at a time, a fragmented one
included), ``_write_lock`` (one writer of the socket, holding it while taking the core's
bytes so that they go out in the order queued), ``_mutex`` (the core and the queue). The
reader thread never waits for ``_write_lock``: when a sender holds it, what the reader
queued (pongs, the close frame) goes out with the sender's next write. So a sender stuck on
a peer that doesn't read never stops the reader, and two peers that stream to each other
while reading can't deadlock.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import select
import socket
import ssl as ssl_module
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Self, Unpack, cast

from .. import defaults
from ..exceptions import ConcurrencyError, ConnectionClosedOK
from ..protocol.connection import Pong, PreparedMessage, Protocol, State
from ..protocol.utf8 import convert
from ..shared import messages as commands
from ..shared.broadcast import Outcome
from ..shared.connection import (
    HANDSHAKE_EVENTS,
    MESSAGE_EVENTS,
    BaseConnection,
    ConnectionOptions,
    HandshakeEvent,
)
from ..shared.messages import Data, DataLike
from . import broadcasting

__all__ = ["Connection"]


#: Bytes asked of the socket per read: room for a 64 KiB message with its frame header and
#: a control frame, so that such a message comes in one read, which the core parses whole
#: rather than buffering a partial frame (a quarter less CPU per 64 KiB message, measured).
#: Under 128 KiB: glibc would map and unmap a larger buffer for every read.
_READ_SIZE = 65536 + 1024

#: The flag of a send that takes what the kernel has room for and never waits (not on
#: every platform).
_DONTWAIT: int | None = getattr(socket, "MSG_DONTWAIT", None)


class Connection(BaseConnection[concurrent.futures.Future[float]]):
    """A WebSocket connection over a blocking socket, served by threads; see
    :class:`~wsio.sync.client.ClientConnection` and
    :class:`~wsio.sync.server.ServerConnection` for the two sides.
    """

    def __init__(
        self, sock: socket.socket, protocol: Protocol, **options: Unpack[ConnectionOptions]
    ) -> None:
        super().__init__(protocol, **options)
        self.socket = sock
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # As asyncio's transports do: every write goes out at once, rather than
            # waiting (Nagle's algorithm) for the peer to acknowledge the previous one,
            # which the fragments of a message, or frames sent in turn, would otherwise
            # wait for, up to the peer's delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        self._send_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._mutex = threading.Lock()
        # Signalled when a message is queued or taken and when the connection ends.
        self._changed = threading.Condition(self._mutex)
        self._messages: collections.deque[Data] = collections.deque()
        self._recv_in_progress = False
        # The thread sending a fragmented message, while it does.
        self._fragmenting_thread: int | None = None
        # The handshake message, once the core parsed it.
        self._handshake_event: HandshakeEvent | None = None
        self._reader: threading.Thread | None = None
        self._closed = threading.Event()
        self._poller: select.poll | None = None
        # The reader's timers, as time.monotonic() deadlines; None when not armed.
        self._close_deadline: float | None = None
        self._failure_deadline: float | None = None
        self._ping_due: float | None = None
        self._pong_deadline: float | None = None
        self._keepalive_waiter: concurrent.futures.Future[float] | None = None

    # Public API ---------------------------------------------------------------------------

    @property
    def local_address(self) -> Any:
        """Local address of the socket; ``None`` once it is closed."""
        return _address(self.socket.getsockname)

    @property
    def remote_address(self) -> Any:
        """Remote address of the socket; ``None`` once it is closed."""
        return _address(self.socket.getpeername)

    def recv(self, timeout: float | None = None, decode: bool | None = None) -> Data:
        """Wait for the next message: ``str`` for text, ``bytes`` for binary.

        :param timeout: seconds to wait; ``None`` waits as long as the connection is open.
            A message that arrives later is returned by the next call: none is lost.
        :param decode: ``False`` returns text messages as their UTF-8 ``bytes``; ``True``
            returns binary messages decoded from UTF-8; ``None`` leaves both as they came.
        :raises ConnectionClosed: the connection is closed and no message is left.
        :raises TimeoutError: no message came within ``timeout``.
        :raises ConcurrencyError: another thread is already waiting in :meth:`recv`.
        :raises UnicodeDecodeError: ``decode=True`` and a binary message that isn't UTF-8
            (the message is consumed; the connection stays open).
        """
        with self._mutex:
            if self._recv_in_progress:
                raise ConcurrencyError("another thread is already running recv()")
            self._recv_in_progress = True
        try:
            with self._mutex:
                message = self._take_message(timeout)
        finally:
            self._recv_in_progress = False
            if self.protocol.has_data_to_send:
                # Taking the message released a failure, or let the core decode more.
                self._flush()
        return message if decode is None else convert(message, decode)

    def __iter__(self) -> Iterator[Data]:
        """Iterate over messages; stop quietly on a normal closure (1000, 1001, 1005)."""
        while True:
            try:
                yield self.recv()
            except ConnectionClosedOK:
                return

    def send(
        self, message: DataLike | Iterable[DataLike], *, compress: bool | None = None
    ) -> None:
        """Send a message: ``str`` as text, bytes-like as binary, an iterable of either as
        one fragmented message (every fragment of the same type).

        ``compress`` is as for the asyncio API. Returns once the kernel took the bytes:
        a peer that doesn't read makes it wait. Other threads' messages wait for a
        fragmented message to end; pings and pongs may go between its fragments.

        :raises ConnectionClosed: the connection is closing or closed.
        :raises TypeError: an unsupported type, or fragments of mixed types.
        :raises InvalidArgument: text that isn't valid Unicode (a lone surrogate).
        :raises ConcurrencyError: the thread that sends a fragmented message calls
            :meth:`send` from its iterable.
        """
        fragmenting = self._fragmenting_thread
        if fragmenting is not None and fragmenting == threading.get_ident():
            raise ConcurrencyError("send() called while this thread sends a fragmented message")
        with self._send_lock:
            with self._write_lock:
                with self._mutex:
                    queued = commands.queue_message(self.protocol, message, compress)
                    writes = self._take_writes() if queued else None
                if writes is not None:
                    self._write(writes)
            if writes is not None:
                self._flush_leftovers()
            elif isinstance(message, Mapping):
                # A dict is iterable, but sending its keys as fragments is never what's meant.
                raise TypeError("message is a dict-like object: serialize it first")
            elif isinstance(message, Iterable):
                self._send_fragments(cast(Iterable[DataLike], message), compress)
            else:
                raise TypeError(f"message has an unsupported type: {type(message).__name__}")

    def _send_fragments(self, fragments: Iterable[DataLike], compress: bool | None) -> None:
        """Send a fragmented message (RFC 6455 §5.4); ``_send_lock`` is held.

        Each fragment is sent once the next one is known, so that the last carries FIN.
        If the iterable fails half-way, the message can't be completed: the connection
        fails with 1011.
        """
        iterator = iter(fragments)
        self._fragmenting_thread = threading.get_ident()
        started = False
        try:
            current = next(iterator, None)
            if current is None:
                return
            text = isinstance(current, str)
            while current is not None:
                data = commands.fragment_bytes(current, text)
                current = next(iterator, None)
                with self._mutex:
                    commands.queue_fragment(
                        self.protocol,
                        data,
                        first=not started,
                        text=text,
                        fin=current is None,
                        compress=compress,
                    )
                started = True
                self._flush()
        except BaseException:
            if started:
                with self._mutex:
                    commands.abandon_fragmented(self.protocol)
                self._flush()
            raise
        finally:
            self._fragmenting_thread = None

    def ping(self, data: DataLike | None = None, timeout: float | None = None) -> float:
        """Send a ping and wait for the matching pong; return the round-trip time in
        seconds. Without ``data``, a random 4-byte payload is used.

        :raises ConnectionClosed: the connection closed before the pong arrived.
        :raises TimeoutError: no pong within ``timeout`` seconds (``None``: no limit).
        :raises InvalidArgument: ``data`` is over 125 bytes.
        :raises ConcurrencyError: a ping with the same payload is already waiting.
        """
        return self._send_ping(data).result(timeout)

    def _send_ping(self, data: DataLike | None) -> concurrent.futures.Future[float]:
        waiter: concurrent.futures.Future[float] = concurrent.futures.Future()
        with self._mutex:
            payload = commands.ping_payload(data, self._pong_waiters)
            self._check_open()
            self.protocol.send_ping(payload)
            self._pong_waiters[payload] = (waiter, time.perf_counter())
        self._flush()
        return waiter

    def pong(self, data: DataLike = b"") -> None:
        """Send an unsolicited pong, e.g. as a unidirectional heartbeat (RFC 6455 §5.5.3)."""
        payload = commands.control_payload(data, "pong payload")
        with self._mutex:
            self._check_open()
            self.protocol.send_pong(payload)
        self._flush()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Perform the closing handshake and wait until the TCP connection is closed.

        Returns after ``close_timeout`` at most, aborting the connection if the peer
        doesn't cooperate. Idempotent.

        :raises InvalidArgument: a code that may not be sent or a reason over 123 bytes.
        """
        self._start_closing(code, reason)
        self._flush()
        if self._reader is None:
            # The opening handshake never completed: no thread reads for a close frame.
            self._end()
            return
        if not self._closed.wait(self.close_timeout):
            # The reader may be blocked in a read with no deadline: this thread keeps
            # the close timeout.
            self._close_timed_out()
            self._closed.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        self.close(1000 if exc_type is None else 1011)

    # Inner workings: the application's side -----------------------------------------------

    def _take_message(self, timeout: float | None) -> Data:
        """The next message, waiting ``timeout`` seconds at most; ``_mutex`` is held."""
        messages = self._messages
        if not messages:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not messages:
                if not self.protocol.receiving:
                    # Every message before a violation was taken: fail now.
                    self._release_failure()
                    raise self.protocol.close_exc
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"no message within {timeout} s")
                self._changed.wait(remaining)
        message = messages.popleft()
        if len(messages) < self.max_queue:
            # The reader may wait for room, and the core may hold messages back.
            self._changed.notify_all()
            if self.protocol.parsing_paused:
                self._process_events()
        return message

    def _release_failure(self) -> None:
        """Let the close frame of a failure held for the application go; ``_mutex`` is
        held, and the caller flushes."""
        self._failure_deadline = None
        if self.protocol.failure_held:
            self.protocol.release_failure()
            self._arm_close_timer()

    # Inner workings: writing --------------------------------------------------------------

    def _take_writes(self) -> list[bytes | memoryview]:
        """What the core queued for writing; ``_write_lock`` and ``_mutex`` are held."""
        writes = self.protocol.data_to_send()
        self._arm_close_timer()
        return writes

    def _arm_close_timer(self) -> None:
        if (
            self._close_deadline is None
            and self.close_timeout is not None
            and self.protocol.close_expected()
        ):
            self._close_deadline = time.monotonic() + self.close_timeout

    def _flush(self, wait: bool = True) -> None:
        """Write what the core queued. With ``wait=False`` (the reader), give up when
        another thread writes: it writes what is queued before it lets go."""
        if self._write_queued(wait):
            self._flush_leftovers(wait)

    def _flush_leftovers(self, wait: bool = True) -> None:
        """Write what another thread queued while this one held ``_write_lock`` (that
        thread found the lock taken and left it to us), and the rest of a large payload
        that the core masks a piece at a time, a piece per round."""
        # Read without _mutex: whatever was queued before the lock was let go shows here.
        while self.protocol.has_data_to_send and self._write_queued(wait):
            pass

    def _write_queued(self, wait: bool) -> bool:
        """Take what the core queued and write it; ``False`` when another thread holds
        ``_write_lock`` and ``wait`` is false."""
        if not self._write_lock.acquire(blocking=wait):
            return False
        try:
            with self._mutex:
                writes = self._take_writes()
            self._write(writes)
        finally:
            self._write_lock.release()
        return True

    def _write(self, writes: list[bytes | memoryview]) -> None:
        """Write bytes, and close TCP where the core says so; ``_write_lock`` is held."""
        for data in writes:
            try:
                if data:
                    self.socket.sendall(data)
                elif (
                    isinstance(self.socket, ssl_module.SSLSocket)
                    or self.protocol.stream_ended
                    or self.protocol.peer_done
                ):
                    # TLS can't half-close, and once the peer is done there is nothing
                    # left to read: close.
                    self._abort()
                else:
                    self.socket.shutdown(socket.SHUT_WR)
            except OSError as exc:
                # The peer reset the connection, or it was closed under us: what is left
                # can't reach the peer.
                self._lose(exc)
                return

    def _lose(self, exc: OSError) -> None:
        """The socket failed under us: drop the connection, with ``exc`` as its cause
        unless the connection had failed already."""
        with self._mutex:
            if self.protocol.failure is None:
                self.protocol.failure = exc
            self.protocol.receive_eof()
            self.protocol.drop_data_to_send()  # nowhere to write them
            self._process_events()
        self._abort()

    def _abort(self) -> None:
        """Close TCP now. Shutting down rather than closing wakes a reader blocked on the
        socket, and keeps its descriptor from being reused until the reader is done."""
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)

    # Inner workings: reading --------------------------------------------------------------

    def _process_events(self) -> None:
        """Dispatch what the core parsed; ``_mutex`` is held."""
        protocol = self.protocol
        messages = self._messages
        queued = len(messages)
        while True:
            for event in protocol.events_received():
                if isinstance(event, MESSAGE_EVENTS):
                    messages.append(event.data)
                elif isinstance(event, Pong):
                    self._acknowledge(event.acknowledged)
                elif isinstance(event, HANDSHAKE_EVENTS):
                    self._handshake_event = event
            room = self.max_queue - len(messages)
            if room > 0 and protocol.parsing_paused:
                # Decode the messages held back, up to the queue's bound.
                protocol.allow_messages(room)
                continue
            protocol.allow_messages(max(room, 0))
            break
        if protocol.failure is not None and protocol.failure_held:
            # Let the application handle the messages that came before the violation, and
            # fail when it comes back for more, or after a short grace if it doesn't.
            if not messages:
                self._release_failure()
            elif self._failure_deadline is None:
                self._failure_deadline = time.monotonic() + defaults.FAILURE_GRACE
        if len(messages) != queued or not protocol.receiving or protocol.state is not State.OPEN:
            # A read that only buffered part of a message changes nothing that a thread
            # waits for: waking the receiver for it would cost two thread switches.
            self._changed.notify_all()

    def _acknowledge(self, acknowledged: Iterable[bytes]) -> None:
        super()._acknowledge(acknowledged)
        if self._keepalive_waiter is not None and self._keepalive_waiter.done():
            self._keepalive_waiter = None
            self._pong_deadline = None
            self._schedule_ping()

    def _schedule_ping(self) -> None:
        if self.ping_interval is not None and self.protocol.state is State.OPEN:
            self._ping_due = time.monotonic() + self.ping_interval

    def _receive_handshake(self, deadline: float | None) -> None:
        """Read until the core parsed the handshake message (the request or the
        response), refused it, or the stream ended, before ``deadline``
        (``time.monotonic()``).

        The calling thread reads: the reader thread starts once the handshake is over.

        :raises TimeoutError: the deadline passed.
        :raises OSError: the socket failed.
        """
        sock = self.socket
        try:
            while self._handshake_event is None and self.protocol.handshake_exc is None:
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError("timed out during the opening handshake")
                    sock.settimeout(remaining)
                try:
                    data = sock.recv(_READ_SIZE)
                except TimeoutError:
                    raise TimeoutError("timed out during the opening handshake") from None
                self._receive(data)
                if not data:
                    break
        finally:
            sock.settimeout(None)

    def _start_reader(self, name: str) -> None:
        """Hand the socket to a reader thread, once the opening handshake is over."""
        self._schedule_ping()
        self._reader = threading.Thread(target=self._read_loop, name=name, daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        try:
            while self._read_once():
                pass
        except Exception as exc:  # pragma: no cover - a bug of ours
            self.logger.error("reader thread failed", exc_info=True)
            with self._mutex:
                if self.protocol.failure is None:
                    self.protocol.failure = exc
        finally:
            self._end()

    def _read_once(self) -> bool:
        """Run the timers that are due, then read once; ``False`` at the end of the stream."""
        with self._mutex:
            delay = self._run_timers()
            # A full queue stops reading: the peer can't make it grow. The closing
            # handshake reads on, for the peer's close frame.
            while len(self._messages) >= self.max_queue and self.protocol.state is State.OPEN:
                if delay is not None and delay <= 0:
                    break
                self._changed.wait(delay)
                delay = self._run_timers()
        if self.protocol.has_data_to_send:
            self._flush(wait=False)
        if delay is not None and not self._readable(delay):
            return True
        try:
            data = self.socket.recv(_READ_SIZE)
        except OSError as exc:
            with self._mutex:
                if self.protocol.failure is None:
                    self.protocol.failure = exc
            data = b""
        self._receive(data)
        if self.protocol.has_data_to_send:
            self._flush(wait=False)
        return bool(data)

    def _receive(self, data: bytes) -> None:
        """Feed what a read returned to the core (``b""``: the end of the stream), and
        dispatch what it parsed."""
        with self._mutex:
            if data:
                self.protocol.receive_data(data)
            else:
                self.protocol.receive_eof()
            self._process_events()

    def _readable(self, timeout: float) -> bool:
        """Whether the socket has data to read within ``timeout`` seconds."""
        sock = self.socket
        if isinstance(sock, ssl_module.SSLSocket) and sock.pending():
            return True  # decrypted already: the kernel has nothing to say about it
        if timeout <= 0:
            return False
        if self._poller is None:
            self._poller = select.poll()
            self._poller.register(sock, select.POLLIN)
        # Round up: poll() takes milliseconds, and waking early would spin.
        return bool(self._poller.poll(int(timeout * 1000) + 1))

    def _run_timers(self) -> float | None:
        """Fire the reader's timers that are due; return the seconds until the next one
        (``None``: none armed). ``_mutex`` is held."""
        now = time.monotonic()
        protocol = self.protocol
        if self._close_deadline is not None and now >= self._close_deadline:
            self._close_deadline = None
            protocol.close_timeout_expired()
            self._process_events()
            self._abort()
        if self._failure_deadline is not None and now >= self._failure_deadline:
            self._release_failure()
        if self._ping_due is not None and now >= self._ping_due:
            self._ping_due = None
            if protocol.state is State.OPEN:
                payload = commands.ping_payload(None, self._pong_waiters)
                protocol.send_ping(payload)
                self._keepalive_waiter = concurrent.futures.Future()
                self._pong_waiters[payload] = (self._keepalive_waiter, time.perf_counter())
                if self.ping_timeout is not None:
                    self._pong_deadline = now + self.ping_timeout
        if self._pong_deadline is not None and now >= self._pong_deadline:
            self._pong_deadline = None
            if protocol.state is State.OPEN:
                self.logger.info("keepalive ping timed out after %.3g s", self.ping_timeout)
                protocol.ping_timeout_expired()
                self._process_events()
                self._arm_close_timer()
        deadlines = [
            deadline
            for deadline in (
                self._close_deadline,
                self._failure_deadline,
                self._ping_due,
                self._pong_deadline,
            )
            if deadline is not None
        ]
        return min(deadlines) - now if deadlines else None

    def _end(self) -> None:
        """The TCP connection is over: settle everything that waits on it, close the
        socket once no thread writes to it."""
        with self._mutex:
            protocol = self.protocol
            if protocol.failure is not None:
                # A peer's mistake is no bug of ours: one line at debug level, no traceback.
                self.logger.debug("connection failed: %s", protocol.failure)
            protocol.receive_eof()
            protocol.drop_data_to_send()  # nowhere to write them anymore
            self._process_events()
            self._close_deadline = self._failure_deadline = None
            self._ping_due = self._pong_deadline = None
            self._abandon_pings()
        self._abort()
        # A sender blocked on the socket got an error from the shutdown: once it let go,
        # the descriptor can close.
        with self._write_lock:
            self.socket.close()
        self._closed.set()

    # Inner workings: for broadcast --------------------------------------------------------

    def _offer(
        self, prepared: PreparedMessage, limit: int | None, slow_consumer: str | None
    ) -> Outcome:
        """A broadcast message, handed over without waiting unless this connection is a
        slow consumer (:class:`~wsio.shared.broadcast.Recipient`)."""
        return broadcasting.offer(self, prepared, limit, slow_consumer)

    def _start_closing(self, code: int, reason: str) -> None:
        """Start the closing handshake without writing: with the close frame of a failure
        held back, if there is one; with ``code`` and ``reason`` otherwise. The caller
        flushes."""
        with self._mutex:
            protocol = self.protocol
            if protocol.failure_held:
                protocol.release_failure()
            elif protocol.state is State.OPEN:
                protocol.send_close(code, reason)
            elif protocol.state is State.CONNECTING:
                self._abort()
            # A reader waiting for room in the queue reads on for the close frame.
            self._changed.notify_all()

    def _close_timed_out(self) -> None:
        """The closing handshake outlasted ``close_timeout``: end the connection, unless
        it ended already."""
        if self._closed.is_set():
            return
        with self._mutex:
            self.protocol.close_timeout_expired()
        self._abort()

    def _write_nowait(self, writes: list[bytes | memoryview]) -> list[bytes | memoryview]:
        """Write what the kernel takes of ``writes`` at once; return the rest, which must
        be written next (with :meth:`_write`), before anything else. ``_write_lock`` is
        held.

        Only a plain socket can write without waiting: TLS writes each record whole,
        waiting for room if need be, so all of ``writes`` comes back for a TLS socket. A
        half-close marker stops it too: :meth:`_write` knows what to do with one.
        """
        sock = self.socket
        if type(sock) is not socket.socket or _DONTWAIT is None:
            return writes
        for index, data in enumerate(writes):
            if not data:
                return writes[index:]
            try:
                sent = sock.send(data, _DONTWAIT)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self._lose(exc)
                return []
            if sent < len(data):
                return [data[sent:], *writes[index + 1 :]]
        return []


def _address(get_address: Callable[[], Any]) -> Any:
    """An address of the socket, or ``None`` when the socket can't tell (closed)."""
    try:
        return get_address()
    except OSError:
        return None
