"""wsio.Hub: topics, subscriptions that end with their connection, fan-out with broadcast,
in memory and through a real Redis (tests/redisserver.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import wsio
from rawpeer import RawClient
from redisserver import RedisServer, free_port

STEP = 5.0


async def until(predicate: Callable[[], bool], timeout: float = STEP) -> None:
    """Wait, bounded, until ``predicate()`` holds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def subscribing_server(hub: wsio.Hub, **kwargs: Any) -> AsyncIterator[tuple[int, list[Any]]]:
    """A server whose clients subscribe to the topics named by their first message (one
    per line), then get "subscribed"; ``connections`` lists the server's connections."""
    connections: list[Any] = []

    async def handler(ws: Any) -> None:
        connections.append(ws)
        for topic in (await ws.recv()).splitlines():
            hub.subscribe(ws, topic)
        await ws.send("subscribed")
        await ws.wait_closed()

    async with wsio.serve(handler, "127.0.0.1", 0, **kwargs) as server:
        yield server.sockets[0].getsockname()[1], connections


async def subscriber(port: int, *topics: str) -> Any:
    client = await wsio.connect(f"ws://127.0.0.1:{port}/")
    await client.send("\n".join(topics))
    assert await asyncio.wait_for(client.recv(), STEP) == "subscribed"
    return client


async def no_message(client: Any, wait: float = 0.1) -> bool:
    """Whether nothing arrives for ``wait`` seconds."""
    try:
        await asyncio.wait_for(client.recv(), wait)
    except TimeoutError:
        return True
    return False


# -- In memory --------------------------------------------------------------------------------


async def test_messages_reach_the_subscribers_of_their_topic_only() -> None:
    async with wsio.Hub() as hub, subscribing_server(hub) as (port, _):
        news = await subscriber(port, "news")
        sports = await subscriber(port, "sports")
        both = await subscriber(port, "news", "sports")
        await hub.publish("news", "rain tomorrow")
        await hub.publish("sports", b"\x01\x02")
        await hub.publish("weather", "nobody listens")
        assert await asyncio.wait_for(news.recv(), STEP) == "rain tomorrow"
        assert await asyncio.wait_for(sports.recv(), STEP) == b"\x01\x02"
        assert await asyncio.wait_for(both.recv(), STEP) == "rain tomorrow"
        assert await asyncio.wait_for(both.recv(), STEP) == b"\x01\x02"
        for client in (news, sports, both):
            assert await no_message(client)
            await client.close()
        assert hub.totals.delivered == 4


async def test_unsubscribe_one_topic_or_all() -> None:
    async with wsio.Hub() as hub, subscribing_server(hub) as (port, connections):
        client = await subscriber(port, "a", "b", "c")
        (ws,) = connections
        assert hub.topics(ws) == {"a", "b", "c"}
        hub.unsubscribe(ws, "a")
        hub.unsubscribe(ws, "not subscribed")
        assert hub.topics(ws) == {"b", "c"}
        assert hub.subscribers("a") == set()
        await hub.publish("a", "missed")
        await hub.publish("b", "got it")
        assert await asyncio.wait_for(client.recv(), STEP) == "got it"
        hub.unsubscribe(ws)
        assert hub.topics(ws) == set() and hub.subscribers("c") == set()
        await hub.publish("c", "missed")
        assert await no_message(client)
        await client.close()


async def test_subscribing_again_and_again_costs_nothing_more() -> None:
    # A peer may make the application subscribe and unsubscribe at will.
    async with wsio.Hub() as hub, subscribing_server(hub) as (port, connections):
        client = await subscriber(port, "a")
        (ws,) = connections
        callbacks = len(ws._connection_lost._callbacks)
        for _ in range(1000):
            hub.unsubscribe(ws)
            hub.subscribe(ws, "a")
        assert len(ws._connection_lost._callbacks) == callbacks
        await client.close()
        await until(lambda: not hub.subscribers("a"))
        assert ws not in hub._topics


async def test_subscriptions_end_when_the_connection_closes() -> None:
    async with wsio.Hub() as hub, subscribing_server(hub) as (port, connections):
        client = await subscriber(port, "room")
        (ws,) = connections
        assert hub.subscribers("room") == {ws}
        await client.close()
        await until(lambda: not hub.subscribers("room"))
        assert hub.topics(ws) == set()
        # Subscribing a closed connection does nothing.
        hub.subscribe(ws, "room")
        assert hub.subscribers("room") == set()
        await hub.publish("room", "anyone?")
        assert hub.totals.delivered == 0


async def test_a_connection_closed_by_its_peer_mid_stream_is_dropped() -> None:
    async with wsio.Hub() as hub, subscribing_server(hub) as (port, _connections):
        stays = await subscriber(port, "feed")
        peer = await RawClient.open("127.0.0.1", port)
        assert (await peer.handshake()).status_code == 101
        await peer.send_frame(0x1, "feed")
        await until(lambda: len(hub.subscribers("feed")) == 2)
        for i in range(20):
            await hub.publish("feed", f"item {i}")
            if i == 5:
                peer.abort()
        await until(lambda: len(hub.subscribers("feed")) == 1)
        for i in range(20):
            assert await asyncio.wait_for(stays.recv(), STEP) == f"item {i}"
        await stays.close()


async def test_slow_subscriber_is_bounded_by_the_hub_policy() -> None:
    async with (
        wsio.Hub(limit=32768, slow_consumer="close") as hub,
        subscribing_server(hub, compression=None, close_timeout=1) as (port, connections),
    ):
        fast = await subscriber(port, "firehose")
        slow = await RawClient.open("127.0.0.1", port, receive_buffer=4096)
        assert (await slow.handshake()).status_code == 101
        await slow.send_frame(0x1, "firehose")
        await until(lambda: len(hub.subscribers("firehose")) == 2)
        local_port = slow.transport.get_extra_info("sockname")[1]
        (slow_side,) = [c for c in connections if c.remote_address[1] == local_port]
        slow_side.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
        )
        for _i in range(100):
            await hub.publish("firehose", bytes(16384))
            assert len(await asyncio.wait_for(fast.recv(), STEP)) == 16384
            assert slow_side.transport.get_write_buffer_size() <= 32768 + 16384 + 14
        assert hub.totals.closed == 1
        await until(lambda: len(hub.subscribers("firehose")) == 1, timeout=15)
        slow.abort()
        await fast.close()


async def test_bad_arguments() -> None:
    hub = wsio.Hub()
    with pytest.raises(TypeError, match="topic"):
        await hub.publish(b"topic", "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unsupported type"):
        await hub.publish("topic", 3)  # type: ignore[arg-type]
    with pytest.raises(wsio.InvalidArgument):
        await hub.publish("topic", "\udc80")
    with pytest.raises(wsio.InvalidArgument, match="slow_consumer"):
        wsio.Hub(slow_consumer="ignore")
    with pytest.raises(wsio.InvalidArgument, match="broadcast_limit"):
        wsio.Hub(limit=-1)


async def test_two_hubs_on_one_memory_backend_share_their_topics() -> None:
    backend = wsio.MemoryBackend()
    first, second = wsio.Hub(backend), wsio.Hub(backend)
    async with (
        first,
        second,
        subscribing_server(first) as (port1, _),
        subscribing_server(second) as (port2, _),
    ):
        one = await subscriber(port1, "t")
        two = await subscriber(port2, "t")
        await second.publish("t", "to both")
        assert await asyncio.wait_for(one.recv(), STEP) == "to both"
        assert await asyncio.wait_for(two.recv(), STEP) == "to both"
        await one.close()
        await two.close()


# -- Through Redis ----------------------------------------------------------------------------


def redis_hub(server: RedisServer, **kwargs: Any) -> wsio.Hub:
    return wsio.Hub(
        wsio.RedisBackend(server.url, timeout=1.0, block=0.2, retry_delay=0.2, **kwargs)
    )


async def test_two_hubs_on_one_redis_share_their_topics(redis_server: RedisServer) -> None:
    first, second = redis_hub(redis_server), redis_hub(redis_server)
    async with (
        first,
        second,
        subscribing_server(first) as (port1, _),
        subscribing_server(second) as (port2, _),
    ):
        one = await subscriber(port1, "chat")
        two = await subscriber(port2, "chat")
        await first.publish("chat", "from the first")
        await second.publish("chat", b"from the second")
        for client in (one, two):
            assert await asyncio.wait_for(client.recv(), STEP) == "from the first"
            assert await asyncio.wait_for(client.recv(), STEP) == b"from the second"
        await one.close()
        await two.close()


async def test_a_hub_starts_with_what_is_published_after_it_started(
    redis_server: RedisServer,
) -> None:
    early = redis_hub(redis_server)
    async with early:
        await early.publish("t", "before the second hub")
    late = redis_hub(redis_server)
    async with late, subscribing_server(late) as (port, _):
        client = await subscriber(port, "t")
        await late.publish("t", "after")
        assert await asyncio.wait_for(client.recv(), STEP) == "after"
        await client.close()


async def test_redis_restart_loses_nothing_within_retention(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "wsio.hub")
    reader, writer = redis_hub(redis_server), redis_hub(redis_server)
    async with reader, subscribing_server(reader) as (port, _):
        client = await subscriber(port, "seq")
        async with writer:
            for i in range(50):
                await writer.publish("seq", f"{i}")
            await redis_server.stop()
            # Redis down: publishing fails at once, with a clear exception.
            with pytest.raises(wsio.HubError, match="can't publish"):
                await writer.publish("seq", "lost")
            await asyncio.sleep(0.5)  # the reader notices and retries
            await redis_server.start()
            for i in range(50, 100):
                await writer.publish("seq", f"{i}")
        for i in range(100):
            assert await asyncio.wait_for(client.recv(), STEP) == f"{i}"
        assert await no_message(client)
        await client.close()
    assert "unreachable" in caplog.text and "reachable again" in caplog.text
    for record in caplog.records:
        assert record.exc_info is None


async def test_messages_trimmed_during_an_outage_are_reported(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "wsio.hub")
    reader = wsio.Hub(wsio.RedisBackend(redis_server.url, timeout=1.0, block=0.2, retry_delay=3.0))
    writer = wsio.Hub(wsio.RedisBackend(redis_server.url, maxlen=10))
    async with reader, subscribing_server(reader) as (port, _):
        client = await subscriber(port, "t")
        await redis_server.stop()
        # The reader's pauses double: once one lasts 1.6 s, Redis comes back, and far
        # more than maxlen messages are published before the reader reads again.
        await until(lambda: "again in 1.6 s" in caplog.text, timeout=10)
        await redis_server.start()
        async with writer:
            for i in range(400):
                await writer.publish("t", f"{i}")
        await until(lambda: "reachable again" in caplog.text, timeout=10)
        assert "messages were trimmed" in caplog.text
        # What the stream still held arrives, in order, ending with the latest.
        received = []
        while not received or received[-1] != "399":
            received.append(await asyncio.wait_for(client.recv(), STEP))
        assert received == [f"{i}" for i in range(400 - len(received), 400)]
        assert len(received) < 400
        await client.close()
    for record in caplog.records:
        assert record.exc_info is None


async def test_unreachable_redis(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    hub = wsio.Hub(wsio.RedisBackend(f"redis://127.0.0.1:{port}/0", timeout=1.0))
    with pytest.raises(wsio.HubError, match="can't reach redis"):
        await asyncio.wait_for(hub.start(), STEP)
    with pytest.raises(wsio.HubError, match="isn't started"):
        await hub.publish("t", "x")
    await hub.close()


async def test_concurrent_publishes_share_a_few_connections(redis_server: RedisServer) -> None:
    import redis.asyncio

    backend = wsio.RedisBackend(redis_server.url, max_connections=3, block=0.2)
    async with wsio.Hub(backend) as hub:
        await asyncio.wait_for(
            asyncio.gather(*(hub.publish("t", f"{i}") for i in range(500))), STEP
        )
        observer = redis.asyncio.Redis.from_url(redis_server.url)
        try:
            clients = await observer.client_list()
            # The hub's connections, at most 3 for publishing and the reader's, and the
            # observer's.
            assert len(clients) <= 5, clients
            # One round trip for the first, then batches: in the order of the calls.
            entries = await observer.xrange("wsio:hub")
            assert [fields[b"d"] for _, fields in entries] == [f"{i}".encode() for i in range(500)]
        finally:
            await observer.aclose()
    with pytest.raises(wsio.InvalidArgument, match="max_connections"):
        wsio.RedisBackend(redis_server.url, max_connections=0)


async def test_concurrent_publishes_fail_together_when_redis_is_down(
    redis_server: RedisServer,
) -> None:
    async with redis_hub(redis_server) as hub:
        await redis_server.stop()
        results = await asyncio.wait_for(
            asyncio.gather(*(hub.publish("t", "x") for _ in range(50)), return_exceptions=True),
            STEP,
        )
        assert all(isinstance(result, wsio.HubError) for result in results), results
        await redis_server.start()
        await asyncio.wait_for(hub.publish("t", "back"), STEP)


async def test_a_failing_delivery_is_logged_and_reading_goes_on(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    class Failing(wsio.Hub):
        def _deliver(self, topic: str, message: Any) -> None:
            if topic == "boom":
                raise RuntimeError("a bug")
            super()._deliver(topic, message)

    hub = Failing(wsio.RedisBackend(redis_server.url, block=0.2))
    async with hub, subscribing_server(hub) as (port, _):
        client = await subscriber(port, "fine")
        await hub.publish("boom", "x")
        await hub.publish("fine", "still delivered")
        assert await asyncio.wait_for(client.recv(), STEP) == "still delivered"
        await client.close()
    assert "delivering entry" in caplog.text and "a bug" in caplog.text


# -- Redis misbehaving, hubs misused ----------------------------------------------------------


async def test_a_stalled_redis_fails_publishes_in_time_and_adds_nothing_twice(
    redis_server: RedisServer,
) -> None:
    import signal

    import redis.asyncio

    backend = wsio.RedisBackend(redis_server.url, timeout=1.0, block=0.2)
    async with wsio.Hub(backend) as hub:
        await hub.publish("t", "before")
        process = redis_server._process
        assert process is not None
        process.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            results = await asyncio.gather(
                *(hub.publish("t", f"stalled {i}") for i in range(20)), return_exceptions=True
            )
            # Within twice the timeout, all of them.
            assert time.monotonic() - started < 2.5
            assert all(isinstance(result, wsio.HubError) for result in results), results
        finally:
            process.send_signal(signal.SIGCONT)
        await asyncio.wait_for(hub.publish("t", "after"), STEP)
    observer = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        data = [fields[b"d"] for _, fields in await observer.xrange("wsio:hub")]
    finally:
        await observer.aclose()
    # A publish that failed may have been added, but never twice.
    assert len(data) == len(set(data)), data
    assert data[0] == b"before" and data[-1] == b"after"


async def test_close_sends_what_was_handed_over_and_refuses_the_rest(
    redis_server: RedisServer,
) -> None:
    import redis.asyncio

    hub = redis_hub(redis_server)
    await hub.start()
    pending = [asyncio.ensure_future(hub.publish("t", f"{i}")) for i in range(10)]
    await asyncio.sleep(0)  # all of them handed over
    cancelled = asyncio.ensure_future(hub.publish("t", "cancelled"))
    await asyncio.sleep(0)
    cancelled.cancel()
    await hub.close()
    assert all(task.done() and task.exception() is None for task in pending)
    with pytest.raises(wsio.HubError):
        await hub.publish("t", "too late")
    observer = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        data = [fields[b"d"] for _, fields in await observer.xrange("wsio:hub")]
    finally:
        await observer.aclose()
    assert data == [f"{i}".encode() for i in range(10)]


async def test_entries_that_are_not_hub_messages_are_skipped(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    import redis.asyncio

    caplog.set_level(logging.WARNING, "wsio.hub")
    async with redis_hub(redis_server) as hub, subscribing_server(hub) as (port, _):
        client = await subscriber(port, "t")
        observer = redis.asyncio.Redis.from_url(redis_server.url)
        try:
            await observer.xadd("wsio:hub", {"t": "t", "k": "t", "d": b"\xff\xfe"})
            await observer.xadd("wsio:hub", {"t": "t", "k": "x", "d": b"?"})
            await observer.xadd("wsio:hub", {"unrelated": "entry"})
        finally:
            await observer.aclose()
        await hub.publish("t", "valid")
        assert await asyncio.wait_for(client.recv(), STEP) == "valid"
        await client.close()
    assert caplog.text.count("skipped entry") == 3


async def test_publish_limits_and_misuse(redis_server: RedisServer) -> None:
    backend = wsio.RedisBackend(redis_server.url, max_message_size=10, block=0.2)
    async with wsio.Hub(backend) as hub:
        with pytest.raises(wsio.InvalidArgument, match="max_message_size"):
            await hub.publish("t", "x" * 11)
        await hub.publish("t", "x" * 10)
        with pytest.raises(wsio.InvalidArgument):
            await hub.publish("\udc80", "x")
        with pytest.raises(wsio.InvalidState):
            await backend.start(lambda topic, message: None)


async def test_concurrent_starts_start_once(redis_server: RedisServer) -> None:
    hub = redis_hub(redis_server)
    await asyncio.gather(hub.start(), hub.start())
    async with subscribing_server(hub) as (port, _):
        client = await subscriber(port, "t")
        await hub.publish("t", "once")
        assert await asyncio.wait_for(client.recv(), STEP) == "once"
        assert await no_message(client, 0.3)
        await client.close()
    await hub.close()


async def test_closing_one_hub_on_a_shared_memory_backend_leaves_the_others() -> None:
    backend = wsio.MemoryBackend()
    first, second = wsio.Hub(backend), wsio.Hub(backend)
    await first.start()
    async with second, subscribing_server(second) as (port, _):
        client = await subscriber(port, "t")
        await first.close()
        await second.publish("t", "still here")
        assert await asyncio.wait_for(client.recv(), STEP) == "still here"
        await client.close()


async def test_compress_of_the_publisher_travels_through_redis(redis_server: RedisServer) -> None:
    text = "compressible " * 100
    publisher = wsio.Hub(wsio.RedisBackend(redis_server.url, block=0.2), compress=False)
    reader = redis_hub(redis_server)
    async with publisher, reader, subscribing_server(reader) as (port, _):
        clients = [await subscriber(port, "t") for _ in range(3)]
        await publisher.publish("t", text)
        for client in clients:
            assert await asyncio.wait_for(client.recv(), STEP) == text
        # Uncompressed: one frame for the three, though they keep compression context.
        assert reader.totals.encodings == 1
        for client in clients:
            await client.close()


async def test_each_hub_applies_its_own_compress_to_a_shared_message() -> None:
    text = "compressible " * 100
    backend = wsio.MemoryBackend()
    plain, default = wsio.Hub(backend, compress=False), wsio.Hub(backend)
    async with (
        plain,
        default,
        subscribing_server(plain) as (port1, _),
        subscribing_server(default) as (port2, _),
    ):
        clients = [await subscriber(port, "t") for port in (port1, port1, port2, port2)]
        await default.publish("t", text)
        await plain.publish("t", text)
        for client in clients:
            for _ in range(2):
                assert await asyncio.wait_for(client.recv(), STEP) == text
        # The plain hub: one uncompressed frame per message for both its connections.
        # The other: the first message compressed with each connection's context (two
        # frames), the second, published uncompressed, in the frame built already.
        assert plain.totals.encodings == 2
        assert default.totals.encodings == 2
        for client in clients:
            await client.close()
