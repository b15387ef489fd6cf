"""wsio.connect: the opening handshake from the client's side, over real sockets."""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import wsio
from handlers import Capture
from rawpeer import OP_CLOSE, OP_TEXT, RawServer, ServerConn, accept_key

EchoServerFactory = Callable[..., Awaitable[tuple[Any, int]]]

T = 5.0


def url(port: int, path: str = "/") -> str:
    return f"ws://127.0.0.1:{port}{path}"


# Both forms of connect -------------------------------------------------------------------------


async def test_async_with_form(echo_server: EchoServerFactory) -> None:
    _, port = await echo_server()
    async with asyncio.timeout(T):
        async with wsio.connect(url(port)) as ws:
            assert isinstance(ws, wsio.ClientConnection)
            assert ws.state is wsio.State.OPEN
            await ws.send("hi")
            assert await ws.recv() == "hi"
        assert ws.state is wsio.State.CLOSED
        assert ws.close_code == 1000


async def test_await_form(echo_server: EchoServerFactory) -> None:
    _, port = await echo_server()
    async with asyncio.timeout(T):
        ws = await wsio.connect(url(port))
        assert isinstance(ws, wsio.ClientConnection)
        try:
            await ws.send(b"hi")
            assert await ws.recv() == b"hi"
        finally:
            await ws.close()
    assert ws.state is wsio.State.CLOSED
    assert ws.close_code == 1000


async def test_many_concurrent_clients(echo_server: EchoServerFactory) -> None:
    _, port = await echo_server()

    async def one(i: int) -> str | bytes:
        async with wsio.connect(url(port)) as ws:
            await ws.send(f"client {i}")
            return await ws.recv()

    async with asyncio.timeout(T):
        results = await asyncio.gather(*(one(i) for i in range(20)))
    assert results == [f"client {i}" for i in range(20)]


# Request and response ----------------------------------------------------------------------------


async def test_request_and_response_attributes(echo_server: EchoServerFactory) -> None:
    capture = Capture()
    _, port = await echo_server(handler=capture)
    async with asyncio.timeout(T), wsio.connect(url(port, "/chat?room=1")) as ws:
        request, response = ws.request, ws.response
        assert isinstance(request, wsio.Request)
        assert isinstance(response, wsio.Response)
        assert request.path == "/chat?room=1"
        assert request.headers["Host"] == f"127.0.0.1:{port}"
        assert request.headers["Upgrade"].lower() == "websocket"
        assert request.headers["Sec-WebSocket-Version"] == "13"
        key = request.headers["Sec-WebSocket-Key"]
        assert len(base64.b64decode(key)) == 16
        assert response.status_code == 101
        assert response.headers["Sec-WebSocket-Accept"] == accept_key(key)
        assert response.headers["Server"].startswith("wsio")
        assert ws.subprotocol is None
        await ws.send("x")
        await ws.recv()
        server_request = capture.request
        assert server_request.path == "/chat?room=1"
        assert server_request.headers["Sec-WebSocket-Key"] == key
        assert capture.connections[0].response.status_code == 101


async def test_default_path_is_slash(echo_server: EchoServerFactory) -> None:
    capture = Capture()
    _, port = await echo_server(handler=capture)
    async with asyncio.timeout(T), wsio.connect(f"ws://127.0.0.1:{port}") as ws:
        await ws.send("x")
        await ws.recv()
    assert ws.request.path == "/"
    assert capture.request.path == "/"


async def test_user_agent_header(echo_server: EchoServerFactory) -> None:
    capture = Capture()
    _, port = await echo_server(handler=capture)
    async with asyncio.timeout(T):
        async with wsio.connect(url(port)) as ws:
            await ws.send("x")
            await ws.recv()
        assert capture.request.headers["User-Agent"].startswith("wsio/")
        async with wsio.connect(url(port), user_agent_header="custom-agent/2.0") as ws:
            await ws.send("x")
            await ws.recv()
        assert capture.request.headers.get_all("User-Agent") == ["custom-agent/2.0"]
        async with wsio.connect(url(port), user_agent_header=None) as ws:
            await ws.send("x")
            await ws.recv()
        assert "User-Agent" not in capture.request.headers


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Token": "secret", "X-Other": "1"},
        [("X-Token", "secret"), ("X-Other", "1")],
        wsio.Headers([("X-Token", "secret"), ("X-Other", "1")]),
    ],
    ids=["dict", "pairs", "Headers"],
)
async def test_additional_headers_reach_server(
    echo_server: EchoServerFactory, headers: Any
) -> None:
    capture = Capture()
    _, port = await echo_server(handler=capture)
    async with asyncio.timeout(T), wsio.connect(url(port), additional_headers=headers) as ws:
        assert ws.request.headers["X-Token"] == "secret"
        await ws.send("x")
        await ws.recv()
    assert capture.request.headers["X-Token"] == "secret"
    assert capture.request.headers["X-Other"] == "1"


async def test_additional_headers_repeated_and_overriding(
    echo_server: EchoServerFactory,
) -> None:
    capture = Capture()
    _, port = await echo_server(handler=capture)
    headers = [("X-Multi", "a"), ("X-Multi", "b"), ("User-Agent", "from-headers")]
    async with asyncio.timeout(T), wsio.connect(url(port), additional_headers=headers) as ws:
        await ws.send("x")
        await ws.recv()
    assert capture.request.headers.get_all("X-Multi") == ["a", "b"]
    # A header given explicitly replaces the default instead of repeating it.
    assert capture.request.headers.get_all("User-Agent") == ["from-headers"]


async def test_user_info_becomes_basic_authorization(echo_server: EchoServerFactory) -> None:
    """As in websockets: credentials in the URI are sent as HTTP Basic authorization."""
    capture = Capture()
    _, port = await echo_server(handler=capture)
    async with asyncio.timeout(T), wsio.connect(f"ws://user:pa%20ss@127.0.0.1:{port}/") as ws:
        await ws.send("x")
        await ws.recv()
    expected = "Basic " + base64.b64encode(b"user:pa ss").decode()
    assert capture.request.headers.get("Authorization") == expected
    # The credentials never appear in the Host header.
    assert capture.request.headers["Host"] == f"127.0.0.1:{port}"


# Subprotocols ------------------------------------------------------------------------------------


async def test_subprotocol_negotiation(echo_server: EchoServerFactory) -> None:
    capture = Capture()
    _, port = await echo_server(handler=capture, subprotocols=["b"])
    async with asyncio.timeout(T), wsio.connect(url(port), subprotocols=["a", "b"]) as ws:
        assert ws.subprotocol == "b"
        assert ws.request.headers["Sec-WebSocket-Protocol"] == "a, b"
        assert ws.response.headers["Sec-WebSocket-Protocol"] == "b"
        await ws.send("x")
        await ws.recv()
        assert capture.connections[0].subprotocol == "b"


async def test_subprotocol_client_preference_wins(echo_server: EchoServerFactory) -> None:
    _, port = await echo_server(subprotocols=["chat", "superchat"])
    async with asyncio.timeout(T):
        async with wsio.connect(url(port), subprotocols=["superchat", "chat"]) as ws:
            assert ws.subprotocol == "superchat"
        async with wsio.connect(url(port), subprotocols=["chat", "superchat"]) as ws:
            assert ws.subprotocol == "chat"


async def test_no_common_subprotocol(echo_server: EchoServerFactory) -> None:
    _, port = await echo_server(subprotocols=["x"])
    async with asyncio.timeout(T), wsio.connect(url(port), subprotocols=["a", "b"]) as ws:
        assert ws.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in ws.response.headers


async def test_subprotocol_not_offered(echo_server: EchoServerFactory) -> None:
    _, port = await echo_server(subprotocols=["b"])
    async with asyncio.timeout(T), wsio.connect(url(port)) as ws:
        assert ws.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in ws.request.headers


async def test_server_picks_subprotocol_not_offered() -> None:
    """§4.1: a subprotocol the client didn't offer fails the handshake."""

    async def script(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.accept(extra_headers={"Sec-WebSocket-Protocol": "c"})
        await conn.wait_eof(T)

    async with RawServer(script) as srv:
        with pytest.raises(wsio.NegotiationError):
            await asyncio.wait_for(wsio.connect(srv.url, subprotocols=["a", "b"]), T)


# Origin ------------------------------------------------------------------------------------------


async def test_origin_allowed(echo_server: EchoServerFactory) -> None:
    capture = Capture()
    _, port = await echo_server(
        handler=capture, origins=["https://good.example", re.compile(r"https://.*\.good\.test")]
    )
    async with asyncio.timeout(T):
        async with wsio.connect(url(port), origin="https://good.example") as ws:
            assert ws.request.headers["Origin"] == "https://good.example"
            await ws.send("x")
            assert await ws.recv() == "x"
        assert capture.request.headers["Origin"] == "https://good.example"
        async with wsio.connect(url(port), origin="https://sub.good.test") as ws:
            await ws.send("y")
            assert await ws.recv() == "y"


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "https://good.example.evil", "http://good.example", None],
    ids=["foreign", "suffix", "scheme", "missing"],
)
async def test_origin_rejected(echo_server: EchoServerFactory, origin: str | None) -> None:
    capture = Capture()
    _, port = await echo_server(handler=capture, origins=["https://good.example"])
    async with asyncio.timeout(T):
        with pytest.raises(wsio.InvalidStatus) as excinfo:
            await wsio.connect(url(port), origin=origin)
    assert excinfo.value.response.status_code == 403
    assert capture.connections == []


async def test_origin_none_allows_missing_header(echo_server: EchoServerFactory) -> None:
    _, port = await echo_server(origins=[None, "https://good.example"])
    async with asyncio.timeout(T):
        async with wsio.connect(url(port)) as ws:
            assert "Origin" not in ws.request.headers
        async with wsio.connect(url(port), origin="https://good.example") as ws:
            assert ws.state is wsio.State.OPEN
        with pytest.raises(wsio.InvalidStatus) as excinfo:
            await wsio.connect(url(port), origin="https://other.example")
    assert excinfo.value.response.status_code == 403


# Invalid arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1/",
        "https://127.0.0.1/",
        "127.0.0.1:8000",
        "ws://",
        "ws:///path",
        "wss://",
        "ws://127.0.0.1/#fragment",
        "ws://127.0.0.1:99999/",
        "ws://127.0.0.1:port/",
        "",
        # Each with a reason of its own, never ValueError or UnicodeError.
        "ws://[::1/",
        "ws://[::1]x/",
        "ws://[zz]/",
        "ws://[fe80::1%25eth0]/",
        "ws://a..b/",
        "ws://" + "a" * 64 + ".example/",
        "ws://.example/",
        "ws://bü..cher/",
        "ws://h:0/",
        "ws://a,b/",
        "ws://a b/",
        "ws://h\\x/",
        "ws://h\x00/",
        "ws://h/\x7f",
        "ws://h/\r\nX: y",
        "ws://h\t/",
        "ws://h/\ud800",
        "ws://\udfff/",
        "ws://user:\ud800@h/",
        "ws://h/100%",
        "ws://h/%zz",
        "ws://h/#",
    ],
)
async def test_invalid_uri(uri: str) -> None:
    with pytest.raises(wsio.InvalidURI) as excinfo:
        await wsio.connect(uri)
    assert excinfo.value.uri == uri
    # A short message that prints whatever the URI holds.
    assert str(excinfo.value).isprintable()
    with pytest.raises(wsio.InvalidURI):
        async with wsio.connect(uri):
            pytest.fail("connected with an invalid URI")  # pragma: no cover


async def test_ssl_with_ws_uri() -> None:
    with pytest.raises(ValueError):
        await wsio.connect("ws://127.0.0.1:1/", ssl=ssl.create_default_context())


async def test_connection_refused() -> None:
    # Find a port with nothing listening.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with asyncio.timeout(T):
        with pytest.raises(OSError):
            await wsio.connect(url(port))


async def test_request_goes_out_as_the_connection_is_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The opening handshake request is written by connection_made: it has reached the
    server by the time create_connection returns, a turn of the loop before connect()
    resumes."""
    loop = asyncio.get_running_loop()
    create_connection = loop.create_connection
    arrived: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:

        async def checked(*args: Any, **kwargs: Any) -> Any:
            result = await create_connection(*args, **kwargs)
            accepted, _ = listener.accept()
            with accepted:
                try:
                    arrived.append(accepted.recv(4096, socket.MSG_PEEK | socket.MSG_DONTWAIT))
                except BlockingIOError:
                    arrived.append(b"")
            return result

        monkeypatch.setattr(loop, "create_connection", checked)
        async with asyncio.timeout(T):
            with pytest.raises(wsio.InvalidHandshake):
                await wsio.connect(url(listener.getsockname()[1]))
    assert arrived[0].startswith(b"GET / HTTP/1.1\r\n")


# Non-101 and odd 101 responses -------------------------------------------------------------------


def answering(response: bytes, seen: list[Any] | None = None) -> Any:
    async def script(conn: ServerConn) -> None:
        request = await conn.read_request()
        if seen is not None:
            seen.append(request)
        await conn.send(response)
        conn.close()

    return script


async def test_invalid_status_403_with_body() -> None:
    body = b"<h1>Go away</h1>\n"
    response = (
        b"HTTP/1.1 403 Forbidden\r\n"
        b"Content-Type: text/html\r\n"
        b"X-Reason: origin\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"\r\n" + body
    )
    async with RawServer(answering(response)) as srv:
        with pytest.raises(wsio.InvalidStatus) as excinfo:
            await asyncio.wait_for(wsio.connect(srv.url), T)
    exc = excinfo.value
    assert isinstance(exc, wsio.InvalidHandshake)
    assert exc.response.status_code == 403
    assert exc.response.reason_phrase == "Forbidden"
    assert exc.response.headers["Content-Type"] == "text/html"
    assert exc.response.headers["X-Reason"] == "origin"
    assert exc.response.body == body
    assert "403" in str(exc)


async def test_invalid_status_body_until_eof() -> None:
    response = b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\nit broke"
    async with RawServer(answering(response)) as srv:
        with pytest.raises(wsio.InvalidStatus) as excinfo:
            await asyncio.wait_for(wsio.connect(srv.url), T)
    assert excinfo.value.response.status_code == 500
    assert excinfo.value.response.reason_phrase == "Internal Server Error"
    assert excinfo.value.response.body == b"it broke"


async def test_invalid_status_chunked_body() -> None:
    response = (
        b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n"
        b"WWW-Authenticate: Basic\r\n\r\n"
        b"5\r\nlogin\r\n6\r\n first\r\n0\r\n\r\n"
    )
    async with RawServer(answering(response)) as srv:
        with pytest.raises(wsio.InvalidStatus) as excinfo:
            await asyncio.wait_for(wsio.connect(srv.url), T)
    assert excinfo.value.response.status_code == 401
    assert excinfo.value.response.headers["WWW-Authenticate"] == "Basic"
    assert excinfo.value.response.body == b"login first"


async def test_invalid_status_without_reason_phrase() -> None:
    response = b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n"
    async with RawServer(answering(response)) as srv:
        with pytest.raises(wsio.InvalidStatus) as excinfo:
            await asyncio.wait_for(wsio.connect(srv.url), T)
    assert excinfo.value.response.status_code == 404
    assert excinfo.value.response.reason_phrase == ""
    assert excinfo.value.response.body == b""


def redirecting(location: str) -> Any:
    return answering(
        f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode()
    )


async def test_redirect_is_followed(echo_server: EchoServerFactory) -> None:
    """As in websockets: a 3xx with a Location is followed, within open_timeout."""
    capture = Capture()
    _, port = await echo_server(handler=capture)
    async with (
        RawServer(redirecting(f"ws://127.0.0.1:{port}/moved?x=1")) as srv,
        asyncio.timeout(T),
        wsio.connect(srv.url + "/old") as ws,
    ):
        await ws.send("after redirect")
        assert await ws.recv() == "after redirect"
        assert ws.request.path == "/moved?x=1"
        assert ws.remote_address[1] == port
    assert capture.request.path == "/moved?x=1"
    assert capture.request.headers["Host"] == f"127.0.0.1:{port}"


async def test_relative_redirect() -> None:
    requests: list[Any] = []

    async def script(conn: ServerConn) -> None:
        request = await conn.read_request()
        requests.append(request)
        if request.path == "/start":
            await conn.send(
                b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /final\r\nContent-Length: 0\r\n\r\n"
            )
            conn.close()
            return
        await conn.accept(request)
        await conn.send_frame(OP_TEXT, "arrived")
        frame = await conn.recv_frame(T)
        assert frame is not None
        await conn.send_close(1000)
        conn.close()

    async with (
        RawServer(script) as srv,
        asyncio.timeout(T),
        wsio.connect(srv.url + "/start") as ws,
    ):
        assert await ws.recv() == "arrived"
    assert [r.path for r in requests] == ["/start", "/final"]


async def test_too_many_redirects() -> None:
    count = 0

    async def script(conn: ServerConn) -> None:
        nonlocal count
        count += 1
        await conn.read_request()
        await conn.send(b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n")
        conn.close()

    async with RawServer(script) as srv:
        with pytest.raises(wsio.SecurityError):
            await asyncio.wait_for(wsio.connect(srv.url), T)
    assert 2 <= count <= 21


async def test_redirect_without_location_is_invalid_status() -> None:
    response = b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n"
    async with RawServer(answering(response)) as srv:
        with pytest.raises(wsio.InvalidStatus) as excinfo:
            await asyncio.wait_for(wsio.connect(srv.url), T)
    assert excinfo.value.response.status_code == 302


@pytest.mark.parametrize(
    "status_line",
    [
        b"HTTP/1.1 101 Switching Protocols",
        b"HTTP/1.1 101 Web Socket Protocol Handshake",
        b"HTTP/1.1 101 OK",
        b"HTTP/1.1 101 ",
        b"HTTP/1.1 101",
    ],
    ids=["standard", "web-socket-protocol-handshake", "ok", "empty-reason", "no-reason"],
)
async def test_101_reason_phrase_is_free_text(status_line: bytes) -> None:
    async def script(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.accept(status_line=status_line)
        await conn.send_frame(OP_TEXT, "welcome")
        frame = await conn.recv_frame(T)
        assert frame is not None
        assert frame.opcode == OP_CLOSE
        await conn.send_close(frame.close_code)
        conn.close()

    async with RawServer(script) as srv:
        async with asyncio.timeout(T), wsio.connect(srv.url) as ws:
            assert ws.response.status_code == 101
            expected = status_line.partition(b"101")[2].strip().decode()
            assert ws.response.reason_phrase.strip() == expected
            assert await ws.recv() == "welcome"
        assert ws.close_code == 1000


async def test_frames_right_behind_the_101_are_delivered() -> None:
    async def script(conn: ServerConn) -> None:
        request = await conn.read_request()
        key = request.header("Sec-WebSocket-Key")
        assert key is not None
        head = (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
        ).encode()
        # One write: the head and two frames in the same segment.
        await conn.send(head + b"\x81\x05first" + b"\x82\x01\x02")
        await conn.wait_eof(T)

    async with RawServer(script) as srv:
        ws = await asyncio.wait_for(wsio.connect(srv.url, close_timeout=0.5), T)
        async with asyncio.timeout(T):
            assert await ws.recv() == "first"
            assert await ws.recv() == b"\x02"
            await ws.close()


async def test_open_timeout_when_server_never_answers() -> None:
    eof: list[bool] = []

    async def script(conn: ServerConn) -> None:
        await conn.read_request()
        # Never answer; the client gives up and closes.
        eof.append(await conn.wait_eof(T))

    loop = asyncio.get_running_loop()
    async with RawServer(script) as srv:
        start = loop.time()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(wsio.connect(srv.url, open_timeout=0.5), T)
        elapsed = loop.time() - start
        await srv.wait_scripts()
    assert 0.4 <= elapsed < 2
    # The client closed the TCP connection.
    assert eof == [True]


async def test_open_timeout_when_server_sends_partial_response() -> None:
    async def script(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: web")
        await conn.wait_eof(T)

    async with RawServer(script) as srv:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(wsio.connect(srv.url, open_timeout=0.3), T)


async def test_server_closes_before_answering() -> None:
    async def script(conn: ServerConn) -> None:
        await conn.read_request()
        conn.close()

    async with RawServer(script) as srv:
        with pytest.raises(wsio.InvalidHandshake):
            await asyncio.wait_for(wsio.connect(srv.url), T)


async def test_wrong_accept_key() -> None:
    async def script(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.accept(extra_headers={"Sec-WebSocket-Accept": "d3Jvbmc="})
        await conn.wait_eof(T)

    async with RawServer(script) as srv:
        with pytest.raises(wsio.InvalidHeader):
            await asyncio.wait_for(wsio.connect(srv.url), T)


# TLS ---------------------------------------------------------------------------------------------


async def test_wss_end_to_end(
    echo_server: EchoServerFactory,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    capture = Capture()
    _, port = await echo_server(handler=capture, ssl=server_ssl_context)
    for host in ("localhost", "127.0.0.1"):
        uri = f"wss://{host}:{port}/secure"
        async with asyncio.timeout(T), wsio.connect(uri, ssl=client_ssl_context) as ws:
            await ws.send("tls text")
            assert await ws.recv() == "tls text"
            await ws.send(b"tls bytes")
            assert await ws.recv() == b"tls bytes"
            ssl_object = ws.transport.get_extra_info("ssl_object")
            assert ssl_object is not None
            assert ssl_object.server_hostname == host
        assert ws.close_code == 1000
        assert capture.request.path == "/secure"


async def test_wss_default_context_rejects_untrusted_certificate(
    echo_server: EchoServerFactory, server_ssl_context: ssl.SSLContext
) -> None:
    _, port = await echo_server(ssl=server_ssl_context)
    async with asyncio.timeout(T):
        with pytest.raises(ssl.SSLCertVerificationError):
            await wsio.connect(f"wss://localhost:{port}/")


async def test_wss_server_hostname_mismatch(
    echo_server: EchoServerFactory,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    _, port = await echo_server(ssl=server_ssl_context)
    async with asyncio.timeout(T):
        with pytest.raises(ssl.SSLCertVerificationError):
            await wsio.connect(
                f"wss://127.0.0.1:{port}/",
                ssl=client_ssl_context,
                server_hostname="wrong.example",
            )
        # The right server_hostname works even though the URI names an IP address.
        async with wsio.connect(
            f"wss://127.0.0.1:{port}/", ssl=client_ssl_context, server_hostname="localhost"
        ) as ws:
            await ws.send("ok")
            assert await ws.recv() == "ok"


async def test_wss_to_plain_server_fails(echo_server: EchoServerFactory) -> None:
    _, port = await echo_server()
    ctx = ssl.create_default_context()
    async with asyncio.timeout(T):
        with pytest.raises((ssl.SSLError, OSError)):
            await wsio.connect(f"wss://127.0.0.1:{port}/", ssl=ctx, open_timeout=2)


async def test_connect_with_existing_socket(echo_server: EchoServerFactory) -> None:
    """As in websockets, ``sock=`` (passed on to create_connection) replaces host and port."""
    _, port = await echo_server()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    try:
        async with asyncio.timeout(T), wsio.connect(url(port, "/sock"), sock=sock) as ws:
            await ws.send("via sock")
            assert await ws.recv() == "via sock"
            assert ws.request.path == "/sock"
    finally:
        sock.close()


async def test_handshake_during_server_shutdown_gets_503() -> None:
    """A wsio client whose TCP connection was accepted before the shutdown gets a 503.

    A relay in front of the server connects upstream at once but holds the client's bytes
    until the server has started closing.
    """
    release = asyncio.Event()
    relays: list[asyncio.Task[None]] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        await release.wait()
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        relays.append(asyncio.create_task(relay(reader, writer)))

    async with asyncio.timeout(T):
        server = await wsio.serve(Capture(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        proxy = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        proxy_port = proxy.sockets[0].getsockname()[1]
        try:
            connecting = asyncio.ensure_future(wsio.connect(url(proxy_port)))
            while not server.connections:
                await asyncio.sleep(0.005)
            server.close()
            await asyncio.sleep(0.05)
            release.set()
            with pytest.raises(wsio.InvalidStatus) as excinfo:
                await connecting
            await server.wait_closed()
        finally:
            proxy.close()
            for task in relays:
                task.cancel()
            await asyncio.gather(*relays, return_exceptions=True)
    assert excinfo.value.response.status_code == 503
    assert excinfo.value.response.body
