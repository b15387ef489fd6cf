"""Broadcast over threads (:func:`wsio.sync.broadcast`, which is
:func:`wsio.shared.broadcast.broadcast`): how a threads connection takes a broadcast
message, never making the broadcasting thread wait.

How it writes. For each open connection, :func:`offer` queues the message in the
connection's core, under the connection's ``_mutex`` (never held during I/O), and then:

- When no other thread writes to the connection and its socket is plain TCP, it writes
  there and then, without waiting (``MSG_DONTWAIT``): what the kernel takes at once is
  sent, and what it has no room for is handed over, with the connection's write lock, to
  the connection's *writer*.
- When another thread writes to the connection (its ``send()``, the reader answering a
  ping, the writer), that thread writes what was queued before it lets go: every writer
  of a threads connection does.
- TLS writes each record whole, waiting for room if need be: a TLS connection's bytes go
  to its writer.

The writer is a thread of the connection's own, started when needed, that writes with
the connection's ordinary blocking writes: a peer that doesn't read stalls its own writer
and nothing else. It ends when the connection closes, or after a second with nothing to
write. A per-connection writer rather than one thread polling every socket: TLS can't
write part of a record without waiting, and the connection's writes stay the ones that
``send()`` uses, in the core's order.

Slow consumers. A connection's unsent bytes are those queued in its core and not yet
written, those its writer holds, and the messages waiting for a fragmented message to end
(the kernel's buffer isn't counted). Above its limit, :func:`~wsio.shared.broadcast.\
slow_consumer_verdict` -- the decision the asyncio layer takes too -- skips the message
for it, or closes it with 1013: the close frame goes after its backlog, and the
connection is aborted ``close_timeout`` later if it hasn't ended by then. An application
thread blocked in ``send()`` to a slow peer holds the bytes it took, which aren't counted:
such a connection holds at most about twice its limit plus what ``send()`` holds.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

from ..protocol.connection import PreparedMessage, State
from ..protocol.frames import CloseCode
from ..shared.broadcast import Outcome, slow_consumer_verdict

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["offer"]

#: Seconds a writer waits for more to write before its thread ends.
_WRITER_LINGER = 1.0


def offer(
    connection: Connection,
    prepared: PreparedMessage,
    limit: int | None,
    slow_consumer: str | None,
) -> Outcome:
    """What a threads connection does with a broadcast message
    (:meth:`~wsio.shared.connection.BaseConnection._offer`): queue it in the core and
    write it without waiting, unless the connection is a slow consumer."""
    outlet = _outlet(connection)
    with connection._mutex:
        protocol = connection.protocol
        if protocol.state is not State.OPEN:
            return None
        verdict = slow_consumer_verdict(
            protocol.size_to_send + protocol.deferred_size + outlet.in_flight,
            connection.broadcast_policy,
            limit,
            slow_consumer,
        )
        if verdict is None:
            protocol.send_prepared(prepared)
    if verdict == "skip":
        return verdict
    if verdict == "close":
        connection._start_closing(CloseCode.TRY_AGAIN_LATER, "slow consumer")
        _close_within_timeout(connection)
    outlet.deliver(connection)
    return verdict or "delivered"


class _Outlet:
    """How a connection's broadcast bytes get written: at once, or by its writer thread.

    ``active`` is true while a writer (a broadcasting thread writing at once, or the
    writer thread) takes care of the connection; ``wanted`` asks it for one more look at
    the core, for what another broadcast queued meanwhile.
    """

    def __init__(self) -> None:
        self.changed = threading.Condition(threading.Lock())
        self.active = False
        self.wanted = False
        #: Bytes the writer took from the core and hasn't written yet.
        self.in_flight = 0

    def deliver(self, connection: Connection) -> None:
        """Write what the core queued, without waiting; ``_mutex`` isn't held."""
        with self.changed:
            if self.active:
                self.wanted = True
                self.changed.notify()
                return
            self.active = True
        rest = self._write_at_once(connection)
        if rest is None:
            with self.changed:
                if not self.wanted:
                    self.active = False
                    return
        self._start_writer(connection, rest)

    def _write_at_once(self, connection: Connection) -> list[bytes | memoryview] | None:
        """Write what the kernel takes without waiting. ``None``: nothing is left for the
        writer. Else the writer has work: the bytes to write first, with ``_write_lock``
        held for it, or an empty list, when only the core holds bytes."""
        if not connection._write_lock.acquire(blocking=False):
            # The thread that writes writes this too, before it lets go.
            return None
        with connection._mutex:
            writes = connection._take_writes()
        rest = connection._write_nowait(writes)
        if rest:
            self.in_flight = sum(map(len, rest))
            return rest
        connection._write_lock.release()
        # Another thread may have queued something meanwhile and left it to us.
        return [] if connection.protocol.has_data_to_send else None

    def _start_writer(self, connection: Connection, rest: list[bytes | memoryview] | None) -> None:
        """Start the writer thread; ``active`` is set, and ``_write_lock`` is held for it
        when ``rest`` isn't empty."""
        thread = threading.Thread(
            target=self._run_writer,
            args=(connection, rest),
            name=f"wsio writer {connection.remote_address}",
            daemon=True,
        )
        thread.start()

    def _run_writer(self, connection: Connection, rest: list[bytes | memoryview] | None) -> None:
        """The writer thread: write ``rest`` then what the core queued, until nothing
        comes for a while or the connection closes."""
        if rest:
            # _write() doesn't raise: a socket error ends the connection.
            connection._write(rest)
            self.in_flight = 0
            connection._write_lock.release()
        while True:
            while connection.protocol.has_data_to_send:
                with connection._write_lock:
                    with connection._mutex:
                        writes = connection._take_writes()
                        self.in_flight = sum(map(len, writes))
                    connection._write(writes)
                    self.in_flight = 0
            with self.changed:
                if not self.wanted and connection.state is not State.CLOSED:
                    self.changed.wait(_WRITER_LINGER)
                if not self.wanted:
                    self.active = False
                    return
                self.wanted = False


# Each connection's outlet, for as long as the connection lives.
_outlets: weakref.WeakKeyDictionary[Connection, _Outlet] = weakref.WeakKeyDictionary()
_outlets_lock = threading.Lock()


def _outlet(connection: Connection) -> _Outlet:
    with _outlets_lock:
        outlet = _outlets.get(connection)
        if outlet is None:
            outlet = _outlets[connection] = _Outlet()
        return outlet


def _close_within_timeout(connection: Connection) -> None:
    """Abort ``connection`` if its closing handshake outlasts ``close_timeout``: its
    close frame waits behind a backlog that the peer may never read, and no thread of
    the application waits in ``close()`` to keep the time."""
    if connection.close_timeout is None:
        return
    timer = threading.Timer(connection.close_timeout, connection._close_timed_out)
    timer.daemon = True
    timer.start()
