"""Masking of payloads (RFC 6455 §5.3)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsio.protocol.masking import apply_mask

from .helpers import MASK, xor

SETTINGS = settings(max_examples=200, deadline=None)


def test_rfc_example_masked_hello() -> None:
    # RFC 6455 §5.7: "A single-frame masked text message": 0x81 0x85 0x37 0xfa 0x21 0x3d
    # 0x7f 0x9f 0x4d 0x51 0x58 contains "Hello".
    assert apply_mask(bytes.fromhex("7f9f4d5158"), bytes.fromhex("37fa213d")) == b"Hello"
    assert apply_mask(b"Hello", bytes.fromhex("37fa213d")) == bytes.fromhex("7f9f4d5158")


def test_empty() -> None:
    assert apply_mask(b"", MASK) == b""
    assert apply_mask(b"", MASK, 3) == b""


def test_zero_mask_is_identity() -> None:
    assert apply_mask(b"payload", b"\x00\x00\x00\x00") == b"payload"


def test_octet_i_uses_mask_octet_i_mod_4() -> None:
    data = bytes(9)
    assert apply_mask(data, b"\x01\x02\x03\x04") == b"\x01\x02\x03\x04\x01\x02\x03\x04\x01"


@pytest.mark.parametrize("offset", range(8))
def test_offset(offset: int) -> None:
    data = bytes(range(1, 12))
    expected = xor(bytes(offset) + data, MASK)[offset:]
    assert apply_mask(data, MASK, offset) == expected


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_accepts_bytes_like(kind: type) -> None:
    result = apply_mask(kind(b"Hello"), MASK)
    assert type(result) is bytes
    assert result == xor(b"Hello", MASK)


def test_result_is_bytes() -> None:
    assert type(apply_mask(b"abc", MASK)) is bytes


@SETTINGS
@given(st.binary(max_size=300), st.binary(min_size=4, max_size=4))
def test_matches_definition_and_is_an_involution(data: bytes, mask: bytes) -> None:
    masked = apply_mask(data, mask)
    assert masked == xor(data, mask)
    assert apply_mask(masked, mask) == data


@SETTINGS
@given(
    st.binary(max_size=200),
    st.binary(min_size=4, max_size=4),
    st.lists(st.integers(min_value=0, max_value=200), max_size=6),
)
def test_pieces_at_offsets_equal_the_whole(data: bytes, mask: bytes, cuts: list[int]) -> None:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = [0, *points, len(data)]
    pieces = [apply_mask(data[a:b], mask, a) for a, b in itertools.pairwise(bounds)]
    assert b"".join(pieces) == apply_mask(data, mask)
