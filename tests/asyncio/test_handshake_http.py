"""The HTTP rules of the opening handshake over real sockets: request targets and ``Host``
(RFC 9112 §3.2, RFC 9110 §7.2), interim 1xx answers (RFC 9110 §15.2), and WebSocket URIs
that can't be used (RFC 6455 §3)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import wsio
from rawpeer import (
    OP_CLOSE,
    OP_TEXT,
    HTTPResponse,
    RawClient,
    RawServer,
    ServerConn,
    build_response,
)

EchoServerFactory = Callable[..., Awaitable[tuple[Any, int]]]

STEP = 5.0


class Seen:
    """What the hook and the handler saw of the requests that reached them."""

    def __init__(self) -> None:
        self.by_hook: list[tuple[str, list[str]]] = []
        self.by_handler: list[tuple[str, list[str]]] = []

    def process_request(self, connection: Any, request: Any) -> None:
        self.by_hook.append((request.path, request.headers.get_all("Host")))

    async def handler(self, ws: Any) -> None:
        self.by_handler.append((ws.request.path, ws.request.headers.get_all("Host")))
        async for message in ws:
            await ws.send(message)


async def serve(echo_server: EchoServerFactory) -> tuple[Seen, int]:
    seen = Seen()
    _, port = await echo_server(seen.handler, process_request=seen.process_request)
    return seen, port


async def handshake(client: RawClient, target: str, host: str | None) -> HTTPResponse:
    return await client.handshake(target, {"Host": host})


# -- Request targets and Host ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "host"),
    [
        # Not origin-form: asterisk-form, authority-form, a relative reference.
        ("*", "{authority}"),
        ("localhost:80", "{authority}"),
        ("{authority}", "{authority}"),
        ("chat", "{authority}"),
        # Absolute-form naming another server than Host, another scheme, user info, a
        # fragment, no host.
        ("http://other/x", "{authority}"),
        ("http://{authority}.example/x", "{authority}"),
        ("ftp://{authority}/x", "{authority}"),
        ("http://user@{authority}/x", "{authority}"),
        ("http://{authority}/x#top", "{authority}"),
        ("http:///x", "{authority}"),
        ("http:/x", "{authority}"),
        # Characters that a request-target can't hold (RFC 3986 §3.3, §3.4).
        ("/a#b", "{authority}"),
        ("/%zz", "{authority}"),
        ("/100%", "{authority}"),
        ('/a"b', "{authority}"),
        ("/<script>", "{authority}"),
        ("/a{{b}}", "{authority}"),
        ("/a\\b", "{authority}"),
        ("/a|b", "{authority}"),
        ("/?q=[1]", "{authority}"),
        ("/a`b^", "{authority}"),
        # Host values that aren't uri-host [":" port].
        ("/", "a, b"),
        ("/", "a b"),
        ("/", "a,b"),
        ("/", ""),
        ("/", ":80"),
        ("/", "127.0.0.1:99999"),
        ("/", "127.0.0.1:-1"),
        ("/", "127.0.0.1:x"),
        ("/", "127.0.0.1:80:80"),
        ("/", "[::1"),
        ("/", "[::1]x"),
        ("/", "[zz::1]"),
        ("/", "[fe80::1%25eth0]"),
        ("/", "host/path"),
        ("/", "user@host"),
        ("/", "caf\xe9"),
    ],
)
async def test_bad_target_or_host_gets_400(
    echo_server: EchoServerFactory, target: str, host: str | None
) -> None:
    seen, port = await serve(echo_server)
    authority = f"127.0.0.1:{port}"
    target = target.format(authority=authority)
    if host is not None:
        host = host.format(authority=authority)
    async with await RawClient.open("127.0.0.1", port) as client:
        response = await handshake(client, target, host)
        assert response.status_code == 400, response.raw
        assert response.has_token("Connection", "close")
        assert await client.wait_eof(STEP)
    # Refused before the hook: an invalid request isn't shown to the application.
    assert seen.by_hook == seen.by_handler == []


async def test_two_host_headers_get_400(echo_server: EchoServerFactory) -> None:
    seen, port = await serve(echo_server)
    host = f"127.0.0.1:{port}"
    async with await RawClient.open("127.0.0.1", port) as client:
        response = await client.handshake("/", [("Host", host), ("Host", host)])
    assert response.status_code == 400, response.raw
    assert seen.by_hook == seen.by_handler == []


#: Valid requests: (target, Host, path seen by the application, Host seen by it).
VALID = [
    ("/chat?room=1", "{authority}", "/chat?room=1", "{authority}"),
    ("//double/slash:@!$&'()*+,;=~-._%2F", "{authority}", None, "{authority}"),
    ("/?", "{authority}", "/?", "{authority}"),
    # Absolute-form (RFC 9112 §3.2.2): the application sees the origin-form, and the
    # target's authority as Host.
    ("http://{authority}/x?q", "{authority}", "/x?q", "{authority}"),
    ("ws://{authority}/x?q", "{authority}", "/x?q", "{authority}"),
    ("WS://{authority}", "{authority}", "/", "{authority}"),
    ("ws://{authority}?q=1", "{authority}", "/?q=1", "{authority}"),
    ("ws://LOCALHOST:{port}/", "localhost:{port}", "/", "LOCALHOST:{port}"),
    ("http://localhost/x", "localhost:80", "/x", "localhost"),
    ("https://localhost:443/x", "localhost", "/x", "localhost:443"),
    ("wss://[::1]/x", "[::1]:443", "/x", "[::1]"),
    # Host values that are uri-host [":" port]: names, addresses, an empty port.
    ("/", "localhost", "/", "localhost"),
    ("/", "[::1]:8080", "/", "[::1]:8080"),
    ("/", "my_host.example.", "/", "my_host.example."),
    ("/", "h:", "/", "h:"),
]


async def test_valid_targets_and_hosts_are_accepted(echo_server: EchoServerFactory) -> None:
    """Each valid request opens a connection, and the hook and the handler see its target
    in origin-form."""
    seen, port = await serve(echo_server)
    authority = f"127.0.0.1:{port}"
    for target, host, path, seen_host in VALID:
        target, host, seen_host = (
            text.format(authority=authority, port=port) for text in (target, host, seen_host)
        )
        async with await RawClient.open("127.0.0.1", port) as client:
            response = await handshake(client, target, host)
            assert response.status_code == 101, (target, host, response.raw)
            await client.send_frame(OP_TEXT, "hello")
            frame = await client.recv_frame(STEP)
            assert frame is not None and frame.text == "hello"
        expected = (target if path is None else path, [seen_host])
        assert seen.by_hook[-1] == seen.by_handler[-1] == expected, (target, host)
    assert len(seen.by_hook) == len(seen.by_handler) == len(VALID)


# -- Interim answers -------------------------------------------------------------------------


async def echo_once(conn: ServerConn) -> None:
    """Echo one text message, then answer the closing handshake (or see the TCP end)."""
    frame = await conn.recv_frame(STEP)
    if frame is not None and frame.opcode == OP_TEXT:
        await conn.send_frame(OP_TEXT, frame.payload)
        frame = await conn.recv_frame(STEP)
    if frame is not None and frame.opcode == OP_CLOSE:
        await conn.send_close(frame.close_code)
        conn.close()
        return
    await conn.wait_eof(STEP)


def interim_then(interim: bytes, final: Callable[[Any], bytes]) -> Any:
    """A server script: interim answers, then ``final(request)``, then an echo of one frame."""

    async def script(conn: ServerConn) -> None:
        request = await conn.read_request()
        await conn.send(interim + final(request))
        await echo_once(conn)

    return script


def accept(request: Any) -> bytes:
    return build_response(request.header("Sec-WebSocket-Key"))


@pytest.mark.parametrize(
    "interim",
    [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 102 Processing\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 100\r\n\r\nHTTP/1.1 103 \r\nLink: </a>\r\nLink: </b>\r\n\r\n"
        b"HTTP/1.1 199 X\r\n\r\n",
    ],
)
async def test_interim_answers_before_101_are_skipped(interim: bytes) -> None:
    async with RawServer(interim_then(interim, accept)) as srv:
        async with asyncio.timeout(STEP):
            async with wsio.connect(srv.url) as ws:
                assert ws.response is not None
                assert ws.response.status_code == 101
                assert ws.response.head.startswith(b"HTTP/1.1 101 ")
                await ws.send("through")
                assert await ws.recv() == "through"


async def test_interim_answers_before_a_refusal_are_skipped() -> None:
    def refuse(request: Any) -> bytes:
        return b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope"

    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    async with RawServer(interim_then(interim, refuse)) as srv:
        with pytest.raises(wsio.InvalidStatus) as info:
            await asyncio.wait_for(wsio.connect(srv.url), STEP)
    response = info.value.response
    assert (response.status_code, response.reason_phrase, response.body) == (
        403,
        "Forbidden",
        b"nope",
    )
    assert response.headers.get_all("Link") == []


@pytest.mark.parametrize(
    ("count", "fields"),
    [
        # Each interim answer costs one of the 128 header fields, plus its own fields.
        (129, 0),
        (43, 2),
        (1, 128),
        (100_000, 0),
    ],
)
async def test_interim_answers_are_bounded(count: int, fields: int) -> None:
    interim = b"HTTP/1.1 103 Early Hints\r\n" + b"Link: </a>\r\n" * fields + b"\r\n"
    async with RawServer(interim_then(interim * count, accept)) as srv:
        with pytest.raises(wsio.SecurityError):
            await asyncio.wait_for(wsio.connect(srv.url), STEP)


async def test_interim_answers_within_the_bound_are_skipped() -> None:
    # 125 interim answers and the 3 fields of the 101: 128 in all.
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" * 125
    async with RawServer(interim_then(interim, accept)) as srv:
        async with asyncio.timeout(STEP):
            async with wsio.connect(srv.url) as ws:
                await ws.send("after 128")
                assert await ws.recv() == "after 128"


def proxy_then_server(interim: bytes, statuses: list[str]) -> Any:
    """A script acting as an HTTP proxy that answers CONNECT with ``interim`` then 200,
    then as the WebSocket server at the other end of the tunnel."""

    async def script(conn: ServerConn) -> None:
        request = await conn.read_request()
        statuses.append(f"{request.method} {request.path} {request.version}")
        await conn.send(interim + b"HTTP/1.1 200 Connection established\r\n\r\n")
        await conn.handshake()
        await echo_once(conn)

    return script


async def test_interim_answers_to_connect_are_skipped_within_a_bound() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    lines: list[str] = []
    async with RawServer(proxy_then_server(interim, lines)) as proxy:
        proxy_uri = f"http://127.0.0.1:{proxy.port}"
        async with asyncio.timeout(STEP):
            async with wsio.connect("ws://server.example/", proxy=proxy_uri) as ws:
                await ws.send("tunnelled")
                assert await ws.recv() == "tunnelled"
    assert lines == ["CONNECT server.example:80 HTTP/1.1"]

    interim = b"HTTP/1.1 100 Continue\r\n\r\n" * 200

    async def flood(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(interim + b"HTTP/1.1 200 Connection established\r\n\r\n")
        assert await conn.wait_eof(STEP)

    async with RawServer(flood) as proxy:
        proxy_uri = f"http://127.0.0.1:{proxy.port}"
        with pytest.raises(wsio.InvalidProxyMessage, match="interim"):
            await asyncio.wait_for(wsio.connect("ws://server.example/", proxy=proxy_uri), STEP)


# -- Other arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"subprotocols": ["a b"]},
        {"subprotocols": ["chat, superchat"]},
        {"subprotocols": ["chat", ""]},
        {"subprotocols": ["\ud800"]},
        {"additional_headers": {"X-Token": "a\ud800"}},
        {"user_agent_header": "\udfff"},
        {"origin": "http://\ud800.example"},
    ],
)
async def test_bad_argument_raises_invalid_argument(kwargs: dict[str, Any]) -> None:
    """Nothing that can't be sent as it is goes out: refused as ``connect`` is called,
    before any connection is made."""
    received: list[bytes] = []

    async def script(conn: ServerConn) -> None:
        await conn.wait_eof(STEP)
        received.append(bytes(conn.parser.buffer))

    async with RawServer(script) as srv:
        with pytest.raises(wsio.InvalidArgument):
            wsio.connect(srv.url, proxy=None, **kwargs)
    assert received == []


@pytest.mark.parametrize(
    "proxy",
    [
        "http://[::1",
        "http://[zz]:3128",
        "http://a..b:3128",
        "http://a b:3128",
        "http://h:3128\x00",
        "socks5://\ud800",
        "http://h:0",
    ],
)
@pytest.mark.parametrize("source", ["argument", "environment"])
async def test_bad_proxy_raises_invalid_proxy(
    proxy: str, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if source == "environment":
        if "\x00" in proxy or "\ud800" in proxy:
            proxy = proxy.replace("\x00", "\x01").replace("\ud800", "\x7f")
        monkeypatch.setenv("http_proxy", proxy)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        kwargs: dict[str, Any] = {}
    else:
        kwargs = {"proxy": proxy}
    with pytest.raises(wsio.InvalidProxy) as info:
        await asyncio.wait_for(wsio.connect("ws://server.example/", **kwargs), STEP)
    assert info.value.proxy == proxy
    assert str(info.value).isprintable()
