"""``wsio serve``, the demo: run as a subprocess (``python -m wsio serve --port 0``) and
talked to over plain HTTP and with wsio clients; the slow-client rule is tested in-process,
where the chat's queues can be made small."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme

import wsio
from wsio.cli.demo import ChatRoom, demo_server, load_page

T = 10.0  # a bound on every wait, subprocess start-up included

Process = asyncio.subprocess.Process


class Demo:
    """A ``wsio serve`` subprocess and the port it printed."""

    def __init__(self, proc: Process, port: int) -> None:
        self.proc = proc
        self.port = port

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def stop(self, signum: int = signal.SIGINT) -> tuple[int, str, str]:
        """Send ``signum``; wait (bounded) for the exit; return status, stdout, stderr."""
        self.proc.send_signal(signum)
        async with asyncio.timeout(T):
            out, err = await self.proc.communicate()
        assert self.proc.returncode is not None
        return self.proc.returncode, out.decode(), err.decode()


async def start_demo(*args: str, host: str = "127.0.0.1", scheme: str = "http") -> Demo:
    """Start ``wsio serve --host HOST --port 0 ARGS``; check that it printed the URL it
    listens on, ``SCHEME://HOST:PORT/`` with an IPv6 address in brackets."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wsio",
        "serve",
        "--host",
        host,
        "--port",
        "0",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(T):
            line = (await proc.stdout.readline()).decode()
        authority = re.escape(f"[{host}]" if ":" in host else host)
        match = re.fullmatch(rf"wsio demo listening on {scheme}://{authority}:(\d+)/\n", line)
        assert match, f"unexpected first line: {line!r}"
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return Demo(proc, int(match.group(1)))


@pytest.fixture
async def demo() -> AsyncIterator[Demo]:
    running = await start_demo()
    try:
        yield running
    finally:
        if running.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                running.proc.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(running.proc.wait(), 5)


async def http(port: int, request: str) -> tuple[int, dict[str, str], bytes]:
    """Send a raw HTTP request; return the status, the headers (lower-case names) and the
    body, read up to the end of the stream (the demo always answers ``Connection: close``)."""
    async with asyncio.timeout(T):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request.encode())
            data = await reader.read()
        finally:
            writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("iso-8859-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ")[1]), headers, body


def get(path: str, *extra: str, method: str = "GET") -> str:
    """A request head: ``method path``, a Host header and ``extra`` header lines."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *extra]
    return "".join(f"{line}\r\n" for line in lines) + "\r\n"


async def recv(ws: wsio.ClientConnection) -> str | bytes:
    async with asyncio.timeout(T):
        return await ws.recv()


async def recv_text(ws: wsio.ClientConnection) -> str:
    message = await recv(ws)
    assert isinstance(message, str), message
    return message


async def join(url: str, **kwargs: Any) -> tuple[wsio.ClientConnection, str]:
    """Connect to the chat; return the connection and the name it was given, after
    checking that it is greeted with its name, then its own join line."""
    async with asyncio.timeout(T):
        ws = await wsio.connect(url, **kwargs)
    greeting = await recv_text(ws)
    match = re.fullmatch(r"you are (guest-\d+)", greeting)
    assert match, greeting
    name = match.group(1)
    assert await recv_text(ws) == f"{name} joined"
    return ws, name


# Plain HTTP ---------------------------------------------------------------------------------


async def test_page(demo: Demo) -> None:
    status, headers, body = await http(demo.port, get("/"))
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["content-length"] == str(len(body))
    assert headers["connection"] == "close"
    assert body == load_page()
    page = body.decode()
    assert page.startswith("<!doctype html>")
    for element in ('id="log"', 'id="input"', 'id="send"', 'id="status"', "window.demo"):
        assert element in page
    # The WebSocket URL is built from the page's address, ws: or wss:.
    assert "location.host" in page and '"wss:"' in page


async def test_healthz(demo: Demo) -> None:
    status, headers, body = await http(demo.port, get("/healthz"))
    assert (status, body) == (200, b"OK\n")
    assert headers["content-length"] == "3"
    status, _, body = await http(demo.port, get("/healthz?from=probe"))
    assert (status, body) == (200, b"OK\n")


@pytest.mark.parametrize("path", ["/nope", "/chat/more", "/index.html", "//", "//x/healthz"])
async def test_unknown_path_is_404(demo: Demo, path: str) -> None:
    status, headers, _ = await http(demo.port, get(path))
    assert status == 404
    assert headers["connection"] == "close"


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/"), ("HEAD", "/"), ("PUT", "/healthz"), ("DELETE", "/")]
)
async def test_page_and_healthz_answer_only_get(demo: Demo, method: str, path: str) -> None:
    status, headers, _ = await http(demo.port, get(path, method=method))
    assert status == 405
    assert headers["allow"] == "GET"


async def test_websocket_paths_without_upgrade_get_426(demo: Demo) -> None:
    for path in ("/chat", "/echo"):
        status, headers, _ = await http(demo.port, get(path))
        assert status == 426
        assert headers["upgrade"].lower() == "websocket"


async def test_no_websocket_at_page_or_unknown_path(demo: Demo) -> None:
    for path in ("/", "/healthz", "/nope", "//x/chat"):
        with pytest.raises(wsio.InvalidStatus) as excinfo:
            async with asyncio.timeout(T):
                await wsio.connect(f"{demo.ws}{path}")
        assert excinfo.value.response.status_code == 404


async def test_chat_refuses_other_origins(demo: Demo) -> None:
    with pytest.raises(wsio.InvalidStatus) as excinfo:
        async with asyncio.timeout(T):
            await wsio.connect(f"{demo.ws}/chat", origin="http://evil.example")
    assert excinfo.value.response.status_code == 403
    # The page's own origin is welcome.
    ws, _ = await join(f"{demo.ws}/chat", origin=demo.http)
    await ws.close()


# The chat -----------------------------------------------------------------------------------


async def test_chat_two_clients(demo: Demo) -> None:
    a, name_a = await join(f"{demo.ws}/chat")
    b, name_b = await join(f"{demo.ws}/chat")
    assert name_a != name_b
    assert await recv_text(a) == f"{name_b} joined"

    await a.send("hello from A")
    assert await recv_text(a) == f"{name_a}: hello from A"
    assert await recv_text(b) == f"{name_a}: hello from A"
    await b.send("héllo ☕ from B")
    assert await recv_text(b) == f"{name_b}: héllo ☕ from B"
    assert await recv_text(a) == f"{name_b}: héllo ☕ from B"

    async with asyncio.timeout(T):
        await b.close()
    assert b.close_code == 1000
    assert await recv_text(a) == f"{name_b} left"

    c, name_c = await join(f"{demo.ws}/chat")
    assert name_c not in (name_a, name_b)
    assert await recv_text(a) == f"{name_c} joined"
    async with asyncio.timeout(T):
        await c.close()
        await a.close()


async def test_chat_takes_text_only(demo: Demo) -> None:
    a, _ = await join(f"{demo.ws}/chat")
    b, name_b = await join(f"{demo.ws}/chat")
    await recv_text(a)  # b joined
    await b.send(b"\x00binary")
    with pytest.raises(wsio.ConnectionClosedError) as excinfo:
        await recv(b)
    assert excinfo.value.code == 1003
    assert await recv_text(a) == f"{name_b} left"
    async with asyncio.timeout(T):
        await a.close()


# The echo endpoint --------------------------------------------------------------------------


async def test_echo_text_and_binary(demo: Demo) -> None:
    async with asyncio.timeout(T), wsio.connect(f"{demo.ws}/echo") as ws:
        messages: list[str | bytes] = ["hello", "héllo ☕", "", b"\x00\xfe\xff", b"", b"x" * 10**5]
        for message in messages:
            await ws.send(message)
            reply = await ws.recv()
            assert type(reply) is type(message)
            assert reply == message
        await ws.send(["frag", "mented"])
        assert await ws.recv() == "fragmented"
    assert ws.close_code == 1000


async def test_tls(
    tls_server_cert: trustme.LeafCert, client_ssl_context: ssl.SSLContext, tmp_path: Path
) -> None:
    """``--certfile``: the page over https://, the endpoints over wss://."""
    certfile = tmp_path / "server.pem"
    tls_server_cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    running = await start_demo("--certfile", str(certfile), scheme="https")
    try:
        async with (
            asyncio.timeout(T),
            wsio.connect(f"wss://localhost:{running.port}/echo", ssl=client_ssl_context) as ws,
        ):
            await ws.send("private")
            assert await ws.recv() == "private"
    finally:
        status, _, err = await running.stop()
    assert status == 0, err


async def test_max_size_option() -> None:
    running = await start_demo("--max-size", "1000")
    try:
        async with asyncio.timeout(T), wsio.connect(f"{running.ws}/echo") as ws:
            await ws.send("x" * 1000)
            assert await ws.recv() == "x" * 1000
            await ws.send("x" * 1001)
            with pytest.raises(wsio.ConnectionClosedError) as excinfo:
                await ws.recv()
        assert excinfo.value.code == 1009
        assert (await running.stop())[0] == 0
    finally:
        if running.proc.returncode is None:
            running.proc.kill()
            await running.proc.wait()


# Stopping -----------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_signal_stops_cleanly_with_1001(demo: Demo, signum: int) -> None:
    chat, _ = await join(f"{demo.ws}/chat")
    async with asyncio.timeout(T):
        echo = await wsio.connect(f"{demo.ws}/echo")
    status, out, err = await demo.stop(signum)
    assert status == 0, err
    assert out == ""  # the first line was read by start_demo; nothing else is printed
    for ws in (chat, echo):
        with pytest.raises(wsio.ConnectionClosedOK):
            await recv(ws)
        assert ws.close_code == 1001


async def test_idle_connection_does_not_delay_exit(demo: Demo) -> None:
    """Browsers open connections ahead of need and may send nothing on them (Chromium's
    preconnect): stopping mustn't wait open_timeout (10 s) for those."""
    async with asyncio.timeout(T):
        reader, writer = await asyncio.open_connection("127.0.0.1", demo.port)
    try:
        ws, _ = await join(f"{demo.ws}/chat")
        loop = asyncio.get_running_loop()
        started = loop.time()
        status, _, err = await demo.stop()
        assert status == 0, err
        assert loop.time() - started < 3
        assert ws.close_code == 1001
        async with asyncio.timeout(T):
            # Answered 503 at once, then closed: a request sent late reads that answer.
            answer = await reader.read()
        assert answer.startswith(b"HTTP/1.1 503 "), answer
    finally:
        writer.close()


async def test_printed_url_brackets_ipv6() -> None:
    running = await start_demo(host="::1")
    status, _, err = await running.stop()
    assert status == 0, err


async def test_port_in_use(demo: Demo) -> None:
    async with asyncio.timeout(T):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wsio",
            "serve",
            "--port",
            str(demo.port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
    assert proc.returncode == 1
    assert out == b""
    assert b"couldn't listen" in err


# One slow client doesn't hold up the room (in-process, with small queues) -------------------


async def test_long_lines_are_refused() -> None:
    """Each line goes to every member: its length is bounded, and what it costs with it."""
    async with demo_server("127.0.0.1", 0, None) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/chat"
        a, name_a = await join(url)
        b, name_b = await join(url)
        assert await recv_text(a) == f"{name_b} joined"
        await a.send("x" * 4097)
        assert await recv_text(a) == "(not delivered: lines are at most 4096 characters)"
        await a.send("x" * 4096)
        assert await recv_text(a) == f"{name_a}: {'x' * 4096}"
        assert await recv_text(b) == f"{name_a}: {'x' * 4096}"
        async with asyncio.timeout(T):
            await a.close()
            await b.close()


async def test_slow_client_is_dropped_without_blocking_others() -> None:
    room = ChatRoom(limit=65536, max_line=300_000)
    async with demo_server("127.0.0.1", 0, None, room=room) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/chat"
        # max_queue=1: once a message waits unread, the slow client stops reading the
        # socket, so the server's buffers and then its write buffer for that client fill
        # up. Without compression, so that the big messages stay big on the wire.
        slow, name_slow = await join(url, max_queue=1, compression=None)
        fast, name_fast = await join(url, compression=None)
        big = "x" * 200_000
        async with asyncio.timeout(2 * T):
            for i in range(500):
                await fast.send(f"{i} {big}")
                # The fast client keeps getting every message while the slow one lags.
                assert await recv_text(fast) == f"{name_fast}: {i} {big}"
                if room.hub.totals.closed:
                    break
        assert room.hub.totals.closed == 1, "the slow client was never dropped"
        # Reading now, the slow client finds what was sent before it was dropped, then 1013.
        async with asyncio.timeout(T):
            with pytest.raises(wsio.ConnectionClosedError) as excinfo:
                async for _ in slow:
                    pass
        assert excinfo.value.code == 1013
        assert slow.close_reason == "slow consumer"
        # Its closing handshake over, it leaves the room.
        assert await recv_text(fast) == f"{name_slow} left"
        assert len(room.members) == 1
        await fast.send("still here")
        assert await recv_text(fast) == f"{name_fast}: still here"
        async with asyncio.timeout(T):
            await fast.close()
