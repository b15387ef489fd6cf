"""Bad opening handshake responses sent to a wsio client by a raw server (BAD-INPUT.md 11–14).

A bad response must raise the documented exception from ``connect`` (of either I/O layer),
never yield an open connection, and the client must close the TCP connection.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
from typing import Any

import pytest

import wsio
from layers import Layer
from rawpeer import OP_CLOSE, OP_TEXT, RawServer, ServerConn, accept_key, build_response

# Both I/O layers (tests/layers.py): the client is the test's layer's.
pytestmark = pytest.mark.both_layers

EOF_TIMEOUT = 3.0


def b64(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode()


class Outcome:
    """What a one-shot raw server script saw."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.eof: bool | None = None


def responding(outcome: Outcome, response: Any) -> Any:
    """A script: read the request, send ``response(request)``, then wait for the client's EOF."""

    async def script(conn: ServerConn) -> None:
        request = await conn.read_request()
        outcome.requests.append(request)
        await conn.send(response(request))
        # A frame right after a bad response must never reach the application.
        await conn.send_frame(OP_TEXT, "must not be delivered")
        outcome.eof = await conn.wait_eof(EOF_TIMEOUT)

    return script


async def connect_error(
    layer: Layer, script: Any, path: str = "/", **kwargs: Any
) -> BaseException:
    """Run ``script`` behind a RawServer; return what ``layer.connect`` raised."""
    async with RawServer(script) as srv:
        try:
            ws = await asyncio.wait_for(layer.connect(srv.url + path, **kwargs), 5)
        except (wsio.WebSocketError, TimeoutError) as exc:
            return exc
        await ws.close()
        raise AssertionError("connect() succeeded against a bad response")


async def answer_close(conn: ServerConn) -> None:
    """Wait for the client's close frame, echo it, close TCP (the server's duty)."""
    frame = await conn.recv_frame()
    assert frame is not None and frame.opcode == OP_CLOSE, frame
    await conn.send_close(frame.close_code)
    conn.close()


def key_of(request: Any) -> str:
    key: str = request.header("Sec-WebSocket-Key")
    return key


# -- 11. A 101 that does not complete the handshake ------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected", "name"),
    [
        pytest.param(
            {"Sec-WebSocket-Accept": accept_key(b64(16))},
            wsio.InvalidHeader,
            "sec-websocket-accept",
            id="wrong-accept",
        ),
        pytest.param(
            {"Sec-WebSocket-Accept": None},
            wsio.InvalidHeader,
            "sec-websocket-accept",
            id="missing-accept",
        ),
        pytest.param({"Upgrade": None}, wsio.InvalidUpgrade, "upgrade", id="no-upgrade"),
        pytest.param({"Upgrade": "h2c"}, wsio.InvalidUpgrade, "upgrade", id="upgrade-h2c"),
        pytest.param({"Connection": None}, wsio.InvalidUpgrade, "connection", id="no-connection"),
        pytest.param(
            {"Connection": "keep-alive"},
            wsio.InvalidUpgrade,
            "connection",
            id="connection-keep-alive",
        ),
    ],
)
async def test_bad_101_is_a_handshake_error(
    layer: Layer, headers: dict[str, str | None], expected: type[Exception], name: str
) -> None:
    outcome = Outcome()

    def response(request: Any) -> bytes:
        return build_response(key_of(request), headers=headers)

    exc = await connect_error(layer, responding(outcome, response))
    assert isinstance(exc, expected), repr(exc)
    assert isinstance(exc, wsio.InvalidHeader)
    assert exc.name.lower() == name
    assert outcome.eof is True, "client did not close the connection"


async def test_two_accept_headers_are_a_handshake_error(layer: Layer) -> None:
    outcome = Outcome()

    def response(request: Any) -> bytes:
        good = accept_key(key_of(request))
        return build_response(
            None,
            headers=[("Sec-WebSocket-Accept", good), ("Sec-WebSocket-Accept", good)],
        )

    exc = await connect_error(layer, responding(outcome, response))
    assert isinstance(exc, wsio.InvalidHeader), repr(exc)
    assert outcome.eof is True


# -- 12. Status line, status codes, header limits --------------------------------------------


@pytest.mark.parametrize(
    "status_line",
    [
        b"HTTP/1.1 101 Switching Protocols",
        b"HTTP/1.1 101 Web Socket Protocol Handshake",
        b"HTTP/1.1 101 OK",
        b"HTTP/1.1 101 ",
        b"HTTP/1.1 101",
        b"HTTP/1.1 101 \xc3\xa9t\xc3\xa9 \x80",
    ],
)
async def test_any_101_reason_phrase_is_accepted(layer: Layer, status_line: bytes) -> None:
    async def script(conn: ServerConn) -> None:
        request = await conn.read_request()
        await conn.accept(request, status_line=status_line)
        await conn.send_frame(OP_TEXT, "hello")
        await answer_close(conn)

    async with RawServer(script) as srv:
        ws = await asyncio.wait_for(layer.connect(srv.url + "/"), 5)
        try:
            assert await asyncio.wait_for(ws.recv(), 5) == "hello"
        finally:
            await asyncio.wait_for(ws.close(), 5)


@pytest.mark.parametrize(
    ("status", "reason"),
    [(200, "OK"), (403, "Forbidden by policy"), (426, "Upgrade Required"), (404, "")],
)
async def test_non_101_is_invalid_status(layer: Layer, status: int, reason: str) -> None:
    outcome = Outcome()
    body = f"no websocket for you ({status})\n".encode()

    def response(request: Any) -> bytes:
        line = f"HTTP/1.1 {status} {reason}".rstrip(" ").encode()
        return build_response(
            None,
            status_line=line,
            headers={
                "Upgrade": None,
                "Connection": "close",
                "X-Test": "yes",
                "Content-Length": str(len(body)),
            },
            body=body,
        )

    exc = await connect_error(layer, responding(outcome, response))
    assert isinstance(exc, wsio.InvalidStatus), repr(exc)
    assert exc.response.status_code == status
    assert exc.response.reason_phrase == reason
    assert header_value(exc.response.headers, "X-Test") == "yes"
    assert exc.response.body == body
    assert outcome.eof is True


async def test_non_101_body_of_1_mib_is_kept(layer: Layer) -> None:
    outcome = Outcome()
    body = bytes(range(256)) * 4096  # exactly 1 MiB

    def response(request: Any) -> bytes:
        return build_response(
            None,
            status_line=b"HTTP/1.1 500 Internal Server Error",
            headers={"Upgrade": None, "Connection": "close", "Content-Length": str(len(body))},
            body=body,
        )

    exc = await connect_error(layer, responding(outcome, response))
    assert isinstance(exc, wsio.InvalidStatus), repr(exc)
    assert exc.response.status_code == 500
    assert exc.response.body == body


async def test_non_101_body_until_eof_is_kept(layer: Layer) -> None:
    body = b"closing-delimited body"

    async def script(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.send(
            build_response(
                None,
                status_line=b"HTTP/1.1 403 Forbidden",
                headers={"Upgrade": None, "Connection": "close"},
                body=body,
            )
        )
        conn.close()

    exc = await connect_error(layer, script)
    assert isinstance(exc, wsio.InvalidStatus), repr(exc)
    assert exc.response.status_code == 403
    assert exc.response.body == body


async def test_response_with_129_headers_is_a_security_error(layer: Layer) -> None:
    outcome = Outcome()

    def response(request: Any) -> bytes:
        # build_response sends 3 headers of its own.
        extra = [(f"X-Header-{i}", "x") for i in range(126)]
        return build_response(key_of(request), headers=extra)

    exc = await connect_error(layer, responding(outcome, response))
    assert isinstance(exc, wsio.SecurityError), repr(exc)
    assert outcome.eof is True


async def test_response_with_128_headers_is_accepted(layer: Layer) -> None:
    async def script(conn: ServerConn) -> None:
        request = await conn.read_request()
        extra = [(f"X-Header-{i}", "x") for i in range(125)]
        await conn.accept(request, extra_headers=extra)
        await answer_close(conn)

    async with RawServer(script) as srv:
        ws = await asyncio.wait_for(layer.connect(srv.url + "/"), 5)
        await asyncio.wait_for(ws.close(), 5)


async def test_response_header_line_over_8_kib_is_a_security_error(layer: Layer) -> None:
    outcome = Outcome()

    def response(request: Any) -> bytes:
        return build_response(key_of(request), headers={"X-Long": "a" * 9000})

    exc = await connect_error(layer, responding(outcome, response))
    assert isinstance(exc, wsio.SecurityError), repr(exc)
    assert outcome.eof is True


# -- 13. Negotiation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "headers", "expected"),
    [
        pytest.param(
            None,
            {"Sec-WebSocket-Protocol": "chat"},
            wsio.NegotiationError,
            id="subprotocol-not-offered",
        ),
        pytest.param(
            ["chat"],
            {"Sec-WebSocket-Protocol": "superchat"},
            wsio.NegotiationError,
            id="other-subprotocol",
        ),
        pytest.param(
            ["chat"],
            [("Sec-WebSocket-Protocol", "chat"), ("Sec-WebSocket-Protocol", "chat")],
            wsio.InvalidHandshake,
            id="two-subprotocol-headers",
        ),
        pytest.param(
            None,
            {"Sec-WebSocket-Extensions": "x-unknown"},
            wsio.NegotiationError,
            id="extension",
        ),
    ],
)
async def test_unoffered_negotiation_is_an_error(
    layer: Layer, offered: list[str] | None, headers: Any, expected: type[Exception]
) -> None:
    outcome = Outcome()

    def response(request: Any) -> bytes:
        return build_response(key_of(request), headers=headers)

    exc = await connect_error(layer, responding(outcome, response), subprotocols=offered)
    assert isinstance(exc, expected), repr(exc)
    assert outcome.eof is True


async def test_offered_subprotocol_is_accepted(layer: Layer) -> None:
    async def script(conn: ServerConn) -> None:
        request = await conn.read_request()
        assert request.has_token("Sec-WebSocket-Protocol", "chat")
        await conn.accept(request, extra_headers={"Sec-WebSocket-Protocol": "chat"})
        await answer_close(conn)

    async with RawServer(script) as srv:
        ws = await asyncio.wait_for(layer.connect(srv.url + "/", subprotocols=["chat"]), 5)
        assert ws.subprotocol == "chat"
        await asyncio.wait_for(ws.close(), 5)


# -- 14. Redirects ---------------------------------------------------------------------------


def redirect_to(location: str) -> bytes:
    return build_response(
        None,
        status_line=b"HTTP/1.1 302 Found",
        headers={
            "Upgrade": None,
            "Connection": "close",
            "Location": location,
            "Content-Length": "0",
        },
    )


async def test_redirect_is_followed(layer: Layer) -> None:
    async def target(conn: ServerConn) -> None:
        await conn.handshake()
        await conn.send_frame(OP_TEXT, "arrived")
        await answer_close(conn)

    async with RawServer(target) as dst:

        async def redirector(conn: ServerConn) -> None:
            await conn.read_request()
            await conn.send(redirect_to(dst.url + "/there"))
            await conn.wait_eof(EOF_TIMEOUT)

        async with RawServer(redirector) as src:
            ws = await asyncio.wait_for(layer.connect(src.url + "/here"), 5)
            try:
                assert await asyncio.wait_for(ws.recv(), 5) == "arrived"
            finally:
                await asyncio.wait_for(ws.close(), 5)
        assert dst.connections[0].request is not None
        assert dst.connections[0].request.path == "/there"


async def test_redirect_loop_ends_after_10_hops(layer: Layer) -> None:
    hops = 0

    async def loop(conn: ServerConn) -> None:
        nonlocal hops
        request = await conn.read_request()
        hops += 1
        await conn.send(redirect_to(f"ws://127.0.0.1:{port}/hop{hops}"))
        await conn.wait_eof(EOF_TIMEOUT)
        assert request.method == "GET"

    async with RawServer(loop) as srv:
        port = srv.port
        try:
            ws = await asyncio.wait_for(layer.connect(srv.url + "/"), 10)
        except wsio.InvalidHandshake as exc:
            error: BaseException = exc
        else:
            await ws.close()
            raise AssertionError("a redirect loop ended with an open connection")
    # The first request plus 10 followed redirects at most; never more.
    assert hops in (10, 11), hops
    assert not isinstance(error, wsio.InvalidStatus) or error.response.status_code == 302


async def test_redirect_from_wss_to_ws_is_refused(
    layer: Layer, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    async def plain(conn: ServerConn) -> None:
        await conn.handshake()

    async with RawServer(plain) as insecure:

        async def redirector(conn: ServerConn) -> None:
            await conn.read_request()
            await conn.send(redirect_to(insecure.url + "/"))
            await conn.wait_eof(EOF_TIMEOUT)

        async with RawServer(redirector, ssl=server_ssl_context) as secure:
            with pytest.raises(wsio.InvalidHandshake):
                await asyncio.wait_for(layer.connect(secure.url + "/", ssl=client_ssl_context), 5)
    assert insecure.connections == []


def header_value(headers: Any, name: str) -> str | None:
    """Read one header from wsio's headers object (a mapping or a list of pairs)."""
    if hasattr(headers, "get"):
        value: str | None = headers.get(name)
        return value
    values = [v for n, v in headers if n.lower() == name.lower()]
    return values[0] if values else None
