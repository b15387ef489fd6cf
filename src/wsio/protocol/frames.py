"""Frames, opcodes and close payloads (RFC 6455 §5 and §7.4).

The parsing of incoming frames lives in :mod:`wsio.protocol.connection`, which streams
payloads as they arrive; this module holds the vocabulary, the rules on close payloads and
the serialization of outgoing frames.
"""

from __future__ import annotations

import dataclasses
import enum
import struct

from ..exceptions import InvalidArgument, ProtocolError
from .masking import apply_mask

__all__ = [
    "CONTROL_OPCODES",
    "DATA_OPCODES",
    "MAX_CLOSE_REASON",
    "MAX_CONTROL_PAYLOAD",
    "Close",
    "CloseCode",
    "Opcode",
    "serialize_frame",
]


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

        :raises InvalidArgument: the code may not be sent or the reason is too long.
        """
        if self.code == CloseCode.NO_STATUS_RCVD and not self.reason:
            return b""
        if not is_valid_close_code(self.code):
            raise InvalidArgument(
                f"close code {self.code} may not be sent: use 1000-1003, 1007-1014 or 3000-4999"
            )
        reason = self.reason.encode()
        if len(reason) > MAX_CLOSE_REASON:
            raise InvalidArgument(
                f"close reason is {len(reason)} bytes long; at most {MAX_CLOSE_REASON} fit"
            )
        return struct.pack("!H", self.code) + reason


def serialize_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
) -> bytes:
    """Serialize one frame with the shortest length encoding (RFC 6455 §5.2).

    ``rsv`` holds the reserved bits as in the first header byte (0x40 is RSV1), set only
    by extensions. ``mask`` is the 4-byte masking key, given for every frame a client
    sends and never for a server's (§5.1).
    """
    first = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if mask is not None else 0
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, mask_bit | length)
    elif length < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if mask is None:
        return header + payload
    return header + mask + apply_mask(payload, mask)
