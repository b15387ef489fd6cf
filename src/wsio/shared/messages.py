"""The application's messages as the core's commands, for both I/O layers."""

from __future__ import annotations

import os
from collections.abc import Container
from typing import TypeAlias

from ..protocol.arguments import check_count
from ..protocol.connection import Protocol, State
from ..protocol.frames import encode_text

__all__ = [
    "BYTES_LIKE",
    "WHOLE_MESSAGE",
    "Data",
    "DataLike",
    "check_limits",
    "control_payload",
    "fragment_bytes",
    "ping_payload",
    "queue_message",
]

#: A received message: ``str`` for text, ``bytes`` for binary.
Data: TypeAlias = str | bytes
#: What may be sent: ``str`` as text, any bytes-like object as binary.
DataLike: TypeAlias = str | bytes | bytearray | memoryview

# A tuple, not a union: isinstance() is faster with it, and this runs for every message.
BYTES_LIKE = (bytes, bytearray, memoryview)
#: What is sent as one message rather than as fragments: text or bytes-like.
WHOLE_MESSAGE = (str, *BYTES_LIKE)
#: What is sent as one message rather than as fragments: text or bytes-like.
WHOLE_MESSAGE = (str, *BYTES_LIKE)


def queue_message(protocol: Protocol, message: object, compress: bool | None) -> bool:
    """Queue a whole message in the core: ``str`` as text, bytes-like as binary. Return
    ``False``, queueing nothing, for any other type (the caller may take it as fragments).

    :raises ConnectionClosed: the connection is closing or closed.
    :raises InvalidArgument: text with a lone surrogate, which has no UTF-8 encoding.
    """
    if isinstance(message, str):
        if protocol.state is not State.OPEN:
            raise protocol.close_exc
        protocol.send_text(encode_text(message, "message"), True, compress)
    elif isinstance(message, BYTES_LIKE):
        if protocol.state is not State.OPEN:
            raise protocol.close_exc
        # bytes are immutable: only other buffers need a copy, taken now.
        protocol.send_binary(message if type(message) is bytes else bytes(message), True, compress)
    else:
        return False
    return True


def fragment_bytes(fragment: DataLike, text: bool) -> bytes:
    """The payload of one fragment of a fragmented message (RFC 6455 §5.4), whose first
    fragment was text (``str``) or binary: every fragment must be of that type.

    :raises TypeError: a fragment of another type.
    """
    if isinstance(fragment, str):
        if not text:
            raise TypeError("all fragments of a message must be of the same type")
        return encode_text(fragment, "fragment")
    if isinstance(fragment, BYTES_LIKE):
        if text:
            raise TypeError("all fragments of a message must be of the same type")
        return bytes(fragment)
    raise TypeError(f"fragment has an unsupported type: {type(fragment).__name__}")


def queue_fragment(
    protocol: Protocol, data: bytes, *, first: bool, text: bool, fin: bool, compress: bool | None
) -> None:
    """Queue one fragment of a fragmented message: the first as text or binary, the others
    as continuations (RFC 6455 §5.4).

    :raises ConnectionClosed: the connection is closing or closed.
    """
    if protocol.state is not State.OPEN:
        raise protocol.close_exc
    if not first:
        protocol.send_continuation(data, fin)
    elif text:
        protocol.send_text(data, fin, compress)
    else:
        protocol.send_binary(data, fin, compress)


def abandon_fragmented(protocol: Protocol) -> None:
    """A fragmented message can't be completed (its iterable failed half-way): the peer
    would wait for the rest forever, so fail the connection with 1011 (RFC 6455 §7.1.7)."""
    if protocol.state is State.OPEN:
        protocol.fail(1011, "error in fragmented message")


def ping_payload(data: DataLike | None, pending: Container[bytes]) -> bytes:
    """The payload of a ping: ``data``, or 4 random bytes that no ping in ``pending``
    carries, so that its pong can be told apart (RFC 6455 §5.5.3)."""
    if data is not None:
        return control_payload(data, "ping payload")
    payload = os.urandom(4)
    while payload in pending:  # pragma: no cover - 1 in 2**32
        payload = os.urandom(4)
    return payload


def control_payload(data: DataLike, what: str) -> bytes:
    """The payload of a ping or pong given as text or bytes; the core checks its size."""
    return encode_text(data, what) if isinstance(data, str) else bytes(data)


def check_limits(max_queue: object, write_limit: object = 0) -> None:
    """Refuse a queue that can't hold one message (reading would stay paused for good)
    and a negative write limit (no write could ever be buffered).

    :raises TypeError: either limit isn't an ``int``.
    :raises InvalidArgument: either limit is out of range.
    """
    check_count("max_queue", max_queue, 1)
    check_count("write_limit", write_limit, 0)
