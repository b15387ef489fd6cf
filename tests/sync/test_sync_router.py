"""wsio.sync.route over real sockets: handlers chosen by path, parameters passed, 404
otherwise, and the application's own process_request first."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest
from threads_servers import Servers, port_of

import wsio
import wsio.sync
from routingcases import ROUTED_PATHS
from wsio.routing import Match, Router

T = 5.0


def home(ws: Any) -> None:
    ws.send("home")


def chat(ws: Any, room: str) -> None:
    ws.send(f"chat {room}")


def user(ws: Any, id: int) -> None:
    ws.send(f"user {type(id).__name__} {id}")


def files(ws: Any, rest: str) -> None:
    ws.send(f"files {rest} {ws.route.pattern}")


URL_MAP = {"/": home, "/chat/{room}": chat, "/user/{id:int}": user, "/files/{rest:path}": files}


def routed(servers: Servers, url_map: Any = URL_MAP, **options: Any) -> int:
    return port_of(servers.start(url_map, factory=wsio.sync.route, **options))


def first_message(port: int, path: str) -> str | bytes:
    with wsio.sync.connect(f"ws://127.0.0.1:{port}{path}", open_timeout=T) as ws:
        return ws.recv(timeout=T)


def refusal(port: int, path: str) -> wsio.Response:
    with pytest.raises(wsio.InvalidStatus) as caught:
        wsio.sync.connect(f"ws://127.0.0.1:{port}{path}", open_timeout=T)
    return caught.value.response


@pytest.mark.parametrize("as_router", [False, True])
def test_route_calls_the_handler_with_its_parameters(servers: Servers, as_router: bool) -> None:
    port = routed(servers, Router(URL_MAP) if as_router else URL_MAP)
    for path, message in ROUTED_PATHS:
        assert first_message(port, path) == message


def test_route_answers_404_without_a_match(servers: Servers) -> None:
    port = routed(servers)
    for path in ["/nowhere", "/user/x", "/chat/a/b", "/chat//"]:
        response = refusal(port, path)
        assert (response.status_code, response.body) == (404, b"Not Found\n")
    response = refusal(port, "/chat/lobby/")
    assert response.body == b"Not Found: did you mean /chat/lobby ?\n"


def test_route_refuses_invalid_patterns() -> None:
    with pytest.raises(wsio.InvalidArgument):
        wsio.sync.route({"/a/{x}": home, "/a/{y}": home}, "127.0.0.1", 0)


def test_route_runs_the_application_hook_first(servers: Servers) -> None:
    seen: list[tuple[str, bool]] = []

    def answer(connection: wsio.sync.ServerConnection, request: wsio.Request) -> Any:
        # Routing hasn't run yet when the application's hook does.
        seen.append((request.path, "route" in vars(connection)))
        if request.path.startswith("/chat/private"):
            return connection.respond(HTTPStatus.FORBIDDEN, "Private\n")
        if request.path == "/broken":
            return "not a response"
        return None

    port = routed(servers, process_request=answer)
    response = refusal(port, "/chat/private")
    assert (response.status_code, response.body) == (403, b"Private\n")
    # The application's hook answers even a path that no route matches.
    assert refusal(port, "/missing").status_code == 404
    # What the server makes of a hook's wrong answer doesn't change under a router.
    assert refusal(port, "/broken").status_code == 500
    assert first_message(port, "/chat/lobby") == "chat lobby"
    assert seen == [
        ("/chat/private", False),
        ("/missing", False),
        ("/broken", False),
        ("/chat/lobby", False),
    ]


def test_route_passes_other_options_to_serve(servers: Servers) -> None:
    matches: list[Match[Any]] = []

    def process_response(connection: Any, request: wsio.Request, response: wsio.Response) -> None:
        matches.append(connection.route)
        response.headers["X-Route"] = connection.route.pattern

    port = routed(servers, process_response=process_response, server_header=None)
    with wsio.sync.connect(f"ws://127.0.0.1:{port}/user/9", open_timeout=T) as ws:
        assert ws.recv(timeout=T) == "user int 9"
        assert ws.response is not None
        assert ws.response.headers["X-Route"] == "/user/{id:int}"
        assert "Server" not in ws.response.headers
    assert matches == [Match("/user/{id:int}", user, {"id": 9})]
