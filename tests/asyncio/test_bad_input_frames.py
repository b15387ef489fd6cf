"""Bad frames sent to wsio by a raw peer, in both roles (BAD-INPUT.md items 15–26).

Each test runs twice: wsio as the server (the raw peer is a client and masks its frames) and
wsio as the client (the raw peer is a server and does not). "Fail N" means: wsio sends a close
frame with code N, closes TCP (a server at once; a client may wait for the server's FIN, up to
``close_timeout``), and ``recv()`` raises ``ConnectionClosedError`` whose code is N, after
delivering the messages that were complete before the bad frame.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

import wsio
from rawpeer import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Frame,
    build_frame,
    close_payload,
)

# Both I/O layers (tests/layers.py): ws_pair opens the connection with the test's layer.
pytestmark = pytest.mark.both_layers

WsPairFactory = Callable[..., Awaitable[Any]]

STEP = 3.0  # seconds allowed for anything that should happen "at once"
# A wsio server must close TCP at once after failing (checked within 0.5 s < close_timeout);
# a wsio client may wait close_timeout for the server's FIN, so keep it short there.
CLOSE_TIMEOUT = {"server": 1.0, "client": 0.1}


@pytest.fixture(params=["server", "client"])
def role(request: pytest.FixtureRequest) -> str:
    """wsio's role in the test."""
    param: str = request.param
    return param


async def open_pair(ws_pair: WsPairFactory, role: str, **kwargs: Any) -> Any:
    return await ws_pair(role, **{"close_timeout": CLOSE_TIMEOUT[role], **kwargs})


async def recv(ws: Any) -> Any:
    return await asyncio.wait_for(ws.recv(), STEP)


async def expect_failure(
    pair: Any, code: int, delivered: Sequence[str | bytes] = (), peer_timeout: float = STEP
) -> list[Frame]:
    """Assert "fail ``code``" on the wire and at the API; return the frames the peer got.

    The application reads like ``async for`` does: the messages in ``delivered`` (complete
    before the bad frame), then a ``recv()`` that must raise. See
    :func:`test_failure_is_not_delayed_by_unread_messages` for an application that does not
    read.
    """
    for message in delivered:
        assert await recv(pair.ws) == message
    pending = asyncio.ensure_future(recv(pair.ws))
    try:
        frames = await pair.peer.recv_frames_until_close(timeout=peer_timeout)
        assert frames, "no close frame: wsio closed TCP without one"
        close = frames[-1]
        assert close.opcode == OP_CLOSE, frames
        assert close.close_code == code, (close.close_code, close.close_reason)
        assert close.masked is pair.wsio_masks
        # A server closes TCP at once; a client may wait close_timeout (0.1 s) for the server.
        assert await pair.peer.wait_eof(0.5), "wsio did not close TCP"
        with pytest.raises(wsio.ConnectionClosedError) as caught:
            await pending
    finally:
        pending.cancel()
    assert caught.value.code == code
    assert caught.value.sent is not None and caught.value.sent.code == code
    assert caught.value.rcvd is None
    return frames


async def finish_close(pair: Any) -> Frame:
    """After the peer sent a close frame: take wsio's answer; the peer (if server) closes TCP."""
    frames = await pair.peer.recv_frames_until_close(timeout=STEP)
    assert frames and frames[-1].opcode == OP_CLOSE, frames
    assert [f.opcode for f in frames[:-1]] == [], frames  # nothing else came back
    if pair.role == "client":
        pair.peer.close()  # the server closes TCP first (RFC 6455 §7.1.1)
    else:
        assert await pair.peer.wait_eof(STEP), "wsio server did not close TCP"
    return frames[-1]


async def test_failure_is_not_delayed_by_unread_messages(
    ws_pair: WsPairFactory, role: str
) -> None:
    # "Fail" means close now, even if the application has not read earlier messages yet;
    # those stay deliverable. close_timeout is long so that waiting for it shows up.
    pair = await open_pair(ws_pair, role, close_timeout=10)
    await pair.peer.send_frame(OP_TEXT, "unread")
    await pair.peer.send_frame(0x3, b"reserved opcode")
    frames = await pair.peer.recv_frames_until_close(timeout=1)
    assert frames and frames[-1].close_code == 1002, frames
    assert await recv(pair.ws) == "unread"
    with pytest.raises(wsio.ConnectionClosedError) as caught:
        await recv(pair.ws)
    assert caught.value.code == 1002


# -- 15. Masking -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opcode", "payload"),
    [(OP_TEXT, b"secret"), (OP_BINARY, b"secret"), (OP_PING, b"p"), (OP_CLOSE, b"\x03\xe8")],
)
async def test_wrong_masking_fails_1002(
    ws_pair: WsPairFactory, role: str, opcode: int, payload: bytes
) -> None:
    pair = await open_pair(ws_pair, role)
    await pair.peer.send_frame(OP_TEXT, "before")
    await pair.peer.send_frame(opcode, payload, mask=pair.wrong_mask)
    frames = await expect_failure(pair, 1002, delivered=["before"])
    assert [f.opcode for f in frames] == [OP_CLOSE]  # e.g. no pong to an unmasked ping


# -- 16. Reserved bits -----------------------------------------------------------------------


@pytest.mark.parametrize("bit", ["rsv1", "rsv2", "rsv3"])
@pytest.mark.parametrize(
    ("opcode", "payload"),
    [(OP_TEXT, b"data"), (OP_BINARY, b"data"), (OP_PING, b"ping"), (OP_CLOSE, b"\x03\xe8")],
)
async def test_reserved_bits_fail_1002(
    ws_pair: WsPairFactory, role: str, bit: str, opcode: int, payload: bytes
) -> None:
    pair = await open_pair(ws_pair, role)
    await pair.peer.send_frame(OP_TEXT, "before")
    await pair.peer.send_frame(opcode, payload, **{bit: True})
    frames = await expect_failure(pair, 1002, delivered=["before"])
    assert [f.opcode for f in frames] == [OP_CLOSE]


@pytest.mark.parametrize("bit", ["rsv1", "rsv2", "rsv3"])
async def test_reserved_bits_on_continuation_fail_1002(
    ws_pair: WsPairFactory, role: str, bit: str
) -> None:
    pair = await open_pair(ws_pair, role)
    await pair.peer.send_frame(OP_TEXT, "frag", fin=False)
    await pair.peer.send_frame(OP_CONT, "ment", **{bit: True})
    await expect_failure(pair, 1002)


# -- 17. Reserved opcodes --------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
async def test_reserved_opcode_fails_1002(ws_pair: WsPairFactory, role: str, opcode: int) -> None:
    pair = await open_pair(ws_pair, role)
    await pair.peer.send_frame(OP_TEXT, "before")
    await pair.peer.send_frame(OP_BINARY, b"\x00before")
    await pair.peer.send_frame(opcode, b"reserved")
    await pair.peer.send_frame(OP_TEXT, "after")  # never delivered
    await expect_failure(pair, 1002, delivered=["before", b"\x00before"])


# -- 18. Control frame rules -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("opcode", "payload"), [(OP_PING, b"p"), (OP_PONG, b"p"), (OP_CLOSE, b"\x03\xe8")]
)
async def test_fragmented_control_frame_fails_1002(
    ws_pair: WsPairFactory, role: str, opcode: int, payload: bytes
) -> None:
    pair = await open_pair(ws_pair, role)
    await pair.peer.send_frame(OP_TEXT, "before")
    await pair.peer.send_frame(opcode, payload, fin=False)
    frames = await expect_failure(pair, 1002, delivered=["before"])
    assert [f.opcode for f in frames] == [OP_CLOSE]


@pytest.mark.parametrize(
    ("opcode", "payload"),
    [
        (OP_PING, b"p" * 126),
        (OP_PONG, b"p" * 126),
        (OP_CLOSE, close_payload(1000, b"r" * 124)),
        (OP_PING, b"p" * 70000),
    ],
    ids=["ping-126", "pong-126", "close-126", "ping-70000"],
)
async def test_control_frame_over_125_fails_1002(
    ws_pair: WsPairFactory, role: str, opcode: int, payload: bytes
) -> None:
    pair = await open_pair(ws_pair, role)
    await pair.peer.send_frame(OP_TEXT, "before")
    await pair.peer.send_frame(opcode, payload)
    frames = await expect_failure(pair, 1002, delivered=["before"])
    assert [f.opcode for f in frames] == [OP_CLOSE]


async def test_control_frame_of_125_is_fine(ws_pair: WsPairFactory, role: str) -> None:
    pair = await open_pair(ws_pair, role)
    await pair.peer.send_frame(OP_PING, b"p" * 125)
    pong = await pair.peer.recv_frame(STEP)
    assert pong is not None
    assert (pong.opcode, pong.payload) == (OP_PONG, b"p" * 125)


# -- 19. Fragmentation rules -----------------------------------------------------------------


async def test_continuation_without_start_fails_1002(ws_pair: WsPairFactory, role: str) -> None:
    pair = await open_pair(ws_pair, role)
    await pair.peer.send_frame(OP_TEXT, "before")
    await pair.peer.send_frame(OP_CONT, "orphan")
    await expect_failure(pair, 1002, delivered=["before"])


@pytest.mark.parametrize(
    ("first", "second"),
    [(OP_TEXT, OP_TEXT), (OP_TEXT, OP_BINARY), (OP_BINARY, OP_TEXT), (OP_BINARY, OP_BINARY)],
)
@pytest.mark.parametrize("second_fin", [True, False])
async def test_new_data_frame_inside_a_message_fails_1002(
    ws_pair: WsPairFactory, role: str, first: int, second: int, second_fin: bool
) -> None:
    pair = await open_pair(ws_pair, role)
    await pair.peer.send_frame(OP_TEXT, "before")
    await pair.peer.send_frame(first, b"part one", fin=False)
    await pair.peer.send_frame(second, b"intruder", fin=second_fin)
    await expect_failure(pair, 1002, delivered=["before"])


# -- 20. Interleaved ping, 1-byte TCP chops --------------------------------------------------


async def test_ping_between_fragments_chopped_to_single_bytes(
    ws_pair: WsPairFactory, role: str
) -> None:
    pair = await open_pair(ws_pair, role)
    mask = pair.peer.default_mask
    stream = (
        build_frame(OP_TEXT, "Hel", fin=False, mask=mask)
        + build_frame(OP_PING, b"in between", mask=mask)
        + build_frame(OP_CONT, "lo ", fin=False, mask=mask)
        + build_frame(OP_CONT, "wörld €𝄞", mask=mask)
    )
    await pair.peer.send_chopped(stream, 1)
    assert await recv(pair.ws) == "Hello wörld €𝄞"
    pong = await pair.peer.recv_frame(STEP)
    assert pong is not None
    assert (pong.opcode, pong.payload, pong.fin) == (OP_PONG, b"in between", True)
    assert pong.masked is pair.wsio_masks
    # The connection is still healthy.
    await pair.ws.send("still here")
    frame = await pair.peer.recv_frame(STEP)
    assert frame is not None and (frame.opcode, frame.text) == (OP_TEXT, "still here")


# -- 21. Close frame payloads ----------------------------------------------------------------


async def test_empty_close_is_answered_empty_and_reported_1005(
    ws_pair: WsPairFactory, role: str
) -> None:
    pair = await open_pair(ws_pair, role)
    await pair.peer.send_frame(OP_TEXT, "before")
    await pair.peer.send_close(None)
    reply = await finish_close(pair)
    assert reply.payload == b""
    assert await recv(pair.ws) == "before"
    with pytest.raises(wsio.ConnectionClosedOK) as caught:
        await recv(pair.ws)
    assert caught.value.code == 1005


async def test_one_byte_close_fails_1002(ws_pair: WsPairFactory, role: str) -> None:
    pair = await open_pair(ws_pair, role)
    await pair.peer.send_frame(OP_CLOSE, b"\x03")
    await expect_failure(pair, 1002)


INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
VALID_CODES = [1000, 1001, 1002, 1003, *range(1007, 1015), 3000, 3999, 4000, 4999]


@pytest.mark.parametrize("code", INVALID_CODES)
async def test_invalid_close_code_fails_1002(ws_pair: WsPairFactory, role: str, code: int) -> None:
    pair = await open_pair(ws_pair, role)
    await pair.peer.send_close(code, b"bad code")
    await expect_failure(pair, 1002)


@pytest.mark.parametrize("code", VALID_CODES)
async def test_valid_close_code_is_echoed(ws_pair: WsPairFactory, role: str, code: int) -> None:
    pair = await open_pair(ws_pair, role)
    await pair.peer.send_close(code, "bye")
    reply = await finish_close(pair)
    assert reply.close_code == code
    assert reply.masked is pair.wsio_masks
    expected = wsio.ConnectionClosedOK if code in (1000, 1001) else wsio.ConnectionClosedError
    with pytest.raises(expected) as caught:
        await recv(pair.ws)
    assert caught.value.code == code
    assert caught.value.reason == "bye"
    assert caught.value.rcvd is not None and caught.value.rcvd.code == code


async def test_close_reason_of_123_bytes_is_fine(ws_pair: WsPairFactory, role: str) -> None:
    pair = await open_pair(ws_pair, role)
    reason = "é" * 61 + "x"  # 123 bytes
    await pair.peer.send_close(1000, reason)
    reply = await finish_close(pair)
    assert reply.close_code == 1000
    with pytest.raises(wsio.ConnectionClosedOK) as caught:
        await recv(pair.ws)
    assert caught.value.reason == reason


async def test_close_reason_of_124_bytes_fails_1002(ws_pair: WsPairFactory, role: str) -> None:
    pair = await open_pair(ws_pair, role)
    await pair.peer.send_close(1000, "r" * 124)
    await expect_failure(pair, 1002)


# -- 22. UTF-8 -------------------------------------------------------------------------------

BAD_UTF8 = [b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff", b"caf\xc3"]
BAD_IDS = ["overlong", "surrogate", "above-10ffff", "ff", "cut-at-end"]


@pytest.mark.parametrize("bad", BAD_UTF8, ids=BAD_IDS)
async def test_invalid_utf8_text_fails_1007(ws_pair: WsPairFactory, role: str, bad: bytes) -> None:
    pair = await open_pair(ws_pair, role)
    await pair.peer.send_frame(OP_TEXT, "before")
    await pair.peer.send_frame(OP_TEXT, b"ok " + bad)
    await expect_failure(pair, 1007, delivered=["before"])


@pytest.mark.parametrize("bad", BAD_UTF8[:4], ids=BAD_IDS[:4])
async def test_invalid_utf8_close_reason_fails_1007(
    ws_pair: WsPairFactory, role: str, bad: bytes
) -> None:
    pair = await open_pair(ws_pair, role)
    await pair.peer.send_close(1000, b"reason " + bad)
    await expect_failure(pair, 1007)


@pytest.mark.parametrize("bad", BAD_UTF8[:4], ids=BAD_IDS[:4])
async def test_invalid_utf8_fails_fast_in_fragment_2_of_3(
    ws_pair: WsPairFactory, role: str, bad: bytes
) -> None:
    pair = await open_pair(ws_pair, role)
    await pair.peer.send_frame(OP_TEXT, "fragment one, ", fin=False)
    await pair.peer.send_frame(OP_CONT, b"two " + bad, fin=False)
    # Fragment 3 is never sent: wsio must not wait for the end of the message.
    await expect_failure(pair, 1007)


async def test_sequence_cut_at_end_of_fragmented_message_fails_1007(
    ws_pair: WsPairFactory, role: str
) -> None:
    pair = await open_pair(ws_pair, role)
    await pair.peer.send_frame(OP_TEXT, b"abc\xe2\x82", fin=False)
    await pair.peer.send_frame(OP_CONT, b"")
    await expect_failure(pair, 1007)


async def test_valid_text_in_one_byte_fragments(ws_pair: WsPairFactory, role: str) -> None:
    pair = await open_pair(ws_pair, role)
    text = "héllo € 𝄞 ✓"
    data = text.encode()
    for i, byte in enumerate(data):
        opcode = OP_TEXT if i == 0 else OP_CONT
        await pair.peer.send_frame(opcode, bytes([byte]), fin=i == len(data) - 1)
    assert await recv(pair.ws) == text


# -- 23. 64-bit length with its top bit set --------------------------------------------------


@pytest.mark.parametrize("declared", [1 << 63, (1 << 64) - 1, (1 << 63) + 5])
async def test_length_top_bit_fails_at_once(
    ws_pair: WsPairFactory, role: str, declared: int
) -> None:
    pair = await open_pair(ws_pair, role)
    await pair.peer.send_frame(OP_TEXT, "before")
    assert await recv(pair.ws) == "before"
    pending = asyncio.ensure_future(recv(pair.ws))
    # Only the header: wsio must decide from it, without waiting for (or allocating) a payload.
    await pair.peer.send_frame(OP_BINARY, b"", declared_length=declared, length_encoding=64)
    try:
        frames = await pair.peer.recv_frames_until_close(timeout=1)
        assert frames and frames[-1].opcode == OP_CLOSE, frames
        assert frames[-1].close_code in (1002, 1009)
        with pytest.raises(wsio.ConnectionClosedError) as caught:
            await pending
    finally:
        pending.cancel()
    assert caught.value.code == frames[-1].close_code


async def test_length_top_bit_fails_1002_without_size_limit(
    ws_pair: WsPairFactory, role: str
) -> None:
    pair = await open_pair(ws_pair, role, max_size=None)
    await pair.peer.send_frame(OP_BINARY, b"", declared_length=1 << 63, length_encoding=64)
    await expect_failure(pair, 1002)


# -- 24. Size limit --------------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
async def test_frame_header_over_limit_fails_1009_before_payload(
    ws_pair: WsPairFactory, role: str, opcode: int
) -> None:
    pair = await open_pair(ws_pair, role, max_size=1000)
    await pair.peer.send_frame(OP_TEXT, "before")
    await pair.peer.send_frame(opcode, b"", declared_length=1001)  # header only
    await expect_failure(pair, 1009, delivered=["before"])


async def test_frame_at_limit_is_fine(ws_pair: WsPairFactory, role: str) -> None:
    pair = await open_pair(ws_pair, role, max_size=1000)
    await pair.peer.send_frame(OP_BINARY, b"x" * 1000)
    await pair.peer.send_frame(OP_TEXT, "é" * 500)
    assert await recv(pair.ws) == b"x" * 1000
    assert await recv(pair.ws) == "é" * 500


async def test_fragments_summing_past_limit_fail_1009(ws_pair: WsPairFactory, role: str) -> None:
    pair = await open_pair(ws_pair, role, max_size=1000)
    await pair.peer.send_frame(OP_BINARY, b"a" * 600, fin=False)
    await pair.peer.send_frame(OP_CONT, b"b" * 300, fin=False)  # 900: fine
    await pair.peer.send_frame(OP_CONT, b"c" * 200, fin=False)  # 1100: over; no final frame
    await expect_failure(pair, 1009)


async def test_many_empty_fragments_are_fine(ws_pair: WsPairFactory, role: str) -> None:
    pair = await open_pair(ws_pair, role, max_size=1000)
    stream = build_frame(OP_BINARY, b"a", fin=False, mask=pair.peer.default_mask)
    stream += build_frame(OP_CONT, b"", fin=False, mask=pair.peer.default_mask) * 2000
    stream += build_frame(OP_CONT, b"z", mask=pair.peer.default_mask)
    await pair.peer.send(stream)
    assert await recv(pair.ws) == b"az"


# -- 25. Length encodings --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "encoding"),
    [(b"hi", 16), (b"hi", 64), (b"", 64), (b"x" * 200, 64), (b"y" * 125, 16)],
)
async def test_non_minimal_length_is_accepted(
    ws_pair: WsPairFactory, role: str, payload: bytes, encoding: Any
) -> None:
    pair = await open_pair(ws_pair, role)
    await pair.peer.send_frame(OP_BINARY, payload, length_encoding=encoding)
    await pair.peer.send_frame(OP_TEXT, "hi", length_encoding=encoding)
    assert await recv(pair.ws) == payload
    assert await recv(pair.ws) == "hi"


async def test_wsio_always_uses_minimal_lengths(ws_pair: WsPairFactory, role: str) -> None:
    pair = await open_pair(ws_pair, role)
    sizes = [0, 1, 125, 126, 127, 65535, 65536, 70000]
    for size in sizes:
        await pair.ws.send(bytes(size))
    await pair.ws.send("é" * 100)  # 200 bytes of text
    ping = asyncio.ensure_future(pair.ws.ping(b""))
    frames = []
    for _ in range(len(sizes) + 2):
        frame = await pair.peer.recv_frame(STEP)
        assert frame is not None
        frames.append(frame)
    await pair.peer.send_frame(OP_PONG, b"")
    latency = await asyncio.wait_for(ping, STEP)
    assert latency >= 0
    assert [len(f.payload) for f in frames] == [*sizes, 200, 0]
    assert [f.opcode for f in frames] == [OP_BINARY] * len(sizes) + [OP_TEXT, OP_PING]
    for frame in frames:
        assert frame.is_minimal, (len(frame.payload), frame.length_encoding)
        assert frame.masked is pair.wsio_masks
        assert frame.fin and not (frame.rsv1 or frame.rsv2 or frame.rsv3)
    assert frames[-2].text == "é" * 100


# -- 26. Data after the peer's close frame ---------------------------------------------------


async def test_data_after_close_is_ignored(ws_pair: WsPairFactory, role: str) -> None:
    pair = await open_pair(ws_pair, role)
    mask = pair.peer.default_mask
    await pair.peer.send(
        build_frame(OP_TEXT, "before", mask=mask)
        + build_frame(OP_CLOSE, close_payload(1000, "done"), mask=mask)
        + build_frame(OP_TEXT, "late", mask=mask)
        + build_frame(OP_BINARY, b"later", mask=mask)
        + build_frame(0x3, b"even a bad frame", mask=mask)
    )
    reply = await finish_close(pair)
    assert reply.close_code == 1000
    assert await recv(pair.ws) == "before"
    with pytest.raises(wsio.ConnectionClosedOK) as caught:
        await recv(pair.ws)
    assert caught.value.code == 1000


async def test_peer_failure_is_one_debug_line_without_traceback(
    ws_pair: WsPairFactory, role: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken rule is logged for whoever debugs, at debug level, without a traceback."""
    with caplog.at_level(logging.DEBUG, logger="wsio"):
        pair = await open_pair(ws_pair, role)
        await pair.peer.send_frame(OP_TEXT, b"\xc3\x28")  # invalid UTF-8
        await expect_failure(pair, 1007)
        await asyncio.wait_for(pair.ws.wait_closed(), STEP)
    failures = [r for r in caplog.records if r.getMessage().startswith("connection failed:")]
    assert len(failures) == 1, [r.getMessage() for r in caplog.records]
    assert failures[0].levelno == logging.DEBUG
    assert "UTF-8" in failures[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)
    assert all(r.levelno < logging.WARNING for r in caplog.records)
