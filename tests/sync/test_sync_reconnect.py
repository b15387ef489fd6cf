"""``for ws in wsio.sync.reconnecting(...)``: reconnecting over threads against real servers
on 127.0.0.1, with the backoff and the transient-error decision of :mod:`wsio.reconnect`.

Every test uses a backoff of a few milliseconds and bounds its loop in turns and time.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from threads_servers import Servers, echo, port_of

import wsio
import wsio.sync
from reconnecting import FAST, RETRIED_503, TURNS, answering, free_port, retries
from wsio.reconnect import process_exception

T = 5.0


@pytest.fixture(autouse=True)
def info_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="wsio.client")
    return caplog


def wait_for_retries(caplog: pytest.LogCaptureFixture, count: int) -> None:
    deadline = time.monotonic() + T
    while len(retries(caplog)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} retries within {T} s"
        time.sleep(0.005)


def bounded() -> Callable[[Exception], Exception | None]:
    """A ``process_exception`` that bounds a test's loop in time: the default decision for
    ``T`` seconds, then every failure is fatal."""
    deadline = time.monotonic() + T

    def process(exc: Exception) -> Exception | None:
        return exc if time.monotonic() > deadline else process_exception(exc)

    return process


def url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/"


def reconnecting(port: int, **options: Any) -> Iterator[wsio.sync.ClientConnection]:
    """``wsio.sync.reconnecting`` to 127.0.0.1:``port``, :data:`FAST` and bounded."""
    options = {"backoff": FAST, "process_exception": bounded(), "open_timeout": T, **options}
    return wsio.sync.reconnecting(url(port), **options)


def test_server_stopped_and_restarted(
    servers: Servers, info_logs: pytest.LogCaptureFixture
) -> None:
    server = servers.start(echo)
    port = port_of(server)
    seen: list[tuple[int, str | bytes]] = []

    def restart_after_retries(count: int) -> None:
        wait_for_retries(info_logs, count)
        servers.start(echo, port)

    for turn, ws in enumerate(reconnecting(port)):
        ws.send(f"turn {turn}")
        seen.append((turn, ws.recv(timeout=T)))
        if turn == 1:
            break
        # The server goes away (1001), and comes back after a few refused attempts.
        servers.stop(server)
        with pytest.raises(wsio.ConnectionClosedOK):
            ws.recv(timeout=T)
        restart = threading.Thread(target=restart_after_retries, args=(3,), daemon=True)
        restart.start()
        assert turn < TURNS
    restart.join(T)
    assert seen == [(0, "turn 0"), (1, "turn 1")]
    logged = retries(info_logs)
    assert logged and all(
        line.startswith("connection failed: ConnectionRefusedError") for line in logged
    )
    # The pauses grow, then stay at max_delay.
    delays = [line.rsplit(" ", 2)[1] for line in logged]
    assert delays[:3] == ["0.01", "0.02", "0.04"]
    assert set(delays[3:]) <= {"0.05"}


def test_nothing_listening_then_a_server(
    servers: Servers, info_logs: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    opened: list[str | bytes] = []

    def client() -> None:
        for ws in reconnecting(port):
            ws.send("finally")
            opened.append(ws.recv(timeout=T))
            break

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    wait_for_retries(info_logs, 4)
    servers.start(echo, port)
    thread.join(T)
    assert opened == ["finally"]


def test_server_answering_503_then_101(
    servers: Servers, info_logs: pytest.LogCaptureFixture
) -> None:
    hook, given = answering([503, 503])
    port = port_of(servers.start(echo, process_request=hook))
    turns = 0
    for ws in reconnecting(port):
        turns += 1
        ws.send("up")
        assert ws.recv(timeout=T) == "up"
        break
    assert (turns, given) == (1, [503, 503, 101])
    # Retry-After: 1 lengthens each pause, up to max_delay.
    assert retries(info_logs) == [RETRIED_503] * 2


def test_raw_server_refusing_with_503_then_a_server(
    servers: Servers, info_logs: pytest.LogCaptureFixture
) -> None:
    """A raw socket answers 503 to the first request and stops listening; a wsio server
    then listens on the same port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(T)
    port = listener.getsockname()[1]

    def refuse_once() -> None:
        with listener:
            sock, _ = listener.accept()
        with sock:
            sock.settimeout(T)
            request = b""
            while not request.endswith(b"\r\n\r\n"):
                chunk = sock.recv(4096)
                assert chunk
                request += chunk
            sock.sendall(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 8\r\n"
                b"Connection: close\r\n\r\nnot now\n"
            )
        servers.start(echo, port)

    thread = threading.Thread(target=refuse_once, daemon=True)
    thread.start()
    for ws in reconnecting(port):
        ws.send("through")
        assert ws.recv(timeout=T) == "through"
        break
    thread.join(T)
    logged = retries(info_logs)
    assert logged[0] == RETRIED_503.replace("0.05", "0.01")  # no Retry-After this time
    # Refused while the server starts, if the client came back before it listened.
    assert all("ConnectionRefusedError" in line for line in logged[1:])


@pytest.mark.parametrize("status", [403, 404])
def test_client_error_status_ends_the_iteration(servers: Servers, status: int) -> None:
    hook, given = answering([status])
    port = port_of(servers.start(echo, process_request=hook))
    with pytest.raises(wsio.InvalidStatus) as caught:
        for _ in reconnecting(port):
            pytest.fail("the server refused")
    assert caught.value.response.status_code == status
    assert given == [status]


def test_abnormal_closure_waits_and_reopens(
    servers: Servers, info_logs: pytest.LogCaptureFixture
) -> None:
    def failing(ws: wsio.sync.ServerConnection) -> None:
        ws.recv()
        raise RuntimeError("boom")  # closes with 1011

    port = port_of(servers.start(failing))
    codes: list[int | None] = []
    for turn, ws in enumerate(reconnecting(port)):
        if turn == 2:
            break
        ws.send("go")
        with pytest.raises(wsio.ConnectionClosedError):
            ws.recv(timeout=T)
        codes.append(ws.close_code)
    assert codes == [1011, 1011]
    assert [line.split(":")[0] for line in retries(info_logs)] == ["connection closed"] * 2


def test_open_timeout_is_retried(servers: Servers, info_logs: pytest.LogCaptureFixture) -> None:
    """A raw socket accepts twice and never answers; a wsio server then listens on the
    same port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(T)
    port = listener.getsockname()[1]
    silent: list[socket.socket] = []

    def stay_silent_twice() -> None:
        with listener:
            for _ in range(2):
                silent.append(listener.accept()[0])
        servers.start(echo, port)

    thread = threading.Thread(target=stay_silent_twice, daemon=True)
    thread.start()
    try:
        for ws in reconnecting(port, open_timeout=0.1):
            assert ws.state is wsio.State.OPEN
            break
    finally:
        thread.join(T)
        for sock in silent:
            sock.close()
    logged = [line.split(";")[0] for line in retries(info_logs)]
    assert (
        logged[:2]
        == ["connection failed: TimeoutError: timed out during the opening handshake"] * 2
    )
    assert all("ConnectionRefusedError" in line for line in logged[2:])


def test_breaking_out_or_failing_closes_the_connection(servers: Servers) -> None:
    ended: list[int | None] = []

    def handler(ws: wsio.sync.ServerConnection) -> None:
        with contextlib.suppress(wsio.ConnectionClosed):
            ws.recv()
        ended.append(ws.close_code)

    port = port_of(servers.start(handler))
    connections = []
    for ws in reconnecting(port):
        connections.append(ws)
        break
    with pytest.raises(RuntimeError, match="application bug"):
        for ws in reconnecting(port):
            connections.append(ws)
            raise RuntimeError("application bug")
    assert [ws.state for ws in connections] == [wsio.State.CLOSED] * 2
    assert [ws.close_code for ws in connections] == [1000, 1000]
    servers.stop_all()
    assert ended == [1000, 1000]


def test_custom_process_exception(servers: Servers) -> None:
    hook, given = answering([403, 403])
    port = port_of(servers.start(echo, process_request=hook))

    def warming_up(exc: Exception) -> Exception | None:
        if isinstance(exc, wsio.InvalidStatus) and exc.response.status_code == 403:
            return None
        return exc

    for ws in reconnecting(port, process_exception=warming_up):
        assert ws.state is wsio.State.OPEN
        break
    assert given == [403, 403, 101]


def test_mistakes_raise_before_any_attempt() -> None:
    with pytest.raises(wsio.InvalidURI):
        wsio.sync.reconnecting("http://127.0.0.1/", backoff=FAST)
    with pytest.raises(TypeError):
        wsio.sync.reconnecting("ws://127.0.0.1/", write_limit=1)  # type: ignore[call-arg]
