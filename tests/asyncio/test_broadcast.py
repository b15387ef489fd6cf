"""wsio.broadcast over real sockets: frames built once, slow consumers bounded, fragmented
messages respected, clients' frames masked each."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

import wsio
from broadcasting import LIMIT, ROUNDS, SlowConsumerRun, number_of, numbered
from rawpeer import OP_BINARY, OP_CLOSE, OP_CONT, OP_TEXT, RawClient, RawServer, ServerConn

STEP = 5.0

Hub = tuple[Any, int, set[Any]]


@contextlib.asynccontextmanager
async def server_with_connections(**kwargs: Any) -> AsyncIterator[Hub]:
    """A wsio server whose handlers wait; ``connections`` holds the open ones."""
    connections: set[Any] = set()

    async def handler(ws: Any) -> None:
        connections.add(ws)
        try:
            await ws.wait_closed()
        finally:
            connections.discard(ws)

    async with wsio.serve(handler, "127.0.0.1", 0, **kwargs) as server:
        yield server, server.sockets[0].getsockname()[1], connections


async def until(predicate: Callable[[], bool], timeout: float = STEP) -> None:
    """Wait, bounded, until ``predicate()`` holds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def connect_all(
    count: int, opener: Callable[[], Awaitable[Any]], connections: set[Any]
) -> list[Any]:
    clients = [await opener() for _ in range(count)]
    await until(lambda: len(connections) == count)
    return clients


async def test_plain_frame_is_built_once_for_every_connection() -> None:
    async with server_with_connections(compression=None) as (_, port, connections):
        clients = await connect_all(
            20, lambda: wsio.connect(f"ws://127.0.0.1:{port}/", compression=None), connections
        )
        try:
            result = wsio.broadcast(connections, "hello everyone")
            assert result == wsio.BroadcastResult(delivered=20, encodings=1)
            result = wsio.broadcast(connections, b"\x00\xff" * 1000)
            assert result == wsio.BroadcastResult(delivered=20, encodings=1)
            for client in clients:
                assert await asyncio.wait_for(client.recv(), STEP) == "hello everyone"
                assert await asyncio.wait_for(client.recv(), STEP) == b"\x00\xff" * 1000
        finally:
            for client in clients:
                await client.close()


async def test_large_frame_is_shared_without_copies() -> None:
    # From 128 KiB, a server writes the header then the payload as it is: every
    # connection gets the same payload object.
    message = bytes(range(256)) * 1024
    async with server_with_connections(compression=None) as (_, port, connections):
        clients = await connect_all(
            3, lambda: wsio.connect(f"ws://127.0.0.1:{port}/", compression=None), connections
        )
        try:
            result = wsio.broadcast(connections, message)
            assert result.delivered == 3 and result.encodings == 1
            for client in clients:
                assert await asyncio.wait_for(client.recv(), STEP) == message
        finally:
            for client in clients:
                await client.close()


async def test_compression_with_context_takeover_encodes_per_connection() -> None:
    text = "compressible " * 100
    async with server_with_connections() as (_, port, connections):
        clients = await connect_all(
            5, lambda: wsio.connect(f"ws://127.0.0.1:{port}/"), connections
        )
        try:
            # Each server side compresses with its own history: one frame each.
            assert wsio.broadcast(connections, text).encodings == 5
            # Under the threshold, messages go uncompressed: one frame for all.
            assert wsio.broadcast(connections, "short").encodings == 1
            # compress=False: uncompressed whatever the size, shared.
            assert wsio.broadcast(connections, text, compress=False).encodings == 1
            assert wsio.broadcast(connections, text).encodings == 5
            for client in clients:
                for expected in (text, "short", text, text):
                    assert await asyncio.wait_for(client.recv(), STEP) == expected
        finally:
            for client in clients:
                await client.close()


async def test_server_no_context_takeover_shares_one_compressed_frame() -> None:
    text = "compressible " * 100
    async with server_with_connections(server_no_context_takeover=True) as (
        _,
        port,
        connections,
    ):
        wsio_clients = await connect_all(
            4, lambda: wsio.connect(f"ws://127.0.0.1:{port}/"), connections
        )
        # A websockets client that asks for a smaller window gets a frame of its own.
        small_window = await websockets.connect(
            f"ws://127.0.0.1:{port}/",
            extensions=[ClientPerMessageDeflateFactory(server_max_window_bits=10)],
            compression=None,
        )
        await until(lambda: len(connections) == 5)
        try:
            assert (
                "server_no_context_takeover"
                in small_window.response.headers["Sec-WebSocket-Extensions"]
            )
            for _ in range(3):
                result = wsio.broadcast(connections, text)
                assert result == wsio.BroadcastResult(delivered=5, encodings=2)
            for client in [*wsio_clients, small_window]:
                for _ in range(3):
                    assert await asyncio.wait_for(client.recv(), STEP) == text
        finally:
            await small_window.close()
            for client in wsio_clients:
                await client.close()


async def test_compressed_frame_on_the_wire_is_one_fresh_deflate_stream() -> None:
    # What a raw peer receives is a compressed frame (RSV1) that inflates on its own.
    text = "repeat " * 200
    async with server_with_connections(server_no_context_takeover=True) as (
        _,
        port,
        connections,
    ):
        peers = []
        for _ in range(2):
            peer = await RawClient.open("127.0.0.1", port)
            response = await peer.handshake(
                headers={"Sec-WebSocket-Extensions": "permessage-deflate"}
            )
            assert response.status_code == 101
            peers.append(peer)
        await until(lambda: len(connections) == 2)
        try:
            for _ in range(2):
                assert wsio.broadcast(connections, text).encodings == 1
            for peer in peers:
                for _ in range(2):
                    frame = await peer.recv_frame(STEP)
                    assert frame is not None and frame.opcode == OP_TEXT and frame.rsv1
                    inflated = zlib.decompressobj(-15).decompress(
                        frame.payload + b"\x00\x00\xff\xff"
                    )
                    assert inflated.decode() == text
        finally:
            for peer in peers:
                peer.abort()


async def small_buffered_peer(port: int) -> RawClient:
    """A raw client with a small receive buffer that will never read: a slow consumer."""
    peer = await RawClient.open("127.0.0.1", port, receive_buffer=4096)
    response = await peer.handshake()
    assert response.status_code == 101
    return peer


def server_side_of(connections: set[Any], peer: RawClient) -> Any:
    """The server's connection to ``peer``."""
    port = peer.transport.get_extra_info("sockname")[1]
    (found,) = [c for c in connections if c.remote_address[1] == port]
    return found


@pytest.mark.parametrize("policy", ["skip", "close"])
async def test_slow_consumer_is_bounded_under_each_policy(policy: str) -> None:
    async with server_with_connections(
        compression=None, broadcast_limit=LIMIT, slow_consumer=policy, close_timeout=1
    ) as (_, port, connections):
        slow = await small_buffered_peer(port)
        fast = await wsio.connect(f"ws://127.0.0.1:{port}/", compression=None)
        await until(lambda: len(connections) == 2)
        slow_side = server_side_of(connections, slow)
        # A small kernel buffer on the way: the backlog shows in wsio's write buffer.
        slow_side.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
        )
        run = SlowConsumerRun()
        try:
            for i in range(ROUNDS):
                result = wsio.broadcast(list(connections), numbered(i))
                run.add(result, slow_side.transport.get_write_buffer_size())
                # The fast client keeps up: it reads every message.
                assert number_of(await asyncio.wait_for(fast.recv(), STEP)) == i
            run.check(policy, slow_side)
            if policy == "close":
                # close_timeout bounds what it keeps afterwards.
                await asyncio.wait_for(slow_side.wait_closed(), STEP)
        finally:
            slow.abort()
            await fast.close()


async def test_slow_consumer_reads_the_close_frame_after_its_backlog() -> None:
    limit = 65536
    async with server_with_connections(
        compression=None, broadcast_limit=limit, slow_consumer="close"
    ) as (_, port, connections):
        slow = await small_buffered_peer(port)
        await until(lambda: len(connections) == 1)
        server_side_of(connections, slow).transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
        )
        sent = 0
        try:
            for _ in range(100):
                result = wsio.broadcast(connections, bytes(16384))
                sent += result.delivered
                if result.closed:
                    break
                await asyncio.sleep(0)
            else:
                raise AssertionError("the slow consumer was never closed")
            frames = await slow.recv_frames_until_close(timeout=STEP)
            data = [f for f in frames if f.opcode == OP_BINARY]
            assert len(data) == sent
            assert frames[-1].opcode == OP_CLOSE
            assert frames[-1].close_code == 1013
            assert frames[-1].close_reason == b"slow consumer"
        finally:
            slow.abort()


async def test_per_call_policy_overrides_the_server() -> None:
    async with server_with_connections(compression=None, slow_consumer="close") as (
        _,
        port,
        connections,
    ):
        slow = await small_buffered_peer(port)
        await until(lambda: len(connections) == 1)
        try:
            skipped = 0
            for _ in range(200):
                result = wsio.broadcast(connections, bytes(65536), limit=0, slow_consumer="skip")
                skipped += result.skipped
                assert result.closed == 0
                if skipped:
                    break
                await asyncio.sleep(0)
            assert skipped
            assert all(c.state is wsio.State.OPEN for c in connections)
        finally:
            slow.abort()


async def test_connection_sending_a_fragmented_message_gets_it_after_the_last_fragment() -> None:
    release = asyncio.Event()
    started = asyncio.Event()
    connections: set[Any] = set()

    async def fragments() -> AsyncIterator[bytes]:
        yield b"first "
        # The first frame goes once the second fragment is known.
        yield b"second "
        started.set()
        await release.wait()
        yield b"last"

    async def handler(ws: Any) -> None:
        connections.add(ws)
        await ws.send(fragments())
        await ws.wait_closed()

    async with wsio.serve(handler, "127.0.0.1", 0, compression=None) as server:
        peer = await RawClient.open("127.0.0.1", server.sockets[0].getsockname()[1])
        try:
            assert (await peer.handshake()).status_code == 101
            await asyncio.wait_for(started.wait(), STEP)
            (ws,) = connections
            result = wsio.broadcast(connections, "news")
            assert result.delivered == 1
            # Waiting in the core, counted as unsent.
            assert ws.protocol.deferred_size == 4 + 14  # with the largest header
            frame = await peer.recv_frame(STEP)
            assert frame is not None and frame.opcode == OP_BINARY and not frame.fin
            with pytest.raises(TimeoutError):
                await peer.recv_frame(0.2)
            release.set()
            frame = await peer.recv_frame(STEP)
            assert frame is not None and frame.opcode == OP_CONT and not frame.fin
            frame = await peer.recv_frame(STEP)
            assert frame is not None and frame.opcode == OP_CONT and frame.fin
            assert frame.payload == b"last"
            frame = await peer.recv_frame(STEP)
            assert frame is not None and frame.opcode == OP_TEXT and frame.payload == b"news"
            assert ws.protocol.deferred_size == 0
        finally:
            release.set()
            peer.abort()


async def test_connections_not_open_are_left_out() -> None:
    async with server_with_connections(compression=None) as (_, port, connections):
        clients = await connect_all(
            3, lambda: wsio.connect(f"ws://127.0.0.1:{port}/", compression=None), connections
        )
        everyone = list(connections)
        await clients[0].close()
        await until(lambda: len(connections) == 2)
        try:
            result = wsio.broadcast(everyone, "still here?")
            assert result == wsio.BroadcastResult(delivered=2, encodings=1)
            for client in clients[1:]:
                assert await asyncio.wait_for(client.recv(), STEP) == "still here?"
        finally:
            for client in clients[1:]:
                await client.close()


async def test_client_connections_mask_each_frame() -> None:
    received: list[bytes] = []

    async def script(conn: ServerConn) -> None:
        await conn.handshake()
        frame = await conn.recv_frame(STEP)
        assert frame is not None and frame.masked
        received.append(frame.payload)
        await conn.send_close(1000)
        await conn.recv_frame(STEP)

    async with RawServer(script) as first, RawServer(script) as second:
        clients = [await wsio.connect(f"{srv.url}/", compression=None) for srv in (first, second)]
        result = wsio.broadcast(clients, "to both servers")
        assert result == wsio.BroadcastResult(delivered=2, encodings=2)
        for client in clients:
            await asyncio.wait_for(client.wait_closed(), STEP)
    assert received == [b"to both servers"] * 2


async def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="unsupported type"):
        wsio.broadcast([], 42)  # type: ignore[arg-type]
    with pytest.raises(wsio.InvalidArgument, match="slow_consumer"):
        wsio.broadcast([], "x", slow_consumer="drop")
    with pytest.raises(wsio.InvalidArgument, match="broadcast_limit"):
        wsio.broadcast([], "x", limit=-1)
    with pytest.raises(wsio.InvalidArgument):
        wsio.broadcast([], "\ud800")
    with pytest.raises(wsio.InvalidArgument, match="slow_consumer"):
        wsio.serve(lambda ws: None, "127.0.0.1", 0, slow_consumer="kick")
    with pytest.raises(wsio.InvalidArgument, match="broadcast_limit"):
        wsio.serve(lambda ws: None, "127.0.0.1", 0, broadcast_limit=-5)
