"""wsio.connect through real proxies (tests/proxies.py) to a wsio echo server: HTTP CONNECT
(RFC 9110 §9.3.6), over plain TCP or TLS, and SOCKS5 (RFC 1928, RFC 1929 credentials);
proxies chosen from the environment the way curl does; failures and timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

import wsio
from proxies import HTTPProxy, SOCKS5Proxy
from wsio import defaults
from wsio.exceptions import (
    InvalidHandshake,
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    InvalidStatus,
    ProxyError,
)

T = 5.0

EchoServerFactory = Callable[..., Awaitable[tuple[Any, int]]]
Start = Callable[..., Awaitable[Any]]


# Fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No proxy variable leaks in from the machine running the tests (any case)."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)
    yield


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """``proxy = await start(HTTPProxy(...))``: enter a proxy (or any async context manager)
    for the rest of the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def enter(manager: Any) -> Any:
            return await stack.enter_async_context(manager)

        yield enter


@pytest.fixture
async def fake_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names ending in ``.wsio.test`` resolve to 127.0.0.1 on this event loop; every name
    looked up (IP addresses aren't) is recorded in the returned list."""
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo
    lookups: list[str] = []

    async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        lookups.append(name)
        if isinstance(name, str) and name.endswith(".wsio.test"):
            host = "127.0.0.1"
        return await real(host, port, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    return lookups


async def roundtrip(uri: str, message: str = "through the proxy", **kwargs: Any) -> Any:
    """Connect, check that a message comes back from the echo server, close; the connection
    is returned for inspection."""
    async with asyncio.timeout(T), wsio.connect(uri, **kwargs) as ws:
        await ws.send(message)
        assert await ws.recv() == message
        await ws.send(b"\x00\xffbinary")
        assert await ws.recv() == b"\x00\xffbinary"
    assert ws.close_code == 1000
    return ws


async def failure(uri: str, **kwargs: Any) -> BaseException:
    """The exception that connecting raises; it must come quickly, not from a timeout."""
    started = time.monotonic()
    with pytest.raises(Exception) as excinfo:
        async with asyncio.timeout(T):
            await wsio.connect(uri, open_timeout=T * 2, **kwargs)
    assert time.monotonic() - started < T
    return excinfo.value


def unused_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago: nothing listens there."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def serve_on(start: Start, host: str, **kwargs: Any) -> int:
    """A wsio echo server on ``host``; its port."""

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    server = await start(wsio.serve(echo, host, 0, **kwargs))
    port: int = server.sockets[0].getsockname()[1]
    return port


# HTTP CONNECT -----------------------------------------------------------------------------------


async def test_http_proxy_ws(echo_server: EchoServerFactory, start: Start) -> None:
    _, port = await echo_server()
    proxy = await start(HTTPProxy())
    await roundtrip(f"ws://127.0.0.1:{port}/path", proxy=proxy.url)
    assert proxy.targets == [f"127.0.0.1:{port}"]
    request = proxy.requests[0]
    assert request.method == "CONNECT"
    assert request.version == "HTTP/1.1"
    # RFC 9110 §7.2: Host is the authority of the target, i.e. the CONNECT target.
    assert request.header("Host") == f"127.0.0.1:{port}"
    assert request.header("Proxy-Authorization") is None
    assert request.header("User-Agent") == defaults.USER_AGENT
    # No WebSocket handshake header goes to the proxy: it only sees CONNECT.
    assert request.header("Upgrade") is None
    assert request.header("Sec-WebSocket-Key") is None


async def test_http_proxy_wss_with_sni(
    echo_server: EchoServerFactory,
    start: Start,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    sni_names: list[str | None],
) -> None:
    """TLS to the server runs inside the tunnel, verified against the server's name."""
    _, port = await echo_server(ssl=server_ssl_context)
    proxy = await start(HTTPProxy())
    await roundtrip(f"wss://localhost:{port}/", proxy=proxy.url, ssl=client_ssl_context)
    assert proxy.targets == [f"localhost:{port}"]
    assert sni_names == ["localhost"]


async def test_http_proxy_wss_verifies_server_certificate(
    echo_server: EchoServerFactory, start: Start, server_ssl_context: ssl.SSLContext
) -> None:
    """Going through a proxy doesn't weaken certificate checks: the default context doesn't
    trust the test CA."""
    _, port = await echo_server(ssl=server_ssl_context)
    proxy = await start(HTTPProxy())
    exc = await failure(f"wss://localhost:{port}/", proxy=proxy.url)
    assert isinstance(exc, ssl.SSLCertVerificationError)


async def test_https_proxy_ws(
    echo_server: EchoServerFactory,
    start: Start,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    sni_names: list[str | None],
) -> None:
    _, port = await echo_server()
    proxy = await start(HTTPProxy(ssl=server_ssl_context))
    assert proxy.url.startswith("https://")
    await roundtrip(f"ws://127.0.0.1:{port}/", proxy=proxy.url, proxy_ssl=client_ssl_context)
    assert proxy.targets == [f"127.0.0.1:{port}"]
    # The proxy was reached by address: no SNI for an IP address (RFC 6066 §3).
    assert sni_names == [None]


async def test_https_proxy_wss_tls_in_tls(
    echo_server: EchoServerFactory,
    start: Start,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    sni_names: list[str | None],
) -> None:
    _, port = await echo_server(ssl=server_ssl_context)
    proxy = await start(HTTPProxy(ssl=server_ssl_context))
    ws = await roundtrip(
        f"wss://localhost:{port}/",
        proxy=proxy.url,
        proxy_ssl=client_ssl_context,
        ssl=client_ssl_context,
    )
    assert ws.request.headers["Host"] == f"localhost:{port}"
    assert proxy.targets == [f"localhost:{port}"]
    # The outer TLS session to the proxy, then the inner one to the server.
    assert sni_names == [None, "localhost"]


async def test_https_proxy_certificate_is_verified(
    echo_server: EchoServerFactory, start: Start, server_ssl_context: ssl.SSLContext
) -> None:
    """Without ``proxy_ssl``, the default context doesn't trust the test CA."""
    _, port = await echo_server()
    proxy = await start(HTTPProxy(ssl=server_ssl_context))
    exc = await failure(f"ws://127.0.0.1:{port}/", proxy=proxy.url)
    assert isinstance(exc, ssl.SSLCertVerificationError)
    assert proxy.requests == []


async def test_http_proxy_ipv6_destination(start: Start) -> None:
    port = await serve_on(start, "::1")
    proxy = await start(HTTPProxy())
    await roundtrip(f"ws://[::1]:{port}/", proxy=proxy.url)
    assert proxy.targets == [f"[::1]:{port}"]
    assert proxy.requests[0].header("Host") == f"[::1]:{port}"


async def test_http_proxy_name_resolved_by_proxy(
    echo_server: EchoServerFactory, start: Start, fake_dns: list[str]
) -> None:
    _, port = await echo_server()
    proxy = await start(HTTPProxy(resolve={"echo.wsio.test": "127.0.0.1"}))
    await roundtrip(f"ws://echo.wsio.test:{port}/", proxy=proxy.url)
    assert proxy.targets == [f"echo.wsio.test:{port}"]
    assert fake_dns == []


async def test_http_proxy_200_without_reason(echo_server: EchoServerFactory, start: Start) -> None:
    _, port = await echo_server()
    proxy = await start(HTTPProxy(reason=""))
    await roundtrip(f"ws://127.0.0.1:{port}/", proxy=proxy.url)


async def test_http_proxy_gets_no_server_credentials(
    echo_server: EchoServerFactory, start: Start
) -> None:
    """Credentials meant for the server (URI user info, extra headers) stay inside the
    tunnel; the user agent follows ``user_agent_header``."""
    _, port = await echo_server()
    proxy = await start(HTTPProxy())
    await roundtrip(
        f"ws://alice:secret@127.0.0.1:{port}/",
        proxy=proxy.url,
        additional_headers={"Authorization": "Bearer token", "Cookie": "a=b"},
        user_agent_header=None,
    )
    headers = {name.lower() for name, _ in proxy.requests[0].headers}
    assert headers == {"host"}
    await roundtrip(f"ws://127.0.0.1:{port}/", proxy=proxy.url, user_agent_header="agent/1")
    assert proxy.requests[1].header("User-Agent") == "agent/1"


@pytest.mark.parametrize(
    ("auth", "userinfo"),
    [
        (("user", "pass"), "user:pass"),
        (("us@er", "p:ss w/ö"), "us%40er:p%3Ass%20w%2F%C3%B6"),
        (("user", ""), "user:"),
    ],
)
async def test_http_proxy_credentials(
    echo_server: EchoServerFactory, start: Start, auth: tuple[str, str], userinfo: str
) -> None:
    _, port = await echo_server()
    proxy = await start(HTTPProxy(auth=auth))
    user, _, password = userinfo.partition(":")
    await roundtrip(f"ws://127.0.0.1:{port}/", proxy=proxy.url_with(user, password))
    assert len(proxy.requests) == 1
    assert proxy.requests[0].header("Proxy-Authorization") is not None


@pytest.mark.parametrize("userinfo", [None, "user:wrong", "wrong:pass"])
async def test_http_proxy_wrong_credentials(
    echo_server: EchoServerFactory, start: Start, userinfo: str | None
) -> None:
    _, port = await echo_server()
    proxy = await start(HTTPProxy(auth=("user", "pass")))
    uri = proxy.url if userinfo is None else proxy.url_with(*userinfo.split(":"))
    exc = await failure(f"ws://127.0.0.1:{port}/", proxy=uri)
    assert isinstance(exc, InvalidProxyStatus)
    assert exc.reply is None
    assert exc.response is not None
    assert exc.response.status_code == 407
    assert exc.response.reason_phrase == "Proxy Authentication Required"
    assert exc.response.headers["Proxy-Authenticate"] == 'Basic realm="test proxy"'
    assert exc.response.body == b"proxy credentials required\n"
    assert "407" in str(exc)


async def test_https_proxy_credentials(
    echo_server: EchoServerFactory,
    start: Start,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    _, port = await echo_server(ssl=server_ssl_context)
    proxy = await start(HTTPProxy(ssl=server_ssl_context, auth=("user", "pass")))
    await roundtrip(
        f"wss://localhost:{port}/",
        proxy=proxy.url_with("user", "pass"),
        proxy_ssl=client_ssl_context,
        ssl=client_ssl_context,
    )


async def test_http_proxy_refuses(echo_server: EchoServerFactory, start: Start) -> None:
    _, port = await echo_server()
    proxy = await start(HTTPProxy(refuse=(403, b"not allowed by policy\n")))
    exc = await failure(f"ws://127.0.0.1:{port}/", proxy=proxy.url)
    assert isinstance(exc, InvalidProxyStatus)
    assert isinstance(exc, ProxyError)
    assert isinstance(exc, InvalidHandshake)
    assert not isinstance(exc, wsio.InvalidStatus)
    assert exc.response is not None
    assert exc.response.status_code == 403
    assert exc.response.reason_phrase == "Forbidden"
    assert exc.response.body == b"not allowed by policy\n"
    assert exc.redirects == ()


async def test_http_proxy_unreachable_destination(start: Start) -> None:
    """The proxy can't reach the server (nothing listens there): 502."""
    proxy = await start(HTTPProxy())
    free_port = unused_port()
    exc = await failure(f"ws://127.0.0.1:{free_port}/", proxy=proxy.url)
    assert isinstance(exc, InvalidProxyStatus)
    assert exc.response is not None
    assert exc.response.status_code == 502


async def test_http_proxy_closes_early(echo_server: EchoServerFactory, start: Start) -> None:
    _, port = await echo_server()
    proxy = await start(HTTPProxy(close_early=True))
    exc = await failure(f"ws://127.0.0.1:{port}/", proxy=proxy.url)
    assert isinstance(exc, ProxyError)
    assert len(proxy.requests) == 1


@pytest.mark.parametrize(
    "garbage",
    [
        b"garbage\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"\x05\x00",  # a SOCKS5 answer, then the end of the stream
        b"HTTP/1.1 200 OK\r\n",  # cut before the end of the head
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",  # bare LF
    ],
)
async def test_http_proxy_garbage(
    echo_server: EchoServerFactory, start: Start, garbage: bytes
) -> None:
    _, port = await echo_server()
    proxy = await start(HTTPProxy(garbage=garbage))
    exc = await failure(f"ws://127.0.0.1:{port}/", proxy=proxy.url)
    assert isinstance(exc, InvalidProxyMessage)


@pytest.mark.parametrize(
    "garbage",
    [
        b"garbage\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n",
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
    ],
)
async def test_http_proxy_bad_answer_while_connection_stays_open(
    echo_server: EchoServerFactory, start: Start, garbage: bytes
) -> None:
    """A decisive answer fails the connection at once, without waiting for the proxy to
    close (or for open_timeout)."""
    _, port = await echo_server()
    proxy = await start(HTTPProxy(garbage=garbage, linger=True))
    exc = await failure(f"ws://127.0.0.1:{port}/", proxy=proxy.url)
    assert isinstance(exc, ProxyError)
    await proxy.wait_finished(1)


async def test_https_proxy_garbage(
    echo_server: EchoServerFactory,
    start: Start,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, port = await echo_server()
    proxy = await start(HTTPProxy(ssl=server_ssl_context, garbage=b"HTTP/1.1 200 OK\r\n"))
    exc = await failure(f"ws://127.0.0.1:{port}/", proxy=proxy.url, proxy_ssl=client_ssl_context)
    assert isinstance(exc, ProxyError)
    # The proxy's mistake is the exception's to tell: nothing from asyncio in the logs.
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


async def test_http_proxy_bytes_after_200_before_tls(
    echo_server: EchoServerFactory,
    start: Start,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """Bytes after the 200 come from the server, which can't speak before the ClientHello."""
    _, port = await echo_server(ssl=server_ssl_context)
    proxy = await start(HTTPProxy(after_200=b"\x16\x03\x01junk"))
    exc = await failure(f"wss://localhost:{port}/", proxy=proxy.url, ssl=client_ssl_context)
    assert isinstance(exc, InvalidProxyMessage)


async def test_http_proxy_bytes_after_200_are_the_servers(
    echo_server: EchoServerFactory, start: Start
) -> None:
    """Bytes read together with the proxy's 200 belong to the tunnel: here they are an
    answer that the client must read as the server's, body included."""
    _, port = await echo_server()
    answer = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden"
    proxy = await start(HTTPProxy(after_200=answer))
    exc = await failure(f"ws://127.0.0.1:{port}/", proxy=proxy.url)
    assert isinstance(exc, InvalidStatus)
    assert exc.response.status_code == 403
    assert exc.response.body == b"forbidden"


@pytest.mark.parametrize("kind", ["http", "https", "socks5"])
async def test_open_timeout_covers_silent_proxy(
    echo_server: EchoServerFactory,
    start: Start,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    kind: str,
) -> None:
    _, port = await echo_server()
    if kind == "socks5":
        proxy = await start(SOCKS5Proxy(silent=True))
    else:
        proxy = await start(
            HTTPProxy(silent=True, ssl=server_ssl_context if kind == "https" else None)
        )
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(T):
            await wsio.connect(
                f"ws://127.0.0.1:{port}/",
                proxy=proxy.url,
                proxy_ssl=client_ssl_context,
                open_timeout=0.5,
            )
    assert 0.4 < time.monotonic() - started < 2.5
    # The client gave up on the connection to the proxy: it's closed.
    await proxy.wait_finished(1)
    assert proxy.connections == 1


# SOCKS5 ----------------------------------------------------------------------------------------


async def test_socks5_ipv4_destination(echo_server: EchoServerFactory, start: Start) -> None:
    _, port = await echo_server()
    proxy = await start(SOCKS5Proxy())
    await roundtrip(f"ws://127.0.0.1:{port}/", proxy=proxy.url)
    assert proxy.destinations == [(1, "127.0.0.1", port)]
    request = proxy.requests[0]
    assert request.methods == b"\x00"
    assert request.command == 1
    assert request.messages == [
        b"\x05\x01\x00",
        b"\x05\x01\x00\x01\x7f\x00\x00\x01" + port.to_bytes(2, "big"),
    ]


async def test_socks5_ipv6_destination(start: Start) -> None:
    port = await serve_on(start, "::1")
    proxy = await start(SOCKS5Proxy())
    await roundtrip(f"ws://[::1]:{port}/", proxy=proxy.url)
    assert proxy.destinations == [(4, "::1", port)]


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
async def test_socks5_name_resolved_by_proxy(
    echo_server: EchoServerFactory, start: Start, fake_dns: list[str], scheme: str
) -> None:
    """The name goes to the proxy as a domain name (type 3); wsio never looks it up."""
    _, port = await echo_server()
    proxy = await start(SOCKS5Proxy(scheme=scheme, resolve={"echo.wsio.test": "127.0.0.1"}))
    assert proxy.url.startswith(f"{scheme}://")
    await roundtrip(f"ws://echo.wsio.test:{port}/", proxy=proxy.url)
    assert proxy.destinations == [(3, "echo.wsio.test", port)]
    assert fake_dns == []


async def test_socks5_wss_with_sni(
    echo_server: EchoServerFactory,
    start: Start,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    sni_names: list[str | None],
) -> None:
    _, port = await echo_server(ssl=server_ssl_context)
    proxy = await start(SOCKS5Proxy())
    await roundtrip(f"wss://localhost:{port}/", proxy=proxy.url, ssl=client_ssl_context)
    assert proxy.destinations == [(3, "localhost", port)]
    assert sni_names == ["localhost"]


@pytest.mark.parametrize("bound_type", [1, 3, 4])
async def test_socks5_bound_address_types(
    echo_server: EchoServerFactory, start: Start, bound_type: int
) -> None:
    _, port = await echo_server()
    proxy = await start(SOCKS5Proxy(bound_type=bound_type))
    await roundtrip(f"ws://127.0.0.1:{port}/", proxy=proxy.url)


@pytest.mark.parametrize(
    ("auth", "userinfo"),
    [
        (("user", "pass"), "user:pass"),
        (("us@er", "p:ss w/ö"), "us%40er:p%3Ass%20w%2F%C3%B6"),
    ],
)
async def test_socks5_credentials(
    echo_server: EchoServerFactory,
    start: Start,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    auth: tuple[str, str],
    userinfo: str,
) -> None:
    _, port = await echo_server(ssl=server_ssl_context)
    proxy = await start(SOCKS5Proxy(auth=auth))
    user, _, password = userinfo.partition(":")
    await roundtrip(
        f"wss://localhost:{port}/", proxy=proxy.url_with(user, password), ssl=client_ssl_context
    )
    request = proxy.requests[0]
    assert request.methods == b"\x00\x02"
    assert request.credentials == auth
    name, secret = (part.encode() for part in auth)
    assert request.messages[1] == b"\x01" + bytes([len(name)]) + name + bytes([len(secret)]) + (
        secret
    )


async def test_socks5_wrong_credentials(echo_server: EchoServerFactory, start: Start) -> None:
    _, port = await echo_server()
    proxy = await start(SOCKS5Proxy(auth=("user", "pass")))
    exc = await failure(f"ws://127.0.0.1:{port}/", proxy=proxy.url_with("user", "wrong"))
    assert isinstance(exc, InvalidProxyStatus)
    assert exc.response is None
    assert exc.reply == 1  # the RFC 1929 status the proxy sent
    assert proxy.destinations == []


async def test_socks5_credentials_required(echo_server: EchoServerFactory, start: Start) -> None:
    """No acceptable method (X'FF', RFC 1928 §3): refused, never a hang."""
    _, port = await echo_server()
    proxy = await start(SOCKS5Proxy(auth=("user", "pass")))
    exc = await failure(f"ws://127.0.0.1:{port}/", proxy=proxy.url)
    assert isinstance(exc, InvalidProxyStatus)
    assert proxy.requests[0].methods == b"\x00"


@pytest.mark.parametrize("code", [1, 2, 3, 4, 5, 6, 7, 8])
async def test_socks5_reply_codes(echo_server: EchoServerFactory, start: Start, code: int) -> None:
    _, port = await echo_server()
    proxy = await start(SOCKS5Proxy(reply=code))
    exc = await failure(f"ws://127.0.0.1:{port}/", proxy=proxy.url)
    assert isinstance(exc, InvalidProxyStatus)
    assert exc.reply == code
    assert exc.response is None


async def test_socks5_unreachable_destination(start: Start) -> None:
    proxy = await start(SOCKS5Proxy())
    free_port = unused_port()
    exc = await failure(f"ws://127.0.0.1:{free_port}/", proxy=proxy.url)
    assert isinstance(exc, InvalidProxyStatus)
    assert exc.reply == 5


async def test_socks5_closes_early(echo_server: EchoServerFactory, start: Start) -> None:
    _, port = await echo_server()
    proxy = await start(SOCKS5Proxy(close_early=True))
    exc = await failure(f"ws://127.0.0.1:{port}/", proxy=proxy.url)
    assert isinstance(exc, ProxyError)


@pytest.mark.parametrize(
    "garbage",
    [
        b"HTTP/1.1 400 Bad Request\r\n\r\n",
        b"\x04\x5a",  # a SOCKS4 answer
        b"\x05",  # cut
        b"\x05\x00\x05\x00\x00\x07",  # unknown address type 7
        b"\x05\x00\x05\x00\x00\x01\x7f\x00",  # bound address cut
    ],
)
async def test_socks5_garbage(
    echo_server: EchoServerFactory, start: Start, garbage: bytes
) -> None:
    _, port = await echo_server()
    proxy = await start(SOCKS5Proxy(garbage=garbage))
    exc = await failure(f"ws://127.0.0.1:{port}/", proxy=proxy.url)
    assert isinstance(exc, InvalidProxyMessage)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x04\x5a",  # a SOCKS4 answer
        b"\x05\xff",  # no acceptable method
        # The method reply and a bad CONNECT reply (version 4) in one write.
        b"\x05\x00\x04\x00\x00\x01\x7f\x00\x00\x01\x00\x50",
        # The method reply and a refusal (reply 2) in one write.
        b"\x05\x00\x05\x02\x00\x01\x7f\x00\x00\x01\x00\x50",
    ],
)
async def test_socks5_bad_answer_while_connection_stays_open(
    echo_server: EchoServerFactory, start: Start, garbage: bytes
) -> None:
    """Whatever the proxy sent is examined as it arrives: a decisive answer fails the
    connection at once, even when the proxy keeps the connection open."""
    _, port = await echo_server()
    proxy = await start(SOCKS5Proxy(garbage=garbage, linger=True))
    exc = await failure(f"ws://127.0.0.1:{port}/", proxy=proxy.url)
    assert isinstance(exc, ProxyError)
    await proxy.wait_finished(1)


# Invalid proxy URIs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "proxy",
    [
        "ftp://x",
        "http://",
        "socks4://127.0.0.1:1080",
        "http://127.0.0.1:8080/path",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:port",
    ],
)
def test_invalid_proxy_at_call(proxy: str) -> None:
    """Raised by ``connect(...)`` itself, before anything is awaited."""
    with pytest.raises(InvalidProxy) as excinfo:
        wsio.connect("ws://127.0.0.1:1/", proxy=proxy)
    assert excinfo.value.proxy == proxy
    assert proxy in str(excinfo.value)


async def test_invalid_proxy_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "ftp://proxy.invalid")
    with pytest.raises(InvalidProxy):
        async with asyncio.timeout(T):
            await wsio.connect("ws://127.0.0.1:1/")


def test_proxy_exceptions_exported() -> None:
    """Like every other wsio exception (see the contract), importable from ``wsio``."""
    for name in ("InvalidProxy", "ProxyError", "InvalidProxyMessage", "InvalidProxyStatus"):
        assert name in wsio.__all__
        assert getattr(wsio, name) is getattr(wsio.exceptions, name)


# Proxies from the environment ----------------------------------------------------------------


class Env:
    """Three recording HTTP proxies to point the environment variables at, and a wsio echo
    server reachable over ws and wss."""

    def __init__(self, a: HTTPProxy, b: HTTPProxy, c: HTTPProxy, port: int, tls: int) -> None:
        self.a, self.b, self.c = a, b, c
        self.port = port
        self.tls_port = tls

    def used(self) -> list[str]:
        """Which proxies saw a CONNECT request."""
        return [name for name in "abc" if getattr(self, name).requests]


@pytest.fixture
async def env(
    echo_server: EchoServerFactory, start: Start, server_ssl_context: ssl.SSLContext
) -> Env:
    _, port = await echo_server()
    _, tls_port = await echo_server(ssl=server_ssl_context)
    a, b, c = [await start(HTTPProxy()) for _ in range(3)]
    return Env(a, b, c, port, tls_port)


@pytest.mark.parametrize(
    ("variables", "scheme", "used"),
    [
        ({"http_proxy": "a", "https_proxy": "b", "all_proxy": "c"}, "ws", ["a"]),
        ({"http_proxy": "a", "https_proxy": "b", "all_proxy": "c"}, "wss", ["b"]),
        ({"HTTP_PROXY": "a", "HTTPS_PROXY": "b", "ALL_PROXY": "c"}, "ws", ["a"]),
        ({"HTTP_PROXY": "a", "HTTPS_PROXY": "b", "ALL_PROXY": "c"}, "wss", ["b"]),
        ({"all_proxy": "c"}, "ws", ["c"]),
        ({"all_proxy": "c"}, "wss", ["c"]),
        ({"ALL_PROXY": "c"}, "wss", ["c"]),
        ({"https_proxy": "b", "all_proxy": "c"}, "ws", ["c"]),
        ({"http_proxy": "a", "all_proxy": "c"}, "wss", ["c"]),
        ({"http_proxy": "a"}, "wss", []),  # http_proxy is for ws only
        ({"https_proxy": "b"}, "ws", []),
        ({"http_proxy": "a", "HTTP_PROXY": "b"}, "ws", ["a"]),  # lower-case wins
        ({"HTTPS_PROXY": "a", "https_proxy": "b"}, "wss", ["b"]),
        ({"ALL_PROXY": "a", "all_proxy": "b"}, "ws", ["b"]),
        ({}, "ws", []),
    ],
)
async def test_proxy_from_environment(
    env: Env,
    monkeypatch: pytest.MonkeyPatch,
    client_ssl_context: ssl.SSLContext,
    variables: dict[str, str],
    scheme: str,
    used: list[str],
) -> None:
    for name, proxy in variables.items():
        monkeypatch.setenv(name, getattr(env, proxy).url)
    if scheme == "ws":
        await roundtrip(f"ws://127.0.0.1:{env.port}/")
    else:
        await roundtrip(f"wss://localhost:{env.tls_port}/", ssl=client_ssl_context)
    assert env.used() == used


async def test_socks_proxy_from_environment(
    echo_server: EchoServerFactory, start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, port = await echo_server()
    proxy = await start(SOCKS5Proxy(scheme="socks5h", auth=("user", "pass")))
    monkeypatch.setenv("all_proxy", proxy.url_with("user", "pass"))
    await roundtrip(f"ws://localhost:{port}/")
    assert proxy.destinations == [(3, "localhost", port)]
    assert proxy.requests[0].credentials == ("user", "pass")


async def test_environment_proxy_without_scheme_is_http(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """curl and urllib treat a proxy without ``scheme://`` as an HTTP proxy."""
    monkeypatch.setenv("http_proxy", f"127.0.0.1:{env.a.port}")
    await roundtrip(f"ws://127.0.0.1:{env.port}/")
    assert env.used() == ["a"]


@pytest.mark.parametrize(
    ("host", "no_proxy", "exempt"),
    [
        ("localhost", "localhost", True),
        ("localhost", "LOCALHOST", True),
        ("localhost", "example.com, localhost", True),
        ("localhost", "*", True),
        ("localhost", "local", False),
        ("localhost", "otherhost", False),
        ("echo.wsio.test", "wsio.test", True),  # domain suffix
        ("echo.wsio.test", ".wsio.test", True),
        ("echo.wsio.test", "*.wsio.test", True),
        ("echo.wsio.test", "echo.wsio.test", True),
        ("echo.wsio.test", "o.wsio.test", False),  # not a label boundary
        ("echo.wsio.test", "sub.echo.wsio.test", False),
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.1:{port}", True),
        ("127.0.0.1", "127.0.0.1:{other}", False),
        ("localhost", "localhost:{port}", True),
        ("localhost", "localhost:{other}", False),
        ("127.0.0.1", "127.0.0.0/8", True),
        ("127.0.0.1", "10.0.0.0/8", False),
        ("127.0.0.1", "127.0.0.2", False),
        ("[::1]", "::1", True),
        ("[::1]", "::/127", True),
        ("[::1]", "fe80::/10", False),
        ("127.0.0.1", "", False),
    ],
)
async def test_no_proxy(
    env: Env,
    start: Start,
    monkeypatch: pytest.MonkeyPatch,
    fake_dns: list[str],
    host: str,
    no_proxy: str,
    exempt: bool,
) -> None:
    port = env.port if host != "[::1]" else await serve_on(start, "::1")
    monkeypatch.setenv("http_proxy", env.a.url)
    monkeypatch.setenv("no_proxy", no_proxy.format(port=port, other=port + 1))
    env.a.resolve["echo.wsio.test"] = "127.0.0.1"
    await roundtrip(f"ws://{host}:{port}/")
    assert env.used() == ([] if exempt else ["a"])


async def test_no_proxy_upper_case(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", env.a.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    await roundtrip(f"ws://127.0.0.1:{env.port}/")
    assert env.used() == []


async def test_no_proxy_applies_to_all_proxy_and_wss(
    env: Env, monkeypatch: pytest.MonkeyPatch, client_ssl_context: ssl.SSLContext
) -> None:
    monkeypatch.setenv("all_proxy", env.c.url)
    monkeypatch.setenv("https_proxy", env.b.url)
    monkeypatch.setenv("no_proxy", "localhost")
    await roundtrip(f"wss://localhost:{env.tls_port}/", ssl=client_ssl_context)
    await roundtrip(f"ws://localhost:{env.port}/")
    assert env.used() == []


async def test_proxy_none_ignores_environment(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, env.a.url)
    await roundtrip(f"ws://127.0.0.1:{env.port}/", proxy=None)
    assert env.used() == []


async def test_explicit_proxy_beats_environment(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", env.a.url)
    await roundtrip(f"ws://127.0.0.1:{env.port}/", proxy=env.b.url)
    assert env.used() == ["b"]


async def test_default_proxy_is_from_environment(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", env.a.url)
    await roundtrip(f"ws://127.0.0.1:{env.port}/", proxy=True)
    await roundtrip(f"ws://127.0.0.1:{env.port}/")
    assert len(env.a.requests) == 2


# Redirects through a proxy ---------------------------------------------------------------------


def redirect_to(location: str) -> Callable[[Any, Any], Any]:
    """A ``process_request`` hook answering 302 to ``location``."""

    def process_request(connection: Any, request: Any) -> Any:
        response = connection.respond(302, "moved\n")
        response.headers["Location"] = location
        return response

    return process_request


@pytest.mark.parametrize("kind", ["http", "socks5"])
async def test_redirect_through_proxy(
    echo_server: EchoServerFactory, start: Start, kind: str
) -> None:
    _, final = await echo_server()
    _, first = await echo_server(process_request=redirect_to(f"ws://127.0.0.1:{final}/next"))
    proxy = await start(HTTPProxy() if kind == "http" else SOCKS5Proxy())
    ws = await roundtrip(f"ws://127.0.0.1:{first}/start", proxy=proxy.url)
    assert ws.request.path == "/next"
    assert [(uri, response.status_code) for uri, response in ws.redirects] == [
        (f"ws://127.0.0.1:{first}/start", 302)
    ]
    if kind == "http":
        assert proxy.targets == [f"127.0.0.1:{first}", f"127.0.0.1:{final}"]
    else:
        assert proxy.destinations == [(1, "127.0.0.1", first), (1, "127.0.0.1", final)]


async def test_redirect_wss_through_https_proxy(
    echo_server: EchoServerFactory,
    start: Start,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    _, final = await echo_server(ssl=server_ssl_context)
    _, first = await echo_server(
        ssl=server_ssl_context, process_request=redirect_to(f"wss://localhost:{final}/next")
    )
    proxy = await start(HTTPProxy(ssl=server_ssl_context, auth=("user", "pass")))
    ws = await roundtrip(
        f"wss://localhost:{first}/",
        proxy=proxy.url_with("user", "pass"),
        proxy_ssl=client_ssl_context,
        ssl=client_ssl_context,
    )
    assert len(ws.redirects) == 1
    assert proxy.targets == [f"localhost:{first}", f"localhost:{final}"]
    # The credentials for the proxy go with every CONNECT, whatever the origin.
    assert all(r.header("Proxy-Authorization") for r in proxy.requests)


async def test_redirect_to_exempt_host_goes_direct(
    env: Env, echo_server: EchoServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment is consulted again for each URI of a redirect chain."""
    _, first = await echo_server(process_request=redirect_to(f"ws://localhost:{env.port}/"))
    monkeypatch.setenv("http_proxy", env.a.url)
    monkeypatch.setenv("no_proxy", "localhost")
    ws = await roundtrip(f"ws://127.0.0.1:{first}/")
    assert len(ws.redirects) == 1
    assert env.a.targets == [f"127.0.0.1:{first}"]


async def test_redirect_failure_through_proxy_keeps_history(
    echo_server: EchoServerFactory, start: Start
) -> None:
    """The proxy refuses the second hop: the error tells the redirect that led there."""
    _, first = await echo_server(process_request=redirect_to("ws://blocked.wsio.test:1/"))
    proxy = await start(HTTPProxy(resolve={"blocked.wsio.test": "127.0.0.1"}))
    exc = await failure(f"ws://127.0.0.1:{first}/", proxy=proxy.url)
    assert isinstance(exc, InvalidProxyStatus)
    assert exc.response is not None
    assert exc.response.status_code == 502
    assert [uri for uri, _ in exc.redirects] == [f"ws://127.0.0.1:{first}/"]
