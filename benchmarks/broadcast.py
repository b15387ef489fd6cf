"""``python -m benchmarks.broadcast``: the broadcast rows, wsio beside websockets, and the
fan-out of a :class:`wsio.Hub` in one process beside two processes through Redis.

``python -m benchmarks --sections broadcast`` runs the same and prints the same table; see
:mod:`benchmarks` for the methodology. The processes are those of :mod:`benchmarks.fanout`.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import dataclasses
import fnmatch
import importlib.util
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from .clients import cpu_ns
from .harness import (
    BenchError,
    Cell,
    Child,
    CpuWatch,
    cell_text,
    format_value,
    kill_children,
    settled_rss_kib,
)

__all__ = ["KEYS", "BroadcastSettings", "main", "run", "table", "to_json"]

#: Connections of the broadcast rows, and the client processes that open them.
CONNS = 10_000
CLIENT_PROCESSES = 2
#: Size of the broadcast whose latency is measured.
SMALL = 64
#: Connections that stop reading in the memory row (1%), their messages, and the send
#: buffer that the servers give every connection (see :mod:`benchmarks`).
STALLED = 100
STALLED_SIZE = 64 * 1024
STALLED_MESSAGES = 32
SNDBUF = 64 * 1024
#: Connections and message size of the fan-out rows.
FANOUT_CONNS = 2_000
FANOUT_SIZE = 64

LIBRARIES = ("wsio", "websockets", "ceiling")
#: The libraries of the rows of stalled connections: the ceiling has no slow-consumer rule.
STALLED_LIBRARIES = ("wsio", "websockets")
#: The two ways of serving the fan-out rows: one process with an in-memory hub, two
#: processes with a hub on Redis.
FANOUTS = ("memory", "redis")

#: Seconds allowed to a client process to open its connections, to a broadcast or a
#: publication to reach every client.
_OPEN_TIMEOUT = 300.0
_RUN_TIMEOUT = 120.0


@dataclasses.dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str
    higher_is_better: bool


ROWS = (
    Row("bcast64", f"{SMALL} B to {CONNS:,}: ms to the last", "ms", False),
    Row("bcast64.cpu", "  server CPU ms", "ms", False),
    Row("stalled.rss", f"{STALLED} not reading: RSS +MiB", "MiB", False),
    Row("stalled.skipped", "  messages skipped", "msg", False),
)
FANOUT_ROWS = (
    Row("fanout", f"{FANOUT_SIZE} B to {FANOUT_CONNS:,}: msg/s", "msg/s", True),
    Row("fanout.cpu", "  server CPU µs/msg", "µs", False),
    Row("fanout.redis", "  redis-server CPU µs/publish", "µs", False),
)
#: Row keys, for ``--only`` (prefixed with ``broadcast.`` or not).
KEYS = tuple(row.key for row in (*ROWS, *FANOUT_ROWS))

Results = dict[tuple[str, str], Cell]  # (row key, column)


@dataclasses.dataclass
class BroadcastSettings:
    quick: bool
    #: Broadcasts (and publications) measured per column.
    repeats: int
    #: Messages each stalled connection is sent in the memory row.
    stalled_messages: int
    #: Messages published per fan-out run.
    fanout_messages: int
    #: Event loop of the servers; the clients run on uvloop when it is installed.
    loop: str
    client_loop: str
    pin: bool
    #: ``--only`` patterns.
    rows: tuple[str, ...] = ("*",)

    @classmethod
    def make(
        cls,
        quick: bool,
        loop: str = "asyncio",
        pin: bool = True,
        rows: Sequence[str] = ("*",),
        repeats: int | None = None,
    ) -> BroadcastSettings:
        """The settings of a run, ``--quick`` or not."""
        try:
            import uvloop  # noqa: F401

            client_loop = "uvloop"
        except ImportError:
            client_loop = "asyncio"
        return cls(
            quick=quick,
            repeats=repeats or (3 if quick else 5),
            stalled_messages=16 if quick else STALLED_MESSAGES,
            fanout_messages=30 if quick else 100,
            loop=loop,
            client_loop=client_loop,
            pin=pin,
            rows=tuple(rows),
        )


# A private redis-server ----------------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """In the child: get SIGKILL when the orchestrator dies (Linux ``PR_SET_PDEATHSIG``)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


class RedisProcess:
    """A ``redis-server`` of the benchmark's own: loopback, a free port, a temporary
    directory, no persistence. Never a system instance."""

    def __init__(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise BenchError("redis-server isn't installed (make redis installs it)")
        self.directory = tempfile.mkdtemp(prefix="wsio-bench-redis-")
        self.proc: subprocess.Popen[bytes] | None = None
        for _ in range(3):
            self.port = _free_port()
            self.proc = subprocess.Popen(
                [
                    executable,
                    *("--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--dir", self.directory, "--save", "", "--appendonly", "no"),
                    *("--daemonize", "no", "--logfile", "redis.log"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self.directory,
                preexec_fn=_die_with_parent,  # no threads in the orchestrator
                start_new_session=True,
            )
            if self._wait_ready():
                atexit.register(self.stop)
                return
        log = self._log()
        self.stop()
        raise BenchError(f"redis-server didn't start: {log}")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _wait_ready(self) -> bool:
        """Whether the server answers PING within 10 s; False if it exited (port taken)."""
        assert self.proc is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock,
            ):
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                if sock.recv(64) == b"+PONG\r\n":
                    return True
            time.sleep(0.05)
        self.proc.kill()
        self.proc.wait()
        return False

    def _log(self) -> str:
        try:
            with open(os.path.join(self.directory, "redis.log")) as log:
                return log.read()[-600:].strip().replace("\n", " | ")
        except OSError:
            return "no log"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        shutil.rmtree(self.directory, ignore_errors=True)


def _free_port() -> int:
    """A loopback port free right now; never 6379, a system instance's."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port != 6379:
            return port


# The run -------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Column:
    """The processes of one column, and how many messages their clients have had."""

    servers: list[Child]
    clients: list[Child]
    received: int = 0

    @property
    def children(self) -> list[Child]:
        return [*self.servers, *self.clients]

    def stop(self) -> None:
        # Servers first: the connections' TIME_WAIT then lands on the servers' side, not on
        # ephemeral ports the next rows need.
        for child in self.children:
            child.stop()


class _Run:
    def __init__(
        self,
        settings: BroadcastSettings,
        progress: Callable[[str], None],
        results: Results,
        notes: list[str],
    ) -> None:
        self.s = settings
        self.progress = progress
        self.results = results
        self.notes = notes

    def wanted(self, key: str) -> bool:
        return any(
            fnmatch.fnmatch(key, pattern) or fnmatch.fnmatch(f"broadcast.{key}", pattern)
            for pattern in self.s.rows
        )

    def _cpu(self, index: int) -> int | None:
        return index if self.s.pin and (os.cpu_count() or 1) >= 2 else None

    def _server(self, lib: str, *args: str) -> tuple[Child, int]:
        child = Child(
            "benchmarks.fanout",
            ["server", lib, "--loop", self.s.loop, *args],
            self._cpu(0),
            f"server {lib} {' '.join(args)}".strip(),
        )
        try:
            port = int(json.loads(child.readline(30))["port"])
        except (BenchError, KeyError, ValueError) as exc:
            child.stop()
            raise BenchError(f"server {lib} didn't start: {exc}") from exc
        return child, port

    def _clients(self, ports: list[int], conns: int, stalled: int) -> list[Child]:
        """Client processes with ``conns`` connections in all, open."""
        clients = []
        for index in range(CLIENT_PROCESSES):
            args = ["client", ",".join(map(str, ports)), "--conns", str(conns // CLIENT_PROCESSES)]
            args += ["--stalled", str(stalled // CLIENT_PROCESSES), "--loop", self.s.client_loop]
            clients.append(Child("benchmarks.fanout", args, self._cpu(1), f"client {index}"))
        try:
            for client in clients:
                client.readline(30)
            for client in clients:
                client.send(op="open")
            for client in clients:
                client.answer(_OPEN_TIMEOUT)
        except BaseException:
            for client in clients:
                client.stop()
            raise
        return clients

    @staticmethod
    def _wait_registered(servers: list[Child], conns: int, field: str) -> None:
        """Wait until the servers' handlers hold every connection: the last handshakes
        complete before their handlers run."""
        deadline = time.monotonic() + 30
        while True:
            count = sum(server.request(30, op="stats")[field] for server in servers)
            if count == conns:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"servers hold {count} of {conns} connections ({field})")
            time.sleep(0.05)

    def _received(self, column: _Column, count: int) -> float:
        """Wait until every reading connection of the column got ``count`` more messages;
        the time.monotonic() at which the last one did."""
        column.received += count
        for client in column.clients:
            client.send(op="wait", count=column.received, within=_RUN_TIMEOUT)
        return max(float(client.answer(_RUN_TIMEOUT + 10)["last"]) for client in column.clients)

    def record(self, key: str, column: str, cell: Cell) -> None:
        """Keep a cell measured or failed (a cell that doesn't apply shows as "-")."""
        if cell.error is None and not cell.values:
            return
        self.results[key, column] = cell
        row = next(row for row in (*ROWS, *FANOUT_ROWS) if row.key == key)
        if cell.error is not None:
            shown = f"ERROR {cell.error}"
        else:
            shown = f"{format_value(cell.median, row.unit)} {row.unit} ±{cell.spread * 50:.0f}%"
        self.progress(f"broadcast {key:<15} {column:<10} {shown}")

    # Broadcast rows --------------------------------------------------------------------------

    def broadcast_rows(self) -> None:
        latency = self.wanted("bcast64") or self.wanted("bcast64.cpu")
        stalled = self.wanted("stalled.rss") or self.wanted("stalled.skipped")
        if not (latency or stalled):
            return
        columns: dict[str, _Column] = {}
        cells = {(key, lib): Cell() for key in [row.key for row in ROWS] for lib in LIBRARIES}
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < CONNS + 100:
            # Each child raises its soft limit to the hard one (common.prepare_child).
            for cell in cells.values():
                cell.error = f"needs {CONNS + 100} open files, the hard limit is {hard}"
            libraries: tuple[str, ...] = ()
        else:
            libraries = LIBRARIES
        try:
            for lib in libraries:
                if lib not in STALLED_LIBRARIES and not latency:
                    continue
                try:
                    columns[lib] = self._broadcast_column(lib)
                except BenchError as exc:
                    for row in ROWS:
                        cells[row.key, lib].error = str(exc)
            if latency:
                self._latency(columns, cells)
            if stalled:
                for lib in STALLED_LIBRARIES:
                    if lib in columns:
                        self._stalled(lib, columns.pop(lib), cells)
        finally:
            for column in columns.values():
                column.stop()
        for (key, lib), cell in cells.items():
            if self.wanted(key):
                self.record(key, lib, cell)

    def _broadcast_column(self, lib: str) -> _Column:
        started = time.monotonic()
        server, port = self._server(lib, "--sndbuf", str(SNDBUF))
        try:
            clients = self._clients([port], CONNS, STALLED)
            column = _Column([server], clients)
            self._wait_registered([server], CONNS, "open")
        except BaseException:
            server.stop()
            raise
        # A first broadcast, not measured: the first writes of a process cost more.
        server.request(_RUN_TIMEOUT, op="broadcast", size=SMALL)
        self._received(column, 1)
        self.progress(
            f"broadcast {lib}: {CONNS:,} connections open in {time.monotonic() - started:.1f} s"
        )
        return column

    def _latency(self, columns: dict[str, _Column], cells: dict[tuple[str, str], Cell]) -> None:
        libs = [lib for lib in LIBRARIES if lib in columns]
        for repeat in range(self.s.repeats):
            shift = repeat % len(libs) if libs else 0
            shown = []
            for lib in libs[shift:] + libs[:shift]:
                value, cpu = cells["bcast64", lib], cells["bcast64.cpu", lib]
                if value.error is not None:
                    continue
                column = columns[lib]
                try:
                    watch = CpuWatch([os.getpid(), *(child.pid for child in column.children)])
                    answer = column.servers[0].request(_RUN_TIMEOUT, op="broadcast", size=SMALL)
                    last = self._received(column, 1)
                    background = watch.background()
                except BenchError as exc:
                    value.error = cpu.error = str(exc)
                    shown.append(f"{lib} ERROR")
                    continue
                value.values.append((last - answer["start"]) * 1e3)
                cpu.values.append(answer["cpu_ms"])
                for cell in (value, cpu):
                    cell.background.append(background)
                shown.append(f"{lib} {value.values[-1]:.1f} ms (CPU {answer['cpu_ms']:.1f} ms)")
            self.progress(
                f"broadcast bcast64 run {repeat + 1}/{self.s.repeats}: {', '.join(shown)}"
            )

    def _stalled(self, lib: str, column: _Column, cells: dict[tuple[str, str], Cell]) -> None:
        """1% of the connections stop reading; the others read every message before the
        next is sent, so that only the stalled ones fall behind."""
        server = column.servers[0]
        rss, skipped = cells["stalled.rss", lib], cells["stalled.skipped", lib]
        try:
            for client in column.clients:
                client.request(30, op="stall")
            before = settled_rss_kib(server.pid)
            total_skipped = 0
            for _ in range(self.s.stalled_messages):
                answer = server.request(_RUN_TIMEOUT, op="broadcast", size=STALLED_SIZE)
                total_skipped += answer.get("skipped", 0)
                self._received(column, 1)
            after = settled_rss_kib(server.pid)
            stats = server.request(30, op="stats")
        except BenchError as exc:
            rss.error = skipped.error = str(exc)
            return
        finally:
            column.stop()
        if stats["open"] != CONNS:
            rss.error = skipped.error = f"{CONNS - stats['open']} connections closed"
            return
        rss.values.append((after - before) / 1024)
        if lib == "wsio":
            skipped.values.append(total_skipped)
        self.progress(
            f"broadcast stalled {lib}: RSS +{(after - before) / 1024:.1f} MiB, "
            f"{stats['buffered'] / 2**20:.1f} MiB in write buffers, "
            + (f"{total_skipped} skipped" if lib == "wsio" else "no skipping")
        )

    # Fan-out rows ----------------------------------------------------------------------------

    def fanout_rows(self) -> None:
        if not any(self.wanted(row.key) for row in FANOUT_ROWS):
            return
        cells = {(row.key, name): Cell() for row in FANOUT_ROWS for name in FANOUTS}
        columns: dict[str, _Column] = {}
        redis: RedisProcess | None = None
        try:
            try:
                columns["memory"] = self._fanout_column("--hub", "memory")
            except BenchError as exc:
                for row in FANOUT_ROWS:
                    cells[row.key, "memory"].error = str(exc)
            try:
                if importlib.util.find_spec("redis") is None:
                    raise BenchError("the redis package is missing: pip install -e '.[redis]'")
                redis = RedisProcess()
            except BenchError as exc:
                self.notes.append(f"fan-out through Redis skipped: {exc}")
                self.progress(f"broadcast fanout: Redis column skipped: {exc}")
            if redis is not None:
                try:
                    stream = f"wsio:bench:{os.getpid()}"
                    args = ("--hub", "redis", "--redis", redis.url, "--stream", stream)
                    columns["redis"] = self._fanout_column(*args, processes=2)
                except BenchError as exc:
                    for row in FANOUT_ROWS:
                        cells[row.key, "redis"].error = str(exc)
            self._fanout(columns, cells, redis)
            for name, column in columns.items():
                self._check_totals(name, column, cells)
        finally:
            for column in columns.values():
                column.stop()
            if redis is not None:
                redis.stop()
        for (key, name), cell in cells.items():
            if self.wanted(key):
                self.record(key, name, cell)

    def _fanout_column(self, *args: str, processes: int = 1) -> _Column:
        servers: list[Child] = []
        try:
            ports = []
            for _ in range(processes):
                server, port = self._server("wsio", *args)
                servers.append(server)
                ports.append(port)
            clients = self._clients(ports, FANOUT_CONNS, 0)
            column = _Column(servers, clients)
            self._wait_registered(servers, FANOUT_CONNS, "subscribers")
        except BaseException:
            for server in servers:
                server.stop()
            raise
        # Not measured: the first publications set up the Redis connections.
        servers[0].request(_RUN_TIMEOUT, op="publish", count=10, size=FANOUT_SIZE)
        self._received(column, 10)
        return column

    def _fanout(
        self,
        columns: dict[str, _Column],
        cells: dict[tuple[str, str], Cell],
        redis: RedisProcess | None,
    ) -> None:
        """The first server of a column publishes ``fanout_messages`` messages, awaiting
        each ``publish``: as many as each connection can have in its write buffer without
        reaching the broadcast limit, so none is skipped (checked after)."""
        names = [name for name in FANOUTS if name in columns]
        count = self.s.fanout_messages
        for repeat in range(self.s.repeats):
            shift = repeat % len(names) if names else 0
            shown = []
            for name in names[shift:] + names[:shift]:
                rate = cells["fanout", name]
                if rate.error is not None:
                    continue
                column = columns[name]
                pids = [child.pid for child in column.children]
                if redis is not None:
                    pids.append(redis.pid)
                try:
                    watch = CpuWatch([os.getpid(), *pids])
                    cpu = [cpu_ns(server.pid) for server in column.servers]
                    redis_cpu = cpu_ns(redis.pid) if redis is not None else 0
                    answer = column.servers[0].request(
                        _RUN_TIMEOUT, op="publish", count=count, size=FANOUT_SIZE
                    )
                    last = self._received(column, count)
                    background = watch.background()
                    cpu = [cpu_ns(server.pid) - cpu[i] for i, server in enumerate(column.servers)]
                    redis_cpu = cpu_ns(redis.pid) - redis_cpu if redis is not None else 0
                except BenchError as exc:
                    for row in FANOUT_ROWS:
                        cells[row.key, name].error = str(exc)
                    shown.append(f"{name} ERROR")
                    continue
                deliveries = count * FANOUT_CONNS
                rate.values.append(deliveries / (last - answer["start"]))
                cells["fanout.cpu", name].values.append(sum(cpu) / 1e3 / deliveries)
                if name == "redis":
                    cells["fanout.redis", name].values.append(redis_cpu / 1e3 / count)
                for row in FANOUT_ROWS:
                    cells[row.key, name].background.append(background)
                busy = f" (busy {background:.0%})" if background > 0.1 else ""
                shown.append(
                    f"{name} {format_value(rate.values[-1], 'msg/s')} msg/s, publishing "
                    f"took {answer['publish_ms']:.0f} ms{busy}"
                )
            self.progress(
                f"broadcast fanout run {repeat + 1}/{self.s.repeats}: {', '.join(shown)}"
            )

    def _check_totals(
        self, name: str, column: _Column, cells: dict[tuple[str, str], Cell]
    ) -> None:
        """A message skipped for a slow consumer would make the rate meaningless."""
        try:
            totals = [server.request(30, op="totals") for server in column.servers]
        except BenchError as exc:
            cells["fanout", name].error = str(exc)
            return
        skipped = sum(total["skipped"] + total["closed"] for total in totals)
        if skipped:
            cells["fanout", name].error = f"{skipped} deliveries skipped or closed"


def run(
    settings: BroadcastSettings,
    progress: Callable[[str], None],
    results: Results,
    notes: list[str],
) -> None:
    """Measure the rows wanted into ``results``, noting in ``notes`` what was skipped and
    why: both keep what was measured when the run is interrupted."""
    bench = _Run(settings, progress, results, notes)
    bench.broadcast_rows()
    bench.fanout_rows()


# Report --------------------------------------------------------------------------------------


def table(results: Results, settings: BroadcastSettings, notes: Sequence[str] = ()) -> str:
    width = 24
    label_width = 34
    lines = []
    sections = (
        (
            f"BROADCAST (one server on {settings.loop} holding {CONNS:,} connections of "
            f"{CLIENT_PROCESSES} raw client processes on {settings.client_loop}; compression "
            f"and keepalive off, {SNDBUF // 1024} KiB send buffers; {STALLED} stalled "
            f"connections sent {settings.stalled_messages} x {STALLED_SIZE // 1024} KiB)",
            ROWS,
            LIBRARIES,
            LIBRARIES,
        ),
        (
            f"FAN-OUT (wsio.Hub, {FANOUT_CONNS:,} connections subscribed to one topic; "
            f"{settings.fanout_messages} x {FANOUT_SIZE} B published one after the other; "
            "2 processes share one private redis-server)",
            FANOUT_ROWS,
            FANOUTS,
            ("1 process, in memory", "2 processes, Redis"),
        ),
    )
    for title, rows, names, headings in sections:
        body = []
        for row in rows:
            cells = [results.get((row.key, name)) for name in names]
            if all(cell is None for cell in cells):
                continue
            body.append(
                f"{row.label:<{label_width}}"
                + "".join(
                    f"{cell_text(cell, row.unit, cells[0], index == 0):>{width}}"
                    for index, cell in enumerate(cells)
                )
            )
        if body:
            header = f"{'':<{label_width}}" + "".join(f"{h:>{width}}" for h in headings)
            lines += [title, header, *body, ""]
    lines += list(notes)
    lines.append(
        "Median of the runs (the RSS rows: one run); × = column ÷ first column; "
        "± = (max - min) / 2 / median;\n* = other processes used over 10% of the CPUs."
    )
    return "\n".join(lines)


def to_json(results: Results, notes: Sequence[str]) -> dict[str, Any]:
    rows = []
    for group, names in ((ROWS, LIBRARIES), (FANOUT_ROWS, FANOUTS)):
        for row in group:
            cells = {name: results.get((row.key, name)) for name in names}
            if all(cell is None for cell in cells.values()):
                continue
            rows.append(
                {
                    "key": row.key,
                    "label": row.label.strip(),
                    "unit": row.unit,
                    "higher_is_better": row.higher_is_better,
                    "results": {
                        name: cell.to_json() for name, cell in cells.items() if cell is not None
                    },
                }
            )
    return {"rows": rows, "notes": list(notes)}


# Command line --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.broadcast",
        description="Broadcast and fan-out rows: wsio beside websockets, a Hub in one process "
        "beside two through Redis.",
        epilog="Rows: " + ", ".join(KEYS) + " (globs).",
    )
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs")
    parser.add_argument("--only", metavar="ROWS", default="*", help="comma-separated rows")
    parser.add_argument("--uvloop", action="store_true", help="run the servers on uvloop")
    parser.add_argument("--no-pin", action="store_true", help="don't pin processes to CPUs")
    args = parser.parse_args(argv)
    patterns = tuple(item.strip() for item in args.only.split(",") if item.strip()) or ("*",)
    settings = BroadcastSettings.make(
        args.quick, "uvloop" if args.uvloop else "asyncio", not args.no_pin, patterns
    )
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    atexit.register(kill_children)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    results: Results = {}
    notes: list[str] = []
    interrupted = False
    try:
        run(settings, progress, results, notes)
    except KeyboardInterrupt:
        interrupted = True
        progress("interrupted: stopping the servers and clients")
    finally:
        kill_children()
    print(table(results, settings, notes))
    if interrupted:
        print("(interrupted: partial results)")
    progress(f"done in {time.monotonic() - started:.0f} s")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
