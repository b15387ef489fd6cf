"""Conformance scenarios modelled on the intent of the Autobahn fuzzing cases 1 to 10.

Each :class:`Case` is plain data: the frames a raw peer sends to an echoing wsio endpoint
(server or client), the events it must get back (echoed messages, pongs) and how the
connection must end. The same data drives both directions; the raw peer masks its frames
when it plays the client and leaves them unmasked when it plays the server.

Endings (``Case.end``):

- ``"echo"``: once the expected events arrived, the raw peer starts the closing handshake
  with 1000; the wsio endpoint must answer with a close whose code is in ``codes`` and send
  nothing else.
- ``"fail"``: the wsio endpoint must fail the connection: after exactly the expected events,
  it sends a close frame whose code is in ``codes`` (1002, 1007...).
- ``"reply"``: the steps already contain the raw peer's close frame; the wsio endpoint must
  answer with a close whose code is in ``codes`` (``None`` = a close without status code)
  after exactly the expected events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rawpeer import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, close_payload

KiB = 1 << 10
MiB = 1 << 20

# ---------------------------------------------------------------------------------------------
# Scenario vocabulary
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class F:
    """Send one frame (``rsv`` is a 3-bit value: 4 = RSV1, 2 = RSV2, 1 = RSV3).

    ``chop``: write the frame's bytes in pieces of that many bytes. ``sync``: pause briefly
    afterwards so that the frame travels on its own. ``frag``: instead of one frame, send
    the payload as a fragmented message of ``frag``-byte frames (``opcode`` then
    continuations).
    """

    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0
    chop: int | None = None
    sync: bool = False
    frag: int | None = None

    def __repr__(self) -> str:
        shown = self.payload if len(self.payload) <= 32 else f"<{len(self.payload)} bytes>"
        extra = "".join(
            f", {name}={value}"
            for name, value in (
                ("fin", self.fin),
                ("rsv", self.rsv),
                ("chop", self.chop),
                ("frag", self.frag),
            )
            if value not in (None, True, 0) or (name == "fin" and not value)
        )
        return f"F(op={self.opcode}, {shown!r}{extra})"


@dataclass(frozen=True)
class Wait:
    """Pause for ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class Expect:
    """Midway check: these events must arrive within ``timeout`` seconds, before going on."""

    events: tuple[Event, ...]
    timeout: float = 1.0


Step = F | Wait | Expect
Event = tuple[str, bytes]
"""("text", payload) / ("binary", payload) / ("pong", payload) / ("ping", payload)."""

End = Literal["echo", "fail", "reply"]


@dataclass(frozen=True)
class Case:
    id: str
    steps: tuple[Step, ...]
    expect: tuple[Event, ...] = ()
    end: End = "echo"
    codes: tuple[int | None, ...] = (1000,)
    timeout: float = 5.0
    """Seconds allowed for the expected events (large messages need more)."""
    note: str = field(default="", compare=False)


def text(payload: bytes | str) -> Event:
    return ("text", payload.encode() if isinstance(payload, str) else payload)


def binary(payload: bytes) -> Event:
    return ("binary", payload)


def pong(payload: bytes | str = b"") -> Event:
    return ("pong", payload.encode() if isinstance(payload, str) else payload)


def repeat(pattern: bytes, length: int) -> bytes:
    """``pattern`` repeated and cut to ``length`` bytes (how Autobahn fills big payloads)."""
    return (pattern * (length // len(pattern) + 1))[:length]


def close(code: int | None, reason: bytes | str = b"") -> F:
    return F(OP_CLOSE, b"" if code is None else close_payload(code, reason))


HELLO = b"Hello, world!"
KOSME = bytes.fromhex("cebae1bdb9cf83cebcceb5")  # "κόσμε"
MIXED = "Hello-µ@ßöäüàá-UTF-8!!".encode()

# ---------------------------------------------------------------------------------------------
# 1 Framing
# ---------------------------------------------------------------------------------------------

_SIZES = (0, 125, 126, 127, 128, 65535, 65536)

FRAMING: list[Case] = []
for _i, _n in enumerate(_SIZES, 1):
    FRAMING.append(Case(f"1.1.{_i}", (F(OP_TEXT, b"*" * _n),), (text(b"*" * _n),)))
FRAMING.append(Case("1.1.8", (F(OP_TEXT, b"*" * 65536, chop=997),), (text(b"*" * 65536),)))
for _i, _n in enumerate(_SIZES, 1):
    FRAMING.append(Case(f"1.2.{_i}", (F(OP_BINARY, b"\xfe" * _n),), (binary(b"\xfe" * _n),)))
FRAMING.append(
    Case("1.2.8", (F(OP_BINARY, b"\xfe" * 65536, chop=997),), (binary(b"\xfe" * 65536),))
)

# ---------------------------------------------------------------------------------------------
# 2 Pings and pongs
# ---------------------------------------------------------------------------------------------

_BIN8 = bytes.fromhex("00fffefdfcfb00ff")
_TEN = tuple(f"payload-{i}".encode() for i in range(10))

PINGS: list[Case] = [
    Case("2.1", (F(OP_PING),), (pong(),)),
    Case("2.2", (F(OP_PING, HELLO),), (pong(HELLO),)),
    Case("2.3", (F(OP_PING, _BIN8),), (pong(_BIN8),)),
    Case("2.4", (F(OP_PING, b"\xfe" * 125),), (pong(b"\xfe" * 125),)),
    Case("2.5", (F(OP_PING, b"\xfe" * 126),), end="fail", codes=(1002,)),
    Case("2.6", (F(OP_PING, b"\xfe" * 125, chop=1),), (pong(b"\xfe" * 125),)),
    Case("2.7", (F(OP_PONG), close(1000)), end="reply"),
    Case("2.8", (F(OP_PONG, b"unsolicited pong payload"), close(1000)), end="reply"),
    Case(
        "2.9",
        (F(OP_PONG, b"unsolicited pong payload"), F(OP_PING, b"ping payload")),
        (pong(b"ping payload"),),
    ),
    Case("2.10", tuple(F(OP_PING, p) for p in _TEN), tuple(pong(p) for p in _TEN)),
    Case("2.11", tuple(F(OP_PING, p, chop=1) for p in _TEN), tuple(pong(p) for p in _TEN)),
]

# ---------------------------------------------------------------------------------------------
# 3 Reserved bits
# ---------------------------------------------------------------------------------------------

RESERVED_BITS: list[Case] = [
    Case("3.1", (F(OP_TEXT, HELLO, rsv=1),), end="fail", codes=(1002,)),
    Case(
        "3.2",
        (F(OP_TEXT, HELLO), F(OP_TEXT, HELLO, rsv=2), F(OP_PING)),
        (text(HELLO),),
        end="fail",
        codes=(1002,),
    ),
    Case(
        "3.3",
        (F(OP_TEXT, HELLO, sync=True), F(OP_TEXT, HELLO, rsv=3, sync=True), F(OP_PING, sync=True)),
        (text(HELLO),),
        end="fail",
        codes=(1002,),
    ),
    Case(
        "3.4",
        (F(OP_TEXT, HELLO, chop=1), F(OP_TEXT, HELLO, rsv=4, chop=1), F(OP_PING, chop=1)),
        (text(HELLO),),
        end="fail",
        codes=(1002,),
    ),
    Case("3.5", (F(OP_BINARY, _BIN8, rsv=5),), end="fail", codes=(1002,)),
    Case("3.6", (F(OP_PING, HELLO, rsv=6),), end="fail", codes=(1002,)),
    Case("3.6b", (F(OP_BINARY, HELLO, rsv=6),), end="fail", codes=(1002,)),
    Case("3.7", (F(OP_CLOSE, rsv=7),), end="fail", codes=(1002,)),
]

# ---------------------------------------------------------------------------------------------
# 4 Opcodes
# ---------------------------------------------------------------------------------------------

OPCODES: list[Case] = []
for _base, _ops in (("4.1", (3, 4, 5, 6, 7)), ("4.2", (11, 12, 13, 14, 15))):
    _a, _b, _c, _d, _e = _ops
    OPCODES += [
        Case(f"{_base}.1", (F(_a),), end="fail", codes=(1002,)),
        Case(f"{_base}.2", (F(_b, b"reserved opcode payload"),), end="fail", codes=(1002,)),
        Case(
            f"{_base}.3",
            (F(OP_TEXT, HELLO), F(_c), F(OP_PING)),
            (text(HELLO),),
            end="fail",
            codes=(1002,),
        ),
        Case(
            f"{_base}.4",
            (F(OP_TEXT, HELLO), F(_d, HELLO), F(OP_PING)),
            (text(HELLO),),
            end="fail",
            codes=(1002,),
        ),
        Case(
            f"{_base}.5",
            (F(OP_TEXT, HELLO, chop=1), F(_e, HELLO, chop=1), F(OP_PING, chop=1)),
            (text(HELLO),),
            end="fail",
            codes=(1002,),
        ),
    ]

# ---------------------------------------------------------------------------------------------
# 5 Fragmentation
# ---------------------------------------------------------------------------------------------


def _frag(*frames: tuple[int, bool, bytes], chop: int | None = None, sync: bool = False):
    return tuple(F(op, p, fin=fin, chop=chop, sync=sync) for op, fin, p in frames)


_F1, _F2, _F3, _F4, _F5 = (f"fragment{i}".encode() for i in range(1, 6))
_TWO = ((OP_TEXT, False, _F1), (OP_CONT, True, _F2))
_WITH_PING = ((OP_TEXT, False, _F1), (OP_PING, True, b"ping payload"), (OP_CONT, True, _F2))
_STRAY_FIN = ((OP_CONT, True, b"non-continuation payload"), (OP_TEXT, True, HELLO))
_STRAY_NOFIN = ((OP_CONT, False, b"non-continuation payload"), (OP_TEXT, True, HELLO))


def _five_with_pings(sync: bool) -> tuple[Step, ...]:
    return (
        F(OP_TEXT, _F1, fin=False, sync=sync),
        F(OP_CONT, _F2, fin=False, sync=sync),
        F(OP_PING, b"pongme 1!", sync=sync),
        # the first ping must be answered while the message is still incomplete
        Expect((pong(b"pongme 1!"),), timeout=1.0),
        F(OP_CONT, _F3, fin=False, sync=sync),
        F(OP_CONT, _F4, fin=False, sync=sync),
        F(OP_PING, b"pongme 2!", sync=sync),
        F(OP_CONT, _F5, fin=True, sync=sync),
    )


FRAGMENTATION: list[Case] = [
    Case("5.1", _frag((OP_PING, False, _F1), (OP_CONT, True, _F2)), end="fail", codes=(1002,)),
    Case("5.2", _frag((OP_PONG, False, _F1), (OP_CONT, True, _F2)), end="fail", codes=(1002,)),
    Case("5.3", _frag(*_TWO), (text(_F1 + _F2),)),
    Case("5.4", _frag(*_TWO, sync=True), (text(_F1 + _F2),)),
    Case("5.5", _frag(*_TWO, chop=1), (text(_F1 + _F2),)),
    Case("5.6", _frag(*_WITH_PING), (pong(b"ping payload"), text(_F1 + _F2))),
    Case("5.7", _frag(*_WITH_PING, sync=True), (pong(b"ping payload"), text(_F1 + _F2))),
    Case("5.8", _frag(*_WITH_PING, chop=1), (pong(b"ping payload"), text(_F1 + _F2))),
    Case("5.9", _frag(*_STRAY_FIN), end="fail", codes=(1002,)),
    Case("5.10", _frag(*_STRAY_FIN, sync=True), end="fail", codes=(1002,)),
    Case("5.11", _frag(*_STRAY_FIN, chop=1), end="fail", codes=(1002,)),
    Case("5.12", _frag(*_STRAY_NOFIN), end="fail", codes=(1002,)),
    Case("5.13", _frag(*_STRAY_NOFIN, sync=True), end="fail", codes=(1002,)),
    Case("5.14", _frag(*_STRAY_NOFIN, chop=1), end="fail", codes=(1002,)),
    Case(
        "5.15",
        _frag(
            (OP_TEXT, False, _F1),
            (OP_CONT, True, _F2),
            (OP_CONT, False, _F3),
            (OP_TEXT, True, _F4),
        ),
        (text(_F1 + _F2),),
        end="fail",
        codes=(1002,),
    ),
    Case(
        "5.16",
        _frag(*(((OP_CONT, False, _F1), (OP_TEXT, False, _F2), (OP_CONT, True, _F3)) * 2)),
        end="fail",
        codes=(1002,),
    ),
    Case(
        "5.17",
        _frag(*(((OP_CONT, True, _F1), (OP_TEXT, False, _F2), (OP_CONT, True, _F3)) * 2)),
        end="fail",
        codes=(1002,),
    ),
    Case("5.18", _frag((OP_TEXT, False, _F1), (OP_TEXT, True, _F2)), end="fail", codes=(1002,)),
    Case(
        "5.19",
        _five_with_pings(sync=False),
        (pong(b"pongme 2!"), text(_F1 + _F2 + _F3 + _F4 + _F5)),
    ),
    Case(
        "5.20",
        _five_with_pings(sync=True),
        (pong(b"pongme 2!"), text(_F1 + _F2 + _F3 + _F4 + _F5)),
    ),
]

# ---------------------------------------------------------------------------------------------
# 6.1-6.3 UTF-8 handling (fragment boundaries)
# ---------------------------------------------------------------------------------------------


def _bytewise(payload: bytes) -> tuple[Step, ...]:
    """A text message sent as one frame per payload byte."""
    return tuple(
        F(OP_TEXT if i == 0 else OP_CONT, payload[i : i + 1], fin=i == len(payload) - 1)
        for i in range(len(payload))
    )


_INVALID_631 = KOSME + bytes.fromhex("eda080") + b"edited"

UTF8: list[Case] = [
    Case("6.1.1", (F(OP_TEXT),), (text(b""),)),
    Case(
        "6.1.2",
        _frag((OP_TEXT, False, b""), (OP_CONT, False, b""), (OP_CONT, True, b"")),
        (text(b""),),
    ),
    Case(
        "6.1.3",
        _frag(
            (OP_TEXT, False, b""), (OP_CONT, False, b"middle frame payload"), (OP_CONT, True, b"")
        ),
        (text(b"middle frame payload"),),
    ),
    Case("6.2.1", (F(OP_TEXT, MIXED),), (text(MIXED),)),
    Case(
        "6.2.2",
        _frag((OP_TEXT, False, "Hello-µ@ßöä".encode()), (OP_CONT, True, "üàá-UTF-8!!".encode())),
        (text(MIXED),),
    ),
    Case("6.2.3", _bytewise(MIXED), (text(MIXED),)),
    Case("6.2.4", _bytewise(KOSME), (text(KOSME),)),
    Case("6.3.1", (F(OP_TEXT, _INVALID_631),), end="fail", codes=(1007,)),
    Case("6.3.2", _bytewise(_INVALID_631), end="fail", codes=(1007,)),
]

# ---------------------------------------------------------------------------------------------
# 6.4 Fail fast on invalid UTF-8: (id, how, parts). The 2nd part makes the text invalid.
# ---------------------------------------------------------------------------------------------

_FF = KOSME + bytes.fromhex("f4908080") + b"edited"  # f4 90.. encodes a code point > U+10FFFF
FAIL_FAST: list[tuple[str, Literal["frames", "chops"], tuple[bytes, bytes, bytes]]] = [
    ("6.4.1", "frames", (KOSME, bytes.fromhex("f4908080"), b"edited")),
    ("6.4.2", "frames", (_FF[:12], _FF[12:13], _FF[13:])),
    ("6.4.3", "chops", (KOSME, bytes.fromhex("f4908080"), b"edited")),
    ("6.4.4", "chops", (_FF[:12], _FF[12:13], _FF[13:])),
]

# ---------------------------------------------------------------------------------------------
# 6.5-6.23 UTF-8 test sequences (after Markus Kuhn's decoder stress test), one frame each
# ---------------------------------------------------------------------------------------------

_H = bytes.fromhex
_TRUNCATED = [
    _H(x)
    for x in (
        "c0", "e080", "f08080", "f8808080", "fc80808080",
        "df", "efbf", "f7bfbf", "fbbfbfbf", "fdbfbfbfbf",
    )
]  # fmt: skip
_NONCHARS = [_H("efbfbe"), _H("efbfbf")]
for _lead in (0xF0, 0xF1, 0xF2, 0xF3, 0xF4):
    for _second in (0x8F, 0x9F, 0xAF, 0xBF):
        if _lead == 0xF4 and _second != 0x8F:
            continue  # above U+10FFFF
        for _last in (0xBE, 0xBF):
            _seq = bytes((_lead, _second, 0xBF, _last))
            if _seq not in (_H("f08fbfbe"), _H("f08fbfbf")):  # overlong
                _NONCHARS.append(_seq)

UTF8_SEQUENCE_GROUPS: list[list[bytes]] = [
    # 6.5 some valid text
    [b"hello$world", b"hello\xc2\xa2world", b"hello\xe2\x82\xacworld",
     b"hello\xf0\xa4\xad\xa2world", KOSME],
    # 6.6 every prefix of a valid multi-byte text
    [KOSME[:i] for i in range(1, len(KOSME) + 1)],
    # 6.7 first sequence of each length; 6.8 five and six byte forms
    [_H("00"), _H("c280"), _H("e0a080"), _H("f0908080")],
    [_H("f888808080"), _H("fc8480808080")],
    # 6.9 last sequence of each length; 6.10 beyond U+10FFFF
    [_H("7f"), _H("dfbf"), _H("efbfbf"), _H("f48fbfbf")],
    [_H("f7bfbfbf"), _H("fbbfbfbfbf"), _H("fdbfbfbfbfbf")],
    # 6.11 other boundaries
    [_H("ed9fbf"), _H("ee8080"), _H("efbfbd"), _H("f48fbfbf"), _H("f4908080")],
    # 6.12 unexpected continuation bytes
    [_H("80"), _H("bf"), _H("80bf"), _H("80bf80"), _H("80bf80bf"), _H("80bf80bf80"),
     _H("80bf80bf80bf"), bytes(range(0x80, 0xBF))],
    # 6.13 lonely start bytes, each followed by a space
    [b"".join(bytes((b, 0x20)) for b in range(lo, hi))
     for lo, hi in ((0xC0, 0xDF), (0xE0, 0xEF), (0xF0, 0xF7), (0xF8, 0xFB), (0xFC, 0xFD))],
    # 6.14 last continuation byte missing; 6.15 all of them concatenated
    _TRUNCATED,
    [b"".join(_TRUNCATED)],
    # 6.16 impossible bytes
    [_H("fe"), _H("ff"), _H("fefeffff")],
    # 6.17 overlong "/"; 6.18 maximal overlongs; 6.19 overlong NUL
    [_H("c0af"), _H("e080af"), _H("f08080af"), _H("f8808080af"), _H("fc80808080af")],
    [_H("c1bf"), _H("e09fbf"), _H("f08fbfbf"), _H("f887bfbfbf"), _H("fc83bfbfbfbf")],
    [_H("c080"), _H("e08080"), _H("f0808080"), _H("f880808080"), _H("fc8080808080")],
    # 6.20 lone surrogates; 6.21 paired surrogates
    [_H(x) for x in ("eda080", "edadbf", "edae80", "edafbf", "edb080", "edbe80", "edbfbf")],
    [_H(hi + lo)
     for hi in ("eda080", "edadbf", "edae80", "edafbf") for lo in ("edb080", "edbfbf")],
    # 6.22 noncharacters (valid UTF-8); 6.23 specials (valid)
    _NONCHARS,
    [_H(f"efbf{b:02x}") for b in range(0xB9, 0xC0)],
]  # fmt: skip


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


UTF8_SEQUENCES: list[Case] = []
for _group, _payloads in enumerate(UTF8_SEQUENCE_GROUPS, 5):
    for _j, _p in enumerate(_payloads, 1):
        if _is_utf8(_p):
            UTF8_SEQUENCES.append(Case(f"6.{_group}.{_j}", (F(OP_TEXT, _p),), (text(_p),)))
        else:
            UTF8_SEQUENCES.append(
                Case(f"6.{_group}.{_j}", (F(OP_TEXT, _p),), end="fail", codes=(1007,))
            )

# ---------------------------------------------------------------------------------------------
# 7 Close handling
# ---------------------------------------------------------------------------------------------

_INVALID_REASON = KOSME + _H("eda080") + b"edited"

CLOSING: list[Case] = [
    Case("7.1.1", (F(OP_TEXT, b"Hello World!"),), (text(b"Hello World!"),)),
    Case("7.1.2", (close(1000), F(OP_CLOSE)), end="reply"),
    Case("7.1.3", (close(1000), F(OP_PING)), end="reply"),
    Case("7.1.4", (close(1000), F(OP_TEXT, b"Hello World!")), end="reply"),
    Case(
        "7.1.5",
        (F(OP_TEXT, _F1, fin=False), close(1000), F(OP_CONT, _F2)),
        end="reply",
    ),
    Case("7.3.1", (close(None),), end="reply", codes=(None, 1000)),
    Case("7.3.2", (F(OP_CLOSE, b"a"),), end="reply", codes=(1002,)),
    Case("7.3.3", (close(1000),), end="reply"),
    Case("7.3.4", (close(1000, b"Hello World!"),), end="reply"),
    Case("7.3.5", (close(1000, b"*" * 123),), end="reply"),
    Case("7.3.6", (close(1000, b"*" * 124),), end="reply", codes=(1002,)),
    Case("7.5.1", (close(1000, _INVALID_REASON),), end="reply", codes=(1002, 1007)),
]
for _i, _code in enumerate(
    (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999), 1
):
    CLOSING.append(Case(f"7.7.{_i}", (close(_code),), end="reply", codes=(1000, _code)))
for _i, _code in enumerate((0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999), 1):
    CLOSING.append(Case(f"7.9.{_i}", (close(_code),), end="reply", codes=(1002,)))
# informational in Autobahn: 1000, the same code or 1002 are all accepted
CLOSING.append(Case("7.13.1", (close(5000),), end="reply", codes=(1000, 5000, 1002)))
CLOSING.append(Case("7.13.2", (close(65535),), end="reply", codes=(1000, 65535, 1002)))

# ---------------------------------------------------------------------------------------------
# 9 Limits and performance (sizes as in Autobahn)
# ---------------------------------------------------------------------------------------------

_TEXT_FILL = b"BAsd7&jh23"
_BINARY_FILL = _H("00fe23faf0")
_BIG = (64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, 8 * MiB, 16 * MiB)
_FRAGS = (64, 256, 1 * KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB)
_CHOPS = (64, 128, 256, 512, 1024, 2048)

LIMITS: list[Case] = []
for _i, _n in enumerate(_BIG, 1):
    _p = repeat(_TEXT_FILL, _n)
    LIMITS.append(Case(f"9.1.{_i}", (F(OP_TEXT, _p),), (text(_p),), timeout=30))
for _i, _n in enumerate(_BIG, 1):
    _p = repeat(_BINARY_FILL, _n)
    LIMITS.append(Case(f"9.2.{_i}", (F(OP_BINARY, _p),), (binary(_p),), timeout=30))
_FOUR = b"*" * (4 * MiB)
for _i, _n in enumerate(_FRAGS, 1):
    LIMITS.append(Case(f"9.3.{_i}", (F(OP_TEXT, _FOUR, frag=_n),), (text(_FOUR),), timeout=30))
for _i, _n in enumerate(_FRAGS, 1):
    LIMITS.append(Case(f"9.4.{_i}", (F(OP_BINARY, _FOUR, frag=_n),), (binary(_FOUR),), timeout=30))
_ONE_T = repeat(_TEXT_FILL, 1 * MiB)
_ONE_B = repeat(_BINARY_FILL, 1 * MiB)
for _i, _n in enumerate(_CHOPS, 1):
    LIMITS.append(Case(f"9.5.{_i}", (F(OP_TEXT, _ONE_T, chop=_n),), (text(_ONE_T),), timeout=30))
for _i, _n in enumerate(_CHOPS, 1):
    LIMITS.append(
        Case(f"9.6.{_i}", (F(OP_BINARY, _ONE_B, chop=_n),), (binary(_ONE_B),), timeout=30)
    )

# 9.7 (text) and 9.8 (binary): (id, opcode, size); 1000 sequential round trips each
ROUND_TRIPS: list[tuple[str, int, int]] = [
    (f"9.{7 + k}.{i}", op, size)
    for k, op in enumerate((OP_TEXT, OP_BINARY))
    for i, size in enumerate((0, 16, 64, 256, 1024, 4096), 1)
]
ROUND_TRIP_COUNT = 1000

# ---------------------------------------------------------------------------------------------
# 10 Auto-fragmentation: 64 KiB text in 1300-byte frames (1 text + 50 continuations)
# ---------------------------------------------------------------------------------------------

MISC: list[Case] = [
    Case("10.1.1", (F(OP_TEXT, b"*" * 65536, frag=1300),), (text(b"*" * 65536),), timeout=10),
]


def ids(cases: list[Case]) -> list[str]:
    return [c.id for c in cases]
