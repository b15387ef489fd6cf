"""Broadcast: one message to many connections, built once, never waiting for any of them.

:func:`broadcast` writes to each open connection's transport at once and returns. A
connection that doesn't read what it is sent would otherwise grow its write buffer with
every broadcast; instead, each connection holds at most its limit plus one message, and a
*slow consumer* above its limit gets the policy chosen for it: the message is skipped for
it (counted), or the connection is closed with 1013 (try again later), so that its client
reconnects and catches up from the application's state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from ..exceptions import InvalidArgument
from ..protocol.connection import PreparedMessage, State
from ..protocol.frames import CloseCode, encode_text
from ..shared.messages import DataLike
from .connection import Connection

__all__ = [
    "BroadcastResult",
    "broadcast",
    "broadcast_prepared",
    "check_broadcast_policy",
    "prepare",
]

_SLOW_CONSUMER_POLICIES = ("skip", "close")


@dataclasses.dataclass
class BroadcastResult:
    """What :func:`broadcast` did with each open connection it was given.

    Connections that weren't open are in none of the counts.
    """

    #: Connections that got the message: it is written or buffered for writing, or, for
    #: a connection sending a fragmented message, queued after its last fragment.
    delivered: int = 0
    #: Slow consumers that didn't get it, under the ``"skip"`` policy.
    skipped: int = 0
    #: Slow consumers closed with 1013 instead, under the ``"close"`` policy.
    closed: int = 0
    #: Frames built for the message: one per distinct wire encoding, plus one per
    #: connection that can't share a frame (a client's, masked anew; a compressed message
    #: on a server side that keeps compression context between messages).
    encodings: int = 0


def check_broadcast_policy(limit: int | None, slow_consumer: str | None) -> None:
    """Refuse a negative limit and an unknown slow-consumer policy."""
    if limit is not None and limit < 0:
        raise InvalidArgument(f"broadcast_limit must be 0 or more, not {limit}")
    if slow_consumer is not None and slow_consumer not in _SLOW_CONSUMER_POLICIES:
        raise InvalidArgument(f"slow_consumer must be 'skip' or 'close', not {slow_consumer!r}")


def broadcast(
    connections: Iterable[Connection],
    message: DataLike,
    *,
    compress: bool | None = None,
    limit: int | None = None,
    slow_consumer: str | None = None,
) -> BroadcastResult:
    """Send ``message`` to every open connection of ``connections``, without waiting.

    ``str`` goes as text, bytes-like as binary. The frame is built once per distinct wire
    encoding (see :class:`BroadcastResult.encodings`); with permessage-deflate, servers
    that negotiate ``server_no_context_takeover`` (an option of :func:`~wsio.serve`) share
    one compressed frame between all their connections.

    A connection whose unsent bytes already exceed ``limit`` is a slow consumer:
    ``slow_consumer="skip"`` leaves it out of this message, ``"close"`` starts its closing
    handshake with 1013 (try again later), which ``close_timeout`` bounds. ``None`` takes
    the connection's server's ``broadcast_limit`` and ``slow_consumer`` (for a client's
    connection, the defaults: 256 KiB, ``"skip"``). A connection thus holds at most its
    limit plus one message, however many broadcasts it misses.

    :raises TypeError: ``message`` is neither str nor bytes-like.
    :raises InvalidArgument: text that isn't valid Unicode, a negative ``limit`` or an
        unknown ``slow_consumer``.
    """
    check_broadcast_policy(limit, slow_consumer)
    return broadcast_prepared(connections, prepare(message, compress), limit, slow_consumer)


def prepare(message: DataLike, compress: bool | None = None) -> PreparedMessage:
    """``message`` as the core sends it to many connections: ``str`` as text, bytes-like
    as binary.

    :raises TypeError: ``message`` is neither str nor bytes-like.
    :raises InvalidArgument: text that isn't valid Unicode.
    """
    if isinstance(message, str):
        return PreparedMessage(encode_text(message, "message"), text=True, compress=compress)
    if isinstance(message, bytes | bytearray | memoryview):
        return PreparedMessage(bytes(message), text=False, compress=compress)
    raise TypeError(f"message has an unsupported type: {type(message).__name__}")


def broadcast_prepared(
    connections: Iterable[Connection],
    prepared: PreparedMessage,
    limit: int | None,
    slow_consumer: str | None,
) -> BroadcastResult:
    """:func:`broadcast` of a message already prepared, with arguments already checked."""
    result = BroadcastResult()
    # The message may have been sent to other connections before (a hub's, in memory).
    encodings_before = prepared.encodings
    for connection in connections:
        protocol = connection.protocol
        transport = connection.transport
        if protocol.state is not State.OPEN or transport is None or transport.is_closing():
            continue
        own_limit, own_policy = connection.broadcast_policy
        bound = own_limit if limit is None else limit
        if (
            bound is not None
            and transport.get_write_buffer_size() + protocol.deferred_size > bound
        ):
            if (own_policy if slow_consumer is None else slow_consumer) == "skip":
                result.skipped += 1
            else:
                connection._start_closing(CloseCode.TRY_AGAIN_LATER, "slow consumer")
                result.closed += 1
            continue
        protocol.send_prepared(prepared)
        connection._flush()
        result.delivered += 1
    result.encodings = prepared.encodings - encodings_before
    return result
