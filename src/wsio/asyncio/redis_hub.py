"""A :class:`~wsio.Hub` backend through Redis: hubs in several processes, on several
machines, share their topics.

Published messages go to one Redis stream (``XADD``, trimmed to about ``maxlen`` entries);
each started hub reads the stream (``XREAD``) and broadcasts every entry to its own
subscribers. What that guarantees:

- Order: every hub delivers the messages in the order of the stream, the same for all,
  so the messages of one topic keep their publishing order.
- Each running hub delivers each message once. A hub that loses Redis retries, then
  resumes after the last entry it read: nothing is lost or repeated, as long as the
  entries it missed are still in the stream (the last ``maxlen`` or so). Messages trimmed
  before it came back are lost for it, and it logs a warning saying so.
- A hub starts with the messages published after :meth:`~wsio.Hub.start`; it doesn't
  replay older ones, and nothing is kept for a process that isn't running.
- Redis unreachable: :meth:`~wsio.Hub.publish` raises :class:`~wsio.HubError` within
  ``timeout`` seconds (at once when the connection is refused), and buffers nothing.

Every call to Redis is asynchronous: a hub never blocks the event loop. Needs the ``redis``
package (``pip install wsio[redis]``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any, TypeAlias, cast

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from ..exceptions import HubError, InvalidArgument
from ..protocol.connection import PreparedMessage
from ..protocol.frames import Opcode
from .hub import Backend, Deliver

__all__ = ["RedisBackend"]

# Fields of a stream entry: the topic, the kind of message (text or binary), the payload.
_TOPIC, _KIND, _DATA = b"t", b"k", b"d"
_TEXT, _BINARY = b"t", b"b"

# What XREAD answers (without decode_responses): per stream, its entries and their fields.
_Stream: TypeAlias = list[tuple[bytes, dict[bytes, bytes]]]
_Entries: TypeAlias = list[tuple[bytes, _Stream]]

# Publishes sent in one pipeline at most.
_SEND_BATCH = 256

# Entries read per XREAD: enough to catch up quickly after an outage.
_READ_COUNT = 512


def _stream_id(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry id, ``<milliseconds>-<sequence>``, as a tuple that compares in order."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


class RedisBackend(Backend):
    """Messages travel through the Redis stream ``stream`` at ``url``.

    :param url: the Redis server, as ``redis://host:port/db`` (``rediss://`` for TLS).
    :param stream: the stream's key; hubs on the same stream share their topics.
    :param maxlen: about how many entries the stream keeps (``XADD MAXLEN ~``): how far
        behind a hub may fall, during a Redis outage, without losing messages.
    :param timeout: seconds for connecting to Redis and for each command.
    :param block: seconds each read waits for new entries before asking again.
    :param retry_delay: longest pause, in seconds, between attempts to reach Redis again
        after it was lost (the pause doubles from a tenth of a second up to this).
    :param max_connections: connections to Redis at most, the reader's included.
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        stream: str = "wsio:hub",
        maxlen: int = 10_000,
        timeout: float = 5.0,
        block: float = 1.0,
        retry_delay: float = 5.0,
        max_connections: int = 8,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.url = url
        self.stream = stream
        self.maxlen = maxlen
        self.timeout = timeout
        self.block = block
        self.retry_delay = retry_delay
        if max_connections < 2:
            # One stays with the reader's blocking reads.
            raise InvalidArgument(f"max_connections must be 2 or more, not {max_connections}")
        self.max_connections = max_connections
        self.logger = logger if logger is not None else logging.getLogger("wsio.hub")
        #: Id of the last entry read, as Redis spells it.
        self.last_id: bytes | None = None
        self._client: redis.asyncio.Redis | None = None
        self._reader: asyncio.Task[None] | None = None
        # Entries added to the stream before this hub started, and entries it read since:
        # after an outage, what was added and neither read nor still in the stream was
        # trimmed before this hub could read it.
        self._added_before = 0
        self._read_count = 0
        # Set by close(): the reader stops after its current read.
        self._closing = asyncio.Event()
        # Publishes waiting to be sent, the task sending them, and whether a publisher is
        # sending its own message (the outbox waits for it: order is kept).
        self._outbox: list[tuple[dict[Any, Any], asyncio.Future[None]]] = []
        self._sender: asyncio.Task[None] | None = None
        self._sending = False

    def _connect(self) -> redis.asyncio.Redis:
        # At most max_connections: commands beyond them wait their turn (within
        # timeout) instead of opening a connection each.
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            self.url,
            max_connections=self.max_connections,
            timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            # A read blocks for up to `block` seconds before Redis answers.
            socket_timeout=self.timeout + self.block,
            # One more try, at once: after Redis restarted, a pooled connection fails
            # once before a new one is made. Longer outages are the caller's to handle.
            retry=Retry(NoBackoff(), 1),
        )
        return redis.asyncio.Redis.from_pool(pool)

    async def start(self, deliver: Deliver) -> None:
        """Connect, note where the stream ends, and start reading after that point.

        :raises HubError: Redis is unreachable.
        """
        client = self._client = self._connect()
        try:
            info = await self._stream_info(client)
        except RedisError as exc:
            self._client = None
            await client.aclose()
            raise HubError(f"can't reach redis at {self.url}: {exc}") from exc
        self._closing.clear()
        self.last_id = info.get("last-generated-id", b"0-0")
        self._added_before = info.get("entries-added", 0)
        self._read_count = 0
        self._reader = asyncio.get_running_loop().create_task(self._read(client, deliver))

    async def publish(self, topic: str, message: PreparedMessage) -> None:
        """Hand the message to Redis. Publishes made while others are on their way go
        together, in one pipeline of ``XADD`` commands, in the order they were made:
        a round trip per batch rather than per message."""
        if self._client is None:
            raise HubError("the hub isn't started: await hub.start() or use async with hub")
        fields: dict[Any, Any] = {
            _TOPIC: topic.encode(),
            _KIND: _TEXT if message.opcode is Opcode.TEXT else _BINARY,
            _DATA: message.data,
        }
        client = self._client
        if not self._sending and self._sender is None:
            # Nothing on its way: send this one at once, as a command of its own; what
            # comes meanwhile waits in the outbox, sent after it.
            self._sending = True
            try:
                await client.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)
            except RedisError as exc:
                raise HubError(f"can't publish to redis at {self.url}: {exc}") from exc
            finally:
                self._sending = False
                if self._outbox:
                    self._sender = asyncio.get_running_loop().create_task(self._send(client))
            return
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox.append((fields, sent))
        if self._sender is None and not self._sending:
            self._sender = asyncio.get_running_loop().create_task(self._send(client))
        await sent

    async def _send(self, client: redis.asyncio.Redis) -> None:
        """Send what the outbox holds, a batch at a time, until it is empty."""
        try:
            await self._send_batches(client)
        finally:
            self._sender = None

    async def _send_batches(self, client: redis.asyncio.Redis) -> None:
        while self._outbox:
            batch = self._outbox[:_SEND_BATCH]
            del self._outbox[:_SEND_BATCH]
            pipeline = client.pipeline(transaction=False)
            for fields, _ in batch:
                pipeline.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)
            error: HubError | None = None
            try:
                await pipeline.execute()
            except RedisError as exc:
                error = HubError(f"can't publish to redis at {self.url}: {exc}")
                error.__cause__ = exc
            for _, sent in batch:
                if sent.done():  # the publisher was cancelled
                    continue
                if error is None:
                    sent.set_result(None)
                else:
                    sent.set_exception(error)

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        client, self._client = self._client, None
        if client is None:
            return
        self._closing.set()
        if self._sender is not None:
            # What publishers handed over goes out first.
            await asyncio.wait([self._sender])
        if reader is not None:
            # Cancelling redis-py in the middle of a read may leave it waiting for the
            # answer for good: the reader stops by itself once its read returns, within
            # `block` seconds (or `timeout` more when Redis doesn't answer).
            await reader
        await client.aclose()

    async def _read(self, client: redis.asyncio.Redis, deliver: Deliver) -> None:
        """Read the stream for good, delivering each entry; ride out Redis outages."""
        block = max(1, math.ceil(self.block * 1000))
        delay = 0.0
        while not self._closing.is_set():
            assert self.last_id is not None
            try:
                if delay:
                    await self._check_gap(client)
                answer = cast(
                    _Entries,
                    await client.xread(
                        {self.stream: self.last_id}, count=_READ_COUNT, block=block
                    ),
                )
            except RedisError as exc:
                if self._closing.is_set():
                    return
                delay = min(self.retry_delay, max(0.1, delay * 2))
                self.logger.warning(
                    "redis at %s unreachable (%s): trying again in %.1f s", self.url, exc, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay)
                continue
            if delay:
                delay = 0.0
                self.logger.info("redis at %s reachable again", self.url)
            for _, entries in answer:
                self._read_count += len(entries)
                for entry_id, fields in entries:
                    self.last_id = entry_id
                    try:
                        data = fields[_DATA]
                        text = fields[_KIND] == _TEXT
                        topic = fields[_TOPIC].decode()
                    except (KeyError, UnicodeDecodeError):
                        # Not written by a hub: someone else's entry in our stream.
                        self.logger.warning(
                            "skipped entry %r of %s: not a hub message", entry_id, self.stream
                        )
                        continue
                    try:
                        deliver(topic, PreparedMessage(data, text=text))
                    except Exception:
                        # A bug, not a peer's doing: say so, and go on delivering.
                        self.logger.exception("delivering entry %r failed", entry_id)

    async def _stream_info(self, client: redis.asyncio.Redis) -> dict[str, Any]:
        """XINFO STREAM, or nothing when the stream doesn't exist (yet)."""
        try:
            info: dict[str, Any] = await client.xinfo_stream(self.stream)
            return info
        except ResponseError:
            return {}

    async def _check_gap(self, client: redis.asyncio.Redis) -> None:
        """After an outage: warn when entries this hub hadn't read were trimmed."""
        info = await self._stream_info(client)
        assert self.last_id is not None
        first = info.get("first-entry")
        if first is None or _stream_id(first[0]) <= _stream_id(self.last_id):
            return  # the last entry read is still there: so is everything after it
        # Every entry in the stream came after the last one read; the others added since
        # the start and not read were trimmed.
        unread = info.get("entries-added", 0) - self._added_before - self._read_count
        lost = unread - info.get("length", 0)
        if lost > 0:
            self.logger.warning(
                "%d messages were trimmed from %s before this hub could read them, while "
                "redis at %s was unreachable (maxlen=%d)",
                lost,
                self.stream,
                self.url,
                self.maxlen,
            )
