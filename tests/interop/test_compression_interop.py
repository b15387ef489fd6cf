"""permessage-deflate (RFC 7692) between wsio and independent peers: Node's `ws` (its echo
server and scripted client, every parameter of §7 set from either side) and the
`websockets` package (its asyncio API), in both directions, on both of wsio's I/O layers.

Each test checks what was negotiated (on both sides, the peer's answer included), that the
messages round trip unchanged, and what crossed the wire: wsio's connection is tapped, its
raw bytes parsed into frames, so RSV1 (§6) and the compressed sizes are observed, not
inferred. A message with repetitions 3,000 bytes apart checks the window sizes (§7.1.2):
a DEFLATE stream that reaches further back than the negotiated window fails to inflate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from interop_common import BINARIES, MAX_SIZE, STEP, TEXTS, large_binary, large_text
from interop_peers import (
    NodeSetup,
    StartNodeServer,
    Step,
    b64,
    run_node_client,
    sha256_hex,
)
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection as PeerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed as PeerConnectionClosed
from websockets.extensions import permessage_deflate as peer_deflate

import wsio
from layers import Layer
from wiretap import RSV1, Wire, WireFrame, WireLog, WireMessage, tap
from wsio.protocol.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)

# Both I/O layers (tests/layers.py): wsio's server and client are the test's layer's.
pytestmark = [pytest.mark.both_layers, pytest.mark.timeout(60)]

# wsio's default compression threshold, in bytes.
THRESHOLD = 128
# 3,000 bytes that repeat 3,000 bytes later: only a window of 2**12 or more finds them.
LONG_RANGE = os.urandom(1500).hex() * 3
# 600 bytes that don't compress much alone, sent several times to see context takeover.
RANDOMISH = os.urandom(300).hex()
# A fragmented text message with an empty fragment and multi-byte characters.
TEXT_PARTS = ["frag1 ", "", "frag2 é€🎉 ", "end " * 100]
BINARY_PARTS = [b"\x00\x01", b"", b"\xff" * 1000]

# --- the wire, as wsio's transport sees it -----------------------------------------------------


# --- negotiation -------------------------------------------------------------------------------


def header_params(value: str | None) -> dict[str, str | None] | None:
    """A Sec-WebSocket-Extensions value with one permessage-deflate: its parameters."""
    if value is None:
        return None
    name, *params = (part.strip() for part in value.split(";"))
    assert name == "permessage-deflate", value
    parsed: dict[str, str | None] = {}
    for param in params:
        key, _, raw = param.partition("=")
        parsed[key.strip()] = raw.strip().strip('"') or None
    return parsed


@dataclass(frozen=True)
class Deflate:
    """Negotiated parameters, as one side sees them."""

    remote_no_context_takeover: bool
    local_no_context_takeover: bool
    remote_max_window_bits: int
    local_max_window_bits: int

    @classmethod
    def of(cls, extension: Any) -> Deflate:
        return cls(
            extension.remote_no_context_takeover,
            extension.local_no_context_takeover,
            extension.remote_max_window_bits,
            extension.local_max_window_bits,
        )

    @classmethod
    def for_client(cls, answer: dict[str, str | None]) -> Deflate:
        """What a client makes of a server's answer, by §7.1 (15 bits when not limited)."""
        return cls(
            "server_no_context_takeover" in answer,
            "client_no_context_takeover" in answer,
            int(answer.get("server_max_window_bits") or 15),
            int(answer.get("client_max_window_bits") or 15),
        )

    def mirrored(self) -> Deflate:
        return Deflate(
            self.local_no_context_takeover,
            self.remote_no_context_takeover,
            self.local_max_window_bits,
            self.remote_max_window_bits,
        )


def wsio_deflate(ws: wsio.ClientConnection | wsio.ServerConnection) -> PerMessageDeflate:
    extensions = ws.protocol.extensions
    assert len(extensions) == 1, extensions
    extension = extensions[0]
    assert isinstance(extension, PerMessageDeflate), extension
    return extension


def can_compress(extension: PerMessageDeflate) -> bool:
    """zlib can't produce a window of 2**8 bytes: wsio then sends uncompressed (§6)."""
    return extension.local_max_window_bits >= 9


# --- what wsio sends, and what it should compress ----------------------------------------------


@dataclass(frozen=True)
class Outgoing:
    message: str | bytes | list[str] | list[bytes]
    compress: bool | None = None

    @property
    def fragmented(self) -> bool:
        return isinstance(self.message, list)

    @property
    def whole(self) -> str | bytes:
        return join(self.message)

    @property
    def size(self) -> int:
        whole = self.whole
        return len(whole.encode()) if isinstance(whole, str) else len(whole)

    def expect_compressed(self, extension: PerMessageDeflate | None, threshold: int) -> bool:
        if extension is None or not can_compress(extension):
            return False
        if self.compress is not None:
            return self.compress
        return self.fragmented or self.size >= threshold


def join(message: str | bytes | list[str] | list[bytes]) -> str | bytes:
    """A message as received: fragments joined."""
    if not isinstance(message, list):
        return message
    if all(isinstance(part, str) for part in message):
        return "".join(str(part) for part in message)
    return b"".join(bytes(part) for part in message)


def client_messages() -> list[Outgoing]:
    """What wsio sends in the round-trip tests: small and large, text and binary, empty,
    fragmented, and two that override the threshold."""
    singles: list[str | bytes] = [
        *TEXTS,
        *BINARIES,
        "",
        b"",
        large_text(),
        large_binary(),
        LONG_RANGE,
        LONG_RANGE.encode(),
    ]
    return [
        *(Outgoing(message) for message in singles),
        Outgoing(TEXT_PARTS),
        Outgoing(BINARY_PARTS),
        Outgoing(LONG_RANGE, compress=False),
        Outgoing("tiny", compress=True),
    ]


async def send_and_echo(ws: wsio.ClientConnection, outgoing: Sequence[Outgoing]) -> None:
    """Send each message and check the echo: same type, same content."""
    for item in outgoing:
        await ws.send(item.message, compress=item.compress)
        echoed = await ws.recv()
        assert type(echoed) is type(item.whole)
        assert echoed == item.whole, f"echo differs for a message of {item.size} bytes"


def check_client_wire(
    wire: Wire, outgoing: Sequence[Outgoing], extension: PerMessageDeflate | None
) -> None:
    """RSV bits, which messages went compressed each way, and that compression paid off.
    Both peers (ws with threshold 0, websockets always) compress every message."""
    wire.check_rsv()
    sent = wire.outgoing.messages()
    assert [m.compressed for m in sent] == [
        item.expect_compressed(extension, THRESHOLD) for item in outgoing
    ]
    assert [m.frames for m in sent] == [
        len(item.message) if isinstance(item.message, list) else 1 for item in outgoing
    ]
    received = wire.incoming.messages()
    assert [m.compressed for m in received] == [True] * len(outgoing)
    big_text = next(i for i, item in enumerate(outgoing) if item.size > 2**20)
    if sent[big_text].compressed:
        assert sent[big_text].length < outgoing[big_text].size // 10
    assert received[big_text].length < outgoing[big_text].size // 10


# --- wsio client <-> Node ws echo server --------------------------------------------------------

# ws's server options, as echo_server.js takes them in the query; its answer to wsio's
# default offer (`permessage-deflate; client_max_window_bits`) is exactly these parameters.
NODE_SERVER_CASES: list[dict[str, str | None]] = [
    {},
    {"server_no_context_takeover": None, "client_no_context_takeover": None},
    *(
        {"server_max_window_bits": str(bits), "client_max_window_bits": str(bits)}
        for bits in range(8, 16)
    ),
    {"server_max_window_bits": "8"},
    {"client_max_window_bits": "8", "server_no_context_takeover": None},
]


def case_id(case: dict[str, str | None]) -> str:
    return ",".join(k if v is None else f"{k}={v}" for k, v in case.items()) or "default"


def node_query(case: dict[str, str | None], **more: str) -> str:
    params = {"deflate": "1", **{k: "1" if v is None else v for k, v in case.items()}, **more}
    return "/?" + urllib.parse.urlencode(params)


@pytest.mark.parametrize("case", NODE_SERVER_CASES, ids=case_id)
async def test_wsio_client_node_server(
    layer: Layer, node_server: StartNodeServer, case: dict[str, str | None]
) -> None:
    server = await node_server()
    outgoing = client_messages()
    async with (
        asyncio.timeout(3 * STEP),
        layer.connect(server.url(node_query(case)), max_size=MAX_SIZE) as ws,
    ):
        wire = tap(ws)
        assert ws.response is not None
        answer = ws.response.headers["Sec-WebSocket-Extensions"]
        assert header_params(answer) == case
        extension = wsio_deflate(ws)
        assert Deflate.of(extension) == Deflate.for_client(case)
        await send_and_echo(ws, outgoing)
    event = await server.wait_event(lambda e: e["event"] == "connection")
    assert (event["extensions"], event["negotiated"]) == (answer, "permessage-deflate")
    closed = await server.wait_close_event()
    assert closed["code"] == 1000
    check_client_wire(wire, outgoing, extension)
    kinds = [e["type"] for e in server.events if e["event"] == "message"]
    assert kinds == ["text" if isinstance(o.whole, str) else "binary" for o in outgoing]


@pytest.mark.parametrize("bits", [8, 9, 12, 15])
async def test_wsio_client_receives_fragmented_compressed(
    layer: Layer, node_server: StartNodeServer, bits: int
) -> None:
    """ws sends each echo as 3 fragments, compressed: RSV1 on the first one only."""
    server = await node_server()
    case = {"server_max_window_bits": str(bits), "client_max_window_bits": str(bits)}
    messages: list[str | bytes] = [large_text(), LONG_RANGE, b"\x01\x02" * 3000, "é€🎉" * 50]
    async with (
        asyncio.timeout(3 * STEP),
        layer.connect(server.url(node_query(case, fragment="3")), max_size=MAX_SIZE) as ws,
    ):
        wire = tap(ws)
        for message in messages:
            await ws.send(message)
            assert await ws.recv() == message
    wire.check_rsv()
    assert [(m.compressed, m.frames) for m in wire.incoming.messages()] == [(True, 3)] * 4


@pytest.mark.parametrize("no_context_takeover", [False, True])
async def test_wsio_client_context_takeover_with_node(
    layer: Layer, node_server: StartNodeServer, no_context_takeover: bool
) -> None:
    """The same message three times: with context takeover, the 2nd and 3rd are a few
    bytes each way; without (§7.1.1), each is compressed afresh, to the same size."""
    server = await node_server()
    case: dict[str, str | None] = {}
    if no_context_takeover:
        case = {"server_no_context_takeover": None, "client_no_context_takeover": None}
    async with asyncio.timeout(STEP), layer.connect(server.url(node_query(case))) as ws:
        wire = tap(ws)
        extension = wsio_deflate(ws)
        assert extension.local_no_context_takeover is no_context_takeover
        assert extension.remote_no_context_takeover is no_context_takeover
        for _ in range(3):
            await ws.send(RANDOMISH)
            assert await ws.recv() == RANDOMISH
    for log in (wire.outgoing, wire.incoming):
        first, second, third = (m.length for m in log.messages())
        assert all(m.compressed for m in log.messages())
        assert first > len(RANDOMISH) // 3
        if no_context_takeover:
            assert first == second == third
        else:
            assert second < first // 10 and third < first // 10


async def test_wsio_client_custom_offer_to_node(
    layer: Layer, node_server: StartNodeServer
) -> None:
    """wsio asks for everything §7 lets a client ask for; ws grants it as offered."""
    server = await node_server()
    factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=8,
        client_max_window_bits=10,
        compression_threshold=0,
    )
    async with (
        asyncio.timeout(STEP),
        layer.connect(
            server.url(node_query({})), compression=None, extensions=[factory], max_size=MAX_SIZE
        ) as ws,
    ):
        wire = tap(ws)
        assert ws.request is not None and ws.response is not None
        offer = ws.request.headers["Sec-WebSocket-Extensions"]
        assert header_params(offer) == {
            "server_no_context_takeover": None,
            "client_no_context_takeover": None,
            "server_max_window_bits": "8",
            "client_max_window_bits": "10",
        }
        assert header_params(ws.response.headers["Sec-WebSocket-Extensions"]) == header_params(
            offer
        )
        assert Deflate.of(wsio_deflate(ws)) == Deflate(True, True, 8, 10)
        for message in ["", "x", LONG_RANGE, large_text()]:
            await ws.send(message)
            assert await ws.recv() == message
    wire.check_rsv()
    # Threshold 0: wsio compresses even the empty message.
    assert wire.outgoing.compressed() == [True] * 4
    assert wire.incoming.compressed() == [True] * 4


async def test_wsio_client_per_message_compress_flag_with_node(
    layer: Layer,
    node_server: StartNodeServer,
) -> None:
    server = await node_server()
    big = json.dumps([{"id": i, "name": f"item {i}"} for i in range(2000)])
    async with asyncio.timeout(STEP), layer.connect(server.url(node_query({}))) as ws:
        wire = tap(ws)
        for message, compress in [(big, False), (big, None), ("hi", True), ("hi", None)]:
            await ws.send(message, compress=compress)
            assert await ws.recv() == message
    assert wire.outgoing.compressed() == [False, True, True, False]
    sizes = [m.length for m in wire.outgoing.messages()]
    assert sizes[0] == len(big) and sizes[1] < len(big) // 5


async def test_wsio_client_without_compression_node_server(
    layer: Layer, node_server: StartNodeServer
) -> None:
    """compression=None: no offer, so ws (which would accept) answers no extension."""
    server = await node_server()
    async with (
        asyncio.timeout(STEP),
        layer.connect(server.url(node_query({})), compression=None) as ws,
    ):
        wire = tap(ws)
        assert ws.request is not None and ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.request.headers
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        assert ws.protocol.extensions == []
        for message in ["x" * 5000, b"\x00" * 5000]:
            await ws.send(message)
            assert await ws.recv() == message
    event = await server.wait_event(lambda e: e["event"] == "connection")
    assert (event["extensions"], event["negotiated"]) == (None, "")
    assert wire.outgoing.compressed() == wire.incoming.compressed() == [False, False]


# --- Node ws client <-> wsio server -------------------------------------------------------------


@dataclass
class ServerSide:
    """What the wsio server saw of its one connection."""

    connection: Any = None
    wire: Wire | None = None
    messages: list[str | bytes] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def process_request(self, ws: wsio.ServerConnection, request: wsio.Request) -> None:
        self.connection = ws
        self.wire = tap(ws, before_response=True)

    async def echo(self, ws: wsio.ServerConnection) -> None:
        try:
            assert ws.request is not None
            fragment = "fragment" in ws.request.path
            async for message in ws:
                self.messages.append(message)
                if fragment:
                    third = max(1, len(message) // 3)
                    await ws.send(
                        [message[:third], message[third : 2 * third], message[third * 2 :]]
                    )
                else:
                    await ws.send(message)
        finally:
            self.done.set()

    async def finished(self) -> None:
        await asyncio.wait_for(self.done.wait(), STEP)


@contextlib.asynccontextmanager
async def wsio_echo_server(layer: Layer, **kwargs: Any) -> AsyncIterator[tuple[str, ServerSide]]:
    side = ServerSide()
    async with layer.serve(
        side.echo, process_request=side.process_request, max_size=MAX_SIZE, **kwargs
    ) as server:
        yield f"ws://127.0.0.1:{server.port}", side


@dataclass(frozen=True)
class NodeSend:
    """One message that client.js sends, and what the wsio server should see of it."""

    step: Step
    kind: str  # "text" or "binary"
    sha256: str
    size: int
    fragments: int = 1
    compress: bool = True  # ws's per-message option


def node_sends() -> list[NodeSend]:
    unit = "0123456789abcdef€✓🎉".encode()
    count = 2**20 // len(unit) + 1
    # Repeats 4,096 bytes apart: compressible with a window of 2**13 bytes or more only.
    random_unit = os.urandom(4096)
    texts = [*TEXTS, "", LONG_RANGE]
    binaries = [*BINARIES, b""]
    return [
        *(
            NodeSend({"op": "send", "text": t}, "text", sha256_hex(t), len(t.encode()))
            for t in texts
        ),
        *(
            NodeSend({"op": "send", "binary": b64(d)}, "binary", sha256_hex(d), len(d))
            for d in binaries
        ),
        NodeSend(
            {"op": "send", "type": "text", "repeat": b64(unit), "count": count},
            "text",
            sha256_hex(unit * count),
            len(unit) * count,
        ),
        NodeSend(
            {"op": "send", "type": "binary", "repeat": b64(random_unit), "count": 256},
            "binary",
            sha256_hex(random_unit * 256),
            4096 * 256,
        ),
        NodeSend(
            {"op": "send_fragments", "text": TEXT_PARTS},
            "text",
            sha256_hex("".join(TEXT_PARTS)),
            len("".join(TEXT_PARTS).encode()),
            fragments=len(TEXT_PARTS),
        ),
        NodeSend(
            {"op": "send_fragments", "binary": [b64(p) for p in BINARY_PARTS]},
            "binary",
            sha256_hex(b"".join(BINARY_PARTS)),
            len(b"".join(BINARY_PARTS)),
            fragments=len(BINARY_PARTS),
        ),
        NodeSend(
            {"op": "send", "text": LONG_RANGE, "compress": False},
            "text",
            sha256_hex(LONG_RANGE),
            len(LONG_RANGE),
            compress=False,
        ),
    ]


# ws's client options, and wsio's server factory (None: compression="deflate", wsio's
# defaults): the parameters each side should end up with, from the server's side.
NODE_CLIENT_CASES: list[tuple[str, dict[str, Any], dict[str, Any] | None, Deflate]] = [
    ("defaults", {}, None, Deflate(False, False, 12, 12)),
    (
        "no_context_takeover_asked",
        {"serverNoContextTakeover": True, "clientNoContextTakeover": True},
        None,
        Deflate(True, True, 12, 12),
    ),
    *(
        (
            f"bits_asked_{bits}",
            {"serverMaxWindowBits": bits, "clientMaxWindowBits": bits},
            {"server_max_window_bits": 15, "client_max_window_bits": 15},
            Deflate(False, False, bits, bits),
        )
        for bits in range(8, 16)
    ),
    (
        "wsio_sets_everything",
        {},
        {
            "server_no_context_takeover": True,
            "client_no_context_takeover": True,
            "server_max_window_bits": 9,
            "client_max_window_bits": 10,
        },
        Deflate(True, True, 10, 9),
    ),
    (
        "wsio_sets_8",
        {},
        {"server_max_window_bits": 8, "client_max_window_bits": 8},
        Deflate(False, False, 8, 8),
    ),
]


@pytest.mark.parametrize(
    ("node_options", "wsio_factory", "expected"),
    [case[1:] for case in NODE_CLIENT_CASES],
    ids=[case[0] for case in NODE_CLIENT_CASES],
)
async def test_node_client_wsio_server(
    layer: Layer,
    node_setup: NodeSetup,
    node_options: dict[str, Any],
    wsio_factory: dict[str, Any] | None,
    expected: Deflate,
) -> None:
    threshold = THRESHOLD
    kwargs: dict[str, Any] = {}
    if wsio_factory is not None:
        threshold = 0
        factory = ServerPerMessageDeflateFactory(**wsio_factory, compression_threshold=0)
        kwargs = {"compression": None, "extensions": [factory]}
    sends = node_sends()
    steps = [send.step for send in sends] + [{"op": "recv", "count": len(sends)}]
    async with wsio_echo_server(layer, **kwargs) as (url, side):
        result = await run_node_client(
            node_setup,
            f"{url}/",
            steps,
            options={"per_message_deflate": {"threshold": 0, **node_options}},
        )
        await side.finished()
    result.assert_ok()
    got = [(m["type"], m["sha256"], m["length"]) for m in result.messages]
    assert got == [(send.kind, send.sha256, send.size) for send in sends]
    ws = side.connection
    extension = wsio_deflate(ws)
    assert Deflate.of(extension) == expected
    offer = header_params(ws.request.headers["Sec-WebSocket-Extensions"])
    answer = ws.response.headers["Sec-WebSocket-Extensions"]
    assert offer is not None and "client_max_window_bits" in offer
    assert Deflate.for_client(header_params(answer) or {}).mirrored() == expected
    opened = result.of("open")[0]
    assert (opened["extensions"], opened["negotiated"]) == (answer, "permessage-deflate")
    # What crossed the wire, from the server's side: ws compressed all but one message
    # (threshold 0); wsio's echoes are whole messages, compressed from its threshold on.
    wire = side.wire
    assert wire is not None
    wire.check_rsv()
    incoming = wire.incoming.messages()
    outgoing = wire.outgoing.messages()
    assert [m.compressed for m in incoming] == [send.compress for send in sends]
    assert [m.frames for m in incoming] == [send.fragments for send in sends]
    assert [m.compressed for m in outgoing] == [
        can_compress(extension) and send.size >= threshold for send in sends
    ]
    big_text = next(i for i, send in enumerate(sends) if send.size > 2**20)
    assert incoming[big_text].length < sends[big_text].size // 10
    if can_compress(extension):
        assert outgoing[big_text].length < sends[big_text].size // 10
    # The client's own byte counts agree: the 1 MiB text went compressed (the random
    # binary only compresses with a window of 2**13 bytes or more).
    closed = result.close
    assert closed["bytes_written"] < 2**20 + 50_000
    sent_back = 2**20 if can_compress(extension) else 2 * 2**20
    assert closed["bytes_read"] < sent_back + 50_000


async def test_wsio_server_sends_fragmented_compressed_to_node(
    layer: Layer, node_setup: NodeSetup
) -> None:
    steps: list[Step] = [
        {"op": "send", "text": LONG_RANGE},
        {"op": "send", "binary": b64(b"\x07" * 3000)},
        {"op": "recv", "count": 2},
    ]
    async with wsio_echo_server(
        layer,
    ) as (url, side):
        result = await run_node_client(
            node_setup, f"{url}/fragment", steps, options={"per_message_deflate": True}
        )
        await side.finished()
    result.assert_ok()
    assert [m["sha256"] for m in result.messages] == [
        sha256_hex(LONG_RANGE),
        sha256_hex(b"\x07" * 3000),
    ]
    assert side.wire is not None
    side.wire.check_rsv()
    assert [(m.compressed, m.frames) for m in side.wire.outgoing.messages()] == [(True, 3)] * 2


async def test_node_client_offer_declined_by_wsio_server(
    layer: Layer, node_setup: NodeSetup
) -> None:
    """compression=None on the server: ws offers, wsio declines, messages go plain."""
    steps: list[Step] = [{"op": "send", "text": "x" * 5000}, {"op": "recv", "count": 1}]
    async with wsio_echo_server(layer, compression=None) as (url, side):
        result = await run_node_client(
            node_setup, f"{url}/", steps, options={"per_message_deflate": {"threshold": 0}}
        )
        await side.finished()
    result.assert_ok()
    assert result.messages[0]["sha256"] == sha256_hex("x" * 5000)
    opened = result.of("open")[0]
    assert (opened["extensions"], opened["negotiated"]) == (None, "")
    ws = side.connection
    assert header_params(ws.request.headers["Sec-WebSocket-Extensions"]) is not None
    assert "Sec-WebSocket-Extensions" not in ws.response.headers
    assert ws.protocol.extensions == []
    assert side.wire is not None
    assert side.wire.incoming.compressed() == side.wire.outgoing.compressed() == [False]


# --- wsio client <-> websockets server ----------------------------------------------------------


@dataclass
class PeerSide:
    """What the websockets server saw."""

    extension: Any = None
    answer: str | None = None
    messages: list[str | bytes] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def echo(self, ws: PeerConnection) -> None:
        try:
            assert ws.request is not None and ws.response is not None
            self.answer = ws.response.headers.get("Sec-WebSocket-Extensions")
            self.extension = next(iter(ws.protocol.extensions), None)
            fragment = ws.request.path.startswith("/fragment")
            async for message in ws:
                self.messages.append(message)
                if fragment:
                    third = max(1, len(message) // 3)
                    await ws.send(
                        [message[:third], message[third : 2 * third], message[third * 2 :]]
                    )
                else:
                    await ws.send(message)
        except PeerConnectionClosed:
            pass
        finally:
            self.done.set()


@contextlib.asynccontextmanager
async def websockets_echo_server(**kwargs: Any) -> AsyncIterator[tuple[str, PeerSide]]:
    side = PeerSide()
    async with ws_serve(side.echo, "127.0.0.1", 0, max_size=MAX_SIZE, **kwargs) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}", side


# websockets's server factory (None: its compression="deflate" defaults), and what wsio
# should end up with. websockets can't compress with a window of 8 bits, so it can only
# ask that of wsio.
PEER_SERVER_CASES: list[tuple[str, dict[str, Any] | None, Deflate]] = [
    ("websockets_defaults", None, Deflate(False, False, 12, 12)),
    ("plain_factory", {}, Deflate(False, False, 15, 15)),
    (
        "no_context_takeover",
        {"server_no_context_takeover": True, "client_no_context_takeover": True},
        Deflate(True, True, 15, 15),
    ),
    *(
        (
            f"bits_{bits}",
            {"server_max_window_bits": bits, "client_max_window_bits": bits},
            Deflate(False, False, bits, bits),
        )
        for bits in range(9, 16)
    ),
    (
        "client_bits_8",
        {"server_max_window_bits": 9, "client_max_window_bits": 8},
        Deflate(False, False, 9, 8),
    ),
]


@pytest.mark.parametrize(
    ("factory", "expected"),
    [case[1:] for case in PEER_SERVER_CASES],
    ids=[case[0] for case in PEER_SERVER_CASES],
)
async def test_wsio_client_websockets_server(
    layer: Layer, factory: dict[str, Any] | None, expected: Deflate
) -> None:
    kwargs: dict[str, Any] = {}
    if factory is not None:
        kwargs = {
            "compression": None,
            "extensions": [peer_deflate.ServerPerMessageDeflateFactory(**factory)],
        }
    outgoing = client_messages()
    async with websockets_echo_server(**kwargs) as (url, side):
        async with asyncio.timeout(3 * STEP), layer.connect(f"{url}/", max_size=MAX_SIZE) as ws:
            wire = tap(ws)
            extension = wsio_deflate(ws)
            assert Deflate.of(extension) == expected
            assert ws.response is not None
            answer = ws.response.headers["Sec-WebSocket-Extensions"]
            assert Deflate.for_client(header_params(answer) or {}) == expected
            await send_and_echo(ws, outgoing)
        await asyncio.wait_for(side.done.wait(), STEP)
    assert side.answer == answer
    assert Deflate.of(side.extension) == expected.mirrored()
    assert len(side.messages) == len(outgoing)
    check_client_wire(wire, outgoing, extension)


async def test_wsio_client_receives_fragmented_from_websockets(layer: Layer) -> None:
    messages: list[str | bytes] = [LONG_RANGE, large_text(), b"\x01" * 5000]
    async with (
        websockets_echo_server() as (url, _),
        asyncio.timeout(3 * STEP),
        layer.connect(f"{url}/fragment", max_size=MAX_SIZE) as ws,
    ):
        wire = tap(ws)
        for message in messages:
            await ws.send(message)
            assert await ws.recv() == message
    wire.check_rsv()
    # websockets ends a message sent from a list with an empty frame: 3 parts, 4 frames.
    assert [(m.compressed, m.frames) for m in wire.incoming.messages()] == [(True, 4)] * 3


async def test_wsio_client_context_takeover_with_websockets(layer: Layer) -> None:
    factory = peer_deflate.ServerPerMessageDeflateFactory(server_no_context_takeover=True)
    async with (
        websockets_echo_server(compression=None, extensions=[factory]) as (url, _),
        asyncio.timeout(STEP),
        layer.connect(f"{url}/") as ws,
    ):
        wire = tap(ws)
        assert Deflate.of(wsio_deflate(ws)) == Deflate(True, False, 15, 15)
        for _ in range(3):
            await ws.send(RANDOMISH)
            assert await ws.recv() == RANDOMISH
    sent = [m.length for m in wire.outgoing.messages()]
    received = [m.length for m in wire.incoming.messages()]
    # wsio keeps its context; websockets, told not to, compresses each message afresh.
    assert sent[1] < sent[0] // 10 and sent[2] < sent[0] // 10
    assert received[0] == received[1] == received[2] > len(RANDOMISH) // 3


async def test_wsio_client_without_compression_websockets_server(layer: Layer) -> None:
    async with websockets_echo_server() as (url, side):
        async with asyncio.timeout(STEP), layer.connect(f"{url}/", compression=None) as ws:
            wire = tap(ws)
            assert ws.protocol.extensions == []
            await ws.send("y" * 4000)
            assert await ws.recv() == "y" * 4000
        await asyncio.wait_for(side.done.wait(), STEP)
    assert side.answer is None and side.extension is None
    assert wire.outgoing.compressed() == wire.incoming.compressed() == [False]


# --- websockets client <-> wsio server ----------------------------------------------------------

# websockets's client factory (None: its compression="deflate" defaults) and wsio's server
# factory (None: wsio's defaults): what the wsio server should end up with.
PEER_CLIENT_CASES: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None, Deflate]] = [
    ("both_defaults", None, None, Deflate(False, False, 12, 12)),
    (
        "no_context_takeover_asked",
        {"server_no_context_takeover": True, "client_no_context_takeover": True},
        None,
        Deflate(True, True, 12, 12),
    ),
    *(
        (
            f"bits_asked_{bits}",
            {"server_max_window_bits": bits, "client_max_window_bits": bits},
            {"server_max_window_bits": 15, "client_max_window_bits": 15},
            Deflate(False, False, bits, bits),
        )
        for bits in range(9, 16)
    ),
    (
        "server_bits_8_asked",
        {"server_max_window_bits": 8},
        {"server_max_window_bits": 15, "client_max_window_bits": 15},
        Deflate(False, False, 15, 8),
    ),
    (
        "wsio_sets_everything",
        None,
        {
            "server_no_context_takeover": True,
            "client_no_context_takeover": True,
            "server_max_window_bits": 10,
            "client_max_window_bits": 9,
        },
        Deflate(True, True, 9, 10),
    ),
]


@pytest.mark.parametrize(
    ("peer_factory", "wsio_factory", "expected"),
    [case[1:] for case in PEER_CLIENT_CASES],
    ids=[case[0] for case in PEER_CLIENT_CASES],
)
async def test_websockets_client_wsio_server(
    layer: Layer,
    peer_factory: dict[str, Any] | None,
    wsio_factory: dict[str, Any] | None,
    expected: Deflate,
) -> None:
    server_kwargs: dict[str, Any] = {}
    threshold = THRESHOLD
    if wsio_factory is not None:
        threshold = 0
        factory = ServerPerMessageDeflateFactory(**wsio_factory, compression_threshold=0)
        server_kwargs = {"compression": None, "extensions": [factory]}
    client_kwargs: dict[str, Any] = {}
    if peer_factory is not None:
        client_kwargs = {
            "compression": None,
            "extensions": [peer_deflate.ClientPerMessageDeflateFactory(**peer_factory)],
        }
    messages: list[str | bytes | list[str] | list[bytes]] = [
        *TEXTS,
        *BINARIES,
        "",
        b"",
        large_text(),
        large_binary(),
        LONG_RANGE,
        TEXT_PARTS,
        BINARY_PARTS,
    ]
    async with wsio_echo_server(layer, **server_kwargs) as (url, side):
        async with (
            asyncio.timeout(3 * STEP),
            ws_connect(f"{url}/", max_size=MAX_SIZE, **client_kwargs) as peer,
        ):
            peer_extension = next(iter(peer.protocol.extensions), None)
            for message in messages:
                await peer.send(message)
                whole = join(message)
                echoed = await peer.recv()
                assert type(echoed) is type(whole) and echoed == whole
        await side.finished()
    ws = side.connection
    extension = wsio_deflate(ws)
    assert Deflate.of(extension) == expected
    assert Deflate.of(peer_extension) == expected.mirrored()
    assert peer.response is not None
    assert (
        peer.response.headers["Sec-WebSocket-Extensions"]
        == (ws.response.headers["Sec-WebSocket-Extensions"])
    )
    assert side.wire is not None
    side.wire.check_rsv()
    assert side.wire.incoming.compressed() == [True] * len(messages)
    # wsio's echo of a fragmented message is one frame, compressed by the threshold.
    assert side.wire.outgoing.compressed() == [
        Outgoing(join(message)).expect_compressed(extension, threshold) for message in messages
    ]
    # websockets ends a message sent from a list with an empty frame.
    assert [m.frames for m in side.wire.incoming.messages()][-2:] == [
        len(TEXT_PARTS) + 1,
        len(BINARY_PARTS) + 1,
    ]


async def test_websockets_reads_uncompressed_messages_from_wsio(layer: Layer) -> None:
    """compress=False on a negotiated connection: RSV1 clear, websockets reads it as is."""
    big = json.dumps({"rows": [[i, f"row {i}"] for i in range(5000)]})

    async def handler(ws: wsio.ServerConnection) -> None:
        await ws.send(big, compress=False)
        await ws.send(big)
        await ws.send([big[:100], big[100:]], compress=False)
        await ws.send(big.encode(), compress=False)
        await ws.send("small", compress=True)
        await ws.recv()

    side = ServerSide()
    async with (
        layer.serve(handler, process_request=side.process_request) as server,
        asyncio.timeout(STEP),
        ws_connect(f"ws://127.0.0.1:{server.port}/", max_size=MAX_SIZE) as peer,
    ):
        received = [await peer.recv() for _ in range(5)]
        await peer.send("bye")
    assert received == [big, big, big, big.encode(), "small"]
    assert side.wire is not None
    side.wire.check_rsv()
    assert side.wire.outgoing.compressed()[:5] == [False, True, False, False, True]
    assert side.wire.outgoing.messages()[0].length == len(big)


async def test_websockets_client_offer_declined_by_wsio_server(layer: Layer) -> None:
    async with wsio_echo_server(layer, compression=None) as (url, side):
        async with asyncio.timeout(STEP), ws_connect(f"{url}/") as peer:
            assert peer.protocol.extensions == []
            await peer.send("z" * 3000)
            assert await peer.recv() == "z" * 3000
        await side.finished()
    ws = side.connection
    assert "permessage-deflate" in ws.request.headers["Sec-WebSocket-Extensions"]
    assert ws.protocol.extensions == []
    assert side.wire is not None
    assert side.wire.incoming.compressed() == side.wire.outgoing.compressed() == [False]


def test_tap_parses_frames() -> None:
    """The frame parser used above, on frames split at every byte."""
    masked = bytes([0xC1, 0x80 | 126]) + (300).to_bytes(2, "big") + b"mask" + b"\x00" * 300
    plain = bytes([0x02, 127]) + (70000).to_bytes(8, "big") + b"\x01" * 70000
    last = bytes([0x80, 3]) + b"abc"
    ping = bytes([0x89, 0])
    log = WireLog(http_first=True)
    data = b"HTTP/1.1 101 Switching Protocols\r\n\r\n" + masked + plain + ping + last
    for i in range(len(data)):
        log.feed(data[i : i + 1])
    assert log.frames == [
        WireFrame(1, True, RSV1, 300),
        WireFrame(2, False, 0, 70000),
        WireFrame(9, True, 0, 0),
        WireFrame(0, True, 0, 3),
    ]
    assert log.messages() == [WireMessage(1, True, 1, 300), WireMessage(2, False, 2, 70003)]
