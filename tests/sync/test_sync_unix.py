"""wsio.sync.unix_serve and wsio.sync.unix_connect: the threads layer over a Unix socket,
with each other and with the asyncio layer's unix_serve and unix_connect."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import wsio
import wsio.sync
from handlers import redirecting

T = 5.0


def echo(ws: wsio.sync.ServerConnection) -> None:
    for message in ws:
        ws.send(message)


@pytest.fixture
def unix_serving(socket_path: str) -> Iterator[Callable[..., str]]:
    """Start a threads server on ``socket_path``; return the path."""
    servers: list[tuple[wsio.sync.Server, threading.Thread]] = []

    def start(handler: Any = echo, **options: Any) -> str:
        server = wsio.sync.unix_serve(handler, socket_path, **options)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return socket_path

    yield start
    for server, thread in servers:
        server.shutdown()
        thread.join(T)


def test_echo_between_threads_client_and_server(unix_serving: Callable[..., str]) -> None:
    path = unix_serving()
    with wsio.sync.unix_connect(path, open_timeout=T) as ws:
        ws.send("over a Unix socket")
        assert ws.recv(timeout=T) == "over a Unix socket"
        assert ws.request is not None
        assert ws.request.headers["Host"] == "localhost"
    assert ws.close_code == 1000


def test_uri_sets_host_and_path(unix_serving: Callable[..., str]) -> None:
    seen: list[str] = []

    def record(ws: wsio.sync.ServerConnection) -> None:
        assert ws.request is not None
        seen.append(f"{ws.request.headers['Host']} {ws.request.path}")

    path = unix_serving(record)
    with wsio.sync.unix_connect(path, "ws://example.test/chat?room=1", open_timeout=T):
        pass
    assert seen == ["example.test /chat?room=1"]


def test_threads_client_against_asyncio_unix_server(socket_path: str) -> None:
    ready = threading.Event()
    stop: list[Callable[[], None]] = []

    async def serve() -> None:
        async def handler(ws: wsio.ServerConnection) -> None:
            async for message in ws:
                await ws.send(message)

        async with wsio.unix_serve(handler, socket_path):
            loop = asyncio.get_running_loop()
            done = loop.create_future()
            stop.append(lambda: loop.call_soon_threadsafe(done.set_result, None))
            ready.set()
            await done

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    try:
        assert ready.wait(T)
        with wsio.sync.unix_connect(socket_path, open_timeout=T) as ws:
            ws.send(b"bytes")
            assert ws.recv(timeout=T) == b"bytes"
    finally:
        if stop:
            stop[0]()
        thread.join(T)


def test_asyncio_client_against_threads_unix_server(unix_serving: Callable[..., str]) -> None:
    path = unix_serving()

    async def talk() -> Any:
        async with wsio.unix_connect(path, open_timeout=T) as ws:
            await ws.send("from asyncio")
            return await ws.recv(timeout=T)

    assert asyncio.run(talk()) == "from asyncio"


def test_same_origin_redirect_is_followed(unix_serving: Callable[..., str]) -> None:
    path = unix_serving(process_request=redirecting("/new"))
    with wsio.sync.unix_connect(path, "ws://localhost/old", open_timeout=T) as ws:
        assert [uri for uri, _ in ws.redirects] == ["ws://localhost/old"]
        assert ws.request is not None
        assert ws.request.path == "/new"


def test_cross_origin_redirect_is_refused(unix_serving: Callable[..., str]) -> None:
    path = unix_serving(process_request=redirecting("ws://elsewhere.test/new"))
    with pytest.raises(wsio.InvalidHandshake, match="another origin") as caught:
        wsio.sync.unix_connect(path, "ws://localhost/old", open_timeout=T)
    assert isinstance(caught.value.__cause__, wsio.InvalidStatus)
    assert [uri for uri, _ in caught.value.redirects] == ["ws://localhost/old"]


def test_proxy_is_refused_and_missing_socket_fails(socket_path: str) -> None:
    with pytest.raises(wsio.InvalidArgument, match="proxy"):
        wsio.sync.unix_connect(socket_path, proxy="http://127.0.0.1:9/")
    with pytest.raises(FileNotFoundError):
        wsio.sync.unix_connect(socket_path, open_timeout=T)
