"""permessage-deflate (RFC 7692) between Chromium's WebSocket and a wsio server.

A small wsio server serves a page (through ``process_request``) and a WebSocket at /ws.
Everything is checked from the server's side: Chromium offered permessage-deflate, wsio
accepted it, and large JSON messages crossed the wire compressed both ways. The server's
connection is tapped from ``process_request`` on, its raw bytes parsed into frames, so
RSV1 (§6) and the compressed sizes are what was on the wire. The demo server, which
compresses by default, is checked to negotiate it with the browser too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import pytest
from cdp import Chromium

import wsio
from wiretap import Wire, tap
from wsio.cli.demo import demo_server
from wsio.protocol.extensions.permessage_deflate import PerMessageDeflate

pytestmark = pytest.mark.timeout(30)

STEP = 10.0
# About 200 KB of JSON; the page builds the same text with JSON.stringify.
ITEMS = 3700
BINARY_SIZE = 100_000


def big_json(items: int, salt: str) -> str:
    rows = [
        {"id": i, "name": f"item {i} {salt}", "tags": ["alpha", "beta"], "active": i % 2 == 0}
        for i in range(items)
    ]
    return json.dumps(rows, separators=(",", ":"))


JS_BIG_JSON = """(items, salt) => JSON.stringify(Array.from({length: items}, (_, i) =>
    ({id: i, name: `item ${i} ${salt}`, tags: ["alpha", "beta"], active: i % 2 === 0})))"""

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>wsio compression</title></head>
<body><p>permessage-deflate test page</p></body></html>
"""

# --- the wire, as the server's transport sees it -----------------------------------------------


@dataclass
class Seen:
    """What the server saw of the page's WebSocket connection."""

    connection: Any = None
    wire: Wire | None = None
    messages: list[str | bytes] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)


@contextlib.asynccontextmanager
async def page_server() -> AsyncIterator[tuple[str, Seen]]:
    """The page at /, and at /ws a WebSocket that sends a big JSON message, then echoes."""
    seen = Seen()

    def process_request(ws: wsio.ServerConnection, request: wsio.Request) -> wsio.Response | None:
        if request.path == "/ws":
            # Tap the connection before the 101 goes out: every frame is seen.
            seen.connection = ws
            seen.wire = tap(ws, before_response=True)
            return None
        if request.path != "/":
            return ws.respond(HTTPStatus.NOT_FOUND, "Not found.\n")
        response = ws.respond(HTTPStatus.OK, "")
        response.headers.replace("Content-Type", "text/html; charset=utf-8")
        response.headers.replace("Content-Length", str(len(PAGE)))
        response.body = PAGE
        return response

    async def handler(ws: wsio.ServerConnection) -> None:
        try:
            await ws.send(big_json(ITEMS, "from wsio"))
            async for message in ws:
                seen.messages.append(message)
                await ws.send(message)
        finally:
            seen.done.set()

    async with wsio.serve(
        handler, "127.0.0.1", 0, process_request=process_request, max_size=2**20
    ) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", seen


PAGE_SCRIPT = """(async () => {
    const bigJson = BIG_JSON;
    const ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/ws");
    ws.binaryType = "arraybuffer";
    const timeout = (what) => new Promise((_, reject) =>
        setTimeout(() => reject(new Error("timed out: " + what)), 8000));
    const queue = [];
    let wake = null;
    ws.onmessage = (event) => { queue.push(event.data); if (wake) wake(); };
    const next = async (what) => {
        while (queue.length === 0) {
            await Promise.race([new Promise((resolve) => { wake = resolve; }), timeout(what)]);
        }
        return queue.shift();
    };
    await Promise.race([
        new Promise((resolve, reject) => {
            ws.onopen = resolve;
            ws.onerror = () => reject(new Error("WebSocket error"));
        }),
        timeout("open"),
    ]);
    const results = {extensions: ws.extensions};
    const fromServer = await next("the server's message");
    results.fromServer = [fromServer.length, fromServer === bigJson(ITEMS, "from wsio")];
    results.echoes = [];
    for (const salt of ["one", "two", "three"]) {
        const big = bigJson(ITEMS, salt);
        ws.send(big);
        const echoed = await next("echo " + salt);
        results.echoes.push([echoed.length, echoed === big]);
    }
    ws.send("small");
    results.small = await next("small echo");
    const bytes = new Uint8Array(BINARY_SIZE).map((_, i) => i % 7);
    ws.send(bytes);
    const binary = new Uint8Array(await next("binary echo"));
    results.binary = [binary.length, binary.every((value, i) => value === i % 7)];
    const closed = new Promise((resolve) => { ws.onclose = resolve; });
    ws.close(1000, "done");
    const event = await Promise.race([closed, timeout("close")]);
    results.close = [event.code, event.wasClean];
    return results;
})()"""
PAGE_SCRIPT = (
    PAGE_SCRIPT.replace("BIG_JSON", JS_BIG_JSON)
    .replace("BINARY_SIZE", str(BINARY_SIZE))
    .replace("ITEMS", str(ITEMS))
)


async def test_large_messages_compressed_both_ways(browser: Chromium) -> None:
    async with page_server() as (base, seen):
        tab = await browser.cdp.open_tab(f"{base}/")
        # The tab starts as about:blank: wait for the page itself.
        await tab.wait_for("document.title", lambda title: title == "wsio compression")
        results = await tab.evaluate(PAGE_SCRIPT, timeout=2 * STEP)
        await asyncio.wait_for(seen.done.wait(), STEP)
    assert tab.exceptions() == []
    sizes = [len(big_json(ITEMS, salt)) for salt in ("from wsio", "one", "two", "three")]
    assert min(sizes) > 200_000
    assert results["fromServer"] == [sizes[0], True]
    assert results["echoes"] == [[size, True] for size in sizes[1:]]
    assert results["small"] == "small"
    assert results["binary"] == [BINARY_SIZE, True]
    assert results["close"] == [1000, True]

    # Negotiation, from the server's side: Chromium offered, wsio accepted.
    ws = seen.connection
    offer = ws.request.headers["Sec-WebSocket-Extensions"]
    assert offer.split(";")[0].strip() == "permessage-deflate", offer
    answer = ws.response.headers["Sec-WebSocket-Extensions"]
    assert answer.startswith("permessage-deflate")
    assert results["extensions"] == answer
    extensions = ws.protocol.extensions
    assert len(extensions) == 1 and isinstance(extensions[0], PerMessageDeflate)
    deflate = extensions[0]
    # Chromium lets the server choose its window (client_max_window_bits): wsio's 2**12.
    assert (deflate.remote_max_window_bits, deflate.local_max_window_bits) == (12, 12)
    assert seen.messages == [
        *(big_json(ITEMS, salt) for salt in ("one", "two", "three")),
        "small",
        bytes(i % 7 for i in range(BINARY_SIZE)),
    ]

    # The wire: every large message went compressed, both ways, at a fraction of its size.
    wire = seen.wire
    assert wire is not None
    wire.check_rsv()
    received = wire.incoming.messages()
    sent = wire.outgoing.messages()
    assert len(received) == 5 and len(sent) == 6
    big_in = [received[0], received[1], received[2], received[4]]
    big_out = [sent[0], sent[1], sent[2], sent[3], sent[5]]
    assert all(message.compressed for message in big_in), received
    assert all(message.compressed for message in big_out), sent
    for message, size in zip(big_in, [*sizes[1:], BINARY_SIZE], strict=True):
        assert message.length < size // 5, (message, size)
    for message, size in zip(big_out, [*sizes, BINARY_SIZE], strict=True):
        assert message.length < size // 5, (message, size)
    # "small" (5 bytes) is under wsio's threshold: it goes back uncompressed.
    assert (sent[4].opcode, sent[4].compressed, sent[4].length) == (1, False, 5)
    # In all, far fewer bytes than the 1.7 MB of messages crossed the wire.
    total = sum(sizes) * 2 - sizes[0] + 2 * BINARY_SIZE
    assert wire.incoming.total + wire.outgoing.total < total // 5


async def test_demo_page_negotiates_compression(browser: Chromium) -> None:
    """The demo server compresses by default: the page's /chat connection uses it."""
    async with demo_server("127.0.0.1", 0, None) as server:
        port = server.sockets[0].getsockname()[1]
        tab = await browser.cdp.open_tab(f"http://127.0.0.1:{port}/")
        await tab.wait_for("window.demo && window.demo.state", lambda state: state == "open")
        chats = [ws for ws in server.connections if ws.request and ws.request.path == "/chat"]
        assert len(chats) == 1
        ws = chats[0]
        assert "permessage-deflate" in ws.request.headers["Sec-WebSocket-Extensions"]
        assert [type(ext) for ext in ws.protocol.extensions] == [PerMessageDeflate]
        assert ws.response is not None
        answer = ws.response.headers["Sec-WebSocket-Extensions"]
        assert (
            await tab.evaluate(
                "new Promise((resolve) => { const ws = new WebSocket("
                "location.origin.replace(/^http/, 'ws') + '/echo');"
                "ws.onopen = () => { resolve(ws.extensions); ws.close(); }; })",
                timeout=STEP,
            )
            == answer
        )
    assert tab.exceptions() == []
