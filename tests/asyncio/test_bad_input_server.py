"""Bad opening handshakes sent to a wsio server by a raw client (BAD-INPUT.md items 1–10), on
both I/O layers (the slowloris test, which counts the asyncio tasks left behind: asyncio).

Every rejected handshake must get the documented status with ``Connection: close``, never a
``101``, never reach the handler, and the server must close the TCP connection.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from layers import Layer, Served
from rawpeer import OP_TEXT, HTTPResponse, RawClient, build_frame, build_request

# Both I/O layers (tests/layers.py): the tests that take `serve` run on each.
pytestmark = pytest.mark.both_layers

EchoServerFactory = Callable[..., Awaitable[tuple[Any, int]]]
ServeFactory = Callable[..., Awaitable[Served]]

EOF_TIMEOUT = 2.0


class Handlers:
    """An echo handler that counts the connections that reached it."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, ws: Any) -> None:
        self.calls += 1
        async for message in ws:
            await ws.send(message)


OPENED: list[RawClient] = []


def abort_raw_clients() -> None:
    while OPENED:
        OPENED.pop().abort()


@pytest.fixture
async def serve(layer: Layer) -> AsyncIterator[ServeFactory]:
    """A factory: ``served = await serve(handler, **kwargs)`` serves on the test's layer.
    At the end of the test, every raw client is aborted, then the servers shut down."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(handler: Any, **kwargs: Any) -> Served:
            served: Served = await stack.enter_async_context(layer.serve(handler, **kwargs))
            return served

        try:
            yield start
        finally:
            abort_raw_clients()


@pytest.fixture(autouse=True)
def _abort_raw_clients(echo_server: EchoServerFactory) -> Iterator[None]:
    """Abort the raw clients of the tests that take ``echo_server``, before it closes."""
    yield
    abort_raw_clients()


async def start(serve: ServeFactory, **kwargs: Any) -> tuple[Handlers, int]:
    handlers = Handlers()
    served = await serve(handlers, **kwargs)
    return handlers, served.port


async def open_client(port: int) -> RawClient:
    client = await RawClient.open("127.0.0.1", port)
    OPENED.append(client)
    return client


async def send_request(
    port: int, headers: Any = None, *, request: bytes | None = None, path: str = "/"
) -> tuple[RawClient, HTTPResponse]:
    client = await open_client(port)
    response = await client.handshake(path, headers, request)
    return client, response


async def assert_rejected(
    client: RawClient,
    response: HTTPResponse,
    status: int,
    handlers: Handlers,
    tokens: dict[str, str] | None = None,
) -> None:
    """The documented status, ``Connection: close``, TCP closed, handler never called.

    ``tokens`` maps header names to a token each must contain (e.g. ``{"Allow": "GET"}``).
    """
    try:
        assert response.status_code == status, response.raw
        for name, token in (tokens or {}).items():
            assert response.has_token(name, token), response.raw
        assert response.has_token("Connection", "close"), response.raw
        assert response.header("Sec-WebSocket-Accept") is None
        assert await client.wait_eof(EOF_TIMEOUT), "server did not close the connection"
        # Nothing but the response (and its body) came back: no frames, no second response.
        assert not client.parser.buffer, bytes(client.parser.buffer)
        assert handlers.calls == 0
    finally:
        client.abort()


async def assert_accepted(client: RawClient, response: HTTPResponse, handlers: Handlers) -> None:
    """A real ``101`` whose connection echoes a message."""
    try:
        assert response.status_code == 101, response.raw
        assert response.header("Sec-WebSocket-Accept") == client.expected_accept
        await client.send_frame(OP_TEXT, "ping?")
        frame = await client.recv_frame()
        assert frame is not None
        assert (frame.opcode, frame.payload) == (OP_TEXT, b"ping?")
        assert handlers.calls == 1
    finally:
        client.abort()


# -- 1. Sec-WebSocket-Key --------------------------------------------------------------------


def b64(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode()


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("abc", id="short-garbage"),
        pytest.param(b64(15), id="15-bytes"),
        pytest.param(b64(17), id="17-bytes"),
        pytest.param("!" * 22 + "==", id="not-base64"),
        pytest.param(b64(16)[:-2], id="unpadded"),
    ],
)
async def test_bad_key_gets_400(serve: ServeFactory, key: str | None) -> None:
    handlers, port = await start(serve)
    client, response = await send_request(port, {"Sec-WebSocket-Key": key})
    await assert_rejected(client, response, 400, handlers)


async def test_two_keys_get_400(serve: ServeFactory) -> None:
    handlers, port = await start(serve)
    client, response = await send_request(
        port, [("Sec-WebSocket-Key", b64(16)), ("Sec-WebSocket-Key", b64(16))]
    )
    await assert_rejected(client, response, 400, handlers)


async def test_valid_key_control(serve: ServeFactory) -> None:
    handlers, port = await start(serve)
    client, response = await send_request(port)
    await assert_accepted(client, response, handlers)


# -- 2. Sec-WebSocket-Version ----------------------------------------------------------------


@pytest.mark.parametrize("version", ["12", "8", None, "13, 12"])
async def test_bad_version_gets_426(serve: ServeFactory, version: str | None) -> None:
    handlers, port = await start(serve)
    client, response = await send_request(port, {"Sec-WebSocket-Version": version})
    await assert_rejected(client, response, 426, handlers, {"Sec-WebSocket-Version": "13"})


# -- 3. Method and HTTP version -------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "HEAD"])
async def test_non_get_gets_405(serve: ServeFactory, method: str) -> None:
    handlers, port = await start(serve)
    request = build_request(host=f"127.0.0.1:{port}", method=method)
    client, response = await send_request(port, request=request)
    await assert_rejected(client, response, 405, handlers, {"Allow": "GET"})


async def test_http_1_0_gets_505(serve: ServeFactory) -> None:
    handlers, port = await start(serve)
    request = build_request(host=f"127.0.0.1:{port}", version="HTTP/1.0")
    client, response = await send_request(port, request=request)
    await assert_rejected(client, response, 505, handlers)


# -- 4. Upgrade ------------------------------------------------------------------------------


@pytest.mark.parametrize("upgrade", ["h2c", None, "websocket2", "http/2, h2c"])
async def test_bad_upgrade_gets_426(serve: ServeFactory, upgrade: str | None) -> None:
    handlers, port = await start(serve)
    client, response = await send_request(port, {"Upgrade": upgrade})
    await assert_rejected(client, response, 426, handlers, {"Upgrade": "websocket"})


@pytest.mark.parametrize("upgrade", ["websocket", "WebSocket", "WEBSOCKET", "wEbSoCkEt"])
async def test_upgrade_any_case_is_accepted(serve: ServeFactory, upgrade: str) -> None:
    handlers, port = await start(serve)
    client, response = await send_request(port, {"Upgrade": upgrade})
    await assert_accepted(client, response, handlers)


# -- 5. Connection ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "connection", ["keep-alive, Upgrade", "keep-alive, upgrade", "Upgrade, keep-alive", "UPGRADE"]
)
async def test_connection_token_list_is_accepted(serve: ServeFactory, connection: str) -> None:
    handlers, port = await start(serve)
    client, response = await send_request(port, {"Connection": connection})
    await assert_accepted(client, response, handlers)


@pytest.mark.parametrize("connection", ["keep-alive", None, "close", "upgraded"])
async def test_connection_without_upgrade_gets_426(
    serve: ServeFactory, connection: str | None
) -> None:
    handlers, port = await start(serve)
    client, response = await send_request(port, {"Connection": connection})
    await assert_rejected(client, response, 426, handlers, {"Upgrade": "websocket"})


# -- 6. A request with a body ----------------------------------------------------------------

SMUGGLED = build_frame(OP_TEXT, "smuggled")


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        pytest.param({"Content-Length": str(len(SMUGGLED))}, SMUGGLED, id="content-length"),
        pytest.param(
            {"Transfer-Encoding": "chunked"},
            f"{len(SMUGGLED):x}\r\n".encode() + SMUGGLED + b"\r\n0\r\n\r\n",
            id="chunked",
        ),
    ],
)
async def test_request_with_body_gets_400(
    serve: ServeFactory, headers: dict[str, str], body: bytes
) -> None:
    handlers, port = await start(serve)
    request = build_request(host=f"127.0.0.1:{port}", headers=headers, body=body)
    client, response = await send_request(port, request=request)
    # assert_rejected also checks that no frame (e.g. an echo of the body) came back.
    await assert_rejected(client, response, 400, handlers)


# -- 7. Size limits of the request head ------------------------------------------------------


async def test_129_headers_get_431(serve: ServeFactory) -> None:
    handlers, port = await start(serve)
    # build_request sends 5 headers of its own.
    extra = [(f"X-Header-{i}", "x") for i in range(124)]
    client, response = await send_request(port, extra)
    await assert_rejected(client, response, 431, handlers)


async def test_128_headers_are_accepted(serve: ServeFactory) -> None:
    handlers, port = await start(serve)
    extra = [(f"X-Header-{i}", "x") for i in range(123)]
    client, response = await send_request(port, extra)
    await assert_accepted(client, response, handlers)


async def test_long_header_line_gets_431(serve: ServeFactory) -> None:
    handlers, port = await start(serve)
    client, response = await send_request(port, {"X-Long": "a" * 9000})
    await assert_rejected(client, response, 431, handlers)


async def test_long_request_line_gets_414(serve: ServeFactory) -> None:
    handlers, port = await start(serve)
    client, response = await send_request(port, path="/" + "a" * 9000)
    await assert_rejected(client, response, 414, handlers)


async def test_headers_within_limits_are_accepted(serve: ServeFactory) -> None:
    handlers, port = await start(serve)
    client, response = await send_request(port, {"X-Long": "a" * 4000}, path="/" + "b" * 4000)
    await assert_accepted(client, response, handlers)


# -- 8. Slowloris ----------------------------------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def wait_for_cleanup(baseline_tasks: set[asyncio.Task[Any]], baseline_fds: int) -> None:
    """Poll (bounded) until no task and no file descriptor is left beyond the baselines."""
    current = asyncio.current_task()
    deadline = time.monotonic() + 3
    while True:
        tasks = asyncio.all_tasks() - baseline_tasks - {current}
        fds = open_fds()
        if not tasks and fds <= baseline_fds:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"left behind: tasks={tasks}, fds={fds} > {baseline_fds}")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("mode", ["one-byte-every-250ms", "silent"])
async def test_slowloris_closed_at_open_timeout(echo_server: EchoServerFactory, mode: str) -> None:
    handlers = Handlers()
    _, port = await echo_server(handlers, open_timeout=1)
    baseline_tasks = asyncio.all_tasks()
    baseline_fds = open_fds()
    client = await open_client(port)
    accepted_at = time.monotonic()
    sender = None
    if mode != "silent":
        request = build_request(host=f"127.0.0.1:{port}")

        async def drip() -> None:
            # The server closes the connection under our feet: expected.
            with contextlib.suppress(OSError):
                await client.send_chopped(request, 1, 0.25)

        sender = asyncio.create_task(drip())
    try:
        assert await client.wait_eof(4), "server did not close the slow connection"
        elapsed = time.monotonic() - accepted_at
        assert 0.8 <= elapsed <= 2.0, f"closed after {elapsed:.2f}s, open_timeout=1"
        assert not bytes(client.received).startswith(b"HTTP/1.1 101")
        assert handlers.calls == 0
    finally:
        if sender is not None:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        client.abort()
    await client.wait_closed(1)
    await wait_for_cleanup(baseline_tasks, baseline_fds)


# -- 9. Origin -------------------------------------------------------------------------------

GOOD_ORIGIN = "https://good.example"


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.com",
        "https://good.example.evil.com",
        "https://evil.good.example",
        "null",
        "http://good.example",
        "https://good.example:8443",
        "HTTPS://GOOD.EXAMPLE.evil",
    ],
)
async def test_foreign_origin_gets_403(serve: ServeFactory, origin: str) -> None:
    handlers, port = await start(serve, origins=[GOOD_ORIGIN])
    client, response = await send_request(port, {"Origin": origin})
    await assert_rejected(client, response, 403, handlers)


async def test_allowed_origin_is_accepted(serve: ServeFactory) -> None:
    handlers, port = await start(serve, origins=[GOOD_ORIGIN])
    client, response = await send_request(port, {"Origin": GOOD_ORIGIN})
    await assert_accepted(client, response, handlers)


async def test_two_origins_get_400(serve: ServeFactory) -> None:
    handlers, port = await start(serve, origins=[GOOD_ORIGIN])
    client, response = await send_request(port, [("Origin", GOOD_ORIGIN), ("Origin", GOOD_ORIGIN)])
    await assert_rejected(client, response, 400, handlers)


# -- 10. Shutting down -----------------------------------------------------------------------


async def test_handshake_during_shutdown_gets_503(serve: ServeFactory) -> None:
    handlers = Handlers()
    server = await serve(handlers, close_timeout=1)
    port = server.port
    client = await open_client(port)
    request = build_request(host=f"127.0.0.1:{port}")
    head, tail = request[:20], request[20:]
    await client.send(head)
    await asyncio.sleep(0.1)  # the server has accepted the connection by now
    server.close()
    await asyncio.sleep(0.1)  # and is shutting down
    try:
        await client.send(tail)
        response = await client.read_http_response()
        await assert_rejected(client, response, 503, handlers)
    finally:
        client.abort()
    await asyncio.wait_for(server.wait_closed(), 5)
