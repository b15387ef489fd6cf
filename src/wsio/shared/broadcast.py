"""Broadcast: one message to many connections, built once, never waiting for any of them,
for both I/O layers (:func:`wsio.broadcast` and :func:`wsio.sync.broadcast` are
:func:`broadcast`).

A connection that doesn't read what it is sent would otherwise grow its backlog with every
broadcast; instead, each connection holds at most its limit plus one message, and a *slow
consumer* above its limit gets the policy chosen for it: the message is skipped for it
(counted), or the connection is closed with 1013 (try again later), so that its client
reconnects and catches up from the application's state. :func:`slow_consumer_verdict`
decides; each I/O layer's connection measures its unsent bytes and hands the message over
its own way (``_offer``): the asyncio layer to the transport's buffer, the threads layer
without waiting, to a writer thread if the kernel has no room
(:mod:`wsio.sync.broadcasting`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Literal
from typing import Protocol as TypingProtocol

from ..exceptions import InvalidArgument
from ..protocol.arguments import check_count
from ..protocol.connection import PreparedMessage
from ..protocol.frames import encode_text
from .messages import BYTES_LIKE, DataLike

__all__ = [
    "BroadcastResult",
    "Outcome",
    "Recipient",
    "broadcast",
    "broadcast_prepared",
    "check_broadcast_policy",
    "prepare",
    "slow_consumer_verdict",
]

#: What a broadcast did with one connection: ``None`` when it wasn't open.
Outcome = Literal["delivered", "skip", "close"] | None

_SLOW_CONSUMER_POLICIES = ("skip", "close")


class Recipient(TypingProtocol):
    """What a broadcast sends to: a connection of either I/O layer."""

    def _offer(
        self, prepared: PreparedMessage, limit: int | None, slow_consumer: str | None
    ) -> Outcome:
        """Hand a broadcast message over without waiting, unless this connection is a
        slow consumer (:func:`slow_consumer_verdict`), and say what was done."""
        ...


@dataclasses.dataclass
class BroadcastResult:
    """What a broadcast did with each open connection it was given.

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
    """Refuse a limit that isn't a count of bytes and an unknown slow-consumer policy.

    :raises TypeError: ``limit`` isn't an ``int`` or ``None``.
    :raises InvalidArgument: a negative ``limit``, an unknown ``slow_consumer``.
    """
    check_count("broadcast_limit", limit, 0, "never slow")
    if slow_consumer is not None and slow_consumer not in _SLOW_CONSUMER_POLICIES:
        raise InvalidArgument(f"slow_consumer must be 'skip' or 'close', not {slow_consumer!r}")


def slow_consumer_verdict(
    unsent: int,
    own_policy: tuple[int | None, str],
    limit: int | None,
    slow_consumer: str | None,
) -> Literal["skip", "close"] | None:
    """What a broadcast does with a connection holding ``unsent`` bytes: ``None`` sends
    it the message; ``"skip"`` or ``"close"`` when it is a slow consumer.

    ``limit`` and ``slow_consumer`` are the broadcast's; ``None`` takes the connection's
    own (``own_policy``: its server's ``broadcast_limit`` and ``slow_consumer``). A
    ``None`` limit means "never slow".
    """
    bound = own_policy[0] if limit is None else limit
    if bound is None or unsent <= bound:
        return None
    policy = own_policy[1] if slow_consumer is None else slow_consumer
    return "skip" if policy == "skip" else "close"


def prepare(message: DataLike, compress: bool | None = None) -> PreparedMessage:
    """``message`` as the core sends it to many connections: ``str`` as text, bytes-like
    as binary.

    :raises TypeError: ``message`` is neither str nor bytes-like.
    :raises InvalidArgument: text that isn't valid Unicode.
    """
    if isinstance(message, str):
        return PreparedMessage(encode_text(message, "message"), text=True, compress=compress)
    if isinstance(message, BYTES_LIKE):
        return PreparedMessage(bytes(message), text=False, compress=compress)
    raise TypeError(f"message has an unsupported type: {type(message).__name__}")


def broadcast(
    connections: Iterable[Recipient],
    message: DataLike,
    *,
    compress: bool | None = None,
    limit: int | None = None,
    slow_consumer: str | None = None,
) -> BroadcastResult:
    """Send ``message`` to every open connection of ``connections``, without waiting for
    any of them: a peer that doesn't read never holds up the caller or the others.

    ``str`` goes as text, bytes-like as binary. The frame is built once per distinct wire
    encoding (see :attr:`BroadcastResult.encodings`); with permessage-deflate, servers
    that negotiate ``server_no_context_takeover`` (an option of ``serve``) share one
    compressed frame between all their connections.

    A connection whose unsent bytes already exceed ``limit`` is a slow consumer:
    ``slow_consumer="skip"`` leaves it out of this message, ``"close"`` starts its closing
    handshake with 1013 (try again later), which ``close_timeout`` bounds. ``None`` takes
    the connection's server's ``broadcast_limit`` and ``slow_consumer`` (for a client's
    connection, the defaults: 256 KiB, ``"skip"``). A connection thus holds at most its
    limit plus one message, however many broadcasts it misses.

    Connections of either I/O layer may be given, even together.

    :raises TypeError: ``message`` is neither str nor bytes-like.
    :raises InvalidArgument: text that isn't valid Unicode, a negative ``limit`` or an
        unknown ``slow_consumer``.
    """
    check_broadcast_policy(limit, slow_consumer)
    return broadcast_prepared(connections, prepare(message, compress), limit, slow_consumer)


def broadcast_prepared(
    connections: Iterable[Recipient],
    prepared: PreparedMessage,
    limit: int | None,
    slow_consumer: str | None,
) -> BroadcastResult:
    """:func:`broadcast` of a message already prepared, with arguments already checked."""
    result = BroadcastResult()
    # The message may have been sent to other connections before (a hub's, in memory).
    encodings_before = prepared.encodings
    for connection in connections:
        outcome = connection._offer(prepared, limit, slow_consumer)
        if outcome == "delivered":
            result.delivered += 1
        elif outcome == "skip":
            result.skipped += 1
        elif outcome == "close":
            result.closed += 1
    result.encodings = prepared.encodings - encodings_before
    return result
