"""A private, real ``redis-server`` for tests of the Redis-backed pieces.

:class:`RedisServer` runs its own ``redis-server`` process, never a system instance: bound to
127.0.0.1 only, on a free port (never 6379), with its own temporary directory as the working
and data directory. Persistence is by append-only file (``--appendonly yes``, no RDB
snapshots), so that :meth:`RedisServer.restart` and even a crash simulated by
:meth:`RedisServer.kill` keep every acknowledged write: Redis writes each to the file before
it replies, and a killed process leaves what it wrote with the kernel. The file is synced to
disk once a second (``--appendfsync everysec``), not on every write: a sync per write costs
milliseconds on some disks, which tests writing hundreds of entries can't afford.

The process's log (``--logfile``) and its stdout and stderr go to files in that directory, so
that a server which doesn't come up fails with its own explanation.

Readiness is checked with a raw RESP ``PING`` over a plain socket, so this module needs no
Redis client library. Every wait is bounded in time and in attempts.

Usage::

    async with RedisServer() as server:  # started; stopped and its directory removed at exit
        client = redis.asyncio.Redis.from_url(server.url)
        ...
        await server.restart()  # same port, same data
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Final

__all__ = ["REDIS_SERVER", "RedisServer", "RedisServerError", "free_port", "redis_server_path"]

#: The executable looked up on PATH.
REDIS_SERVER: Final = "redis-server"

#: The port of a system instance, which the tests must never reach.
SYSTEM_PORT: Final = 6379

#: Limits of the readiness poll in :meth:`RedisServer.start`: total time, then attempts.
START_TIMEOUT: Final = 10.0
START_ATTEMPTS: Final = 200
POLL_INTERVAL: Final = 0.05

#: Time allowed to a stopping or killed process to exit (each step of :meth:`RedisServer.stop`).
STOP_TIMEOUT: Final = 5.0

#: How many fresh ports a first start may try when another process took the one picked.
PORT_ATTEMPTS: Final = 3

_PING: Final = b"*1\r\n$4\r\nPING\r\n"
_PONG: Final = b"+PONG\r\n"


class RedisServerError(RuntimeError):
    """The server didn't come up (the message includes its output) or didn't go down."""


def redis_server_path() -> str | None:
    """The path of ``redis-server`` on PATH, or None when it isn't installed."""
    return shutil.which(REDIS_SERVER)


def free_port() -> int:
    """A loopback TCP port free right now: bound on port 0, then released.

    Another process may take it before the server binds it; :meth:`RedisServer.start` copes
    with that on a first start by picking again. Port 6379 is never returned, so that a
    system instance can't be mistaken for ours.
    """
    for _ in range(10):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port != SYSTEM_PORT:
            return port
    raise RedisServerError("the system keeps handing out port 6379")


class RedisServer:
    """A ``redis-server`` process of our own, on 127.0.0.1 and a free port.

    ``directory`` is the server's data directory; by default a new temporary directory,
    removed by :meth:`close` (or the ``async with`` exit). A directory passed in is kept.

    :meth:`start` spawns the server and returns once it answers ``PING``; :meth:`stop` shuts
    it down; :meth:`restart` does both, keeping the port and the data; :meth:`kill` crashes it
    (SIGKILL), after which :meth:`start` brings it back with the data synced so far.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        executable = redis_server_path()
        if executable is None:
            raise RedisServerError(f"{REDIS_SERVER} is not on PATH")
        self._executable = executable
        self._owns_directory = directory is None
        self._directory = Path(
            tempfile.mkdtemp(prefix="wsio-redis-") if directory is None else directory
        )
        self._port: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        # A killed process is kept until reaped, so that `running` turns False at once.
        self._killed: asyncio.subprocess.Process | None = None

    # -- properties --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port; chosen by the first :meth:`start`, then kept across restarts."""
        if self._port is None:
            raise RedisServerError("the server has not been started yet")
        return self._port

    @property
    def url(self) -> str:
        """The URL of database 0, for ``redis.asyncio.Redis.from_url``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the process is started and neither stopped, killed nor seen to exit."""
        return self._process is not None and self._process.returncode is None

    @property
    def directory(self) -> Path:
        """The server's working and data directory (``--dir``): log, output and AOF files."""
        return self._directory

    @property
    def log_path(self) -> Path:
        """The server's log file (``--logfile``)."""
        return self._directory / "redis.log"

    @property
    def output_path(self) -> Path:
        """The process's stdout and stderr, where errors before the log opens are written."""
        return self._directory / "redis.out"

    def output(self) -> str:
        """The server's output and log so far, for failure messages."""
        parts = []
        for path in (self.output_path, self.log_path):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").strip()
                if text:
                    parts.append(f"--- {path.name} ---\n{text}")
        return "\n".join(parts) or "(no output)"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn the server and wait until it answers ``PING`` (at most ~10 s).

        The first start picks a free port and, should another process grab it before the
        server binds it, tries a fresh one a few times. Later starts reuse the port, so that
        clients configured with :attr:`url` reconnect to the same data.
        Raises :class:`RedisServerError`, with the server's output, if it doesn't come up.
        """
        if self.running:
            raise RedisServerError(f"the server is already running on port {self._port}")
        await self._reap_killed()
        first = self._port is None
        for attempt in range(1, PORT_ATTEMPTS + 1):
            if first:
                self._port = free_port()
            try:
                await self._spawn_and_wait()
                return
            except RedisServerError:
                if first and attempt < PORT_ATTEMPTS and self._port_was_taken():
                    continue
                raise

    async def stop(self) -> None:
        """Shut the server down (SIGTERM) and wait for it to exit; SIGKILL if it lingers.

        A SIGTERM shutdown fsyncs the append-only file and, with ``--save ""``, writes no
        snapshot, like ``SHUTDOWN NOSAVE``; it also works on a server that stopped answering.
        Does nothing when the server isn't running (a killed process is only reaped).
        """
        await self._reap_killed()
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            await self._kill_and_reap(process)
            raise RedisServerError(
                f"redis-server ignored SIGTERM for {STOP_TIMEOUT} s and was killed\n"
                + self.output()
            ) from None

    async def restart(self) -> None:
        """Stop, then start again on the same port and directory: the data persists (AOF)."""
        await self.stop()
        await self.start()

    def kill(self) -> None:
        """Crash the server (SIGKILL), without any shutdown; :meth:`start` brings it back.

        Writes acknowledged before the kill survive: Redis writes each to the append-only
        file before replying, and the kernel keeps what a killed process wrote. :attr:`running` is
        False at once; the process is reaped by the next :meth:`start`, :meth:`stop` or
        :meth:`close`.
        """
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        self._killed = process

    async def close(self) -> None:
        """Stop the server and remove its directory if this object created it."""
        try:
            await self.stop()
        finally:
            if self._owns_directory:
                shutil.rmtree(self._directory, ignore_errors=True)

    async def __aenter__(self) -> RedisServer:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RedisServer port={self._port} {state} dir={self._directory}>"

    # -- internals ---------------------------------------------------------------------------

    def _command(self) -> list[str]:
        assert self._port is not None
        return [
            self._executable,
            # No config file: nothing from a system configuration leaks in.
            "--port",
            str(self._port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self._directory),
            "--logfile",
            str(self.log_path),
            "--daemonize",
            "no",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--always-show-logo",
            "no",
        ]

    async def _spawn_and_wait(self) -> None:
        # Truncated per start, so that a failure shows this attempt's output only.
        for path in (self.output_path, self.log_path):
            path.write_bytes(b"")
        with self.output_path.open("ab") as out:
            # A file, not a pipe: nobody has to drain it, and it outlives the process.
            process = await asyncio.create_subprocess_exec(
                *self._command(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                cwd=self._directory,
            )
        self._process = process
        try:
            await self._wait_ready(process)
        except BaseException:
            self._process = None
            await self._kill_and_reap(process)
            raise

    async def _wait_ready(self, process: asyncio.subprocess.Process) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last_error = "no attempt made"
        # Raced against each PING, so that a server which dies (say, its port was taken) is
        # reported at once, even when something else on that port accepts the connection.
        exited = asyncio.ensure_future(process.wait())
        try:
            for _ in range(START_ATTEMPTS):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                ping = asyncio.ensure_future(self._ping())
                try:
                    await asyncio.wait(
                        {ping, exited},
                        timeout=min(1.0, remaining),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    # Its own finally closes the connection; nothing to wait for.
                    if not ping.done():
                        ping.cancel()
                if exited.done():
                    raise RedisServerError(
                        f"redis-server exited with status {process.returncode} on port "
                        f"{self._port}\n{self.output()}"
                    )
                if not ping.done() or ping.cancelled():
                    last_error = "no answer to PING within 1 s"
                elif isinstance(error := ping.exception(), OSError):
                    last_error = repr(error)
                elif ping.result():
                    return
                else:
                    last_error = "an answer other than PONG (still loading?)"
                await asyncio.wait({exited}, timeout=POLL_INTERVAL)
        finally:
            exited.cancel()
        raise RedisServerError(
            f"redis-server on port {self._port} didn't answer PING within {START_TIMEOUT} s "
            f"({last_error})\n{self.output()}"
        )

    async def _ping(self) -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", self._port)
        try:
            writer.write(_PING)
            await writer.drain()
            # While loading its data Redis answers "-LOADING ...": not ready yet.
            return await reader.readline() == _PONG
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _port_was_taken(self) -> bool:
        with contextlib.suppress(OSError):
            return "Address already in use" in self.log_path.read_text(errors="replace")
        return False

    async def _reap_killed(self) -> None:
        process, self._killed = self._killed, None
        if process is not None:
            await self._kill_and_reap(process)

    async def _kill_and_reap(self, process: asyncio.subprocess.Process) -> None:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            raise RedisServerError(
                f"redis-server (pid {process.pid}) survived SIGKILL for {STOP_TIMEOUT} s"
            ) from None
