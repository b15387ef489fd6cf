"""Self-tests of the raw test peer (tests/rawpeer.py); they do not involve wsio."""

from __future__ import annotations

import asyncio
import ssl
import struct

import pytest

from rawpeer import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    Frame,
    FrameParser,
    HTTPResponse,
    PeerClosed,
    RawClient,
    RawServer,
    ServerConn,
    accept_key,
    build_frame,
    build_request,
    close_payload,
    mask_bytes,
)


def parse_one(data: bytes) -> Frame:
    parser = FrameParser()
    parser.feed(data)
    frame = parser.next_frame()
    assert frame is not None
    assert not parser.buffer
    return frame


def test_accept_key_rfc_example() -> None:
    # RFC 6455 §1.3.
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_rfc_examples() -> None:
    # RFC 6455 §5.7.
    assert build_frame(OP_TEXT, "Hello", mask=None) == bytes.fromhex("810548656c6c6f")
    masked = build_frame(OP_TEXT, "Hello", mask=bytes.fromhex("37fa213d"))
    assert masked == bytes.fromhex("818537fa213d7f9f4d5158")
    assert build_frame(OP_TEXT, "Hel", fin=False, mask=None) == bytes.fromhex("010348656c")
    assert build_frame(OP_CONT, "lo", mask=None) == bytes.fromhex("80026c6f")
    assert build_frame(OP_BINARY, bytes(256), mask=None)[:4] == bytes.fromhex("827e0100")
    assert build_frame(OP_BINARY, bytes(65536), mask=None)[:10] == bytes.fromhex(
        "827f0000000000010000"
    )


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
@pytest.mark.parametrize("mask", [None, b"\xaa\xbb\xcc\xdd"])
def test_roundtrip_sizes(size: int, mask: bytes | None) -> None:
    payload = bytes(i % 251 for i in range(size))
    frame = parse_one(build_frame(OP_BINARY, payload, mask=mask))
    assert frame.payload == payload
    assert frame.masked is (mask is not None)
    assert frame.is_minimal


@pytest.mark.parametrize("encoding", [16, 64])
def test_non_minimal_lengths(encoding: int) -> None:
    data = build_frame(OP_TEXT, "hi", length_encoding=encoding)  # type: ignore[arg-type]
    assert len(data) == 2 + (2 if encoding == 16 else 8) + 4 + 2
    frame = parse_one(data)
    assert frame.payload == b"hi"
    assert frame.length_encoding == encoding
    assert not frame.is_minimal


def test_illegal_combinations_are_built() -> None:
    data = build_frame(0xB, b"x" * 200, fin=False, rsv1=True, rsv2=True, rsv3=True, mask=None)
    frame = parse_one(data)
    assert (frame.fin, frame.rsv1, frame.rsv2, frame.rsv3) == (
        False,
        True,
        True,
        True,
    )
    assert frame.opcode == 0xB
    assert len(frame.payload) == 200


def test_declared_length_lies() -> None:
    data = build_frame(OP_BINARY, b"", mask=None, declared_length=(1 << 63) + 5)
    assert data == b"\x82\x7f" + struct.pack("!Q", (1 << 63) + 5)
    with pytest.raises(ValueError):
        build_frame(OP_BINARY, b"x" * 126, length_encoding=7)


def test_close_payload_and_properties() -> None:
    assert close_payload(1000) == b"\x03\xe8"
    frame = parse_one(build_frame(OP_CLOSE, close_payload(4001, "bye")))
    assert frame.close_code == 4001
    assert frame.close_reason == b"bye"
    assert parse_one(build_frame(OP_CLOSE, b"")).close_code is None


def test_incremental_parse_byte_by_byte() -> None:
    stream = (
        build_frame(OP_TEXT, "Hel", fin=False)
        + build_frame(OP_PING, b"p")
        + build_frame(OP_CONT, "lo")
        + build_frame(OP_BINARY, bytes(300), mask=None)
    )
    parser = FrameParser()
    frames = []
    for byte in stream:
        parser.feed(bytes([byte]))
        frames.extend(parser.frames())
    assert [f.opcode for f in frames] == [OP_TEXT, OP_PING, OP_CONT, OP_BINARY]
    assert b"".join(f.payload for f in frames[:3:2]) == b"Hello"
    assert not parser.buffer


def test_mask_is_involution() -> None:
    data = bytes(range(37))
    assert mask_bytes(mask_bytes(data, b"abcd"), b"abcd") == data


def test_build_request_header_edits() -> None:
    raw = build_request(
        "/x",
        key="k",
        headers=[
            ("Sec-WebSocket-Version", None),
            ("Sec-WebSocket-Key", "a"),
            ("Sec-WebSocket-Key", "b"),
            ("X-Extra", "1"),
        ],
    )
    assert raw.startswith(b"GET /x HTTP/1.1\r\n")
    assert b"Sec-WebSocket-Version" not in raw
    assert raw.count(b"Sec-WebSocket-Key") == 2
    assert raw.endswith(b"X-Extra: 1\r\n\r\n")


def test_response_parse_without_reason() -> None:
    response = HTTPResponse.parse(b"HTTP/1.1 101\r\nUpgrade: websocket\r\n\r\n")
    assert (response.status_code, response.reason) == (101, "")
    assert response.has_token("upgrade", "WebSocket")


async def test_client_against_server() -> None:
    seen: list[str] = []

    async def script(conn: ServerConn) -> None:
        request = await conn.handshake()
        seen.append(request.path)
        frame = await conn.recv_frame()
        assert frame is not None and frame.masked
        await conn.send_frame(frame.opcode, frame.payload)  # echo, unmasked
        close = await conn.recv_frame()
        assert close is not None and close.close_code == 1000
        await conn.send_close(1000)
        conn.close()

    async with RawServer(script) as srv:
        assert srv.url.startswith("ws://127.0.0.1:")
        async with await RawClient.open("127.0.0.1", srv.port) as c:
            response = await c.handshake("/chat")
            assert response.status_code == 101
            assert response.header("Sec-WebSocket-Accept") == c.expected_accept
            await c.send_chopped(build_frame(OP_TEXT, "héllo"), 3)
            echoed = await c.recv_frame()
            assert echoed is not None and not echoed.masked and echoed.text == "héllo"
            await c.send_close(1000)
            frames = await c.recv_frames_until_close()
            assert [f.close_code for f in frames] == [1000]
            assert await c.wait_eof(timeout=2)
    assert seen == ["/chat"]


async def test_server_override_accept_and_status() -> None:
    async def script(conn: ServerConn) -> None:
        await conn.read_request()
        await conn.accept(
            status_line=b"HTTP/1.1 101", extra_headers={"Sec-WebSocket-Accept": "wrong"}
        )

    async with RawServer(script) as srv, await RawClient.open("127.0.0.1", srv.port) as c:
        response = await c.handshake()
        assert response.reason == ""
        assert response.header("Sec-WebSocket-Accept") == "wrong"
        assert await c.wait_eof(timeout=2)


async def test_script_errors_are_reraised() -> None:
    async def script(conn: ServerConn) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        async with RawServer(script) as srv:
            c = await RawClient.open("127.0.0.1", srv.port)
            assert await c.wait_eof(timeout=2)
            c.close()


async def test_timeouts_are_bounded() -> None:
    async def script(conn: ServerConn) -> None:
        await conn.read_request()
        assert not await conn.wait_eof(timeout=0.1)
        conn.close()

    async with RawServer(script) as srv, await RawClient.open("127.0.0.1", srv.port) as c:
        await c.send(build_request())
        with pytest.raises(TimeoutError):
            await c.recv_frame(timeout=0.05)
        with pytest.raises(PeerClosed):
            await c.read_http_response(timeout=2)


async def test_reset_is_eof() -> None:
    async def script(conn: ServerConn) -> None:
        await conn.handshake()
        await conn.send(build_frame(OP_BINARY, b"x" * 10, mask=None)[:5])
        conn.reset_connection()

    async with RawServer(script) as srv, await RawClient.open("127.0.0.1", srv.port) as c:
        await c.handshake()
        assert await c.recv_frame(timeout=2) is None
        assert c.eof


async def test_tls(server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext) -> None:
    async def script(conn: ServerConn) -> None:
        await conn.handshake()
        await conn.send_frame(OP_TEXT, "secure")
        await asyncio.sleep(0)

    async with RawServer(script, ssl=server_ssl_context) as srv:
        assert srv.url.startswith("wss://")
        c = await RawClient.open(
            "127.0.0.1", srv.port, ssl=client_ssl_context, server_hostname="localhost"
        )
        async with c:
            assert (await c.handshake()).status_code == 101
            frame = await c.recv_frame()
            assert frame is not None and frame.text == "secure"
