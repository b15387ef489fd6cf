"""Opcodes, close codes and payloads, and the serialization of frames (RFC 6455 §5, §7.4)."""

from __future__ import annotations

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
    serialize_frame,
)

from .helpers import BINARY, MASK, close_payload, frame

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
