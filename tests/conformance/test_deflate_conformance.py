"""permessage-deflate conformance over real sockets, after the intent of Autobahn 12.x and
13.x, in both roles, on both I/O layers.

A raw peer (tests/rawpeer.py and deflate_peer.py) negotiates permessage-deflate with the
parameters of each 13.x case (and a few more), compresses messages of every Autobahn size,
text and binary, whole and fragmented, with Python's zlib, and sends them to an echoing wsio
server, or an echoing wsio client. Each echo must decompress, under the agreed rules, to
what was sent: a fresh decompressor per message when wsio agreed not to use context
takeover, and only the agreed window (see deflate_peer.Codec.decompress). Unlike Autobahn,
which sends 1000 messages per size, one connection here runs every size once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from deflate_peer import (
    PMD,
    SIZES,
    THRESHOLD,
    Agreed,
    Echo,
    Params,
    agreed_by_answer,
    check_answer,
    parse_header,
    run_exchange,
    workload,
)

import wsio
from layers import Layer
from rawpeer import OP_BINARY, RawClient, RawServer, ServerConn
from wsio.protocol.extensions import ServerPerMessageDeflateFactory, parse_extensions

# Both I/O layers (tests/layers.py): the echoing server and client are the layer's.
pytestmark = pytest.mark.both_layers

MAX_SIZE = 1 << 20
CASE_TIMEOUT = 30.0
# Three rounds of every size: later messages refer back to earlier ones when context
# takeover is in use.
MESSAGES = workload(SIZES * 3)

# What Autobahn's client always announces in an offer: it accepts both parameters.
ACCEPTS = "; client_no_context_takeover; client_max_window_bits"


async def echo_fragmenting(ws: Any) -> None:
    """Echo every message; binary messages over 8 KiB go back in three fragments, so that
    wsio's fragmented compressed sending is exercised too."""
    with contextlib.suppress(wsio.ConnectionClosed):
        async for message in ws:
            if isinstance(message, bytes) and len(message) > 8192:
                third = len(message) // 3
                await ws.send([message[:third], message[third : 2 * third], message[2 * third :]])
            else:
                await ws.send(message)


def check_echoes(echoes: list[Echo], agreed: Agreed) -> None:
    assert len(echoes) == len(MESSAGES)
    for echo, (_, data, _) in zip(echoes, MESSAGES, strict=True):
        # Big binary messages came back in three frames (compressed or not).
        assert echo.frames == (3 if echo.opcode == OP_BINARY and len(data) > 8192 else 1)
    # Everything at wsio's threshold or above was compressed, unless zlib can't.
    compressed = [echo.compressed for echo in echoes]
    big = [len(data) >= THRESHOLD and agreed.wsio_bits > 8 for _, data, _ in MESSAGES]
    assert compressed == big


# wsio as the server: the raw client offers -----------------------------------------------

OFFERS: dict[str, list[str]] = {
    # Autobahn 13.1 to 13.7 (13.1 is also what section 12 offers).
    "13.1-default": [PMD + ACCEPTS],
    "13.2-server_no_context_takeover": [PMD + ACCEPTS + "; server_no_context_takeover"],
    "13.3-server_max_window_bits=8": [PMD + ACCEPTS + "; server_max_window_bits=8"],
    "13.4-server_max_window_bits=15": [PMD + ACCEPTS + "; server_max_window_bits=15"],
    "13.5-no_context_takeover+8": [
        PMD + ACCEPTS + "; server_no_context_takeover; server_max_window_bits=8"
    ],
    "13.6-no_context_takeover+15": [
        PMD + ACCEPTS + "; server_no_context_takeover; server_max_window_bits=15"
    ],
    "13.7-three-offers": [
        PMD + ACCEPTS + "; server_no_context_takeover; server_max_window_bits=8",
        PMD + ACCEPTS + "; server_no_context_takeover",
        PMD + ACCEPTS,
    ],
    # Offers without client_no_context_takeover: wsio must keep the client's context.
    "browser": [PMD + "; client_max_window_bits"],
    "bare": [PMD],
    "windows-9": [PMD + "; server_max_window_bits=9; client_max_window_bits=9"],
    "client-window-10-announced": [PMD + "; client_max_window_bits=10"],
}


@pytest.fixture
async def port(layer: Layer) -> AsyncIterator[int]:
    async with layer.serve(echo_fragmenting, max_size=MAX_SIZE) as server:
        yield server.port


def negotiated(offers: list[str], answer_values: list[str]) -> tuple[Params, Params]:
    """The raw client's check of the answer: one permessage-deflate, answering one offer."""
    answers = parse_header(answer_values)
    assert [name for name, _ in answers] == [PMD], f"answer: {answer_values}"
    answer = answers[0][1]
    errors = []
    for offer_name, offer in parse_header([", ".join(offers)]):
        assert offer_name == PMD
        try:
            check_answer(offer, answer)
        except AssertionError as exc:
            errors.append(str(exc))
            continue
        return offer, answer
    raise AssertionError(f"answer {answer_values} fits none of the offers: {errors}")


@pytest.mark.parametrize("offers", OFFERS.values(), ids=OFFERS.keys())
async def test_server(port: int, offers: list[str]) -> None:
    async with asyncio.timeout(CASE_TIMEOUT):
        client = await RawClient.open("127.0.0.1", port)
        async with client:
            response = await client.handshake(
                "/", headers=[("Sec-WebSocket-Extensions", ", ".join(offers))]
            )
            assert response.status_code == 101, response.raw
            offer, answer = negotiated(offers, response.get_all("Sec-WebSocket-Extensions"))
            if len(offers) > 1:
                # 13.7: wsio accepts the first offer it can, the client's preference.
                assert offer == parse_header([offers[0]])[0][1]
            agreed = agreed_by_answer(offer, answer, raw_is_client=True)
            echoes = await run_exchange(client, agreed, MESSAGES, wsio_masks=False)
            check_echoes(echoes, agreed)
            # The server closes TCP after the closing handshake.
            assert await client.wait_eof(5.0)


def test_server_agreements() -> None:
    """What the server cases above agree on, spelled out (wsio's server compresses with
    a 2**12 window unless asked for less, and keeps its context unless asked not to)."""
    expected = {
        "13.1-default": Agreed(True, 12, False, 12),
        "13.2-server_no_context_takeover": Agreed(True, 12, True, 12),
        "13.3-server_max_window_bits=8": Agreed(True, 12, False, 8),
        "13.4-server_max_window_bits=15": Agreed(True, 12, False, 12),
        "13.5-no_context_takeover+8": Agreed(True, 12, True, 8),
        "13.6-no_context_takeover+15": Agreed(True, 12, True, 12),
        "browser": Agreed(False, 12, False, 12),
        "bare": Agreed(False, 15, False, 12),
        "windows-9": Agreed(False, 9, False, 9),
        "client-window-10-announced": Agreed(False, 10, False, 12),
    }
    for name, agreed in expected.items():
        offer = parse_extensions(OFFERS[name])[0][1]
        result = ServerPerMessageDeflateFactory().negotiate([offer])
        assert result is not None
        answer, _ = result
        check_answer(offer, answer)
        assert agreed_by_answer(offer, answer, raw_is_client=True) == agreed, name


# wsio as the client: the raw server answers ----------------------------------------------

ANSWERS: dict[str, str] = {
    # Autobahn 13.1 to 13.6 as the server accepts them (13.7's three offers can't be made
    # by a wsio client, which offers one).
    "13.1-accept": PMD,
    "13.2-client_no_context_takeover": PMD + "; client_no_context_takeover",
    "13.3-client_max_window_bits=8": PMD + "; client_max_window_bits=8",
    "13.4-client_max_window_bits=15": PMD + "; client_max_window_bits=15",
    "13.5-no_context_takeover+8": PMD + "; client_no_context_takeover; client_max_window_bits=8",
    "13.6-no_context_takeover+15": PMD + "; client_no_context_takeover; client_max_window_bits=15",
    # The server's own parameters, granted unasked.
    "server-params": PMD + "; server_no_context_takeover; server_max_window_bits=10",
    "server-window-8": PMD + "; server_max_window_bits=8",
    "windows-9": PMD + "; server_max_window_bits=9; client_max_window_bits=9",
}


@pytest.mark.parametrize("answer_value", ANSWERS.values(), ids=ANSWERS.keys())
async def test_client(layer: Layer, answer_value: str) -> None:
    async def script(conn: ServerConn) -> None:
        request = await conn.read_request()
        offers = parse_header(request.get_all("Sec-WebSocket-Extensions"))
        # wsio's default offer, as browsers make it.
        assert offers == [(PMD, [("client_max_window_bits", None)])], offers
        offer = offers[0][1]
        answer = parse_header([answer_value])[0][1]
        check_answer(offer, answer)
        await conn.accept(request, extra_headers=[("Sec-WebSocket-Extensions", answer_value)])
        agreed = agreed_by_answer(offer, answer, raw_is_client=False)
        echoes = await run_exchange(conn, agreed, MESSAGES, wsio_masks=True)
        check_echoes(echoes, agreed)
        conn.close()

    async with asyncio.timeout(CASE_TIMEOUT):
        async with RawServer(script, exit_timeout=CASE_TIMEOUT) as server:
            async with layer.connect(
                server.url + "/", max_size=MAX_SIZE, proxy=None, close_timeout=5
            ) as ws:
                [extension] = ws.protocol.extensions
                assert extension.name == PMD
                await echo_fragmenting(ws)
            await server.wait_scripts(CASE_TIMEOUT)
