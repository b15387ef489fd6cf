"""Listeners: connections that call the application for each message, with no task.

A :class:`ListenerConnection` does everything a :class:`~wsio.asyncio.connection.Connection`
does -- handshake, keepalive, timers, closing handshake, limits, failure handling -- except
that it hands each message to a :class:`Listener` as soon as the core parsed it, from the
event loop's read callback, instead of queueing it for ``recv()``. Nothing waits, so
nothing is woken: a server that answers each message from the callback costs little more
than the bytes it moves.

Flow control: a listener can't be made to buffer without bound. Messages are delivered as
they are parsed, never queued; a read holds at most what the transport read at once, and
a compressed message is decoded only once the one before it was delivered, within
``max_size``. Outgoing bytes wait in the transport's buffer (the rest of a client's frame
larger than a megabyte waits in the core, to be masked as the buffer drains):
:meth:`Listener.on_pause_writing` says when it went above ``write_limit``, and
:attr:`~ListenerConnection.write_buffer_size` how much is waiting; what the listener sends
meanwhile is its own call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Unpack

from .. import defaults
from ..exceptions import ConnectionClosed
from ..protocol.connection import Pong, Protocol, State
from ..protocol.frames import CloseCode
from ..shared.connection import HANDSHAKE_EVENTS, MESSAGE_EVENTS, ConnectionOptions
from ..shared.messages import Data, DataLike, control_payload
from .base import _CONNECTING, _OPEN, ConnectionBase

__all__ = ["Listener", "ListenerConnection", "ListenerFactory"]


class Listener:
    """What a :class:`ListenerConnection` calls; subclass it and override what you need.

    Every method runs in the event loop's thread, from a transport callback: it must not
    block. Each gets the connection, whose :meth:`~ListenerConnection.send` writes at once.
    A method that raises is an application bug: the error is logged with its traceback and
    the connection closed with 1011 (internal error); the loop goes on.
    :class:`~wsio.ConnectionClosed`, raised by a ``send`` after the connection started
    closing, is logged at debug level only.
    """

    def on_open(self, ws: ListenerConnection) -> None:
        """The opening handshake succeeded; :meth:`on_message` calls follow."""

    def on_message(self, ws: ListenerConnection, message: Data) -> None:
        """A message arrived, whole: ``str`` for text (valid UTF-8, checked as it came),
        ``bytes`` for binary; fragmented and compressed messages are delivered once
        reassembled and decoded."""

    def on_close(self, ws: ListenerConnection) -> None:
        """The TCP connection is closed; :attr:`~ListenerConnection.close_code` and
        :attr:`~ListenerConnection.close_reason` say how. Called once, after
        :meth:`on_open`, whatever ended the connection."""

    def on_pause_writing(self, ws: ListenerConnection) -> None:
        """The transport's write buffer went above ``write_limit``: the peer reads slower
        than we write. Stop sending, or drop what can be dropped, until
        :meth:`on_resume_writing`."""

    def on_resume_writing(self, ws: ListenerConnection) -> None:
        """The write buffer drained below a quarter of ``write_limit``."""


#: Makes the :class:`Listener` of a connection; a :class:`Listener` subclass will do.
ListenerFactory = Callable[[], Listener]


class ListenerConnection(ConnectionBase):
    """A WebSocket connection over asyncio that hands each message to a :class:`Listener`;
    see :func:`~wsio.serve_listener` and :func:`~wsio.connect_listener`.

    Its methods don't wait: :meth:`send` writes at once, :meth:`close` and :meth:`ping`
    return futures that a coroutine may await and a callback may ignore.

    :param listener_factory: called once the opening handshake succeeded, for the
        listener of this connection.
    """

    __slots__ = (
        "_deliver_message",
        "_delivering",
        "_held",
        "_listener_factory",
        "_listening",
        "_opened",
        "_resuming_writes",
        "listener",
    )

    def __init__(
        self,
        protocol: Protocol,
        *,
        listener_factory: ListenerFactory = Listener,
        write_limit: int = defaults.WRITE_LIMIT,
        **options: Unpack[ConnectionOptions],
    ) -> None:
        super().__init__(protocol, write_limit=write_limit, **options)
        # A message is delivered as soon as it is decoded: the core decodes one at a time
        # what an extension inflates, so that a read of compressed messages costs at
        # most one message of max_size bytes (plain ones cost no more than the read).
        protocol.allow_messages(1)
        self._listener_factory = listener_factory
        #: The listener, once the connection opened.
        self.listener: Listener | None = None
        # Whether on_open was called (on_close is due), and whether messages are still
        # delivered: not once the listener closed the connection or failed.
        self._opened = False
        self._listening = False
        # Messages parsed while the listener paused reading, delivered when it resumes.
        self._held: list[Data] | None = None
        # _listening and not _held, read at every message: kept with them.
        self._delivering = False
        # _deliver bound once, not at every read.
        self._deliver_message = self._deliver
        # Whether resume_writing is under way: a pause it causes isn't the listener's news.
        self._resuming_writes = False

    # Public API ---------------------------------------------------------------------------

    # send(message, compress=None): written once, for both kinds of connection; fragmented
    # messages need a Connection.
    send = ConnectionBase._send_message

    def ping(self, data: DataLike | None = None) -> asyncio.Future[float]:
        """Send a ping; return a future of the round-trip time, set when the matching pong
        arrives, failed with :class:`~wsio.ConnectionClosed` if the connection closes
        first. Without ``data``, a random 4-byte payload is used.

        :raises ConnectionClosed: the connection is closing or closed.
        :raises InvalidArgument: ``data`` is over 125 bytes.
        :raises ConcurrencyError: a ping with the same payload is already waiting.
        """
        return self._send_ping(data)

    def pong(self, data: DataLike = b"") -> None:
        """Send an unsolicited pong, e.g. as a unidirectional heartbeat (RFC 6455 §5.5.3)."""
        payload = control_payload(data, "pong payload")
        self._check_open()
        self.protocol.send_pong(payload)
        self._flush()

    def close(self, code: int = 1000, reason: str = "") -> asyncio.Future[None]:
        """Start the closing handshake and return at once; no message is delivered
        afterwards. The future returned is done once the TCP connection is closed (within
        ``close_timeout``). Idempotent.

        :raises InvalidArgument: a code that may not be sent or a reason over 123 bytes.
        """
        self._start_closing(code, reason)
        self._listening = self._delivering = False
        return self._lost_future()

    @property
    def reading_paused(self) -> bool:
        """Whether :meth:`pause_reading` holds the delivery of messages."""
        return self._held is not None

    def pause_reading(self) -> None:
        """Deliver no more messages until :meth:`resume_reading`, and stop reading from
        the network: the peer's sending then slows down to the pace of TCP. Messages
        already parsed wait until then (those of one read at most, and one when
        compressed). Nothing else is read meanwhile either: the peer's pings, and the
        pongs to keepalive pings, wait too, so pause for less than ``ping_timeout``.
        Closing resumes reading, for the peer's close frame. Idempotent."""
        if self._held is not None:
            return
        self._held = []
        self._delivering = False
        if not self._reading_paused and self.protocol.state is State.OPEN:
            self._reading_paused = True
            if self.transport is not None and not self.transport.is_closing():
                self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Deliver the messages held since :meth:`pause_reading`, then read on."""
        held, self._held = self._held, None
        if held is None:
            return
        self._delivering = self._listening
        if self._reading_paused:
            self._reading_paused = False
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()
        for message in held:
            if self._held is not None:  # paused again by a message
                self._held.append(message)
            elif self._listening:
                self._deliver(message)
        if self._held is None:
            # What the core held back meanwhile (a compressed message, a failure).
            self._process_events()

    # Inner workings -----------------------------------------------------------------------

    def _process_events(self) -> None:
        """Deliver what the core parsed, then write what it queued."""
        protocol = self.protocol
        if not self._handshake_over and protocol.state is not _CONNECTING:
            # Before the messages that came with the handshake: on_open goes first.
            self._end_handshake()
        events = protocol.events_received()
        while True:
            for event in events:
                if isinstance(event, MESSAGE_EVENTS):
                    if self._held is not None:
                        self._held.append(event.data)
                    elif self._listening:
                        # _deliver inlined: this runs for every message.
                        try:
                            self.listener.on_message(self, event.data)  # type: ignore[union-attr]
                        except Exception as exc:
                            self._listener_failed(exc)
                elif isinstance(event, Pong):
                    self._acknowledge(event.acknowledged)
                elif isinstance(event, HANDSHAKE_EVENTS):
                    self._handshake_event(event)
            if not protocol.parsing_paused or self._held is not None:
                break
            # The core decoded one compressed message and waits: it was delivered.
            protocol.allow_messages(1)
            events = protocol.events_received()
        # A held failure has its failure set: the attribute is cheaper than the property.
        if protocol.failure is not None and protocol.failure_held and not self._held:
            # The messages before the violation were delivered: fail now.
            protocol.release_failure()
        if protocol.state is not _OPEN or protocol.has_data_to_send:
            self._flush()
        if not self._handshake_over and protocol.state is not _CONNECTING:
            self._end_handshake()

    def _deliver(self, message: Data) -> bool:
        """Hand ``message`` to the listener; return whether the next one may follow at
        once: not after a failure, :meth:`close` or :meth:`pause_reading`."""
        try:
            self.listener.on_message(self, message)  # type: ignore[union-attr]
        except Exception as exc:
            self._listener_failed(exc)
        return self._delivering

    def _open_listener(self) -> None:
        """The opening handshake succeeded: make the listener and tell it."""
        self._opened = self._listening = True
        self._delivering = self._held is None
        try:
            self.listener = self._listener_factory()
            self.listener.on_open(self)
        except Exception as exc:
            self._listener_failed(exc)

    def _listener_failed(self, exc: Exception) -> None:
        """A listener's method raised: an application bug, unless the connection was
        closing (a ``send`` racing the peer's close)."""
        if isinstance(exc, ConnectionClosed):
            self.logger.debug("connection closed during listener: %s", exc)
            return
        self.logger.error("listener failed", exc_info=exc)
        self._listening = self._delivering = False
        self._held = None
        self._start_closing(CloseCode.INTERNAL_ERROR, "")

    def _call(self, method: Callable[[ListenerConnection], Any]) -> None:
        try:
            method(self)
        except Exception as exc:
            self._listener_failed(exc)

    # asyncio.Protocol ---------------------------------------------------------------------

    def buffer_updated(self, nbytes: int) -> None:
        # Every read: the core hands whole messages straight to the listener; the events
        # of anything else (control frames, fragments, the handshake, what follows a
        # message after which delivery stopped) are processed as they come.
        if self._reading_payload:
            self._reading_payload = False
            self.protocol.receive_payload(nbytes)
        elif self._delivering:
            if self.protocol.receive_messages(self._read_buffer, nbytes, self._deliver_message):
                return
        else:
            self.protocol.receive_data(self._read_buffer[:nbytes])
        self._process_events()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            if self._opened:
                self._opened = self._delivering = False
                held, self._held = self._held, None
                for message in held or ():
                    if self._listening:
                        self._deliver(message)
                self._listening = False
                listener = self.listener
                assert listener is not None
                try:
                    listener.on_close(self)
                except Exception:
                    # The connection is closed already: all there is left is to say it.
                    self.logger.error("listener failed", exc_info=True)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._listening and not self._resuming_writes:
            self._call(self.listener.on_pause_writing)  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        # Resuming writes the rest of a large masked payload, which may fill the buffer
        # again: then the listener, told of neither, stays paused.
        self._resuming_writes = True
        try:
            super().resume_writing()
        finally:
            self._resuming_writes = False
        if self._listening and not self._writing_paused:
            self._call(self.listener.on_resume_writing)  # type: ignore[union-attr]
