"""wsio.serve: the server's life cycle and handlers, over real sockets."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import wsio
from rawpeer import OP_CLOSE, OP_TEXT, RawClient, build_frame, build_request

EchoServerFactory = Callable[..., Awaitable[tuple[Any, int]]]

T = 5.0


def url(port: int, path: str = "/") -> str:
    return f"ws://127.0.0.1:{port}{path}"


def port_of(server: Any) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


async def echo(ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


async def wait_for_connections(server: Any, count: int) -> None:
    async with asyncio.timeout(T):
        while len(server.connections) < count:
            await asyncio.sleep(0.005)


# Handler outcome ---------------------------------------------------------------------------------


async def test_handler_returning_closes_with_1000(echo_server: EchoServerFactory) -> None:
    async def handler(ws: Any) -> None:
        await ws.send("bye")

    _, port = await echo_server(handler=handler)
    async with asyncio.timeout(T):
        ws = await wsio.connect(url(port))
        assert await ws.recv() == "bye"
        with pytest.raises(wsio.ConnectionClosedOK) as excinfo:
            await ws.recv()
        await ws.wait_closed()
    assert excinfo.value.code == 1000
    assert excinfo.value.rcvd is not None
    assert excinfo.value.rcvd.code == 1000
    assert ws.close_code == 1000


async def test_handler_raising_closes_with_1011(
    echo_server: EchoServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(ws: Any) -> None:
        await ws.send("about to fail")
        raise RuntimeError("handler bug")

    _, port = await echo_server(handler=handler)
    with caplog.at_level(logging.ERROR):
        async with asyncio.timeout(T):
            ws = await wsio.connect(url(port))
            assert await ws.recv() == "about to fail"
            with pytest.raises(wsio.ConnectionClosedError) as excinfo:
                await ws.recv()
            await ws.wait_closed()
    assert excinfo.value.code == 1011
    assert ws.close_code == 1011
    # The failure is logged with its traceback, not lost.
    assert any(
        r.exc_info is not None and "handler bug" in str(r.exc_info[1]) for r in caplog.records
    )


async def test_handler_raising_before_any_message(echo_server: EchoServerFactory) -> None:
    async def handler(ws: Any) -> None:
        raise ValueError("immediately")

    _, port = await echo_server(handler=handler)
    async with asyncio.timeout(T), wsio.connect(url(port)) as ws:
        with pytest.raises(wsio.ConnectionClosedError) as excinfo:
            async for _ in ws:
                pass  # pragma: no cover
    assert excinfo.value.code == 1011


async def test_handler_that_is_a_plain_function_returning_an_awaitable(
    echo_server: EchoServerFactory,
) -> None:
    async def send(ws: Any) -> None:
        await ws.send("from the awaitable")

    def handler(ws: Any) -> Awaitable[None]:
        return asyncio.ensure_future(send(ws))

    _, port = await echo_server(handler=handler)
    async with asyncio.timeout(T), wsio.connect(url(port)) as ws:
        assert await ws.recv() == "from the awaitable"
        with pytest.raises(wsio.ConnectionClosedOK) as excinfo:
            await ws.recv()
    assert excinfo.value.code == 1000


async def test_handler_that_is_a_plain_function_raising(
    echo_server: EchoServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(ws: Any) -> Awaitable[None]:
        raise RuntimeError("plain handler bug")

    _, port = await echo_server(handler=handler)
    with caplog.at_level(logging.ERROR):
        async with asyncio.timeout(T), wsio.connect(url(port)) as ws:
            with pytest.raises(wsio.ConnectionClosedError) as excinfo:
                await ws.recv()
    assert excinfo.value.code == 1011
    assert any(
        r.exc_info is not None and "plain handler bug" in str(r.exc_info[1])
        for r in caplog.records
    )


async def test_handler_closing_itself(echo_server: EchoServerFactory) -> None:
    async def handler(ws: Any) -> None:
        await ws.close(4321, "my way")

    _, port = await echo_server(handler=handler)
    async with asyncio.timeout(T), wsio.connect(url(port)) as ws:
        with pytest.raises(wsio.ConnectionClosedError) as excinfo:
            await ws.recv()
    assert (excinfo.value.code, excinfo.value.reason) == (4321, "my way")


async def test_handler_interrupted_by_client_close(echo_server: EchoServerFactory) -> None:
    """ConnectionClosed escaping the handler is the client's doing, not a handler bug."""
    outcome: list[Any] = []

    async def handler(ws: Any) -> None:
        try:
            while True:
                await ws.recv()
        except wsio.ConnectionClosed as exc:
            outcome.append(exc)
            raise

    server, port = await echo_server(handler=handler)
    async with asyncio.timeout(T):
        ws = await wsio.connect(url(port))
        await ws.close(1000, "leaving")
        server.close()
        await server.wait_closed()
    assert len(outcome) == 1
    assert isinstance(outcome[0], wsio.ConnectionClosedOK)
    assert outcome[0].reason == "leaving"


async def test_handler_gets_server_connection(echo_server: EchoServerFactory) -> None:
    seen: list[Any] = []

    async def handler(ws: Any) -> None:
        seen.append(ws)
        await ws.send(ws.request.path)

    server, port = await echo_server(handler=handler)
    async with asyncio.timeout(T), wsio.connect(url(port, "/some/path?q=1")) as ws:
        assert await ws.recv() == "/some/path?q=1"
    assert isinstance(seen[0], wsio.ServerConnection)
    assert seen[0].server is server
    assert seen[0].response.status_code == 101


# Server life cycle -------------------------------------------------------------------------------


async def test_server_close_sends_1001_and_waits_for_handlers() -> None:
    handler_finished = asyncio.Event()
    handler_exc: list[BaseException] = []

    async def handler(ws: Any) -> None:
        try:
            await ws.recv()
        except wsio.ConnectionClosed as exc:
            handler_exc.append(exc)
        # Some cleanup that takes time: wait_closed() must wait for it.
        await asyncio.sleep(0.2)
        handler_finished.set()

    async with asyncio.timeout(T):
        server = await wsio.serve(handler, "127.0.0.1", 0)
        port = port_of(server)
        clients = [await wsio.connect(url(port)) for _ in range(3)]
        await wait_for_connections(server, 3)
        server.close()
        await server.wait_closed()
        assert handler_finished.is_set()
        for ws in clients:
            with pytest.raises(wsio.ConnectionClosedOK) as excinfo:
                await ws.recv()
            assert excinfo.value.code == 1001
            assert excinfo.value.rcvd is not None
            assert excinfo.value.rcvd.code == 1001
            await ws.wait_closed()
            assert ws.close_code == 1001
    assert len(handler_exc) == 3
    assert all(isinstance(e, wsio.ConnectionClosedOK) for e in handler_exc)
    assert all(e.code == 1001 for e in handler_exc)
    assert not server.is_serving()


async def test_async_iteration_ends_on_server_shutdown() -> None:
    async with asyncio.timeout(T):
        server = await wsio.serve(echo, "127.0.0.1", 0)
        port = port_of(server)
        async with wsio.connect(url(port)) as ws:
            await ws.send("one")
            assert await ws.recv() == "one"
            server.close()
            received = [message async for message in ws]
        await server.wait_closed()
    assert received == []
    assert ws.close_code == 1001


async def test_leaving_serve_block_closes_connections() -> None:
    async with asyncio.timeout(T):
        async with wsio.serve(echo, "127.0.0.1", 0) as server:
            assert isinstance(server, wsio.Server)
            assert server.is_serving()
            port = port_of(server)
            ws = await wsio.connect(url(port))
            await ws.send("x")
            assert await ws.recv() == "x"
        assert not server.is_serving()
        with pytest.raises(wsio.ConnectionClosedOK):
            await ws.recv()
        await ws.wait_closed()
    assert ws.close_code == 1001
    assert server.connections == set()


async def test_server_close_bounded_by_close_timeout() -> None:
    """A client that never answers the 1001 doesn't hold the shutdown past close_timeout."""
    async with asyncio.timeout(T):
        server = await wsio.serve(echo, "127.0.0.1", 0, close_timeout=0.3)
        client = await RawClient.open("127.0.0.1", port_of(server))
        try:
            response = await client.handshake()
            assert response.status_code == 101
            loop = asyncio.get_running_loop()
            start = loop.time()
            server.close()
            await server.wait_closed()
            elapsed = loop.time() - start
            frames = await client.recv_frames_until_close(timeout=T)
            assert frames[-1].close_code == 1001
            assert await client.wait_eof(T)
        finally:
            client.abort()
    assert 0.2 <= elapsed < 2


async def test_no_new_connections_after_close() -> None:
    async with asyncio.timeout(T):
        server = await wsio.serve(echo, "127.0.0.1", 0)
        port = port_of(server)
        server.close()
        await server.wait_closed()
        with pytest.raises(OSError):
            await wsio.connect(url(port))


async def test_handshake_during_shutdown_gets_503() -> None:
    async def handler(ws: Any) -> None:
        raise AssertionError("must not run")  # pragma: no cover

    async with asyncio.timeout(T):
        server = await wsio.serve(handler, "127.0.0.1", 0)
        port = port_of(server)
        # The TCP connection is accepted before the shutdown, the request comes after.
        client = await RawClient.open("127.0.0.1", port)
        try:
            await wait_for_connections(server, 1)
            server.close()
            await asyncio.sleep(0.05)
            response = await client.handshake()
            assert response.status_code == 503
            assert response.has_token("Connection", "close")
            assert await client.wait_eof(T)
            client.close()
            await server.wait_closed()
        finally:
            client.abort()


async def test_close_without_closing_connections() -> None:
    handler_done = asyncio.Event()

    async def handler(ws: Any) -> None:
        await echo(ws)
        handler_done.set()

    async with asyncio.timeout(T):
        server = await wsio.serve(handler, "127.0.0.1", 0)
        port = port_of(server)
        ws = await wsio.connect(url(port))
        await wait_for_connections(server, 1)
        server.close(close_connections=False)
        closing = asyncio.create_task(server.wait_closed())
        await asyncio.sleep(0.05)
        # The connection is still served.
        await ws.send("still served")
        assert await ws.recv() == "still served"
        assert not closing.done()
        await ws.close()
        await closing
    assert handler_done.is_set()
    assert ws.close_code == 1000


async def test_await_serve_form() -> None:
    async with asyncio.timeout(T):
        server = await wsio.serve(echo, "127.0.0.1", 0)
        try:
            assert isinstance(server, wsio.Server)
            assert server.is_serving()
            async with wsio.connect(url(port_of(server))) as ws:
                await ws.send("awaited")
                assert await ws.recv() == "awaited"
        finally:
            server.close()
            await server.wait_closed()
    assert not server.is_serving()


async def test_close_is_idempotent() -> None:
    async with asyncio.timeout(T):
        server = await wsio.serve(echo, "127.0.0.1", 0)
        server.close()
        server.close()
        await server.wait_closed()
        await server.wait_closed()
        server.close()
    assert not server.is_serving()


async def test_serve_forever_cancelled() -> None:
    async with asyncio.timeout(T):
        server = await wsio.serve(echo, "127.0.0.1", 0)
        port = port_of(server)
        task = asyncio.create_task(server.serve_forever())
        async with wsio.connect(url(port)) as ws:
            await ws.send("served")
            assert await ws.recv() == "served"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()
        server.close()
        await server.wait_closed()
        with pytest.raises(OSError):
            await wsio.connect(url(port))


async def test_serve_forever_returns_when_closed() -> None:
    async with asyncio.timeout(T):
        server = await wsio.serve(echo, "127.0.0.1", 0)
        port = port_of(server)
        task = asyncio.create_task(server.serve_forever())
        ws = await wsio.connect(url(port))
        await wait_for_connections(server, 1)
        server.close()
        # serve_forever() returns normally, after the connections are closed.
        await task
        assert ws.state is not wsio.State.OPEN
        with pytest.raises(wsio.ConnectionClosedOK):
            await ws.recv()
        await ws.wait_closed()
    assert ws.close_code == 1001


async def test_serve_forever_inside_async_with() -> None:
    async with asyncio.timeout(T):
        async with wsio.serve(echo, "127.0.0.1", 0) as server:
            port = port_of(server)

            async def client_then_stop() -> str | bytes:
                async with wsio.connect(url(port)) as ws:
                    await ws.send("x")
                    reply = await ws.recv()
                server.close()
                return reply

            stopper = asyncio.create_task(client_then_stop())
            await server.serve_forever()
            assert await stopper == "x"
    assert not server.is_serving()


async def test_connections_and_sockets(echo_server: EchoServerFactory) -> None:
    server, port = await echo_server()
    assert len(server.sockets) >= 1
    assert server.sockets[0].getsockname()[0] == "127.0.0.1"
    assert server.connections == set()
    async with asyncio.timeout(T):
        async with wsio.connect(url(port)) as ws1, wsio.connect(url(port)) as ws2:
            await ws1.send("a")
            await ws2.send("b")
            assert await ws1.recv() == "a"
            assert await ws2.recv() == "b"
            assert len(server.connections) == 2
            assert all(isinstance(c, wsio.ServerConnection) for c in server.connections)
        while server.connections:
            await asyncio.sleep(0.005)


async def test_serve_with_existing_socket() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    async with asyncio.timeout(T), wsio.serve(echo, sock=sock), wsio.connect(url(port)) as ws:
        await ws.send("via sock")
        assert await ws.recv() == "via sock"


# Handshake options -------------------------------------------------------------------------------


async def test_server_header(echo_server: EchoServerFactory) -> None:
    _, port = await echo_server()
    _, port_custom = await echo_server(server_header="my-server/1")
    _, port_none = await echo_server(server_header=None)
    async with asyncio.timeout(T):
        async with wsio.connect(url(port)) as ws:
            assert ws.response.headers["Server"].startswith("wsio/")
        async with wsio.connect(url(port_custom)) as ws:
            assert ws.response.headers.get_all("Server") == ["my-server/1"]
        async with wsio.connect(url(port_none)) as ws:
            assert "Server" not in ws.response.headers


async def test_server_open_timeout(
    echo_server: EchoServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that connects and sends nothing is dropped after open_timeout, with one
    line in the log that says so."""
    caplog.set_level(logging.INFO, logger="wsio")
    server, port = await echo_server(open_timeout=0.3)
    loop = asyncio.get_running_loop()
    client = await RawClient.open("127.0.0.1", port)
    try:
        start = loop.time()
        assert await client.wait_eof(T)
        elapsed = loop.time() - start
    finally:
        client.abort()
    assert 0.2 <= elapsed < 2
    async with asyncio.timeout(T):
        while server.connections:
            await asyncio.sleep(0.005)
    records = [r.getMessage() for r in caplog.records if r.name.startswith("wsio")]
    assert records == ["opening handshake timed out after 0.3 s"]


async def test_connections_waiting_for_their_request_hold_no_task(
    echo_server: EchoServerFactory,
) -> None:
    """Until its request arrives, a connection is a protocol and a timer: no task, so that
    many connections that say nothing cost little. The 101 then starts the handler's."""
    server, port = await echo_server()
    baseline = asyncio.all_tasks()
    clients = [await RawClient.open("127.0.0.1", port) for _ in range(10)]
    try:
        await wait_for_connections(server, 10)
        await asyncio.sleep(0.05)
        assert asyncio.all_tasks() == baseline
        async with asyncio.timeout(T):
            response = await clients[0].handshake()
        assert response.status_code == 101
        assert len(asyncio.all_tasks() - baseline) == 1
    finally:
        for client in clients:
            client.abort()


@pytest.mark.parametrize("hooks", [False, True])
async def test_wait_closed_waits_for_a_request_finished_during_shutdown(hooks: bool) -> None:
    """A connection that started its request before the shutdown is let finish it and gets
    503, hooks or not; the server isn't closed before that connection is."""

    async def handler(ws: Any) -> None:
        raise AssertionError("must not run")  # pragma: no cover

    async def process_request(connection: Any, request: Any) -> None:
        raise AssertionError("must not run")  # pragma: no cover

    async with asyncio.timeout(T):
        server = await wsio.serve(
            handler, "127.0.0.1", 0, process_request=process_request if hooks else None
        )
        port = port_of(server)
        client = await RawClient.open("127.0.0.1", port)
        request = build_request("/", host=f"127.0.0.1:{port}")
        first_line = request.index(b"\r\n") + 2
        try:
            await client.send(request[:first_line])
            await wait_for_connections(server, 1)
            await asyncio.sleep(0.05)
            server.close()
            closed = asyncio.create_task(server.wait_closed())
            await asyncio.sleep(0.1)
            assert not closed.done()
            await client.send(request[first_line:])
            response = await client.read_http_response(T)
            assert response.status_code == 503
            assert await client.wait_eof(T)
            client.close()
            await closed
        finally:
            client.abort()


@pytest.mark.parametrize("ping_interval", [None, 0.2])
async def test_server_open_timeout_ends_with_the_handshake(
    echo_server: EchoServerFactory, ping_interval: float | None
) -> None:
    """open_timeout bounds the opening handshake only: an upgraded connection lives on
    past it, with keepalive (here due with open_timeout) or without."""
    _, port = await echo_server(open_timeout=0.2, ping_interval=ping_interval)
    async with asyncio.timeout(T):
        ws = await wsio.connect(url(port))
        await asyncio.sleep(0.6)
        await ws.send("still open")
        assert await ws.recv() == "still open"
        await ws.close()
    assert ws.close_code == 1000


async def test_server_open_timeout_partial_request(echo_server: EchoServerFactory) -> None:
    _, port = await echo_server(open_timeout=0.3)
    client = await RawClient.open("127.0.0.1", port)
    try:
        await client.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert await client.wait_eof(T)
    finally:
        client.abort()


async def test_server_open_timeout_covers_tls_handshake(
    echo_server: EchoServerFactory, server_ssl_context: ssl.SSLContext
) -> None:
    """A TCP client that never starts TLS is dropped after open_timeout."""
    _, port = await echo_server(ssl=server_ssl_context, open_timeout=0.3)
    loop = asyncio.get_running_loop()
    client = await RawClient.open("127.0.0.1", port)
    try:
        start = loop.time()
        assert await client.wait_eof(T)
        elapsed = loop.time() - start
    finally:
        client.abort()
    assert elapsed < 2


@pytest.mark.parametrize("open_timeout", [0, -1.0])
async def test_server_open_timeout_must_be_positive(open_timeout: float) -> None:
    # No handshake could succeed, and with TLS the loop would refuse every accept.
    with pytest.raises(wsio.InvalidArgument, match="open_timeout"):
        wsio.serve(echo, "127.0.0.1", 0, open_timeout=open_timeout)


async def test_tls_handshake_under_way_at_shutdown_gets_503(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    """The loop runs TLS, so a connection whose TLS handshake was under way when the server
    started closing only shows up afterwards: it gets the 503 of a handshake in progress,
    not a connection left open until open_timeout."""
    async with asyncio.timeout(T):
        server = await wsio.serve(echo, "127.0.0.1", 0, ssl=server_ssl_context, open_timeout=T)
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        try:
            server.close()
            await server.wait_closed()
            await writer.start_tls(client_ssl_context, server_hostname="localhost")
            answer = await reader.read()
            assert answer.startswith(b"HTTP/1.1 503 "), answer
            assert answer.endswith(b"Server is shutting down.\n")
        finally:
            writer.close()
        async with asyncio.timeout(1):
            while server.connections:
                await asyncio.sleep(0.01)


async def test_server_subprotocols_and_request_headers(echo_server: EchoServerFactory) -> None:
    seen: list[Any] = []

    async def handler(ws: Any) -> None:
        seen.append((ws.subprotocol, ws.request.headers.get("X-Custom")))
        await ws.send(ws.subprotocol or "")

    _, port = await echo_server(handler=handler, subprotocols=["v2", "v1"])
    async with asyncio.timeout(T):
        async with wsio.connect(
            url(port), subprotocols=["v1", "v2"], additional_headers={"X-Custom": "yes"}
        ) as ws:
            assert await ws.recv() == "v1"
    assert seen == [("v1", "yes")]


async def test_raw_client_sees_exact_close_on_shutdown() -> None:
    async with asyncio.timeout(T):
        server = await wsio.serve(echo, "127.0.0.1", 0)
        client = await RawClient.open("127.0.0.1", port_of(server))
        try:
            response = await client.handshake()
            assert response.status_code == 101
            await client.send_frame(OP_TEXT, "ping me")
            frame = await client.recv_frame(T)
            assert frame is not None
            assert frame.payload == b"ping me"
            server.close()
            frame = await client.recv_frame(T)
            assert frame is not None
            assert frame.opcode == OP_CLOSE
            assert frame.close_code == 1001
            assert not frame.masked
            await client.send_close(1001)
            # The server closes TCP right after the closing handshake.
            assert await client.wait_eof(T)
            client.close()
            await server.wait_closed()
        finally:
            client.abort()


async def test_server_closes_tcp_without_waiting_for_the_clients_end() -> None:
    """Once the client's close frame is in, nothing more may come (§5.5.1): the server
    closes TCP at once (§7.1.1) instead of half-closing and waiting for the client's FIN,
    which would hold the connection for a round trip, or for close_timeout."""
    handler_closed = asyncio.Event()

    async def handler(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)
        await ws.wait_closed()
        handler_closed.set()

    async with asyncio.timeout(T):
        server = await wsio.serve(handler, "127.0.0.1", 0, close_timeout=10 * T)
        client = await RawClient.open("127.0.0.1", port_of(server))
        try:
            assert (await client.handshake()).status_code == 101
            await client.send_close(1000)
            [frame] = await client.recv_frames_until_close(T)
            assert frame.close_code == 1000
            assert await client.wait_eof(T)
            # The client never ends its side; the server's connection is gone anyway.
            await handler_closed.wait()
            assert server.connections == set()
        finally:
            client.abort()
            server.close()
            await server.wait_closed()


async def test_server_close_timeout_holds_when_the_client_reads_nothing() -> None:
    """The server closes TCP once the closing handshake is done, but what it still has
    buffered waits for the client to read it: a client that never does is dropped at
    close_timeout rather than held for good."""
    handler_done = asyncio.Event()

    async def handler(ws: Any) -> None:
        try:
            await ws.send(bytes(32 * 2**20))  # far more than loopback's buffers hold
        finally:
            handler_done.set()

    loop = asyncio.get_running_loop()
    async with asyncio.timeout(T):
        server = await wsio.serve(handler, "127.0.0.1", 0, close_timeout=0.5)
        port = port_of(server)
        client = socket.socket()
        client.setblocking(False)
        try:
            await loop.sock_connect(client, ("127.0.0.1", port))
            await loop.sock_sendall(client, build_request("/", host=f"127.0.0.1:{port}"))
            head = b""
            while b"\r\n\r\n" not in head:
                head += await loop.sock_recv(client, 1)
            assert head.startswith(b"HTTP/1.1 101")
            # From here on the client reads nothing; its close frame ends the handshake.
            await wait_for_connections(server, 1)
            await loop.sock_sendall(client, build_frame(OP_CLOSE, b"\x03\xe8", mask=b"abcd"))
            start = loop.time()
            await handler_done.wait()
            while server.connections:
                await asyncio.sleep(0.01)
            assert 0.3 <= loop.time() - start <= 3
        finally:
            client.close()
            server.close()
            await server.wait_closed()


async def test_server_tls_with_raw_client(
    echo_server: EchoServerFactory,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    _, port = await echo_server(ssl=server_ssl_context)
    client = await RawClient.open(
        "127.0.0.1", port, ssl=client_ssl_context, server_hostname="localhost"
    )
    try:
        response = await client.handshake()
        assert response.status_code == 101
        await client.send_frame(OP_TEXT, "tls")
        frame = await client.recv_frame(T)
        assert frame is not None
        assert frame.payload == b"tls"
    finally:
        client.abort()


async def test_plain_client_to_tls_server_is_dropped(
    echo_server: EchoServerFactory,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    _, port = await echo_server(ssl=server_ssl_context)
    async with asyncio.timeout(T):
        with pytest.raises((wsio.InvalidHandshake, OSError)):
            await wsio.connect(url(port))
        # The server still works for a TLS client afterwards.
        async with wsio.connect(f"wss://localhost:{port}/", ssl=client_ssl_context) as ws:
            await ws.send("fine")
            assert await ws.recv() == "fine"
