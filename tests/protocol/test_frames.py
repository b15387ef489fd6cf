"""Opcodes, close codes and payloads, the serialization of frames and the receive fast path
for whole messages (RFC 6455 §5, §7.4).

These tests run against whichever implementation :mod:`wsio.protocol.frames` selected: the
C one from ``wsio._speedups``, or the pure-Python one when ``WSIO_NO_SPEEDUPS`` is set.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsio.exceptions import InvalidArgument, ProtocolError
from wsio.protocol.frames import (
    CONTROL_OPCODES,
    DATA_OPCODES,
    MAX_CLOSE_REASON,
    MAX_CONTROL_PAYLOAD,
    Close,
    CloseCode,
    Opcode,
    parse_messages,
    serialize_frame,
)

from .helpers import BINARY, CLOSE, CONT, MASK, OTHER_MASK, PING, PONG, TEXT, close_payload, frame

SETTINGS = settings(max_examples=200, deadline=None)

#: Codes that may never appear in a close frame (§7.4.1, §7.4.2).
INVALID_CODES = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
#: Codes defined by §7.4.1 or registered with IANA, and the 3000-4999 ranges (§7.4.2).
VALID_CODES = [
    1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
    3000, 3001, 3999, 4000, 4001, 4999,
]  # fmt: skip


# Vocabulary


def test_opcodes() -> None:
    """§5.2 and §11.8."""
    assert [int(op) for op in Opcode] == [0x0, 0x1, 0x2, 0x8, 0x9, 0xA]
    assert {Opcode.CONTINUATION, Opcode.TEXT, Opcode.BINARY} == DATA_OPCODES
    assert {Opcode.CLOSE, Opcode.PING, Opcode.PONG} == CONTROL_OPCODES


def test_limits() -> None:
    assert MAX_CONTROL_PAYLOAD == 125
    assert MAX_CLOSE_REASON == 123


def test_close_codes() -> None:
    """§7.4.1."""
    assert CloseCode.NORMAL_CLOSURE == 1000
    assert CloseCode.GOING_AWAY == 1001
    assert CloseCode.PROTOCOL_ERROR == 1002
    assert CloseCode.UNSUPPORTED_DATA == 1003
    assert CloseCode.NO_STATUS_RCVD == 1005
    assert CloseCode.ABNORMAL_CLOSURE == 1006
    assert CloseCode.INVALID_DATA == 1007
    assert CloseCode.POLICY_VIOLATION == 1008
    assert CloseCode.MESSAGE_TOO_BIG == 1009
    assert CloseCode.MANDATORY_EXTENSION == 1010
    assert CloseCode.INTERNAL_ERROR == 1011
    assert CloseCode.TLS_HANDSHAKE == 1015
    assert 1004 not in {int(code) for code in CloseCode}


# serialize_frame: the examples of §5.7


def test_rfc_single_frame_unmasked_text() -> None:
    assert serialize_frame(Opcode.TEXT, b"Hello") == bytes.fromhex("810548656c6c6f")


def test_rfc_single_frame_masked_text() -> None:
    mask = bytes.fromhex("37fa213d")
    expected = bytes.fromhex("818537fa213d7f9f4d5158")
    assert serialize_frame(Opcode.TEXT, b"Hello", mask=mask) == expected


def test_rfc_fragmented_unmasked_text() -> None:
    assert serialize_frame(Opcode.TEXT, b"Hel", fin=False) == bytes.fromhex("010348656c")
    assert serialize_frame(Opcode.CONTINUATION, b"lo") == bytes.fromhex("80026c6f")


def test_rfc_unmasked_ping() -> None:
    assert serialize_frame(Opcode.PING, b"Hello") == bytes.fromhex("890548656c6c6f")


def test_rfc_masked_pong() -> None:
    mask = bytes.fromhex("37fa213d")
    expected = bytes.fromhex("8a8537fa213d7f9f4d5158")
    assert serialize_frame(Opcode.PONG, b"Hello", mask=mask) == expected


def test_rfc_256_bytes_binary() -> None:
    data = bytes(256)
    assert serialize_frame(Opcode.BINARY, data) == bytes.fromhex("827e0100") + data


def test_rfc_64kib_binary() -> None:
    data = bytes(65536)
    assert serialize_frame(Opcode.BINARY, data) == bytes.fromhex("827f0000000000010000") + data


# serialize_frame: length encodings are minimal (§5.2)


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, "8200"),
        (1, "8201"),
        (125, "827d"),
        (126, "827e007e"),
        (127, "827e007f"),
        (65535, "827effff"),
        (65536, "827f0000000000010000"),
        (65537, "827f0000000000010001"),
    ],
)
def test_length_encodings(length: int, header: str) -> None:
    data = b"\xab" * length
    assert serialize_frame(Opcode.BINARY, data) == bytes.fromhex(header) + data


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536])
def test_length_encodings_masked(length: int) -> None:
    data = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    assert serialize_frame(Opcode.BINARY, data, mask=MASK) == frame(BINARY, data, mask=MASK)


@pytest.mark.parametrize("opcode", list(Opcode))
@pytest.mark.parametrize("fin", [True, False])
def test_first_byte(opcode: Opcode, fin: bool) -> None:
    assert serialize_frame(opcode, b"", fin=fin)[0] == (0x80 if fin else 0) | opcode


def test_rsv1() -> None:
    assert serialize_frame(Opcode.TEXT, b"", rsv=0x40)[0] == 0xC1


def test_mask_bit_only_with_a_mask() -> None:
    assert serialize_frame(Opcode.TEXT, b"a")[1] & 0x80 == 0
    assert serialize_frame(Opcode.TEXT, b"a", mask=MASK)[1] & 0x80 == 0x80


def test_empty_masked_frame_carries_the_key() -> None:
    assert serialize_frame(Opcode.PING, b"", mask=MASK) == b"\x89\x80" + MASK


@SETTINGS
@given(
    st.sampled_from(list(Opcode)),
    st.one_of(st.binary(max_size=200), st.integers(65530, 65540).map(bytes)),
    st.booleans(),
    st.one_of(st.none(), st.binary(min_size=4, max_size=4)),
)
def test_serialize_matches_reference(
    opcode: Opcode, payload: bytes, fin: bool, mask: bytes | None
) -> None:
    assert serialize_frame(opcode, payload, fin=fin, mask=mask) == frame(
        opcode, payload, fin=fin, mask=mask
    )


@pytest.mark.parametrize(
    ("opcode", "fin", "rsv"),
    [(-1, True, 0), (0, True, -1), (0x100, False, 0), (0, False, 0x100), (0x80, True, 0x100)],
)
def test_serialize_opcode_or_rsv_outside_the_first_byte(opcode: int, fin: bool, rsv: int) -> None:
    """§5.2: FIN, RSV1-3 and the opcode share the first byte; what doesn't fit is an error."""
    with pytest.raises(ValueError, match="must fit in a byte"):
        serialize_frame(opcode, b"", fin=fin, rsv=rsv)


def test_serialize_first_byte_at_its_largest() -> None:
    assert serialize_frame(0x7F, b"")[0] == 0xFF
    assert serialize_frame(0xFF, b"", fin=False)[0] == 0xFF
    assert serialize_frame(0x0F, b"", rsv=0x70)[0] == 0xFF


# parse_messages: the receive fast path for whole unfragmented messages (§5.2, §5.6)

Events = list[tuple[str, object]]


def parse(
    data: bytes | bytearray | memoryview, *, mask_expected: bool = False, max_size: int = -1
) -> tuple[int, Events]:
    """The offset ``parse_messages`` returns, and the events it appended."""
    events: Events = []
    offset = parse_messages(
        data, events, mask_expected, max_size, lambda t: ("text", t), lambda b: ("binary", b)
    )
    return offset, events


def key(mask_expected: bool) -> bytes | None:
    return MASK if mask_expected else None


def test_parse_rfc_masked_text_from_a_client() -> None:
    """§5.7: "A single-frame masked text message", as a server receives it."""
    data = bytes.fromhex("818537fa213d7f9f4d5158")
    assert parse(data, mask_expected=True) == (11, [("text", "Hello")])


def test_parse_rfc_unmasked_text_from_a_server() -> None:
    """§5.7: "A single-frame unmasked text message", as a client receives it."""
    assert parse(bytes.fromhex("810548656c6c6f")) == (7, [("text", "Hello")])


@pytest.mark.parametrize("data", [b"", b"\x81", b"\x82"])
def test_parse_less_than_a_header(data: bytes) -> None:
    assert parse(data) == (0, [])


@pytest.mark.parametrize("mask_expected", [False, True])
def test_parse_several_messages_in_one_buffer(mask_expected: bool) -> None:
    """Each frame is unmasked with its own key (§5.3)."""
    masks = [MASK, OTHER_MASK] if mask_expected else [None, None]
    messages = [(TEXT, b"Hello"), (BINARY, b"\x00\xff"), (TEXT, b""), (BINARY, b"")]
    messages += [(TEXT, "κόσμε \U0001f600".encode()), (BINARY, bytes(range(256)))]
    data = b"".join(
        frame(opcode, payload, mask=masks[i % 2]) for i, (opcode, payload) in enumerate(messages)
    )
    offset, events = parse(data, mask_expected=mask_expected)
    assert offset == len(data)
    assert events == [
        ("text", payload.decode()) if opcode == TEXT else ("binary", payload)
        for opcode, payload in messages
    ]
    assert [type(value) for _, value in events] == [str, bytes, str, bytes, str, bytes]


@pytest.mark.parametrize(
    "convert",
    [bytes, bytearray, memoryview, lambda d: memoryview(b"--" + d)[2:]],
    ids=["bytes", "bytearray", "memoryview", "memoryview-slice"],
)
def test_parse_bytes_like(convert: Callable[[bytes], bytes | bytearray | memoryview]) -> None:
    data = frame(TEXT, b"Hello") + frame(BINARY, b"abc") + frame(PING)
    assert parse(convert(data)) == (12, [("text", "Hello"), ("binary", b"abc")])


#: Frames that the fast path leaves to the general parser, built with the key expected.
NOT_TAKEN: dict[str, Callable[[bytes | None], bytes]] = {
    "close": lambda m: frame(CLOSE, close_payload(1000), mask=m),
    "ping": lambda m: frame(PING, b"hi", mask=m),
    "pong": lambda m: frame(PONG, b"", mask=m),
    "continuation": lambda m: frame(CONT, b"lo", mask=m),
    "reserved-data-opcode": lambda m: frame(0x3, b"x", mask=m),
    "reserved-control-opcode": lambda m: frame(0xB, b"x", mask=m),
    "text-without-fin": lambda m: frame(TEXT, b"Hel", fin=False, mask=m),
    "binary-without-fin": lambda m: frame(BINARY, b"Hel", fin=False, mask=m),
    "rsv1": lambda m: frame(TEXT, b"x", rsv=0x40, mask=m),
    "rsv2": lambda m: frame(BINARY, b"x", rsv=0x20, mask=m),
    "rsv3": lambda m: frame(TEXT, b"x", rsv=0x10, mask=m),
    "wrong-mask-bit": lambda m: frame(BINARY, b"x", mask=None if m else MASK),
    "64-bit-length-top-bit": lambda m: frame(BINARY, mask=m, length=2**63, encoding=64),
    "64-bit-length-all-bits": lambda m: frame(BINARY, mask=m, length=2**64 - 1, encoding=64),
    "surrogate": lambda m: frame(TEXT, b"a\xed\xa0\x80", mask=m),
    "overlong-2-byte": lambda m: frame(TEXT, b"\xc0\xaf", mask=m),
    "overlong-3-byte": lambda m: frame(TEXT, b"\xe0\x80\xaf", mask=m),
    "beyond-u10ffff": lambda m: frame(TEXT, b"\xf4\x90\x80\x80", mask=m),
    "lone-continuation": lambda m: frame(TEXT, b"\x80", mask=m),
    "cut-sequence": lambda m: frame(TEXT, "ok €".encode()[:-1], mask=m),
    "invalid-byte": lambda m: frame(TEXT, b"\xff", mask=m),
}


@pytest.mark.parametrize("kind", NOT_TAKEN)
@pytest.mark.parametrize("mask_expected", [False, True])
def test_parse_stops_at_a_frame_it_does_not_take(mask_expected: bool, kind: str) -> None:
    """Anything but a whole unfragmented text or binary message, masked as §5.1 requires,
    with valid UTF-8 for text (§5.6, §8.1), goes to the general parser: the fast path
    returns the offset of that frame, with the messages before it parsed."""
    good = frame(TEXT, b"before", mask=key(mask_expected))
    bad = NOT_TAKEN[kind](key(mask_expected))
    after = frame(BINARY, b"after", mask=key(mask_expected))
    assert parse(bad + after, mask_expected=mask_expected) == (0, [])
    assert parse(good + bad + after, mask_expected=mask_expected) == (
        len(good),
        [("text", "before")],
    )


@pytest.mark.parametrize("length", [0, 5, 125, 126, 300, 65535, 65536])
@pytest.mark.parametrize("mask_expected", [False, True])
def test_parse_stops_at_an_incomplete_frame(mask_expected: bool, length: int) -> None:
    good = frame(BINARY, b"before", mask=key(mask_expected))
    whole = frame(BINARY, b"\xab" * length, mask=key(mask_expected))
    # Cut in the header, the extended length, the key, the payload, and 1 byte short.
    for cut in sorted({*range(min(len(whole), 16)), len(whole) - 1}):
        assert parse(good + whole[:cut], mask_expected=mask_expected) == (
            len(good),
            [("binary", b"before")],
        ), cut


@pytest.mark.parametrize(
    ("length", "header_size"), [(125, 2), (126, 4), (65535, 4), (65536, 10), (70001, 10)]
)
@pytest.mark.parametrize("mask_expected", [False, True])
def test_parse_16_and_64_bit_lengths(mask_expected: bool, length: int, header_size: int) -> None:
    """§5.2: 126 announces a 16-bit length, 127 a 64-bit one."""
    payload = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
    data = frame(BINARY, payload, mask=key(mask_expected))
    assert len(data) == header_size + 4 * mask_expected + length
    assert parse(data + frame(PING), mask_expected=mask_expected) == (
        len(data),
        [("binary", payload)],
    )


@pytest.mark.parametrize(("length", "encoding"), [(0, 16), (5, 16), (5, 64), (300, 64)])
def test_parse_non_minimal_lengths(length: int, encoding: int) -> None:
    """§5.2 asks senders for the minimal encoding; the general parser reads any, and so
    does the fast path."""
    data = frame(TEXT, b"x" * length, encoding=encoding)
    assert parse(data) == (len(data), [("text", "x" * length)])


@pytest.mark.parametrize("length", [1, 511, 512, 513, 4096, 70000])
def test_parse_masked_text_of_any_length(length: int) -> None:
    text = ("é" * length)[: length // 2] + "x" * (length % 2)  # ``length`` bytes of UTF-8
    data = frame(TEXT, text.encode(), mask=MASK)
    assert parse(data, mask_expected=True) == (len(data), [("text", text)])


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
@pytest.mark.parametrize("mask_expected", [False, True])
def test_parse_max_size_is_inclusive(mask_expected: bool, size: int, opcode: int) -> None:
    """A message of exactly ``max_size`` bytes is taken; one more byte stops the fast path
    (the general parser then fails the connection with 1009)."""
    at_limit = frame(opcode, b"a" * size, mask=key(mask_expected))
    over = frame(opcode, b"a" * (size + 1), mask=key(mask_expected))
    expected = ("text", "a" * size) if opcode == TEXT else ("binary", b"a" * size)
    data = at_limit + over
    assert parse(data, mask_expected=mask_expected, max_size=size) == (len(at_limit), [expected])


def test_parse_max_size_applies_to_each_message() -> None:
    data = frame(BINARY, b"abc") * 3
    assert parse(data, max_size=3) == (len(data), [("binary", b"abc")] * 3)


def test_parse_max_size_minus_one_is_no_limit() -> None:
    data = frame(BINARY, bytes(100000))
    assert parse(data, max_size=-1) == (len(data), [("binary", bytes(100000))])
    assert parse(data, max_size=99999) == (0, [])


# Close.parse (§5.5.1, §7.1.5, §7.4)


def test_parse_empty_payload_is_1005() -> None:
    """§7.1.5: a close frame without a status code counts as 1005."""
    assert Close.parse(b"") == Close(CloseCode.NO_STATUS_RCVD, "")


def test_parse_one_byte_payload() -> None:
    """§5.5.1: a body starts with a 2-byte code; 1 byte is a protocol error."""
    with pytest.raises(ProtocolError) as info:
        Close.parse(b"\x03")
    assert info.value.close_code == 1002


@pytest.mark.parametrize("code", INVALID_CODES)
def test_parse_invalid_code(code: int) -> None:
    with pytest.raises(ProtocolError) as info:
        Close.parse(close_payload(code))
    assert info.value.close_code == 1002


@pytest.mark.parametrize("code", VALID_CODES)
def test_parse_valid_code(code: int) -> None:
    assert Close.parse(close_payload(code)) == Close(code, "")


def test_parse_reason() -> None:
    assert Close.parse(close_payload(1000, "bye ☺".encode())) == Close(1000, "bye ☺")


def test_parse_123_byte_reason() -> None:
    reason = "é" * 61 + "x"  # 123 bytes of UTF-8
    assert len(reason.encode()) == 123
    assert Close.parse(close_payload(1001, reason.encode())) == Close(1001, reason)


@pytest.mark.parametrize(
    "reason", [b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ok\xe2\x82", b"\xff"]
)
def test_parse_invalid_utf8_reason(reason: bytes) -> None:
    """§8.1: invalid UTF-8 fails the connection; §7.4.1: with 1007."""
    with pytest.raises(ProtocolError) as info:
        Close.parse(close_payload(1000, reason))
    assert info.value.close_code == 1007


# Close.serialize


def test_serialize_1005_is_empty() -> None:
    assert Close(CloseCode.NO_STATUS_RCVD).serialize() == b""


@pytest.mark.parametrize("code", VALID_CODES)
def test_serialize_valid_code(code: int) -> None:
    assert Close(code).serialize() == code.to_bytes(2, "big")


def test_serialize_reason() -> None:
    assert Close(1000, "bye").serialize() == b"\x03\xe8bye"


@pytest.mark.parametrize("code", INVALID_CODES)
def test_serialize_invalid_code(code: int) -> None:
    with pytest.raises(InvalidArgument):
        Close(code, "reason").serialize()


def test_serialize_123_byte_reason() -> None:
    reason = "€" * 41  # 123 bytes
    assert Close(1000, reason).serialize() == b"\x03\xe8" + reason.encode()


def test_serialize_124_byte_reason() -> None:
    with pytest.raises(InvalidArgument):
        Close(1000, "€" * 41 + "x").serialize()


@SETTINGS
@given(
    st.sampled_from(VALID_CODES),
    st.text(max_size=40).filter(lambda s: len(s.encode()) <= MAX_CLOSE_REASON),
)
def test_round_trip(code: int, reason: str) -> None:
    assert Close.parse(Close(code, reason).serialize()) == Close(code, reason)


@SETTINGS
@given(st.binary(max_size=125))
def test_parse_never_raises_anything_but_protocol_error(payload: bytes) -> None:
    try:
        close = Close.parse(payload)
    except ProtocolError as exc:
        assert exc.close_code in (1002, 1007)
    else:
        assert close.serialize() == payload


# str


def test_str() -> None:
    assert str(Close(1005)) == "close frame without a code (1005)"
    assert str(Close(1000)) == "1000 (normal closure)"
    assert str(Close(1001, "bye")) == "1001 (going away) bye"
    assert str(Close(3000)) == "3000 (registered)"
    assert str(Close(4000)) == "4000 (private use)"


def test_lengths_count_bytes_whatever_the_buffer_item_size() -> None:
    """A buffer of 2-byte items still holds bytes on the wire (§5.2: lengths in bytes)."""
    payload = memoryview(b"abcdef").cast("H")
    assert serialize_frame(Opcode.BINARY, payload) == b"\x82\x06abcdef"
    events: list[bytes] = []
    data = memoryview(b"\x82\x01ab").cast("H")
    assert parse_messages(data, events, False, -1, str, bytes) == 3
    assert events == [b"a"]


@pytest.mark.parametrize("reason", ["\ud800", "bye \udfff", "\udbff\udc00"])
def test_serialize_unencodable_reason(reason: str) -> None:
    """A lone surrogate has no UTF-8 encoding (RFC 6455 §5.5.1 wants UTF-8)."""
    with pytest.raises(InvalidArgument, match="lone surrogate"):
        Close(1000, reason).serialize()
