"""wsio.sync.connect through real proxies (tests/proxies.py, run on an event loop in a
thread of their own) to a threads server; above all wss:// through an https:// proxy,
where the server's TLS runs inside the proxy's (wsio.sync.tls), with real TLS both ways."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from threads_servers import Servers, echo, port_of

import wsio
import wsio.sync
from proxies import HTTPProxy
from wsio.sync.tls import TLSInTLS

T = 5.0


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable leaks in from the machine running the tests (any case)."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


class LoopThread:
    """An event loop running in a thread of its own, for the asyncio proxies."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._stack = contextlib.AsyncExitStack()

    def enter(self, manager: Any) -> Any:
        """Enter an async context manager on the loop, for the rest of the test."""
        entering = self._stack.enter_async_context(manager)
        return asyncio.run_coroutine_threadsafe(entering, self.loop).result(T)

    def call(self, function: Callable[[], object]) -> None:
        """Run ``function`` on the loop."""

        async def run() -> None:
            function()

        asyncio.run_coroutine_threadsafe(run(), self.loop).result(T)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stack.aclose(), self.loop).result(T * 3)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(T)
        self.loop.close()


@pytest.fixture
def proxies() -> Iterator[LoopThread]:
    """``proxy = proxies.proxies.enter(HTTPProxy(...))`` runs a proxy until the test ends."""
    loop_thread = LoopThread()
    try:
        yield loop_thread
    finally:
        loop_thread.stop()


def tls_in_tls(
    proxy: HTTPProxy, port: int, context: ssl.SSLContext, **options: Any
) -> wsio.sync.ClientConnection:
    """Connect to the server on ``port`` through the https:// ``proxy``, trusting the
    test CA for both TLS sessions unless ``options`` say otherwise."""
    return wsio.sync.connect(
        f"wss://localhost:{port}/",
        **{"proxy": proxy.url, "proxy_ssl": context, "ssl": context, "open_timeout": T, **options},
    )


def test_https_proxy_wss_tls_in_tls(
    servers: Servers,
    proxies: LoopThread,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    sni_names: list[str | None],
) -> None:
    port = port_of(servers.start(echo, ssl=server_ssl_context))
    proxy = proxies.enter(HTTPProxy(ssl=server_ssl_context))
    assert proxy.url.startswith("https://")
    with tls_in_tls(proxy, port, client_ssl_context) as ws:
        assert isinstance(ws.socket, TLSInTLS)
        ws.send("through the proxy")
        assert ws.recv(timeout=T) == "through the proxy"
        ws.send(b"\x00\xffbinary")
        assert ws.recv(timeout=T) == b"\x00\xffbinary"
        # Many TLS records at once, in each direction.
        large = os.urandom(600_000)
        ws.send(large)
        assert ws.recv(timeout=T) == large
        assert ws.ping(timeout=T) >= 0
        # The inner session is the server's: its certificate names it.
        names = [value for _, value in ws.socket.getpeercert()["subjectAltName"]]
        assert "localhost" in names
    assert ws.close_code == 1000
    assert ws.request is not None and ws.request.headers["Host"] == f"localhost:{port}"
    assert proxy.targets == [f"localhost:{port}"]
    # The outer TLS session to the proxy (reached by address: no SNI), then the inner one.
    assert sni_names == [None, "localhost"]


def test_tls_in_tls_with_keepalive_and_bursts(
    servers: Servers,
    proxies: LoopThread,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """With keepalive on, the reader thread waits with poll() between its timers: every
    message of a burst must come through without waiting for the next ping."""
    count = 300

    def burst(ws: wsio.sync.ServerConnection) -> None:
        size = int(ws.recv())
        for index in range(count):
            ws.send(f"{index:04d}" + "x" * size)
        ws.recv()

    port = port_of(servers.start(burst, ssl=server_ssl_context))
    proxy = proxies.enter(HTTPProxy(ssl=server_ssl_context))
    for size in (10, 5000):
        with tls_in_tls(
            proxy,
            port,
            client_ssl_context,
            # A ping due after the test's timeouts: messages can't wait for it.
            ping_interval=T * 4,
            ping_timeout=T,
        ) as ws:
            ws.send(str(size))
            received = [ws.recv(timeout=T) for _ in range(count)]
            assert received == [f"{index:04d}" + "x" * size for index in range(count)]
            ws.send("done")
        assert ws.close_code == 1000


def test_tls_in_tls_verifies_the_server_certificate(
    servers: Servers,
    proxies: LoopThread,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """Trusting the proxy doesn't make the server trusted: the default context doesn't
    trust the test CA."""
    port = port_of(servers.start(echo, ssl=server_ssl_context))
    proxy = proxies.enter(HTTPProxy(ssl=server_ssl_context))
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_in_tls(proxy, port, client_ssl_context, ssl=ssl.create_default_context())


def test_tls_in_tls_ends_with_the_proxy(
    servers: Servers,
    proxies: LoopThread,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """The proxy drops the tunnel: the connection ends abnormally (1006), at once."""
    port = port_of(servers.start(echo, ssl=server_ssl_context))
    proxy = proxies.enter(HTTPProxy(ssl=server_ssl_context))
    ws = tls_in_tls(proxy, port, client_ssl_context)
    ws.send("hello")
    assert ws.recv(timeout=T) == "hello"

    def drop_tunnels() -> None:
        for writer in list(proxy._writers):
            writer.transport.abort()

    proxies.call(drop_tunnels)
    with pytest.raises(wsio.ConnectionClosedError):
        ws.recv(timeout=T)
    assert ws.close_code == 1006
    ws.close()


def test_tls_in_tls_server_closes(
    servers: Servers,
    proxies: LoopThread,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    def bye(ws: wsio.sync.ServerConnection) -> None:
        ws.close(4000, "bye")

    port = port_of(servers.start(bye, ssl=server_ssl_context))
    proxy = proxies.enter(HTTPProxy(ssl=server_ssl_context))
    with (
        tls_in_tls(proxy, port, client_ssl_context) as ws,
        pytest.raises(wsio.ConnectionClosedError),
    ):
        ws.recv(timeout=T)
    assert (ws.close_code, ws.close_reason) == (4000, "bye")


def test_https_proxy_ws_and_http_proxy_wss(
    servers: Servers,
    proxies: LoopThread,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """TLS on one side only: no TLS in TLS."""
    plain = port_of(servers.start(echo))
    secure = port_of(servers.start(echo, ssl=server_ssl_context))
    https_proxy = proxies.enter(HTTPProxy(ssl=server_ssl_context))
    http_proxy = proxies.enter(HTTPProxy())
    for uri, options in [
        (f"ws://127.0.0.1:{plain}/", dict(proxy=https_proxy.url, proxy_ssl=client_ssl_context)),
        (f"wss://localhost:{secure}/", dict(proxy=http_proxy.url, ssl=client_ssl_context)),
    ]:
        with wsio.sync.connect(uri, open_timeout=T, **options) as ws:  # type: ignore[arg-type]
            assert not isinstance(ws.socket, TLSInTLS)
            ws.send("one side")
            assert ws.recv(timeout=T) == "one side"
