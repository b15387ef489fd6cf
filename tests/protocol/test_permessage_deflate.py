"""permessage-deflate (RFC 7692) in the sans-I/O core: negotiation on both sides (§5, §7),
then bytes in and bytes out through ClientProtocol and ServerProtocol with deterministic
masks (§6, §7.2), checked against Python's zlib used directly."""

from __future__ import annotations

import random
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

import wsio.protocol.extensions.permessage_deflate as pmd_module
from wsio.exceptions import (
    InvalidHeaderFormat,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
)
from wsio.protocol.connection import (
    BinaryMessage,
    ClientProtocol,
    Ping,
    Pong,
    Protocol,
    RequestReceived,
    ResponseReceived,
    ServerProtocol,
    Side,
    State,
    TextMessage,
)
from wsio.protocol.extensions import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from wsio.protocol.handshake import build_request
from wsio.protocol.http11 import Response, parse_response
from wsio.protocol.uri import parse_uri

from .helpers import (
    BINARY,
    CLOSE,
    CONT,
    MASK,
    PING,
    PONG,
    RFC_ACCEPT,
    RFC_KEY,
    TEXT,
    Frame,
    close_payload,
    feed,
    fixed_random,
    frame,
    make,
    output,
    parse_all,
    parser_buffers,
)

PMD = "permessage-deflate"
RSV1, RSV2, RSV3 = 0x40, 0x20, 0x10
TAIL = b"\x00\x00\xff\xff"
KiB = 1024
MiB = 1024 * KiB


# Helpers ---------------------------------------------------------------------------------


def request_bytes(*extension_headers: str) -> bytes:
    lines = [
        "GET /chat HTTP/1.1",
        "Host: server.example.com",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {RFC_KEY}",
        "Sec-WebSocket-Version: 13",
        *(f"Sec-WebSocket-Extensions: {value}" for value in extension_headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def response_bytes(*extension_headers: str) -> bytes:
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {RFC_ACCEPT}",
        *(f"Sec-WebSocket-Extensions: {value}" for value in extension_headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def open_server(
    *offers: str, max_size: int | None = MiB, **factory: Any
) -> tuple[ServerProtocol, Response]:
    """A server with permessage-deflate (``factory`` options) that received a request with
    these ``Sec-WebSocket-Extensions`` headers and answered it with accept()."""
    server = ServerProtocol(
        extensions=[ServerPerMessageDeflateFactory(**factory)],
        random_bytes=fixed_random,
        server_header=None,
        max_size=max_size,
    )
    server.receive_data(request_bytes(*offers))
    [event] = server.events_received()
    assert isinstance(event, RequestReceived)
    response = server.accept(event.request)
    server.send_response(response)
    written = parse_all(parse_response, b"".join(server.data_to_send()))
    assert written.status_code == response.status_code
    return server, response


def start_client(max_size: int | None = MiB, **factory: Any) -> ClientProtocol:
    client = ClientProtocol(
        parse_uri("ws://server.example.com/chat"),
        extensions=[ClientPerMessageDeflateFactory(**factory)],
        random_bytes=fixed_random,
        user_agent_header=None,
        max_size=max_size,
    )
    client.send_request(client.connect())
    client.data_to_send()
    return client


def open_client(*answers: str, max_size: int | None = MiB, **factory: Any) -> ClientProtocol:
    """A client with permessage-deflate (``factory`` options) that received a 101 with
    these ``Sec-WebSocket-Extensions`` headers."""
    client = start_client(max_size, **factory)
    client.receive_data(response_bytes(*answers))
    [event] = client.events_received()
    assert isinstance(event, ResponseReceived)
    return client


def deflate_ext(protocol: Protocol) -> PerMessageDeflate:
    [extension] = protocol.extensions
    assert isinstance(extension, PerMessageDeflate)
    return extension


def opened(side: Side, params: str = "", max_size: int | None = MiB, **factory: Any) -> Protocol:
    """An open connection of this ``side`` with permessage-deflate negotiated: for a server,
    the client offered ``PMD + params``; for a client, the server answered it."""
    if side is Side.SERVER:
        server, response = open_server(PMD + params, max_size=max_size, **factory)
        assert response.status_code == 101
        deflate_ext(server)
        return server
    client = open_client(PMD + params, max_size=max_size, **factory)
    assert client.handshake_exc is None, client.handshake_exc
    deflate_ext(client)
    return client


def to(receiver: Side, opcode: int, payload: bytes = b"", **kwargs: Any) -> bytes:
    """A frame as the peer of ``receiver`` sends it: masked towards a server only."""
    return frame(opcode, payload, mask=MASK if receiver is Side.SERVER else None, **kwargs)


def deflate(compressor: Any, data: bytes) -> bytes:
    """Compress one message as RFC 7692 §7.2.1 says: sync flush, then drop the tail."""
    payload: bytes = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert payload.endswith(TAIL)
    return payload[: -len(TAIL)]


def compressor(bits: int = 15) -> Any:
    return zlib.compressobj(9, zlib.DEFLATED, -bits)


def inflate(decompressor: Any, payload: bytes) -> bytes:
    """Decompress one message as RFC 7692 §7.2.2 says: append the tail, inflate."""
    data: bytes = decompressor.decompress(payload + TAIL)
    assert not decompressor.unused_data
    assert not decompressor.unconsumed_tail
    return data


def strict_inflate(decompressor: Any, payload: bytes) -> bytes:
    """Like :func:`inflate`, with the output taken 64 bytes at a time: zlib then checks
    every back-reference against its window (within one call it also accepts references
    into that call's output), so data compressed with a larger window fails."""
    data = payload + TAIL
    out = bytearray()
    while True:
        chunk = decompressor.decompress(data, 64)
        out += chunk
        data = decompressor.unconsumed_tail
        if not data and not chunk:
            break
    assert not decompressor.unused_data
    return bytes(out)


def messages_of(frames: list[Frame]) -> Iterator[tuple[int, int, bytes]]:
    """(opcode, rsv of the first frame, payload) of each data message in ``frames``."""
    current: tuple[int, int, bytearray] | None = None
    for item in frames:
        if item.opcode >= CLOSE:
            continue
        if item.opcode == CONT:
            assert current is not None
            assert item.rsv == 0, f"RSV bits on a continuation frame: {item}"
            current[2].extend(item.payload)
        else:
            assert current is None
            current = (item.opcode, item.rsv, bytearray(item.payload))
        if item.fin:
            yield current[0], current[1], bytes(current[2])
            current = None
    assert current is None


def assert_failed(
    protocol: Protocol, code: int, exc_type: type[Exception] = ProtocolError
) -> None:
    """The connection failed with a close frame carrying ``code``."""
    frames, _ = output(protocol)
    assert [f.opcode for f in frames][-1:] == [CLOSE], frames
    assert frames[-1].payload[:2] == code.to_bytes(2, "big"), frames[-1]
    assert isinstance(protocol.failure, exc_type), protocol.failure
    assert protocol.state is State.CLOSING
    assert not protocol.receiving


def text(n: int, seed: int = 0) -> bytes:
    """``n`` bytes of compressible ASCII text, different for each seed."""
    rng = random.Random(seed)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        for _ in range(200)
    ]
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words).encode() + b" "
    return bytes(out[:n])


def noise(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


SIDES = [Side.SERVER, Side.CLIENT]
side_ids = ["server", "client"]


# Negotiation: the client's offer ----------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "offer"),
    [
        ({}, [("client_max_window_bits", None)]),
        ({"client_max_window_bits": None}, []),
        ({"client_max_window_bits": 10}, [("client_max_window_bits", "10")]),
        ({"client_max_window_bits": 8}, [("client_max_window_bits", "8")]),
        (
            {"server_no_context_takeover": True},
            [("server_no_context_takeover", None), ("client_max_window_bits", None)],
        ),
        (
            {"client_no_context_takeover": True, "client_max_window_bits": None},
            [("client_no_context_takeover", None)],
        ),
        (
            {"server_max_window_bits": 9, "client_max_window_bits": None},
            [("server_max_window_bits", "9")],
        ),
        (
            {
                "server_no_context_takeover": True,
                "client_no_context_takeover": True,
                "server_max_window_bits": 15,
                "client_max_window_bits": 15,
            },
            [
                ("server_no_context_takeover", None),
                ("client_no_context_takeover", None),
                ("server_max_window_bits", "15"),
                ("client_max_window_bits", "15"),
            ],
        ),
    ],
)
def test_client_offer(options: dict[str, Any], offer: list[tuple[str, str | None]]) -> None:
    factory = ClientPerMessageDeflateFactory(**options)
    assert list(factory.offer()) == offer
    request = build_request(parse_uri("ws://a/"), RFC_KEY, extensions=[factory])
    expected = "; ".join([PMD, *(n if v is None else f"{n}={v}" for n, v in offer)])
    assert request.headers.get_all("Sec-WebSocket-Extensions") == [expected]


def test_client_without_extensions_offers_nothing() -> None:
    request = build_request(parse_uri("ws://a/"), RFC_KEY, extensions=[])
    assert "Sec-WebSocket-Extensions" not in request.headers


@pytest.mark.parametrize("bits", [7, 16, 0, -1])
@pytest.mark.parametrize("which", ["server_max_window_bits", "client_max_window_bits"])
def test_factories_refuse_invalid_window_bits(which: str, bits: int) -> None:
    with pytest.raises(ValueError):
        ClientPerMessageDeflateFactory(**{which: bits})
    with pytest.raises(ValueError):
        ServerPerMessageDeflateFactory(**{which: bits})


def test_server_factory_require_client_bits_needs_client_bits() -> None:
    with pytest.raises(ValueError):
        ServerPerMessageDeflateFactory(
            client_max_window_bits=None, require_client_max_window_bits=True
        )


# Negotiation: the server's answer (§5.1, §7) ------------------------------------------------


def answer_of(response: Response) -> list[str]:
    return response.headers.get_all("Sec-WebSocket-Extensions")


@pytest.mark.parametrize(
    ("offer", "factory", "answer", "agreed"),
    [
        # wsio's server announces its window (12 by default): allowed even when the client
        # didn't ask (§7.1.2.1). client_max_window_bits only if offered (§7.1.2.2).
        ("", {}, "; server_max_window_bits=12", (False, False, 15, 12)),
        (
            "; client_max_window_bits",
            {},
            "; server_max_window_bits=12; client_max_window_bits=12",
            (False, False, 12, 12),
        ),
        # The server's answer for the client's window is at most what the client announced.
        (
            "; client_max_window_bits=10",
            {},
            "; server_max_window_bits=12; client_max_window_bits=10",
            (False, False, 10, 12),
        ),
        (
            "; client_max_window_bits=15",
            {},
            "; server_max_window_bits=12; client_max_window_bits=12",
            (False, False, 12, 12),
        ),
        (
            "; client_max_window_bits=8",
            {},
            "; server_max_window_bits=12; client_max_window_bits=8",
            (False, False, 8, 12),
        ),
        (
            '; client_max_window_bits="9"',
            {},
            "; server_max_window_bits=12; client_max_window_bits=9",
            (False, False, 9, 12),
        ),
        # A client asking for a smaller server window gets it; a larger one, the server's.
        ("; server_max_window_bits=10", {}, "; server_max_window_bits=10", (False, False, 15, 10)),
        ("; server_max_window_bits=15", {}, "; server_max_window_bits=12", (False, False, 15, 12)),
        ("; server_max_window_bits=8", {}, "; server_max_window_bits=8", (False, False, 15, 8)),
        ('; server_max_window_bits="9"', {}, "; server_max_window_bits=9", (False, False, 15, 9)),
        # §7.1.1.1: server_no_context_takeover requested is honoured.
        (
            "; server_no_context_takeover",
            {},
            "; server_no_context_takeover; server_max_window_bits=12",
            (False, True, 15, 12),
        ),
        # §7.1.1.2: the client's hint is taken up.
        (
            "; client_no_context_takeover",
            {},
            "; client_no_context_takeover; server_max_window_bits=12",
            (True, False, 15, 12),
        ),
        # Everything at once, in another order.
        (
            "; client_max_window_bits=11; server_max_window_bits=9; client_no_context_takeover"
            "; server_no_context_takeover",
            {},
            "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9"
            "; client_max_window_bits=11",
            (True, True, 11, 9),
        ),
        # Server options.
        (
            "",
            {"server_max_window_bits": None},
            "",
            (False, False, 15, 15),
        ),
        (
            "; server_max_window_bits=11",
            {"server_max_window_bits": None},
            "; server_max_window_bits=11",
            (False, False, 15, 11),
        ),
        (
            "; client_max_window_bits",
            {"client_max_window_bits": None, "server_max_window_bits": None},
            "",
            (False, False, 15, 15),
        ),
        (
            "; client_max_window_bits=10",
            {"client_max_window_bits": None, "server_max_window_bits": None},
            "; client_max_window_bits=10",
            (False, False, 10, 15),
        ),
        (
            "",
            {"server_no_context_takeover": True, "client_no_context_takeover": True},
            "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12",
            (True, True, 15, 12),
        ),
        (
            "; client_max_window_bits",
            {"server_max_window_bits": 9, "client_max_window_bits": 13},
            "; server_max_window_bits=9; client_max_window_bits=13",
            (False, False, 13, 9),
        ),
        (
            "; client_max_window_bits",
            {"require_client_max_window_bits": True},
            "; server_max_window_bits=12; client_max_window_bits=12",
            (False, False, 12, 12),
        ),
    ],
)
def test_server_answer(
    offer: str, factory: dict[str, Any], answer: str, agreed: tuple[bool, bool, int, int]
) -> None:
    server, response = open_server(PMD + offer, **factory)
    assert response.status_code == 101
    assert answer_of(response) == [PMD + answer]
    ext = deflate_ext(server)
    assert (
        ext.remote_no_context_takeover,
        ext.local_no_context_takeover,
        ext.remote_max_window_bits,
        ext.local_max_window_bits,
    ) == agreed
    # What the server answered is what a wsio client that made this offer accepts, and
    # both ends agree.
    options: dict[str, Any] = {"client_max_window_bits": None}
    for name, value in parse_params(offer):
        if name.endswith("no_context_takeover"):
            options[name] = True
        else:
            options[name] = True if value is None else int(value.strip('"'))
    mirror = ClientPerMessageDeflateFactory(**options).accept(parse_params(answer))
    assert (
        mirror.local_no_context_takeover,
        mirror.remote_no_context_takeover,
        mirror.local_max_window_bits,
        mirror.remote_max_window_bits,
    ) == agreed


def parse_params(params: str) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for item in params.split(";"):
        if item.strip():
            name, _, value = item.strip().partition("=")
            out.append((name, value or None))
    return out


@pytest.mark.parametrize("bits", range(8, 16))
def test_server_answer_every_window(bits: int) -> None:
    server, response = open_server(
        f"{PMD}; server_max_window_bits={bits}; client_max_window_bits={bits}",
        server_max_window_bits=15,
        client_max_window_bits=15,
    )
    assert answer_of(response) == [
        f"{PMD}; server_max_window_bits={bits}; client_max_window_bits={bits}"
    ]
    ext = deflate_ext(server)
    assert ext.remote_max_window_bits == ext.local_max_window_bits == bits
    assert ext.can_compress is (bits > 8)


INVALID_OFFERS = [
    # Windows: no value, out of range, leading zeros, not a number.
    "server_max_window_bits",
    "server_max_window_bits=7",
    "server_max_window_bits=16",
    "server_max_window_bits=0",
    "server_max_window_bits=010",
    "server_max_window_bits=08",
    "server_max_window_bits=-9",
    "server_max_window_bits=+9",
    "server_max_window_bits=9.0",
    "server_max_window_bits=a",
    "server_max_window_bits=1e1",
    'server_max_window_bits="07"',
    "client_max_window_bits=7",
    "client_max_window_bits=16",
    "client_max_window_bits=010",
    "client_max_window_bits=x",
    # Flags with a value.
    "server_no_context_takeover=1",
    'server_no_context_takeover="x"',
    "client_no_context_takeover=true",
    # Duplicates, with the same or another value.
    "server_no_context_takeover; server_no_context_takeover",
    "client_no_context_takeover; client_no_context_takeover",
    "server_max_window_bits=10; server_max_window_bits=10",
    "server_max_window_bits=10; server_max_window_bits=11",
    "client_max_window_bits; client_max_window_bits",
    "client_max_window_bits; client_max_window_bits=10",
    # Unknown parameters.
    "x",
    "mem_level=8",
    "Server_No_Context_Takeover",
    "server_max_window_bits=10; unknown",
]


@pytest.mark.parametrize("bad", INVALID_OFFERS)
def test_server_declines_invalid_offer_and_tries_the_next(bad: str) -> None:
    server, response = open_server(f"{PMD}; {bad}, {PMD}; server_max_window_bits=11")
    assert response.status_code == 101
    assert answer_of(response) == [f"{PMD}; server_max_window_bits=11"]
    assert deflate_ext(server).local_max_window_bits == 11


@pytest.mark.parametrize("bad", INVALID_OFFERS)
def test_server_declines_invalid_only_offer(bad: str) -> None:
    server, response = open_server(f"{PMD}; {bad}")
    assert response.status_code == 101
    assert answer_of(response) == []
    assert server.extensions == []
    assert server.state is State.OPEN


def test_server_takes_the_first_acceptable_offer() -> None:
    # Autobahn 13.7: three offers in order of preference.
    _, response = open_server(
        f"{PMD}; server_no_context_takeover; server_max_window_bits=8; client_max_window_bits, "
        f"{PMD}; server_no_context_takeover; client_max_window_bits, "
        f"{PMD}; client_max_window_bits"
    )
    assert answer_of(response) == [
        f"{PMD}; server_no_context_takeover; server_max_window_bits=8; client_max_window_bits=12"
    ]
    # The same offers spread over several headers, after an unknown extension.
    _, response = open_server(
        "x-unknown; a=1",
        f"{PMD}; server_max_window_bits=10",
        f"{PMD}; server_max_window_bits=11",
    )
    assert answer_of(response) == [f"{PMD}; server_max_window_bits=10"]


def test_server_require_client_max_window_bits() -> None:
    server, response = open_server(
        f"{PMD}, {PMD}; client_max_window_bits=10", require_client_max_window_bits=True
    )
    assert answer_of(response) == [f"{PMD}; server_max_window_bits=12; client_max_window_bits=10"]
    server, response = open_server(PMD, require_client_max_window_bits=True)
    assert answer_of(response) == []
    assert server.extensions == []


@pytest.mark.parametrize("offers", [(), ("x-unknown",), ("x-unknown; a, y-other",)])
def test_server_without_deflate_offer(offers: tuple[str, ...]) -> None:
    server, response = open_server(*offers)
    assert response.status_code == 101
    assert answer_of(response) == []
    assert server.extensions == []


def test_server_without_factories_ignores_offers() -> None:
    server = ServerProtocol(random_bytes=fixed_random, server_header=None)
    server.receive_data(request_bytes(PMD))
    [event] = server.events_received()
    assert isinstance(event, RequestReceived)
    response = server.accept(event.request)
    assert "Sec-WebSocket-Extensions" not in response.headers


@pytest.mark.parametrize("bad", ["", "permessage-deflate; a=", 'permessage-deflate; a="1', ";"])
def test_server_rejects_malformed_header_with_400(bad: str) -> None:
    server, response = open_server(bad)
    assert response.status_code == 400
    assert isinstance(server.handshake_exc, InvalidHeaderFormat)
    assert server.state is State.CLOSED


def test_server_negotiate_directly() -> None:
    factory = ServerPerMessageDeflateFactory()
    assert factory.negotiate([]) is None
    assert factory.negotiate([[("x", None)], [("server_max_window_bits", "16")]]) is None
    result = factory.negotiate([[("x", None)], [("server_no_context_takeover", None)]])
    assert result is not None
    parameters, extension = result
    assert parameters == [("server_no_context_takeover", None), ("server_max_window_bits", "12")]
    assert extension.local_no_context_takeover


def test_server_hook_removing_the_header_disables_the_extension() -> None:
    """When the 101 sent has no Sec-WebSocket-Extensions (a hook took it out), the
    negotiated extension isn't used: RSV1 then fails the connection."""
    server = ServerProtocol(
        extensions=[ServerPerMessageDeflateFactory()], random_bytes=fixed_random
    )
    server.receive_data(request_bytes(PMD))
    [event] = server.events_received()
    assert isinstance(event, RequestReceived)
    response = server.accept(event.request)
    del response.headers["Sec-WebSocket-Extensions"]
    server.send_response(response)
    server.data_to_send()
    assert server.extensions == []
    feed(server, to(Side.SERVER, TEXT, bytes.fromhex("f248cdc9c90700"), rsv=RSV1))
    assert_failed(server, 1002)


# Negotiation: the client checks the answer (§5.1, §7) ----------------------------------


@pytest.mark.parametrize(
    ("factory", "answer", "agreed"),
    [
        # (remote nct, local nct, remote bits, local bits)
        ({}, "", (False, False, 15, 15)),
        ({}, "; server_max_window_bits=10", (False, False, 10, 15)),
        ({}, '; server_max_window_bits="9"', (False, False, 9, 15)),
        ({}, "; server_max_window_bits=8", (False, False, 8, 15)),
        ({}, "; client_max_window_bits=10", (False, False, 15, 10)),
        ({}, "; client_max_window_bits=8", (False, False, 15, 8)),
        ({}, "; client_max_window_bits=15", (False, False, 15, 15)),
        # The server may ask for no context takeover on either side unasked (§7.1.1).
        ({}, "; server_no_context_takeover", (True, False, 15, 15)),
        ({}, "; client_no_context_takeover", (False, True, 15, 15)),
        (
            {},
            "; client_no_context_takeover; server_no_context_takeover"
            "; client_max_window_bits=9; server_max_window_bits=11",
            (True, True, 11, 9),
        ),
        # The client's own announcements hold even when the answer doesn't repeat them.
        ({"client_max_window_bits": 10}, "", (False, False, 15, 10)),
        ({"client_max_window_bits": 10}, "; client_max_window_bits=9", (False, False, 15, 9)),
        ({"client_max_window_bits": 10}, "; client_max_window_bits=10", (False, False, 15, 10)),
        ({"client_no_context_takeover": True}, "", (False, True, 15, 15)),
        # What the client asked for, granted.
        (
            {"server_no_context_takeover": True},
            "; server_no_context_takeover",
            (True, False, 15, 15),
        ),
        ({"server_max_window_bits": 10}, "; server_max_window_bits=10", (False, False, 10, 15)),
        ({"server_max_window_bits": 10}, "; server_max_window_bits=9", (False, False, 9, 15)),
        ({"server_max_window_bits": 8}, "; server_max_window_bits=8", (False, False, 8, 15)),
    ],
)
def test_client_accepts_answer(
    factory: dict[str, Any], answer: str, agreed: tuple[bool, bool, int, int]
) -> None:
    client = open_client(PMD + answer, **factory)
    assert client.handshake_exc is None
    assert client.state is State.OPEN
    ext = deflate_ext(client)
    assert (
        ext.remote_no_context_takeover,
        ext.local_no_context_takeover,
        ext.remote_max_window_bits,
        ext.local_max_window_bits,
    ) == agreed


def test_client_accepts_no_extension() -> None:
    """A server may decline every offer (§5.1): the connection opens without compression."""
    client = open_client()
    assert client.handshake_exc is None
    assert client.extensions == []


@pytest.mark.parametrize(
    ("factory", "answers", "exc_type"),
    [
        # Unrequested client_max_window_bits.
        (
            {"client_max_window_bits": None},
            [f"{PMD}; client_max_window_bits=10"],
            NegotiationError,
        ),
        # client_max_window_bits without a value in an answer (§7.1.2.2).
        ({}, [f"{PMD}; client_max_window_bits"], NegotiationError),
        # Windows larger than the client asked for or announced.
        (
            {"client_max_window_bits": 10},
            [f"{PMD}; client_max_window_bits=11"],
            NegotiationError,
        ),
        (
            {"server_max_window_bits": 10},
            [f"{PMD}; server_max_window_bits=11"],
            NegotiationError,
        ),
        # A request ignored.
        ({"server_max_window_bits": 10}, [PMD], NegotiationError),
        ({"server_no_context_takeover": True}, [PMD], NegotiationError),
        (
            {"server_no_context_takeover": True},
            [f"{PMD}; client_no_context_takeover"],
            NegotiationError,
        ),
        # Invalid values.
        ({}, [f"{PMD}; server_max_window_bits"], NegotiationError),
        ({}, [f"{PMD}; server_max_window_bits=7"], NegotiationError),
        ({}, [f"{PMD}; server_max_window_bits=16"], NegotiationError),
        ({}, [f"{PMD}; server_max_window_bits=010"], NegotiationError),
        ({}, [f"{PMD}; client_max_window_bits=7"], NegotiationError),
        ({}, [f"{PMD}; client_max_window_bits=16"], NegotiationError),
        ({}, [f"{PMD}; client_max_window_bits=09"], NegotiationError),
        ({}, [f"{PMD}; server_no_context_takeover=1"], NegotiationError),
        ({}, [f"{PMD}; client_no_context_takeover=1"], NegotiationError),
        # Duplicates and unknown parameters.
        ({}, [f"{PMD}; server_no_context_takeover; server_no_context_takeover"], NegotiationError),
        (
            {},
            [f"{PMD}; server_max_window_bits=10; server_max_window_bits=10"],
            NegotiationError,
        ),
        ({}, [f"{PMD}; x"], NegotiationError),
        ({}, [f"{PMD}; mem_level=8"], NegotiationError),
        # An extension that wasn't offered; the offered one twice.
        ({}, ["x-unknown"], NegotiationError),
        ({}, [f"{PMD}, x-unknown"], NegotiationError),
        ({}, [f"{PMD}, {PMD}"], NegotiationError),
        ({}, [PMD, PMD], NegotiationError),
        # Malformed headers.
        ({}, [""], InvalidHeaderFormat),
        ({}, [f"{PMD}; a="], InvalidHeaderFormat),
        ({}, [f'{PMD}; server_max_window_bits="10'], InvalidHeaderFormat),
    ],
)
def test_client_rejects_answer(
    factory: dict[str, Any], answers: list[str], exc_type: type[Exception]
) -> None:
    client = open_client(*answers, **factory)
    assert isinstance(client.handshake_exc, exc_type), client.handshake_exc
    assert client.state is State.CLOSED
    assert client.data_to_send() == [b""]
    # Nothing that follows is parsed.
    client.receive_data(frame(TEXT, b"x"))
    assert client.events_received() == []


def test_client_factory_accept_directly() -> None:
    factory = ClientPerMessageDeflateFactory(server_max_window_bits=12)
    ext = factory.accept([("server_max_window_bits", "12"), ("client_max_window_bits", "10")])
    assert (ext.remote_max_window_bits, ext.local_max_window_bits) == (12, 10)
    with pytest.raises(NegotiationError):
        factory.accept([])


def test_client_rejects_deflate_when_it_offered_none() -> None:
    client = ClientProtocol(parse_uri("ws://a/"), random_bytes=fixed_random)
    client.send_request(client.connect())
    client.receive_data(response_bytes(PMD))
    assert isinstance(client.handshake_exc, NegotiationError)


# Receiving: RFC 7692 §7.2.3 examples -----------------------------------------------------


HELLO = bytes.fromhex("f248cdc9c90700")


def test_rfc_example_hello_on_the_wire() -> None:
    """§7.2.3.1: "Hello" compressed, unmasked from a server: c1 07 f2 48 cd c9 c9 07 00."""
    client = opened(Side.CLIENT)
    client.receive_data(bytes.fromhex("c107f248cdc9c90700"))
    assert client.events_received() == [TextMessage("Hello")]
    assert client.data_to_send() == []


def test_rfc_example_hello_masked_to_a_server() -> None:
    server = opened(Side.SERVER)
    wire = to(Side.SERVER, TEXT, HELLO, rsv=RSV1)
    assert wire[:2] == b"\xc1\x87"
    server.receive_data(wire)
    assert server.events_received() == [TextMessage("Hello")]


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
@pytest.mark.parametrize(
    ("name", "frames"),
    [
        # §7.2.3.1, fragmented: RSV1 on the first frame only.
        ("fragmented", [(TEXT, False, RSV1, "f248cd"), (CONT, True, 0, "c9c90700")]),
        # §7.2.3.3: a stored (uncompressed) DEFLATE block.
        ("stored block", [(TEXT, True, RSV1, "000500faff48656c6c6f00")]),
        # §7.2.3.4: flushed with a BFINAL block, then a 0x00 octet.
        ("bfinal", [(TEXT, True, RSV1, "f348cdc9c9070000")]),
        # §7.2.3.5: two DEFLATE blocks in one message.
        ("two blocks", [(TEXT, True, RSV1, "f24805000000ffffcac9c90700")]),
        # Fragments cut inside a block, and an empty fragment.
        (
            "three fragments",
            [
                (TEXT, False, RSV1, "f2"),
                (CONT, False, 0, ""),
                (CONT, False, 0, "48cdc9"),
                (CONT, True, 0, "c90700"),
            ],
        ),
    ],
)
def test_rfc_examples(side: Side, name: str, frames: list[tuple[int, bool, int, str]]) -> None:
    protocol = opened(side)
    data = b"".join(
        to(side, opcode, bytes.fromhex(payload), fin=fin, rsv=rsv)
        for opcode, fin, rsv, payload in frames
    )
    feed(protocol, data)
    assert protocol.events_received() == [TextMessage("Hello")], protocol.failure
    assert protocol.failure is None
    # The connection carries on: the next message decodes too.
    feed(protocol, to(side, TEXT, HELLO, rsv=RSV1))
    assert protocol.events_received() == [TextMessage("Hello")], protocol.failure


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_rfc_example_shared_window(side: Side) -> None:
    """§7.2.3.2: the second "Hello" refers back into the first message."""
    protocol = opened(side)
    feed(
        protocol,
        to(side, TEXT, HELLO, rsv=RSV1) + to(side, TEXT, bytes.fromhex("f200110000"), rsv=RSV1),
    )
    assert protocol.events_received() == [TextMessage("Hello"), TextMessage("Hello")]


def test_bfinal_message_then_context_takeover() -> None:
    """After a message ended with a BFINAL block (§7.2.3.4), the sender may go on with
    context takeover: a new DEFLATE stream whose back-references reach into the previous
    messages, which the receiver must keep in its window (§7.2.2)."""
    protocol = opened(Side.CLIENT)
    first = text(300, seed=1)
    final = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload1 = final.compress(first) + final.flush(zlib.Z_FINISH) + b"\x00"
    follow = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=first)
    payload2 = deflate(follow, first)
    assert len(payload2) < 20  # all back-references
    feed(protocol, frame(TEXT, payload1, rsv=RSV1) + frame(TEXT, payload2, rsv=RSV1))
    assert protocol.events_received() == [
        TextMessage(first.decode()),
        TextMessage(first.decode()),
    ], protocol.failure


# Receiving: context takeover, fragments, chops, control frames ----------------------------


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_context_takeover_across_messages(side: Side) -> None:
    protocol = opened(side)
    peer = compressor()
    payloads = [deflate(peer, b"Hello") for _ in range(3)]
    assert payloads[0] == HELLO
    assert len(payloads[1]) < len(payloads[0])
    feed(protocol, b"".join(to(side, TEXT, p, rsv=RSV1) for p in payloads))
    assert protocol.events_received() == [TextMessage("Hello")] * 3


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_many_messages_with_context_takeover(side: Side) -> None:
    """Different messages of many sizes, text and binary, referring to each other, some
    sent uncompressed in between (they don't enter the window)."""
    protocol = opened(side)
    peer = compressor()
    expected = []
    data = bytearray()
    for i, size in enumerate([0, 1, 16, 64, 300, 1000, 4096, 20000, 70000]):
        message = text(size, seed=i % 3)
        if i % 2:
            data += to(side, BINARY, deflate(peer, message), rsv=RSV1)
            expected.append(BinaryMessage(message))
        else:
            data += to(side, TEXT, deflate(peer, message), rsv=RSV1)
            expected.append(TextMessage(message.decode()))
        plain = noise(100, seed=i)
        data += to(side, BINARY, plain)
        expected.append(BinaryMessage(plain))
    feed(protocol, bytes(data))
    assert protocol.events_received() == expected, protocol.failure


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_no_context_takeover_resets_the_decoder(side: Side) -> None:
    """With the peer's no_context_takeover agreed, each message is decoded on its own: a
    message that refers back into the previous one can't be decoded (1007)."""
    params = (
        "; client_no_context_takeover" if side is Side.SERVER else ("; server_no_context_takeover")
    )
    protocol = opened(side, params)
    assert deflate_ext(protocol).remote_no_context_takeover
    # Each message compressed on its own decodes.
    feed(protocol, to(side, TEXT, HELLO, rsv=RSV1) + to(side, TEXT, HELLO, rsv=RSV1))
    assert protocol.events_received() == [TextMessage("Hello")] * 2
    # A message compressed with context takeover doesn't.
    feed(protocol, to(side, TEXT, bytes.fromhex("f200110000"), rsv=RSV1))
    assert protocol.events_received() == []
    assert_failed(protocol, 1007)


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
@pytest.mark.parametrize("fragment", [1, 7, 256, 4096])
def test_fragmented_compressed_message(side: Side, fragment: int) -> None:
    protocol = opened(side, max_size=None)
    message = text(50000, seed=5)
    payload = deflate(compressor(), message)
    pieces = [payload[i : i + fragment] for i in range(0, len(payload), fragment)]
    data = b"".join(
        to(
            side,
            TEXT if i == 0 else CONT,
            piece,
            fin=i == len(pieces) - 1,
            rsv=RSV1 if i == 0 else 0,
        )
        for i, piece in enumerate(pieces)
    )
    feed(protocol, data)
    assert protocol.events_received() == [TextMessage(message.decode())], protocol.failure


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_compressed_message_fed_one_byte_at_a_time(side: Side) -> None:
    protocol = opened(side)
    peer = compressor()
    first, second = text(3000, seed=1), text(3000, seed=2)
    data = to(side, TEXT, deflate(peer, first), rsv=RSV1)
    payload = deflate(peer, second)
    half = len(payload) // 2
    data += to(side, BINARY, payload[:half], fin=False, rsv=RSV1)
    data += to(side, CONT, payload[half:])
    feed(protocol, data, chunk=1)
    assert protocol.events_received() == [
        TextMessage(first.decode()),
        BinaryMessage(second),
    ]


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_control_frames_between_compressed_fragments(side: Side) -> None:
    protocol = opened(side)
    message = text(2000, seed=3)
    payload = deflate(compressor(), message)
    third = len(payload) // 3
    data = (
        to(side, TEXT, payload[:third], fin=False, rsv=RSV1)
        + to(side, PING, b"p1")
        + to(side, CONT, payload[third : 2 * third], fin=False)
        + to(side, PONG, b"unsolicited")
        + to(side, PING, b"")
        + to(side, CONT, payload[2 * third :])
    )
    feed(protocol, data)
    assert protocol.events_received() == [
        Ping(b"p1"),
        Pong(b"unsolicited"),
        Ping(b""),
        TextMessage(message.decode()),
    ]
    frames, _ = output(protocol)
    assert [(f.opcode, f.rsv, f.payload) for f in frames] == [(PONG, 0, b"p1"), (PONG, 0, b"")]


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_uncompressed_messages_still_accepted(side: Side) -> None:
    """RSV1 clear: the message isn't compressed (§6), even with the extension in use."""
    protocol = opened(side)
    feed(
        protocol,
        to(side, TEXT, b"plain")
        + to(side, BINARY, b"\x00\x00\xff\xff")
        + to(side, TEXT, b"fr", fin=False)
        + to(side, CONT, b"ag"),
    )
    assert protocol.events_received() == [
        TextMessage("plain"),
        BinaryMessage(b"\x00\x00\xff\xff"),
        TextMessage("frag"),
    ]


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
@pytest.mark.parametrize("payload", [b"\x00", b"\x02\x00"], ids=["stored", "fixed"])
def test_empty_compressed_message(side: Side, payload: bytes) -> None:
    """An empty message compresses to a single 0x00 octet (an empty stored block once the
    tail is appended), or to an empty fixed-Huffman block (02 00)."""
    protocol = opened(side)
    feed(
        protocol,
        to(side, TEXT, payload, rsv=RSV1)
        + to(side, BINARY, payload, rsv=RSV1)
        + to(side, TEXT, HELLO, rsv=RSV1),
    )
    assert protocol.events_received() == [
        TextMessage(""),
        BinaryMessage(b""),
        TextMessage("Hello"),
    ], protocol.failure


# Receiving: violations ---------------------------------------------------------------------


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_rsv1_on_continuation_frame(side: Side) -> None:
    protocol = opened(side)
    feed(protocol, to(side, TEXT, bytes.fromhex("f248"), fin=False, rsv=RSV1))
    feed(protocol, to(side, CONT, bytes.fromhex("cdc9c90700"), rsv=RSV1))
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_rsv1_on_continuation_of_uncompressed_message(side: Side) -> None:
    protocol = opened(side)
    feed(protocol, to(side, TEXT, b"Hel", fin=False) + to(side, CONT, HELLO, rsv=RSV1))
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
@pytest.mark.parametrize(
    ("opcode", "payload"),
    [(PING, b"x"), (PONG, b"x"), (CLOSE, close_payload(1000)), (PING, b"")],
)
def test_rsv1_on_control_frame(side: Side, opcode: int, payload: bytes) -> None:
    protocol = opened(side)
    feed(protocol, to(side, opcode, payload, rsv=RSV1))
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
@pytest.mark.parametrize("rsv", [RSV2, RSV3, RSV1 | RSV2, RSV1 | RSV3])
def test_other_rsv_bits_with_deflate(side: Side, rsv: int) -> None:
    protocol = opened(side)
    feed(protocol, to(side, TEXT, HELLO, rsv=rsv))
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_rsv1_without_negotiation(side: Side) -> None:
    # An open Protocol without extensions, and a handshake that negotiated none.
    protocol = make(side)
    feed(protocol, to(side, TEXT, HELLO, rsv=RSV1))
    assert protocol.events_received() == []
    assert_failed(protocol, 1002)
    if side is Side.SERVER:
        server, _ = open_server()
    else:
        server = open_client()
    assert server.extensions == []
    feed(server, to(side, TEXT, HELLO, rsv=RSV1))
    assert server.events_received() == []
    assert_failed(server, 1002)


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xff\xff\xff",  # reserved block type 11
        b"\x07",  # reserved block type 11, with BFINAL
        bytes.fromhex("000500fbff48656c6c6f"),  # stored block: LEN and NLEN don't match
        bytes.fromhex("f200ff0000"),  # distance too far back
    ],
)
def test_corrupt_deflate_data(side: Side, payload: bytes) -> None:
    protocol = opened(side)
    feed(protocol, to(side, BINARY, payload, rsv=RSV1))
    assert protocol.events_received() == []
    assert_failed(protocol, 1007)


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_data_after_the_end_of_the_deflate_stream(side: Side) -> None:
    """Bytes after a BFINAL block are read as a new stream (§7.2.3.4): here, not DEFLATE
    ("g" starts a block of the reserved type 11)."""
    protocol = opened(side)
    final = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = final.compress(b"Hello") + final.flush(zlib.Z_FINISH)
    feed(protocol, to(side, BINARY, payload + b"garbage", rsv=RSV1))
    assert protocol.events_received() == []
    assert_failed(protocol, 1007)


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_invalid_utf8_in_compressed_text(side: Side) -> None:
    protocol = opened(side)
    feed(protocol, to(side, TEXT, deflate(compressor(), b"caf\xe9 au lait"), rsv=RSV1))
    assert protocol.events_received() == []
    assert_failed(protocol, 1007)


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_invalid_utf8_in_compressed_text_fails_fast(side: Side) -> None:
    """The first fragment inflates to invalid UTF-8: the connection fails before the rest
    of the message arrives."""
    protocol = opened(side)
    peer = compressor()
    first = peer.compress(b"valid text, then \xc0\xaf invalid") + peer.flush(zlib.Z_SYNC_FLUSH)
    feed(protocol, to(side, TEXT, first, fin=False, rsv=RSV1))
    assert protocol.events_received() == []
    assert_failed(protocol, 1007)


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_truncated_utf8_at_the_end_of_compressed_text(side: Side) -> None:
    protocol = opened(side)
    payload = deflate(compressor(), "€".encode()[:2])
    feed(protocol, to(side, TEXT, payload, rsv=RSV1))
    assert protocol.events_received() == []
    assert_failed(protocol, 1007)


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_utf8_split_across_compressed_fragments(side: Side) -> None:
    protocol = opened(side)
    peer = compressor()
    euro = "€".encode()
    first = peer.compress(b"x" + euro[:1]) + peer.flush(zlib.Z_SYNC_FLUSH)
    second = deflate(peer, euro[1:] + b"y")
    feed(protocol, to(side, TEXT, first, fin=False, rsv=RSV1) + to(side, CONT, second))
    assert protocol.events_received() == [TextMessage("x€y")]


# Receiving: the size limit applies to the inflated message ---------------------------------


ZlibLog = list[tuple[int, int, int]]


class SpyDecompressor:
    """Wraps a zlib decompressor and records each call: (max_length, output length, input
    length)."""

    def __init__(self, real: Any, log: ZlibLog) -> None:
        self._real = real
        self._log = log

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        out: bytes = self._real.decompress(data, max_length)
        self._log.append((max_length, len(out), len(data)))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def zlib_log(monkeypatch: pytest.MonkeyPatch) -> ZlibLog:
    """(max_length, output length, input length) of every decompress() call wsio makes."""
    log: ZlibLog = []
    real = zlib.decompressobj

    def spy(*args: Any, **kwargs: Any) -> SpyDecompressor:
        return SpyDecompressor(real(*args, **kwargs), log)

    monkeypatch.setattr(pmd_module.zlib, "decompressobj", spy)
    return log


BOMB_SIZE = 10 * MiB


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """About 10 KiB that inflate to 10 MiB."""
    payload = deflate(compressor(), b"\x00" * BOMB_SIZE)
    assert len(payload) < 11 * KiB
    return payload


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
@pytest.mark.parametrize("chunk", [None, 1000])
def test_bomb_fails_with_1009_without_inflating_it(
    side: Side, chunk: int | None, bomb: bytes, zlib_log: ZlibLog
) -> None:
    max_size = MiB
    protocol = opened(side, max_size=max_size)
    feed(protocol, to(side, BINARY, bomb, rsv=RSV1), chunk=chunk)
    assert protocol.events_received() == []
    assert_failed(protocol, 1009, PayloadTooBig)
    # zlib was never asked for more than the room left plus one byte, and never made more.
    assert zlib_log
    assert all(0 < max_length <= max_size + 1 for max_length, _, _ in zlib_log), zlib_log[:5]
    assert sum(produced for _, produced, _ in zlib_log) <= max_size + 1


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
@pytest.mark.parametrize("max_size", [MiB, 4 * MiB], ids=["1MiB", "4MiB"])
def test_bomb_peak_memory(side: Side, max_size: int, bomb: bytes) -> None:
    """While the bomb is received, the memory allocated (traced by tracemalloc: Python
    objects and zlib's buffers, which CPython allocates through its allocators) peaks at
    less than the limit plus 1 MiB."""
    protocol = opened(side, max_size=max_size)
    data = to(side, BINARY, bomb, rsv=RSV1)
    tracemalloc.start()
    try:
        feed(protocol, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_failed(protocol, 1009, PayloadTooBig)
    assert peak < max_size + MiB, f"peak {peak} bytes for a limit of {max_size}"


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_bomb_in_fragments(side: Side, bomb: bytes, zlib_log: ZlibLog) -> None:
    """Each fragment inflates under the limit; together they don't."""
    max_size = 100 * KiB
    protocol = opened(side, max_size=max_size)
    pieces = [bomb[i : i + 5] for i in range(0, len(bomb), 5)]
    data = b"".join(
        to(side, BINARY if i == 0 else CONT, p, fin=i == len(pieces) - 1, rsv=RSV1 * (i == 0))
        for i, p in enumerate(pieces)
    )
    feed(protocol, data)
    assert protocol.events_received() == []
    assert_failed(protocol, 1009, PayloadTooBig)
    assert sum(produced for _, produced, _ in zlib_log) <= max_size + 1


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
@pytest.mark.parametrize(("size", "ok"), [(4096, True), (4097, False)])
def test_size_limit_exact(side: Side, size: int, ok: bool) -> None:
    protocol = opened(side, max_size=4096)
    # Compressed, the message is far under the limit either way.
    payload = deflate(compressor(), b"a" * size)
    assert len(payload) < 100
    feed(protocol, to(side, BINARY, payload, rsv=RSV1))
    if ok:
        assert protocol.events_received() == [BinaryMessage(b"a" * size)]
        assert protocol.failure is None
    else:
        assert protocol.events_received() == []
        assert_failed(protocol, 1009, PayloadTooBig)


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_compressed_frame_larger_than_limit_but_inflating_under_it(side: Side) -> None:
    """The limit is on the message the application gets: a compressed payload a little
    bigger than max_size, within what DEFLATE adds to incompressible data (stored blocks,
    flushes), is fine when it inflates to less."""
    protocol = opened(side, max_size=1000)
    data = noise(950, seed=2)
    payload = b"\x00\x00\x00\xff\xff" * 20 + deflate(compressor(), data)
    assert len(payload) > 1050
    feed(protocol, to(side, BINARY, payload, rsv=RSV1))
    assert protocol.events_received() == [BinaryMessage(data)], protocol.failure


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_no_size_limit(side: Side) -> None:
    protocol = opened(side, max_size=None)
    feed(protocol, to(side, BINARY, deflate(compressor(), b"\x00" * (3 * MiB)), rsv=RSV1))
    assert protocol.events_received() == [BinaryMessage(b"\x00" * (3 * MiB))]


@pytest.fixture
def zdicts(monkeypatch: pytest.MonkeyPatch) -> list[bytes | None]:
    """The dictionary of every decompressor that wsio makes (None without one), kept alive
    so that their identities can be compared."""
    made: list[bytes | None] = []
    real = zlib.decompressobj

    def counting(*args: Any, **kwargs: Any) -> Any:
        made.append(kwargs.get("zdict"))
        return real(*args, **kwargs)

    monkeypatch.setattr(pmd_module.zlib, "decompressobj", counting)
    return made


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_many_final_blocks_in_one_frame_fail_with_1008(
    side: Side, zdicts: list[bytes | None]
) -> None:
    """A frame of 100,000 empty DEFLATE blocks with BFINAL set ("03 00"), each one read as
    a new stream (§7.2.3.4), would cost a decompressor and its dictionary per 2 bytes
    received: past one new stream per frame and one per 1,024 bytes, it fails with 1008,
    having made no more decompressors than that budget. Counted, not timed."""
    protocol = opened(side, max_size=None)
    feed(protocol, to(side, BINARY, deflate(compressor(), text(40000)), rsv=RSV1))
    assert len(protocol.events_received()) == 1
    payload = b"\x03\x00" * 100_000
    zdicts.clear()
    feed(protocol, to(side, BINARY, payload, rsv=RSV1))
    assert protocol.events_received() == []
    assert_failed(protocol, 1008)
    assert len(zdicts) <= 2 + len(payload) // 1024


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_fragments_each_ended_by_bfinal_share_one_dictionary(
    side: Side, zdicts: list[bytes | None]
) -> None:
    """A message of 300 fragments each ended by an empty block with BFINAL set, after a
    message that filled the window: one new stream per fragment is accepted, and as no
    output came between them, all use one dictionary, made once (no window copied per
    restart)."""
    protocol = opened(side, max_size=None)
    first = text(40000)
    feed(protocol, to(side, BINARY, deflate(compressor(), first), rsv=RSV1))
    assert len(protocol.events_received()) == 1
    zdicts.clear()
    wire = to(side, BINARY, b"\x03\x00", rsv=RSV1, fin=False)
    wire += b"".join(to(side, CONT, b"\x03\x00", fin=False) for _ in range(298))
    wire += to(side, CONT, b"\x03\x00")
    feed(protocol, wire)
    assert protocol.events_received() == [BinaryMessage(b"")], protocol.failure
    assert len(zdicts) == 300
    assert len({id(zdict) for zdict in zdicts}) == 1
    assert zdicts[0] == first[-(2**15) :]


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_history_is_one_window_and_wraps(side: Side) -> None:
    """The output kept for a stream that restarts after BFINAL is one window (2**15
    bytes) at most, even when it arrives a byte at a time; once it has wrapped around,
    a new stream after BFINAL still reads back-references into the last window right."""
    protocol = opened(side, max_size=None)
    first = noise(50000, seed=3)
    final = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload1 = final.compress(first) + final.flush(zlib.Z_FINISH) + b"\x00"
    feed(protocol, to(side, BINARY, payload1, rsv=RSV1), chunk=1)
    assert protocol.events_received() == [BinaryMessage(first)], protocol.failure
    assert len(deflate_ext(protocol)._history) <= 2**15
    follow = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=first[-(2**15) :])
    second = first[-(2**15) :: 2]
    feed(protocol, to(side, BINARY, deflate(follow, second), rsv=RSV1))
    assert protocol.events_received() == [BinaryMessage(second)], protocol.failure


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_compressed_payload_over_the_limit_fails_from_the_header(side: Side) -> None:
    """A compressed message is refused with 1009 as soon as a frame header announces more
    payload than ``max_size`` plus what DEFLATE adds to incompressible data (5 bytes per
    stored block of 127 bytes or more), before any of it is buffered; an incompressible
    message of ``max_size`` bytes compressed by zlib at memLevel 1 still passes."""
    max_size = 10_000
    protocol = opened(side, max_size=max_size)
    data = noise(max_size, seed=5)
    small = zlib.compressobj(9, zlib.DEFLATED, -15, 1)
    payload = deflate(small, data)
    assert len(payload) > max_size + max_size // 65535 * 5 + 5
    feed(protocol, to(side, BINARY, payload, rsv=RSV1))
    assert protocol.events_received() == [BinaryMessage(data)], protocol.failure
    header = to(side, BINARY, bytes(2 * max_size), rsv=RSV1)[:8]
    feed(protocol, header)
    assert_failed(protocol, 1009, PayloadTooBig)


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_compressed_fragments_over_the_limit_fail(side: Side) -> None:
    """The compressed limit counts every fragment of the message: empty blocks that
    inflate to nothing can't make a message longer on the wire than the limit allows."""
    max_size = 10_000
    protocol = opened(side, max_size=max_size)
    empty = b"\x00\x00\x00\xff\xff" * 200
    wire = to(side, BINARY, empty, rsv=RSV1, fin=False)
    wire += b"".join(to(side, CONT, empty, fin=False) for _ in range(20))
    feed(protocol, wire)
    assert protocol.events_received() == []
    assert_failed(protocol, 1009, PayloadTooBig)


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_decoder_memory_between_messages_stays_near_the_window(side: Side) -> None:
    """What a connection keeps to decompress the peer's next message is about the window
    (2**15 here) and zlib's state, however the previous message was cut by TCP: here,
    incompressible data arriving one byte at a time, each inflating to a byte or so."""
    protocol = opened(side, max_size=None)
    assert deflate_ext(protocol).remote_max_window_bits == 15
    data = noise(40000, seed=7)
    wire = to(side, BINARY, deflate(compressor(), data), rsv=RSV1)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        feed(protocol, wire, chunk=1)
        assert protocol.events_received() == [BinaryMessage(data)]
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held - before < 256 * KiB, f"{held - before} bytes held after the message"


def test_extension_decode_bound_directly() -> None:
    ext = PerMessageDeflate(
        remote_no_context_takeover=False,
        local_no_context_takeover=False,
        remote_max_window_bits=15,
        local_max_window_bits=15,
    )
    payload = deflate(compressor(), b"z" * 10000)
    # decode() yields pieces: the limit is crossed while iterating.
    with pytest.raises(PayloadTooBig):
        list(ext.decode(payload, 9999))
    ext = PerMessageDeflate(
        remote_no_context_takeover=False,
        local_no_context_takeover=False,
        remote_max_window_bits=15,
        local_max_window_bits=15,
    )
    decoded = b"".join([*ext.decode(payload, 10000), *ext.end_incoming(0)])
    assert decoded == b"z" * 10000


# Sending --------------------------------------------------------------------------------


def sent_messages(protocol: Protocol) -> list[tuple[int, int, bytes]]:
    frames, _ = output(protocol)
    return list(messages_of(frames))


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_threshold(side: Side) -> None:
    protocol = opened(side, compression_threshold=128)
    protocol.send_text(b"a" * 127)
    protocol.send_text(b"a" * 128)
    protocol.send_binary(b"\x01" * 127)
    protocol.send_binary(b"\x01" * 1000)
    sent = sent_messages(protocol)
    assert [(opcode, rsv) for opcode, rsv, _ in sent] == [
        (TEXT, 0),
        (TEXT, RSV1),
        (BINARY, 0),
        (BINARY, RSV1),
    ]
    assert sent[0][2] == b"a" * 127
    assert sent[2][2] == b"\x01" * 127
    peer = zlib.decompressobj(wbits=-15)
    assert inflate(peer, sent[1][2]) == b"a" * 128
    assert inflate(peer, sent[3][2]) == b"\x01" * 1000
    for _, _, payload in sent:
        assert not payload.endswith(TAIL)


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
@pytest.mark.parametrize("threshold", [0, 1, 10000])
def test_threshold_values(side: Side, threshold: int) -> None:
    protocol = opened(side, compression_threshold=threshold)
    protocol.send_binary(b"")
    protocol.send_binary(b"b" * 500)
    rsvs = [rsv for _, rsv, _ in sent_messages(protocol)]
    assert rsvs == [RSV1 if threshold <= 0 else 0, RSV1 if threshold <= 500 else 0]


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_compress_override(side: Side) -> None:
    protocol = opened(side)
    protocol.send_text(b"tiny", compress=True)
    protocol.send_text(b"big" * 1000, compress=False)
    protocol.send_binary(b"", compress=True)
    protocol.send_binary(b"big" * 1000, compress=None)
    sent = sent_messages(protocol)
    assert [rsv for _, rsv, _ in sent] == [RSV1, 0, RSV1, RSV1]
    peer = zlib.decompressobj(wbits=-15)
    assert inflate(peer, sent[0][2]) == b"tiny"
    assert sent[1][2] == b"big" * 1000
    # An empty message compresses to one 0x00 octet (§7.2.3.6 and §7.2.1).
    assert sent[2][2] == b"\x00"
    assert inflate(peer, sent[2][2]) == b""
    assert inflate(peer, sent[3][2]) == b"big" * 1000


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
@pytest.mark.parametrize("compress", [None, True])
def test_fragmented_send_compressed(side: Side, compress: bool | None) -> None:
    protocol = opened(side)
    parts = [b"small", b"", text(2000, seed=1), b"x", text(300, seed=2)]
    protocol.send_text(parts[0], fin=False, compress=compress)
    for part in parts[1:-1]:
        protocol.send_continuation(part, fin=False)
    protocol.send_continuation(parts[-1], fin=True)
    frames, _ = output(protocol)
    assert [(f.opcode, f.rsv, f.fin) for f in frames] == [
        (TEXT, RSV1, False),
        (CONT, 0, False),
        (CONT, 0, False),
        (CONT, 0, False),
        (CONT, 0, True),
    ]
    # Each fragment decodes as it arrives, and the whole is the message.
    peer = zlib.decompressobj(wbits=-15)
    for item, part in zip(frames[:-1], parts[:-1], strict=True):
        assert peer.decompress(item.payload) == part
    assert inflate(peer, frames[-1].payload) == parts[-1]
    # And the connection goes on with context takeover.
    protocol.send_text(parts[2])
    [(_, rsv, payload)] = sent_messages(protocol)
    assert rsv == RSV1
    assert len(payload) < 50
    assert inflate(peer, payload) == parts[2]


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_fragmented_send_uncompressed(side: Side) -> None:
    protocol = opened(side)
    protocol.send_binary(b"a" * 1000, fin=False, compress=False)
    protocol.send_continuation(b"b" * 1000, fin=True)
    frames, _ = output(protocol)
    assert [(f.opcode, f.rsv, f.payload) for f in frames] == [
        (BINARY, 0, b"a" * 1000),
        (CONT, 0, b"b" * 1000),
    ]


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_control_frames_while_sending_compressed_fragments(side: Side) -> None:
    protocol = opened(side)
    protocol.send_text(b"Hel", fin=False)
    protocol.send_ping(b"ping")
    protocol.send_continuation(b"lo", fin=True)
    frames, _ = output(protocol)
    assert [(f.opcode, f.rsv) for f in frames] == [(TEXT, RSV1), (PING, 0), (CONT, 0)]
    peer = zlib.decompressobj(wbits=-15)
    assert inflate(peer, frames[0].payload + frames[2].payload) == b"Hello"


def test_sending_context_takeover() -> None:
    server = opened(Side.SERVER)
    for _ in range(3):
        server.send_text(b"Hello", compress=True)
    sent = sent_messages(server)
    assert sent[0][2] == HELLO
    assert len(sent[1][2]) < len(sent[0][2])
    peer = zlib.decompressobj(wbits=-15)
    assert [inflate(peer, p) for _, _, p in sent] == [b"Hello"] * 3


@pytest.mark.parametrize(
    ("side", "params"),
    [
        (Side.SERVER, "; server_no_context_takeover"),
        (Side.CLIENT, "; client_no_context_takeover"),
    ],
    ids=side_ids,
)
def test_sending_no_context_takeover(side: Side, params: str) -> None:
    protocol = opened(side, params)
    assert deflate_ext(protocol).local_no_context_takeover
    message = text(2000, seed=9)
    for _ in range(3):
        protocol.send_text(message)
    sent = sent_messages(protocol)
    assert len({p for _, _, p in sent}) == 1  # the same bytes each time
    for _, rsv, payload in sent:
        assert rsv == RSV1
        assert inflate(zlib.decompressobj(wbits=-15), payload) == message


def test_client_announcing_no_context_takeover_keeps_its_word() -> None:
    """§7.1.1.2: a client that offered client_no_context_takeover doesn't use context
    takeover even when the server's answer doesn't mention it."""
    client = open_client(PMD, client_no_context_takeover=True)
    for _ in range(2):
        client.send_text(b"Hello", compress=True)
    for _, _, payload in sent_messages(client):
        assert inflate(zlib.decompressobj(wbits=-15), payload) == b"Hello"


def far_repeats(window: int) -> bytes:
    """Data whose repetitions are farther apart than ``window`` bytes but within 32 KiB: a
    compressor with a larger window refers back to them."""
    block = noise(window + 100, seed=window)
    return block * 4


@pytest.mark.parametrize(
    ("side", "params", "bits"),
    [
        (Side.SERVER, "; server_max_window_bits=9", 9),
        (Side.SERVER, "; server_max_window_bits=10", 10),
        (Side.SERVER, "; server_max_window_bits=11", 11),
        (Side.CLIENT, "; client_max_window_bits=9", 9),
        (Side.CLIENT, "; client_max_window_bits=11", 11),
    ],
)
def test_sending_respects_the_window(side: Side, params: str, bits: int) -> None:
    protocol = opened(side, params)
    assert deflate_ext(protocol).local_max_window_bits == bits
    data = far_repeats(2**bits)
    # The check discriminates: a 15-bit compressor's output can't be read with this window.
    wide = deflate(compressor(15), data)
    with pytest.raises(zlib.error, match="too far back"):
        strict_inflate(zlib.decompressobj(wbits=-bits), wide)
    protocol.send_binary(data)
    protocol.send_binary(data)
    peer = zlib.decompressobj(wbits=-bits)
    sent = sent_messages(protocol)
    assert [rsv for _, rsv, _ in sent] == [RSV1, RSV1]
    assert [strict_inflate(peer, p) for _, _, p in sent] == [data, data]


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_window_of_8_bits(side: Side) -> None:
    """A window of 2**8 can't be made by zlib: wsio sends uncompressed messages, which RFC
    7692 §6 allows, and still reads compressed ones."""
    params = "; server_max_window_bits=8" if side is Side.SERVER else "; client_max_window_bits=8"
    protocol = opened(side, params)
    ext = deflate_ext(protocol)
    assert ext.local_max_window_bits == 8
    assert not ext.can_compress
    protocol.send_text(b"a" * 1000)
    protocol.send_text(b"b" * 1000, compress=True)
    protocol.send_binary(b"c" * 10, fin=False)
    protocol.send_continuation(b"d" * 1000, fin=True)
    assert sent_messages(protocol) == [
        (TEXT, 0, b"a" * 1000),
        (TEXT, 0, b"b" * 1000),
        (BINARY, 0, b"c" * 10 + b"d" * 1000),
    ]
    feed(protocol, to(side, TEXT, deflate(compressor(), b"e" * 1000), rsv=RSV1))
    assert protocol.events_received() == [TextMessage("e" * 1000)]


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_receiving_with_a_window_of_8_bits(side: Side) -> None:
    """The peer agreed to a window of 2**8 for its messages: they decode (zlib reads them
    with 2**9)."""
    params = (
        "; client_max_window_bits=8" if side is Side.SERVER else ("; server_max_window_bits=8")
    )
    protocol = opened(side, params)
    assert deflate_ext(protocol).remote_max_window_bits == 8
    # A peer using 256 bytes of window: zlib's 9 bits is the closest, and compatible, as
    # long as references stay within 256 bytes; a message with short repeats only.
    message = b"abcdefgh" * 200
    payload = deflate(compressor(9), message)
    feed(protocol, to(side, BINARY, payload, rsv=RSV1))
    assert protocol.events_received() == [BinaryMessage(message)]


@pytest.mark.parametrize(
    ("side", "params", "bits"),
    [
        (Side.SERVER, "; client_max_window_bits=9", 9),
        (Side.SERVER, "; client_max_window_bits=12", 12),
        (Side.CLIENT, "; server_max_window_bits=10", 10),
    ],
)
def test_receiving_beyond_the_agreed_window_fails(side: Side, params: str, bits: int) -> None:
    """wsio keeps only the window the peer agreed to: a message that refers back into the
    previous one, farther than that window, can't be decoded (1007)."""
    protocol = opened(side, params)
    assert deflate_ext(protocol).remote_max_window_bits == bits
    block = noise(2**bits + 100, seed=bits)
    peer = compressor(15)
    first, second = deflate(peer, block), deflate(peer, block)
    assert len(second) < 100  # a back-reference to the first message
    feed(protocol, to(side, BINARY, first, rsv=RSV1))
    assert protocol.events_received() == [BinaryMessage(block)]
    feed(protocol, to(side, BINARY, second, rsv=RSV1))
    assert protocol.events_received() == []
    assert_failed(protocol, 1007)


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_round_trip_between_wsio_client_and_server(side: Side) -> None:
    """A wsio client and a wsio server, handshake and messages, byte for byte."""
    client = start_client(max_size=None, server_no_context_takeover=(side is Side.SERVER))
    server = ServerProtocol(
        extensions=[ServerPerMessageDeflateFactory()], random_bytes=fixed_random, max_size=None
    )
    assert client.request is not None
    server.receive_data(client.request.serialize())
    [event] = server.events_received()
    assert isinstance(event, RequestReceived)
    server.send_response(server.accept(event.request))
    client.receive_data(b"".join(server.data_to_send()))
    [event2] = client.events_received()
    assert isinstance(event2, ResponseReceived)
    assert client.handshake_exc is None
    assert deflate_ext(client).remote_no_context_takeover is (side is Side.SERVER)
    messages = [text(n, seed=n) for n in (0, 10, 200, 5000, 100000)] * 2
    for message in messages:
        client.send_binary(message)
        server.send_text(message)
    server.receive_data(b"".join(client.data_to_send()))
    client.receive_data(b"".join(server.data_to_send()))
    assert server.events_received() == [BinaryMessage(m) for m in messages]
    assert client.events_received() == [TextMessage(m.decode()) for m in messages]


@pytest.mark.parametrize("side", [Side.SERVER, Side.CLIENT])
def test_plain_messages_take_the_fast_path_and_compressed_ones_do_not(
    side: Side, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RSV1 clear means uncompressed (RFC 7692 §6): such messages are parsed on the fast
    path even with the extension negotiated; a compressed one falls to the general parser,
    and the two kinds interleave in order."""
    import wsio.protocol.connection as connection_module

    protocol = opened(side)
    taken: list[int] = []
    original = connection_module.parse_messages

    def spy(data: Any, events: Any, *args: Any) -> int:
        consumed = original(data, events, *args)
        taken.append(consumed)
        return consumed

    monkeypatch.setattr(connection_module, "parse_messages", spy)
    plain = to(side, TEXT, b"plain")
    compressed = to(side, TEXT, deflate(compressor(), b"squeezed"), rsv=RSV1)
    protocol.receive_data(plain + compressed + plain)
    assert taken == [len(plain)]
    assert [event.data for event in protocol.events_received()] == ["plain", "squeezed", "plain"]
    protocol.receive_data(plain)
    assert taken == [len(plain), len(plain)]
    assert [event.data for event in protocol.events_received()] == ["plain"]


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
@pytest.mark.parametrize("piece_size", [None, 65_536], ids=["whole", "pieces"])
def test_parser_keeps_no_decompressed_message_once_delivered(
    side: Side, piece_size: int | None
) -> None:
    # As without compression: the decoded pieces and the decompressor's tail of the last
    # message must not stay alive with the connection (found: 536 KB kept after a 512 KiB
    # incompressible message).
    protocol = opened(side)
    message = noise(300_000, seed=4)
    feed(protocol, to(side, BINARY, deflate(compressor(), message), rsv=RSV1), piece_size)
    [event] = protocol.events_received()
    assert event == BinaryMessage(message)
    del event
    assert max(parser_buffers(protocol).values(), default=0) < 1024, parser_buffers(protocol)


# Messages held back ---------------------------------------------------------------------


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_allow_messages_bounds_what_is_decoded(side: Side) -> None:
    """Compressed messages past the room given are kept undecoded in the buffer, and
    decoded, in order, once more room is given."""
    protocol = opened(side)
    comp = compressor()
    messages = [bytes([i]) * (64 * KiB) for i in range(5)]
    wire = b"".join(to(side, BINARY, deflate(comp, m), rsv=RSV1) for m in messages)
    protocol.allow_messages(2)
    feed(protocol, wire)
    assert protocol.events_received() == [BinaryMessage(m) for m in messages[:2]]
    assert protocol.parsing_paused
    # A ping behind them waits too, as it would in the transport's buffer.
    feed(protocol, to(side, PING, b"p"))
    assert protocol.events_received() == []
    protocol.allow_messages(4)
    assert protocol.events_received() == [
        *(BinaryMessage(m) for m in messages[2:]),
        Ping(b"p"),
    ]
    protocol.allow_messages(None)
    feed(protocol, to(side, BINARY, deflate(comp, b"last"), rsv=RSV1))
    assert protocol.events_received() == [BinaryMessage(b"last")]
    assert not protocol.parsing_paused


@pytest.mark.parametrize("side", SIDES, ids=side_ids)
def test_closing_reads_past_messages_held_back(side: Side) -> None:
    """Once we sent a close frame, the peer's close frame behind held messages is read:
    the messages past the room are dropped, and the closing handshake completes."""
    protocol = opened(side)
    comp = compressor()
    wire = b"".join(to(side, TEXT, deflate(comp, b"x" * 1000), rsv=RSV1) for _ in range(4))
    protocol.allow_messages(1)
    feed(protocol, wire + to(side, CLOSE, close_payload(1000)))
    assert protocol.events_received() == [TextMessage("x" * 1000)]
    assert protocol.parsing_paused
    protocol.send_close(1000)
    assert protocol.events_received() == []
    assert protocol.close_rcvd is not None and protocol.close_rcvd.code == 1000
    assert not protocol.parsing_paused
