"""Interop between wsio, on both I/O layers, and Node's `ws` package (client and server,
both directions)."""

from __future__ import annotations

import asyncio
import base64
import urllib.parse

import pytest
from interop_common import (
    BINARIES,
    LARGE,
    MAX_SIZE,
    SAMPLES,
    STEP,
    TEXTS,
    closing_4000,
    echo,
    fragmenting_echo,
    handler_finished,
    large_binary,
    large_text,
    pinging,
    returning,
    wsio_server,
)
from interop_peers import (
    NodeClientResult,
    NodeSetup,
    StartNodeServer,
    Step,
    TLSFiles,
    b64,
    run_node_client,
    sha256_hex,
)

import wsio
from layers import Layer

# Both I/O layers (tests/layers.py): wsio's server and client are the test's layer's.
pytestmark = pytest.mark.both_layers

# --- wsio client <-> Node ws echo server -------------------------------------------------------


async def test_client_text_round_trip(layer: Layer, node_server: StartNodeServer) -> None:
    server = await node_server()
    async with asyncio.timeout(STEP), layer.connect(server.url()) as ws:
        for text in TEXTS:
            await ws.send(text)
            echoed = await ws.recv()
            assert isinstance(echoed, str)
            assert echoed == text
    event = await server.wait_close_event()
    assert event["code"] == 1000


async def test_client_binary_round_trip(layer: Layer, node_server: StartNodeServer) -> None:
    server = await node_server()
    async with asyncio.timeout(STEP), layer.connect(server.url()) as ws:
        for data in BINARIES:
            await ws.send(data)
            echoed = await ws.recv()
            assert isinstance(echoed, bytes)
            assert echoed == data
    kinds = [e["type"] for e in server.events if e["event"] == "message"]
    assert kinds == ["binary"] * len(BINARIES)


async def test_client_empty_messages(layer: Layer, node_server: StartNodeServer) -> None:
    server = await node_server()
    async with asyncio.timeout(STEP), layer.connect(server.url()) as ws:
        await ws.send("")
        assert await ws.recv() == ""
        await ws.send(b"")
        assert await ws.recv() == b""
    seen = [(e["type"], e["length"]) for e in server.events if e["event"] == "message"]
    assert seen == [("text", 0), ("binary", 0)]


async def test_client_sends_fragmented(layer: Layer, node_server: StartNodeServer) -> None:
    server = await node_server()
    text_parts = ["frag1 ", "", "frag2 é€🎉 ", "end"]
    binary_parts = [b"\x00\x01", b"\x02", b"", b"\x03\xff"]
    async with asyncio.timeout(STEP), layer.connect(server.url()) as ws:
        await ws.send(text_parts)
        assert await ws.recv() == "".join(text_parts)
        await ws.send(binary_parts)
        assert await ws.recv() == b"".join(binary_parts)
    # ws reassembled each fragmented message into one message.
    seen = [(e["type"], e["length"]) for e in server.events if e["event"] == "message"]
    assert seen == [
        ("text", len("".join(text_parts).encode("utf-8"))),
        ("binary", len(b"".join(binary_parts))),
    ]


async def test_client_receives_fragmented(layer: Layer, node_server: StartNodeServer) -> None:
    server = await node_server()
    # 30 bytes in 4 fragments of 8: the cuts fall inside the 3-byte sequences of "€".
    text = "€" * 10
    data = bytes(range(50))
    async with asyncio.timeout(STEP), layer.connect(server.url("/?fragment=4")) as ws:
        await ws.send(text)
        assert await ws.recv() == text
        await ws.send(data)
        assert await ws.recv() == data
        for sample in TEXTS:
            await ws.send(sample)
            assert await ws.recv() == sample


async def test_client_large_messages(layer: Layer, node_server: StartNodeServer) -> None:
    server = await node_server()
    text = large_text()
    data = large_binary()
    async with asyncio.timeout(3 * STEP), layer.connect(server.url(), max_size=MAX_SIZE) as ws:
        await ws.send(data)
        assert await ws.recv() == data
        await ws.send(text)
        assert await ws.recv() == text
    seen = [(e["type"], e["length"]) for e in server.events if e["event"] == "message"]
    assert seen == [("binary", LARGE), ("text", len(text.encode("utf-8")))]


async def test_client_large_fragmented_message(layer: Layer, node_server: StartNodeServer) -> None:
    server = await node_server()
    data = large_binary()
    parts = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    url = server.url("/?fragment=7")
    async with asyncio.timeout(3 * STEP), layer.connect(url, max_size=MAX_SIZE) as ws:
        await ws.send(parts)
        assert await ws.recv() == data


async def test_client_ping(layer: Layer, node_server: StartNodeServer) -> None:
    server = await node_server()
    async with asyncio.timeout(STEP), layer.connect(server.url()) as ws:
        latency = await ws.ping(b"probe")
        assert isinstance(latency, float)
        assert 0 <= latency < STEP
        # The connection still works after the ping.
        await ws.send("after ping")
        assert await ws.recv() == "after ping"
    event = await server.wait_event(lambda e: e["event"] == "ping")
    assert base64.b64decode(event["data"]) == b"probe"


async def test_client_close_normal(layer: Layer, node_server: StartNodeServer) -> None:
    server = await node_server()
    async with asyncio.timeout(STEP), layer.connect(server.url()) as ws:
        await ws.send("bye")
        assert await ws.recv() == "bye"
    assert ws.close_code == 1000
    event = await server.wait_close_event()
    assert (event["code"], event["reason"]) == (1000, "")


async def test_client_close_custom_code_and_reason(
    layer: Layer, node_server: StartNodeServer
) -> None:
    server = await node_server()
    reason = "custom reason ✓ 🎉"
    async with asyncio.timeout(STEP):
        ws = await layer.connect(server.url())
        await ws.close(code=4000, reason=reason)
        await ws.wait_closed()
    event = await server.wait_close_event()
    assert (event["code"], event["reason"]) == (4000, reason)
    # ws echoes the code and reason of the close frame it received.
    assert (ws.close_code, ws.close_reason) == (4000, reason)
    with pytest.raises(wsio.ConnectionClosed):
        await ws.send("too late")


async def test_server_close_custom_code_and_reason(
    layer: Layer, node_server: StartNodeServer
) -> None:
    server = await node_server()
    reason = "server says bye ✓"
    query = urllib.parse.urlencode({"close": "4000", "reason": reason})
    async with asyncio.timeout(STEP), layer.connect(server.url(f"/?{query}")) as ws:
        with pytest.raises(wsio.ConnectionClosedError) as caught:
            await ws.recv()
        await ws.wait_closed()
    assert (caught.value.code, caught.value.reason) == (4000, reason)
    assert (ws.close_code, ws.close_reason) == (4000, reason)
    event = await server.wait_close_event()
    assert (event["code"], event["reason"]) == (4000, reason)


async def test_server_close_normal_ends_iteration(
    layer: Layer, node_server: StartNodeServer
) -> None:
    server = await node_server()
    received: list[str | bytes] = []
    async with asyncio.timeout(STEP), layer.connect(server.url("/?close_after=2")) as ws:
        await ws.send("one")
        await ws.send(b"two")
        async for message in ws:  # ends quietly on the server's 1000
            received.append(message)
            assert len(received) <= 2
    assert received == ["one", b"two"]
    assert ws.close_code == 1000


async def test_server_shutdown_sends_1001(layer: Layer, node_server: StartNodeServer) -> None:
    server = await node_server()
    async with asyncio.timeout(STEP), layer.connect(server.url()) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await server.shutdown()
        with pytest.raises(wsio.ConnectionClosedOK) as caught:
            await ws.recv()
    assert caught.value.code == 1001
    assert (ws.close_code, ws.close_reason) == (1001, "going away")
    event = await server.wait_close_event()
    assert event["code"] == 1001
    assert await server.wait_exit() == 0


async def test_client_wss(layer: Layer, node_server: StartNodeServer, tls_files: TLSFiles) -> None:
    server = await node_server(tls_files)
    assert server.url().startswith("wss://")
    async with (
        asyncio.timeout(STEP),
        layer.connect(server.url(), ssl=tls_files.client_context, max_size=MAX_SIZE) as ws,
    ):
        for message in SAMPLES:
            await ws.send(message)
            assert await ws.recv() == message
        data = large_binary()
        await ws.send(data)
        assert await ws.recv() == data
        await ws.close(4000, "tls bye")
    assert ws.close_code == 4000
    event = await server.wait_close_event()
    assert (event["code"], event["reason"]) == (4000, "tls bye")


# --- Node ws client <-> wsio server ------------------------------------------------------------


async def test_node_client_round_trips(layer: Layer, node_setup: NodeSetup) -> None:
    messages: list[str | bytes] = [*TEXTS, "", *BINARIES, b""]
    steps: list[Step] = [
        {"op": "send", "text": m} if isinstance(m, str) else {"op": "send", "binary": b64(m)}
        for m in messages
    ]
    steps += [{"op": "recv", "count": len(messages)}, {"op": "close", "code": 1000}]
    async with wsio_server(layer, echo) as (url, log):
        result = await run_node_client(node_setup, url, steps)
        await handler_finished(log)
    result.assert_ok()
    got = [
        m["data"] if m["type"] == "text" else base64.b64decode(m["data"]) for m in result.messages
    ]
    assert got == messages
    assert [m["type"] for m in result.messages] == [
        "text" if isinstance(m, str) else "binary" for m in messages
    ]
    assert log.messages == messages
    assert (result.close["code"], result.close["reason"]) == (1000, "")
    assert log.close_code == 1000
    assert log.error is None


async def test_node_client_sends_fragmented(layer: Layer, node_setup: NodeSetup) -> None:
    text_parts = ["frag1 ", "", "frag2 ", "end"]
    binary_parts = [b"\x00\x01", b"", b"\x02\xff"]
    # "é€🎉" as raw bytes, cut inside each multi-byte sequence.
    raw = "é€🎉".encode()
    raw_parts = [raw[:1], raw[1:3], raw[3:8], raw[8:]]
    steps: list[Step] = [
        {"op": "send_fragments", "text": text_parts},
        {"op": "send_fragments", "binary": [b64(p) for p in binary_parts]},
        {"op": "send_fragments", "type": "text", "raw": [b64(p) for p in raw_parts]},
        {"op": "recv", "count": 3},
        {"op": "close", "code": 1000},
    ]
    async with wsio_server(layer, echo) as (url, log):
        result = await run_node_client(node_setup, url, steps)
        await handler_finished(log)
    result.assert_ok()
    assert log.messages == ["".join(text_parts), b"".join(binary_parts), "é€🎉"]
    assert [m["data"] for m in result.messages] == [
        "".join(text_parts),
        b64(b"".join(binary_parts)),
        "é€🎉",
    ]


async def test_wsio_server_sends_fragmented(layer: Layer, node_setup: NodeSetup) -> None:
    messages: list[str | bytes] = [*TEXTS, *BINARIES, "€" * 10]
    steps: list[Step] = [
        {"op": "send", "text": m} if isinstance(m, str) else {"op": "send", "binary": b64(m)}
        for m in messages
    ]
    steps += [{"op": "recv", "count": len(messages)}, {"op": "close", "code": 1000}]
    async with wsio_server(layer, fragmenting_echo) as (url, log):
        result = await run_node_client(node_setup, url, steps)
        await handler_finished(log)
    result.assert_ok()
    got = [
        m["data"] if m["type"] == "text" else base64.b64decode(m["data"]) for m in result.messages
    ]
    assert got == messages


async def test_node_client_large_messages(layer: Layer, node_setup: NodeSetup) -> None:
    steps: list[Step] = [
        {"op": "send", "type": "binary", "repeat": b64(bytes(range(256))), "count": LARGE // 256},
        {"op": "send", "type": "text", "repeat": b64("€✓ab".encode()), "count": LARGE // 8},
        {"op": "recv", "count": 2},
        {"op": "close", "code": 1000},
    ]
    expected_binary = bytes(range(256)) * (LARGE // 256)
    expected_text = "€✓ab" * (LARGE // 8)
    async with wsio_server(layer, echo, max_size=MAX_SIZE) as (url, log):
        result = await run_node_client(node_setup, url, steps, options={"max_payload": MAX_SIZE})
        await handler_finished(log)
    result.assert_ok()
    assert log.messages == [expected_binary, expected_text]
    summary = [(m["type"], m["length"], m["sha256"]) for m in result.messages]
    assert summary == [
        ("binary", len(expected_binary), sha256_hex(expected_binary)),
        ("text", len(expected_text.encode("utf-8")), sha256_hex(expected_text)),
    ]


async def test_node_client_ping(layer: Layer, node_setup: NodeSetup) -> None:
    steps: list[Step] = [
        {"op": "ping", "data": b64(b"node ping")},
        {"op": "ping", "data": ""},
        {"op": "send", "text": "still open"},
        {"op": "recv"},
        {"op": "close", "code": 1000},
    ]
    async with wsio_server(layer, echo) as (url, log):
        result = await run_node_client(node_setup, url, steps)
        await handler_finished(log)
    result.assert_ok()
    assert [base64.b64decode(p["data"]) for p in result.of("pong")] == [b"node ping", b""]
    assert log.messages == ["still open"]


async def test_wsio_server_ping(layer: Layer, node_setup: NodeSetup) -> None:
    steps: list[Step] = [
        {"op": "send", "text": "go"},
        {"op": "recv"},
        {"op": "close", "code": 1000},
    ]
    async with wsio_server(layer, pinging) as (url, log):
        result = await run_node_client(node_setup, url, steps)
        await handler_finished(log)
    result.assert_ok()
    assert [m["data"] for m in result.messages] == ["pong received"]
    assert len(log.latencies) == 1
    assert isinstance(log.latencies[0], float)
    assert 0 <= log.latencies[0] < STEP


async def test_node_client_close_custom_code(layer: Layer, node_setup: NodeSetup) -> None:
    reason = "node says bye ✓"
    steps: list[Step] = [
        {"op": "send", "text": "hi"},
        {"op": "recv"},
        {"op": "close", "code": 4000, "reason": reason},
    ]
    async with wsio_server(layer, echo) as (url, log):
        result = await run_node_client(node_setup, url, steps)
        await handler_finished(log)
    result.assert_ok()
    assert isinstance(log.error, wsio.ConnectionClosedError)
    assert (log.error.code, log.error.reason) == (4000, reason)
    assert (log.close_code, log.close_reason) == (4000, reason)
    # RFC 6455 5.5.1: the reply typically echoes the code; echoing the reason is optional.
    assert result.close["code"] == 4000
    assert result.close["reason"] in ("", reason)


async def test_wsio_server_close_custom_code(layer: Layer, node_setup: NodeSetup) -> None:
    steps: list[Step] = [{"op": "send", "text": "hi"}, {"op": "wait_close"}]
    async with wsio_server(layer, closing_4000) as (url, log):
        result = await run_node_client(node_setup, url, steps)
        await handler_finished(log)
    result.assert_ok()
    assert (result.close["code"], result.close["reason"]) == (4000, "wsio says bye ✓")
    assert (log.close_code, log.close_reason) == (4000, "wsio says bye ✓")


async def test_handler_return_closes_1000(layer: Layer, node_setup: NodeSetup) -> None:
    steps: list[Step] = [{"op": "send", "text": "hi"}, {"op": "wait_close"}]
    async with wsio_server(layer, returning, wait_closed=False) as (url, log):
        result = await run_node_client(node_setup, url, steps)
        await handler_finished(log)
        await asyncio.wait_for(log.connection.wait_closed(), STEP)
    result.assert_ok()
    assert log.messages == ["hi"]
    assert result.close["code"] == 1000
    assert log.connection.close_code == 1000


async def test_wsio_server_shutdown_sends_1001(layer: Layer, node_setup: NodeSetup) -> None:
    steps: list[Step] = [{"op": "send", "text": "ready"}, {"op": "recv"}, {"op": "wait_close"}]
    client: asyncio.Task[NodeClientResult] | None = None
    try:
        async with wsio_server(layer, echo) as (url, log):
            client = asyncio.create_task(run_node_client(node_setup, url, steps))
            await asyncio.wait_for(log.got_message.wait(), STEP)
        # Leaving the serve() block shut the server down.
        result = await asyncio.wait_for(client, STEP)
    finally:
        if client is not None and not client.done():
            client.cancel()
    await handler_finished(log)
    result.assert_ok()
    assert result.close["code"] == 1001
    assert log.error is None or isinstance(log.error, wsio.ConnectionClosedOK)
    assert log.close_code == 1001


@pytest.mark.parametrize("ca_via", ["env", "option"])
async def test_node_client_wss(
    layer: Layer, node_setup: NodeSetup, tls_files: TLSFiles, ca_via: str
) -> None:
    steps: list[Step] = [
        {"op": "send", "text": TEXTS[1]},
        {"op": "send", "binary": b64(BINARIES[1])},
        {"op": "recv", "count": 2},
        {"op": "close", "code": 4000, "reason": "tls bye"},
    ]
    env = {"NODE_EXTRA_CA_CERTS": str(tls_files.ca_pem)} if ca_via == "env" else None
    options = {"ca": str(tls_files.ca_pem)} if ca_via == "option" else None
    context = tls_files.server_context
    async with wsio_server(layer, echo, scheme="wss", ssl=context) as (url, log):
        result = await run_node_client(node_setup, url, steps, options=options, env=env)
        await handler_finished(log)
    result.assert_ok()
    assert [m["data"] for m in result.messages] == [TEXTS[1], b64(BINARIES[1])]
    assert result.close["code"] == 4000
    assert result.close["reason"] in ("", "tls bye")
    assert (log.close_code, log.close_reason) == (4000, "tls bye")
