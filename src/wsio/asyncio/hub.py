"""Publish/subscribe by topic: a :class:`Hub` fans each published message out to the
connections subscribed to its topic, with :func:`~wsio.broadcast`.

Where messages travel between publishers and the fan-out is the hub's *backend*: in memory
(:class:`MemoryBackend`, one process, the default) or through Redis
(:class:`~wsio.asyncio.redis_hub.RedisBackend`, across processes and machines). Either way,
each process reads each message once and broadcasts it to its own subscribers, so a
message costs one frame per distinct wire encoding in each process, and a slow consumer
costs at most its broadcast limit.
"""

from __future__ import annotations

import abc
import asyncio
import functools
from collections.abc import Callable
from types import TracebackType
from typing import Any

from ..protocol.connection import PreparedMessage
from ..protocol.frames import Opcode, encode_text
from ..shared.broadcast import (
    BroadcastResult,
    broadcast_prepared,
    check_broadcast_policy,
    prepare,
)
from ..shared.messages import DataLike
from .connection import Connection

__all__ = ["Backend", "Deliver", "Hub", "MemoryBackend"]

#: What a backend calls with each message it reads: the topic, and the message prepared for
#: broadcasting.
Deliver = Callable[[str, PreparedMessage], None]


class Backend(abc.ABC):
    """Carries published messages to the hubs that deliver them: every hub started on the
    same backend (the same Redis stream, or the same in-memory backend) gets each message
    published through any of them."""

    @abc.abstractmethod
    async def start(self, deliver: Deliver) -> None:
        """Begin delivering the messages published from now on, calling ``deliver`` for
        each one, in order, from the event loop."""

    @abc.abstractmethod
    async def publish(self, topic: str, message: PreparedMessage) -> None:
        """Send ``message`` to every started hub, this one included.

        :raises HubError: the message couldn't be handed over.
        """

    @abc.abstractmethod
    async def close(self, deliver: Deliver | None = None) -> None:
        """Stop calling ``deliver`` (given to :meth:`start`) and release what the backend
        holds for it."""


class MemoryBackend(Backend):
    """Delivers to the hubs of this process, at once, inside :meth:`publish`."""

    def __init__(self) -> None:
        self._deliveries: list[Deliver] = []

    async def start(self, deliver: Deliver) -> None:
        self._deliveries.append(deliver)

    async def publish(self, topic: str, message: PreparedMessage) -> None:
        for deliver in self._deliveries:
            deliver(topic, message)
        # A turn of the loop, as a publish through Redis takes: a publisher in a tight
        # loop mustn't keep every connection from reading meanwhile.
        await asyncio.sleep(0)

    async def close(self, deliver: Deliver | None = None) -> None:
        # Only the closing hub's: others may share this backend.
        if deliver in self._deliveries:
            self._deliveries.remove(deliver)


class Hub:
    """Topics that connections subscribe to, and messages published to them.

    ::

        async with wsio.Hub() as hub:            # or Hub(RedisBackend(url))
            hub.subscribe(ws, "news")
            await hub.publish("news", "hello")   # every subscriber of "news" gets it

    A connection's subscriptions end when it closes. Published messages are broadcast
    with ``limit`` and ``slow_consumer`` (``None``: each connection's server's settings;
    see :func:`~wsio.broadcast`) and ``compress``; :attr:`totals` adds up what the
    broadcasts of this process did.

    :param backend: where messages travel; a :class:`MemoryBackend` by default.
    """

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        limit: int | None = None,
        slow_consumer: str | None = None,
        compress: bool | None = None,
    ) -> None:
        check_broadcast_policy(limit, slow_consumer)
        self.backend: Backend = MemoryBackend() if backend is None else backend
        self.limit = limit
        self.slow_consumer = slow_consumer
        self.compress = compress
        #: What the broadcasts of published messages did in this process, added up.
        self.totals = BroadcastResult()
        self._subscribers: dict[str, set[Connection]] = {}
        self._topics: dict[Connection, set[str]] = {}
        # Resolved once started; set before starting, so that a second start() waits
        # for the first instead of starting the backend twice.
        self._started: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Start delivering: messages published from now on reach this hub's subscribers.
        ``async with hub`` starts it and closes it.

        :raises HubError: the backend can't start (Redis unreachable...).
        """
        if self._started is not None:
            await asyncio.shield(self._started)
            return
        started = self._started = asyncio.get_running_loop().create_future()
        try:
            await self.backend.start(self._deliver)
        except BaseException as exc:
            self._started = None
            started.set_exception(exc)
            started.exception()  # retrieved: whoever waits on it gets it raised
            raise
        started.set_result(None)

    async def close(self) -> None:
        """Stop delivering and close the backend. Subscriptions are kept."""
        started, self._started = self._started, None
        if started is not None:
            await asyncio.wait([started])
            if not started.cancelled() and started.exception() is None:
                await self.backend.close(self._deliver)

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def subscribe(self, connection: Connection, topic: str) -> None:
        """Deliver the messages published to ``topic`` to ``connection`` until it closes
        or :meth:`unsubscribe`. A connection already closed isn't subscribed."""
        if not isinstance(topic, str):
            raise TypeError(f"topic must be a str, not {type(topic).__name__}")
        if connection._connection_lost.done():
            return
        topics = self._topics.get(connection)
        if topics is None:
            topics = self._topics[connection] = set()
            connection._connection_lost.add_done_callback(
                functools.partial(self._forget, connection)
            )
        topics.add(topic)
        self._subscribers.setdefault(topic, set()).add(connection)

    def unsubscribe(self, connection: Connection, topic: str | None = None) -> None:
        """Stop delivering ``topic`` to ``connection``; every topic when ``None``."""
        topics = self._topics.get(connection)
        if topics is None:
            return
        for name in list(topics) if topic is None else [topic]:
            if name not in topics:
                continue
            topics.discard(name)
            subscribers = self._subscribers[name]
            subscribers.discard(connection)
            if not subscribers:
                del self._subscribers[name]
        # The connection's entry stays, empty, until it closes: its callback is there
        # already, and subscribing again mustn't add one each time.

    def subscribers(self, topic: str) -> set[Connection]:
        """The connections subscribed to ``topic`` in this process."""
        return set(self._subscribers.get(topic, ()))

    def topics(self, connection: Connection) -> set[str]:
        """The topics ``connection`` is subscribed to."""
        return set(self._topics.get(connection, ()))

    async def publish(self, topic: str, message: DataLike) -> None:
        """Publish ``message`` (``str`` as text, bytes-like as binary) to ``topic``: every
        started hub on this backend broadcasts it to its subscribers of ``topic``.

        :raises TypeError: ``topic`` isn't a str, or ``message`` neither str nor bytes-like.
        :raises InvalidArgument: text that isn't valid Unicode.
        :raises HubError: the backend couldn't take the message (Redis unreachable...).
        """
        if not isinstance(topic, str):
            raise TypeError(f"topic must be a str, not {type(topic).__name__}")
        encode_text(topic, "topic")  # Redis needs it in UTF-8: the same rule everywhere
        await self.backend.publish(topic, prepare(message, self.compress))

    def _deliver(self, topic: str, message: PreparedMessage) -> None:
        subscribers = self._subscribers.get(topic)
        if not subscribers:
            return
        if message.compress is None and self.compress is not None:
            # A copy: other hubs of an in-memory backend get the same message.
            message = PreparedMessage(
                message.data, text=message.opcode is Opcode.TEXT, compress=self.compress
            )
        # A copy: closing a slow consumer may end subscriptions while this runs.
        result = broadcast_prepared(list(subscribers), message, self.limit, self.slow_consumer)
        totals = self.totals
        totals.delivered += result.delivered
        totals.skipped += result.skipped
        totals.closed += result.closed
        totals.encodings += result.encodings

    def _forget(self, connection: Connection, _: Any) -> None:
        self.unsubscribe(connection)
        del self._topics[connection]
