"""PreparedMessage and Protocol.send_prepared: a message for many connections, its frame
built once per wire encoding, masked per frame on clients, held back while a fragmented
message is being sent (RFC 6455 §5.1, §5.3, §5.4; RFC 7692 §7.1.1)."""

from __future__ import annotations

import zlib
from collections.abc import Hashable, Iterator

import pytest

from wsio.exceptions import InvalidState
from wsio.protocol.connection import PreparedMessage, Protocol, Side
from wsio.protocol.extensions import Extension, PerMessageDeflate

from .helpers import BINARY, CONT, TEXT, decode_frames, make

TAIL = b"\x00\x00\xff\xff"


def deflate_extension(
    *, no_context_takeover: bool, bits: int = 12, threshold: int = 128
) -> PerMessageDeflate:
    return PerMessageDeflate(
        remote_no_context_takeover=False,
        local_no_context_takeover=no_context_takeover,
        remote_max_window_bits=15,
        local_max_window_bits=bits,
        compression_threshold=threshold,
    )


def with_extensions(side: Side, *extensions: Extension) -> Protocol:
    protocol = make(side)
    protocol._use_extensions(list(extensions))
    return protocol


def test_plain_frame_is_built_once_and_written_as_the_same_object() -> None:
    servers = [make(Side.SERVER) for _ in range(3)]
    message = PreparedMessage(b"hello", text=True)
    for server in servers:
        server.send_prepared(message)
    writes = [server.data_to_send() for server in servers]
    assert writes[0] == [b"\x81\x05hello"]
    assert all(w[0] is writes[0][0] for w in writes)
    assert message.encodings == 1


def test_large_payload_is_shared_uncopied() -> None:
    payload = bytes(200_000)
    servers = [make(Side.SERVER) for _ in range(2)]
    message = PreparedMessage(payload, text=False)
    for server in servers:
        server.send_prepared(message)
    for server in servers:
        header, body = server.data_to_send()
        assert header[:2] == b"\x82\x7f" and body is payload
    assert message.encodings == 1


def test_clients_mask_each_frame_afresh() -> None:
    masks = iter([b"\x01\x02\x03\x04", b"\x05\x06\x07\x08"])
    clients = [Protocol(Side.CLIENT, random_bytes=lambda n: next(masks)) for _ in range(2)]
    message = PreparedMessage(b"data", text=False)
    for client in clients:
        client.send_prepared(message)
    frames = [decode_frames(b"".join(client.data_to_send())) for client in clients]
    assert [f[0].payload for f in frames] == [b"data", b"data"]
    assert frames[0][0].mask != frames[1][0].mask
    assert message.encodings == 2


def test_deflate_without_context_takeover_shares_one_compressed_frame() -> None:
    text = b"abcabcabc " * 100
    servers = [
        with_extensions(Side.SERVER, deflate_extension(no_context_takeover=True)) for _ in range(3)
    ]
    message = PreparedMessage(text, text=True)
    for _ in range(2):
        for server in servers:
            server.send_prepared(message)
    outputs = [server.data_to_send() for server in servers]
    assert outputs[0] == outputs[1] == outputs[2]
    assert message.encodings == 1
    [first, second] = decode_frames(b"".join(outputs[0]))
    for frame in (first, second):
        assert frame.rsv == 0x40 and frame.opcode == TEXT
        # Each frame is a fresh DEFLATE stream (§7.1.1.1).
        assert zlib.decompressobj(-15).decompress(frame.payload + TAIL) == text


def test_deflate_with_context_takeover_encodes_per_connection() -> None:
    servers = [
        with_extensions(Side.SERVER, deflate_extension(no_context_takeover=False))
        for _ in range(2)
    ]
    message = PreparedMessage(b"x" * 1000, text=False)
    for server in servers:
        server.send_prepared(message)
        server.data_to_send()
    assert message.encodings == 2


def test_encodings_differ_by_window_and_by_compression() -> None:
    small_window = with_extensions(
        Side.SERVER, deflate_extension(no_context_takeover=True, bits=10)
    )
    large_window = with_extensions(Side.SERVER, deflate_extension(no_context_takeover=True))
    no_compression = make(Side.SERVER)
    high_threshold = with_extensions(
        Side.SERVER, deflate_extension(no_context_takeover=False, threshold=10_000)
    )
    message = PreparedMessage(b"y" * 1000, text=False)
    for server in (small_window, large_window, no_compression, high_threshold):
        server.send_prepared(message)
    # Two compressed encodings; the uncompressed one shared by the last two.
    assert message.encodings == 3
    assert no_compression.data_to_send() == high_threshold.data_to_send()


def test_compress_false_is_shared_even_with_context_takeover() -> None:
    servers = [
        with_extensions(Side.SERVER, deflate_extension(no_context_takeover=False))
        for _ in range(2)
    ]
    message = PreparedMessage(b"z" * 1000, text=False, compress=False)
    for server in servers:
        server.send_prepared(message)
    assert message.encodings == 1
    [frame] = decode_frames(b"".join(servers[0].data_to_send()))
    assert frame.rsv == 0 and frame.payload == b"z" * 1000


class Opaque(Extension):
    """An extension that says nothing of how it encodes: nothing is shared."""

    name = "x-opaque"

    def begin_incoming(self, rsv: int) -> bool:
        return False

    def decode(self, data: bytes, max_length: int | None) -> Iterator[bytes]:
        yield data

    def end_incoming(self, max_length: int | None) -> Iterator[bytes]:
        yield from ()

    def encode(
        self, data: bytes, *, first: bool, fin: bool, transform: bool | None
    ) -> tuple[bytes, int]:
        return data, 0


def test_extension_without_a_shared_encoding_encodes_per_connection() -> None:
    assert Opaque().shared_encoding(10, None) is None
    servers = [with_extensions(Side.SERVER, Opaque()) for _ in range(2)]
    message = PreparedMessage(b"m", text=False)
    for server in servers:
        server.send_prepared(message)
    assert message.encodings == 2


def test_shared_encoding_keys() -> None:
    keys: list[Hashable | None] = [
        deflate_extension(no_context_takeover=True).shared_encoding(1000, None),
        deflate_extension(no_context_takeover=True).shared_encoding(10, None),
        deflate_extension(no_context_takeover=False).shared_encoding(1000, None),
        deflate_extension(no_context_takeover=False).shared_encoding(1000, False),
        deflate_extension(no_context_takeover=True, bits=8).shared_encoding(1000, True),
    ]
    assert keys[0] not in (None, ())
    assert keys[1] == () and keys[3] == ()
    assert keys[2] is None
    # A window of 2**8 can't be produced: sent uncompressed.
    assert keys[4] == ()


def test_held_back_while_a_fragmented_message_is_sent() -> None:
    server = make(Side.SERVER)
    server.send_binary(b"one", fin=False)
    first = PreparedMessage(b"news", text=True)
    second = PreparedMessage(b"more", text=False)
    server.send_prepared(first)
    server.send_prepared(second)
    assert server.deferred_size == 8 + 2 * 14
    server.send_continuation(b"two", fin=False)
    assert server.deferred_size == 8 + 2 * 14
    server.send_continuation(b"three", fin=True)
    assert server.deferred_size == 0
    frames = decode_frames(b"".join(server.data_to_send()))
    assert [(f.opcode, f.fin, f.payload) for f in frames] == [
        (BINARY, False, b"one"),
        (CONT, False, b"two"),
        (CONT, True, b"three"),
        (TEXT, True, b"news"),
        (BINARY, True, b"more"),
    ]


def test_not_open_refuses() -> None:
    server = make(Side.SERVER)
    server.send_close(1000)
    with pytest.raises(InvalidState):
        server.send_prepared(PreparedMessage(b"late", text=True))
