"""``wsio probe``: the handshake inspector, in-process and as ``python -m wsio probe``.

Servers: wsio itself, the ``websockets`` package, and raw servers (tests/rawpeer.py) that
answer whatever a test scripts, right or wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
import websockets.asyncio.server

from rawpeer import OP_CLOSE, RawServer, ServerConn
from wsio.cli.probe import probe, run_probe

EchoServerFactory = Callable[..., Awaitable[tuple[Any, int]]]

T = 10.0  # bound for a subprocess, start-up included

RULES = [
    "status code is 101",
    "Upgrade is websocket",
    "Connection includes Upgrade",
    "Sec-WebSocket-Accept matches the key",
    "extensions were offered",
    "subprotocol was offered",
]


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


async def run_in_process(
    uri: str,
    *,
    headers: list[tuple[str, str]] | None = None,
    subprotocols: list[str] | None = None,
    origin: str | None = None,
    cafile: str | None = None,
    insecure: bool = False,
    as_json: bool = False,
    timeout: float = 5.0,
) -> tuple[int, str, str]:
    """``run_probe`` with StringIO outputs; return status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    async with asyncio.timeout(timeout + 5):
        status = await run_probe(
            uri,
            headers=headers or [],
            subprotocols=subprotocols or [],
            origin=origin,
            cafile=cafile,
            insecure=insecure,
            as_json=as_json,
            timeout=timeout,
            out=out,
            err=err,
        )
    return status, out.getvalue(), err.getvalue()


async def run_command(*args: str) -> tuple[int, str, str]:
    """``python -m wsio probe ARGS``, bounded; return status, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wsio",
        "probe",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(T):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def section(out: str, title: str) -> list[str]:
    """The lines of one section of the report: after ``title``, up to the next blank line."""
    lines = out.splitlines()
    start = lines.index(title) + 1
    end = start
    while end < len(lines) and lines[end]:
        end += 1
    return lines[start:end]


def _shown(out: str, title: str, mark: str) -> list[str]:
    """The lines of a message shown verbatim, marks removed; the final "" is the empty line
    that ends the head."""
    lines = section(out, title)
    assert all(line == mark or line.startswith(mark + " ") for line in lines), lines
    return [line[len(mark) + 1 :] for line in lines]


def request_lines(out: str) -> list[str]:
    return _shown(out, "Request sent:", ">")


def response_lines(out: str) -> list[str]:
    return _shown(out, "Response received (verbatim):", "<")


def check_lines(out: str) -> dict[str, str]:
    """Rule name -> "PASS" or "FAIL", from the checks section."""
    verdicts = {}
    for line in section(out, "Checks (RFC 6455 §4.1, the client's side of §4.2.2):"):
        mark, _, rest = line.strip().partition("] ")
        if mark == "[INFO":
            continue
        rule, _, _ = rest.partition(": ")
        verdicts[rule] = mark.removeprefix("[")
    return verdicts


def free_port() -> int:
    """A port where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def finish_closing(conn: ServerConn) -> None:
    """After a 101: answer the probe's close frame, then wait for it to hang up."""
    frame = await conn.recv_frame(timeout=5)
    assert frame is not None and frame.opcode == OP_CLOSE, frame
    assert frame.close_code == 1000
    await conn.send_close(1000)
    assert await conn.wait_eof(timeout=5)


def raw_101(
    status_line: bytes = b"HTTP/1.1 101 Switching Protocols",
    extra_headers: dict[str, str | None] | None = None,
    *,
    opens: bool = True,
) -> Callable[[ServerConn], Awaitable[None]]:
    """A raw server script answering one scripted 101."""

    async def script(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.accept(status_line=status_line, extra_headers=extra_headers)
        if opens:
            await finish_closing(conn)
        else:
            # The probe fails the handshake: it must hang up without a closing handshake.
            assert await conn.wait_eof(timeout=5)

    return script


@pytest.fixture
async def wsio_server(echo_server: EchoServerFactory) -> AsyncIterator[tuple[Any, int, list[Any]]]:
    """A wsio server recording each connection; yields (server, port, connections)."""
    seen: list[Any] = []

    async def handler(ws: Any) -> None:
        seen.append(ws)
        async for message in ws:
            await ws.send(message)

    server, port = await echo_server(handler, subprotocols=["superchat"])
    yield server, port, seen


@pytest.fixture
def ca_file(tls_ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return str(path)


# --------------------------------------------------------------------------------------------
# A correct server
# --------------------------------------------------------------------------------------------


async def test_wsio_server_report(wsio_server: tuple[Any, int, list[Any]]) -> None:
    _, port, seen = wsio_server
    uri = f"ws://127.0.0.1:{port}/chat?room=1"
    status, out, err = await run_in_process(uri)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"Probing {uri}"
    # The request shown is the request the server received, byte for byte.
    assert len(seen) == 1
    server_side = seen[0]
    assert request_lines(out) == server_side.request.head.decode().split("\r\n")[:-1]
    assert request_lines(out)[-1] == ""
    assert request_lines(out)[0] == "GET /chat?room=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{port}" in request_lines(out)
    # The response shown is the response the server sent, verbatim.
    sent = server_side.response.serialize().decode().split("\r\n")[:-1]
    assert response_lines(out) == sent
    assert response_lines(out)[-1] == ""
    assert response_lines(out)[0] == "HTTP/1.1 101 Switching Protocols"
    # Every rule, in order, passed.
    assert check_lines(out) == dict.fromkeys(RULES, "PASS")
    assert "[FAIL]" not in out
    assert (
        "  [INFO] reason phrase 'Switching Protocols': free text, not examined (RFC 9112 §4)"
        in lines
    )
    assert "Timing:" in lines
    for step in ("tcp connect", "response", "total"):
        assert any(line.startswith(f"  {step}: ") and line.endswith(" ms") for line in lines)
    assert "TLS:" not in lines
    assert lines[-1] == "Result: handshake succeeded"
    # The probe closed politely: the server saw a 1000 close.
    async with asyncio.timeout(5):
        await server_side.wait_closed()
    assert server_side.close_code == 1000


async def test_wsio_server_json(wsio_server: tuple[Any, int, list[Any]]) -> None:
    _, port, seen = wsio_server
    uri = f"ws://127.0.0.1:{port}/"
    status, out, err = await run_in_process(uri, as_json=True)
    assert (status, err) == (0, "")
    report = json.loads(out)
    assert report["uri"] == uri
    assert report["ok"] is True
    assert report["error"] is None
    assert report["request"].startswith("GET / HTTP/1.1\r\n")
    assert report["request"].endswith("\r\n\r\n")
    response = report["response"]
    assert response["status_code"] == 101
    assert response["reason_phrase"] == "Switching Protocols"
    assert response["head"].startswith("HTTP/1.1 101 Switching Protocols\r\n")
    headers = {name.lower(): value for name, value in response["headers"]}
    assert headers["upgrade"] == "websocket"
    assert headers["sec-websocket-accept"] == seen[0].response.headers["Sec-WebSocket-Accept"]
    assert response["body"] == ""
    assert response["body_truncated"] is False
    assert [check["rule"] for check in report["checks"]] == RULES
    assert all(check["passed"] is True for check in report["checks"])
    assert report["tls"] is None
    timing = report["timing_ms"]
    assert {"tcp_connect", "response", "total"} <= set(timing)
    assert "tls_handshake" not in timing
    assert all(isinstance(value, int | float) and value >= 0 for value in timing.values())
    assert timing["total"] >= timing["response"]


async def test_probe_function_report(wsio_server: tuple[Any, int, list[Any]]) -> None:
    _, port, _ = wsio_server
    report = await asyncio.wait_for(probe(f"ws://127.0.0.1:{port}/", timeout=5), 10)
    assert report.ok
    assert report.error is None
    assert report.response is not None and report.response.status_code == 101
    assert [check.rule for check in report.checks] == RULES
    assert all(check.passed for check in report.checks)
    assert report.checks[0].detail == "101"
    assert report.checks[1].detail == "websocket"


async def test_command_against_wsio_server(wsio_server: tuple[Any, int, list[Any]]) -> None:
    _, port, _ = wsio_server
    status, out, err = await run_command(f"ws://127.0.0.1:{port}/")
    assert status == 0, (out, err)
    assert check_lines(out) == dict.fromkeys(RULES, "PASS")
    assert "HTTP/1.1 101 Switching Protocols" in response_lines(out)
    assert out.splitlines()[-1] == "Result: handshake succeeded"

    status, out, err = await run_command(f"ws://127.0.0.1:{port}/", "--json")
    assert status == 0, (out, err)
    report = json.loads(out)
    assert report["ok"] is True
    assert report["response"]["status_code"] == 101
    assert all(check["passed"] for check in report["checks"])
    assert {"tcp_connect", "response", "total"} <= set(report["timing_ms"])


async def test_websockets_server() -> None:
    async def handler(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async with websockets.asyncio.server.serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        status, out, err = await run_in_process(f"ws://127.0.0.1:{port}/")
        assert (status, err) == (0, "")
        assert check_lines(out) == dict.fromkeys(RULES, "PASS")
        assert any(line.startswith("Server: Python/") for line in response_lines(out))
        status, _, _ = await run_command(f"ws://127.0.0.1:{port}/")
        assert status == 0


# --------------------------------------------------------------------------------------------
# Reason phrases: free text, never examined
# --------------------------------------------------------------------------------------------


async def test_unusual_reason_phrase() -> None:
    line = b"HTTP/1.1 101 Web Socket Protocol Handshake"
    async with RawServer(raw_101(line)) as srv:
        status, out, err = await run_in_process(f"{srv.url}/")
    assert (status, err) == (0, "")
    assert response_lines(out)[0] == "HTTP/1.1 101 Web Socket Protocol Handshake"
    assert check_lines(out) == dict.fromkeys(RULES, "PASS")
    assert (
        "  [INFO] reason phrase 'Web Socket Protocol Handshake': free text, not examined"
        " (RFC 9112 §4)" in out.splitlines()
    )
    assert out.splitlines()[-1] == "Result: handshake succeeded"


async def test_unusual_reason_phrase_command() -> None:
    line = b"HTTP/1.1 101 Web Socket Protocol Handshake"
    async with RawServer(raw_101(line)) as srv:
        status, out, err = await run_command(f"{srv.url}/")
    assert status == 0, (out, err)
    assert "< HTTP/1.1 101 Web Socket Protocol Handshake" in out.splitlines()


@pytest.mark.parametrize("line", [b"HTTP/1.1 101", b"HTTP/1.1 101 "])
async def test_no_reason_phrase(line: bytes) -> None:
    async with RawServer(raw_101(line)) as srv:
        status, out, err = await run_in_process(f"{srv.url}/")
    assert (status, err) == (0, "")
    assert response_lines(out)[0] == "HTTP/1.1 101"
    assert check_lines(out) == dict.fromkeys(RULES, "PASS")
    assert (
        "  [INFO] no reason phrase: allowed, it is free text and never examined"
        in out.splitlines()
    )
    assert out.splitlines()[-1] == "Result: handshake succeeded"

    async with RawServer(raw_101(line)) as srv:
        status, out, _ = await run_in_process(f"{srv.url}/", as_json=True)
    assert status == 0
    report = json.loads(out)
    assert report["response"]["reason_phrase"] == ""
    assert report["response"]["head"].startswith(line.decode() + "\r\n")


# --------------------------------------------------------------------------------------------
# Broken answers: one FAIL each, every other rule still shown
# --------------------------------------------------------------------------------------------


async def test_wrong_accept() -> None:
    wrong = "dGhlIHNhbXBsZSBub25jZQ=="
    async with RawServer(raw_101(extra_headers={"Sec-WebSocket-Accept": wrong}, opens=False)) as s:
        status, out, err = await run_in_process(f"{s.url}/")
    assert (status, err) == (1, "")
    assert f"Sec-WebSocket-Accept: {wrong}" in response_lines(out)
    expected = dict.fromkeys(RULES, "PASS")
    expected["Sec-WebSocket-Accept matches the key"] = "FAIL"
    assert check_lines(out) == expected
    fail = [line for line in out.splitlines() if line.startswith("  [FAIL]")]
    assert len(fail) == 1 and wrong in fail[0]
    assert out.splitlines()[-1].startswith("Result: handshake failed: ")
    assert "Sec-WebSocket-Accept" in out.splitlines()[-1]


async def test_wrong_accept_command_and_json() -> None:
    script = raw_101(extra_headers={"Sec-WebSocket-Accept": "bm9wZQ=="}, opens=False)
    async with RawServer(script) as srv:
        status, out, err = await run_command(f"{srv.url}/", "--json")
    assert status == 1, (out, err)
    report = json.loads(out)
    assert report["ok"] is False
    assert report["response"]["status_code"] == 101
    verdicts = {check["rule"]: check["passed"] for check in report["checks"]}
    assert verdicts == {rule: rule != "Sec-WebSocket-Accept matches the key" for rule in RULES}
    assert report["error"]


async def test_missing_accept() -> None:
    async with RawServer(raw_101(extra_headers={"Sec-WebSocket-Accept": None}, opens=False)) as s:
        status, out, _ = await run_in_process(f"{s.url}/")
    assert status == 1
    assert check_lines(out)["Sec-WebSocket-Accept matches the key"] == "FAIL"
    assert list(check_lines(out)) == RULES


@pytest.mark.parametrize("offered", [[], ["chat"]])
async def test_subprotocol_not_offered(offered: list[str]) -> None:
    script = raw_101(extra_headers={"Sec-WebSocket-Protocol": "superchat"}, opens=False)
    async with RawServer(script) as srv:
        status, out, err = await run_in_process(f"{srv.url}/", subprotocols=offered)
    assert (status, err) == (1, "")
    expected = dict.fromkeys(RULES, "PASS")
    expected["subprotocol was offered"] = "FAIL"
    assert check_lines(out) == expected
    fail = [line for line in out.splitlines() if line.startswith("  [FAIL]")]
    assert "superchat" in fail[0]


@pytest.mark.parametrize(
    ("answer", "options"),
    [
        # The probe offers permessage-deflate unless told not to.
        ("permessage-deflate", ["--no-compression"]),
        ("x-unknown", []),
        # Offered, but the answer sets a parameter that the offer doesn't allow.
        ("permessage-deflate; client_max_window_bits=16", []),
    ],
)
async def test_unrequested_extension(answer: str, options: list[str]) -> None:
    script = raw_101(extra_headers={"Sec-WebSocket-Extensions": answer}, opens=False)
    async with RawServer(script) as srv:
        status, out, err = await run_command(f"{srv.url}/", *options)
    assert (status, err) == (1, "")
    expected = dict.fromkeys(RULES, "PASS")
    expected["extensions were offered"] = "FAIL"
    assert check_lines(out) == expected
    fail = [line for line in out.splitlines() if line.startswith("  [FAIL]")]
    assert answer.split(";")[0] in fail[0] or "client_max_window_bits" in fail[0]


async def test_subprotocol_and_extension_command() -> None:
    script = raw_101(
        extra_headers={
            "Sec-WebSocket-Protocol": "other",
            "Sec-WebSocket-Extensions": "x-custom",
        },
        opens=False,
    )
    async with RawServer(script) as srv:
        status, out, err = await run_command(f"{srv.url}/", "-p", "chat")
    assert status == 1, (out, err)
    expected = dict.fromkeys(RULES, "PASS")
    expected["extensions were offered"] = "FAIL"
    expected["subprotocol was offered"] = "FAIL"
    assert check_lines(out) == expected


async def test_bad_upgrade_and_connection() -> None:
    script = raw_101(extra_headers={"Upgrade": "h2c", "Connection": "keep-alive"}, opens=False)
    async with RawServer(script) as srv:
        status, out, _ = await run_in_process(f"{srv.url}/")
    assert status == 1
    expected = dict.fromkeys(RULES, "PASS")
    expected["Upgrade is websocket"] = "FAIL"
    expected["Connection includes Upgrade"] = "FAIL"
    assert check_lines(out) == expected


# --------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------

FORBIDDEN_BODY = b"Go away.\nYou are not welcome here.\n"


async def forbidden(conn: ServerConn) -> None:
    await conn.read_request()
    await conn.send(
        b"HTTP/1.1 403 Forbidden\r\n"
        b"Content-Type: text/plain\r\n"
        b"X-Reason: origin not allowed\r\n"
        b"Content-Length: " + str(len(FORBIDDEN_BODY)).encode() + b"\r\n"
        b"Connection: close\r\n"
        b"\r\n" + FORBIDDEN_BODY
    )
    conn.close()


async def test_forbidden() -> None:
    async with RawServer(forbidden) as srv:
        status, out, err = await run_in_process(f"{srv.url}/")
    assert (status, err) == (1, "")
    assert response_lines(out) == [
        "HTTP/1.1 403 Forbidden",
        "Content-Type: text/plain",
        "X-Reason: origin not allowed",
        f"Content-Length: {len(FORBIDDEN_BODY)}",
        "Connection: close",
        "",
    ]
    assert section(out, "Body:") == ["  Go away.", "  You are not welcome here."]
    # After a status other than 101, only the status rule applies.
    assert check_lines(out) == {"status code is 101": "FAIL"}
    assert "  [FAIL] status code is 101: status code is 403" in out.splitlines()
    assert "  [INFO] reason phrase 'Forbidden': free text, not examined (RFC 9112 §4)" in out
    assert out.splitlines()[-1].startswith("Result: handshake failed: ")
    assert "403" in out.splitlines()[-1]


async def test_forbidden_json() -> None:
    async with RawServer(forbidden) as srv:
        status, out, err = await run_in_process(f"{srv.url}/", as_json=True)
    assert (status, err) == (1, "")
    report = json.loads(out)
    assert report["ok"] is False
    assert "403" in report["error"]
    response = report["response"]
    assert response["status_code"] == 403
    assert response["reason_phrase"] == "Forbidden"
    assert ["X-Reason", "origin not allowed"] in response["headers"]
    assert response["body"] == FORBIDDEN_BODY.decode()
    assert response["body_truncated"] is False
    assert report["checks"] == [
        {"rule": "status code is 101", "passed": False, "detail": "status code is 403"}
    ]


async def test_forbidden_command() -> None:
    async with RawServer(forbidden) as srv:
        status, out, err = await run_command(f"{srv.url}/")
    assert status == 1, (out, err)
    assert "< X-Reason: origin not allowed" in out.splitlines()
    assert "  You are not welcome here." in out.splitlines()


async def test_version_override_gets_426(wsio_server: tuple[Any, int, list[Any]]) -> None:
    _, port, seen = wsio_server
    status, out, err = await run_command(
        f"ws://127.0.0.1:{port}/", "-H", "Sec-WebSocket-Version: 12"
    )
    assert status == 1, (out, err)
    request = request_lines(out)
    # The header replaces the default rather than repeating it.
    assert "Sec-WebSocket-Version: 12" in request
    assert "Sec-WebSocket-Version: 13" not in request
    response = response_lines(out)
    assert response[0] == "HTTP/1.1 426 Upgrade Required"
    assert "Sec-WebSocket-Version: 13" in response
    assert "Connection: close" in response
    assert check_lines(out) == {"status code is 101": "FAIL"}
    assert "Body:" in out.splitlines()
    assert seen == []  # the handler never ran


# --------------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------------


async def test_wss_with_cafile(
    echo_server: EchoServerFactory, server_ssl_context: ssl.SSLContext, ca_file: str
) -> None:
    _, port = await echo_server(ssl=server_ssl_context)
    uri = f"wss://localhost:{port}/"
    status, out, err = await run_command(uri, "--cafile", ca_file)
    assert status == 0, (out, err)
    tls = dict(line.strip().split(": ", 1) for line in section(out, "TLS:"))
    assert tls["version"].startswith("TLSv1.")
    assert tls["cipher"] not in ("", "None")
    assert "organizationName=trustme" in tls["certificate_subject"]
    assert tls["server_hostname"] == "localhost"
    assert any(line.startswith("  tls handshake: ") for line in section(out, "Timing:"))
    assert check_lines(out) == dict.fromkeys(RULES, "PASS")


async def test_wss_with_cafile_json(
    echo_server: EchoServerFactory, server_ssl_context: ssl.SSLContext, ca_file: str
) -> None:
    _, port = await echo_server(ssl=server_ssl_context)
    status, out, err = await run_in_process(
        f"wss://127.0.0.1:{port}/", cafile=ca_file, as_json=True
    )
    assert (status, err) == (0, "")
    report = json.loads(out)
    assert report["ok"] is True
    assert report["tls"]["version"].startswith("TLSv1.")
    assert report["tls"]["cipher"]
    assert "trustme" in report["tls"]["certificate_subject"]
    assert "tls_handshake" in report["timing_ms"]


async def test_wss_unverified(
    echo_server: EchoServerFactory, server_ssl_context: ssl.SSLContext
) -> None:
    _, port = await echo_server(ssl=server_ssl_context)
    status, out, err = await run_in_process(f"wss://localhost:{port}/")
    assert (status, err) == (1, "")
    assert "Response received (verbatim):" not in out
    last = out.splitlines()[-1]
    assert last.startswith("Result: handshake failed: SSLCertVerificationError")
    assert "certificate verify failed" in last


async def test_wss_insecure(
    echo_server: EchoServerFactory, server_ssl_context: ssl.SSLContext
) -> None:
    _, port = await echo_server(ssl=server_ssl_context)
    status, out, err = await run_in_process(f"wss://localhost:{port}/", insecure=True)
    assert (status, err) == (0, "")
    assert "TLS:" in out.splitlines()
    assert check_lines(out) == dict.fromkeys(RULES, "PASS")

    status, out, err = await run_command(f"wss://localhost:{port}/", "--insecure")
    assert status == 0, (out, err)


# --------------------------------------------------------------------------------------------
# Network and usage errors
# --------------------------------------------------------------------------------------------


async def test_connection_refused() -> None:
    port = free_port()
    status, out, err = await run_in_process(f"ws://127.0.0.1:{port}/")
    assert (status, err) == (1, "")
    assert "Response received (verbatim):" not in out
    assert "Request (not sent):" in out.splitlines()  # what would have been sent
    assert "Request sent:" not in out.splitlines()
    last = out.splitlines()[-1]
    assert last.startswith("Result: handshake failed: ConnectionRefusedError")
    assert str(port) in last


async def test_connection_refused_command() -> None:
    status, out, err = await run_command(f"ws://127.0.0.1:{free_port()}/", "--json")
    assert status == 1, (out, err)
    report = json.loads(out)
    assert report["ok"] is False
    assert report["response"] is None
    assert report["error"].startswith("ConnectionRefusedError")


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1/", "ws://", "ws://127.0.0.1:99999/", "ws://127.0.0.1/#frag"]
)
async def test_invalid_uri(uri: str) -> None:
    status, out, err = await run_in_process(uri)
    assert (status, out) == (2, "")
    assert err.startswith("wsio: ")
    assert uri in err


async def test_invalid_uri_command() -> None:
    status, out, err = await run_command("http://example.com/")
    assert (status, out) == (2, "")
    assert err.startswith("wsio: ")
    assert "Traceback" not in err


async def silent(conn: ServerConn) -> None:
    await conn.read_request()
    # Never answer; the probe gives up and hangs up.
    assert await conn.wait_eof(timeout=5)


async def test_timeout() -> None:
    async with RawServer(silent) as srv:
        loop = asyncio.get_running_loop()
        start = loop.time()
        status, out, err = await run_in_process(f"{srv.url}/", timeout=0.5)
        elapsed = loop.time() - start
    assert (status, err) == (1, "")
    assert elapsed < 3
    assert "Response received (verbatim):" not in out
    assert out.splitlines()[-1] == "Result: handshake failed: timed out after 0.5 s"


async def test_timeout_command() -> None:
    async with RawServer(silent) as srv:
        status, out, err = await run_command(f"{srv.url}/", "--timeout", "0.5")
    assert status == 1, (out, err)
    assert "timed out" in out.splitlines()[-1]


# --------------------------------------------------------------------------------------------
# What the request carries
# --------------------------------------------------------------------------------------------


async def test_request_options_command(wsio_server: tuple[Any, int, list[Any]]) -> None:
    _, port, seen = wsio_server
    status, out, err = await run_command(
        f"ws://127.0.0.1:{port}/",
        "-H",
        "X-Trace: abc 123",
        "-H",
        "Cookie: a=b",
        "-p",
        "chat",
        "-p",
        "superchat",
        "--origin",
        "https://example.com",
    )
    assert status == 0, (out, err)
    request = request_lines(out)
    assert "X-Trace: abc 123" in request
    assert "Cookie: a=b" in request
    assert "Sec-WebSocket-Protocol: chat, superchat" in request
    assert "Origin: https://example.com" in request
    assert "Sec-WebSocket-Protocol: superchat" in response_lines(out)
    assert "  [PASS] subprotocol was offered: superchat" in out.splitlines()
    # And the server received exactly that.
    headers = seen[0].request.headers
    assert headers["X-Trace"] == "abc 123"
    assert headers["Origin"] == "https://example.com"
    assert headers["Sec-WebSocket-Protocol"] == "chat, superchat"


async def test_request_options_in_process(wsio_server: tuple[Any, int, list[Any]]) -> None:
    _, port, _ = wsio_server
    status, out, _ = await run_in_process(
        f"ws://127.0.0.1:{port}/",
        headers=[("X-One", "1"), ("X-Two", "2")],
        subprotocols=["superchat"],
        origin="http://localhost:8000",
        as_json=True,
    )
    assert status == 0
    report = json.loads(out)
    request = report["request"].split("\r\n")
    assert {"X-One: 1", "X-Two: 2", "Origin: http://localhost:8000"} <= set(request)
    assert "Sec-WebSocket-Protocol: superchat" in request
    rule = report["checks"][-1]
    assert rule == {"rule": "subprotocol was offered", "passed": True, "detail": "superchat"}


async def test_bad_header_option() -> None:
    status, out, err = await run_command("ws://127.0.0.1:1/", "-H", "no colon here")
    assert status == 2, (out, err)
    assert "Name: value" in err


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
async def test_unusable_cafile(tmp_path: Path, content: bytes | None) -> None:
    """A CA file that is missing or holds no certificate is a usage error, said plainly."""
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    status, out, err = await run_command("wss://127.0.0.1:1/", "--cafile", str(path))
    assert status in (1, 2), (out, err)
    assert "Traceback" not in err
    assert err.startswith("wsio: ")
    assert str(path) in err or "certificate" in err.lower()
