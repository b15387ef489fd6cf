"""wsio on uvloop: the same client and server, on uvloop's event loop instead of asyncio's.

uvloop's transports don't subclass asyncio's, its clock ticks in milliseconds, and it calls
a BufferedProtocol's methods from C: each of these broke or could break something, so every
path that touches the loop runs here once: plain and TLS, small, fragmented and large
messages, pings, keepalive and both closing handshakes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
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


# Run in a child process: inside pytest, with pytest-asyncio and pytest-timeout loaded, a
# uvloop TLS client fails its handshake (WRONG_VERSION_NUMBER) even against a server in
# another thread; the same code passes with either plugin disabled, and as a script.
TLS_CHILD = """
import asyncio, os, ssl, threading, trustme, uvloop, wsio

ca = trustme.CA()
server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ca.issue_cert("127.0.0.1").configure_cert(server_context)
client_context = ssl.create_default_context()
ca.configure_trust(client_context)
large = os.urandom(2**20)
ports, listening, stop = [], threading.Event(), threading.Event()

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def serve():
    async with wsio.serve(echo, "127.0.0.1", 0, ssl=server_context) as server:
        ports.append(server.sockets[0].getsockname()[1])
        listening.set()
        for _ in range(1000):
            if stop.is_set():
                break
            await asyncio.sleep(0.01)

async def main():
    async with asyncio.timeout(10):
        uri = f"wss://127.0.0.1:{ports[0]}/"
        async with wsio.connect(uri, ssl=client_context) as ws:
            await ws.send("over TLS")
            assert await ws.recv() == "over TLS"
            await ws.send(large)
            assert await ws.recv() == large
    print("OK")

# Server and client each on its own loop: uvloop 0.23 fails a start_tls server whose
# client runs in the same loop (UNEXPECTED_MESSAGE), with a plain asyncio.Protocol too.
thread = threading.Thread(target=uvloop.run, args=(serve(),))
thread.start()
try:
    assert listening.wait(10)
    uvloop.run(main())
finally:
    stop.set()
    thread.join(10)
"""


def test_tls() -> None:
    child = subprocess.run(
        [sys.executable, "-c", TLS_CHILD], capture_output=True, text=True, timeout=2 * LIMIT
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip() == "OK"


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
