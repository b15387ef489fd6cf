"""UTF-8 validation of text payloads and close reasons (RFC 6455 §5.6, §8.1).

Validation is incremental so that a text message made of many fragments, or a frame that
arrives in many TCP segments, fails as soon as an invalid byte arrives rather than when the
message is complete. CPython's UTF-8 decoder rejects overlong forms, surrogates and code
points above U+10FFFF within the sequence that breaks the rules: at its second byte, or for
a surrogate (``ED A0``–``ED BF``) at its third.

:class:`IncrementalValidator` is the C version from :mod:`wsio._speedups` when that
extension is built and the environment variable ``WSIO_NO_SPEEDUPS`` is unset or empty;
otherwise it is :class:`PythonIncrementalValidator`, the reference. :data:`SPEEDUPS` tells
which. They accept and reject the same input; the C one also rejects a surrogate at its
second byte.

:func:`convert` gives a message the type that the application asked for with
``recv(decode=...)``, whatever its opcode.
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING

from .._accelerator import speedups

__all__ = ["SPEEDUPS", "IncrementalValidator", "PythonIncrementalValidator", "convert"]

_Decoder = codecs.getincrementaldecoder("utf-8")


class PythonIncrementalValidator:
    """Checks that a byte stream, fed in pieces, is valid UTF-8."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = _Decoder("strict")

    def feed(self, data: bytes, final: bool = False) -> None:
        """Validate the next piece; raise :class:`UnicodeDecodeError` as soon as the bytes
        seen so far cannot start valid UTF-8. With ``final``, a sequence cut at the end is
        an error too."""
        self._decoder.decode(data, final)


def convert(message: str | bytes, decode: bool) -> str | bytes:
    """``message`` as ``str`` if ``decode`` is true, else as ``bytes``.

    Text messages arrive as ``str``, validated and decoded by the core: encoding one back
    to UTF-8 can't fail. Binary messages arrive as ``bytes``, which nothing promised to
    be UTF-8.

    :raises UnicodeDecodeError: ``decode`` is true and a binary message isn't valid
        UTF-8; the error tells where, and its ``object`` holds the whole message.
    """
    if decode:
        return message if isinstance(message, str) else message.decode()
    return message.encode() if isinstance(message, str) else message


# The C validator saves 472,000 instructions per 64 KiB text message that comes in two
# reads, on a server echoing messages (python -m benchmarks.instructions --text --size
# 65536 --reads 2 --pure Utf8Validator).
_speedups = speedups()
#: Whether :class:`IncrementalValidator` is the C implementation.
SPEEDUPS = _speedups is not None
IncrementalValidator = PythonIncrementalValidator
# The type checker knows the Python class only; _speedups.pyi declares the same API.
if not TYPE_CHECKING and _speedups is not None:
    IncrementalValidator = _speedups.Utf8Validator
