"""Bad arguments are refused where they are given, in both I/O layers, over real sockets on
127.0.0.1: limits, timeouts, subprotocols and header fields raise at ``connect``/``serve``
with a message naming the option, and nothing reaches the server. Header values that can
be sent arrive unchanged, non-ASCII ones included."""

from __future__ import annotations

import math
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import wsio
import wsio.sync
from wsio.protocol.http11 import Headers, Request, Response
from wsio.shared.opening import ClientSettings, Redirects

T = 5  # seconds: the bound of every wait

# (option, value, exception): each refused the same way by both layers' connect and serve.
BAD_OPTIONS = [
    ("max_size", (1, 2), TypeError),
    ("max_size", True, TypeError),
    ("max_size", "1048576", TypeError),
    ("max_size", 1.5, TypeError),
    ("max_size", 0, wsio.InvalidArgument),
    ("max_size", -1, wsio.InvalidArgument),
    ("max_queue", None, TypeError),
    ("max_queue", (16, 4), TypeError),
    ("max_queue", 0, wsio.InvalidArgument),
    ("compression_threshold", -1, wsio.InvalidArgument),
    ("compression_threshold", None, TypeError),
    ("open_timeout", 0, wsio.InvalidArgument),
    ("open_timeout", "10", TypeError),
    ("close_timeout", -1, wsio.InvalidArgument),
    ("close_timeout", math.inf, wsio.InvalidArgument),
    ("ping_interval", 0, wsio.InvalidArgument),
    ("ping_interval", math.nan, wsio.InvalidArgument),
    ("ping_timeout", 0, wsio.InvalidArgument),
    ("ping_timeout", (20,), TypeError),
    ("ping_timeout", True, TypeError),
]
BAD_OPTION_IDS = [f"{name}={value!r}" for name, value, _ in BAD_OPTIONS]

# The asyncio layer alone has a write buffer to bound.
BAD_WRITE_LIMITS = [(-1, wsio.InvalidArgument), (None, TypeError), ((32768, 8192), TypeError)]

# Values at the edge of each range, which must keep working.
EDGE_OPTIONS: dict[str, Any] = dict(
    max_size=1,
    max_queue=1,
    compression_threshold=0,
    open_timeout=None,
    close_timeout=None,
    ping_interval=None,
    ping_timeout=None,
)

# Header values that can't go out as given, and why.
BAD_VALUES = [
    ("a\x01b", "control character"),
    ("a\r\nX-Injected: 1", "control character"),
    ("a\nX-Injected: 1", "control character"),
    ("a\x00b", "control character"),
    ("\u65e5\u672c", "isn't one octet"),
]


class Seen:
    """What a server saw: the ``X-A`` header of each request that reached it."""

    def __init__(self) -> None:
        self.values: list[str | None] = []

    def process_request(self, connection: Any, request: Request) -> None:
        self.values.append(request.headers.get("X-A"))

    def process_response(self, connection: Any, request: Request, response: Response) -> None:
        response.headers["X-B"] = "na\u00efve"


# asyncio ------------------------------------------------------------------------------------


async def echo_x_a(ws: Any) -> None:
    """Send the ``X-A`` header of the request back as a message, then echo."""
    await ws.send(ws.request.headers.get("X-A", ""))
    async for message in ws:
        await ws.send(message)


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Seen]]:
    seen = Seen()
    async with wsio.serve(
        echo_x_a,
        "127.0.0.1",
        0,
        process_request=seen.process_request,
        process_response=seen.process_response,
    ) as running:
        yield f"ws://127.0.0.1:{running.sockets[0].getsockname()[1]}/", seen


@pytest.mark.parametrize(("name", "value", "error"), BAD_OPTIONS, ids=BAD_OPTION_IDS)
async def test_asyncio_connect_refuses(
    server: tuple[str, Seen], name: str, value: Any, error: type[Exception]
) -> None:
    url, seen = server
    with pytest.raises(error, match=name):
        wsio.connect(url, **{name: value})
    # A working connection afterwards: the refused one never reached the server.
    async with wsio.connect(url, open_timeout=T) as ws:
        assert await ws.recv() == ""
    assert seen.values == [None]


@pytest.mark.parametrize(("name", "value", "error"), BAD_OPTIONS, ids=BAD_OPTION_IDS)
async def test_asyncio_serve_refuses(name: str, value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=name):
        wsio.serve(echo_x_a, "127.0.0.1", 0, **{name: value})


@pytest.mark.parametrize(("value", "error"), BAD_WRITE_LIMITS)
async def test_asyncio_write_limit_refused(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="write_limit"):
        wsio.serve(echo_x_a, "127.0.0.1", 0, write_limit=value)
    with pytest.raises(error, match="write_limit"):
        wsio.connect("ws://127.0.0.1:1/", write_limit=value)


async def test_asyncio_edge_values_work() -> None:
    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async with wsio.serve(echo, "127.0.0.1", 0, write_limit=0, **EDGE_OPTIONS) as running:
        url = f"ws://127.0.0.1:{running.sockets[0].getsockname()[1]}/"
        async with wsio.connect(url, write_limit=0, **EDGE_OPTIONS) as ws:
            await ws.send("x")
            assert await ws.recv() == "x"


async def test_asyncio_non_ascii_header_values_arrive_unchanged(server: tuple[str, Seen]) -> None:
    url, seen = server
    async with wsio.connect(url, open_timeout=T, additional_headers={"X-A": "caf\u00e9"}) as ws:
        assert await ws.recv() == "caf\u00e9"
        assert ws.response is not None
        assert ws.response.headers["X-B"] == "na\u00efve"
    assert seen.values == ["caf\u00e9"]


@pytest.mark.parametrize(("value", "reason"), BAD_VALUES)
async def test_asyncio_bad_header_value_refused_at_connect(
    server: tuple[str, Seen], value: str, reason: str
) -> None:
    """Refused as given, rather than answered 400 by the server, or worse, sent."""
    url, seen = server
    with pytest.raises(wsio.InvalidArgument, match=f"header X-A: .*{reason}"):
        wsio.connect(url, additional_headers={"X-A": value})
    async with wsio.connect(url, open_timeout=T) as ws:
        assert await ws.recv() == ""
    assert seen.values == [None]


@pytest.mark.parametrize("subprotocols", [["a b"], ["chat", "x,y"], [""]])
async def test_asyncio_subprotocols_that_arent_tokens_refused(subprotocols: list[str]) -> None:
    with pytest.raises(wsio.InvalidArgument, match="subprotocol isn't a token"):
        wsio.serve(echo_x_a, "127.0.0.1", 0, subprotocols=subprotocols)
    with pytest.raises(wsio.InvalidArgument, match="subprotocol isn't a token"):
        wsio.connect("ws://127.0.0.1:1/", subprotocols=subprotocols)


@pytest.mark.parametrize(("value", "reason"), BAD_VALUES)
async def test_asyncio_bad_server_header_refused_at_serve(value: str, reason: str) -> None:
    with pytest.raises(wsio.InvalidArgument, match=f"header Server: .*{reason}"):
        wsio.serve(echo_x_a, "127.0.0.1", 0, server_header=value)


async def test_asyncio_subprotocols_as_a_string_refused() -> None:
    with pytest.raises(TypeError, match="subprotocols must be a sequence of str"):
        wsio.serve(echo_x_a, "127.0.0.1", 0, subprotocols="chat")
    with pytest.raises(TypeError, match="subprotocols must be a sequence of str"):
        wsio.connect("ws://127.0.0.1:1/", subprotocols="chat")


# threads ------------------------------------------------------------------------------------


def sync_echo_x_a(ws: wsio.sync.ServerConnection) -> None:
    assert ws.request is not None
    ws.send(ws.request.headers.get("X-A", ""))
    for message in ws:
        ws.send(message)


@pytest.fixture
def sync_server() -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    with wsio.sync.serve(
        sync_echo_x_a,
        "127.0.0.1",
        0,
        process_request=seen.process_request,
        process_response=seen.process_response,
    ) as running:
        thread = threading.Thread(target=running.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"ws://127.0.0.1:{running.socket.getsockname()[1]}/", seen
        finally:
            running.shutdown()
            thread.join(T)


def sync_recv(ws: wsio.sync.ClientConnection) -> Any:
    return ws.recv(timeout=T)


@pytest.mark.parametrize(("name", "value", "error"), BAD_OPTIONS, ids=BAD_OPTION_IDS)
def test_sync_connect_refuses(
    sync_server: tuple[str, Seen], name: str, value: Any, error: type[Exception]
) -> None:
    url, seen = sync_server
    with pytest.raises(error, match=name):
        wsio.sync.connect(url, **{name: value})
    with wsio.sync.connect(url, open_timeout=T) as ws:
        assert sync_recv(ws) == ""
    assert seen.values == [None]


@pytest.mark.parametrize(("name", "value", "error"), BAD_OPTIONS, ids=BAD_OPTION_IDS)
def test_sync_serve_refuses(name: str, value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=name):
        wsio.sync.serve(sync_echo_x_a, "127.0.0.1", 0, **{name: value})


def test_sync_edge_values_work() -> None:
    def echo(ws: wsio.sync.ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    with wsio.sync.serve(echo, "127.0.0.1", 0, **EDGE_OPTIONS) as running:
        thread = threading.Thread(target=running.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"ws://127.0.0.1:{running.socket.getsockname()[1]}/"
            with wsio.sync.connect(url, **EDGE_OPTIONS) as ws:
                ws.send("x")
                assert sync_recv(ws) == "x"
        finally:
            running.shutdown()
            thread.join(T)


def test_sync_non_ascii_header_values_arrive_unchanged(sync_server: tuple[str, Seen]) -> None:
    url, seen = sync_server
    with wsio.sync.connect(url, open_timeout=T, additional_headers={"X-A": "caf\u00e9"}) as ws:
        assert sync_recv(ws) == "caf\u00e9"
        assert ws.response is not None
        assert ws.response.headers["X-B"] == "na\u00efve"
    assert seen.values == ["caf\u00e9"]


@pytest.mark.parametrize(("value", "reason"), BAD_VALUES)
def test_sync_bad_header_value_refused_at_connect(
    sync_server: tuple[str, Seen], value: str, reason: str
) -> None:
    url, seen = sync_server
    with pytest.raises(wsio.InvalidArgument, match=f"header X-A: .*{reason}"):
        wsio.sync.connect(url, additional_headers={"X-A": value})
    with wsio.sync.connect(url, open_timeout=T) as ws:
        assert sync_recv(ws) == ""
    assert seen.values == [None]


@pytest.mark.parametrize(("value", "reason"), BAD_VALUES)
def test_sync_bad_server_header_refused_at_serve(value: str, reason: str) -> None:
    with pytest.raises(wsio.InvalidArgument, match=f"header Server: .*{reason}"):
        wsio.sync.serve(sync_echo_x_a, "127.0.0.1", 0, server_header=value)


@pytest.mark.parametrize("subprotocols", [["a b"], ["chat", "x,y"], [""]])
def test_sync_subprotocols_that_arent_tokens_refused(subprotocols: list[str]) -> None:
    with pytest.raises(wsio.InvalidArgument, match="subprotocol isn't a token"):
        wsio.sync.serve(sync_echo_x_a, "127.0.0.1", 0, subprotocols=subprotocols)
    with pytest.raises(wsio.InvalidArgument, match="subprotocol isn't a token"):
        wsio.sync.connect("ws://127.0.0.1:1/", subprotocols=subprotocols)


# Redirects ----------------------------------------------------------------------------------


def redirect(location: str) -> wsio.InvalidStatus:
    return wsio.InvalidStatus(Response(302, "Found", Headers(Location=location)))


@pytest.mark.parametrize(
    ("location", "error"),
    [
        ("ws://example.com/", wsio.SecurityError),
        ("http://example.com/", wsio.SecurityError),
        ("ftp://example.com/", wsio.InvalidURI),
    ],
)
def test_redirect_follow_raises_what_its_docstring_says(
    location: str, error: type[Exception]
) -> None:
    redirects = Redirects(ClientSettings("wss://example.com/", {}))
    with pytest.raises(error):
        redirects.follow(redirect(location))
    assert Redirects.follow.__doc__ is not None
    assert f":raises {error.__name__}:" in Redirects.follow.__doc__
