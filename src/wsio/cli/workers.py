"""``--workers N`` for ``wsio serve`` and ``wsio echo``: N processes serving one port.

The parent process serves nothing: it holds the address and keeps N worker processes
running. A worker is the ordinary single-process command, started afresh
(``python -m wsio serve ... --port P --as-worker I``) rather than forked, since a child
can't carry on with its parent's event loop; it listens with ``SO_REUSEPORT``, and the
kernel spreads incoming connections among the listening sockets that share the port.

- Address. Before starting anything the parent binds the address itself, with
  ``SO_REUSEPORT`` but without listening (so it gets no connections): an address that
  can't be used fails at once, as it would for one process; ``--port 0`` becomes one
  port, given to every worker; and the port stays held while a worker restarts.
- Start-up. A worker prints the single-process command's ``... listening on URL`` line
  once it listens. The parent prints that line once, when every worker has printed it, so
  that whoever reads it can connect at once.
- Stopping. SIGINT or SIGTERM to the parent sends SIGTERM to every worker, which closes
  its connections with 1001 and exits; one still running after :data:`STOP_TIMEOUT` is
  killed. Workers get a process group of their own so that Ctrl-C in a terminal reaches
  the parent only: a worker stopped by the terminal's SIGINT before the parent had seen
  its own would look like a crash, and be started again.
- Restarts. A worker that exits while the parent isn't stopping is started again, with
  its index, unless more than :data:`MAX_DEATHS` exits happened within
  :data:`DEATH_WINDOW` seconds: then every start is failing, and the parent stops the
  others and exits with status 1. It does so at once when a worker exits before it
  listened the first time: what stops one worker from starting (an unreachable Redis)
  stops the others too, and each said why already.
- Orphans. A worker's standard input is a pipe from the parent, which never writes to
  it: end of file means that the parent is gone, even killed by SIGKILL, and the worker
  stops rather than serve on unattended (see :func:`stop_with_parent`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from .. import defaults
from .common import UsageError, cannot_listen, error_line, stop_on_signals

__all__ = [
    "DEATH_WINDOW",
    "MAX_DEATHS",
    "MAX_WORKERS",
    "REUSE_PORT",
    "STOP_TIMEOUT",
    "run_workers",
    "stop_with_parent",
    "supervise",
]

#: The largest ``--workers``.
MAX_WORKERS = 256

#: Whether the kernel spreads connections among the sockets sharing a port. macOS and the
#: BSDs have ``SO_REUSEPORT`` too, but there it doesn't balance: macOS gives every
#: connection to one socket, FreeBSD balances with ``SO_REUSEPORT_LB`` only.
REUSE_PORT = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")

#: More worker exits than this within :data:`DEATH_WINDOW` seconds, and the parent gives up.
MAX_DEATHS = 5
DEATH_WINDOW = 10.0

#: Seconds the workers get to close their connections after SIGTERM, before SIGKILL:
#: a closing connection may wait ``close_timeout`` for its peer, and should be let finish.
STOP_TIMEOUT = (defaults.CLOSE_TIMEOUT or 0.0) + 5.0

# Seconds to wait for killed workers to be reaped.
_KILL_TIMEOUT = 5.0

Process = asyncio.subprocess.Process


async def run_workers(argv: Sequence[str], host: str, port: int, count: int) -> int:
    """Serve with ``count`` worker processes until SIGINT or SIGTERM; return the exit
    status: 0, or 1 when the address can't be used or the workers keep exiting.

    ``argv`` is the command's own arguments (``serve --port 0 --workers 4``): each worker
    runs them again, with ``--port`` set to the port bound and ``--as-worker`` to its
    index, so that it serves exactly as one process would.

    :raises UsageError: the system can't spread connections among processes.
    """
    if not REUSE_PORT:
        raise UsageError(
            f"--workers {count}: sharing a port among processes needs Linux (SO_REUSEPORT)"
        )
    stop = stop_on_signals()
    try:
        sockets = await _hold(host, port)
    except (OSError, ValueError) as exc:  # ValueError: a host the IDNA codec refuses
        return cannot_listen(host, port, exc)
    try:
        bound = str(sockets[0].getsockname()[1])
        # A lone "--" would make the options added after it positional arguments.
        arguments = [argument for argument in argv if argument != "--"]

        def command(index: int) -> list[str]:
            # argparse keeps the last --port given.
            return [
                *(sys.executable, "-m", "wsio", *arguments),
                *("--port", bound, "--as-worker", str(index)),
            ]

        return await supervise(command, count, stop)
    finally:
        for sock in sockets:
            sock.close()


async def _hold(host: str, port: int) -> list[socket.socket]:
    """Sockets bound, with ``SO_REUSEPORT`` and not listening, to every address of
    ``host`` on one port: ``port``, or the one the first address got for 0.

    They are made as asyncio makes a server's (``SO_REUSEADDR``, IPv6 sockets IPv6-only),
    so that what fails here would fail for a single process.

    :raises OSError: an address can't be bound, or something listens on it already.
    """
    loop = asyncio.get_running_loop()
    # asyncio reads "" as every interface, as getaddrinfo does None.
    infos = await loop.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            if sockets:  # the port that the first address got, for port 0
                port = sockets[0].getsockname()[1]
            sock = _socket(family, kind, proto, reuse_port=True)
            sockets.append(sock)
            _bind(sock, (address[0], port, *address[2:]))
            # SO_REUSEPORT lets a socket join others that listen on the port, when they
            # have it too and the same user: the workers would share the connections of
            # another server (another `wsio --workers`) in silence. A socket without it
            # binds only where nothing listens, as a single process's would.
            with _socket(family, kind, proto, reuse_port=False) as check:
                _bind(check, sock.getsockname())
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _socket(family: int, kind: int, proto: int, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    try:
        # As asyncio's create_server does, so that the port is free again as soon as
        # the previous server on it closed, connections in TIME_WAIT notwithstanding.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind(sock: socket.socket, address: Any) -> None:
    """Bind, failing with asyncio's message, which names the address."""
    try:
        sock.bind(address)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise OSError(
            exc.errno, f"error while attempting to bind on address {address!r}: {reason}"
        ) from None


async def supervise(
    command: Callable[[int], Sequence[str]],
    count: int,
    stop: asyncio.Future[None],
    *,
    stop_timeout: float = STOP_TIMEOUT,
) -> int:
    """Keep ``count`` workers running until ``stop`` resolves, then stop them; return 0,
    or 1 (with a message) when they exited too often and were stopped.

    Worker ``index`` (1 to ``count``) runs ``command(index)``. Its first line of output
    says that it is ready: the first such line is printed once all the workers have sent
    theirs; later lines are printed as they come. Stopping sends SIGTERM, then SIGKILL to
    the workers still running after ``stop_timeout`` seconds.
    """
    workers = _Workers(command, count)
    tasks = [asyncio.create_task(workers.keep_running(index)) for index in range(1, count + 1)]
    try:
        # A task ends early only when giving up, or on a bug: then stop the others, and
        # show the bug.
        ends: list[asyncio.Future[Any]] = [stop, workers.failure, *tasks]
        await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await workers.stop(tasks, stop_timeout)
    for task in tasks:
        if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
            raise exc
    if workers.failure.done():
        error_line(workers.failure.result())
        return 1
    return 0


class _Workers:
    """The worker processes of :func:`supervise` and what is known of them."""

    def __init__(self, command: Callable[[int], Sequence[str]], count: int) -> None:
        self.command = command
        self.count = count
        self.running: dict[int, Process] = {}
        # Indexes whose worker said it listens, once at least.
        self.ready: set[int] = set()
        self.announced = False
        # Times of the exits within the last DEATH_WINDOW seconds.
        self.deaths: collections.deque[float] = collections.deque()
        # Why the workers were given up on.
        self.failure: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        # The signal that stops workers, once stopping: SIGTERM, then SIGKILL.
        self.stop_signal: signal.Signals | None = None

    async def keep_running(self, index: int) -> None:
        """Run worker ``index``, and again each time it exits, until stopping or until
        the workers are given up on."""
        while self.stop_signal is None:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self.command(index),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    process_group=0,
                )
            except OSError as exc:
                self._give_up(f"couldn't start worker {index}: {exc}")
                return
            # Until it is seen to exit: should this task fail, stop() still signals it.
            self.running[index] = proc
            if self.stop_signal is not None:  # stop() ran while it was starting
                proc.send_signal(self.stop_signal)
            listened = await self._relay_output(index, proc)
            status = await proc.wait()
            del self.running[index]
            if self.stop_signal is not None:
                return
            how = _describe_exit(status)
            if not listened and not self.announced:
                # It couldn't start (an unreachable Redis, say), and it said why: the
                # others won't fare better, and starting it again would say it again.
                self._give_up(f"worker {index} exited ({how}) before it listened")
                return
            if self._too_many_deaths():
                self._give_up(
                    f"worker {index} exited ({how}), {len(self.deaths)} worker exits "
                    f"within {DEATH_WINDOW:g} s: giving up"
                )
                return
            error_line(f"worker {index} exited ({how}); starting it again")

    async def _relay_output(self, index: int, proc: Process) -> bool:
        """Read the worker's output until it closes; print its first line once every
        worker has sent one, and its other lines as they come. Return whether it sent
        its first line: that it listened."""
        assert proc.stdout is not None
        started = False
        async for line in proc.stdout:
            if started:
                _print(line)
                continue
            started = True
            self.ready.add(index)
            if not self.announced and len(self.ready) == self.count:
                self.announced = True
                _print(line)
        return started

    def _too_many_deaths(self) -> bool:
        """Count an exit; whether there were more than MAX_DEATHS in DEATH_WINDOW."""
        now = time.monotonic()
        self.deaths.append(now)
        while now - self.deaths[0] > DEATH_WINDOW:
            self.deaths.popleft()
        return len(self.deaths) > MAX_DEATHS

    def _give_up(self, reason: str) -> None:
        if not self.failure.done():
            self.failure.set_result(reason)

    async def stop(self, tasks: list[asyncio.Task[None]], timeout: float) -> None:
        """Stop every worker and wait for the tasks running them: SIGTERM, and SIGKILL
        after ``timeout`` seconds."""
        self._signal(signal.SIGTERM)
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        if pending:
            self._signal(signal.SIGKILL)
            _, pending = await asyncio.wait(pending, timeout=_KILL_TIMEOUT)
            for task in pending:
                task.cancel()

    def _signal(self, signum: signal.Signals) -> None:
        self.stop_signal = signum
        for proc in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)


def _print(line: bytes) -> None:
    sys.stdout.write(line.decode(errors="replace"))
    sys.stdout.flush()


def _describe_exit(status: int) -> str:
    """``status 1``, ``killed by SIGKILL``: how a process ended, from its return code."""
    if status >= 0:
        return f"status {status}"
    with contextlib.suppress(ValueError):
        return f"killed by {signal.Signals(-status).name}"
    return f"killed by signal {-status}"


def stop_with_parent() -> None:
    """In a worker: stop, as SIGTERM would, when the parent is gone.

    The parent holds the writing end of the worker's standard input and never writes: end
    of file there means that it exited, however it did (SIGKILL included); a worker left
    alone would go on serving, with no one to stop it. Raising SIGTERM stops the worker
    through the handler that :func:`~wsio.cli.common.serve_until_stopped` installs, so
    that its connections get 1001 as usual; the reader first runs when the loop first
    waits, which the server's start-up reaches after installing that handler.

    Does nothing when standard input isn't a pipe: a worker started by hand.
    """
    try:
        fd = sys.stdin.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):  # no standard input, or a closed one
        return
    if not stat.S_ISFIFO(mode):
        return
    loop = asyncio.get_running_loop()

    def read() -> None:
        if not os.read(fd, 4096):
            loop.remove_reader(fd)
            signal.raise_signal(signal.SIGTERM)

    loop.add_reader(fd, read)
