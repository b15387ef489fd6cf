"""The asyncio connection whose messages the application awaits, for clients and servers.

A :class:`Connection` is the :class:`asyncio.Protocol` of one TCP (or TLS) connection and
the object the application uses. On top of what every asyncio connection does
(:class:`~wsio.asyncio.base.ConnectionBase`), it queues received messages for
:meth:`~Connection.recv` and ``async for``, and makes :meth:`~Connection.send` wait for
the write buffer to drain. Every protocol rule, and every decision about what to do when a
timer fires, is the core's.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Coroutine,
    Generator,
    Iterable,
    Mapping,
)
from types import TracebackType
from typing import Any, Generic, TypeVar, Unpack
from typing import Protocol as TypingProtocol

from .. import defaults
from ..exceptions import ConcurrencyError
from ..protocol.connection import Pong, Protocol
from ..protocol.utf8 import convert
from ..shared.connection import HANDSHAKE_EVENTS, MESSAGE_EVENTS, ConnectionOptions
from ..shared.messages import (
    WHOLE_MESSAGE,
    Data,
    DataLike,
    abandon_fragmented,
    check_limits,
    control_payload,
    fragment_bytes,
    queue_fragment,
)
from .base import _CONNECTING, _OPEN, ConnectionBase
from .waiter import Waiter

__all__ = ["Connection", "ConnectionBase", "Data", "Opener", "check_limits"]


class _Closable(TypingProtocol):
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


_Opened = TypeVar("_Opened", bound=_Closable)


class Connection(ConnectionBase):
    """A WebSocket connection over asyncio whose messages the application awaits, with
    :meth:`recv` or ``async for``; see :class:`~wsio.asyncio.client.ClientConnection` and
    :class:`~wsio.asyncio.server.ServerConnection` for the two sides.

    Incoming messages wait in a queue of ``max_queue`` messages; when it is full, reading
    from the network pauses, so a peer cannot make it grow. Outgoing bytes wait in the
    transport's buffer; above ``write_limit`` bytes, :meth:`send` waits for it to drain.
    """

    __slots__ = (
        "_fragmented_send",
        "_message_waiter",
        "_messages",
    )

    def __init__(
        self,
        protocol: Protocol,
        *,
        write_limit: int = defaults.WRITE_LIMIT,
        **options: Unpack[ConnectionOptions],
    ) -> None:
        super().__init__(protocol, write_limit=write_limit, **options)
        # A list, not a deque: an empty deque costs 600 bytes, and reading pauses at
        # max_queue messages, so pop(0) only ever moves a few pointers.
        self._messages: list[Data] = []
        self._message_waiter: Waiter | None = None
        self._fragmented_send: asyncio.Future[None] | None = None

    # Public API ---------------------------------------------------------------------------

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
                waiter = self._message_waiter = Waiter(self.loop)
                try:
                    await waiter
                finally:
                    self._message_waiter = None
            if not messages:
                # The application took every message before a violation: fail now.
                self._release_failure()
                if iterating and protocol.closed_ok:
                    # A normal closure ends the iteration: no exception to build for it.
                    raise StopAsyncIteration
                raise protocol.close_exc
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
        if isinstance(message, WHOLE_MESSAGE):
            self._send_message(message, compress)
            if self._writing_paused:
                await self._drain()
        elif isinstance(message, Mapping):
            # A dict is iterable, but sending its keys as fragments is never what's meant.
            raise TypeError("message is a dict-like object: serialize it first")
        elif isinstance(message, Iterable):
            # Not str or bytes-like (taken above): fragments.
            await self._send_fragments(_aiter_sync(message), compress)
        elif isinstance(message, AsyncIterable):
            await self._send_fragments(aiter(message), compress)
        else:
            raise TypeError(f"message has an unsupported type: {type(message).__name__}")

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
        await self._until_lost()

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
        if protocol.state is not _OPEN or protocol.has_data_to_send:
            self._flush()
        if not self._handshake_over and protocol.state is not _CONNECTING:
            self._end_handshake()
        message_waiter = self._message_waiter
        if message_waiter is not None and not message_waiter.done():
            if messages:
                # Now, inside the read callback: the receiver takes its message without
                # waiting for a turn of the loop (wsio.asyncio.waiter). Waking it at the
                # next turn instead costs a client echoing 64 KiB messages over 16
                # connections 2.2 times the CPU per message (python -m benchmarks,
                # cpu64kx16), and saves 7 to 10 % of the CPU per 16 B message over 16.
                message_waiter.resume()
            elif not protocol.receiving:
                # At the next turn, as a future would: the end of the stream often comes
                # with the loss of the connection, scheduled already, and a receiver
                # resumed after it finds the connection closed instead of waiting for it.
                message_waiter.resume_soon()
        # After the receiver took what it could: a read that filled the queue and was
        # emptied at once doesn't pause reading for nothing.
        room = self.max_queue - len(messages)
        if room <= 0 and not self._reading_paused and protocol.state is _OPEN:
            self._reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()
        if room > 0 and protocol.parsing_paused:
            # The core holds back messages that the queue has room for: decode them.
            self._process_events()
        else:
            # What the queue has room for by the next read.
            protocol.allow_messages(room)


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
