"""wsio.sync.broadcast over real sockets: frames built once, the caller never held up by
a peer that doesn't read, slow consumers bounded under each policy, fragmented messages
respected, clients' frames masked each."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from threads_servers import Servers, port_of

import wsio
import wsio.sync
from broadcasting import LIMIT, ROUNDS, SlowConsumerRun, number_of, numbered
from rawpeer import OP_BINARY, OP_CLOSE, OP_TEXT, FrameParser, build_request
from wsio.sync.broadcasting import _outlet

T = 5.0


def bounded_broadcast(
    connections: Iterable[wsio.sync.Connection], message: Any, **options: Any
) -> wsio.BroadcastResult:
    """``wsio.sync.broadcast`` in a thread, failing unless it returns within ``T``: a
    broadcast that waited for a peer would hang the test otherwise."""
    results: list[wsio.BroadcastResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(wsio.sync.broadcast(connections, message, **options))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(T)
    assert not thread.is_alive(), f"still running after {T} s"
    if errors:
        raise errors[0]
    return results[0]


def until(predicate: Callable[[], bool], timeout: float = T) -> None:
    """Wait, bounded, until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout} s"
        time.sleep(0.005)


class Room:
    """A threads server whose handlers wait until their connection closes;
    :attr:`connections` holds the open ones."""

    def __init__(self, servers: Servers, **options: Any) -> None:
        self.connections: set[wsio.sync.ServerConnection] = set()
        self._lock = threading.Lock()
        self.server = servers.start(self._handler, **options)
        self.port = port_of(self.server)

    def _handler(self, ws: wsio.sync.ServerConnection) -> None:
        with self._lock:
            self.connections.add(ws)
        try:
            with contextlib.suppress(wsio.ConnectionClosed):
                for _ in ws:
                    pass
        finally:
            with self._lock:
                self.connections.discard(ws)

    def wait_for(self, count: int) -> list[wsio.sync.ServerConnection]:
        until(lambda: len(self.connections) == count)
        with self._lock:
            return list(self.connections)

    def side_of(self, sock: socket.socket | ssl.SSLSocket) -> wsio.sync.ServerConnection:
        """The server's connection to the peer on ``sock``."""
        port = sock.getsockname()[1]
        (found,) = [c for c in self.wait_for(len(self.connections)) if c.remote_address[1] == port]
        return found


@contextlib.contextmanager
def clients(port: int, count: int, **options: Any) -> Iterator[list[wsio.sync.ClientConnection]]:
    opened = [
        wsio.sync.connect(f"ws://127.0.0.1:{port}/", open_timeout=T, **options)
        for _ in range(count)
    ]
    try:
        yield opened
    finally:
        for ws in opened:
            ws.close()


@contextlib.contextmanager
def slow_peer(port: int, context: ssl.SSLContext | None = None) -> Iterator[Any]:
    """A raw client that completes the handshake, then reads nothing until told to: a
    small receive buffer, so that the server's writes back up soon."""
    sock: Any = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(T)
    sock.connect(("127.0.0.1", port))
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname="localhost")
    try:
        sock.sendall(build_request(host=f"127.0.0.1:{port}"))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)
            assert chunk
            head += chunk
        assert head.startswith(b"HTTP/1.1 101")
        yield sock
    finally:
        sock.close()


def read_frames_until_close(sock: Any) -> list[Any]:
    """Read frames from a raw peer until a close frame, within ``T`` per read."""
    parser = FrameParser()
    frames: list[Any] = []
    deadline = time.monotonic() + T * 4
    while not frames or frames[-1].opcode != OP_CLOSE:
        assert time.monotonic() < deadline
        data = sock.recv(65536)
        assert data, "the connection ended before its close frame"
        parser.feed(data)
        frames.extend(parser.frames())
    return frames


def unsent(connection: wsio.sync.Connection) -> int:
    """What broadcast counts as a connection's unsent bytes."""
    protocol = connection.protocol
    return protocol.size_to_send + protocol.deferred_size + _outlet(connection).in_flight


def test_plain_frame_is_built_once_for_every_connection(servers: Servers) -> None:
    room = Room(servers, compression=None)
    with clients(room.port, 10, compression=None) as opened:
        connections = room.wait_for(10)
        result = bounded_broadcast(connections, "to all")
        assert (result.delivered, result.skipped, result.closed) == (10, 0, 0)
        assert result.encodings == 1
        assert [ws.recv(timeout=T) for ws in opened] == ["to all"] * 10
        result = wsio.sync.broadcast(connections, b"\x00\x01" * 100_000)
        assert [ws.recv(timeout=T) for ws in opened] == [b"\x00\x01" * 100_000] * 10


def test_compression_with_context_takeover_encodes_per_connection(servers: Servers) -> None:
    room = Room(servers)
    with clients(room.port, 3) as opened:
        result = wsio.sync.broadcast(room.wait_for(3), "compressible " * 100)
        assert (result.delivered, result.encodings) == (3, 3)
        assert [ws.recv(timeout=T) for ws in opened] == ["compressible " * 100] * 3


def test_server_no_context_takeover_shares_one_compressed_frame(servers: Servers) -> None:
    room = Room(servers, server_no_context_takeover=True)
    with clients(room.port, 3) as opened:
        for _ in range(2):
            result = wsio.sync.broadcast(room.wait_for(3), "compressible " * 100)
            assert (result.delivered, result.encodings) == (3, 1)
            assert [ws.recv(timeout=T) for ws in opened] == ["compressible " * 100] * 3


def test_client_connections_mask_each_frame(servers: Servers) -> None:
    received: list[str | bytes] = []

    def collect(ws: wsio.sync.ServerConnection) -> None:
        received.append(ws.recv())

    port = port_of(servers.start(collect, compression=None))
    with clients(port, 4, compression=None) as opened:
        result = wsio.sync.broadcast(opened, "from clients")
        assert (result.delivered, result.encodings) == (4, 4)
        until(lambda: len(received) == 4)
    assert received == ["from clients"] * 4


@pytest.mark.parametrize("secure", [False, True], ids=["tcp", "tls"])
@pytest.mark.parametrize("policy", ["skip", "close"])
def test_slow_consumer_never_holds_up_the_others(
    servers: Servers,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    policy: str,
    secure: bool,
) -> None:
    tls: dict[str, Any] = {"ssl": server_ssl_context} if secure else {}
    room = Room(
        servers,
        compression=None,
        broadcast_limit=LIMIT,
        slow_consumer=policy,
        close_timeout=1,
        **tls,
    )
    scheme, host = ("wss", "localhost") if secure else ("ws", "127.0.0.1")
    fast_options: dict[str, Any] = {"ssl": client_ssl_context} if secure else {}
    with (
        slow_peer(room.port, client_ssl_context if secure else None) as slow,
        wsio.sync.connect(
            f"{scheme}://{host}:{room.port}/", compression=None, open_timeout=T, **fast_options
        ) as fast,
    ):
        room.wait_for(2)
        slow_side = room.side_of(slow)
        # A small kernel buffer on the way: the backlog shows in wsio's counts.
        sock = slow_side.socket
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        run = SlowConsumerRun()
        for index in range(ROUNDS):
            result = bounded_broadcast(list(room.connections), numbered(index))
            run.add(result, unsent(slow_side))
            # The fast client keeps up: it reads every message.
            assert number_of(fast.recv(timeout=T)) == index
        run.check(policy, slow_side)
        if policy == "close":
            # close_timeout bounds what it keeps afterwards.
            assert slow_side._closed.wait(T)


def test_slow_consumer_reads_the_close_frame_after_its_backlog(servers: Servers) -> None:
    room = Room(servers, compression=None, broadcast_limit=65536, slow_consumer="close")
    with slow_peer(room.port) as slow:
        (slow_side,) = room.wait_for(1)
        slow_side.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sent = 0
        for _ in range(100):
            result = bounded_broadcast([slow_side], bytes(16384))
            sent += result.delivered
            if result.closed:
                break
        else:
            raise AssertionError("the slow consumer was never closed")
        frames = read_frames_until_close(slow)
    data = [frame for frame in frames if frame.opcode == OP_BINARY]
    assert len(data) == sent
    assert frames[-1].close_code == 1013
    assert frames[-1].close_reason == b"slow consumer"


def test_per_call_policy_overrides_the_server(servers: Servers) -> None:
    room = Room(servers, compression=None, slow_consumer="close")
    with slow_peer(room.port):
        (slow_side,) = room.wait_for(1)
        skipped = 0
        for _ in range(200):
            result = bounded_broadcast([slow_side], bytes(65536), limit=0, slow_consumer="skip")
            skipped += result.skipped
            assert result.closed == 0
            if skipped:
                break
        assert skipped
        assert slow_side.state is wsio.State.OPEN


def test_connection_sending_a_fragmented_message_gets_it_after_the_last_fragment(
    servers: Servers,
) -> None:
    started = threading.Event()
    release = threading.Event()
    connections: list[wsio.sync.ServerConnection] = []

    def fragments() -> Iterator[str]:
        yield "one "
        yield "two "
        # "one " is sent now: the message has started.
        started.set()
        assert release.wait(T)
        yield "three"

    def handler(ws: wsio.sync.ServerConnection) -> None:
        connections.append(ws)
        ws.send(fragments())
        ws.recv()

    port = port_of(servers.start(handler, compression=None))
    with wsio.sync.connect(f"ws://127.0.0.1:{port}/", open_timeout=T, compression=None) as ws:
        assert started.wait(T)
        result = wsio.sync.broadcast(connections, "broadcast")
        assert result.delivered == 1
        assert unsent(connections[0]) > 0  # held for after the last fragment
        release.set()
        assert ws.recv(timeout=T) == "one two three"
        assert ws.recv(timeout=T) == "broadcast"
        ws.send("done")


def test_connections_not_open_are_left_out(servers: Servers) -> None:
    room = Room(servers)
    with clients(room.port, 2) as opened:
        connections = room.wait_for(2)
        opened[0].close()
        until(lambda: any(c.state is wsio.State.CLOSED for c in connections))
        result = wsio.sync.broadcast(connections, "left")
        assert (result.delivered, result.skipped, result.closed) == (1, 0, 0)
        assert opened[1].recv(timeout=T) == "left"


def test_bad_arguments(servers: Servers) -> None:
    with pytest.raises(wsio.InvalidArgument):
        wsio.sync.broadcast([], "x", limit=-1)
    with pytest.raises(wsio.InvalidArgument):
        wsio.sync.broadcast([], "x", slow_consumer="drop")
    with pytest.raises(TypeError):
        wsio.sync.broadcast([], 42)  # type: ignore[arg-type]
    with pytest.raises(wsio.InvalidArgument):
        wsio.sync.serve(lambda ws: None, "127.0.0.1", 0, slow_consumer="drop")
    with pytest.raises(wsio.InvalidArgument):
        wsio.sync.serve(lambda ws: None, "127.0.0.1", 0, slow_consumer=None)  # type: ignore[arg-type]
    with pytest.raises(wsio.InvalidArgument):
        wsio.sync.serve(lambda ws: None, "127.0.0.1", 0, broadcast_limit=-1)


def test_text_frames_on_the_wire(servers: Servers) -> None:
    """The raw bytes: one unmasked text frame per message, in order."""
    room = Room(servers, compression=None)
    with slow_peer(room.port) as peer:
        connections = room.wait_for(1)
        for text in ("a", "b", "c"):
            wsio.sync.broadcast(connections, text)
        # The peer doesn't answer the close frame, but closes TCP once it read it.
        closer = threading.Thread(target=connections[0].close, daemon=True)
        closer.start()
        frames = read_frames_until_close(peer)
    closer.join(T)
    assert [(f.opcode, f.masked, f.payload) for f in frames[:-1]] == [
        (OP_TEXT, False, b"a"),
        (OP_TEXT, False, b"b"),
        (OP_TEXT, False, b"c"),
    ]


def test_broadcast_while_the_application_waits_in_send(servers: Servers) -> None:
    """A handler blocked in send() to a peer that doesn't read holds the connection's
    writes: the broadcast returns at once, and its message follows the handler's."""
    sending = threading.Event()
    connections: list[wsio.sync.ServerConnection] = []
    large = bytes(4_000_000)

    def handler(ws: wsio.sync.ServerConnection) -> None:
        connections.append(ws)
        sending.set()
        ws.send(large)
        ws.recv()

    port = port_of(servers.start(handler, compression=None, broadcast_limit=None))
    with slow_peer(port) as peer:
        assert sending.wait(T)
        until(lambda: connections[0]._write_lock.locked())
        result = bounded_broadcast(connections, "after")
        assert result.delivered == 1
        # The peer reads at last: the handler's message, then the broadcast's.
        parser = FrameParser()
        frames: list[Any] = []
        deadline = time.monotonic() + T
        while len(frames) < 2:
            assert time.monotonic() < deadline
            parser.feed(peer.recv(65536))
            frames.extend(parser.frames())
        assert [(f.opcode, len(f.payload)) for f in frames] == [
            (OP_BINARY, len(large)),
            (OP_TEXT, 5),
        ]


def test_one_broadcast_reaches_connections_of_both_layers() -> None:
    # An asyncio server's connections and threads clients' connections, in one call.
    import asyncio

    async def scenario() -> None:
        async def hold(ws: wsio.ServerConnection) -> None:
            await ws.wait_closed()

        async with wsio.serve(hold, "127.0.0.1", 0) as server:
            uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
            clients = await asyncio.gather(
                *(asyncio.to_thread(wsio.sync.connect, uri, open_timeout=T) for _ in range(2))
            )
            try:
                async with asyncio.timeout(T):
                    while len(server.connections) < 2:
                        await asyncio.sleep(0.01)
                mixed = [*server.connections, *clients]
                result = wsio.broadcast(mixed, "to all")
                assert (result.delivered, result.skipped, result.closed) == (4, 0, 0)
                for client in clients:
                    assert await asyncio.to_thread(client.recv, T) == "to all"
            finally:
                await asyncio.gather(*(asyncio.to_thread(client.close) for client in clients))

    asyncio.run(scenario())
