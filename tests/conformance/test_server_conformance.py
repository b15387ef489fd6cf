"""Autobahn-style conformance (sections 1-10) of a wsio echo server, driven by a raw client,
on both I/O layers.

The server echoes every message with its type (text as text, binary as binary). Strict
expectations: see conformance_cases.py; in short, exact echoes and pongs, failures with the
right close code right away, the close code echoed, and the server closing TCP itself after
the closing handshake.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from conformance_cases import (
    CLOSING,
    FAIL_FAST,
    FRAGMENTATION,
    FRAMING,
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
    run_case,
    run_close_after_big_message,
    run_fail_fast,
    run_round_trips,
)

from layers import Layer
from rawpeer import RawClient

# Both I/O layers (tests/layers.py): the echo server is the layer's.
pytestmark = pytest.mark.both_layers

MAX_SIZE = 32 * MiB


@pytest.fixture
async def port(layer: Layer) -> AsyncIterator[int]:
    async with layer.echo_server(max_size=MAX_SIZE) as port:
        yield port


@contextlib.asynccontextmanager
async def connected(port: int) -> AsyncIterator[RawClient]:
    client = await RawClient.open("127.0.0.1", port)
    async with client:
        response = await client.handshake("/")
        assert response.status_code == 101, response.raw
        assert response.header("Sec-WebSocket-Accept") == client.expected_accept
        yield client


async def play(port: int, case: Case) -> None:
    async with connected(port) as client:
        await run_case(client, case, peer_is_client=False)


@pytest.mark.parametrize("case", FRAMING, ids=ids(FRAMING))
async def test_framing(port: int, case: Case) -> None:
    await play(port, case)


@pytest.mark.parametrize("case", PINGS, ids=ids(PINGS))
async def test_pings(port: int, case: Case) -> None:
    await play(port, case)


@pytest.mark.parametrize("case", RESERVED_BITS, ids=ids(RESERVED_BITS))
async def test_reserved_bits(port: int, case: Case) -> None:
    await play(port, case)


@pytest.mark.parametrize("case", OPCODES, ids=ids(OPCODES))
async def test_opcodes(port: int, case: Case) -> None:
    await play(port, case)


@pytest.mark.parametrize("case", FRAGMENTATION, ids=ids(FRAGMENTATION))
async def test_fragmentation(port: int, case: Case) -> None:
    await play(port, case)


@pytest.mark.parametrize("case", UTF8, ids=ids(UTF8))
async def test_utf8(port: int, case: Case) -> None:
    await play(port, case)


@pytest.mark.parametrize(("case_id", "how", "parts"), FAIL_FAST, ids=[c[0] for c in FAIL_FAST])
async def test_utf8_fail_fast(
    port: int, case_id: str, how: str, parts: tuple[bytes, bytes, bytes]
) -> None:
    async with connected(port) as client:
        await run_fail_fast(client, case_id, how, parts, peer_is_client=False)


@pytest.mark.parametrize("case", UTF8_SEQUENCES, ids=ids(UTF8_SEQUENCES))
async def test_utf8_sequences(port: int, case: Case) -> None:
    await play(port, case)


@pytest.mark.parametrize("case", CLOSING, ids=ids(CLOSING))
async def test_closing(port: int, case: Case) -> None:
    await play(port, case)


async def test_close_after_big_message(port: int) -> None:
    async with connected(port) as client:
        await run_close_after_big_message(client, peer_is_client=False)


@pytest.mark.parametrize("case", LIMITS, ids=ids(LIMITS))
async def test_limits(port: int, case: Case) -> None:
    await play(port, case)


@pytest.mark.parametrize(
    ("case_id", "opcode", "size"), ROUND_TRIPS, ids=[c[0] for c in ROUND_TRIPS]
)
async def test_round_trips(port: int, case_id: str, opcode: int, size: int) -> None:
    async with connected(port) as client:
        await run_round_trips(
            client, case_id, opcode, size, ROUND_TRIP_COUNT, peer_is_client=False
        )


@pytest.mark.parametrize("case", MISC, ids=ids(MISC))
async def test_auto_fragmentation(port: int, case: Case) -> None:
    await play(port, case)
