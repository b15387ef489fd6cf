"""Self-tests of the private Redis server helper (tests/redisserver.py); they do not involve
wsio. The server is driven with redis-py's asyncio client, as the Redis-backed code will be."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from redisserver import SYSTEM_PORT, RedisServer, RedisServerError, redis_server_path

pytestmark = [
    pytest.mark.timeout(30),
    # The fixture skips by itself; this covers the tests that build a RedisServer directly.
    pytest.mark.skipif(
        redis_server_path() is None,
        reason="redis-server is not installed: run `make test` as root or "
        "`apt-get install redis-server`",
    ),
]


def client(server: RedisServer) -> redis.asyncio.Redis:
    """A client that fails at once instead of retrying, so that errors show up quickly."""
    return redis.asyncio.Redis.from_url(
        server.url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2, socket_timeout=2
    )


async def test_answers_ping_and_set_get(redis_server: RedisServer) -> None:
    assert redis_server.running
    assert redis_server.port != SYSTEM_PORT
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    async with client(redis_server) as r:
        assert await r.ping() is True
        assert await r.set("greeting", "hello") is True
        assert await r.get("greeting") == b"hello"


async def test_configuration(redis_server: RedisServer) -> None:
    """Loopback only, its own directory, and every write fsynced to the append-only file."""
    async with client(redis_server) as r:
        config = await r.config_get("*")
    assert config["bind"] == "127.0.0.1"
    assert config["port"] == str(redis_server.port)
    assert os.path.samefile(str(config["dir"]), redis_server.directory)
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "everysec"
    assert config["save"] == ""


async def test_data_survives_restart(redis_server: RedisServer) -> None:
    port = redis_server.port
    async with client(redis_server) as r:
        await r.set("kept", "across restarts")
        await r.rpush("list", "a", "b", "c")
    await redis_server.restart()
    assert redis_server.running
    assert redis_server.port == port
    async with client(redis_server) as r:
        assert await r.get("kept") == b"across restarts"
        assert await r.lrange("list", 0, -1) == [b"a", b"b", b"c"]


async def test_stopped_server_refuses_connections_quickly(redis_server: RedisServer) -> None:
    await redis_server.stop()
    assert not redis_server.running
    await redis_server.stop()  # a second stop does nothing
    async with client(redis_server) as r:
        started = time.monotonic()
        with pytest.raises(RedisConnectionError):
            await r.ping()
        assert time.monotonic() - started < 2


async def test_kill_then_start_keeps_acknowledged_writes(redis_server: RedisServer) -> None:
    port = redis_server.port
    async with client(redis_server) as r:
        await r.set("synced", "before the crash")
    redis_server.kill()
    assert not redis_server.running
    async with client(redis_server) as r:
        with pytest.raises(RedisConnectionError):
            await r.ping()
    await redis_server.start()
    assert redis_server.running
    assert redis_server.port == port
    async with client(redis_server) as r:
        assert await r.get("synced") == b"before the crash"


async def test_start_twice_is_refused(redis_server: RedisServer) -> None:
    with pytest.raises(RedisServerError, match="already running"):
        await redis_server.start()
    assert redis_server.running


async def test_failed_start_reports_the_server_output(redis_server: RedisServer) -> None:
    """A restart on a port someone else took fails at once, with Redis's own explanation."""
    await redis_server.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", redis_server.port))
        squatter.listen()
        started = time.monotonic()
        with pytest.raises(RedisServerError, match="Address already in use"):
            await redis_server.start()
        assert time.monotonic() - started < 5
    assert not redis_server.running
    await redis_server.start()
    assert redis_server.running


async def test_context_manager_removes_its_directory() -> None:
    async with RedisServer() as server:
        directory = server.directory
        assert server.running
        assert (directory / "redis.log").exists()
    assert not server.running
    assert not directory.exists()


async def test_given_directory_is_kept(tmp_path: Path) -> None:
    async with RedisServer(tmp_path) as server, client(server) as r:
        await r.set("on disk", "yes")
    assert any(tmp_path.iterdir())
    # A new server on the same directory (and a new port) finds the data.
    async with RedisServer(tmp_path) as server, client(server) as r:
        assert await r.get("on disk") == b"yes"
