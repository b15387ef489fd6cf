"""Messages sent straight to the socket: over asyncio's plain TCP transport, a message sent
while the transport's buffer is empty goes to the socket from the connection, as the
transport's write() would send it; the rest of a partial send, and everything sent while
the buffer holds bytes, goes through the transport, in order."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct
from typing import Any

import pytest

import wsio
from conftest import WsPairFactory
from rawpeer import OP_BINARY, FrameParser
from wsio.asyncio.listener import Listener, ListenerConnection

T = 5.0  # upper bound of every wait that should succeed


class CountedWrites:
    """Counts the calls of a transport's write() (an instance attribute over the method)."""

    def __init__(self, transport: Any) -> None:
        self.calls = 0
        write = transport.write

        def counted(data: Any) -> None:
            self.calls += 1
            write(data)

        transport.write = counted


async def served_connection(handler_ready: asyncio.Future[Any], port: int) -> tuple[Any, Any]:
    """A client connected to the server on ``port``, and the server's side of it."""
    client = await wsio.connect(f"ws://127.0.0.1:{port}/")
    server_ws = await asyncio.wait_for(handler_ready, T)
    return client, server_ws


async def test_messages_go_to_the_socket_not_through_the_transport() -> None:
    ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    writes: list[CountedWrites] = []

    async def handler(ws: Any) -> None:
        writes.append(CountedWrites(ws.transport))
        ready.set_result(ws)
        async for message in ws:
            await ws.send(message)

    async with wsio.serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with asyncio.timeout(T):
            client, server_ws = await served_connection(ready, port)
            client_writes = CountedWrites(client.transport)
            sock = server_ws.transport.get_extra_info("socket")
            assert server_ws._socket_fd == sock.fileno() >= 0
            messages: list[str | bytes] = [b"%d" % n for n in range(50)] + ["text é", b""]
            for message in messages:
                await client.send(message)
                assert await client.recv() == message
            # Each message went out as one send() of the connection's own, on both sides.
            assert writes[0].calls == 0
            assert client_writes.calls == 0
            await client.close()
    # Not the closing handshake's frames: they are written by the transport.
    assert writes[0].calls == client_writes.calls == 1


async def test_what_the_socket_does_not_take_goes_through_the_transport_in_order() -> None:
    # Each under the size that the core hands back as one frame to write at once.
    messages = [bytes([n]) * 60_000 for n in range(100)]
    buffered: list[int] = []

    class Sender(Listener):
        def on_message(self, ws: ListenerConnection, message: str | bytes) -> None:
            # From the read callback: the client can't read until this returns.
            for message in messages:
                ws.send(message)
                buffered.append(ws.write_buffer_size)

    async with wsio.serve_listener(Sender, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        async with asyncio.timeout(T):
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            async with wsio.connect(f"ws://127.0.0.1:{port}/", sock=sock) as client:
                await client.send("go")
                for message in messages:
                    assert await client.recv() == message
    # The first messages went to the socket; once it took no more, the rest of a message
    # and all that followed waited in the transport.
    assert buffered[0] == 0
    assert buffered[-1] > 0


def read_available(sock: socket.socket, parser: FrameParser) -> int:
    """Feed ``parser`` what ``sock`` holds, without waiting; return how much that was."""
    total = 0
    for _ in range(10_000):
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            break
        if not data:
            break
        parser.feed(data)
        total += len(data)
    return total


async def test_nothing_overtakes_what_waits_in_the_transport(ws_pair: WsPairFactory) -> None:
    pair = await ws_pair("server", compression=None, peer_receive_buffer=4096)
    ws, peer = pair.ws, pair.peer
    # The test reads the peer's socket itself, from here on.
    peer.transport.pause_reading()
    fileno = peer.writer.get_extra_info("socket").fileno()
    with socket.fromfd(fileno, socket.AF_INET, socket.SOCK_STREAM) as peer_sock:
        peer_sock.setblocking(False)
        await _overtake(ws, peer_sock)


async def _overtake(ws: Any, peer_sock: socket.socket) -> None:
    parser = FrameParser()
    chunk = bytes(range(256)) * 200
    sent = 0
    for _ in range(1000):
        ws._send_message(chunk)
        sent += 1
        if ws.transport.get_write_buffer_size():
            break
    assert ws.transport.get_write_buffer_size() > 0
    # Drained without a turn of the loop: the socket takes bytes again while the transport
    # still holds some, which must go first.
    assert read_available(peer_sock, parser) > 0
    ws._send_message(b"last")
    async with asyncio.timeout(T):
        while len(parser.buffer) < (sent * (len(chunk) + 4) + 6):
            read_available(peer_sock, parser)
            await asyncio.sleep(0.001)
    frames = parser.frames()
    assert [frame.opcode for frame in frames] == [OP_BINARY] * (sent + 1)
    assert [frame.payload for frame in frames] == [chunk] * sent + [b"last"]


async def test_send_after_the_peer_reset_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    done = asyncio.Event()

    async def handler(ws: Any) -> None:
        ready.set_result(ws)
        await done.wait()

    caplog.set_level(logging.DEBUG)
    async with wsio.serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with asyncio.timeout(T):
            client, server_ws = await served_connection(ready, port)
            # A reset rather than a FIN: close() with a zero linger.
            client_sock = client.transport.get_extra_info("socket")
            client_sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.transport.abort()
            closed = False
            for _ in range(1000):
                try:
                    await server_ws.send(b"into a reset connection")
                except wsio.ConnectionClosed:
                    closed = True
                    break
                await asyncio.sleep(0.001)
            assert closed
            await server_ws.wait_closed()
            done.set()
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == []


async def test_nothing_is_sent_once_the_transport_is_closing() -> None:
    ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    done = asyncio.Event()

    async def handler(ws: Any) -> None:
        ready.set_result(ws)
        await done.wait()

    async with wsio.serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with asyncio.timeout(T):
            client, server_ws = await served_connection(ready, port)
            server_ws.transport.abort()
            # The transport closes the socket at the loop's next turn; until then the
            # connection is still open, and a message sent goes nowhere.
            assert server_ws.protocol.state is wsio.State.OPEN
            server_ws._send_message(b"late")
            with pytest.raises(wsio.ConnectionClosed):
                await client.recv()
            done.set()


async def test_tls_messages_go_through_the_transport(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def handler(ws: Any) -> None:
        ready.set_result(ws)
        async for message in ws:
            await ws.send(message)

    async with wsio.serve(handler, "127.0.0.1", 0, ssl=server_ssl_context) as server:
        port = server.sockets[0].getsockname()[1]
        async with asyncio.timeout(T):
            async with wsio.connect(f"wss://localhost:{port}/", ssl=client_ssl_context) as client:
                server_ws = await asyncio.wait_for(ready, T)
                assert server_ws._socket_fd == client._socket_fd == -1
                await client.send("over TLS")
                assert await client.recv() == "over TLS"
