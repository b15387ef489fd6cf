"""Autobahn-style conformance (sections 1-10) of a wsio client, driven by a scripted raw server,
on both I/O layers.

The client application echoes every message with its type. The raw server plays the same
scenarios as in test_server_conformance.py, unmasked, and asserts on what the client sends:
exact echoes and pongs (masked), failures with the right close code right away, the close
code echoed. After the closing handshake the raw server closes TCP (RFC 6455 §7.1.1) and the
client must then finish.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest
from conformance_cases import (
    CLOSING,
    FAIL_FAST,
    FRAGMENTATION,
    FRAMING,
    HELLO,
    LIMITS,
    MISC,
    OPCODES,
    PINGS,
    RESERVED_BITS,
    ROUND_TRIP_COUNT,
    ROUND_TRIPS,
    UTF8,
    UTF8_SEQUENCES,
    Case,
    MiB,
    ids,
)
from conformance_peer import (
    CLOSE_WAIT,
    run_case,
    run_close_after_big_message,
    run_fail_fast,
    run_round_trips,
)

import wsio
from layers import Layer
from rawpeer import (
    OP_CLOSE,
    OP_TEXT,
    RawServer,
    ServerConn,
    build_frame,
    build_response,
    close_payload,
)

# Both I/O layers (tests/layers.py): the echoing client is the layer's.
pytestmark = pytest.mark.both_layers

MAX_SIZE = 32 * MiB
CLIENT_EXIT = 5.0
"""Seconds the wsio client gets to finish once the raw server closed TCP."""


async def against_client(
    layer: Layer, body: Callable[[ServerConn], Awaitable[None]], timeout: float
) -> None:
    """Run ``body`` in a raw server (after a correct handshake) against an echoing wsio
    client of ``layer``."""

    async def script(conn: ServerConn) -> None:
        request = await conn.handshake()
        assert request.method == "GET"
        assert request.has_token("Upgrade", "websocket")
        await body(conn)

    async with RawServer(script, exit_timeout=timeout) as server:
        client = asyncio.create_task(
            layer.echo_client(server.url + "/", max_size=MAX_SIZE, open_timeout=5, close_timeout=3)
        )
        try:
            await server.wait_connection(5.0)
            await server.wait_scripts(timeout)
            if server.errors:
                raise server.errors[0]
            async with asyncio.timeout(CLIENT_EXIT):
                await client
        finally:
            if not client.done():
                client.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await client


async def play(layer: Layer, case: Case) -> None:
    async def body(conn: ServerConn) -> None:
        await run_case(conn, case, peer_is_client=True)

    await against_client(layer, body, timeout=case.timeout + 10)


@pytest.mark.parametrize("case", FRAMING, ids=ids(FRAMING))
async def test_framing(layer: Layer, case: Case) -> None:
    await play(layer, case)


@pytest.mark.parametrize("case", PINGS, ids=ids(PINGS))
async def test_pings(layer: Layer, case: Case) -> None:
    await play(layer, case)


@pytest.mark.parametrize("case", RESERVED_BITS, ids=ids(RESERVED_BITS))
async def test_reserved_bits(layer: Layer, case: Case) -> None:
    await play(layer, case)


@pytest.mark.parametrize("case", OPCODES, ids=ids(OPCODES))
async def test_opcodes(layer: Layer, case: Case) -> None:
    await play(layer, case)


@pytest.mark.parametrize("case", FRAGMENTATION, ids=ids(FRAGMENTATION))
async def test_fragmentation(layer: Layer, case: Case) -> None:
    await play(layer, case)


@pytest.mark.parametrize("case", UTF8, ids=ids(UTF8))
async def test_utf8(layer: Layer, case: Case) -> None:
    await play(layer, case)


@pytest.mark.parametrize(("case_id", "how", "parts"), FAIL_FAST, ids=[c[0] for c in FAIL_FAST])
async def test_utf8_fail_fast(
    layer: Layer, case_id: str, how: str, parts: tuple[bytes, bytes, bytes]
) -> None:
    async def body(conn: ServerConn) -> None:
        await run_fail_fast(conn, case_id, how, parts, peer_is_client=True)

    await against_client(layer, body, timeout=15)


@pytest.mark.parametrize("case", UTF8_SEQUENCES, ids=ids(UTF8_SEQUENCES))
async def test_utf8_sequences(layer: Layer, case: Case) -> None:
    await play(layer, case)


@pytest.mark.parametrize("case", CLOSING, ids=ids(CLOSING))
async def test_closing(layer: Layer, case: Case) -> None:
    await play(layer, case)


async def test_close_after_big_message(layer: Layer) -> None:
    async def body(conn: ServerConn) -> None:
        await run_close_after_big_message(conn, peer_is_client=True)

    await against_client(layer, body, timeout=20)


@pytest.mark.parametrize("case", LIMITS, ids=ids(LIMITS))
async def test_limits(layer: Layer, case: Case) -> None:
    await play(layer, case)


@pytest.mark.parametrize(
    ("case_id", "opcode", "size"), ROUND_TRIPS, ids=[c[0] for c in ROUND_TRIPS]
)
async def test_round_trips(layer: Layer, case_id: str, opcode: int, size: int) -> None:
    async def body(conn: ServerConn) -> None:
        await run_round_trips(conn, case_id, opcode, size, ROUND_TRIP_COUNT, peer_is_client=True)

    await against_client(layer, body, timeout=40)


@pytest.mark.parametrize("case", MISC, ids=ids(MISC))
async def test_auto_fragmentation(layer: Layer, case: Case) -> None:
    await play(layer, case)


@pytest.mark.parametrize("then_close", [False, True], ids=["message", "message+close"])
async def test_frames_in_the_handshake_write(layer: Layer, then_close: bool) -> None:
    """Like Autobahn's fuzzing server, send the first frames in the same write as the 101
    response: a text message (then, optionally, a close 1000). The message must reach the
    application: echoed on the wire, or, when the close follows at once (so no echo can be
    sent any more), at least received by recv() before the connection reports its end."""
    received: list[str | bytes] = []
    outcome: list[BaseException] = []

    async def script(conn: ServerConn) -> None:
        request = await conn.read_request()
        key = request.get_all("Sec-WebSocket-Key")[0]
        data = build_response(key) + build_frame(OP_TEXT, HELLO, mask=None)
        if then_close:
            data += build_frame(OP_CLOSE, close_payload(1000), mask=None)
        await conn.send(data)
        if not then_close:
            echo = await conn.recv_frame(CLOSE_WAIT)
            assert echo is not None and (echo.opcode, echo.payload) == (OP_TEXT, HELLO), echo
            await conn.send_close(1000)
        frames = await conn.recv_frames_until_close(CLOSE_WAIT)
        assert frames and frames[-1].opcode == OP_CLOSE, frames
        assert frames[-1].close_code == 1000, frames[-1]
        conn.close()

    async def client(url: str) -> None:
        try:
            async with layer.connect(url, open_timeout=5, close_timeout=3) as ws:
                async for message in ws:
                    received.append(message)
                    if not then_close:
                        await ws.send(message)
        except wsio.ConnectionClosed as exc:
            outcome.append(exc)

    async with RawServer(script, exit_timeout=10) as server:
        task = asyncio.create_task(client(server.url + "/"))
        await server.wait_connection(5.0)
        await server.wait_scripts(10)
        async with asyncio.timeout(CLIENT_EXIT):
            await task
    assert received == [HELLO.decode()], (
        f"the application got {received!r}; the connection ended with {outcome!r}"
    )
