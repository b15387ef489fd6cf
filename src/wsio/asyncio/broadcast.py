"""Broadcast: one message to many connections, built once, never waiting for any of them.

:func:`broadcast` writes to each open connection's transport at once and returns. A
connection that doesn't read what it is sent would otherwise grow its write buffer with
every broadcast; instead, each connection holds at most its limit plus one message, and a
*slow consumer* above its limit gets the policy chosen for it: the message is skipped for
it (counted), or the connection is closed with 1013 (try again later), so that its client
reconnects and catches up from the application's state.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..protocol.connection import PreparedMessage, State
from ..protocol.frames import CloseCode
from ..shared.broadcast import (
    BroadcastResult,
    check_broadcast_policy,
    prepare,
    slow_consumer_verdict,
)
from ..shared.messages import DataLike
from .connection import Connection

__all__ = [
    "BroadcastResult",
    "broadcast",
    "broadcast_prepared",
    "check_broadcast_policy",
    "prepare",
]


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
        verdict = slow_consumer_verdict(
            transport.get_write_buffer_size() + protocol.deferred_size,
            connection.broadcast_policy,
            limit,
            slow_consumer,
        )
        if verdict == "skip":
            result.skipped += 1
            continue
        if verdict == "close":
            connection._start_closing(CloseCode.TRY_AGAIN_LATER, "slow consumer")
            result.closed += 1
            continue
        protocol.send_prepared(prepared)
        connection._flush()
        result.delivered += 1
    result.encodings = prepared.encodings - encodings_before
    return result
