"""Broadcast, for both I/O layers: the message built once for many connections, and the
policy for slow consumers.

A connection whose unsent bytes exceed its limit is a *slow consumer*: rather than let
its backlog grow with every broadcast, a broadcast skips the message for it (counted),
or closes it with 1013 (try again later), so that its client reconnects and catches up
from the application's state. :func:`slow_consumer_verdict` decides; each I/O layer
measures the unsent bytes and acts on the verdict in its own way of waiting.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from ..exceptions import InvalidArgument
from ..protocol.connection import PreparedMessage
from ..protocol.frames import encode_text
from .messages import DataLike

__all__ = ["BroadcastResult", "check_broadcast_policy", "prepare", "slow_consumer_verdict"]

_SLOW_CONSUMER_POLICIES = ("skip", "close")


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
    """Refuse a negative limit and an unknown slow-consumer policy."""
    if limit is not None and limit < 0:
        raise InvalidArgument(f"broadcast_limit must be 0 or more, not {limit}")
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
    if isinstance(message, bytes | bytearray | memoryview):
        return PreparedMessage(bytes(message), text=False, compress=compress)
    raise TypeError(f"message has an unsupported type: {type(message).__name__}")
