"""wsio.route over real sockets: handlers chosen by path, parameters passed, 404 otherwise,
and the application's own process_request first."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any

import pytest

import wsio
from routingcases import ROUTED_PATHS
from wsio.routing import Match

T = 5.0

RouteFactory = Callable[..., Awaitable[int]]


async def home(ws: Any) -> None:
    await ws.send("home")


async def chat(ws: Any, room: str) -> None:
    await ws.send(f"chat {room}")


async def user(ws: Any, id: int) -> None:
    await ws.send(f"user {type(id).__name__} {id}")


async def files(ws: Any, rest: str) -> None:
    await ws.send(f"files {rest} {ws.route.pattern}")


URL_MAP = {"/": home, "/chat/{room}": chat, "/user/{id:int}": user, "/files/{rest:path}": files}


@pytest.fixture
async def routed() -> AsyncIterator[RouteFactory]:
    """``port = await routed(url_map, **kwargs)`` starts ``wsio.route`` on 127.0.0.1;
    every server started is closed when the test ends."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(url_map: Any = URL_MAP, **kwargs: Any) -> int:
            server = await stack.enter_async_context(wsio.route(url_map, "127.0.0.1", 0, **kwargs))
            port: int = server.sockets[0].getsockname()[1]
            return port

        yield start


async def first_message(port: int, path: str) -> str:
    async with asyncio.timeout(T), wsio.connect(f"ws://127.0.0.1:{port}{path}") as ws:
        message = await ws.recv()
        assert isinstance(message, str)
        return message


async def refusal(port: int, path: str) -> wsio.Response:
    async with asyncio.timeout(T):
        with pytest.raises(wsio.InvalidStatus) as info:
            async with wsio.connect(f"ws://127.0.0.1:{port}{path}"):
                pass
    return info.value.response


@pytest.mark.parametrize(("path", "message"), ROUTED_PATHS)
async def test_route_calls_the_handler_with_its_parameters(
    routed: RouteFactory, path: str, message: str
) -> None:
    port = await routed()
    assert await first_message(port, path) == message


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/missing", b"Not Found\n"),
        ("/user/abc", b"Not Found\n"),
        ("/chat/lobby/", b"Not Found: did you mean /chat/lobby ?\n"),
        ("/files/..", b"Not Found\n"),
    ],
)
async def test_route_answers_404_without_a_match(
    routed: RouteFactory, path: str, body: bytes
) -> None:
    port = await routed()
    response = await refusal(port, path)
    assert response.status_code == 404
    assert response.body == body
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_route_returns_what_serve_returns() -> None:
    assert isinstance(wsio.route(URL_MAP, "127.0.0.1", 0), wsio.serve)


def test_route_refuses_invalid_patterns() -> None:
    with pytest.raises(wsio.InvalidArgument, match="match the same paths"):
        wsio.route({"/{a}": home, "/{b}": home}, "127.0.0.1", 0)


@pytest.mark.parametrize("coroutine", [False, True])
async def test_route_runs_the_application_hook_first(
    routed: RouteFactory, coroutine: bool
) -> None:
    seen: list[tuple[str, bool]] = []

    def answer(connection: wsio.ServerConnection, request: wsio.Request) -> wsio.Response | None:
        # Routing hasn't run yet when the application's hook does.
        seen.append((request.path, "route" in vars(connection)))
        if request.path.startswith("/chat/private"):
            return connection.respond(HTTPStatus.FORBIDDEN, "Private\n")
        return None

    async def answer_later(
        connection: wsio.ServerConnection, request: wsio.Request
    ) -> wsio.Response | None:
        await asyncio.sleep(0)
        return answer(connection, request)

    port = await routed(process_request=answer_later if coroutine else answer)
    response = await refusal(port, "/chat/private")
    assert (response.status_code, response.body) == (403, b"Private\n")
    # The application's hook answers even a path that no route matches.
    response = await refusal(port, "/missing")
    assert response.status_code == 404
    assert await first_message(port, "/chat/lobby") == "chat lobby"
    assert seen == [("/chat/private", False), ("/missing", False), ("/chat/lobby", False)]


async def test_route_passes_other_arguments_to_serve(routed: RouteFactory) -> None:
    matches: list[Match[Any]] = []

    def process_response(
        connection: wsio.ServerConnection, request: wsio.Request, response: wsio.Response
    ) -> None:
        matches.append(connection.route)  # type: ignore[attr-defined]
        response.headers["X-Route"] = connection.route.pattern  # type: ignore[attr-defined]

    port = await routed(process_response=process_response, server_header=None)
    async with asyncio.timeout(T), wsio.connect(f"ws://127.0.0.1:{port}/user/9") as ws:
        assert await ws.recv() == "user int 9"
        assert ws.response is not None
        assert ws.response.headers["X-Route"] == "/user/{id:int}"
        assert "Server" not in ws.response.headers
    assert matches == [Match("/user/{id:int}", user, {"id": 9})]
