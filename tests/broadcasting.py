"""What the tests of broadcast share on either I/O layer: a run of broadcasts to a fast
connection and a slow consumer, added up and checked against the policy."""

from __future__ import annotations

import struct
from typing import Any

import wsio

#: The slow consumer's limit, and the size of each message broadcast.
LIMIT = 65536
CHUNK = 16384
#: Messages broadcast in a run: 3.2 MB, far more than the kernel buffers hold.
ROUNDS = 200


def numbered(index: int) -> bytes:
    """The ``index``-th message of a run."""
    return struct.pack("!I", index) + bytes(CHUNK - 4)


def number_of(message: Any) -> int:
    """The index of a message of a run."""
    assert isinstance(message, bytes)
    index: int = struct.unpack("!I", message[:4])[0]
    return index


class SlowConsumerRun:
    """The results of a run, added up, and the most bytes the slow consumer held."""

    def __init__(self) -> None:
        self.totals = wsio.BroadcastResult()
        self.highest = 0

    def add(self, result: wsio.BroadcastResult, unsent: int) -> None:
        self.totals.delivered += result.delivered
        self.totals.skipped += result.skipped
        self.totals.closed += result.closed
        self.highest = max(self.highest, unsent)

    def check(self, policy: str, slow_side: Any) -> None:
        """The slow consumer held at most its limit plus one message (and its header),
        and got the policy: skipped and open, or closed once."""
        totals = self.totals
        assert self.highest <= LIMIT + CHUNK + 14, self.highest
        if policy == "skip":
            assert totals.skipped > 0 and totals.closed == 0
            assert totals.delivered + totals.skipped == 2 * ROUNDS
            assert slow_side.state is wsio.State.OPEN
        else:
            assert totals.closed == 1 and totals.skipped == 0
            assert slow_side.state is not wsio.State.OPEN
            assert slow_side.close_code in (1013, 1006)
