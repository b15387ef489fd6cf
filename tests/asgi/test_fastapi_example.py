"""examples/fastapi_app.py served by a real uvicorn server on wsio's WebSocket protocol
class, with each of uvicorn's HTTP parsers, and talked to by wsio's client and by the
websockets package: echo, the chat through the hub, subprotocol selection, and the
handshakes the app refuses with a denial response."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect

import wsio
from appserver import example, serve_app
from wsio.asgi import WebSocketProtocol
from wsio.protocol.extensions.permessage_deflate import PerMessageDeflate

pytestmark = pytest.mark.timeout(30)

app_module = example("fastapi_app")

#: Bound on every wait for the server.
STEP = 5.0

CLIENTS = ["wsio", "websockets"]


@pytest.fixture(params=["h11", "httptools"])
async def base(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The example app on wsio under uvicorn: its ``host:port``."""
    async with serve_app(app_module.app, ws=WebSocketProtocol, http=request.param) as base:
        yield base


def connect(client: str, url: str, **kwargs: Any) -> Any:
    """``connect(url, **kwargs)`` of wsio or of the websockets package: both take
    ``subprotocols`` and ``additional_headers``, both have send, recv and close."""
    if client == "wsio":
        return wsio.connect(url, **kwargs)
    return ws_connect(url, **kwargs)


async def recv(ws: Any) -> str | bytes:
    async with asyncio.timeout(STEP):
        message: str | bytes = await ws.recv()
    return message


async def refused(client: str, url: str, **kwargs: Any) -> Any:
    """Open ``url``, expecting the handshake to be refused; the HTTP response the client
    saw (``status_code``, ``headers``, ``body`` with either client)."""
    with pytest.raises((wsio.InvalidStatus, websockets.exceptions.InvalidStatus)) as info:
        async with asyncio.timeout(STEP):
            await connect(client, url, **kwargs)
    return info.value.response


# --- /echo ---------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
async def test_echo_text_and_bytes(base: str, client: str) -> None:
    async with connect(client, f"ws://{base}/echo") as ws:
        big = "compressible " * 20_000
        for message in ["hello ☕", "", b"\x00\x01\xfe\xff", b"", big, big.encode()]:
            await ws.send(message)
            assert await recv(ws) == message
        await ws.close()


@pytest.mark.parametrize("client", CLIENTS)
async def test_permessage_deflate_negotiated(base: str, client: str) -> None:
    async with connect(client, f"ws://{base}/echo") as ws:
        answer = ws.response.headers["Sec-WebSocket-Extensions"]
        assert answer.startswith("permessage-deflate"), answer
        if client == "wsio":
            assert [type(ext) for ext in ws.protocol.extensions] == [PerMessageDeflate]
        await ws.send("x" * 10_000)
        assert await recv(ws) == "x" * 10_000


async def test_permessage_deflate_off() -> None:
    """uvicorn's ``ws_per_message_deflate=False`` (``--ws-per-message-deflate false``):
    the offer is declined."""
    async with (
        serve_app(app_module.app, ws=WebSocketProtocol, ws_per_message_deflate=False) as base,
        wsio.connect(f"ws://{base}/echo") as ws,
    ):
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        assert ws.protocol.extensions == []
        await ws.send("plain")
        assert await recv(ws) == "plain"


async def test_ws_max_size() -> None:
    """uvicorn's ``ws_max_size`` (``--ws-max-size``) bounds every message: a larger one
    closes the connection with 1009."""
    async with (
        serve_app(app_module.app, ws=WebSocketProtocol, ws_max_size=1000) as base,
        wsio.connect(f"ws://{base}/echo") as ws,
    ):
        await ws.send(b"x" * 1000)
        assert await recv(ws) == b"x" * 1000
        await ws.send(b"x" * 1001)
        with pytest.raises(wsio.ConnectionClosedError) as info:
            await recv(ws)
    assert info.value.code == 1009


# --- /chat ---------------------------------------------------------------------------------


async def join(ws: Any) -> str:
    """Read the greeting and the join line of a client that just connected to /chat; its
    name."""
    greeting = await recv(ws)
    assert isinstance(greeting, str)
    match = re.fullmatch(r"you are (guest-\d+)", greeting)
    assert match, greeting
    name = match.group(1)
    assert await recv(ws) == f"{name} joined"
    return name


async def test_chat_between_two_clients(base: str) -> None:
    """A wsio client and a websockets client in the same room: each sees the other's lines
    (and its own), joins and departures."""
    async with connect("wsio", f"ws://{base}/chat") as a:
        name_a = await join(a)
        async with connect("websockets", f"ws://{base}/chat") as b:
            name_b = await join(b)
            assert await recv(a) == f"{name_b} joined"
            await a.send("hello from A ☕")
            assert await recv(a) == f"{name_a}: hello from A ☕"
            assert await recv(b) == f"{name_a}: hello from A ☕"
            await b.send("<b>hello</b> from B")
            assert await recv(b) == f"{name_b}: <b>hello</b> from B"
            assert await recv(a) == f"{name_b}: <b>hello</b> from B"
        assert await recv(a) == f"{name_b} left"
        await a.close()


async def test_chat_server_shutdown() -> None:
    """The server stops while a client chats: the client is told 1012 (service restart),
    and the server stops, its lifespan closing the hub after the endpoint returned."""
    async with serve_app(app_module.app, ws=WebSocketProtocol) as base:
        ws = await connect("wsio", f"ws://{base}/chat")
        await join(ws)
    with pytest.raises(wsio.ConnectionClosedError) as info:
        await recv(ws)
    assert info.value.code == 1012


async def test_chat_rooms_are_apart(base: str) -> None:
    async with (
        connect("wsio", f"ws://{base}/chat") as lobby,
        connect("wsio", f"ws://{base}/chat?room=attic") as attic,
    ):
        name_lobby = await join(lobby)
        name_attic = await join(attic)
        await lobby.send("in the lobby")
        assert await recv(lobby) == f"{name_lobby}: in the lobby"
        await attic.send("in the attic")
        # Lines are written in the order they are published: had the lobby's line reached
        # the attic, it would come first.
        assert await recv(attic) == f"{name_attic}: in the attic"


@pytest.mark.parametrize("client", CLIENTS)
async def test_chat_room_name_checked(base: str, client: str) -> None:
    """A room name that fails the query's validation: FastAPI closes the WebSocket before
    accepting it, which uvicorn answers with HTTP 403."""
    response = await refused(client, f"ws://{base}/chat?room=no/slashes")
    assert response.status_code == 403


async def test_chat_line_bound(base: str) -> None:
    max_line = app_module.MAX_LINE
    async with connect("wsio", f"ws://{base}/chat") as ws:
        name = await join(ws)
        await ws.send("x" * max_line)
        assert await recv(ws) == f"{name}: {'x' * max_line}"
        await ws.send("x" * (max_line + 1))
        with pytest.raises(wsio.ConnectionClosedError) as info:
            await recv(ws)
    assert (info.value.code, info.value.reason) == (
        1009,
        f"lines are at most {max_line} characters",
    )


async def test_chat_refuses_binary(base: str) -> None:
    async with connect("wsio", f"ws://{base}/chat") as ws:
        await join(ws)
        await ws.send(b"bytes")
        with pytest.raises(wsio.ConnectionClosedError) as info:
            await recv(ws)
    assert (info.value.code, info.value.reason) == (1003, "chat lines are text")


# --- /proto --------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("offer", "chosen"),
    [
        (["chat.v1", "chat.v2"], "chat.v2"),
        (["chat.v2", "chat.v1"], "chat.v2"),
        (["chat.v0", "chat.v1"], "chat.v1"),
    ],
)
async def test_subprotocol_chosen(base: str, client: str, offer: list[str], chosen: str) -> None:
    async with connect(client, f"ws://{base}/proto", subprotocols=offer) as ws:
        assert ws.subprotocol == chosen
        assert ws.response.headers["Sec-WebSocket-Protocol"] == chosen
        assert await recv(ws) == f"speaking {chosen}"
        await ws.send("ping")
        assert await recv(ws) == "ping"


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("offer", [["chat.v3"], None])
async def test_subprotocol_none_supported(base: str, client: str, offer: list[str] | None) -> None:
    response = await refused(client, f"ws://{base}/proto", subprotocols=offer)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.body == (
        b"no supported subprotocol offered; this endpoint speaks chat.v2, chat.v1\n"
    )


async def test_denial_response_fields_once(base: str) -> None:
    response = await refused("wsio", f"ws://{base}/private")
    names = [name.lower() for name, _ in response.headers.items()]
    assert len(names) == len(set(names)), names


# --- /private ------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
async def test_private_without_token(base: str, client: str) -> None:
    response = await refused(client, f"ws://{base}/private")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.body == b"a token is required: ?token=... or Authorization: Bearer ...\n"


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("where", ["query", "header"])
async def test_private_wrong_token(base: str, client: str, where: str) -> None:
    if where == "query":
        response = await refused(client, f"ws://{base}/private?token=guess")
    else:
        headers = {"Authorization": "Bearer guess"}
        response = await refused(client, f"ws://{base}/private", additional_headers=headers)
    assert response.status_code == 403
    assert response.body == b"wrong token\n"


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("where", ["query", "header"])
async def test_private_with_token(base: str, client: str, where: str) -> None:
    token = app_module.TOKEN
    if where == "query":
        opener = connect(client, f"ws://{base}/private?token={token}")
    else:
        headers = {"Authorization": f"Bearer {token}"}
        opener = connect(client, f"ws://{base}/private", additional_headers=headers)
    async with opener as ws:
        assert await recv(ws) == "welcome"
        await ws.send(b"secret")
        assert await recv(ws) == b"secret"


# --- the page ------------------------------------------------------------------------------


async def test_page(base: str) -> None:
    async with httpx2.AsyncClient(trust_env=False, timeout=STEP) as http:
        response = await http.get(f"http://{base}/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert f'maxlength="{app_module.MAX_LINE}"' in response.text
    assert "/chat${location.search}" in response.text
