"""wsio.unix_serve and wsio.unix_connect: WebSocket over a Unix socket, plain and TLS."""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest

import wsio
from handlers import Capture, redirecting

T = 5.0


async def test_echo_over_a_unix_socket(socket_path: str) -> None:
    capture = Capture()
    async with asyncio.timeout(T), wsio.unix_serve(capture, socket_path) as server:
        assert server.sockets[0].family == socket.AF_UNIX
        async with wsio.unix_connect(socket_path) as ws:
            assert isinstance(ws, wsio.ClientConnection)
            await ws.send("text")
            assert await ws.recv() == "text"
            await ws.send(b"binary")
            assert await ws.recv() == b"binary"
            assert ws.remote_address == socket_path
        assert ws.close_code == 1000
    request = capture.connections[0].request
    # The default URI: only the Host header and the path come from it.
    assert request.headers["Host"] == "localhost"
    assert request.path == "/"
    assert capture.connections[0].local_address == socket_path


async def test_uri_gives_host_and_path(socket_path: str) -> None:
    capture = Capture()
    async with asyncio.timeout(T), wsio.unix_serve(capture, path=socket_path):
        uri = "ws://example.test:8080/chat?room=1"
        async with wsio.unix_connect(socket_path, uri) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
    request = capture.connections[0].request
    assert request.headers["Host"] == "example.test:8080"
    assert request.path == "/chat?room=1"


async def test_tls_over_a_unix_socket(
    socket_path: str,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    async with (
        asyncio.timeout(T),
        wsio.unix_serve(Capture(), socket_path, ssl=server_ssl_context),
        # wss://localhost/ by default with ssl: the certificate is checked for localhost.
        wsio.unix_connect(socket_path, ssl=client_ssl_context) as ws,
    ):
        ssl_object = ws.transport.get_extra_info("ssl_object")
        assert ssl_object is not None
        assert ssl_object.server_hostname == "localhost"
        await ws.send("over tls")
        assert await ws.recv() == "over tls"


async def test_tls_server_refuses_a_plain_client(
    socket_path: str, server_ssl_context: ssl.SSLContext
) -> None:
    async with asyncio.timeout(T), wsio.unix_serve(Capture(), socket_path, ssl=server_ssl_context):
        # The server takes the HTTP request for a bad TLS record and hangs up.
        with pytest.raises(wsio.InvalidMessage, match="closed during opening handshake"):
            await wsio.unix_connect(socket_path, open_timeout=1)


async def test_connect_through_a_connected_socket(socket_path: str) -> None:
    async with asyncio.timeout(T), wsio.unix_serve(Capture(), socket_path):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(socket_path)
        async with wsio.unix_connect(sock=sock) as ws:
            await ws.send("through sock")
            assert await ws.recv() == "through sock"


async def test_proxy_is_refused() -> None:
    with pytest.raises(wsio.InvalidArgument, match="Unix socket can't use a proxy"):
        wsio.unix_connect("/nonexistent", proxy="http://127.0.0.1:3128")


async def test_proxy_environment_is_ignored(
    socket_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens there: going through it would fail.
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:1")
    monkeypatch.setenv("all_proxy", "http://127.0.0.1:1")
    monkeypatch.delenv("no_proxy", raising=False)
    async with (
        asyncio.timeout(T),
        wsio.unix_serve(Capture(), socket_path),
        wsio.unix_connect(socket_path, proxy=True) as ws,
    ):
        await ws.send("direct")
        assert await ws.recv() == "direct"


async def test_same_origin_redirect_is_followed(socket_path: str) -> None:
    capture = Capture()
    async with (
        asyncio.timeout(T),
        wsio.unix_serve(capture, socket_path, process_request=redirecting("/new")),
        wsio.unix_connect(socket_path, "ws://localhost/old") as ws,
    ):
        assert [uri for uri, _ in ws.redirects] == ["ws://localhost/old"]
        await ws.send("moved")
        assert await ws.recv() == "moved"
    assert capture.connections[0].request.path == "/new"


async def test_cross_origin_redirect_is_refused(socket_path: str) -> None:
    hook = redirecting("ws://elsewhere.test/new")
    async with asyncio.timeout(T), wsio.unix_serve(Capture(), socket_path, process_request=hook):
        with pytest.raises(wsio.InvalidHandshake, match="another origin") as caught:
            await wsio.unix_connect(socket_path, "ws://localhost/old")
    assert isinstance(caught.value.__cause__, wsio.InvalidStatus)
    assert caught.value.__cause__.response.status_code == 302
    assert [uri for uri, _ in caught.value.redirects] == ["ws://localhost/old"]
