"""wsio.asgi under a real uvicorn server: what wsio adds to, or decides within, the ASGI
WebSocket specification. uvicorn's own WebSocket tests run against the class too (see the
Makefile's ``uvicorn-tests``); these cover the rest: the core's checks reaching the
application as close codes, the limits, compression with a threshold, the connection
shared with the hub, applications that misuse the protocol, TLS and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trustme
import uvicorn

import wsio
from rawpeer import OP_TEXT, RawClient
from wsio.asgi import WebSocketProtocol, get_connection

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

TIMEOUT = 10


@dataclasses.dataclass
class Running:
    server: uvicorn.Server
    port: int


@contextlib.asynccontextmanager
async def running(app: App, **options: Any) -> AsyncIterator[Running]:
    """``app`` served by uvicorn with wsio's WebSocket class on a free loopback port, in
    this loop."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    options.setdefault("http", "h11")
    # log_config=None leaves logging alone: uvicorn's loggers propagate to caplog.
    config = uvicorn.Config(app, ws=WebSocketProtocol, lifespan="off", log_config=None, **options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(TIMEOUT):
            while not server.started:
                await asyncio.sleep(0.01)
        yield Running(server, sock.getsockname()[1])
    finally:
        server.should_exit = True
        async with asyncio.timeout(TIMEOUT):
            await task
        sock.close()


def url(running: Running, path: str = "/") -> str:
    return f"ws://127.0.0.1:{running.port}{path}"


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "websocket"
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", **{k: v for k, v in message.items() if k != "type"}})


def recording(events: list[dict[str, Any]], *, close: dict[str, Any] | None = None) -> App:
    """An app that accepts, records what it receives until the disconnect, and closes with
    ``close`` after the first message if given."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            events.append(message)
            if message["type"] == "websocket.disconnect":
                return
            if close is not None:
                await send({"type": "websocket.close", **close})

    return app


@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_echo_with_both_http_parsers(http: str) -> None:
    async with running(echo, http=http) as server, wsio.connect(url(server)) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send(b"\x00\xff")
        assert await ws.recv() == b"\x00\xff"
        assert ws.response is not None
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]


async def test_scope() -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await receive()
        await send({"type": "websocket.accept", "subprotocol": "b"})
        await receive()

    async with (
        running(app, root_path="/api") as server,
        wsio.connect(url(server, "/a%2Fb/c?x=1&y=%20"), subprotocols=["a", "b"]) as ws,
    ):
        assert ws.subprotocol == "b"
    (scope,) = scopes
    assert scope["path"] == "/api/a/b/c"
    assert scope["raw_path"] == b"/api/a%2Fb/c"
    assert scope["query_string"] == b"x=1&y=%20"
    assert scope["scheme"] == "ws"
    assert scope["subprotocols"] == ["a", "b"]
    assert scope["asgi"]["spec_version"] == "2.4"
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ("127.0.0.1", server.port)
    assert (b"sec-websocket-protocol", b"a, b") in scope["headers"]
    assert "websocket.http.response" in scope["extensions"]


async def test_wss(tls_server_cert: trustme.LeafCert, client_ssl_context: ssl.SSLContext) -> None:
    schemes: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        schemes.append(scope["scheme"])
        await echo(scope, receive, send)

    with (
        tls_server_cert.cert_chain_pems[0].tempfile() as certfile,
        tls_server_cert.private_key_pem.tempfile() as keyfile,
    ):
        async with running(app, ssl_certfile=certfile, ssl_keyfile=keyfile) as server:
            uri = f"wss://127.0.0.1:{server.port}/"
            async with wsio.connect(uri, ssl=client_ssl_context) as ws:
                await ws.send("over TLS")
                assert await ws.recv() == "over TLS"
    assert schemes == ["wss"]


async def test_close_codes_both_ways() -> None:
    events: list[dict[str, Any]] = []
    app = recording(events, close={"code": 4000, "reason": "bye"})
    async with running(app) as server:
        async with wsio.connect(url(server)) as ws:
            await ws.send("x")
            with pytest.raises(wsio.ConnectionClosedError):
                await ws.recv()
        assert (ws.close_code, ws.close_reason) == (4000, "bye")
        # The application's own close comes back to it as its disconnect.
        assert events[-1] == {"type": "websocket.disconnect", "code": 4000, "reason": "bye"}

        events.clear()
        async with running(recording(events)) as other, wsio.connect(url(other)) as ws:
            await ws.close(4001, "later")
        assert events == [{"type": "websocket.disconnect", "code": 4001, "reason": "later"}]


async def test_peer_mistakes_reach_the_application_as_close_codes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[dict[str, Any]] = []
    async with running(recording(events), ws_max_size=1000) as server:
        # Invalid UTF-8 in a text frame: 1007, after the message before it.
        async with await RawClient.open("127.0.0.1", server.port) as peer:
            await peer.handshake()
            await peer.send_frame(OP_TEXT, b"fine")
            await peer.send_frame(OP_TEXT, b"\xff\xfe")
            frames = await peer.recv_frames_until_close()
            assert frames[-1].close_code == 1007
        # A message over ws_max_size: 1009, from its header, before its payload arrives.
        async with await RawClient.open("127.0.0.1", server.port) as peer:
            await peer.handshake()
            await peer.send(struct.pack("!BBH", 0x82, 0xFE, 60000) + b"\x00" * 4)
            frames = await peer.recv_frames_until_close()
            assert frames[-1].close_code == 1009
        async with asyncio.timeout(TIMEOUT):
            while len(events) < 3:
                await asyncio.sleep(0.01)
    assert events[0] == {"type": "websocket.receive", "text": "fine"}
    assert [event["code"] for event in events[1:]] == [1007, 1009]
    # The peer's mistakes: no traceback, nothing at error level.
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_small_messages_go_uncompressed() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "short"})
        await send({"type": "websocket.send", "text": "long " * 200})
        await receive()

    async with running(app) as server, await RawClient.open("127.0.0.1", server.port) as peer:
        response = await peer.handshake(
            headers=[("Sec-WebSocket-Extensions", "permessage-deflate")]
        )
        assert response.header("Sec-WebSocket-Extensions") is not None
        short = await peer.recv_frame()
        long = await peer.recv_frame()
    assert short is not None and long is not None
    assert (short.rsv1, short.payload) == (False, b"short")
    assert long.rsv1 and len(long.payload) < 100


async def test_ws_per_message_deflate_off() -> None:
    async with (
        running(echo, ws_per_message_deflate=False) as server,
        wsio.connect(url(server)) as ws,
    ):
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers


async def test_ws_max_queue_pauses_reading() -> None:
    connections: list[WebSocketProtocol] = []
    release = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        connections.append(get_connection(scope))
        await release.wait()
        while (await receive())["type"] != "websocket.disconnect":
            pass

    async with running(app, ws_max_queue=4) as server:
        try:
            async with wsio.connect(url(server)) as ws:
                for index in range(50):
                    await ws.send(f"message {index}")
                async with asyncio.timeout(TIMEOUT):
                    while not connections or connections[0].transport.is_reading():  # type: ignore[union-attr]
                        await asyncio.sleep(0.01)
                # Reading paused with the queue full; the rest waits in the kernel. (Plain
                # messages may overshoot the queue by what one read brought.)
                assert 4 <= len(connections[0]._messages) < 50
        finally:
            release.set()


async def test_hub_sends_through_the_connection() -> None:
    hub = wsio.Hub()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        hub.subscribe(get_connection(scope), "room")
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await hub.publish("room", message["text"])

    async with hub, running(app) as server:
        async with wsio.connect(url(server)) as alice, wsio.connect(url(server)) as bob:
            async with asyncio.timeout(TIMEOUT):
                while len(hub.subscribers("room")) < 2:
                    await asyncio.sleep(0.01)
            await alice.send("hi all")
            assert await alice.recv() == "hi all"
            assert await bob.recv() == "hi all"
        async with asyncio.timeout(TIMEOUT):
            while hub.subscribers("room"):
                await asyncio.sleep(0.01)


def test_get_connection_of_another_server() -> None:
    with pytest.raises(LookupError):
        get_connection({"type": "websocket", "extensions": {"websocket.http.response": {}}})


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "websocket.accept", "subprotocol": "never-offered"}, "wasn't offered"),
        ({"type": "websocket.accept", "headers": [(b"x-bad", b"a\r\nb")]}, "invalid value"),
        (
            {"type": "websocket.accept", "headers": [(b"sec-websocket-accept", b"x")]},
            "set by the handshake",
        ),
        ({"type": "websocket.http.response.start", "status": 101}, "Invalid HTTP status"),
        ({"type": "websocket.send", "text": "too early"}, "Expected ASGI message"),
    ],
)
async def test_application_mistakes_before_accepting_answer_500(
    message: dict[str, Any], error: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send(message)

    async with running(app) as server:
        with pytest.raises(wsio.InvalidStatus) as raised:
            await wsio.connect(url(server))
    assert raised.value.response.status_code == 500
    assert raised.value.response.body == b"Internal Server Error"
    assert error in caplog.text


async def test_denial_response_with_a_wrong_content_length_answers_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-length", b"100")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"short"})

    async with running(app) as server:
        with pytest.raises(wsio.InvalidStatus) as raised:
            await wsio.connect(url(server))
    assert raised.value.response.status_code == 500
    assert "5-byte body with Content-Length 100" in caplog.text


async def test_denial_response() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"www-authenticate", b'Basic realm="chat"')],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"who ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"are you?"})

    async with running(app) as server:
        with pytest.raises(wsio.InvalidStatus) as raised:
            await wsio.connect(url(server))
    response = raised.value.response
    assert (response.status_code, response.body) == (401, b"who are you?")
    assert response.headers["WWW-Authenticate"] == 'Basic realm="chat"'
    assert response.headers["Content-Length"] == "12"
    assert response.headers["Server"] == "uvicorn"


async def test_send_after_the_client_left_raises_an_oserror() -> None:
    outcome: list[BaseException] = []
    left = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"
        # Further receives keep saying so.
        assert (await receive())["type"] == "websocket.disconnect"
        try:
            await send({"type": "websocket.send", "text": "anyone?"})
        except OSError as exc:
            outcome.append(exc)
        left.set()

    async with running(app) as server:
        async with wsio.connect(url(server)):
            pass
        async with asyncio.timeout(TIMEOUT):
            await left.wait()
    (exc,) = outcome
    assert isinstance(exc.__cause__, wsio.ConnectionClosedOK)


async def test_shutdown_closes_with_1012_and_refuses_pending_handshakes_with_503() -> None:
    events: list[dict[str, Any]] = []
    accepting = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        if scope["path"] == "/slow":
            accepting.set()
            events.append(await receive())
            return
        await send({"type": "websocket.accept"})
        events.append(await receive())

    async with running(app) as server:
        ws = await wsio.connect(url(server))

        async def open_slow() -> wsio.ClientConnection:
            return await wsio.connect(url(server, "/slow"))

        pending = asyncio.create_task(open_slow())
        async with asyncio.timeout(TIMEOUT):
            await accepting.wait()
        server.server.should_exit = True
        with pytest.raises(wsio.ConnectionClosedError):
            await ws.recv()
        assert ws.close_code == 1012
        with pytest.raises(wsio.InvalidStatus) as raised:
            await pending
        assert raised.value.response.status_code == 503
    assert {"type": "websocket.disconnect", "code": 1012} in events
    assert {"type": "websocket.disconnect", "code": 1006} in events
