"""``wsio serve --redis URL``: the demo's chat as one room for every process sharing a
Redis (a private one, tests/redisserver.py), run as subprocesses and talked to with wsio
clients: two workers of ``--workers 2``, two servers on two ports, a Redis outage in the
middle of a chat, and a Redis that can't be reached at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import wsio
from redisserver import RedisServer, free_port
from wsio.cli.workers import REUSE_PORT

T = 10.0  # a bound on every wait, subprocess start-up included

# A member's name in Redis mode: a random part per process, then a number.
NAME = r"guest-([0-9a-f]{8})-\d+"

# Messages read, at most, while looking for one line among others (other members' joins
# and departures may come first).
MAX_MESSAGES = 50

NOT_DELIVERED = "(not delivered: the chat is unavailable, try again later)"

# A hub that lost Redis tries again after pauses doubling from 0.1 s up to 5 s, and reads
# block for up to 1 s: once Redis is back, every hub reads again within about 6 s.
RECOVERY = 20.0

Process = asyncio.subprocess.Process


# Processes ----------------------------------------------------------------------------------


class Serve:
    """A ``wsio serve`` subprocess, its port, and its standard error, read as it comes."""

    def __init__(self, proc: Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self.err = bytearray()
        assert proc.stderr is not None
        self._stderr = proc.stderr
        self._reading = asyncio.get_running_loop().create_task(self._read_stderr())

    async def _read_stderr(self) -> None:
        while chunk := await self._stderr.read(65536):
            self.err += chunk

    @property
    def stderr(self) -> str:
        return self.err.decode(errors="replace")

    @property
    def chat(self) -> str:
        return f"ws://127.0.0.1:{self.port}/chat"

    @property
    def page(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def wait_stderr(self, text: str) -> None:
        """Wait (bounded) until the standard error has ``text``."""
        async with asyncio.timeout(T):
            while text not in self.stderr:
                await asyncio.sleep(0.02)

    async def stop(self) -> int:
        """SIGTERM; wait (bounded) for the exit and the end of its output; the status."""
        self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(T):
            status = await self.proc.wait()
            await self._reading
        return status

    async def kill(self) -> None:
        """SIGKILL this process and the workers it runs, when still running."""
        pids = _children(self.proc.pid) if self.proc.returncode is None else []
        for pid in [self.proc.pid, *pids]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), 5)
        self._reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reading


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the workers of ``--workers``), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
                if fields[1] == str(pid):
                    found.append(int(entry))
    return found


async def run_wsio(*args: str) -> Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wsio",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


class Servers:
    """The ``wsio serve`` processes of a test; killed, with their workers, at teardown."""

    def __init__(self) -> None:
        self.started: list[Serve] = []

    async def start(self, redis_url: str, *args: str) -> Serve:
        """Start ``wsio serve --redis URL --host 127.0.0.1 --port 0 ARGS``; return it once
        it printed the URL it listens on."""
        proc = await run_wsio(
            "serve", "--redis", redis_url, "--host", "127.0.0.1", "--port", "0", *args
        )
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(T):
                line = (await proc.stdout.readline()).decode()
            match = re.fullmatch(r"wsio demo listening on http://127\.0\.0\.1:(\d+)/\n", line)
            assert match, f"unexpected first line: {line!r}"
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        serve = Serve(proc, int(match.group(1)))
        self.started.append(serve)
        return serve

    async def cleanup(self) -> None:
        for serve in self.started:
            await serve.kill()


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    running = Servers()
    try:
        yield running
    finally:
        await running.cleanup()


# Chat clients -------------------------------------------------------------------------------


async def recv_text(ws: wsio.ClientConnection, timeout: float = T) -> str:
    async with asyncio.timeout(timeout):
        message = await ws.recv()
    assert isinstance(message, str), message
    return message


async def until_line(ws: wsio.ClientConnection, line: str, timeout: float = T) -> list[str]:
    """Read (bounded in time and count) until ``line`` arrives; return the lines before."""
    before: list[str] = []
    async with asyncio.timeout(timeout):
        for _ in range(MAX_MESSAGES):
            message = await recv_text(ws)
            if message == line:
                return before
            before.append(message)
    raise AssertionError(f"{line!r} not among {MAX_MESSAGES} messages: {before}")


class Member:
    """A chat client: its connection, its name, and the random part of that name, which
    tells the process that serves it."""

    def __init__(self, ws: wsio.ClientConnection, name: str, part: str) -> None:
        self.ws = ws
        self.name = name
        self.part = part

    async def say(self, text: str) -> str:
        await self.ws.send(text)
        return f"{self.name}: {text}"

    async def expect(self, line: str, timeout: float = T) -> list[str]:
        return await until_line(self.ws, line, timeout)

    async def leave(self) -> None:
        async with asyncio.timeout(T):
            await self.ws.close()
        assert self.ws.close_code == 1000


async def join(url: str) -> Member:
    """Connect to the chat; check that it is greeted with a Redis-mode name, then sees its
    own join line (after, maybe, lines that were on their way before it joined)."""
    async with asyncio.timeout(T):
        ws = await wsio.connect(url)
    greeting = await recv_text(ws)
    match = re.fullmatch(rf"you are ({NAME})", greeting)
    assert match, greeting
    member = Member(ws, match.group(1), match.group(2))
    await member.expect(f"{member.name} joined")
    return member


@contextlib.asynccontextmanager
async def members() -> AsyncIterator[list[Member]]:
    """A list to put the members of a test in; those still open are closed at the end."""
    joined: list[Member] = []
    try:
        yield joined
    finally:
        for member in joined:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(member.ws.close(), 5)


async def chat_both_ways(a: Member, b: Member, tag: str) -> None:
    """A line from ``a`` reaches ``b`` and ``a`` itself, and one from ``b`` reaches ``a``."""
    line = await a.say(f"hello from A {tag} ☕")
    await b.expect(line)
    await a.expect(line)
    line = await b.say(f"hello from B {tag}")
    await a.expect(line)
    await b.expect(line)


# Tests ----------------------------------------------------------------------------------------


@pytest.mark.skipif(not REUSE_PORT, reason="--workers needs Linux (SO_REUSEPORT)")
async def test_workers_share_one_room(redis_server: RedisServer, servers: Servers) -> None:
    """``--workers 2 --redis``: members served by different workers chat, and see each
    other join and leave."""
    serve = await servers.start(redis_server.url, "--workers", "2")
    async with members() as joined:
        a = await join(serve.chat)
        joined.append(a)
        # The kernel gives each connection to a worker by a hash of its addresses: a
        # member with another random part is served by the other worker. 40 all landing
        # on one worker has probability 2**-39.
        b = None
        for _ in range(40):
            candidate = await join(serve.chat)
            joined.append(candidate)
            if candidate.part != a.part:
                b = candidate
                break
            # Same worker as A: leave, so that only A and B remain.
            await candidate.leave()
            await a.expect(f"{candidate.name} left")
        assert b is not None, "every connection went to one worker"
        # A, on the other worker, saw B join.
        await a.expect(f"{b.name} joined")

        await chat_both_ways(a, b, "across workers")

        # Another member on A's worker or B's: everyone sees it join and leave.
        c = await join(serve.chat)
        joined.append(c)
        await a.expect(f"{c.name} joined")
        await b.expect(f"{c.name} joined")
        await c.leave()
        await a.expect(f"{c.name} left")
        await b.expect(f"{c.name} left")

        await b.leave()
        await a.expect(f"{b.name} left")
        await a.leave()
    assert await serve.stop() == 0, serve.stderr
    assert "Traceback" not in serve.stderr, serve.stderr


async def test_two_servers_share_one_room(redis_server: RedisServer, servers: Servers) -> None:
    """Two ``wsio serve --redis`` processes on two ports: one room."""
    first = await servers.start(redis_server.url)
    second = await servers.start(redis_server.url)
    assert first.port != second.port
    async with members() as joined:
        a = await join(first.chat)
        joined.append(a)
        b = await join(second.chat)
        joined.append(b)
        assert a.part != b.part, "both processes drew the same random part (p = 2**-16)"
        # Nothing else crossed between A's join line and B's: exactly in this order.
        assert await recv_text(a.ws) == f"{b.name} joined"

        line_a = await a.say("hello from A")
        assert await recv_text(a.ws) == line_a
        assert await recv_text(b.ws) == line_a
        line_b = await b.say("héllo ☕ from B")
        assert await recv_text(b.ws) == line_b
        assert await recv_text(a.ws) == line_b

        await b.leave()
        assert await recv_text(a.ws) == f"{b.name} left"
        await a.leave()
    # Together: each takes up to a second, its hub finishing its read of Redis.
    assert await asyncio.gather(first.stop(), second.stop()) == [0, 0]
    assert (first.stderr, second.stderr) == ("", "")


async def test_members_of_a_stopping_server_leave(
    redis_server: RedisServer, servers: Servers
) -> None:
    """A server stopping (SIGTERM) closes its members with 1001, and the members served
    elsewhere see them leave: the hub is still running while those connections close."""
    first = await servers.start(redis_server.url)
    second = await servers.start(redis_server.url)
    async with members() as joined:
        a = await join(first.chat)
        joined.append(a)
        b = await join(second.chat)
        joined.append(b)
        await a.expect(f"{b.name} joined")
        assert await second.stop() == 0, second.stderr
        with pytest.raises(wsio.ConnectionClosedOK):
            await recv_text(b.ws)
        assert b.ws.close_code == 1001
        assert await recv_text(a.ws) == f"{b.name} left"
        await a.leave()
    assert second.stderr == ""
    assert await first.stop() == 0, first.stderr
    assert first.stderr == ""


async def test_redis_outage(redis_server: RedisServer, servers: Servers) -> None:
    """Redis stops while two servers run: a line gets the "not delivered" answer, the
    servers warn without a traceback; Redis back, the room works again."""
    first = await servers.start(redis_server.url)
    second = await servers.start(redis_server.url)
    async with members() as joined:
        a = await join(first.chat)
        joined.append(a)
        b = await join(second.chat)
        joined.append(b)
        await a.expect(f"{b.name} joined")
        await chat_both_ways(a, b, "before")

        await redis_server.stop()
        await a.ws.send("into the void")
        assert await recv_text(a.ws) == NOT_DELIVERED
        await b.ws.send("into the void too")
        assert await recv_text(b.ws) == NOT_DELIVERED
        # The connections stay open; each server said why, in a warning.
        await first.wait_stderr(f"chat: can't publish to redis at {redis_server.url}")
        await second.wait_stderr(f"chat: can't publish to redis at {redis_server.url}")
        # Redis stays down until each hub retried a few times, its pause doubling.
        for serve in (first, second):
            await serve.wait_stderr(f"redis at {redis_server.url} unreachable")
        await asyncio.sleep(1.0)

        await redis_server.start()
        # Send until a line is taken: the first ones may still find Redis unreachable.
        # One taken, A's hub and B's deliver it once they read again.
        deadline = time.monotonic() + RECOVERY
        for attempt in range(200):
            assert time.monotonic() < deadline, "Redis back, but lines still not delivered"
            line = await a.say(f"anyone? {attempt}")
            answer = await recv_text(a.ws, RECOVERY)
            if answer != NOT_DELIVERED:
                assert answer == line
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("Redis back, but every line was refused")
        # Neither of the lines refused reached anyone; the one taken did.
        assert await b.expect(line, RECOVERY) == []
        line = await b.say("back")
        assert await recv_text(b.ws, RECOVERY) == line
        assert await recv_text(a.ws, RECOVERY) == line
        await chat_both_ways(a, b, "after")
    assert await asyncio.gather(first.stop(), second.stop()) == [0, 0]
    for serve in (first, second):
        assert "Traceback" not in serve.stderr, serve.stderr
        lines = serve.stderr.splitlines()
        assert lines, "no warning"
        for line in lines:
            assert line.startswith(("chat: can't publish to redis", "redis at ")), line


@pytest.mark.parametrize("workers", [1, 2])
async def test_unreachable_redis_exits_1(workers: int) -> None:
    """Nothing listens at the URL: status 1 at once, a line per process, no traceback;
    workers that can't start aren't started again."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    proc = await run_wsio(
        "serve", "--redis", url, "--host", "127.0.0.1", "--port", "0", "--workers", str(workers)
    )
    started = time.monotonic()
    try:
        async with asyncio.timeout(T):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert time.monotonic() - started < 5
    assert proc.returncode == 1
    assert out == b""
    lines = err.decode().splitlines()
    reasons = [line for line in lines if line.startswith(f"wsio: can't reach redis at {url}: ")]
    if workers == 1:
        assert lines == reasons and len(lines) == 1, lines
    else:
        # Each worker that got that far says why; the parent, that one of them exited
        # before it listened.
        assert 1 <= len(reasons) <= workers, lines
        given_up = [line for line in lines if "exited" in line and "before it listened" in line]
        assert len(given_up) == 1, lines
        assert sorted(lines) == sorted(reasons + given_up), lines


@pytest.mark.parametrize("url", ["http://x", "localhost:6379", ""])
async def test_redis_url_not_redis_exits_2(url: str) -> None:
    proc = await run_wsio("serve", "--redis", url, "--port", "0")
    try:
        async with asyncio.timeout(T):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 2
    assert out == b""
    text = err.decode()
    assert "argument --redis: expected a redis://, rediss:// or unix:// URL" in text, text
    assert "Traceback" not in text
