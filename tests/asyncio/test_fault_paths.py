"""Errors from the peer, the transport and the application's hooks, end to end.

A peer's mistake ends its connection with ``ConnectionClosedError`` and, at most, a debug
line; an application's bug in a hook is answered 500 and logged once at error level. In
every case the connection leaves ``server.connections`` and ``wait_closed()`` returns.
Both event loops run the transport cases: asyncio's raises some errors synchronously
where uvloop reports them in a callback.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import ssl
import struct
from collections.abc import Callable
from typing import Any

import pytest
import uvloop

import wsio
from rawpeer import OP_TEXT, RawClient, RawConnection, RawServer, ServerConn, build_frame

T = 5.0  # seconds: the bound of every wait


def assert_quiet(caplog: pytest.LogCaptureFixture, *, errors: int = 0) -> None:
    """No record carries a traceback, and ``errors`` records at most are at ERROR level
    (an application's bug logged once, with its traceback if it raised)."""
    gc.collect()  # surfaces "Task exception was never retrieved" and the like
    failed = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failed) == errors, [(r.name, r.getMessage()) for r in failed]
    for record in caplog.records:
        if record not in failed:
            assert record.exc_info is None, (record.name, record.getMessage())


async def until(condition: Callable[[], object]) -> None:
    """Poll ``condition`` every 5 ms, for ``T`` seconds at most."""
    for _ in range(int(T / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


async def close_server(server: Any) -> None:
    """Close ``server``; its connections must all be gone, and wait_closed() return."""
    server.close()
    async with asyncio.timeout(T):
        await server.wait_closed()
    assert not server.connections


# -- Valid messages, a violation, then the peer is gone --------------------------------------

# Two messages fill the queue (max_queue=2): reading pauses, so wsio only learns that the peer
# is gone from what writing the close frame does. A peer that closed gracefully (FIN) answers
# that close frame with a reset, which the kernel processes before the write returns: the
# half-close that follows fails with ENOTCONN on asyncio's loop, every time.


async def drain(ws: Any) -> tuple[list[Any], BaseException | None]:
    """recv() until it raises (three calls at most): the messages, then the exception.

    The calls follow each other without a turn of the loop, as in ``async for``: wsio reads
    nothing meanwhile (no wait_for, which would run each in a task of its own).
    """
    messages: list[Any] = []
    async with asyncio.timeout(T):
        for _ in range(3):
            try:
                messages.append(await ws.recv())
            except Exception as exc:
                return messages, exc
    return messages, None


def peer_gone(peer: RawConnection, fault: str) -> None:
    """Close the peer's socket at once: gracefully (FIN, no TLS close_notify) or with a
    reset (SO_LINGER 0)."""
    if fault == "reset":
        sock = peer.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.abort()


def messages_then_violation(peer_masks: bool) -> bytes:
    """Messages "one" and "two", then a frame masked the wrong way (1002)."""
    right, wrong = (b"\x01\x02\x03\x04", None) if peer_masks else (None, b"\x01\x02\x03\x04")
    return (
        build_frame(OP_TEXT, "one", mask=right)
        + build_frame(OP_TEXT, "two", mask=right)
        + build_frame(OP_TEXT, "bad", mask=wrong)
    )


async def violation_then_peer_gone(
    role: str,
    fault: str,
    released_by: str,
    server_ssl: ssl.SSLContext | None,
    client_ssl: ssl.SSLContext | None,
) -> tuple[list[Any], BaseException | None]:
    """The scenario in either role; returns what the application's recv() calls got.

    ``released_by``: the application's recv() sends the close frame, or the failure grace
    timer does while the application waits for the end of the connection.
    """
    go = asyncio.Event()

    async def take(ws: Any) -> tuple[list[Any], BaseException | None]:
        if released_by == "recv":
            await go.wait()
        else:
            async with asyncio.timeout(T):
                await ws.wait_closed()
        return await drain(ws)

    if role == "server":
        connections: list[Any] = []
        outcome: asyncio.Future[tuple[list[Any], BaseException | None]]
        outcome = asyncio.get_running_loop().create_future()

        async def handler(ws: Any) -> None:
            connections.append(ws)
            outcome.set_result(await take(ws))

        server = await wsio.serve(handler, "127.0.0.1", 0, ssl=server_ssl, max_queue=2)
        try:
            port = server.sockets[0].getsockname()[1]
            client = await RawClient.open(
                "127.0.0.1", port, ssl=client_ssl, server_hostname="localhost"
            )
            try:
                assert (await client.handshake(timeout=T)).status_code == 101
                await client.send(messages_then_violation(True))
                await until(lambda: connections and not connections[0].transport.is_reading())
                peer_gone(client, fault)
                await client.wait_closed(T)
                go.set()
                result = await asyncio.wait_for(outcome, T)
            finally:
                client.abort()
        finally:
            await close_server(server)
        return result

    async def script(conn: ServerConn) -> None:
        await conn.handshake(T)
        await conn.send(messages_then_violation(False))
        async with asyncio.timeout(T):
            await go.wait()
        peer_gone(conn, fault)
        await conn.wait_closed(T)

    async with RawServer(script, ssl=server_ssl) as srv:
        ws = await wsio.connect(f"{srv.url}/", ssl=client_ssl, max_queue=2, open_timeout=T)
        await until(lambda: not ws.transport.is_reading())
        go.set()
        await srv.wait_scripts(T)
        result = await take(ws)
        async with asyncio.timeout(T):
            await ws.wait_closed()
    return result


def check_violation_outcome(result: tuple[list[Any], BaseException | None]) -> None:
    messages, exc = result
    assert messages == ["one", "two"]
    assert isinstance(exc, wsio.ConnectionClosedError), repr(exc)
    # 1002 once the close frame went out. Under TLS the loop reads on below the paused
    # application, and may see the peer gone first: no close frame was exchanged then, 1006.
    assert exc.code in (1002, 1006)
    assert exc.sent is None or exc.sent.code == 1002
    # Either way the violation is the cause, not the transport's error.
    assert isinstance(exc.__cause__, wsio.ProtocolError), repr(exc.__cause__)


FAULT_CASES = [
    pytest.param(role, tls, fault, released_by, id=f"{role}-{tls}-{fault}-{released_by}")
    for role in ("server", "client")
    for tls in ("tcp", "tls")
    for fault in ("close", "reset")
    for released_by in ("recv", "grace-timer")
]


@pytest.fixture
def long_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    # Long enough for the peer to be gone before the timer fires, short enough for a test.
    monkeypatch.setattr(wsio.defaults, "FAILURE_GRACE", 0.5)


@pytest.mark.usefixtures("long_grace")
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize(("role", "tls", "fault", "released_by"), FAULT_CASES)
def test_violation_then_peer_gone(
    role: str,
    tls: str,
    fault: str,
    released_by: str,
    loop: str,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secure = tls == "tls"

    async def main() -> tuple[list[Any], BaseException | None]:
        assert loop in type(asyncio.get_running_loop()).__module__
        async with asyncio.timeout(3 * T):
            return await violation_then_peer_gone(
                role,
                fault,
                released_by,
                server_ssl_context if secure else None,
                client_ssl_context if secure else None,
            )

    check_violation_outcome(uvloop.run(main()) if loop == "uvloop" else asyncio.run(main()))
    assert_quiet(caplog)


async def test_handler_ending_on_a_peer_violation_logs_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A handler that lets the ConnectionClosedError of a peer's violation out: one debug
    line, without the traceback."""
    caplog.set_level(logging.DEBUG)
    ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def handler(ws: Any) -> None:
        try:
            async for _ in ws:
                pass
        finally:
            ended.set_result(None)

    server = await wsio.serve(handler, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        async with await RawClient.open("127.0.0.1", port) as client:
            assert (await client.handshake(timeout=T)).status_code == 101
            await client.send(messages_then_violation(True))
            frames = await client.recv_frames_until_close(T)
            assert frames[-1].close_code == 1002
            await asyncio.wait_for(ended, T)
    finally:
        await close_server(server)
    lines = [r.getMessage() for r in caplog.records if r.name == "wsio.server"]
    assert any(line.startswith("connection closed during handler: ") for line in lines), lines
    assert_quiet(caplog)


# -- Hooks: the application's bugs -----------------------------------------------------------


class Boom(BaseException):
    """A BaseException of the application's own, neither an exit nor a cancellation."""


async def resolved(value: Any) -> Any:
    await asyncio.sleep(0)
    return value


def future_of(value: Any) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(future.set_result, value)
    return future


async def answer_to_raw_client(server: Any) -> tuple[int, bool]:
    """A raw client's handshake with ``server``: the status, and whether EOF followed."""
    port = server.sockets[0].getsockname()[1]
    async with await RawClient.open("127.0.0.1", port) as client:
        response = await client.handshake(timeout=T)
        return response.status_code, await client.wait_eof(T)


async def answered_500(hook: str, function: Callable[..., Any]) -> None:
    """A server with ``function`` as its ``hook`` answers a raw client 500 and hangs up;
    the connection is gone, and the server closes."""
    server = await wsio.serve(lambda ws: ws.close(), "127.0.0.1", 0, **{hook: function})
    try:
        assert await answer_to_raw_client(server) == (500, True)
        await until(lambda: not server.connections)
    finally:
        await close_server(server)


TUPLE = (101, [("X-Old-Style", "yes")], b"")

WRONG_ANSWERS = {
    "process_response-tuple": ("process_response", lambda *_: TUPLE, "(101, [("),
    "process_response-str": ("process_response", lambda *_: "nope", "'nope'"),
    "process_response-async-tuple": ("process_response", lambda *_: resolved(TUPLE), "(101"),
    "process_response-future-str": ("process_response", lambda *_: future_of("x"), "'x'"),
    "process_request-tuple": ("process_request", lambda *_: (200, [], b"ok"), "(200, [], b'ok')"),
    "process_request-async-str": ("process_request", lambda *_: resolved("ok"), "'ok'"),
}


@pytest.mark.parametrize("case", WRONG_ANSWERS)
async def test_hook_returning_the_wrong_type_is_answered_500(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    hook, function, shown = WRONG_ANSWERS[case]
    caplog.set_level(logging.DEBUG)
    await answered_500(hook, function)
    failed = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failed) == 1, failed
    assert f"{hook} returned {shown}" in failed[0], failed[0]
    assert "not a Response or None" in failed[0], failed[0]


class EqualsAnything:
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__


async def select_coroutine(connection: Any, offered: Any) -> str:
    return "chat"


def select_raising(connection: Any, offered: Any) -> str:
    raise Boom("select_subprotocol bug")


SELECT_CASES = {
    "equals-anything": lambda connection, offered: EqualsAnything(),
    "bytes": lambda connection, offered: b"chat",
    "coroutine": select_coroutine,
    "base-exception": select_raising,
}


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("hooks", [False, True], ids=["no-hooks", "with-hooks"])
@pytest.mark.parametrize("case", SELECT_CASES)
async def test_select_subprotocol_bug_is_answered_500(
    case: str, hooks: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    kwargs: dict[str, Any] = {"select_subprotocol": SELECT_CASES[case]}
    if hooks:  # the request is then answered from a task, not from the read callback
        kwargs["process_request"] = lambda connection, request: None
    server = await wsio.serve(lambda ws: ws.close(), "127.0.0.1", 0, open_timeout=T, **kwargs)
    try:
        port = server.sockets[0].getsockname()[1]
        async with await RawClient.open("127.0.0.1", port) as client:
            response = await client.handshake(headers={"Sec-WebSocket-Protocol": "chat"})
            assert response.status_code == 500
            assert await client.wait_eof(T)
        await until(lambda: not server.connections)
    finally:
        await close_server(server)
    gc.collect()  # a coroutine never awaited warns when collected
    failed = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failed) == 1, failed
    assert failed[0].startswith("opening handshake failed in a hook: "), failed[0]
    if case != "base-exception":
        # What it returned is in the message itself, not only in a traceback.
        assert "select_subprotocol returned " in failed[0], failed[0]


def unserializable(connection: Any, request: Any, response: wsio.Response) -> wsio.Response:
    return wsio.Response(101, "Switching Protocols", response.headers, "a str body")  # type: ignore[arg-type]


def raising_boom(*args: Any) -> None:
    raise Boom("hook bug")


BROKEN_HOOKS = {
    "process_request-base-exception": ("process_request", raising_boom),
    "process_response-base-exception": ("process_response", raising_boom),
    "process_response-unserializable": ("process_response", unserializable),
}


@pytest.mark.parametrize("case", BROKEN_HOOKS)
async def test_broken_hook_is_answered_500(case: str, caplog: pytest.LogCaptureFixture) -> None:
    hook, function = BROKEN_HOOKS[case]
    caplog.set_level(logging.DEBUG)
    await answered_500(hook, function)
    assert_quiet(caplog, errors=1)


async def test_handler_raising_a_base_exception_closes_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    async def handler(ws: Any) -> None:
        raise Boom("handler bug")

    server = await wsio.serve(handler, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        async with await RawClient.open("127.0.0.1", port) as client:
            assert (await client.handshake(timeout=T)).status_code == 101
            frames = await client.recv_frames_until_close(T)
            assert frames[-1].close_code == 1011
            await client.send_close(1011)
            assert await client.wait_eof(T)
        await until(lambda: not server.connections)
    finally:
        await close_server(server)
    failed = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in failed] == ["connection handler failed"]
    assert failed[0].exc_info is not None and isinstance(failed[0].exc_info[1], Boom)


async def never(*args: Any) -> None:
    await asyncio.Event().wait()


@pytest.mark.parametrize("hook", ["process_request", "process_response"])
async def test_hook_that_never_returns_ends_at_open_timeout(
    hook: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await wsio.serve(
        lambda ws: ws.close(), "127.0.0.1", 0, open_timeout=0.5, **{hook: never}
    )
    try:
        port = server.sockets[0].getsockname()[1]
        async with await RawClient.open("127.0.0.1", port) as client:
            await client.send(
                b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n\r\n"
            )
            assert await client.wait_eof(T)
            assert client.received == b""
        await until(lambda: not server.connections)
    finally:
        await close_server(server)
    assert_quiet(caplog)


@pytest.mark.parametrize("hook", ["process_request", "process_response"])
async def test_hook_that_never_returns_does_not_hold_the_shutdown(
    hook: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    called = asyncio.Event()

    async def waits_forever(*args: Any) -> None:
        called.set()
        await never()

    server = await wsio.serve(
        lambda ws: ws.close(), "127.0.0.1", 0, open_timeout=None, **{hook: waits_forever}
    )
    port = server.sockets[0].getsockname()[1]
    async with await RawClient.open("127.0.0.1", port) as client:
        handshake = asyncio.ensure_future(client.handshake(timeout=T))
        try:
            async with asyncio.timeout(T):
                await called.wait()
            server.close()
            response = await asyncio.wait_for(handshake, T)
        finally:
            handshake.cancel()
        assert response.status_code == 503
        assert await client.wait_eof(T)
    await close_server(server)
    assert_quiet(caplog)


@pytest.mark.parametrize("hook", ["process_request", "process_response"])
async def test_hook_is_cancelled_when_the_client_leaves(
    hook: str,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hook still running when the connection is lost ends with it, even one that would
    never return (no open_timeout to bound it). Reading pauses while a hook awaits, but
    the loop's TLS reads on below it: it sees the reset."""
    caplog.set_level(logging.DEBUG)
    called = asyncio.Event()
    cancelled = asyncio.Event()

    async def waits_forever(*args: Any) -> None:
        called.set()
        try:
            await never()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    server = await wsio.serve(
        lambda ws: ws.close(),
        "127.0.0.1",
        0,
        ssl=server_ssl_context,
        open_timeout=None,
        **{hook: waits_forever},
    )
    try:
        port = server.sockets[0].getsockname()[1]
        client = await RawClient.open(
            "127.0.0.1", port, ssl=client_ssl_context, server_hostname="localhost"
        )
        handshake = asyncio.ensure_future(client.handshake(timeout=T))
        try:
            async with asyncio.timeout(T):
                await called.wait()
            client.reset_connection()
            async with asyncio.timeout(T):
                await cancelled.wait()
        finally:
            handshake.cancel()
            client.abort()
        await until(lambda: not server.connections)
    finally:
        await close_server(server)
    assert_quiet(caplog)
