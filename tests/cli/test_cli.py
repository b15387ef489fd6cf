"""The ``wsio`` command, run as a subprocess (``python -m wsio``)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import wsio
from rawpeer import RawServer, ServerConn

EchoServerFactory = Callable[..., Awaitable[tuple[Any, int]]]

T = 10.0  # subprocess start-up included

Process = asyncio.subprocess.Process


class Running:
    """Subprocesses started by a test; killed at teardown if still running."""

    def __init__(self) -> None:
        self.procs: list[Process] = []

    async def start(self, *args: str, stdin: bool = False) -> Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wsio",
            *args,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self.procs.append(proc)
        return proc

    async def cleanup(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    r = Running()
    try:
        yield r
    finally:
        await r.cleanup()


async def start_echo(running: Running, *args: str) -> tuple[Process, int]:
    """Start ``wsio echo --port 0`` and return it with the port it printed."""
    proc = await running.start("echo", "--host", "127.0.0.1", "--port", "0", *args)
    assert proc.stdout is not None
    async with asyncio.timeout(T):
        line = (await proc.stdout.readline()).decode()
    match = re.search(r"listening on ws://127\.0\.0\.1:(\d+)/", line)
    assert match, f"unexpected first line: {line!r}"
    return proc, int(match.group(1))


async def finish(proc: Process, stdin: bytes | None = None) -> tuple[int, str, str]:
    """Wait (bounded) for ``proc`` to exit; return status, stdout and stderr."""
    async with asyncio.timeout(T):
        out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def read_line(proc: Process) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(T):
        line = await proc.stdout.readline()
    assert line, "stdout closed"
    return line.decode().rstrip("\n")


# wsio echo ---------------------------------------------------------------------------------------


async def test_echo_text_stays_text_and_binary_stays_binary(running: Running) -> None:
    _, port = await start_echo(running)
    async with asyncio.timeout(T), wsio.connect(f"ws://127.0.0.1:{port}/") as ws:
        await ws.send("hello ☕")
        assert await ws.recv() == "hello ☕"
        await ws.send(b"\x00\x01\xfe\xff")
        reply = await ws.recv()
        assert isinstance(reply, bytes)
        assert reply == b"\x00\x01\xfe\xff"
        await ws.send(["frag", "mented"])
        assert await ws.recv() == "fragmented"
        await ws.send(b"")
        assert await ws.recv() == b""
        await ws.send("")
        assert await ws.recv() == ""
        latency = await ws.ping()
        assert latency > 0
    assert ws.close_code == 1000


async def test_echo_default_max_size(running: Running) -> None:
    _, port = await start_echo(running)
    async with asyncio.timeout(T), wsio.connect(f"ws://127.0.0.1:{port}/") as ws:
        await ws.send(b"a" * 2**20)
        assert await ws.recv() == b"a" * 2**20
        await ws.send(b"a" * (2**20 + 1))
        with pytest.raises(wsio.ConnectionClosedError) as excinfo:
            await ws.recv()
    assert excinfo.value.code == 1009


async def test_echo_max_size_enforced(running: Running) -> None:
    proc, port = await start_echo(running, "--max-size", "100")
    async with asyncio.timeout(T):
        ws = await wsio.connect(f"ws://127.0.0.1:{port}/")
        await ws.send("x" * 100)
        assert await ws.recv() == "x" * 100
        await ws.send("x" * 101)
        with pytest.raises(wsio.ConnectionClosedError) as excinfo:
            await ws.recv()
        await ws.wait_closed()
    assert excinfo.value.code == 1009
    assert ws.close_code == 1009
    # The server keeps running for other clients.
    assert proc.returncode is None
    async with asyncio.timeout(T), wsio.connect(f"ws://127.0.0.1:{port}/") as ws2:
        await ws2.send("still up")
        assert await ws2.recv() == "still up"


async def test_echo_max_size_none(running: Running) -> None:
    _, port = await start_echo(running, "--max-size", "none")
    big = b"b" * (2**20 + 10)
    async with asyncio.timeout(T), wsio.connect(f"ws://127.0.0.1:{port}/", max_size=None) as ws:
        await ws.send(big)
        assert await ws.recv() == big


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_echo_signal_exits_cleanly_and_sends_1001(
    running: Running, signum: signal.Signals
) -> None:
    proc, port = await start_echo(running)
    async with asyncio.timeout(T):
        clients = [await wsio.connect(f"ws://127.0.0.1:{port}/") for _ in range(2)]
        for ws in clients:
            await ws.send("before")
            assert await ws.recv() == "before"
        proc.send_signal(signum)
        for ws in clients:
            with pytest.raises(wsio.ConnectionClosedOK) as excinfo:
                await ws.recv()
            assert excinfo.value.code == 1001
            await ws.wait_closed()
            assert ws.close_code == 1001
    status, _, err = await finish(proc)
    assert status == 0, err
    assert "Traceback" not in err


async def test_echo_sigint_without_clients(running: Running) -> None:
    proc, _ = await start_echo(running)
    proc.send_signal(signal.SIGINT)
    status, _, err = await finish(proc)
    assert status == 0, err
    assert "Traceback" not in err


async def test_echo_bad_max_size(running: Running) -> None:
    proc = await running.start("echo", "--port", "0", "--max-size", "-5")
    status, _, err = await finish(proc)
    assert status == 2
    assert "max-size" in err


async def test_echo_port_in_use(running: Running) -> None:
    """A port already taken is a user error: status 1 and a message, not a traceback."""
    _, port = await start_echo(running)
    proc = await running.start("echo", "--host", "127.0.0.1", "--port", str(port))
    status, out, err = await finish(proc)
    assert status == 1
    assert "listening" not in out
    assert str(port) in err
    assert "Traceback" not in err


# wsio connect ------------------------------------------------------------------------------------


async def test_connect_echoes_lines_and_exits_on_eof(
    running: Running, echo_server: EchoServerFactory
) -> None:
    _, port = await echo_server()
    proc = await running.start("connect", f"ws://127.0.0.1:{port}/", stdin=True)
    assert proc.stdin is not None
    proc.stdin.write(b"hello\n")
    await proc.stdin.drain()
    assert await read_line(proc) == "hello"
    proc.stdin.write("wörld ☕\nthird line\n".encode())
    await proc.stdin.drain()
    assert await read_line(proc) == "wörld ☕"
    assert await read_line(proc) == "third line"
    proc.stdin.close()
    status, out, err = await finish(proc)
    assert status == 0, err
    assert out == ""
    assert "connected to" in err
    assert "1000" in err
    assert "Traceback" not in err


async def test_connect_all_stdin_at_once(running: Running, echo_server: EchoServerFactory) -> None:
    """Piped input: every line is sent, then EOF closes cleanly (status 0, code 1000).

    (Replies still in flight when the client closes may be lost: RFC 6455 lets the server
    stop sending once it got the close frame. So the handler here only records.)
    """
    seen: list[str | bytes] = []
    closed: list[int | None] = []

    async def handler(ws: Any) -> None:
        try:
            async for message in ws:
                seen.append(message)
        finally:
            closed.append(ws.close_code)

    _, port = await echo_server(handler=handler)
    proc = await running.start("connect", f"ws://127.0.0.1:{port}/", stdin=True)
    status, out, err = await finish(proc, b"one\ntwo\r\nthree\n")
    assert status == 0, err
    assert seen == ["one", "two", "three"]
    assert out == ""
    assert closed == [1000]


async def test_connect_prints_binary_messages(
    running: Running, echo_server: EchoServerFactory
) -> None:
    async def handler(ws: Any) -> None:
        await ws.send(b"\x01\x02\xff")
        await ws.send("text after")
        await ws.recv()

    _, port = await echo_server(handler=handler)
    proc = await running.start("connect", f"ws://127.0.0.1:{port}/", stdin=True)
    line = await read_line(proc)
    assert "3 bytes" in line
    assert "0102ff" in line
    assert await read_line(proc) == "text after"
    assert proc.stdin is not None
    proc.stdin.close()
    status, _, err = await finish(proc)
    assert status == 0, err


async def test_connect_headers_reach_server(
    running: Running, echo_server: EchoServerFactory
) -> None:
    requests: list[Any] = []

    async def handler(ws: Any) -> None:
        requests.append(ws.request)
        await ws.send("welcome")
        await ws.recv()

    _, port = await echo_server(handler=handler)
    proc = await running.start(
        "connect",
        f"ws://127.0.0.1:{port}/path?x=1",
        "-H",
        "X-Test: value one",
        "--header",
        "Authorization: Bearer abc:def",
        stdin=True,
    )
    assert await read_line(proc) == "welcome"
    assert proc.stdin is not None
    proc.stdin.close()
    status, _, err = await finish(proc)
    assert status == 0, err
    assert len(requests) == 1
    assert requests[0].path == "/path?x=1"
    assert requests[0].headers["X-Test"] == "value one"
    assert requests[0].headers["Authorization"] == "Bearer abc:def"


async def test_connect_bad_header_argument(running: Running) -> None:
    proc = await running.start("connect", "ws://127.0.0.1:1/", "-H", "no colon here")
    status, _, err = await finish(proc)
    assert status == 2
    assert "no colon here" in err


async def test_connect_rejected_with_403(running: Running) -> None:
    body = b"Forbidden: you shall not pass\n"

    async def script(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        conn.close()

    async with RawServer(script) as srv:
        proc = await running.start("connect", f"{srv.url}/", stdin=True)
        status, out, err = await finish(proc)
    assert status == 1
    assert out == ""
    assert "403" in err
    assert "you shall not pass" in err
    assert "Traceback" not in err


async def test_connect_server_closes_normally(
    running: Running, echo_server: EchoServerFactory
) -> None:
    async def handler(ws: Any) -> None:
        await ws.send("goodbye")

    _, port = await echo_server(handler=handler)
    proc = await running.start("connect", f"ws://127.0.0.1:{port}/", stdin=True)
    # stdin stays open: the server's close ends the command.
    assert await read_line(proc) == "goodbye"
    async with asyncio.timeout(T):
        status = await proc.wait()
    assert proc.stderr is not None
    err = (await proc.stderr.read()).decode()
    assert status == 0, err
    assert "1000" in err


async def test_connect_server_error_close(
    running: Running, echo_server: EchoServerFactory
) -> None:
    async def handler(ws: Any) -> None:
        await ws.send("about to fail")
        raise RuntimeError("server bug")

    _, port = await echo_server(handler=handler)
    proc = await running.start("connect", f"ws://127.0.0.1:{port}/", stdin=True)
    assert await read_line(proc) == "about to fail"
    async with asyncio.timeout(T):
        status = await proc.wait()
    assert proc.stderr is not None
    err = (await proc.stderr.read()).decode()
    assert status == 1
    assert "1011" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1:9/", "ws://", "ws://127.0.0.1/#frag", "not a uri"]
)
async def test_connect_invalid_uri(running: Running, uri: str) -> None:
    proc = await running.start("connect", uri)
    status, out, err = await finish(proc)
    assert status == 2
    assert out == ""
    assert uri in err
    assert "Traceback" not in err


async def test_connect_refused(running: Running) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    proc = await running.start("connect", f"ws://127.0.0.1:{port}/")
    status, _, err = await finish(proc)
    assert status == 1
    assert "Traceback" not in err


async def test_connect_to_cli_echo_server(running: Running) -> None:
    """Both commands together: wsio connect against wsio echo."""
    echo_proc, port = await start_echo(running)
    proc = await running.start("connect", f"ws://127.0.0.1:{port}/", stdin=True)
    assert proc.stdin is not None
    proc.stdin.write("round trip ✓\n".encode())
    await proc.stdin.drain()
    assert await read_line(proc) == "round trip ✓"
    proc.stdin.close()
    status, out, err = await finish(proc)
    assert status == 0, err
    assert out == ""
    assert "1000" in err
    assert echo_proc.returncode is None


async def test_no_command(running: Running) -> None:
    proc = await running.start()
    status, _, err = await finish(proc)
    assert status == 2
    assert "usage" in err.lower()
