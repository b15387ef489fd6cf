"""Shared fixtures: TLS certificates from a throw-away CA, a wsio echo server factory, a
factory of connected (wsio connection, raw peer) pairs in either role, and a private
redis-server; the ``layer`` fixture (see tests/layers.py): asyncio, or both I/O layers in
turn for tests marked ``both_layers``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import ssl
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
import trustme

# Make ``import rawpeer`` work from any test directory.
sys.path.insert(0, str(Path(__file__).parent))

from layers import LAYERS, PARAMS, THREADS_MARK, Layer, Served
from rawpeer import RawClient, RawConnection, RawServer, ServerConn
from redisserver import RedisServer, redis_server_path

EchoServerFactory = Callable[..., Awaitable[tuple[Any, int]]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_layers: run the test on the asyncio and the threads layer (`layer`)"
    )
    config.addinivalue_line(
        "markers", f"{THREADS_MARK}: the threads run of a `both_layers` test (set by conftest)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Here rather than as a parametrize mark, so that the layer leads the test ids:
    # test_x[threads-1.1.1]. A test of a marked module that takes no layer runs once.
    marked = metafunc.definition.get_closest_marker("both_layers") is not None
    if marked and "layer" in metafunc.fixturenames:
        metafunc.parametrize("layer", PARAMS, indirect=True)


@pytest.fixture
def layer(request: pytest.FixtureRequest) -> Layer:
    """The I/O layer under test: both in turn for tests marked ``both_layers``, asyncio
    for the others."""
    return LAYERS[getattr(request, "param", "asyncio")]


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """A throw-away certificate authority."""
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_server_cert(tls_ca: trustme.CA) -> trustme.LeafCert:
    """A server certificate for ``localhost`` and ``127.0.0.1``, signed by :func:`tls_ca`."""
    return tls_ca.issue_cert("localhost", "127.0.0.1")


@pytest.fixture
def server_ssl_context(tls_server_cert: trustme.LeafCert) -> ssl.SSLContext:
    """A server-side context presenting :func:`tls_server_cert` (pass as ``ssl=``)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_server_cert.configure_cert(ctx)
    return ctx


@pytest.fixture
def client_ssl_context(tls_ca: trustme.CA) -> ssl.SSLContext:
    """A client-side context trusting :func:`tls_ca` (with hostname checks on)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    tls_ca.configure_trust(ctx)
    return ctx


@pytest.fixture
def sni_names(server_ssl_context: ssl.SSLContext) -> list[str | None]:
    """Server names that TLS clients of ``server_ssl_context`` sent (SNI), in order."""
    names: list[str | None] = []

    def record(sslobj: Any, name: str | None, context: ssl.SSLContext) -> None:
        names.append(name)

    server_ssl_context.sni_callback = record
    return names


@pytest.fixture
def payload_reads(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """Reads that went straight into a large frame's payload
    (:meth:`Protocol.receive_payload`), counted by side: ``"server"``, ``"client"``."""
    from wsio.protocol.connection import Protocol

    counts: collections.Counter[str] = collections.Counter()
    receive_payload = Protocol.receive_payload

    def counting(self: Protocol, nbytes: int) -> None:
        counts[self.side.name.lower()] += 1
        receive_payload(self, nbytes)

    monkeypatch.setattr(Protocol, "receive_payload", counting)
    return counts


async def echo_handler(ws: Any) -> None:
    """Send every message received back, unchanged."""
    async for message in ws:
        await ws.send(message)


@pytest.fixture
async def echo_server() -> AsyncIterator[EchoServerFactory]:
    """A factory starting ``wsio.serve(handler, "127.0.0.1", 0, **kwargs)``.

    ``server, port = await echo_server(**kwargs)``; ``handler=`` replaces the echo handler.
    Every server started is closed when the test ends.
    """
    import wsio

    async with contextlib.AsyncExitStack() as stack:

        async def start(handler: Any = echo_handler, **kwargs: Any) -> tuple[Any, int]:
            server = await stack.enter_async_context(wsio.serve(handler, "127.0.0.1", 0, **kwargs))
            port: int = server.sockets[0].getsockname()[1]
            return server, port

        yield start


Role = Literal["server", "client"]


@dataclass
class WsPair:
    """An open WebSocket connection between wsio (``ws``) and a raw peer (``peer``).

    ``role`` is wsio's role: ``"server"`` (wsio.serve, the peer is a :class:`RawClient` whose
    frames are masked by default) or ``"client"`` (wsio.connect, the peer is a
    :class:`ServerConn` whose frames are unmasked by default). With role ``"server"`` the
    wsio handler just waits, so the test drives ``ws`` directly; it returns at teardown.
    """

    role: Role
    ws: Any
    peer: RawConnection
    server: Served | None = None

    @property
    def wrong_mask(self) -> bytes | None:
        """The masking the peer must NOT use (RFC 6455 §5.1): unmasked from a client..."""
        return None if self.role == "server" else b"\x01\x02\x03\x04"

    @property
    def wsio_masks(self) -> bool:
        """Whether wsio's frames must be masked (it is the client)."""
        return self.role == "client"


WsPairFactory = Callable[..., Awaitable[WsPair]]


@pytest.fixture
async def ws_pair(
    layer: Layer, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> AsyncIterator[WsPairFactory]:
    """A factory of open :class:`WsPair`: ``pair = await ws_pair(role, tls=False, **kwargs)``.

    ``peer_receive_buffer`` sets the raw peer's SO_RCVBUF before it connects (see
    :meth:`RawClient.open`); ``kwargs`` go to the ``layer``'s ``serve`` or ``connect``.
    Everything is torn down at the end of the test: the raw peer is aborted, the server or
    client closed.
    """
    async with contextlib.AsyncExitStack() as stack:

        async def make(
            role: Role, *, tls: bool = False, peer_receive_buffer: int | None = None, **kwargs: Any
        ) -> WsPair:
            loop = asyncio.get_running_loop()
            release = asyncio.Event()
            if role == "server":
                got: asyncio.Future[Any] = loop.create_future()

                async def handler(ws: Any) -> None:
                    if not got.done():
                        got.set_result(ws)
                    await release.wait()

                server = await stack.enter_async_context(
                    layer.serve(handler, ssl=server_ssl_context if tls else None, **kwargs)
                )
                client = await RawClient.open(
                    "127.0.0.1",
                    server.port,
                    ssl=client_ssl_context if tls else None,
                    server_hostname="localhost",
                    receive_buffer=peer_receive_buffer,
                )
                stack.callback(client.abort)
                response = await client.handshake()
                assert response.status_code == 101, response.raw
                ws = await asyncio.wait_for(got, 5)
                stack.callback(release.set)
                return WsPair(role, ws, client, server)

            conn_got: asyncio.Future[ServerConn] = loop.create_future()

            async def script(conn: ServerConn) -> None:
                await conn.handshake()
                conn_got.set_result(conn)
                await release.wait()

            srv = await stack.enter_async_context(
                RawServer(
                    script,
                    ssl=server_ssl_context if tls else None,
                    receive_buffer=peer_receive_buffer,
                )
            )
            connecting = layer.connect(
                f"{srv.url}/", ssl=client_ssl_context if tls else None, **kwargs
            )
            ws = await asyncio.wait_for(connecting, 5)
            stack.push_async_callback(_close_quietly, ws)
            peer = await asyncio.wait_for(conn_got, 5)
            stack.callback(release.set)
            return WsPair(role, ws, peer)

        yield make


async def _close_quietly(ws: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(), 5)


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    """A started :class:`RedisServer` of the test's own (loopback, free port, temporary data
    directory), stopped and its directory removed at teardown; skipped, loudly, if
    ``redis-server`` is not installed."""
    if redis_server_path() is None:
        pytest.skip(
            "redis-server is not installed: it is not on PATH, so the tests needing a real "
            "Redis can't run; run `make test` as root or `apt-get install redis-server`"
        )
    async with RedisServer() as server:
        yield server


@pytest.fixture
def socket_path() -> Iterator[str]:
    # In a short directory of its own: a Unix socket path holds at most 107 bytes, which
    # pytest's tmp_path can exceed.
    with tempfile.TemporaryDirectory(prefix="wsio-") as directory:
        yield os.path.join(directory, "ws.sock")
