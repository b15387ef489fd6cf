"""The threads layer over real sockets: wsio.sync's client and server with each other and
with the asyncio layer."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import wsio
import wsio.sync
from wsio.protocol.masking import MASKED_PIECE, MaskedPieces


@pytest.fixture
def serving() -> Iterator[Callable[..., str]]:
    """Start a threads server in the background; return its ws:// URI."""
    servers: list[tuple[wsio.sync.Server, threading.Thread]] = []

    def start(handler: Callable[[wsio.sync.ServerConnection], None], **options: object) -> str:
        server = wsio.sync.serve(handler, "127.0.0.1", 0, **options)  # type: ignore[arg-type]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"

    yield start
    for server, thread in servers:
        server.shutdown()
        thread.join(5)


def echo(ws: wsio.sync.ServerConnection) -> None:
    for message in ws:
        ws.send(message)


def test_echo_text_binary_and_fragments(serving: Callable[..., str]) -> None:
    uri = serving(echo)
    with wsio.sync.connect(uri, open_timeout=5) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        ws.send(b"x" * 100_000)
        assert ws.recv(timeout=5) == b"x" * 100_000
        ws.send(["a", "b", "c"])
        assert ws.recv(timeout=5) == "abc"
        ws.send("text")
        assert ws.recv(timeout=5, decode=False) == b"text"
        ws.send(b"bytes")
        assert ws.recv(timeout=5, decode=True) == "bytes"
        assert ws.ping(timeout=5) >= 0
    assert ws.close_code == 1000


def test_large_frames_go_a_masked_piece_at_a_time(
    serving: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A threads client sends a frame larger than MASKED_PIECE a piece per write, and
    another thread's message waits for its last piece."""
    pieces: list[int] = []
    next_piece = MaskedPieces.next_piece

    def counting(self: MaskedPieces) -> bytes:
        piece = next_piece(self)
        pieces.append(len(piece))
        return piece

    monkeypatch.setattr(MaskedPieces, "next_piece", counting)
    large = os.urandom(5 * MASKED_PIECE + 3)
    uri = serving(echo, max_size=None)
    with wsio.sync.connect(uri, open_timeout=5, max_size=None, compression=None) as ws:
        other = threading.Thread(target=ws.send, args=("other thread",))
        ws.send([large, b"!"])
        other.start()
        ws.send(large)
        other.join(5)
        replies = [ws.recv(timeout=5) for _ in range(3)]
    frame_pieces = [14 + MASKED_PIECE] + [MASKED_PIECE] * 4 + [3]  # the header with the first
    assert pieces == frame_pieces * 2
    assert replies[0] == large + b"!"
    assert sorted(replies[1:], key=len) == ["other thread", large]


def test_a_peer_that_refuses_a_large_frame_ends_the_send(serving: Callable[..., str]) -> None:
    """The server fails the connection (1009) at a 64 MiB frame's header: send() stops
    writing its pieces once the socket fails, without hanging, and the close shows."""
    uri = serving(echo, max_size=2**20)
    with wsio.sync.connect(uri, open_timeout=5, close_timeout=1) as ws:
        started = time.monotonic()
        ws.send(bytes(64 * 2**20))
        assert time.monotonic() - started < 5
        with pytest.raises(wsio.ConnectionClosedError) as excinfo:
            ws.recv(timeout=5)
    assert excinfo.value.rcvd is not None and excinfo.value.rcvd.code == 1009


def test_recv_timeout_loses_nothing(serving: Callable[..., str]) -> None:
    uri = serving(echo)
    with wsio.sync.connect(uri, open_timeout=5) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.05)
        ws.send("late")
        assert ws.recv(timeout=5) == "late"


def test_many_messages_with_a_small_queue(serving: Callable[..., str]) -> None:
    uri = serving(echo, max_queue=2)
    with wsio.sync.connect(uri, open_timeout=5, max_queue=2) as ws:
        for index in range(200):
            ws.send(str(index))
        assert [ws.recv(timeout=5) for _ in range(200)] == [str(i) for i in range(200)]


def test_asyncio_client_against_threads_server(serving: Callable[..., str]) -> None:
    uri = serving(echo)

    async def main() -> str:
        async with wsio.connect(uri, open_timeout=5) as ws:
            await ws.send("from asyncio")
            return str(await asyncio.wait_for(ws.recv(), 5))

    assert asyncio.run(main()) == "from asyncio"


def test_threads_client_against_asyncio_server() -> None:
    ready = threading.Event()
    stop = threading.Event()
    ports: list[int] = []

    async def handler(ws: wsio.ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with wsio.serve(handler, "127.0.0.1", 0) as server:
            ports.append(server.sockets[0].getsockname()[1])
            ready.set()
            for _ in range(100):
                if stop.is_set():
                    break
                await asyncio.sleep(0.05)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        with wsio.sync.connect(f"ws://127.0.0.1:{ports[0]}/", open_timeout=5) as ws:
            ws.send("to asyncio")
            assert ws.recv(timeout=5) == "to asyncio"
    finally:
        stop.set()
        thread.join(10)


def test_handler_error_closes_with_1011(serving: Callable[..., str]) -> None:
    def failing(ws: wsio.sync.ServerConnection) -> None:
        ws.recv()
        raise RuntimeError("boom")

    uri = serving(failing)
    with wsio.sync.connect(uri, open_timeout=5) as ws:
        ws.send("go")
        with pytest.raises(wsio.ConnectionClosedError):
            ws.recv(timeout=5)
    assert ws.close_code == 1011


def test_process_request_answers_and_bad_handshake_is_refused(
    serving: Callable[..., str],
) -> None:
    def health(ws: wsio.sync.ServerConnection, request: wsio.Request) -> wsio.Response | None:
        return ws.respond(200, "ok\n") if request.path == "/health" else None

    uri = serving(echo, process_request=health)
    with pytest.raises(wsio.InvalidStatus) as caught:
        wsio.sync.connect(uri + "health", open_timeout=5)
    assert caught.value.response.status_code == 200
    assert caught.value.response.body == b"ok\n"
    with pytest.raises(wsio.InvalidStatus) as caught:
        wsio.sync.connect(uri, open_timeout=5, additional_headers={"Sec-WebSocket-Version": "12"})
    assert caught.value.response.status_code == 426


def test_async_hook_is_a_500(serving: Callable[..., str]) -> None:
    async def hook(ws: object, request: object) -> None:
        return None

    uri = serving(echo, process_request=hook)
    with pytest.raises(wsio.InvalidStatus) as caught:
        wsio.sync.connect(uri, open_timeout=5)
    assert caught.value.response.status_code == 500


def test_shutdown_refuses_idle_connections_and_closes_open_ones(
    serving: Callable[..., str],
) -> None:
    server = wsio.sync.serve(echo, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.socket.getsockname()[1]
    ws = wsio.sync.connect(f"ws://127.0.0.1:{port}/", open_timeout=5)
    idle = socket.create_connection(("127.0.0.1", port), timeout=5)
    for _ in range(100):
        if len(server.connections) == 2:
            break
        threading.Event().wait(0.02)
    server.shutdown()
    thread.join(5)
    with pytest.raises(wsio.ConnectionClosedOK):
        ws.recv(timeout=5)
    assert ws.close_code == 1001
    answer = idle.recv(4096)
    idle.close()
    assert answer.startswith(b"HTTP/1.1 503")


def test_keepalive_keeps_an_answering_peer_open(serving: Callable[..., str]) -> None:
    def silent(ws: wsio.sync.ServerConnection) -> None:
        ws.recv()

    uri = serving(silent)
    with wsio.sync.connect(uri, open_timeout=5, ping_interval=0.05, ping_timeout=0.1) as ws:
        assert ws.ping(timeout=5) >= 0
        threading.Event().wait(0.3)
        assert ws.state is wsio.State.OPEN
        ws.send("done")


def test_connect_refused_and_bad_uri() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(OSError):
        wsio.sync.connect(f"ws://127.0.0.1:{port}/", open_timeout=5)
    with pytest.raises(wsio.InvalidURI):
        wsio.sync.connect("http://example.com/")
    with pytest.raises(TypeError):
        wsio.sync.connect("ws://127.0.0.1/", write_limit=1)  # type: ignore[call-arg]


def test_shutdown_right_after_serve_forever_starts_always_returns() -> None:
    # serve_forever() may not have reached its select() yet when shutdown() runs: the
    # sockets must stay open until it returned, or it would wait on them for good.
    for attempt in range(40):
        server = wsio.sync.serve(echo, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        # Sweep the delays across the thread's start, where the window is.
        time.sleep(attempt * 0.0001)
        server.shutdown()
        thread.join(5)
        assert not thread.is_alive()


def test_handler_may_shut_the_server_down(serving: Callable[..., str]) -> None:
    servers: list[wsio.sync.Server] = []

    def stop(ws: wsio.sync.ServerConnection) -> None:
        ws.send("stopping")
        ws.server.shutdown(close_connections=False)
        servers.append(ws.server)

    uri = serving(stop)
    with wsio.sync.connect(uri, open_timeout=5) as ws:
        assert ws.recv(timeout=5) == "stopping"
        with pytest.raises(wsio.ConnectionClosedOK):
            ws.recv(timeout=5)
    assert servers and servers[0].closing


def test_shutdown_while_serve_forever_accepts() -> None:
    """shutdown() racing serve_forever() as a client arrives: shutdown returns without
    waiting for that client's open_timeout, the accepting thread ends and raises nothing
    (it mustn't find its sockets closed under it, nor miss the wake-up because they were)."""
    for _ in range(60):
        server = wsio.sync.serve(echo, "127.0.0.1", 0, open_timeout=30)
        failures: list[BaseException] = []

        def accept(
            server: wsio.sync.Server = server, failures: list[BaseException] = failures
        ) -> None:
            try:
                server.serve_forever()
            except BaseException as exc:
                failures.append(exc)

        accepting = threading.Thread(target=accept, daemon=True)
        accepting.start()
        client = socket.create_connection(server.socket.getsockname(), timeout=5)
        stopping = threading.Thread(target=server.shutdown, daemon=True)
        try:
            stopping.start()
            stopping.join(5)
            accepting.join(5)
        finally:
            client.close()
        assert not stopping.is_alive(), "shutdown() waits for a connection it didn't refuse"
        assert not accepting.is_alive(), "serve_forever() did not return after shutdown()"
        assert failures == []


def test_tcp_nodelay_on_both_sides(serving: Callable[..., str]) -> None:
    """Writes go out at once, as on asyncio's transports: without TCP_NODELAY, the second
    fragment of a message waits for the peer's delayed ACK of the first."""
    options: list[int] = []

    def handler(ws: wsio.sync.ServerConnection) -> None:
        options.append(ws.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        ws.send("checked")
        # Open until the client has checked its side: the end of the handler closes the
        # connection, and with it the client's socket.
        ws.recv(timeout=5)

    uri = serving(handler)
    with wsio.sync.connect(uri, open_timeout=5) as ws:
        assert ws.recv(timeout=5) == "checked"
        assert ws.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        ws.send("done")
    assert options and options[0]
