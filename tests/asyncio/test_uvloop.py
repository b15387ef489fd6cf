"""wsio on uvloop: the same client and server, on uvloop's event loop instead of asyncio's.

uvloop's transports don't subclass asyncio's, its clock ticks in milliseconds, and it calls
a BufferedProtocol's methods from C: each of these broke or could break something, so every
path that touches the loop runs here once: plain and TLS, small, fragmented and large
messages, pings, keepalive and both closing handshakes.
"""

from __future__ import annotations

import asyncio
import collections
import os
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvloop

import wsio

LIMIT = 10.0  # seconds per test, for every wait together


def run_on_uvloop(main: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        assert "uvloop" in type(asyncio.get_running_loop()).__module__
        async with asyncio.timeout(LIMIT):
            await main()

    uvloop.run(bounded())


async def echo(ws: wsio.ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


def test_messages_both_ways() -> None:
    large = os.urandom(3 * 2**20 + 5)  # over several reads, through PayloadBuffer

    async def main() -> None:
        async with wsio.serve(echo, "127.0.0.1", 0, max_size=2**22) as server:
            port = server.sockets[0].getsockname()[1]
            async with wsio.connect(f"ws://127.0.0.1:{port}/", max_size=2**22) as ws:
                await ws.send("héllo")
                assert await ws.recv() == "héllo"
                await ws.send(b"\x00\xff" * 40)
                assert await ws.recv() == b"\x00\xff" * 40
                await ws.send(["frag", "ments"])
                assert await ws.recv() == "fragments"
                await ws.send(large)
                assert await ws.recv() == large
                for index in range(200):  # many small messages, several per read
                    await ws.send(str(index))
                for index in range(200):
                    assert await ws.recv() == str(index)
                latency = await ws.ping()
                assert 0 < latency < LIMIT
            assert ws.close_code == 1000

    run_on_uvloop(main)


def test_large_messages_are_read_into_their_payload(
    payload_reads: collections.Counter[str],
) -> None:
    """uvloop holds the buffer that get_buffer() gave until buffer_updated() returns: a
    large frame's payload read straight into the message, uncompressed, comes out intact
    both ways."""
    large = os.urandom(3 * 2**20 + 5)

    async def main() -> None:
        options: dict[str, Any] = {"max_size": 2**22, "compression": None}
        async with wsio.serve(echo, "127.0.0.1", 0, **options) as server:
            port = server.sockets[0].getsockname()[1]
            async with wsio.connect(f"ws://127.0.0.1:{port}/", **options) as ws:
                for message in (large, b"small", large[::-1]):
                    await ws.send(message)
                    assert await ws.recv() == message

    run_on_uvloop(main)
    assert payload_reads["server"] > 0
    assert payload_reads["client"] > 0


TLS_CONNECTIONS = 100


def test_tls(server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext) -> None:
    """Server and client on one uvloop loop, many connections in a row.

    uvloop starts reading right after connection_made. A server that upgraded to TLS itself
    (start_tls) could read the ClientHello first and answer it as a bad HTTP request: about
    one connection in twenty failed with WRONG_VERSION_NUMBER, and every one did with the
    client in the same loop. The loop now runs TLS from the accept on.
    """
    large = os.urandom(2**20)

    async def main() -> None:
        async with wsio.serve(echo, "127.0.0.1", 0, ssl=server_ssl_context) as server:
            uri = f"wss://localhost:{server.sockets[0].getsockname()[1]}/"
            for index in range(TLS_CONNECTIONS):
                async with wsio.connect(uri, ssl=client_ssl_context) as ws:
                    await ws.send(f"over TLS {index}")
                    assert await ws.recv() == f"over TLS {index}"
            async with wsio.connect(uri, ssl=client_ssl_context) as ws:
                await ws.send(large)
                assert await ws.recv() == large

    run_on_uvloop(main)


def test_keepalive_and_server_close() -> None:
    closed: list[Any] = []

    async def handler(ws: wsio.ServerConnection) -> None:
        await asyncio.sleep(0.3)  # a few keepalive pings go by
        await ws.close(1001, "bye")
        closed.append(ws.close_code)

    async def main() -> None:
        async with wsio.serve(handler, "127.0.0.1", 0, ping_interval=0.05) as server:
            port = server.sockets[0].getsockname()[1]
            async with wsio.connect(f"ws://127.0.0.1:{port}/", ping_interval=0.05) as ws:
                with pytest.raises(wsio.ConnectionClosedOK):
                    await ws.recv()
                assert (ws.close_code, ws.close_reason) == (1001, "bye")
                assert ws.latency > 0

    run_on_uvloop(main)
    assert closed == [1001]


def test_invalid_utf8_fails_with_1007() -> None:
    async def main() -> None:
        async with wsio.serve(echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101 ")
            writer.write(b"\x81\x82\x00\x00\x00\x00\xc3\x28")  # masked, invalid UTF-8
            opcode, length = await reader.readexactly(2)
            payload = await reader.readexactly(length)
            assert opcode == 0x88 and int.from_bytes(payload[:2], "big") == 1007
            writer.close()

    run_on_uvloop(main)
