"""The ``wsio`` command, run as a subprocess (``python -m wsio``)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import re
import signal
import sys
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

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


async def start_echo(
    running: Running, *args: str, host: str = "127.0.0.1", scheme: str = "ws"
) -> tuple[Process, int]:
    """Start ``wsio echo --host HOST --port 0 ARGS`` and return it with the port it printed
    in ``SCHEME://HOST:PORT/`` (an IPv6 address in brackets)."""
    proc = await running.start("echo", "--host", host, "--port", "0", *args)
    assert proc.stdout is not None
    async with asyncio.timeout(T):
        line = (await proc.stdout.readline()).decode()
    authority = re.escape(f"[{host}]" if ":" in host else host)
    match = re.search(rf"listening on {scheme}://{authority}:(\d+)/\n", line)
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
    """Piped input: every line is sent, then EOF closes cleanly (status 0, code 1000),
    after waiting --wait seconds for replies that never come."""
    seen: list[str | bytes] = []
    closed: list[int | None] = []

    async def handler(ws: Any) -> None:
        try:
            async for message in ws:
                seen.append(message)
        finally:
            closed.append(ws.close_code)

    _, port = await echo_server(handler=handler)
    proc = await running.start("connect", f"ws://127.0.0.1:{port}/", "--wait", "0.2", stdin=True)
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


# Bad arguments -----------------------------------------------------------------------------------


PORT = "expected a port number from 0 to 65535, got"
HEADER = "expected 'Name: value', got 'Bad Name: x': invalid header name: 'Bad Name'"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["echo", "--port", "99999"], f"argument --port: {PORT} '99999'"),
        (["serve", "--port", "-1"], f"argument --port: {PORT} '-1'"),
        (["echo", "--port", "abc"], f"argument --port: {PORT} 'abc'"),
        (
            ["echo", "--max-size", "abc"],
            "argument --max-size: expected a positive number of bytes or 'none', got 'abc'",
        ),
        (["connect", "ws://127.0.0.1:1/", "-H", "Bad Name: x"], f"argument -H/--header: {HEADER}"),
        (["probe", "ws://127.0.0.1:1/", "-H", "Bad Name: x"], f"argument -H/--header: {HEADER}"),
        (
            ["probe", "ws://127.0.0.1:1/", "--timeout", "inf"],
            "argument --timeout: expected a positive number of seconds, got 'inf'",
        ),
        (
            ["connect", "ws://127.0.0.1:1/", "--wait", "-1"],
            "argument --wait: expected a number of seconds, 0 or more, got '-1'",
        ),
        (
            ["probe", "ws://127.0.0.1:1/", "--origin", "a\r\nX-Injected: 1"],
            "argument --origin: invalid value for header Origin: 'a\\r\\nX-Injected: 1'",
        ),
        (["probe", "ws://127.0.0.1:1/", "-p", "a b"], "argument -p/--subprotocol: expected"),
        (["connect", "ws://[::1/"], "wsio: ws://[::1/ isn't a valid URI: "),
        (["probe", "ws://[zz]/"], "wsio: ws://[zz]/ isn't a valid URI: "),
        (["connect", "ws://ex..ample/"], "wsio: ws://ex..ample/ isn't a valid URI: "),
        (["echo", "--keyfile", "key.pem"], "wsio: --keyfile needs --certfile"),
    ],
)
async def test_bad_argument(running: Running, args: list[str], message: str) -> None:
    """Status 2 and an error that names the option or repeats the value, never a traceback
    nor the name of an internal function."""
    proc = await running.start(*args)
    status, out, err = await finish(proc)
    assert status == 2, err
    assert out == ""
    assert message in err
    assert "Traceback" not in err


async def test_echo_host_that_cannot_be_bound(running: Running) -> None:
    proc = await running.start("echo", "--host", "ex..ample", "--port", "0")
    status, out, err = await finish(proc)
    assert status == 1
    assert out == ""
    assert err.startswith("wsio: couldn't listen on ex..ample:0: ")
    assert err.count("\n") == 1


async def test_echo_prints_ipv6_address_in_brackets(running: Running) -> None:
    """The URL printed can be pasted back: ``ws://[::1]:PORT/``."""
    _, port = await start_echo(running, host="::1")
    async with asyncio.timeout(T), wsio.connect(f"ws://[::1]:{port}/") as ws:
        await ws.send("over IPv6")
        assert await ws.recv() == "over IPv6"


async def test_help_shows_defaults(running: Running) -> None:
    proc = await running.start("connect", "--help")
    status, out, _ = await finish(proc)
    assert status == 0
    help_text = " ".join(out.split())
    assert f"(default {wsio.defaults.MAX_SIZE})" in help_text
    assert f"(default {wsio.defaults.OPEN_TIMEOUT})" in help_text
    assert "--wait SECONDS" in help_text
    proc = await running.start("echo", "--help")
    _, out, _ = await finish(proc)
    help_text = " ".join(out.split())
    assert "(default 127.0.0.1)" in help_text
    assert "(default 9001)" in help_text


async def test_version(running: Running) -> None:
    proc = await running.start("--version")
    status, out, _ = await finish(proc)
    assert status == 0
    assert out == f"wsio {importlib.metadata.version('wsio')}\n"


# Standard input of wsio connect ------------------------------------------------------------------


async def test_connect_invalid_utf8_line_is_reported_and_the_rest_sent(
    running: Running, echo_server: EchoServerFactory
) -> None:
    """A line that isn't UTF-8 can't be a text message: it is named on stderr and skipped,
    the lines after it are sent, and the status (1) tells that not everything was."""
    seen: list[str | bytes] = []

    async def handler(ws: Any) -> None:
        async for message in ws:
            seen.append(message)

    _, port = await echo_server(handler=handler)
    proc = await running.start("connect", f"ws://127.0.0.1:{port}/", "--wait", "0", stdin=True)
    status, out, err = await finish(proc, b"one\nbad \xff\xfe line\nthree\n")
    assert seen == ["one", "three"]
    assert status == 1
    assert out == ""
    assert "line 2 not sent: invalid UTF-8 at byte 5: b'bad \\xff\\xfe line'" in err
    assert "Traceback" not in err


async def test_connect_waits_for_replies_at_end_of_input(
    running: Running, echo_server: EchoServerFactory
) -> None:
    """``echo hello | wsio connect URI`` prints the reply, even a late one."""

    async def slow_echo(ws: Any) -> None:
        async for message in ws:
            await asyncio.sleep(0.3)
            await ws.send(message)

    _, port = await echo_server(handler=slow_echo)
    proc = await running.start("connect", f"ws://127.0.0.1:{port}/", "--wait", "5", stdin=True)
    status, out, err = await finish(proc, b"hello\n")
    assert status == 0, err
    assert out == "hello\n"


# TLS and timeouts --------------------------------------------------------------------------------


@pytest.fixture
def tls_files(tls_ca: trustme.CA, tls_server_cert: trustme.LeafCert, tmp_path: Path) -> Path:
    """ca.pem, cert.pem and key.pem in a directory."""
    tls_ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    tls_server_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    tls_server_cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    return tmp_path


async def test_echo_and_connect_over_tls(running: Running, tls_files: Path) -> None:
    _, port = await start_echo(
        running,
        "--certfile",
        str(tls_files / "cert.pem"),
        "--keyfile",
        str(tls_files / "key.pem"),
        scheme="wss",
    )
    uri = f"wss://localhost:{port}/"
    for options in (["--cafile", str(tls_files / "ca.pem")], ["--insecure"]):
        proc = await running.start("connect", uri, *options, stdin=True)
        status, out, err = await finish(proc, "secret ✓\n".encode())
        assert status == 0, err
        assert out == "secret ✓\n"
    # Without the CA, the certificate isn't trusted: a one-line error.
    proc = await running.start("connect", uri, stdin=True)
    status, out, err = await finish(proc, b"")
    assert status == 1
    assert "CERTIFICATE_VERIFY_FAILED" in err
    assert "Traceback" not in err


async def test_echo_unusable_certfile(running: Running, tmp_path: Path) -> None:
    path = tmp_path / "cert.pem"
    path.write_text("not a certificate\n")
    proc = await running.start("echo", "--port", "0", "--certfile", str(path))
    status, out, err = await finish(proc)
    assert status == 2
    assert out == ""
    assert err.startswith(f"wsio: can't use {path} as certificate and key: ")
    assert "Traceback" not in err


async def test_connect_timeout(running: Running) -> None:
    async def silent(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.wait_eof(timeout=5)

    async with RawServer(silent) as srv:
        proc = await running.start("connect", f"{srv.url}/", "--timeout", "0.5")
        status, out, err = await finish(proc)
    assert status == 1
    assert out == ""
    assert err == f"wsio: couldn't connect to {srv.url}/: timed out after 0.5 s\n"


# What a hostile server sends is escaped ----------------------------------------------------------

HOSTILE = "red\x1b[31m cr\r nul\x00 bidi\u202e tab\t bell\x07 csi\x9b end"
ESCAPED = "red\\x1b[31m cr\\r nul\\x00 bidi\\u202e tab\\t bell\\x07 csi\\x9b end"


def assert_no_control_characters(text: str) -> None:
    assert not any(
        unicodedata.category(char) in ("Cc", "Cf") for char in text.replace("\n", "")
    ), repr(text)


async def test_connect_escapes_messages_and_close_reason(
    running: Running, echo_server: EchoServerFactory
) -> None:
    async def handler(ws: Any) -> None:
        await ws.send(HOSTILE)
        await ws.send("two\nlines")
        await ws.close(1000, "bye\x1b[2J")

    _, port = await echo_server(handler=handler)
    proc = await running.start("connect", f"ws://127.0.0.1:{port}/", stdin=True)
    status, out, err = await finish(proc)
    assert status == 0, err
    assert out == f"{ESCAPED}\ntwo\\nlines\n"
    assert "connection closed: 1000 bye\\x1b[2J\n" in err
    assert_no_control_characters(out + err)


async def hostile_403(conn: ServerConn) -> None:
    body = f"{HOSTILE}\r\nsecond line\n".encode()
    await conn.read_request()
    await conn.send(
        b"HTTP/1.1 403 Forbidden \x9b\r\nX-Evil: a\x9bb\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    conn.close()


async def test_connect_escapes_failed_handshake(running: Running) -> None:
    async with RawServer(hostile_403) as srv:
        proc = await running.start("connect", f"{srv.url}/")
        status, out, err = await finish(proc)
    assert status == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == "handshake failed: HTTP 403 Forbidden \\x9b"
    assert "X-Evil: a\\x9bb" in lines
    assert lines[-2:] == [ESCAPED, "second line"]
    assert_no_control_characters(err)


async def test_probe_escapes_the_response(running: Running) -> None:
    async with RawServer(hostile_403) as srv:
        proc = await running.start("probe", f"{srv.url}/")
        status, out, err = await finish(proc)
    assert status == 1, err
    lines = out.splitlines()
    assert "< HTTP/1.1 403 Forbidden \\x9b" in lines
    assert "< X-Evil: a\\x9bb" in lines
    assert f"  {ESCAPED}" in lines
    assert "  second line" in lines
    assert_no_control_characters(out)


async def test_probe_request_not_sent_when_connect_fails(running: Running) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    proc = await running.start("probe", f"ws://127.0.0.1:{port}/")
    status, out, err = await finish(proc)
    assert status == 1, err
    assert "Request sent:" not in out.splitlines()
    assert "Request (not sent):" in out.splitlines()


async def test_connect_output_encoding_without_the_characters(
    running: Running, echo_server: EchoServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A terminal whose encoding lacks a character the server sent gets an escape."""

    async def handler(ws: Any) -> None:
        await ws.send("caf\u00e9 \u2615")
        await ws.close(1000, "\u2615")

    _, port = await echo_server(handler=handler)
    monkeypatch.setenv("PYTHONIOENCODING", "ascii")
    proc = await running.start("connect", f"ws://127.0.0.1:{port}/", stdin=True)
    status, out, err = await finish(proc)
    assert status == 0, err
    assert out == "caf\\xe9 \\u2615\n"
    assert "connection closed: 1000 \\u2615\n" in err
