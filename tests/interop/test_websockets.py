"""Interop between wsio, on both I/O layers, and the `websockets` package (its asyncio API),
both directions."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from interop_common import (
    BINARIES,
    LARGE,
    MAX_SIZE,
    SAMPLES,
    STEP,
    TEXTS,
    closing_4000,
    echo,
    fragmenting_echo,
    handler_finished,
    large_binary,
    large_text,
    pinging,
    returning,
    wsio_server,
)
from interop_peers import TLSFiles
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK

import wsio
from layers import Layer

# Both I/O layers (tests/layers.py): wsio's server and client are the test's layer's.
pytestmark = pytest.mark.both_layers

# --- wsio client <-> websockets server ---------------------------------------------------------


@dataclass
class PeerLog:
    """What the websockets server's handler saw."""

    paths: list[str] = field(default_factory=list)
    messages: list[str | bytes] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None
    latencies: list[float] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)


async def peer_behaviour(ws: ServerConnection, log: PeerLog) -> None:
    """By request path: /echo, /fragment, /close?code=&reason=, /close_after?n=, /ping."""
    assert ws.request is not None
    url = urllib.parse.urlsplit(ws.request.path)
    query = dict(urllib.parse.parse_qsl(url.query))
    log.paths.append(url.path)
    if url.path == "/close":
        await ws.close(int(query["code"]), query.get("reason", ""))
        return
    if url.path == "/ping":
        pong_waiter = await ws.ping(b"websockets ping")
        log.latencies.append(await asyncio.wait_for(pong_waiter, STEP))
        await ws.send("pong received")
    limit = int(query.get("n", "0"))
    async for message in ws:
        log.messages.append(message)
        if url.path == "/fragment":
            third = max(1, len(message) // 3)
            await ws.send([message[:third], message[third : 2 * third], message[2 * third :]])
        else:
            await ws.send(message)
        if url.path == "/close_after" and len(log.messages) >= limit:
            await ws.close(1000)
            return


@contextlib.asynccontextmanager
async def websockets_server(
    *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, PeerLog, Server]]:
    log = PeerLog()

    async def handler(ws: ServerConnection) -> None:
        try:
            await peer_behaviour(ws, log)
        except ConnectionClosed:
            pass
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ws.wait_closed(), STEP)
            log.close_code, log.close_reason = ws.close_code, ws.close_reason
            log.done.set()

    async with ws_serve(handler, "127.0.0.1", 0, ssl=tls, max_size=MAX_SIZE) as server:
        port = server.sockets[0].getsockname()[1]
        scheme = "ws" if tls is None else "wss"
        yield f"{scheme}://127.0.0.1:{port}", log, server


async def peer_finished(log: PeerLog) -> None:
    await asyncio.wait_for(log.done.wait(), STEP)


async def test_client_text_and_binary_round_trips(layer: Layer) -> None:
    messages: list[str | bytes] = [*TEXTS, *BINARIES]
    async with websockets_server() as (base, log, _), asyncio.timeout(STEP):
        async with layer.connect(f"{base}/echo") as ws:
            for message in messages:
                await ws.send(message)
                echoed = await ws.recv()
                assert type(echoed) is type(message)
                assert echoed == message
        await peer_finished(log)
    assert log.messages == messages
    assert (log.close_code, log.close_reason) == (1000, "")
    assert ws.close_code == 1000


async def test_client_empty_messages(layer: Layer) -> None:
    async with websockets_server() as (base, log, _), asyncio.timeout(STEP):
        async with layer.connect(f"{base}/echo") as ws:
            await ws.send("")
            assert await ws.recv() == ""
            await ws.send(b"")
            assert await ws.recv() == b""
        await peer_finished(log)
    assert log.messages == ["", b""]


async def test_client_sends_fragmented(layer: Layer) -> None:
    text_parts = ["frag1 ", "", "frag2 é€🎉 ", "end"]
    binary_parts = [b"\x00\x01", b"\x02", b"", b"\x03\xff"]
    async with websockets_server() as (base, log, _), asyncio.timeout(STEP):
        async with layer.connect(f"{base}/echo") as ws:
            await ws.send(text_parts)
            assert await ws.recv() == "".join(text_parts)
            await ws.send(binary_parts)
            assert await ws.recv() == b"".join(binary_parts)
        await peer_finished(log)
    # websockets reassembled each fragmented message into one message.
    assert log.messages == ["".join(text_parts), b"".join(binary_parts)]


async def test_client_receives_fragmented(layer: Layer) -> None:
    messages: list[str | bytes] = [*TEXTS, *BINARIES, "€" * 10]
    async with websockets_server() as (base, log, _), asyncio.timeout(STEP):
        async with layer.connect(f"{base}/fragment") as ws:
            for message in messages:
                await ws.send(message)
                assert await ws.recv() == message
        await peer_finished(log)
    assert log.messages == messages


async def test_client_large_messages(layer: Layer) -> None:
    text = large_text()
    data = large_binary()
    async with websockets_server() as (base, log, _), asyncio.timeout(3 * STEP):
        async with layer.connect(f"{base}/echo", max_size=MAX_SIZE) as ws:
            await ws.send(data)
            assert await ws.recv() == data
            await ws.send(text)
            assert await ws.recv() == text
            parts = [data[i : i + 65536] for i in range(0, LARGE, 65536)]
            await ws.send(parts)
            assert await ws.recv() == data
        await peer_finished(log)
    assert log.messages == [data, text, data]


async def test_client_ping(layer: Layer) -> None:
    async with websockets_server() as (base, log, _), asyncio.timeout(STEP):
        async with layer.connect(f"{base}/echo") as ws:
            latency = await ws.ping(b"probe")
            assert isinstance(latency, float)
            assert 0 <= latency < STEP
            await ws.send("after ping")
            assert await ws.recv() == "after ping"
        await peer_finished(log)


async def test_client_answers_server_ping(layer: Layer) -> None:
    async with websockets_server() as (base, log, _), asyncio.timeout(STEP):
        async with layer.connect(f"{base}/ping") as ws:
            assert await ws.recv() == "pong received"
        await peer_finished(log)
    assert len(log.latencies) == 1


async def test_client_close_custom_code_and_reason(layer: Layer) -> None:
    reason = "custom reason ✓ 🎉"
    async with websockets_server() as (base, log, _), asyncio.timeout(STEP):
        ws = await layer.connect(f"{base}/echo")
        await ws.send("hi")
        assert await ws.recv() == "hi"
        await ws.close(code=4000, reason=reason)
        await ws.wait_closed()
        await peer_finished(log)
    assert (log.close_code, log.close_reason) == (4000, reason)
    assert (ws.close_code, ws.close_reason) == (4000, reason)
    with pytest.raises(wsio.ConnectionClosed):
        await ws.recv()


async def test_server_close_custom_code_and_reason(layer: Layer) -> None:
    reason = "server says bye ✓"
    query = urllib.parse.urlencode({"code": "4000", "reason": reason})
    async with websockets_server() as (base, log, _), asyncio.timeout(STEP):
        async with layer.connect(f"{base}/close?{query}") as ws:
            with pytest.raises(wsio.ConnectionClosedError) as caught:
                await ws.recv()
            await ws.wait_closed()
        await peer_finished(log)
    assert (caught.value.code, caught.value.reason) == (4000, reason)
    assert (ws.close_code, ws.close_reason) == (4000, reason)
    assert (log.close_code, log.close_reason) == (4000, reason)


async def test_server_close_normal_ends_iteration(layer: Layer) -> None:
    received: list[str | bytes] = []
    async with websockets_server() as (base, log, _), asyncio.timeout(STEP):
        async with layer.connect(f"{base}/close_after?n=2") as ws:
            await ws.send("one")
            await ws.send(b"two")
            async for message in ws:  # ends quietly on the server's 1000
                received.append(message)
                assert len(received) <= 2
        await peer_finished(log)
    assert received == ["one", b"two"]
    assert ws.close_code == 1000


async def test_server_shutdown_sends_1001(layer: Layer) -> None:
    async with websockets_server() as (base, log, server), asyncio.timeout(STEP):
        async with layer.connect(f"{base}/echo") as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            server.close()
            with pytest.raises(wsio.ConnectionClosedOK) as caught:
                await ws.recv()
        await server.wait_closed()
        await peer_finished(log)
    assert caught.value.code == 1001
    assert ws.close_code == 1001
    assert log.close_code == 1001


async def test_client_wss(layer: Layer, tls_files: TLSFiles) -> None:
    async with websockets_server(tls=tls_files.server_context) as (base, log, _):
        assert base.startswith("wss://")
        async with (
            asyncio.timeout(STEP),
            layer.connect(f"{base}/echo", ssl=tls_files.client_context, max_size=MAX_SIZE) as ws,
        ):
            for message in [*SAMPLES, large_binary()]:
                await ws.send(message)
                assert await ws.recv() == message
            await ws.close(4000, "tls bye")
        await peer_finished(log)
    assert (log.close_code, log.close_reason) == (4000, "tls bye")
    assert ws.close_code == 4000


# --- websockets client <-> wsio server ---------------------------------------------------------


async def test_server_text_and_binary_round_trips(layer: Layer) -> None:
    messages: list[str | bytes] = [*TEXTS, "", *BINARIES, b""]
    async with wsio_server(layer, echo) as (url, log), asyncio.timeout(STEP):
        async with ws_connect(url) as client:
            for message in messages:
                await client.send(message)
                echoed = await client.recv()
                assert type(echoed) is type(message)
                assert echoed == message
        await handler_finished(log)
    assert log.messages == messages
    assert client.close_code == 1000
    assert (log.close_code, log.close_reason) == (1000, "")
    assert log.error is None


async def test_server_receives_fragmented(layer: Layer) -> None:
    text_parts = ["frag1 ", "", "frag2 é€🎉 ", "end"]
    binary_parts = [b"\x00\x01", b"", b"\x02\xff"]

    async def async_parts() -> AsyncIterator[str]:
        for part in ["async ", "iter", "able ✓"]:
            await asyncio.sleep(0)
            yield part

    async with wsio_server(layer, echo) as (url, log), asyncio.timeout(STEP):
        async with ws_connect(url) as client:
            await client.send(text_parts)
            assert await client.recv() == "".join(text_parts)
            await client.send(binary_parts)
            assert await client.recv() == b"".join(binary_parts)
            await client.send(async_parts())
            assert await client.recv() == "async iterable ✓"
        await handler_finished(log)
    assert log.messages == ["".join(text_parts), b"".join(binary_parts), "async iterable ✓"]


async def test_server_sends_fragmented(layer: Layer) -> None:
    messages: list[str | bytes] = [*TEXTS, *BINARIES, "€" * 10]
    async with wsio_server(layer, fragmenting_echo) as (url, log), asyncio.timeout(STEP):
        async with ws_connect(url) as client:
            for message in messages:
                await client.send(message)
                assert await client.recv() == message
        await handler_finished(log)
    assert log.messages == messages


async def test_server_large_messages(layer: Layer) -> None:
    text = large_text()
    data = large_binary()
    async with (
        wsio_server(layer, echo, max_size=MAX_SIZE) as (url, log),
        asyncio.timeout(3 * STEP),
    ):
        async with ws_connect(url, max_size=MAX_SIZE) as client:
            await client.send(data)
            assert await client.recv() == data
            await client.send(text)
            assert await client.recv() == text
            await client.send([data[i : i + 65536] for i in range(0, LARGE, 65536)])
            assert await client.recv() == data
        await handler_finished(log)
    assert log.messages == [data, text, data]


async def test_server_answers_client_ping(layer: Layer) -> None:
    async with wsio_server(layer, echo) as (url, log), asyncio.timeout(STEP):
        async with ws_connect(url) as client:
            pong_waiter = await client.ping(b"websockets ping")
            latency = await pong_waiter
            assert 0 <= latency < STEP
            await client.send("still open")
            assert await client.recv() == "still open"
        await handler_finished(log)


async def test_server_ping(layer: Layer) -> None:
    async with wsio_server(layer, pinging) as (url, log), asyncio.timeout(STEP):
        async with ws_connect(url) as client:
            await client.send("go")
            assert await client.recv() == "pong received"
        await handler_finished(log)
    assert len(log.latencies) == 1
    assert isinstance(log.latencies[0], float)
    assert 0 <= log.latencies[0] < STEP


async def test_client_closes_wsio_server_with_custom_code(layer: Layer) -> None:
    reason = "websockets says bye ✓"
    async with wsio_server(layer, echo) as (url, log), asyncio.timeout(STEP):
        client = await ws_connect(url)
        await client.send("hi")
        assert await client.recv() == "hi"
        await client.close(4000, reason)
        await handler_finished(log)
    assert isinstance(log.error, wsio.ConnectionClosedError)
    assert (log.error.code, log.error.reason) == (4000, reason)
    assert (log.close_code, log.close_reason) == (4000, reason)
    # RFC 6455 5.5.1: the reply typically echoes the code; echoing the reason is optional.
    assert client.close_code == 4000
    assert client.close_reason in ("", reason)


async def test_wsio_server_closes_with_custom_code(layer: Layer) -> None:
    async with wsio_server(layer, closing_4000) as (url, log), asyncio.timeout(STEP):
        async with ws_connect(url) as client:
            await client.send("hi")
            with pytest.raises(ConnectionClosedError) as caught:
                await client.recv()
        await handler_finished(log)
    assert caught.value.rcvd is not None
    assert (caught.value.rcvd.code, caught.value.rcvd.reason) == (4000, "wsio says bye ✓")
    assert (log.close_code, log.close_reason) == (4000, "wsio says bye ✓")


async def test_handler_return_closes_1000(layer: Layer) -> None:
    async with (
        wsio_server(layer, returning, wait_closed=False) as (url, log),
        asyncio.timeout(STEP),
    ):
        async with ws_connect(url) as client:
            await client.send("hi")
            with pytest.raises(ConnectionClosedOK) as caught:
                await client.recv()
        await handler_finished(log)
        await log.connection.wait_closed()
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 1000
    assert log.connection.close_code == 1000


async def test_wsio_server_shutdown_sends_1001(layer: Layer) -> None:
    async with asyncio.timeout(STEP):
        async with wsio_server(layer, echo) as (url, log):
            client = await ws_connect(url)
            await client.send("ready")
            assert await client.recv() == "ready"
        # Leaving the serve() block shut the server down.
        with pytest.raises(ConnectionClosedOK) as caught:
            await client.recv()
        await handler_finished(log)
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 1001
    assert client.close_code == 1001
    assert log.close_code == 1001


async def test_server_wss(layer: Layer, tls_files: TLSFiles) -> None:
    kwargs: dict[str, Any] = {"ssl": tls_files.server_context, "max_size": MAX_SIZE}
    async with (
        wsio_server(layer, echo, scheme="wss", **kwargs) as (url, log),
        asyncio.timeout(STEP),
    ):
        async with ws_connect(url, ssl=tls_files.client_context, max_size=MAX_SIZE) as client:
            for message in [*SAMPLES, large_binary()]:
                await client.send(message)
                assert await client.recv() == message
            await client.close(4000, "tls bye")
        await handler_finished(log)
    assert (log.close_code, log.close_reason) == (4000, "tls bye")
