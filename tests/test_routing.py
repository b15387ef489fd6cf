"""wsio.routing: patterns, matching and dispatch, without I/O."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import pytest

from wsio.exceptions import InvalidArgument, InvalidState
from wsio.protocol.http11 import Headers, Request, Response, build_response
from wsio.routing import Match, Router


def home(connection: Any) -> str:
    return "home"


def chat(connection: Any, room: str) -> str:
    return f"chat {room}"


def user(connection: Any, id: int) -> str:
    return f"user {id!r}"


def files(connection: Any, rest: str) -> str:
    return f"files {rest}"


def handler(name: str) -> Callable[..., str]:
    def handle(connection: Any, **params: Any) -> str:
        return name

    return handle


ROUTER = Router(
    {
        "/": home,
        "/chat/{room}": chat,
        "/user/{id:int}": user,
        "/files/{rest:path}": files,
    }
)


class Connection:
    """What the router needs of a server connection."""

    def respond(self, status: HTTPStatus | int, text: str) -> Response:
        return build_response(status, text)


def params(router: Router[Any], path: str) -> tuple[str, dict[str, Any]] | None:
    match = router.match(path)
    return None if match is None else (match.pattern, match.params)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", ("/", {})),
        ("/?x=1", ("/", {})),
        ("/chat/lobby", ("/chat/{room}", {"room": "lobby"})),
        ("/chat/lobby?token=a/b", ("/chat/{room}", {"room": "lobby"})),
        ("/user/42", ("/user/{id:int}", {"id": 42})),
        ("/user/007", ("/user/{id:int}", {"id": 7})),
        ("/files/a", ("/files/{rest:path}", {"rest": "a"})),
        ("/files/a/b/c.txt", ("/files/{rest:path}", {"rest": "a/b/c.txt"})),
        ("/files/a/", ("/files/{rest:path}", {"rest": "a/"})),
        # Split first, then decode: an encoded slash stays in its segment.
        ("/chat/a%2Fb", ("/chat/{room}", {"room": "a/b"})),
        ("/chat/caf%C3%A9%20au%20lait", ("/chat/{room}", {"room": "café au lait"})),
        ("/chat/a+b", ("/chat/{room}", {"room": "a+b"})),
        ("/files/x%2Fy/z", ("/files/{rest:path}", {"rest": "x/y/z"})),
    ],
)
def test_match(path: str, expected: tuple[str, dict[str, Any]]) -> None:
    assert params(ROUTER, path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/missing",
        "/chat",
        "/chat/",  # a trailing slash is significant
        "/chat/a/b",
        "/user/x",
        "/user/-1",
        "/user/4%32",  # decoded, "42"; still digits
        "/user/١٢",  # Arabic-Indic digits aren't ASCII digits
        "/files",
        "/files/",
        "//",
        "/chat//",
        "/files/a//b",
        "/chat/..",
        "/chat/%2E%2E",
        "/files/a/../b",
        "/files/./a",
        "/chat/%FF",  # not UTF-8
    ],
)
def test_no_match(path: str) -> None:
    expected = ("/user/{id:int}", {"id": 42}) if path == "/user/4%32" else None
    assert params(ROUTER, path) == expected


def test_trailing_slash_only_where_written() -> None:
    router = Router({"/chat/": handler("slash"), "/room": handler("bare")})
    assert params(router, "/chat/") == ("/chat/", {})
    assert params(router, "/chat") is None
    assert params(router, "/room") == ("/room", {})
    assert params(router, "/room/") is None


def test_literal_text_is_matched_decoded() -> None:
    router = Router({"/café/{x}": handler("a"), "/a b": handler("b"), "/a/b": handler("c")})
    assert params(router, "/caf%C3%A9/1") == ("/café/{x}", {"x": "1"})
    assert params(router, "/a%20b") == ("/a b", {})
    assert params(router, "/a/b") == ("/a/b", {})
    assert params(router, "/a%2Fb") is None


def test_most_specific_route_wins_whatever_the_order() -> None:
    url_map = {
        "/{a:path}": handler("path"),
        "/{a}/{b}": handler("two segments"),
        "/x/{a}": handler("x segment"),
        "/x/{a:int}": handler("x int"),
        "/x/me": handler("x literal"),
        "/{a}/me": handler("segment literal"),
    }
    for items in (list(url_map.items()), list(reversed(url_map.items()))):
        router = Router(dict(items))

        def pattern(path: str, router: Router[Any] = router) -> str:
            match = router.match(path)
            assert match is not None
            return match.pattern

        assert pattern("/x/me") == "/x/me"
        assert pattern("/x/1") == "/x/{a:int}"
        assert pattern("/x/y") == "/x/{a}"
        assert pattern("/y/me") == "/{a}/me"
        assert pattern("/y/z") == "/{a}/{b}"
        assert pattern("/y/z/w") == "/{a:path}"
        assert pattern("/y") == "/{a:path}"


@pytest.mark.parametrize(
    ("url_map", "error"),
    [
        ({"chat": home}, "must start with '/'"),
        ({"": home}, "must start with '/'"),
        ({"/chat?x": home}, "query or fragment"),
        ({"/chat#x": home}, "query or fragment"),
        ({"/a//b": home}, "empty or dot segment"),
        ({"//": home}, "empty or dot segment"),
        ({"/a/../b": home}, "empty or dot segment"),
        ({"/./b": home}, "empty or dot segment"),
        ({"/x{id}": home}, "whole segment"),
        ({"/{id}.rss": home}, "whole segment"),
        ({"/{a}{b}": home}, "whole segment"),
        ({"/{id": home}, "whole segment"),
        ({"/id}": home}, "whole segment"),
        ({"/{}": home}, "new identifier"),
        ({"/{1a}": home}, "new identifier"),
        ({"/{a-b}": home}, "new identifier"),
        ({"/{connection}": home}, "new identifier"),
        ({"/{a}/{a:int}": home}, "new identifier"),
        ({"/{a:float}": home}, "unknown route converter 'float'"),
        ({"/{a:}": home}, "unknown route converter ''"),
        ({"/{a:path}/b": home}, "must end the route pattern"),
        ({"/chat/{room}": home, "/chat/{name}": home}, "match the same paths"),
        ({"/{a:path}": home, "/{b:path}": home}, "match the same paths"),
        ({"/{a:str}": home, "/{b}": home}, "match the same paths"),
        ({"/": "home"}, "isn't callable"),
    ],
)
def test_invalid_patterns(url_map: dict[str, Any], error: str) -> None:
    with pytest.raises(InvalidArgument, match=error):
        Router(url_map)


def test_pattern_must_be_text() -> None:
    with pytest.raises(InvalidArgument, match="must start with '/'"):
        Router({b"/": home})  # type: ignore[dict-item]


def test_same_paths_with_different_literals_are_fine() -> None:
    router = Router({"/a/{x}": home, "/b/{x}": home, "/a/{x:int}": home})
    assert params(router, "/b/1") == ("/b/{x}", {"x": "1"})


def test_process_request_records_the_match_and_dispatch_calls_the_handler() -> None:
    connection = Connection()
    assert ROUTER.process_request(connection, Request("/user/7?x", Headers())) is None
    match = vars(connection)["route"]
    assert match == Match("/user/{id:int}", user, {"id": 7})
    assert ROUTER(connection) == "user 7"


async def test_dispatch_returns_what_a_coroutine_function_returns() -> None:
    async def echo(connection: Any, room: str) -> str:
        return room

    router = Router({"/chat/{room}": echo})
    connection = Connection()
    router.process_request(connection, Request("/chat/x", Headers()))
    result = router(connection)
    assert await result == "x"


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("/missing", "Not Found\n"),
        ("/", "Not Found\n"),
        ("/chat/", "Not Found: did you mean /chat ?\n"),
        ("/room?x=1", "Not Found: did you mean /room/ ?\n"),
    ],
)
def test_process_request_answers_404(path: str, text: str) -> None:
    router = Router({"/chat": home, "/room/": home})
    connection = Connection()
    response = router.process_request(connection, Request(path, Headers()))
    assert response is not None
    assert (response.status_code, response.body) == (404, text.encode())
    assert "route" not in vars(connection)


def test_dispatch_without_a_recorded_route() -> None:
    with pytest.raises(InvalidState, match="process_request"):
        ROUTER(Connection())


def test_path_builds_the_url_of_a_route() -> None:
    router = Router(
        {
            "/": home,
            "/chat/{room}": chat,
            "/user/{id:int}": user,
            "/files/{rest:path}": files,
            "/café/{x}": chat,
        }
    )
    assert router.path("/") == "/"
    assert router.path("/chat/{room}", room="a/b c") == "/chat/a%2Fb%20c"
    assert router.path("/user/{id:int}", id=7) == "/user/7"
    assert router.path("/files/{rest:path}", rest="a b/c") == "/files/a%20b/c"
    assert router.path("/café/{x}", x="é") == "/caf%C3%A9/%C3%A9"
    # What path() builds, match() reads back.
    for pattern, values in [
        ("/chat/{room}", {"room": "a/b c?#%"}),
        ("/user/{id:int}", {"id": 0}),
        ("/files/{rest:path}", {"rest": "x/y%/z"}),
        ("/café/{x}", {"x": "…"}),
    ]:
        assert params(router, router.path(pattern, **values)) == (pattern, values)


@pytest.mark.parametrize(
    ("pattern", "values", "error"),
    [
        ("/nope", {}, "no route pattern"),
        ("/chat/{room}", {}, r"takes parameters \['room'\], not \[\]"),
        ("/chat/{room}", {"room": "a", "x": "b"}, "takes parameters"),
        ("/user/{id:int}", {"id": "7"}, "non-negative int"),
        ("/user/{id:int}", {"id": -1}, "non-negative int"),
        ("/user/{id:int}", {"id": True}, "non-negative int"),
        ("/chat/{room}", {"room": ""}, "can't be matched"),
        ("/chat/{room}", {"room": ".."}, "can't be matched"),
        ("/chat/{room}", {"room": 1}, "can't be matched"),
        ("/files/{rest:path}", {"rest": "a//b"}, "can't be matched"),
        ("/files/{rest:path}", {"rest": "a/./b"}, "can't be matched"),
        ("/files/{rest:path}", {"rest": 3}, "can't be matched"),
    ],
)
def test_path_refuses_what_would_not_match(
    pattern: str, values: dict[str, Any], error: str
) -> None:
    with pytest.raises(InvalidArgument, match=error):
        ROUTER.path(pattern, **values)


def test_match_equality_and_repr() -> None:
    match = Match("/chat/{room}", chat, {"room": "a"})
    assert match == Match("/chat/{room}", chat, {"room": "a"})
    assert match != Match("/chat/{room}", chat, {"room": "b"})
    assert match != ("/chat/{room}", chat, {"room": "a"})
    assert repr(match) == f"Match('/chat/{{room}}', {chat!r}, {{'room': 'a'}})"
    with pytest.raises(TypeError):
        hash(match)
