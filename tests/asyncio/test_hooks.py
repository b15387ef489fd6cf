"""Server hooks over real sockets: process_request, process_response, select_subprotocol,
basic_auth (RFC 7617); and, from the client's side, redirects and URI credentials."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import pytest

import wsio
from handlers import Capture
from rawpeer import RawClient

EchoServerFactory = Callable[..., Awaitable[tuple[Any, int]]]

T = 5.0


def url(port: int, path: str = "/", host: str = "127.0.0.1", userinfo: str = "") -> str:
    return f"ws://{userinfo}{host}:{port}{path}"


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def sync_or_async(hook: Callable[..., Any], form: str) -> Callable[..., Any]:
    """``hook`` as given (``"sync"``) or wrapped in a coroutine function (``"async"``)."""
    if form == "sync":
        return hook

    async def async_hook(*args: Any) -> Any:
        await asyncio.sleep(0)
        return hook(*args)

    return async_hook


async def connect(uri: str, **kwargs: Any) -> Any:
    kwargs.setdefault("open_timeout", T)
    return await asyncio.wait_for(wsio.connect(uri, **kwargs), T + 1)


async def rejection(uri: str, **kwargs: Any) -> wsio.Response:
    """Connect, expecting InvalidStatus; return the response it carries."""
    with pytest.raises(wsio.InvalidStatus) as info:
        ws = await connect(uri, **kwargs)
        await ws.close()
    response: wsio.Response = info.value.response
    return response


async def echo_once(ws: Any, text: str = "hello") -> None:
    await asyncio.wait_for(ws.send(text), T)
    assert await asyncio.wait_for(ws.recv(), T) == text


async def raw_handshake(port: int, path: str = "/", headers: Any = None) -> Any:
    """A raw client's handshake; returns (response, client-saw-EOF-afterwards)."""
    async with await RawClient.open("127.0.0.1", port) as client:
        response = await client.handshake(path, headers=headers, timeout=T)
        eof = response.status_code != 101 and await client.wait_eof(timeout=T)
        return response, eof


# --------------------------------------------------------------------------------------------
# process_request
# --------------------------------------------------------------------------------------------


def health_and_challenge(connection: Any, request: wsio.Request) -> wsio.Response | None:
    if request.path == "/healthz":
        response: wsio.Response = connection.respond(HTTPStatus.OK, "OK\n")
        response.headers["Cache-Control"] = "no-store"
        return response
    if request.path == "/private":
        response = connection.respond(401, "Who are you?\nSay it.\n")
        response.headers["WWW-Authenticate"] = 'Bearer realm="test"'
        response.headers["X-Custom"] = "yes"
        return response
    return None


@pytest.mark.parametrize("form", ["sync", "async"])
async def test_process_request_health_check(
    echo_server: EchoServerFactory, form: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wsio")
    capture = Capture()
    _, port = await echo_server(capture, process_request=sync_or_async(health_and_challenge, form))
    response, eof = await raw_handshake(port, "/healthz")
    assert response.status_code == 200
    assert response.reason == "OK"
    assert response.body == b"OK\n"
    assert response.header("Content-Length") == "3"
    assert response.header("Content-Type") == "text/plain; charset=utf-8"
    assert response.header("Cache-Control") == "no-store"
    assert response.header("Connection") == "close"
    assert response.header("Upgrade") is None
    assert response.header("Sec-WebSocket-Accept") is None
    assert eof  # the server hangs up after answering
    assert capture.connections == []
    # Routine, not a failed handshake: one debug line.
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("wsio")]
    assert records == [(logging.DEBUG, "answered HTTP 200 without upgrading")]

    # Returning None lets the upgrade proceed.
    async with await connect(url(port, "/chat")) as ws:
        await echo_once(ws)
    assert [c.request.path for c in capture.connections] == ["/chat"]


@pytest.mark.parametrize("form", ["sync", "async"])
async def test_process_request_challenge(echo_server: EchoServerFactory, form: str) -> None:
    capture = Capture()
    _, port = await echo_server(capture, process_request=sync_or_async(health_and_challenge, form))
    body = b"Who are you?\nSay it.\n"

    raw, eof = await raw_handshake(port, "/private")
    assert raw.status_code == 401
    assert raw.reason == "Unauthorized"
    assert raw.header("WWW-Authenticate") == 'Bearer realm="test"'
    assert raw.header("X-Custom") == "yes"
    assert raw.body == body
    assert eof

    response = await rejection(url(port, "/private"))
    assert response.status_code == 401
    assert response.reason_phrase == "Unauthorized"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="test"'
    assert response.headers["X-Custom"] == "yes"
    assert response.headers["Content-Length"] == str(len(body))
    assert response.body == body
    assert response.body_truncated is False
    assert capture.connections == []


async def test_process_request_sees_request(echo_server: EchoServerFactory) -> None:
    seen: list[tuple[Any, wsio.Request]] = []

    def process_request(connection: Any, request: wsio.Request) -> None:
        seen.append((connection, request))

    capture = Capture()
    _, port = await echo_server(capture, process_request=process_request)
    async with await connect(url(port, "/room?id=7"), additional_headers={"X-Token": "t0k"}) as ws:
        await echo_once(ws)
    assert len(seen) == 1
    connection, request = seen[0]
    assert request.path == "/room?id=7"
    assert request.headers["X-Token"] == "t0k"
    assert connection is capture.connections[0]


async def test_process_request_raising(
    echo_server: EchoServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def process_request(connection: Any, request: wsio.Request) -> None:
        if request.path == "/boom":
            raise RuntimeError("hook bug")

    capture = Capture()
    _, port = await echo_server(capture, process_request=process_request)
    with caplog.at_level(logging.DEBUG, logger="wsio"):
        response = await rejection(url(port, "/boom"))
        assert response.status_code == 500
        assert response.reason_phrase == "Internal Server Error"
        assert response.headers["Connection"] == "close"
        # The details stay in the log; nothing of the exception leaks to the client.
        assert b"hook bug" not in response.body
        assert b"RuntimeError" not in response.body

        raw, eof = await raw_handshake(port, "/boom")
        assert raw.status_code == 500
        assert eof

        # The server keeps serving.
        async with await connect(url(port, "/fine")) as ws:
            await echo_once(ws)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    # One error per failed handshake, each with the traceback.
    assert len(errors) == 2, [r.getMessage() for r in errors]
    for record in errors:
        assert record.exc_info is not None
        assert isinstance(record.exc_info[1], RuntimeError)
        assert str(record.exc_info[1]) == "hook bug"
    assert [c.request.path for c in capture.connections] == ["/fine"]


async def test_process_request_raising_async_logged_once(
    echo_server: EchoServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async def process_request(connection: Any, request: wsio.Request) -> None:
        await asyncio.sleep(0)
        raise ValueError("async hook bug")

    _, port = await echo_server(process_request=process_request)
    with caplog.at_level(logging.DEBUG, logger="wsio"):
        response = await rejection(url(port))
        assert response.status_code == 500
        # Let the server's connection task finish and log whatever it logs.
        await asyncio.sleep(0.1)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info is not None
    assert str(errors[0].exc_info[1]) == "async hook bug"


@pytest.mark.parametrize("where", ["process_request", "handler"])
async def test_cancelled_error_from_a_hook_or_handler_drops_the_connection(
    echo_server: EchoServerFactory, where: str
) -> None:
    """A hook or handler that lets CancelledError out (it awaited something cancelled)
    ends the connection's task: the connection is dropped then, not left open until
    open_timeout or the client's own timeouts."""

    async def cancelled(*args: Any) -> None:
        await asyncio.sleep(0)
        raise asyncio.CancelledError

    if where == "process_request":
        server, port = await echo_server(process_request=cancelled, open_timeout=10 * T)
    else:
        server, port = await echo_server(handler=cancelled)
    async with asyncio.timeout(T):
        client = await RawClient.open("127.0.0.1", port)
        try:
            await client.send(
                f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            assert await client.wait_eof(T)
        finally:
            client.abort()
        while server.connections:
            await asyncio.sleep(0.01)


async def test_process_request_runs_before_checks(echo_server: EchoServerFactory) -> None:
    """A plain HTTP GET (no upgrade) can be answered by the hook: health checks work."""

    def process_request(connection: Any, request: wsio.Request) -> wsio.Response:
        return connection.respond(200, "alive\n")

    _, port = await echo_server(process_request=process_request)
    async with await RawClient.open("127.0.0.1", port) as client:
        await client.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        response = await client.read_http_response(timeout=T)
        assert response.status_code == 200
        assert response.body == b"alive\n"
        assert await client.wait_eof(timeout=T)


# --------------------------------------------------------------------------------------------
# process_response
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["sync", "async"])
async def test_process_response_adds_header(echo_server: EchoServerFactory, form: str) -> None:
    calls: list[tuple[Any, wsio.Request, wsio.Response]] = []

    def process_response(connection: Any, request: wsio.Request, response: wsio.Response) -> None:
        calls.append((connection, request, response))
        response.headers["X-Hook"] = "added"

    capture = Capture()
    _, port = await echo_server(capture, process_response=sync_or_async(process_response, form))
    async with await connect(url(port, "/x")) as ws:
        assert ws.response.status_code == 101
        assert ws.response.headers["X-Hook"] == "added"
        await echo_once(ws)
    assert len(calls) == 1
    connection, request, response = calls[0]
    assert connection is capture.connections[0]
    assert request.path == "/x"
    assert response.status_code == 101
    assert capture.connections[0].response.headers["X-Hook"] == "added"


async def test_process_response_replacement_101(echo_server: EchoServerFactory) -> None:
    def process_response(
        connection: Any, request: wsio.Request, response: wsio.Response
    ) -> wsio.Response:
        headers = response.headers.copy()
        headers["X-Replaced"] = "1"
        return wsio.Response(101, "Upgrading Now", headers)

    _, port = await echo_server(process_response=process_response)
    async with await connect(url(port)) as ws:
        assert ws.response.reason_phrase == "Upgrading Now"
        assert ws.response.headers["X-Replaced"] == "1"
        await echo_once(ws)


@pytest.mark.parametrize("form", ["sync", "async"])
async def test_process_response_replacement_refusal(
    echo_server: EchoServerFactory, form: str
) -> None:
    def process_response(
        connection: Any, request: wsio.Request, response: wsio.Response
    ) -> wsio.Response:
        refusal: wsio.Response = connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Busy.\n")
        refusal.headers["Retry-After"] = "30"
        return refusal

    capture = Capture()
    _, port = await echo_server(capture, process_response=sync_or_async(process_response, form))
    response = await rejection(url(port))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert response.body == b"Busy.\n"
    raw, eof = await raw_handshake(port)
    assert raw.status_code == 503
    assert eof
    assert capture.connections == []


async def test_process_response_not_called_for_rejections(
    echo_server: EchoServerFactory,
) -> None:
    calls: list[int] = []

    def process_response(connection: Any, request: wsio.Request, response: wsio.Response) -> None:
        calls.append(response.status_code)

    def process_request(connection: Any, request: wsio.Request) -> wsio.Response | None:
        return connection.respond(403, "no\n") if request.path == "/no" else None

    _, port = await echo_server(process_request=process_request, process_response=process_response)
    assert (await rejection(url(port, "/no"))).status_code == 403
    raw, _ = await raw_handshake(port, headers={"Sec-WebSocket-Version": "8"})
    assert raw.status_code == 426
    assert calls == []


async def test_process_response_raising(
    echo_server: EchoServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def process_response(connection: Any, request: wsio.Request, response: wsio.Response) -> None:
        raise RuntimeError("response hook bug")

    _, port = await echo_server(process_response=process_response)
    with caplog.at_level(logging.DEBUG, logger="wsio"):
        response = await rejection(url(port))
        await asyncio.sleep(0.1)
    assert response.status_code == 500
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]


# --------------------------------------------------------------------------------------------
# select_subprotocol
# --------------------------------------------------------------------------------------------


def by_path(connection: Any, offered: Any) -> str | None:
    choice = {"/chat": "chat", "/super": "superchat", "/none": None, "/bad": "unoffered"}
    return choice[connection.request.path]


async def test_select_subprotocol_by_path(echo_server: EchoServerFactory) -> None:
    capture = Capture()
    _, port = await echo_server(capture, select_subprotocol=by_path)
    offer = ["superchat", "chat"]
    async with await connect(url(port, "/chat"), subprotocols=offer) as ws:
        assert ws.subprotocol == "chat"
        assert ws.response.headers["Sec-WebSocket-Protocol"] == "chat"
        await echo_once(ws)
    async with await connect(url(port, "/super"), subprotocols=offer) as ws:
        assert ws.subprotocol == "superchat"
        await echo_once(ws)
    assert [c.subprotocol for c in capture.connections] == ["chat", "superchat"]


async def test_select_subprotocol_gets_offer(echo_server: EchoServerFactory) -> None:
    offers: list[list[str]] = []

    def select(connection: Any, offered: Any) -> str | None:
        offers.append(list(offered))
        return offered[-1] if offered else None

    _, port = await echo_server(select_subprotocol=select)
    async with await connect(url(port), subprotocols=["a", "b", "c"]) as ws:
        assert ws.subprotocol == "c"
    async with await connect(url(port)) as ws:
        assert ws.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in ws.response.headers
    assert offers == [["a", "b", "c"], []]


async def test_select_subprotocol_none(echo_server: EchoServerFactory) -> None:
    capture = Capture()
    _, port = await echo_server(capture, subprotocols=["chat"], select_subprotocol=by_path)
    async with await connect(url(port, "/none"), subprotocols=["chat"]) as ws:
        assert ws.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in ws.response.headers
        await echo_once(ws)
    assert capture.connections[0].subprotocol is None


async def test_select_subprotocol_not_offered(
    echo_server: EchoServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    capture = Capture()
    _, port = await echo_server(capture, select_subprotocol=by_path)
    with caplog.at_level(logging.DEBUG, logger="wsio"):
        response = await rejection(url(port, "/bad"), subprotocols=["chat"])
        await asyncio.sleep(0.1)
    # A bug in the server's hook: an HTTP error, never a 101 naming an unoffered protocol.
    assert response.status_code == 500
    assert "Sec-WebSocket-Protocol" not in response.headers
    assert capture.connections == []
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    # The server keeps serving.
    async with await connect(url(port, "/chat"), subprotocols=["chat"]) as ws:
        assert ws.subprotocol == "chat"


# --------------------------------------------------------------------------------------------
# basic_auth (RFC 7617)
# --------------------------------------------------------------------------------------------


async def auth_server(echo_server: EchoServerFactory, **kwargs: Any) -> tuple[Capture, int]:
    capture = Capture()
    _, port = await echo_server(capture, process_request=wsio.basic_auth(**kwargs))
    return capture, port


async def test_basic_auth_no_credentials(echo_server: EchoServerFactory) -> None:
    capture, port = await auth_server(echo_server, realm="test realm", credentials=("u", "p"))
    response = await rejection(url(port))
    assert response.status_code == 401
    assert response.headers.get_all("WWW-Authenticate") == [
        'Basic realm="test realm", charset="UTF-8"'
    ]
    assert response.body
    raw, eof = await raw_handshake(port)
    assert raw.status_code == 401
    assert raw.header("WWW-Authenticate") == 'Basic realm="test realm", charset="UTF-8"'
    assert eof
    assert capture.connections == []


async def test_basic_auth_realm_quoting(echo_server: EchoServerFactory) -> None:
    _, port = await auth_server(echo_server, realm='say "hi" \\o/', credentials=("u", "p"))
    response = await rejection(url(port))
    assert response.headers["WWW-Authenticate"] == (
        'Basic realm="say \\"hi\\" \\\\o/", charset="UTF-8"'
    )


async def test_basic_auth_wrong_password(echo_server: EchoServerFactory) -> None:
    capture, port = await auth_server(echo_server, realm="r", credentials=("u", "p"))
    for userinfo in ("u:wrong@", "u:@", "u@", "v:p@", "U:p@", "u:P@", "u:pp@"):
        response = await rejection(url(port, userinfo=userinfo))
        assert response.status_code == 401, userinfo
        assert response.headers["WWW-Authenticate"] == 'Basic realm="r", charset="UTF-8"'
    assert capture.connections == []


async def test_basic_auth_right_password(echo_server: EchoServerFactory) -> None:
    capture, port = await auth_server(echo_server, realm="r", credentials=("u", "p"))
    async with await connect(url(port, "/in", userinfo="u:p@")) as ws:
        assert ws.request.headers["Authorization"] == basic("u", "p")
        await echo_once(ws)
    assert len(capture.connections) == 1
    assert capture.connections[0].username == "u"
    assert capture.connections[0].request.path == "/in"


async def test_basic_auth_header_given_directly(echo_server: EchoServerFactory) -> None:
    capture, port = await auth_server(echo_server, credentials=("u", "p:with:colons"))
    # RFC 7617 §2: the user-id can't hold a colon, the password can.
    raw, _ = await raw_handshake(port, headers={"Authorization": basic("u", "p:with:colons")})
    assert raw.status_code == 101
    # The scheme name is case-insensitive (RFC 7617 §2, RFC 9110 §11.1).
    token = basic("u", "p:with:colons").split(" ", 1)[1]
    raw, _ = await raw_handshake(port, headers={"Authorization": "basic " + token})
    assert raw.status_code == 101
    async with await connect(
        url(port), additional_headers={"Authorization": basic("u", "p:with:colons")}
    ) as ws:
        await echo_once(ws)
    assert [c.username for c in capture.connections] == ["u", "u", "u"]


async def test_basic_auth_utf8(echo_server: EchoServerFactory) -> None:
    # RFC 7617 §2.1: charset="UTF-8" means the server expects UTF-8 credentials.
    capture, port = await auth_server(echo_server, credentials=("jürgen", "pässwörd€"))
    async with await connect(url(port, userinfo="j%C3%BCrgen:p%C3%A4ssw%C3%B6rd%E2%82%AC@")) as ws:
        await echo_once(ws)
    assert capture.connections[0].username == "jürgen"
    response = await rejection(url(port, userinfo="j%C3%BCrgen:passwort@"))
    assert response.status_code == 401


async def test_basic_auth_several_pairs(echo_server: EchoServerFactory) -> None:
    capture, port = await auth_server(
        echo_server, credentials=[("alice", "a-secret"), ("bob", "b-secret")]
    )
    for user, password in (("alice", "a-secret"), ("bob", "b-secret")):
        async with await connect(url(port, userinfo=f"{user}:{password}@")) as ws:
            await echo_once(ws)
    # One user's password doesn't open another's account.
    for user, password in (("alice", "b-secret"), ("bob", "a-secret"), ("carol", "a-secret")):
        response = await rejection(url(port, userinfo=f"{user}:{password}@"))
        assert response.status_code == 401
    assert [c.username for c in capture.connections] == ["alice", "bob"]


async def test_basic_auth_pairs_from_generator(echo_server: EchoServerFactory) -> None:
    pairs = (pair for pair in [("x", "1"), ("y", "2")])
    capture, port = await auth_server(echo_server, credentials=pairs)
    # Consumed once at set-up; works for every connection afterwards.
    for _ in range(2):
        async with await connect(url(port, userinfo="y:2@")) as ws:
            await echo_once(ws)
    assert [c.username for c in capture.connections] == ["y", "y"]


@pytest.mark.parametrize("form", ["sync", "async"])
async def test_basic_auth_check_credentials(echo_server: EchoServerFactory, form: str) -> None:
    calls: list[tuple[str, str]] = []

    def check(username: str, password: str) -> bool:
        calls.append((username, password))
        return password == username[::-1]

    capture, port = await auth_server(
        echo_server, realm="fn", check_credentials=sync_or_async(check, form)
    )
    async with await connect(url(port, userinfo="abc:cba@")) as ws:
        await echo_once(ws)
    response = await rejection(url(port, userinfo="abc:abc@"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="fn", charset="UTF-8"'
    assert calls == [("abc", "cba"), ("abc", "abc")]
    assert [c.username for c in capture.connections] == ["abc"]


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Bearer " + base64.b64encode(b"u:p").decode(),
        "Basic",
        "",
        base64.b64encode(b"u:p").decode(),
    ],
)
async def test_basic_auth_malformed_header(
    echo_server: EchoServerFactory, authorization: str
) -> None:
    capture, port = await auth_server(echo_server, realm="r", credentials=("u", "p"))
    raw, eof = await raw_handshake(port, headers=[("Authorization", authorization)])
    assert raw.status_code == 401
    assert raw.header("WWW-Authenticate") == 'Basic realm="r", charset="UTF-8"'
    assert eof
    assert capture.connections == []


async def test_basic_auth_two_headers(echo_server: EchoServerFactory) -> None:
    capture, port = await auth_server(echo_server, credentials=("u", "p"))
    headers = [("Authorization", basic("u", "p")), ("Authorization", basic("u", "p"))]
    raw, eof = await raw_handshake(port, headers=headers)
    assert raw.status_code == 400
    assert raw.header("WWW-Authenticate") is None
    assert eof
    assert capture.connections == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"realm": "r"},
        {"credentials": ("u", "p"), "check_credentials": lambda u, p: True},
    ],
)
def test_basic_auth_needs_one_source(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        wsio.basic_auth(**kwargs)


@pytest.mark.parametrize(
    "credentials",
    [
        [("u", "p"), ("only-one",)],
        [("u", "p", "extra")],
        ("u", 1234),
        [("u", b"bytes")],
        "u:p",
    ],
)
def test_basic_auth_bad_credentials_shape(credentials: Any) -> None:
    with pytest.raises(TypeError):
        wsio.basic_auth(credentials=credentials)


@pytest.mark.parametrize("count", [2, 3])
async def test_basic_auth_tuple_of_pairs(echo_server: EchoServerFactory, count: int) -> None:
    """A tuple of pairs is an ``Iterable[tuple[str, str]]``, as the signature allows."""
    pairs = tuple((f"user{i}", f"secret{i}") for i in range(count))
    capture, port = await auth_server(echo_server, credentials=pairs)
    async with await connect(url(port, userinfo=f"user{count - 1}:secret{count - 1}@")) as ws:
        await echo_once(ws)
    assert (await rejection(url(port, userinfo="user0:secret1@"))).status_code == 401
    assert [c.username for c in capture.connections] == [f"user{count - 1}"]


# --------------------------------------------------------------------------------------------
# Redirects and URI credentials, from the client's side
# --------------------------------------------------------------------------------------------


def redirects(routes: dict[str, tuple[int, str]], seen: list[tuple[str, str | None]]) -> Any:
    """A process_request hook answering the routes with redirects and recording requests."""

    def process_request(connection: Any, request: wsio.Request) -> wsio.Response | None:
        seen.append((request.path, request.headers.get("Authorization")))
        if request.path in routes:
            status, location = routes[request.path]
            if status in (301, 302, 303, 307, 308):
                response: wsio.Response = connection.respond(status, "Moved.\n")
                response.headers["Location"] = location
                return response
            return connection.respond(status, location)
        return None

    return process_request


async def test_redirect_chain(echo_server: EchoServerFactory) -> None:
    seen: list[tuple[str, str | None]] = []
    capture = Capture()
    routes: dict[str, tuple[int, str]] = {"/a": (302, "/b")}
    _, port = await echo_server(capture, process_request=redirects(routes, seen))
    routes["/b"] = (301, f"ws://127.0.0.1:{port}/c?x=1")
    async with await connect(url(port, "/a")) as ws:
        await echo_once(ws)
        assert ws.request.path == "/c?x=1"
    assert [path for path, _ in seen] == ["/a", "/b", "/c?x=1"]
    assert [c.request.path for c in capture.connections] == ["/c?x=1"]


async def test_redirect_chain_then_refusal(echo_server: EchoServerFactory) -> None:
    seen: list[tuple[str, str | None]] = []
    capture = Capture()
    routes = {
        "/a": (307, "/b"),
        "/b": (308, "/c"),
        "/c": (403, "Not you, not here.\n"),
    }
    _, port = await echo_server(capture, process_request=redirects(routes, seen))
    response = await rejection(url(port, "/a"))
    # The final response, not a redirect.
    assert response.status_code == 403
    assert "Location" not in response.headers
    assert response.body == b"Not you, not here.\n"
    assert [path for path, _ in seen] == ["/a", "/b", "/c"]
    assert capture.connections == []


async def test_user_info_sends_basic(echo_server: EchoServerFactory) -> None:
    seen: list[tuple[str, str | None]] = []
    _, port = await echo_server(process_request=redirects({}, seen))
    async with await connect(url(port, userinfo="user:pass@")) as ws:
        assert ws.request.headers["Authorization"] == basic("user", "pass")
    assert seen == [("/", basic("user", "pass"))]
    # The credentials go in the header, never in the Host or the request line.
    assert "user" not in ws.request.headers["Host"]


async def test_user_info_kept_on_same_origin_redirect(echo_server: EchoServerFactory) -> None:
    seen: list[tuple[str, str | None]] = []
    _, port = await echo_server(process_request=redirects({"/a": (302, "/b")}, seen))
    async with await connect(url(port, "/a", userinfo="user:pass@")):
        pass
    assert seen == [("/a", basic("user", "pass")), ("/b", basic("user", "pass"))]


@pytest.mark.parametrize("how", ["userinfo", "header"])
async def test_credentials_dropped_on_redirect_to_other_host(
    echo_server: EchoServerFactory, how: str
) -> None:
    seen_b: list[tuple[str, str | None]] = []
    capture_b = Capture()
    _, port_b = await echo_server(capture_b, process_request=redirects({}, seen_b))
    seen_a: list[tuple[str, str | None]] = []
    # "localhost" is another host than "127.0.0.1" for origins, though the same machine.
    routes = {"/a": (302, f"ws://localhost:{port_b}/b")}
    _, port_a = await echo_server(process_request=redirects(routes, seen_a))
    if how == "userinfo":
        ws = await connect(url(port_a, "/a", userinfo="user:pass@"))
    else:
        ws = await connect(
            url(port_a, "/a"), additional_headers={"Authorization": basic("user", "pass")}
        )
    async with ws:
        await echo_once(ws)
        assert "Authorization" not in ws.request.headers
    assert seen_a == [("/a", basic("user", "pass"))]
    assert seen_b == [("/b", None)]
    assert capture_b.connections[0].request.headers["Host"] == f"localhost:{port_b}"
