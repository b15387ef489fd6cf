"""``async for ws in wsio.connect(...)``: reconnecting against real servers on 127.0.0.1.

Every test uses a backoff of a few milliseconds, and bounds its loop in turns and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import pytest

import wsio
from rawpeer import RawServer, ServerConn
from reconnecting import FAST, RETRIED_503, TURNS, answering, free_port, retries

EchoServerFactory = Callable[..., Awaitable[tuple[Any, int]]]

T = 5.0


def url(port: int, path: str = "/") -> str:
    return f"ws://127.0.0.1:{port}{path}"


@pytest.fixture(autouse=True)
def info_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="wsio.client")
    return caplog


async def wait_for_retries(caplog: pytest.LogCaptureFixture, count: int) -> None:
    async with asyncio.timeout(T):
        while len(retries(caplog)) < count:
            await asyncio.sleep(0.005)


async def test_server_refusing_then_accepting(info_logs: pytest.LogCaptureFixture) -> None:
    port = free_port()
    opened: asyncio.Future[str | bytes] = asyncio.get_running_loop().create_future()

    async def client() -> None:
        async for ws in wsio.connect(url(port), backoff=FAST):
            await ws.send("finally")
            opened.set_result(await ws.recv())
            break

    async with asyncio.timeout(T), contextlib.AsyncExitStack() as stack:
        task = asyncio.create_task(client())
        stack.push_async_callback(asyncio.wait_for, task, T)
        await wait_for_retries(info_logs, 4)
        await stack.enter_async_context(wsio.serve(echo, "127.0.0.1", port))
        assert await opened == "finally"
    logged = retries(info_logs)
    assert all(line.startswith("connection failed: ConnectionRefusedError") for line in logged)
    # The pauses grow, then stay at max_delay.
    assert [line.rsplit(" ", 2)[1] for line in logged[:4]] == ["0.01", "0.02", "0.04", "0.05"]


async def echo(ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


async def test_server_answering_503_then_101(
    echo_server: EchoServerFactory, info_logs: pytest.LogCaptureFixture
) -> None:
    hook, given = answering([503, 503])
    _, port = await echo_server(process_request=hook)
    turns = 0
    async with asyncio.timeout(T):
        async for ws in wsio.connect(url(port), backoff=FAST):
            turns += 1
            await ws.send("up")
            assert await ws.recv() == "up"
            break
    assert (turns, given) == (1, [503, 503, 101])
    # Retry-After: 1 lengthens each pause, up to max_delay.
    assert retries(info_logs) == [RETRIED_503] * 2


@pytest.mark.parametrize("status", [403, 404, 401])
async def test_client_error_status_ends_the_iteration(
    echo_server: EchoServerFactory, info_logs: pytest.LogCaptureFixture, status: int
) -> None:
    hook, given = answering([status] * TURNS)
    _, port = await echo_server(process_request=hook)
    turns = 0
    async with asyncio.timeout(T):
        with pytest.raises(wsio.InvalidStatus) as caught:
            async for _ in wsio.connect(url(port), backoff=FAST):
                turns += 1
    assert caught.value.response.status_code == status
    assert (turns, given, retries(info_logs)) == (0, [status], [])


async def test_fatal_error_after_a_connection_ends_the_iteration(
    echo_server: EchoServerFactory,
) -> None:
    # The first connection opens; then the server requires credentials.
    calls = 0

    def process_request(connection: Any, request: Any) -> Any:
        nonlocal calls
        calls += 1
        return None if calls == 1 else connection.respond(HTTPStatus.UNAUTHORIZED, "who?\n")

    _, port = await echo_server(process_request=process_request)
    turns = 0
    async with asyncio.timeout(T):
        with pytest.raises(wsio.InvalidStatus, match="HTTP 401"):
            async for _ in wsio.connect(url(port), backoff=FAST):
                turns += 1
                assert turns < TURNS
    assert (turns, calls) == (1, 2)


async def test_connection_closed_by_server_is_reopened(
    echo_server: EchoServerFactory, info_logs: pytest.LogCaptureFixture
) -> None:
    served = 0

    async def greet_and_leave(ws: Any) -> None:
        nonlocal served
        served += 1
        await ws.send(f"hello {served}")

    _, port = await echo_server(handler=greet_and_leave)
    greetings: list[str | bytes] = []
    connections: list[Any] = []
    async with asyncio.timeout(T):
        async for ws in wsio.connect(url(port), backoff=FAST):
            connections.append(ws)
            greetings.append(await ws.recv())
            with pytest.raises(wsio.ConnectionClosedOK):
                await ws.recv()
            if len(greetings) == 3 or len(greetings) == TURNS:
                break
    assert greetings == ["hello 1", "hello 2", "hello 3"]
    assert len(set(map(id, connections))) == 3
    assert all(ws.close_code == 1000 for ws in connections)
    # A normal closure: reopened at once, nothing to log.
    assert retries(info_logs) == []


async def test_abnormal_closure_waits_before_reopening(
    info_logs: pytest.LogCaptureFixture,
) -> None:
    count = 0

    async def script(conn: ServerConn) -> None:
        nonlocal count
        count += 1
        await conn.handshake()
        if count == 1:
            conn.abort()  # no close frame: 1006
        else:
            await conn.recv_frames_until_close()

    seen: list[int | None] = []
    async with asyncio.timeout(T), RawServer(script) as server:
        async for ws in wsio.connect(f"{server.url}/", backoff=FAST):
            if not seen:
                with pytest.raises(wsio.ConnectionClosedError):
                    await ws.recv()
            seen.append(ws.close_code)
            if len(seen) == 2:
                break
    assert seen == [1006, None]
    assert retries(info_logs) == [
        "connection closed: no close frame received or sent; reconnecting in 0.01 s"
    ]


async def test_open_timeout_is_retried(info_logs: pytest.LogCaptureFixture) -> None:
    count = 0

    async def script(conn: ServerConn) -> None:
        nonlocal count
        count += 1
        if count <= 2:
            # Read the request, never answer: the client gives up at open_timeout.
            await conn.read_request()
            await conn.wait_eof()
        else:
            await conn.handshake()
            await conn.recv_frames_until_close()

    async with asyncio.timeout(T), RawServer(script) as server:
        async for ws in wsio.connect(f"{server.url}/", backoff=FAST, open_timeout=0.1):
            assert ws.state is wsio.State.OPEN
            break
    assert count == 3
    assert [line.split(";")[0] for line in retries(info_logs)] == [
        "connection failed: TimeoutError"
    ] * 2


def close_code_recorder() -> tuple[asyncio.Future[int | None], Callable[[Any], Awaitable[None]]]:
    """A handler that waits for the connection to end, and the future of its close code."""
    ended: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()

    async def handler(ws: Any) -> None:
        with contextlib.suppress(wsio.ConnectionClosed):
            await ws.recv()
        ended.set_result(ws.close_code)

    return ended, handler


async def test_breaking_out_closes_the_connection(echo_server: EchoServerFactory) -> None:
    ended, handler = close_code_recorder()
    _, port = await echo_server(handler=handler)
    async with asyncio.timeout(T):
        connections = []
        async for ws in wsio.connect(url(port), backoff=FAST):
            connections.append(ws)
            break
        assert await ended == 1000
        await connections[0].wait_closed()
    assert connections[0].state is wsio.State.CLOSED


async def test_error_in_the_loop_closes_the_connection(echo_server: EchoServerFactory) -> None:
    ended, handler = close_code_recorder()
    _, port = await echo_server(handler=handler)
    async with asyncio.timeout(T):
        with pytest.raises(RuntimeError, match="application bug"):
            async for _ in wsio.connect(url(port), backoff=FAST):
                raise RuntimeError("application bug")
        assert await ended == 1000


async def test_cancelling_while_backing_off(info_logs: pytest.LogCaptureFixture) -> None:
    port = free_port()

    async def client() -> None:
        async for _ in wsio.connect(url(port), backoff=wsio.Backoff(initial_delay=T)):
            pytest.fail("nothing listens there")

    task = asyncio.create_task(client())
    await wait_for_retries(info_logs, 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, T)


async def test_custom_process_exception(echo_server: EchoServerFactory) -> None:
    # A server that answers 403 while it warms up: the application says it's transient.
    hook, given = answering([403, 403])
    _, port = await echo_server(process_request=hook)

    def process_exception(exc: Exception) -> Exception | None:
        if isinstance(exc, wsio.InvalidStatus) and exc.response.status_code == 403:
            return None
        return exc

    async with asyncio.timeout(T):
        async for ws in wsio.connect(url(port), backoff=FAST, process_exception=process_exception):
            assert ws.state is wsio.State.OPEN
            break
    assert given == [403, 403, 101]


async def test_invalid_uri_raises_before_any_attempt() -> None:
    with pytest.raises(wsio.InvalidURI):
        async for _ in wsio.connect("http://127.0.0.1/", backoff=FAST):
            pytest.fail("no connection can open")
