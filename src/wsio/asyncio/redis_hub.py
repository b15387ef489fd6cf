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

from .. import defaults
from ..exceptions import HubError, InvalidArgument, InvalidState
from ..protocol.connection import PreparedMessage
from ..protocol.frames import Opcode
from .hub import Backend, Deliver

__all__ = ["RedisBackend"]

# Fields of a stream entry: the topic, the kind of message (text or binary), the payload.
_TOPIC, _KIND, _DATA, _COMPRESS = b"t", b"k", b"d", b"c"
_TEXT, _BINARY = b"t", b"b"

# What XREAD answers (without decode_responses): per stream, its entries and their fields.
_Stream: TypeAlias = list[tuple[bytes, dict[bytes, bytes]]]
_Entries: TypeAlias = list[tuple[bytes, _Stream]]

# Publishes sent in one pipeline at most.
_SEND_BATCH = 256

# Entries read per XREAD: enough to catch up quickly after an outage, few enough that
# a read of messages of max_message_size stays a bounded amount of memory.
_READ_COUNT = 64


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
        behind a hub may fall without losing messages. Redis holds up to about ``maxlen``
        times the size of the messages.
    :param max_message_size: largest message published, in bytes: larger ones are refused,
        and entries larger than it are skipped when read (``None``: no limit).
    :param timeout: seconds for connecting to Redis and for each command; a publish fails
        with :class:`~wsio.HubError` within about twice this.
    :param block: seconds each read waits for new entries before asking again.
    :param retry_delay: longest pause, in seconds, between attempts to reach Redis again
        after it was lost (the pause doubles from a tenth of a second up to this).
    :param max_connections: connections to Redis for publishing at most; the reader has
        one more of its own.
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        stream: str = defaults.REDIS_STREAM,
        maxlen: int = defaults.REDIS_MAXLEN,
        max_message_size: int | None = defaults.MAX_SIZE,
        timeout: float = defaults.REDIS_TIMEOUT,
        block: float = defaults.REDIS_BLOCK,
        retry_delay: float = defaults.REDIS_RETRY_DELAY,
        max_connections: int = defaults.REDIS_MAX_CONNECTIONS,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        if max_connections < 1:
            raise InvalidArgument(f"max_connections must be 1 or more, not {max_connections}")
        self.url = url
        self.stream = stream
        self.maxlen = maxlen
        self.max_message_size = max_message_size
        self.timeout = timeout
        self.block = block
        self.retry_delay = retry_delay
        self.max_connections = max_connections
        self.logger = logger if logger is not None else logging.getLogger("wsio.hub")
        #: Id of the last entry read, as Redis spells it.
        self.last_id: bytes | None = None
        self._writer: redis.asyncio.Redis | None = None
        self._reader_client: redis.asyncio.Redis | None = None
        self._reader: asyncio.Task[None] | None = None
        # Entries added to the stream before this hub started, and entries it read since:
        # what was added and neither read nor still in the stream was trimmed before this
        # hub could read it.
        self._added_before = 0
        self._read_count = 0
        # Set by close(), made by start(): the reader stops after its current read.
        self._closing: asyncio.Event | None = None
        # Publishes waiting to be sent (fields, future, deadline), and the task sending.
        self._outbox: list[tuple[dict[bytes, bytes], asyncio.Future[None], float]] = []
        self._sender: asyncio.Task[None] | None = None

    def _connect(self, *, reader: bool) -> redis.asyncio.Redis:
        kwargs: dict[str, Any] = {
            "socket_connect_timeout": self.timeout,
            # RESP2: the shape of the answers read below.
            "protocol": 2,
        }
        if reader:
            # Reads block for up to `block` seconds before Redis answers, and may be tried
            # again at once (after Redis restarted, a kept connection fails once): they
            # change nothing.
            return redis.asyncio.Redis.from_url(
                self.url,
                socket_timeout=self.timeout + self.block,
                retry=Retry(NoBackoff(), 1),
                **kwargs,
            )
        # XADD isn't tried again: Redis may have added the entry before the connection
        # failed, and a second XADD would deliver it twice. At most max_connections:
        # commands beyond them wait their turn instead of opening a connection each.
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            self.url,
            max_connections=self.max_connections,
            timeout=self.timeout,
            socket_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
            **kwargs,
        )
        return redis.asyncio.Redis.from_pool(pool)

    async def start(self, deliver: Deliver) -> None:
        """Connect, note where the stream ends, and start reading after that point.

        :raises HubError: Redis is unreachable.
        :raises InvalidState: the backend is started already.
        """
        if self._writer is not None:
            raise InvalidState("this RedisBackend is started already: one per hub")
        reader_client = self._connect(reader=True)
        try:
            info = await self._stream_info(reader_client)
        except RedisError as exc:
            await reader_client.aclose()
            raise HubError(f"can't reach redis at {self.url}: {exc}") from exc
        self._reader_client = reader_client
        self._writer = self._connect(reader=False)
        self._closing = asyncio.Event()
        self.last_id = info.get("last-generated-id", b"0-0")
        self._added_before = info.get("entries-added", 0)
        self._read_count = 0
        self._reader = asyncio.get_running_loop().create_task(
            self._read(reader_client, deliver, self._closing)
        )

    async def publish(self, topic: str, message: PreparedMessage) -> None:
        """Hand the message to Redis. Publishes made while others are on their way go
        together, in one pipeline of ``XADD`` commands, in the order they were made.

        :raises InvalidArgument: the message is over ``max_message_size``.
        :raises HubError: Redis didn't take it in time. It may have: a message whose
            publish failed may still be delivered, once.
        """
        if self._writer is None or self._closing is None or self._closing.is_set():
            raise HubError("the hub isn't started: await hub.start() or use async with hub")
        if self.max_message_size is not None and len(message.data) > self.max_message_size:
            raise InvalidArgument(
                f"message is {len(message.data)} bytes long; "
                f"max_message_size is {self.max_message_size}"
            )
        fields = {
            _TOPIC: topic.encode(),
            _KIND: _TEXT if message.opcode is Opcode.TEXT else _BINARY,
            _DATA: message.data,
        }
        if message.compress is not None:
            fields[_COMPRESS] = b"1" if message.compress else b"0"
        loop = asyncio.get_running_loop()
        sent: asyncio.Future[None] = loop.create_future()
        self._outbox.append((fields, sent, loop.time() + self.timeout))
        if self._sender is None:
            self._sender = loop.create_task(self._send(self._writer))
        await sent

    async def _send(self, writer: redis.asyncio.Redis) -> None:
        """Send what the outbox holds, a batch at a time, until it is empty."""
        try:
            while self._outbox:
                await self._send_batch(writer)
        finally:
            self._sender = None

    async def _send_batch(self, writer: redis.asyncio.Redis) -> None:
        now = asyncio.get_running_loop().time()
        taken = self._outbox[:_SEND_BATCH]
        del self._outbox[:_SEND_BATCH]
        batch: list[tuple[dict[bytes, bytes], asyncio.Future[None]]] = []
        for fields, sent, deadline in taken:
            if sent.done():
                continue  # the publisher was cancelled before it was sent: it isn't
            if now > deadline:
                sent.set_exception(HubError(f"timed out publishing to redis at {self.url}"))
                continue
            batch.append((fields, sent))
        if not batch:
            return
        pipeline = writer.pipeline(transaction=False)
        for fields, _ in batch:
            pipeline.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
        try:
            await pipeline.execute()
        except RedisError as exc:
            error = HubError(f"can't publish to redis at {self.url}: {exc}")
            error.__cause__ = exc
            # Redis failed this batch: the publishes waiting behind it fail now rather
            # than one timeout after another.
            failed = [sent for _, sent in batch] + [sent for _, sent, _ in self._outbox]
            self._outbox.clear()
            for sent in failed:
                if not sent.done():
                    sent.set_exception(error)
            return
        for _, sent in batch:
            if not sent.done():
                sent.set_result(None)

    async def close(self, deliver: Deliver | None = None) -> None:
        writer, self._writer = self._writer, None
        reader_client, self._reader_client = self._reader_client, None
        reader, self._reader = self._reader, None
        if writer is None or self._closing is None:
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
        await writer.aclose()
        if reader_client is not None:
            await reader_client.aclose()

    async def _read(
        self, client: redis.asyncio.Redis, deliver: Deliver, closing: asyncio.Event
    ) -> None:
        """Read the stream for good, delivering each entry; ride out Redis outages."""
        loop = asyncio.get_running_loop()
        block = max(1, math.ceil(self.block * 1000))
        delay = 0.0
        outage_started = 0.0
        # Whether entries may have been trimmed before they were read: after an outage,
        # or when delivering took longer than a read waits.
        check_gap = False
        while not closing.is_set():
            assert self.last_id is not None
            try:
                if check_gap:
                    await self._check_gap(client)
                answer = cast(
                    _Entries,
                    await client.xread(
                        {self.stream: self.last_id}, count=_READ_COUNT, block=block
                    ),
                )
            except Exception as exc:
                if closing.is_set():
                    return
                if not delay:
                    outage_started = loop.time()
                    if isinstance(exc, RedisError):
                        self.logger.warning("redis at %s unreachable: %s", self.url, exc)
                    else:
                        self.logger.exception("reading %s failed", self.stream)
                delay = min(self.retry_delay, max(0.1, delay * 2))
                self.logger.debug("trying redis at %s again in %.1f s", self.url, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(closing.wait(), delay)
                check_gap = True
                continue
            if delay:
                delay = 0.0
                self.logger.warning(
                    "redis at %s reachable again after %.1f s",
                    self.url,
                    loop.time() - outage_started,
                )
            started = loop.time()
            for _, entries in answer:
                self._read_count += len(entries)
                for entry_id, fields in entries:
                    self.last_id = entry_id
                    self._deliver_entry(entry_id, fields, deliver)
            check_gap = loop.time() - started > self.block

    def _deliver_entry(
        self, entry_id: bytes, fields: dict[bytes, bytes], deliver: Deliver
    ) -> None:
        """Deliver one entry of the stream, unless it isn't a hub message."""
        data = fields.get(_DATA)
        kind = fields.get(_KIND)
        try:
            topic = fields[_TOPIC].decode()
            if data is None or kind not in (_TEXT, _BINARY):
                raise ValueError("not a hub message")
            if kind == _TEXT:
                data.decode()  # valid UTF-8, or it would fail every subscriber (1007)
            if self.max_message_size is not None and len(data) > self.max_message_size:
                raise ValueError(f"{len(data)} bytes, over max_message_size")
        except (KeyError, ValueError) as exc:
            self.logger.warning("skipped entry %r of %s: %s", entry_id, self.stream, exc)
            return
        compress = fields.get(_COMPRESS)
        message = PreparedMessage(
            data, text=kind == _TEXT, compress=None if compress is None else compress == b"1"
        )
        try:
            deliver(topic, message)
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
        """Warn when entries this hub hadn't read were trimmed (Redis 7: it needs the
        stream's ``entries-added``)."""
        info = await self._stream_info(client)
        assert self.last_id is not None
        first = info.get("first-entry")
        if first is None or _stream_id(first[0]) <= _stream_id(self.last_id):
            return  # the last entry read is still there: so is everything after it
        if "entries-added" not in info:
            return
        # Every entry in the stream came after the last one read; the others added since
        # the start and not read were trimmed.
        unread = info["entries-added"] - self._added_before - self._read_count
        lost = unread - info.get("length", 0)
        if lost > 0:
            self.logger.warning(
                "%d messages were trimmed from %s before this hub could read them (maxlen=%d)",
                lost,
                self.stream,
                self.maxlen,
            )
