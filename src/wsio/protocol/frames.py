"""Frames, opcodes and close payloads (RFC 6455 §5 and §7.4).

The parsing of incoming frames lives in :mod:`wsio.protocol.connection`, which streams
payloads as they arrive; this module holds the vocabulary, the rules on close payloads, the
serialization of outgoing frames and the receive fast paths for whole messages
(:func:`parse_messages`, :func:`deliver_messages`) and for the peer's close frame
(:func:`parse_close`), which hand anything unusual back to the general parser.

:func:`serialize_frame`, :func:`parse_messages`, :func:`parse_close` and
:func:`deliver_messages` are the C versions from :mod:`wsio._speedups` when that extension
is built and ``WSIO_NO_SPEEDUPS`` is unset or empty; otherwise the ``python_`` functions
here, the reference.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .._accelerator import speedups
from ..exceptions import InvalidArgument, ProtocolError
from .masking import apply_mask, byte_view

__all__ = [
    "CONTROL_OPCODES",
    "DATA_OPCODES",
    "MAX_CLOSE_REASON",
    "MAX_CONTROL_PAYLOAD",
    "Close",
    "CloseCode",
    "Opcode",
    "deliver_messages",
    "encode_text",
    "parse_close",
    "parse_messages",
    "python_deliver_messages",
    "python_parse_close",
    "python_parse_messages",
    "python_serialize_frame",
    "serialize_frame",
    "serialize_header",
]

_E = TypeVar("_E")


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 §5.2, §11.8); every other value is reserved."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


DATA_OPCODES = frozenset({Opcode.CONTINUATION, Opcode.TEXT, Opcode.BINARY})
CONTROL_OPCODES = frozenset({Opcode.CLOSE, Opcode.PING, Opcode.PONG})

#: "All control frames MUST have a payload length of 125 bytes or less" (RFC 6455 §5.5).
MAX_CONTROL_PAYLOAD = 125

#: A close payload is a 2-byte code then the reason, so the reason has 123 bytes at most.
MAX_CLOSE_REASON = MAX_CONTROL_PAYLOAD - 2


class CloseCode(enum.IntEnum):
    """Close codes defined by RFC 6455 §7.4.1 and registered with IANA (§11.7)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    # 1004 is reserved.
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


#: Codes 1000-2999 that may appear in a close frame: those defined or registered and not
#: marked "MUST NOT be set as a status code in a Close control frame" (RFC 6455 §7.4.1).
_SENDABLE_RFC_CODES = frozenset(
    {
        CloseCode.NORMAL_CLOSURE,
        CloseCode.GOING_AWAY,
        CloseCode.PROTOCOL_ERROR,
        CloseCode.UNSUPPORTED_DATA,
        CloseCode.INVALID_DATA,
        CloseCode.POLICY_VIOLATION,
        CloseCode.MESSAGE_TOO_BIG,
        CloseCode.MANDATORY_EXTENSION,
        CloseCode.INTERNAL_ERROR,
        CloseCode.SERVICE_RESTART,
        CloseCode.TRY_AGAIN_LATER,
        CloseCode.BAD_GATEWAY,
    }
)


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may be carried by a close frame (RFC 6455 §7.4.1, §7.4.2).

    3000-3999 are registered with IANA and 4000-4999 are private: both are allowed.
    """
    return code in _SENDABLE_RFC_CODES or 3000 <= code <= 4999


def encode_text(text: str, what: str) -> bytes:
    """``text`` in UTF-8, as text messages and close reasons carry it (RFC 6455 §5.6,
    §5.5.1). ``what`` names it in the error.

    :raises InvalidArgument: a lone surrogate, which has no UTF-8 encoding.
    """
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        raise InvalidArgument(
            f"{what} isn't valid Unicode: lone surrogate at position {exc.start}"
        ) from None


@dataclasses.dataclass(frozen=True, slots=True)
class Close:
    """The payload of a close frame: a code and a reason (RFC 6455 §5.5.1).

    An empty payload is represented by code 1005 (``NO_STATUS_RCVD``), as §7.1.5 says the
    close code is then considered to be.
    """

    code: int
    reason: str = ""

    def __str__(self) -> str:
        if self.code == CloseCode.NO_STATUS_RCVD:
            return "close frame without a code (1005)"
        try:
            name = CloseCode(self.code).name.lower().replace("_", " ")
        except ValueError:
            name = "registered" if self.code < 4000 else "private use"
        text = f"{self.code} ({name})"
        return f"{text} {self.reason}" if self.reason else text

    @classmethod
    def parse(cls, payload: bytes) -> Close:
        """Parse the payload of a received close frame.

        :raises ProtocolError: 1-byte payload or invalid code (close code 1002);
            a reason that isn't UTF-8 (close code 1007).
        """
        if len(payload) == 0:
            return cls(CloseCode.NO_STATUS_RCVD)
        if len(payload) == 1:
            raise ProtocolError("close frame with a 1-byte payload")
        (code,) = struct.unpack_from("!H", payload)
        if not is_valid_close_code(code):
            raise ProtocolError(f"invalid close code {code}")
        try:
            reason = payload[2:].decode()
        except UnicodeDecodeError as exc:
            raise ProtocolError("invalid UTF-8 in close reason", 1007) from exc
        return cls(code, reason)

    def serialize(self) -> bytes:
        """Payload of the close frame; empty for ``NO_STATUS_RCVD``.

        :raises InvalidArgument: the code may not be sent, the reason is too long or
            isn't valid Unicode.
        """
        if self.code == CloseCode.NO_STATUS_RCVD and not self.reason:
            return b""
        if not is_valid_close_code(self.code):
            raise InvalidArgument(
                f"close code {self.code} may not be sent: use 1000-1003, 1007-1014 or 3000-4999"
            )
        reason = encode_text(self.reason, "close reason")
        if len(reason) > MAX_CLOSE_REASON:
            raise InvalidArgument(
                f"close reason is {len(reason)} bytes long; at most {MAX_CLOSE_REASON} fit"
            )
        return struct.pack("!H", self.code) + reason


def python_serialize_frame(
    opcode: int,
    payload: bytes | bytearray | memoryview,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
) -> bytes:
    """Serialize one frame with the shortest length encoding (RFC 6455 §5.2).

    ``rsv`` holds the reserved bits as in the first header byte (0x40 is RSV1), set only
    by extensions. ``mask`` is the 4-byte masking key, given for every frame a client
    sends and never for a server's (§5.1).
    """
    if not isinstance(payload, bytes):
        payload = bytes(payload)  # a length in bytes, whatever the buffer's item size
    header = _checked_header("serialize_frame", opcode, len(payload), fin, rsv, mask)
    if mask is None:
        return header + payload
    return header + apply_mask(payload, mask)


def _checked_header(
    caller: str, opcode: int, length: int, fin: bool, rsv: int, mask: bytes | None
) -> bytes:
    """:func:`serialize_header` for ``caller``, which its errors name."""
    first = (0x80 if fin else 0) | rsv | opcode
    if opcode < 0 or rsv < 0 or first > 0xFF:
        raise ValueError(f"{caller}() opcode and rsv must fit in a byte")
    if mask is None:
        return _header(first, 0, length)
    if len(mask) != 4:
        raise ValueError(f"{caller}() mask must be 4 bytes long, not {len(mask)}")
    return _header(first, 0x80, length) + mask


def _header(first: int, mask_bit: int, length: int) -> bytes:
    if length < 126:
        return struct.pack("!BB", first, mask_bit | length)
    if length < 65536:
        return struct.pack("!BBH", first, mask_bit | 126, length)
    return struct.pack("!BBQ", first, mask_bit | 127, length)


def serialize_header(
    opcode: int, length: int, fin: bool = True, rsv: int = 0, mask: bytes | None = None
) -> bytes:
    """The header of a frame of ``length`` bytes, with the masking key ``mask`` (a
    client's, §5.3) at its end when given, to write ahead of a payload written apart: a
    large one, rather than copied behind the header (§5.2)."""
    return _checked_header("serialize_header", opcode, length, fin, rsv, mask)


def _scan_messages(
    view: memoryview,
    mask_expected: bool,
    max_size: int,
    events: list[Any] | None,
    text_message: Callable[[str], Any] | None,
    binary_message: Callable[[bytes], Any] | None,
    deliver: Callable[[str | bytes], object] | None,
) -> int:
    """The loop of :func:`python_parse_messages` (``deliver`` None: append events) and of
    :func:`python_deliver_messages` (call ``deliver``, while it returns true)."""
    end = len(view)
    offset = 0
    mask_bit = 0x80 if mask_expected else 0
    while end - offset >= 2:
        first, second = view[offset], view[offset + 1]
        if (first != 0x81 and first != 0x82) or second & 0x80 != mask_bit:
            break
        length = second & 0x7F
        pos = offset + 2
        if length == 126:
            if end - pos < 2:
                break
            length = int.from_bytes(view[pos : pos + 2], "big")
            pos += 2
        elif length == 127:
            if end - pos < 8:
                break
            length = int.from_bytes(view[pos : pos + 8], "big")
            pos += 8
            if length >> 63:
                break
        if 0 <= max_size < length:
            break
        if mask_expected:
            if end - pos < 4:
                break
            mask = bytes(view[pos : pos + 4])
            pos += 4
        if end - pos < length:
            break
        raw = view[pos : pos + length]
        payload = apply_mask(raw, mask) if mask_expected else bytes(raw)
        message: str | bytes = payload
        if first == 0x81:
            try:
                message = payload.decode()
            except UnicodeDecodeError:
                break
        offset = pos + length
        if deliver is not None:
            if not deliver(message):
                break
        elif first == 0x81:
            events.append(text_message(message))  # type: ignore[union-attr,misc,arg-type]
        else:
            events.append(binary_message(message))  # type: ignore[union-attr,misc,arg-type]
    return offset


def python_parse_messages(
    data: bytes | bytearray | memoryview,
    events: list[_E],
    mask_expected: bool,
    max_size: int,
    text_message: Callable[[str], _E],
    binary_message: Callable[[bytes], _E],
) -> int:
    """Parse the whole unfragmented messages at the start of ``data``: the receive fast path.

    It takes frames with FIN set, RSV bits 0, opcode text or binary, masked if and only if
    ``mask_expected``, a payload of ``max_size`` bytes at most (-1: no limit), entirely in
    ``data``, and for text valid UTF-8 (§5.2, §5.6). Each is unmasked and appended to
    ``events`` as ``text_message(str)`` or ``binary_message(bytes)``. It stops at the first
    frame that is anything else and returns the number of bytes consumed: the general
    parser takes over there, with every rule checked and every error reported, so this
    path never decides that input is invalid.
    """
    return _scan_messages(
        byte_view(data), mask_expected, max_size, events, text_message, binary_message, None
    )


def python_deliver_messages(
    data: bytes | bytearray | memoryview,
    size: int,
    deliver: Callable[[str | bytes], object],
    mask_expected: bool,
    max_size: int,
) -> int:
    """Parse the whole unfragmented messages at the start of ``data[:size]`` as
    :func:`python_parse_messages` does, and call ``deliver(message)`` for each -- ``str``
    for text, ``bytes`` for binary -- while it returns true. ``size`` is at most
    ``len(data)``, as a :class:`~asyncio.BufferedProtocol`'s ``buffer_updated`` gives it:
    no slice of the buffer is made.

    Return the number of bytes consumed: up to the end of the message after which
    ``deliver`` declined the rest, or of the last message before a frame that is anything
    else. An exception raised by ``deliver`` propagates.
    """
    if size < 0:
        raise ValueError("deliver_messages() size must not be negative")
    return _scan_messages(
        byte_view(data)[:size], mask_expected, max_size, None, None, None, deliver
    )


# As the C version gives it: an int, not the enum member.
_NO_STATUS_RCVD = int(CloseCode.NO_STATUS_RCVD)


def python_parse_close(
    data: bytes | bytearray | memoryview, mask_expected: bool
) -> tuple[int, str, bytes] | None:
    """The close frame at the start of ``data``, if it is a whole valid one: the receive
    fast path of the peer's close frame.

    It takes a frame with FIN set, RSV bits 0 (no extension defines them on a control
    frame), opcode close, masked if and only if ``mask_expected`` (§5.1), a payload of 0
    or 2 to 125 bytes (§5.5, §5.5.1) entirely in ``data``, whose code may be sent in a
    close frame (§7.4) and whose reason is valid UTF-8. It returns ``(code, reason,
    payload)``, the payload unmasked, code 1005 for an empty payload (§7.1.5), as
    :meth:`Close.parse` reads it. Anything else gives ``None``: the general parser takes
    it, with every rule checked and every error reported. What follows the frame is
    ignored, as the peer may send nothing after it (§5.5.1).
    """
    view = byte_view(data)
    if len(view) < 2 or view[0] != 0x88:
        return None
    second = view[1]
    length = second & 0x7F
    if (second & 0x80 != 0) is not mask_expected or length > MAX_CONTROL_PAYLOAD or length == 1:
        return None
    start = 6 if mask_expected else 2
    if len(view) - start < length:
        return None
    raw = view[start : start + length]
    payload = apply_mask(raw, bytes(view[2:6])) if mask_expected else bytes(raw)
    if not payload:
        return _NO_STATUS_RCVD, "", payload
    code = payload[0] << 8 | payload[1]
    if not is_valid_close_code(code):
        return None
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        return None
    return code, reason, payload


# What the C versions save, in instructions on a server echoing messages (python -m
# benchmarks.instructions --pure NAME): parse_messages 8,700 per 16 B binary message,
# 12,000 per 1 KiB, 12,700 per 64 KiB, 13,300 per 1 KiB text message; serialize_frame
# 3,000 per 16 B message, 3,600 per 64 KiB, 3,800 per handshake (its close frame);
# parse_close 8,900 per handshake.
_speedups = speedups()
#: Whether :func:`serialize_frame`, :func:`parse_messages`, :func:`parse_close` and
#: :func:`deliver_messages` are the C implementations.
SPEEDUPS = _speedups is not None
serialize_frame = python_serialize_frame
parse_messages = python_parse_messages
parse_close = python_parse_close
deliver_messages = python_deliver_messages
# The type checker knows the Python functions only; _speedups.pyi declares the same API.
if not TYPE_CHECKING and _speedups is not None:
    serialize_frame = _speedups.serialize_frame
    parse_messages = _speedups.parse_messages
    parse_close = _speedups.parse_close
    deliver_messages = _speedups.deliver_messages
