"""Bytes, EOF and events arriving at unusual moments, over real sockets on 127.0.0.1.

The raw peers of :mod:`rawpeer` (and small relays defined here) put bytes together that a
well-behaved peer would send apart -- a request and its first frames, a 101 and a close
frame, a proxy's answer and the server's -- or deliver EOF, a frame or a shutdown while
wsio is in the middle of something (a hook awaiting, reading paused, the TLS handshake).
Each test checks the exact outcome, that no message is lost and that a peer's behaviour
is never logged as an error with a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import ssl
import struct
from collections.abc import Callable
from typing import Any

import pytest
import trustme

import wsio
from rawpeer import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    HTTPResponse,
    PeerClosed,
    RawClient,
    RawServer,
    ServerConn,
    build_frame,
    build_request,
    build_response,
    close_payload,
)

T = 5.0

FORBIDDEN = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: close\r\n\r\nforbidden"


async def answer_403_at_once(conn: ServerConn) -> None:
    """A server that answers 403 as soon as the connection is up, then waits for EOF."""
    await conn.send(FORBIDDEN)
    await conn.wait_eof()


# Helpers -----------------------------------------------------------------------------------------


def assert_no_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing at ERROR or above, no traceback at INFO or above (asyncio's own logger
    included); tests capture from INFO, as wsio's debug records may carry tracebacks."""
    gc.collect()  # surfaces "Task exception was never retrieved" and the like
    for record in caplog.records:
        if record.levelno < logging.INFO:
            continue
        assert record.levelno < logging.ERROR, (record.name, record.getMessage())
        assert record.exc_info is None, (record.name, record.getMessage())


def frames_of(frames: list[Any]) -> list[tuple[int, bytes]]:
    return [(frame.opcode, frame.payload) for frame in frames]


def head_101(key: str) -> bytes:
    """A correct 101 for ``key``."""
    return build_response(key)


async def read_request_key(conn: ServerConn) -> str:
    request = await conn.read_request()
    key = request.header("Sec-WebSocket-Key")
    assert key is not None
    return key


class WaitingHook:
    """A process_request or process_response hook that signals it was called, then waits
    to be released; ``answer`` builds what it returns (None: go on with the upgrade)."""

    def __init__(self, answer: Callable[[Any], Any] | None = None) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.answer = answer

    async def __call__(self, connection: Any, *args: Any) -> Any:
        self.entered.set()
        await self.release.wait()
        return None if self.answer is None else self.answer(connection)


async def open_raw(server: Any) -> RawClient:
    port: int = server.sockets[0].getsockname()[1]
    return await RawClient.open("127.0.0.1", port)


def raw_request(client: RawClient, key: str = "dGhlIHNhbXBsZSBub25jZQ==") -> bytes:
    client.key = key
    return build_request(host=f"{client.host}:{client.port}", key=key)


async def wait_until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(T):
        while not predicate():
            await asyncio.sleep(0.005)


@pytest.fixture
def tls12_server_context(tls_server_cert: trustme.LeafCert) -> ssl.SSLContext:
    """A server context limited to TLS 1.2, where the server finishes its handshake first
    and may send application data in the same flight as its Finished message."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_server_cert.configure_cert(ctx)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class Relay:
    """A TCP relay on 127.0.0.1, optionally speaking a proxy protocol first.

    ``mode``: ``"tcp"`` relays to ``127.0.0.1:target`` at once; ``"http"`` reads an HTTP
    ``CONNECT`` and answers ``200``; ``"socks5"`` speaks SOCKS5 (no authentication, IPv4
    destinations). ``after`` is written in the same write as the proxy's answer, as if it came
    through the tunnel; with ``then``, nothing is relayed: ``then`` is written
    ``then_delay`` seconds later and the connection closed. ``coalesce_down`` (seconds) is
    waited before each read from upstream, so that what the destination sends meanwhile
    reaches the client in one piece; ``coalesce_up`` does the same the other way.
    """

    def __init__(
        self,
        target: int = 0,
        *,
        mode: str = "tcp",
        after: bytes = b"",
        then: bytes | None = None,
        then_delay: float = 0.05,
        coalesce_down: float = 0.0,
        coalesce_up: float = 0.0,
    ) -> None:
        self.target = target
        self.mode = mode
        self.after = after
        self.then = then
        self.then_delay = then_delay
        self.coalesce_down = coalesce_down
        self.coalesce_up = coalesce_up
        self.port = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: list[asyncio.StreamWriter] = []
        self.errors: list[BaseException] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"{'socks5' if self.mode == 'socks5' else 'http'}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self.writers:
            writer.transport.abort()
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=T)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), T)
        if self.errors and exc_info[0] is None:
            raise self.errors[0]

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        task = asyncio.get_running_loop().create_task(self._run(reader, writer))
        self.tasks.add(task)

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(T):
                port = self.target
                answer = b""
                if self.mode == "http":
                    head = await reader.readuntil(b"\r\n\r\n")
                    target = head.split(b" ")[1].decode()
                    port = int(target.rpartition(":")[2])
                    answer = b"HTTP/1.1 200 Connection established\r\n\r\n"
                elif self.mode == "socks5":
                    greeting = await reader.readexactly(3)
                    assert greeting == b"\x05\x01\x00", greeting
                    writer.write(b"\x05\x00")
                    request = await reader.readexactly(10)
                    assert request[:4] == b"\x05\x01\x00\x01", request
                    (port,) = struct.unpack("!H", request[8:])
                    answer = b"\x05\x00\x00\x01\x7f\x00\x00\x01" + struct.pack("!H", port)
                if self.then is not None:
                    writer.write(answer + self.after)
                    await writer.drain()
                    await asyncio.sleep(self.then_delay)
                    writer.write(self.then)
                    await writer.drain()
                    writer.close()
                    return
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
                self.writers.append(up_writer)
                writer.write(answer + self.after)
            await asyncio.gather(
                self._pump(reader, up_writer, self.coalesce_up),
                self._pump(up_reader, writer, self.coalesce_down),
            )
        except (OSError, EOFError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            writer.transport.abort()

    @staticmethod
    async def _pump(
        source: asyncio.StreamReader, sink: asyncio.StreamWriter, coalesce: float
    ) -> None:
        try:
            while True:
                if coalesce:
                    await asyncio.sleep(coalesce)
                data = await source.read(65536)
                if not data:
                    break
                sink.write(data)
                await sink.drain()
        except OSError:
            sink.transport.abort()
            return
        if sink.can_write_eof():
            with contextlib.suppress(OSError):
                sink.write_eof()


# Server: requests and frames together ------------------------------------------------------------


async def test_server_request_and_frames_in_one_write(caplog: pytest.LogCaptureFixture) -> None:
    """Request, text, ping, fragmented binary and close in one segment: the 101 goes out,
    the ping is answered, the close echoed, and the handler still gets both messages."""
    caplog.set_level(logging.INFO)
    received: list[Any] = []
    outcome: list[Any] = []

    async def handler(ws: Any) -> None:
        try:
            while True:
                received.append(await ws.recv())
        except wsio.ConnectionClosed as exc:
            outcome.append(exc)

    async with asyncio.timeout(T):
        async with wsio.serve(handler, "127.0.0.1", 0) as server:
            client = await open_raw(server)
            try:
                await client.send(
                    raw_request(client)
                    + build_frame(OP_TEXT, "hello")
                    + build_frame(OP_PING, b"ping!")
                    + build_frame(OP_BINARY, b"frag", fin=False)
                    + build_frame(OP_CONT, b"ment")
                    + build_frame(OP_CLOSE, close_payload(1000, "bye"))
                )
                response = await client.read_http_response()
                assert response.status_code == 101
                assert response.header("Sec-WebSocket-Accept") == client.expected_accept
                frames = await client.recv_frames_until_close()
                assert frames_of(frames) == [
                    (OP_PONG, b"ping!"),
                    (OP_CLOSE, close_payload(1000, "bye")),
                ]
                assert await client.wait_eof()
            finally:
                client.abort()
    # The 101 went out: the handler must see what came with the request.
    assert received == ["hello", b"fragment"]
    assert len(outcome) == 1
    assert isinstance(outcome[0], wsio.ConnectionClosedOK)
    assert outcome[0].code == 1000
    assert_no_error_logged(caplog)


async def test_server_request_and_frames_in_3_byte_pieces() -> None:
    """The request and two frames, cut every 3 bytes across both: echoed in order."""
    async with asyncio.timeout(T):
        async with wsio.serve(_echo, "127.0.0.1", 0) as server:
            client = await open_raw(server)
            try:
                data = (
                    raw_request(client)
                    + build_frame(OP_TEXT, "première")
                    + build_frame(OP_BINARY, bytes(range(200)))
                )
                await client.send_chopped(data, 3)
                response = await client.read_http_response()
                assert response.status_code == 101
                first = await client.recv_frame()
                second = await client.recv_frame()
                assert first is not None and second is not None
                assert (first.opcode, first.text) == (OP_TEXT, "première")
                assert (second.opcode, second.payload) == (OP_BINARY, bytes(range(200)))
                await client.send_close(1000)
                frames = await client.recv_frames_until_close()
                assert frames_of(frames) == [(OP_CLOSE, close_payload(1000))]
                assert await client.wait_eof()
            finally:
                client.abort()


async def _echo(ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


async def test_server_request_then_eof_is_answered(caplog: pytest.LogCaptureFixture) -> None:
    """A client half-closes right after a complete request: the request is answered, then
    the server closes; nothing is logged as an error."""
    caplog.set_level(logging.INFO)
    async with asyncio.timeout(T):
        async with wsio.serve(_echo, "127.0.0.1", 0) as server:
            client = await open_raw(server)
            try:
                await client.send(raw_request(client))
                client.half_close()
                response = await client.read_http_response()
                assert response.status_code == 101
                assert await client.wait_eof()
                assert await client.recv_frame() is None
            finally:
                client.abort()
            await wait_until(lambda: not server.connections)
    assert_no_error_logged(caplog)


async def test_server_request_close_frame_and_eof_in_one_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Request, close frame and FIN together: 101, the close echoed, then TCP closed."""
    caplog.set_level(logging.INFO)
    async with asyncio.timeout(T):
        async with wsio.serve(_echo, "127.0.0.1", 0) as server:
            client = await open_raw(server)
            try:
                await client.send(raw_request(client) + build_frame(OP_CLOSE, close_payload(1001)))
                client.half_close()
                response = await client.read_http_response()
                assert response.status_code == 101
                frames = await client.recv_frames_until_close()
                assert frames_of(frames) == [(OP_CLOSE, close_payload(1001))]
                assert await client.wait_eof()
            finally:
                client.abort()
    assert_no_error_logged(caplog)


# Server: the process_request hook awaiting -------------------------------------------------------


async def test_server_frames_arriving_while_process_request_awaits() -> None:
    """Frames sent with the request and while an async process_request is still awaiting
    are kept. Reading pauses until the answer is sent, so they are read after the 101: the
    ping is answered and both messages are echoed, in order."""
    process_request = WaitingHook()

    async with asyncio.timeout(T):
        async with wsio.serve(_echo, "127.0.0.1", 0, process_request=process_request) as server:
            client = await open_raw(server)
            try:
                await client.send(raw_request(client) + build_frame(OP_TEXT, "one"))
                await process_request.entered.wait()
                await client.send(build_frame(OP_PING, b"p") + build_frame(OP_TEXT, "two"))
                await asyncio.sleep(0.05)  # sent while the hook awaits
                process_request.release.set()
                response = await client.read_http_response()
                assert response.status_code == 101
                frames = frames_of([await client.recv_frame() for _ in range(3)])
                # The echo of "one" and the pong may come in either order.
                assert sorted(frames) == [(OP_TEXT, b"one"), (OP_TEXT, b"two"), (OP_PONG, b"p")]
                assert frames.index((OP_TEXT, b"one")) < frames.index((OP_TEXT, b"two"))
                await client.send_close(1000)
                frames = await client.recv_frames_until_close()
                assert frames_of(frames) == [(OP_CLOSE, close_payload(1000))]
                assert await client.wait_eof()
            finally:
                client.abort()


async def test_server_eof_while_process_request_awaits(caplog: pytest.LogCaptureFixture) -> None:
    """A client half-closes after its request while an async process_request awaits (a
    health check): the hook's answer is still sent, as it is when the hook doesn't await."""
    caplog.set_level(logging.INFO)
    process_request = WaitingHook(lambda connection: connection.respond(200, "OK\n"))

    async with asyncio.timeout(T):
        async with wsio.serve(_echo, "127.0.0.1", 0, process_request=process_request) as server:
            client = await open_raw(server)
            try:
                await client.send(raw_request(client))
                await process_request.entered.wait()
                client.half_close()
                await asyncio.sleep(0.05)  # the server reads the EOF while the hook awaits
                process_request.release.set()
                try:
                    response: HTTPResponse | None = await client.read_http_response()
                except PeerClosed:
                    response = None
                assert response is not None, "the server closed without answering"
                assert response.status_code == 200
                assert response.body == b"OK\n"
                assert await client.wait_eof()
            finally:
                client.abort()
    assert_no_error_logged(caplog)


@pytest.mark.parametrize("hook", ["process_request", "process_response"])
async def test_server_hook_still_awaiting_at_open_timeout(
    caplog: pytest.LogCaptureFixture, hook: str
) -> None:
    """open_timeout covers the hooks: one still awaiting then is cancelled, the connection
    dropped without an answer, and nothing logged as an error."""
    caplog.set_level(logging.INFO)
    waiting_hook = WaitingHook()
    cancelled = asyncio.Event()

    async def hook_function(*args: Any) -> Any:
        try:
            return await waiting_hook(*args)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with asyncio.timeout(T):
        server = await wsio.serve(_echo, "127.0.0.1", 0, open_timeout=0.3, **{hook: hook_function})
        client = await open_raw(server)
        try:
            await client.send(raw_request(client))
            await waiting_hook.entered.wait()
            assert await client.wait_eof()
            assert bytes(client.received) == b""
            await cancelled.wait()
            await wait_until(lambda: not server.connections)
        finally:
            client.abort()
            server.close()
            await server.wait_closed()
    assert "opening handshake timed out" in caplog.text
    assert_no_error_logged(caplog)


@pytest.mark.parametrize("how", ["await close()", "transport.abort()"])
async def test_server_hook_that_closes_the_connection(
    caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """A process_request hook may drop a client rather than answer it: it closes the
    connection and returns, awaiting the end of the connection or not. Nothing is sent,
    the handler never runs, nothing is logged as an error."""
    caplog.set_level(logging.INFO)
    handler_ran: list[Any] = []

    async def handler(ws: Any) -> None:
        handler_ran.append(ws)  # pragma: no cover

    async def closing_hook(connection: Any, request: Any) -> None:
        await connection.close()

    def aborting_hook(connection: Any, request: Any) -> None:
        connection.transport.abort()

    process_request = closing_hook if how == "await close()" else aborting_hook

    async with asyncio.timeout(T):
        server = await wsio.serve(handler, "127.0.0.1", 0, process_request=process_request)
        client = await open_raw(server)
        try:
            await client.send(raw_request(client))
            assert await client.wait_eof()
            assert bytes(client.received) == b""
            await wait_until(lambda: not server.connections)
        finally:
            client.abort()
            server.close()
            await server.wait_closed()
    assert handler_ran == []
    assert_no_error_logged(caplog)


@pytest.mark.parametrize("hook", ["process_request", "process_response"])
async def test_server_close_while_hook_awaits_answers_503(hook: str) -> None:
    """server.close() while a request is fully received but a hook is still awaiting: the
    handshake in progress gets 503, the handler never runs, and the shutdown completes."""
    waiting_hook = WaitingHook()
    handler_ran: list[Any] = []

    async def handler(ws: Any) -> None:
        handler_ran.append(ws)
        await _echo(ws)

    async with asyncio.timeout(T):
        server = await wsio.serve(handler, "127.0.0.1", 0, **{hook: waiting_hook})
        client = await open_raw(server)
        try:
            await client.send(raw_request(client))
            await waiting_hook.entered.wait()
            server.close()
            await asyncio.sleep(0.05)
            waiting_hook.release.set()
            response = await client.read_http_response()
            assert response.status_code == 503, (response.status_code, handler_ran)
            assert await client.wait_eof()
            # The server waits for the client to close TCP (close_timeout at most).
            client.close()
            await asyncio.wait_for(server.wait_closed(), 2)
        finally:
            client.abort()
            server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), T)
    assert handler_ran == []


# Server: reading paused --------------------------------------------------------------------------


async def test_server_ping_and_close_while_reading_paused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """50 messages in one write fill a queue of 2 and pause reading; a ping and a close
    arrive meanwhile. The handler gets all 50 in order, the ping is answered once reading
    resumes, the close is echoed and iteration ends quietly."""
    caplog.set_level(logging.INFO)
    count = 50
    received: list[Any] = []
    done = asyncio.Event()
    ended: list[int | None] = []

    async def handler(ws: Any) -> None:
        await done.wait()
        async for message in ws:
            received.append(message)
            await asyncio.sleep(0)
        ended.append(ws.close_code)

    async with asyncio.timeout(T):
        async with wsio.serve(handler, "127.0.0.1", 0, max_queue=2) as server:
            client = await open_raw(server)
            try:
                response = await client.handshake()
                assert response.status_code == 101
                (ws,) = server.connections
                await client.send(b"".join(build_frame(OP_TEXT, f"m{i}") for i in range(count)))
                await wait_until(lambda: not ws.transport.is_reading())
                await client.send(
                    build_frame(OP_PING, b"late") + build_frame(OP_CLOSE, b"\x03\xe8")
                )
                await asyncio.sleep(0.05)
                done.set()
                frames = await client.recv_frames_until_close()
                assert frames_of(frames) == [(OP_PONG, b"late"), (OP_CLOSE, close_payload(1000))]
                assert await client.wait_eof()
            finally:
                client.abort()
    assert received == [f"m{i}" for i in range(count)]
    assert ended == [1000]
    assert_no_error_logged(caplog)


# Server: TLS -------------------------------------------------------------------------------------


async def test_server_tls_request_in_same_flight_as_client_finished(
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With TLS 1.3 the client's Finished and its request (plus a frame) may reach the
    server in one read, as its TLS handshake completes: all answered, the frame echoed."""
    caplog.set_level(logging.INFO)
    async with asyncio.timeout(T):
        async with wsio.serve(_echo, "127.0.0.1", 0, ssl=server_ssl_context) as server:
            port = server.sockets[0].getsockname()[1]
            async with Relay(port, coalesce_up=0.05) as relay:
                client = await RawClient.open(
                    "127.0.0.1", relay.port, ssl=client_ssl_context, server_hostname="localhost"
                )
                try:
                    await client.send(raw_request(client) + build_frame(OP_TEXT, "tls"))
                    response = await client.read_http_response()
                    assert response.status_code == 101
                    frame = await client.recv_frame()
                    assert frame is not None
                    assert (frame.opcode, frame.payload) == (OP_TEXT, b"tls")
                    await client.send_close(1000)
                    frames = await client.recv_frames_until_close()
                    assert frames_of(frames) == [(OP_CLOSE, close_payload(1000))]
                finally:
                    client.abort()
    assert_no_error_logged(caplog)


async def test_server_close_before_tls_client_hello(
    server_ssl_context: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    """server.close() while a TLS client still hasn't sent its ClientHello: the loop runs
    TLS (ssl=... to create_server), so the connection isn't the server's yet. It is
    dropped at open_timeout, the TLS handshake timeout, without an error logged, and the
    shutdown doesn't wait longer than that for it."""
    caplog.set_level(logging.INFO)
    open_timeout = 1.0
    async with asyncio.timeout(T):
        server = await wsio.serve(
            _echo, "127.0.0.1", 0, ssl=server_ssl_context, open_timeout=open_timeout
        )
        client = await open_raw(server)
        try:
            await asyncio.sleep(0.1)
            assert server.connections == set()
            server.close()
            await asyncio.wait_for(server.wait_closed(), open_timeout + 1)
            assert await client.wait_eof(open_timeout + 1)
            assert client.parser.buffer == bytearray()
            assert server.connections == set()
        finally:
            client.abort()
    assert_no_error_logged(caplog)


# Client: the 101 and what follows it -------------------------------------------------------------


async def test_client_101_frames_close_and_eof_in_one_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """101, text, ping, binary and close in one segment, then FIN: connect() succeeds,
    both messages are delivered, the ping answered, the close echoed, iteration ends
    quietly with 1000."""
    caplog.set_level(logging.INFO)
    seen: list[list[tuple[int, bytes]]] = []

    async def script(conn: ServerConn) -> None:
        key = await read_request_key(conn)
        await conn.send(
            head_101(key)
            + build_frame(OP_TEXT, "a", mask=None)
            + build_frame(OP_PING, b"pp", mask=None)
            + build_frame(OP_BINARY, b"b", mask=None)
            + build_frame(OP_CLOSE, close_payload(1000), mask=None)
        )
        conn.half_close()
        frames = await conn.recv_frames_until_close()
        seen.append(frames_of(frames))
        await conn.wait_eof()

    async with RawServer(script) as srv, asyncio.timeout(T):
        ws = await wsio.connect(srv.url, proxy=None)
        messages = [message async for message in ws]
        await ws.wait_closed()
    assert messages == ["a", b"b"]
    assert ws.close_code == 1000
    assert seen == [[(OP_PONG, b"pp"), (OP_CLOSE, close_payload(1000))]]
    assert_no_error_logged(caplog)


async def test_client_101_then_eof_in_one_write(caplog: pytest.LogCaptureFixture) -> None:
    """The server sends its 101 and closes at once: connect() succeeds (the handshake did),
    recv() raises ConnectionClosedError 1006."""
    caplog.set_level(logging.INFO)

    async def script(conn: ServerConn) -> None:
        key = await read_request_key(conn)
        await conn.send(head_101(key))
        conn.half_close()
        await conn.wait_eof()

    async with RawServer(script) as srv, asyncio.timeout(T):
        ws = await wsio.connect(srv.url, proxy=None)
        assert ws.response is not None and ws.response.status_code == 101
        with pytest.raises(wsio.ConnectionClosedError) as excinfo:
            await ws.recv()
        await ws.wait_closed()
    assert excinfo.value.code == 1006
    assert ws.close_code == 1006
    assert ws.state is wsio.State.CLOSED
    assert_no_error_logged(caplog)


async def test_client_101_message_then_garbage(caplog: pytest.LogCaptureFixture) -> None:
    """101, a valid message, then an HTTP head as if the server answered twice, in one
    segment: the message is delivered, then the connection fails with 1002."""
    caplog.set_level(logging.INFO)
    seen: list[list[tuple[int, bytes]]] = []

    async def script(conn: ServerConn) -> None:
        key = await read_request_key(conn)
        await conn.send(
            head_101(key) + build_frame(OP_TEXT, "kept", mask=None) + b"HTTP/1.1 200 OK\r\n\r\n"
        )
        frames = await conn.recv_frames_until_close()
        seen.append([(f.opcode, f.payload[:2]) for f in frames])
        conn.close()

    async with RawServer(script) as srv, asyncio.timeout(T):
        ws = await wsio.connect(srv.url, proxy=None)
        assert await ws.recv() == "kept"
        with pytest.raises(wsio.ConnectionClosedError) as excinfo:
            await ws.recv()
        await ws.wait_closed()
    assert excinfo.value.code == 1002
    assert seen == [[(OP_CLOSE, struct.pack("!H", 1002))]]
    assert_no_error_logged(caplog)


async def test_client_101_and_frames_in_1_byte_pieces() -> None:
    """The 101 and two frames trickle in one byte at a time: all delivered."""

    async def script(conn: ServerConn) -> None:
        key = await read_request_key(conn)
        await conn.send_chopped(
            head_101(key)
            + build_frame(OP_TEXT, "slow", mask=None)
            + build_frame(OP_BINARY, b"\x00\x01", mask=None),
            1,
        )
        frames = await conn.recv_frames_until_close()
        assert frames_of(frames) == [(OP_CLOSE, close_payload(1000))]
        conn.close()

    async with RawServer(script) as srv, asyncio.timeout(T):
        ws = await wsio.connect(srv.url, proxy=None)
        assert await ws.recv() == "slow"
        assert await ws.recv() == b"\x00\x01"
        await ws.close()
    assert ws.close_code == 1000


async def test_client_close_arrives_while_reading_paused() -> None:
    """The 101 and 40 messages in one segment fill a queue of 2; the close comes next,
    while reading is paused. Every message is delivered, then iteration ends with 1000."""
    count = 40

    async def script(conn: ServerConn) -> None:
        key = await read_request_key(conn)
        await conn.send(
            head_101(key)
            + b"".join(build_frame(OP_TEXT, f"m{i}", mask=None) for i in range(count))
        )
        await asyncio.sleep(0.05)
        await conn.send_close(1000)
        frames = await conn.recv_frames_until_close()
        assert frames_of(frames) == [(OP_CLOSE, close_payload(1000))]
        conn.close()

    async with RawServer(script) as srv, asyncio.timeout(T):
        ws = await wsio.connect(srv.url, proxy=None, max_queue=2)
        await asyncio.sleep(0.1)
        messages = [message async for message in ws]
        await ws.wait_closed()
    assert messages == [f"m{i}" for i in range(count)]
    assert ws.close_code == 1000


# Client: the server answers before the request ---------------------------------------------------


async def test_client_403_sent_on_accept(caplog: pytest.LogCaptureFixture) -> None:
    """A server that answers 403 as soon as it accepts, before reading the request."""
    caplog.set_level(logging.INFO)

    async with RawServer(answer_403_at_once) as srv, asyncio.timeout(T):
        with pytest.raises(wsio.InvalidStatus) as excinfo:
            await wsio.connect(srv.url, proxy=None)
    assert excinfo.value.response.status_code == 403
    assert excinfo.value.response.body == b"forbidden"
    assert_no_error_logged(caplog)


async def test_client_tls12_403_in_same_flight_as_server_finished(
    tls12_server_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With TLS 1.2 the server finishes its handshake first and answers 403 at once: the
    403 reaches the client together with the server's Finished."""
    caplog.set_level(logging.INFO)

    async with (
        RawServer(answer_403_at_once, ssl=tls12_server_context) as srv,
        Relay(srv.port, coalesce_down=0.05) as relay,
        asyncio.timeout(T),
    ):
        with pytest.raises(wsio.InvalidStatus) as excinfo:
            await wsio.connect(
                f"wss://127.0.0.1:{relay.port}/", ssl=client_ssl_context, proxy=None
            )
    assert excinfo.value.response.status_code == 403
    assert excinfo.value.response.body == b"forbidden"
    assert_no_error_logged(caplog)


@pytest.mark.parametrize("mode", ["http", "socks5"])
async def test_client_tls12_403_in_same_flight_through_proxy(
    mode: str,
    tls12_server_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same through a proxy: TLS starts on the tunnel, and the 403 arrives with the
    server's Finished, inside start_tls, before the request was sent."""
    caplog.set_level(logging.INFO)

    async with (
        RawServer(answer_403_at_once, ssl=tls12_server_context) as srv,
        Relay(mode=mode, coalesce_down=0.05) as proxy,
        asyncio.timeout(T),
    ):
        with pytest.raises(wsio.InvalidStatus) as excinfo:
            await wsio.connect(
                f"wss://127.0.0.1:{srv.port}/",
                ssl=client_ssl_context,
                proxy=proxy.url,
                open_timeout=2,
            )
    assert excinfo.value.response.status_code == 403
    assert excinfo.value.response.body == b"forbidden"
    assert_no_error_logged(caplog)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_client_answer_already_waiting_when_connect_starts(loop: str) -> None:
    """connect(sock=...) on a socket where the server's 403 already waits: the loop may
    read it before the request is written (uvloop does), and it must still be
    InvalidStatus. Plain asyncio streams: rawpeer's helpers don't run on uvloop."""

    async def main() -> None:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(FORBIDDEN)
            with contextlib.suppress(OSError):
                while await reader.read(65536):
                    pass
            writer.close()

        async with asyncio.timeout(T):
            server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            try:
                for _ in range(3):
                    sock = socket.create_connection(("127.0.0.1", port))
                    sock.setblocking(False)
                    await asyncio.sleep(0.05)  # the 403 is in the socket's buffer now
                    with pytest.raises(wsio.InvalidStatus) as excinfo:
                        await wsio.connect(f"ws://127.0.0.1:{port}/", sock=sock, proxy=None)
                    assert excinfo.value.response.status_code == 403
                    assert excinfo.value.response.body == b"forbidden"
            finally:
                server.close()

    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        uvloop.run(main())
    else:
        asyncio.run(main())


# Client: through proxies -------------------------------------------------------------------------


async def test_client_socks5_bytes_after_reply_are_the_servers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bytes read together with the SOCKS5 reply belong to the tunnel: the server's 403."""
    caplog.set_level(logging.INFO)

    async def script(conn: ServerConn) -> None:
        await conn.wait_eof()

    async with (
        RawServer(script) as srv,
        Relay(mode="socks5", after=FORBIDDEN) as proxy,
        asyncio.timeout(T),
    ):
        with pytest.raises(wsio.InvalidStatus) as excinfo:
            await wsio.connect(srv.url, proxy=proxy.url)
    assert excinfo.value.response.status_code == 403
    assert excinfo.value.response.body == b"forbidden"
    assert_no_error_logged(caplog)


@pytest.mark.parametrize("mode", ["http", "socks5"])
async def test_client_proxy_answer_with_partial_response_then_rest_and_eof(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Half of the server's answer comes with the proxy's, the rest later, then EOF ends a
    body without Content-Length: one InvalidStatus with the whole body."""
    caplog.set_level(logging.INFO)
    first = b"HTTP/1.1 503 Service Unavailable\r\nConnection: cl"
    rest = b"ose\r\n\r\ncome back later"
    async with Relay(mode=mode, after=first, then=rest) as proxy, asyncio.timeout(T):
        with pytest.raises(wsio.InvalidStatus) as excinfo:
            await wsio.connect("ws://127.0.0.1:9/", proxy=proxy.url)
    assert excinfo.value.response.status_code == 503
    assert excinfo.value.response.body == b"come back later"
    assert_no_error_logged(caplog)


async def test_client_101_with_frames_and_close_through_proxy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Through an HTTP proxy that coalesces what the server sends: the 101, a message and
    a close frame arrive in one piece. The message is delivered, the close echoed."""
    caplog.set_level(logging.INFO)
    seen: list[list[tuple[int, bytes]]] = []

    async def script(conn: ServerConn) -> None:
        key = await read_request_key(conn)
        await conn.send(head_101(key))
        await conn.send_frame(OP_TEXT, "via proxy")
        await conn.send_close(1000)
        frames = await conn.recv_frames_until_close()
        seen.append(frames_of(frames))
        conn.close()

    async with (
        RawServer(script) as srv,
        Relay(mode="http", coalesce_down=0.05) as proxy,
        asyncio.timeout(T),
    ):
        ws = await wsio.connect(srv.url, proxy=proxy.url)
        messages = [message async for message in ws]
        await ws.wait_closed()
    assert messages == ["via proxy"]
    assert ws.close_code == 1000
    assert seen == [[(OP_CLOSE, close_payload(1000))]]
    assert_no_error_logged(caplog)


async def test_server_stops_reading_while_a_hook_awaits() -> None:
    """While process_request awaits, the server reads nothing more: a client streaming data
    behind its request fills the socket buffers and has to wait, instead of making the
    server buffer without bound until open_timeout."""
    process_request = WaitingHook()

    async with asyncio.timeout(T):
        async with wsio.serve(_echo, "127.0.0.1", 0, process_request=process_request) as server:
            port = server.sockets[0].getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(build_request(host=f"127.0.0.1:{port}"))
                await process_request.entered.wait()
                chunk = build_frame(OP_BINARY, bytes(60000), mask=b"abcd")
                # Far more than loopback's socket buffers can hold: 64 MiB.
                for _ in range(64 * 2**20 // len(chunk)):
                    writer.write(chunk)
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(writer.drain(), 0.5)
                [connection] = server.connections
                assert connection.protocol.state is wsio.State.CONNECTING
            finally:
                process_request.release.set()
                writer.transport.abort()
