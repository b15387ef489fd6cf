"""``python -m benchmarks``: run every row, print one table, optionally write JSON.

See :mod:`benchmarks` for the methodology.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import datetime
import fnmatch
import json
import os
import platform
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from . import asgi, broadcast
from .common import BYTE_ECHOES, FIXED_SERVER, LOAD_GENERATOR, have_uvloop
from .harness import (
    BUSY,
    ROOT,
    BenchError,
    Cell,
    Child,
    CpuWatch,
    cell_text,
    format_value,
    kill_children,
    settled_rss_kib,
)

SERVERS = ("wsio", "wsio-listener", "websockets", "aiohttp", "picows", "tcp", "task", "task-floor")
CLIENTS = ("wsio", "wsio-listener", "websockets", "aiohttp", "picows", "raw", "task")
#: The columns of the ASGI section: uvicorn's ``--ws`` backends (:mod:`benchmarks.asgi`).
BACKENDS = tuple(asgi.BACKENDS)
#: The columns of the threads sections: servers (and clients) of that name in
#: :mod:`benchmarks.servers` (and :mod:`benchmarks.clients`).
THREADS = ("wsio-sync", "websockets-sync")
#: The libraries of each section's columns.
NAMES = {
    "server": SERVERS,
    "client": CLIENTS,
    "asgi": BACKENDS,
    "threads-server": THREADS,
    "threads-client": THREADS,
}
#: The headings that the server and client sections share, then each one's references.
_SHARED_COLUMNS = ("wsio", "wsio listener", "websockets", "aiohttp", "picows", "ceiling")
#: Column headings of each section, in the order of NAMES.
COLUMNS = {
    "server": (*_SHARED_COLUMNS, "task echo", "task floor"),
    "client": (*_SHARED_COLUMNS, "task client"),
    "asgi": BACKENDS,
    "threads-server": ("wsio.sync", "websockets.sync"),
    "threads-client": ("wsio.sync", "websockets.sync"),
}
#: Sections whose columns are servers facing the load generator, and whose columns are
#: clients facing the fixed server.
SERVER_SECTIONS = ("server", "asgi", "threads-server")
CLIENT_SECTIONS = ("client", "threads-client")
#: Sections of the run, in order; "broadcast" is :mod:`benchmarks.broadcast`.
SECTIONS = ("server", "client", "broadcast", "asgi", "threads-server", "threads-client")
#: What ``--sections`` also takes: a name for several sections.
SECTION_GROUPS = {"threads": ("threads-server", "threads-client")}
#: Sections run when ``--sections`` isn't given (see :mod:`benchmarks` for why not asgi).
DEFAULT_SECTIONS = ("server", "client", "broadcast", "threads")
ASGI_BYTE_ECHOES = ("ceiling",)
SIZES = (
    (16, "16", "16 B"),
    (1024, "1k", "1 KiB"),
    (65536, "64k", "64 KiB"),
    (2**20, "1m", "1 MiB"),
)
CONNS = (1, 16)
IDLE_COUNTS = (1000, 5000)
#: The rows of the ASGI section, a subset of ROWS: the rest tell little more about a
#: backend under uvicorn and Starlette, and would make the section long.
ASGI_SIZES = (16, 65536)
ASGI_IDLE_COUNTS = (1000,)
#: The rows of the threads sections: messages only, small and large.
THREADS_SIZES = (16, 65536)


@dataclasses.dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    #: Shown in the table, not only written to the JSON.
    shown: bool = True


def _rows() -> list[Row]:
    rows = [
        Row(f"msg{short}x{conns}", f"{label} x{conns:<2} msg/s", "msg/s", True)
        for _, short, label in SIZES
        for conns in CONNS
    ]
    rows += [
        Row(f"cpu{short}x{conns}", f"{label} x{conns:<2} CPU µs/msg", "µs", False, conns > 1)
        for _, short, label in SIZES
        for conns in CONNS
    ]
    rows += [
        Row("lat16.p50", "16 B latency p50 µs", "µs", False),
        Row("lat16.p99", "16 B latency p99 µs", "µs", False),
        Row("hs", "handshakes/s", "1/s", True),
        Row("hs.cpu", "handshake CPU µs", "µs", False, False),
    ]
    rows += [Row(f"mem{n}", f"idle KiB/conn @{n:,}", "KiB", False) for n in IDLE_COUNTS]
    return rows


ROWS = _rows()


def _message_row_keys(sizes: tuple[int, ...]) -> set[str]:
    shorts = [short for size, short, _ in SIZES if size in sizes]
    return {
        f"{kind}{short}x{conns}" for kind in ("msg", "cpu") for short in shorts for conns in CONNS
    }


def _asgi_row_keys() -> frozenset[str]:
    keys = _message_row_keys(ASGI_SIZES)
    keys |= {"hs", "hs.cpu"} | {f"mem{n}" for n in ASGI_IDLE_COUNTS}
    return frozenset(keys)


def section_rows(section: str) -> list[Row]:
    """The rows a section measures."""
    if section == "asgi":
        keys = _asgi_row_keys()
    elif section in SECTION_GROUPS["threads"]:
        keys = frozenset(_message_row_keys(THREADS_SIZES))
    else:
        return list(ROWS)
    return [row for row in ROWS if row.key in keys]


Results = dict[tuple[str, str, str], Cell]  # (section, row key, library)


# The run -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Settings:
    quick: bool
    repeats: int
    duration: float
    warmup: float
    mem_repeats: int
    text: bool
    loop: str
    loadgen: str
    loadgen_loop: str
    aiofastnet: bool
    task_wakeup: str
    pin: bool
    sections: tuple[str, ...]
    libraries: dict[str, tuple[str, ...]]
    rows: tuple[str, ...]


class Bench:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.results: Results = {}
        self.started = time.monotonic()
        self.servers: dict[str, Child] = {}
        self.clients: dict[str, Child] = {}
        self.ports: dict[str, int] = {}
        #: The broadcast section's results, and notes on what it skipped.
        self.broadcast_results: broadcast.Results = {}
        self.broadcast_notes: list[str] = []

    # Progress --------------------------------------------------------------------------------

    def progress(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)

    def record(self, section: str, key: str, lib: str, cell: Cell) -> None:
        self.results[section, key, lib] = cell
        row = next(row for row in ROWS if row.key == key)
        if cell.error is not None:
            shown = f"ERROR {cell.error}"
        else:
            shown = f"{format_value(cell.median, row.unit)} {row.unit} ±{cell.spread * 50:.0f}%"
        self.progress(f"{section:<14} {key:<10} {lib:<15} {shown}")

    # Processes -------------------------------------------------------------------------------

    def _cpu(self, index: int) -> int | None:
        count = os.cpu_count() or 1
        return index if self.s.pin and count >= 2 else None

    def _process_name(self, name: str) -> str:
        """The process behind a column: the task echo and the task client are resumed
        inside the read callback with ``--task-wakeup read-callback``."""
        if name == "task" and self.s.task_wakeup == "read-callback":
            return "task-resumed"
        return name

    def start_server(self, name: str, loop: str, section: str = "server") -> tuple[Child, int]:
        if section == "asgi":
            # A uvicorn process (benchmarks.asgi): the column is its --ws backend.
            args = [name, "0", "--loop", loop]
            child = Child("benchmarks.asgi", args, self._cpu(0), f"asgi server {name}")
        else:
            name = self._process_name(name)
            args = [name, "0", "--loop", loop]
            if self.s.aiofastnet:
                args.append("--aiofastnet")
            child = Child("benchmarks.servers", args, self._cpu(0), f"server {name}")
        try:
            return child, child.ready_port(30)
        except BenchError:
            child.stop()
            raise

    def start_client(
        self, name: str, port: int, peer: str, loop: str, measure_pid: int | None = None
    ) -> Child:
        name = self._process_name(name)
        args = [name, str(port), "--peer", peer, "--loop", loop]
        if measure_pid is not None:
            args += ["--measure-pid", str(measure_pid)]
        if self.s.aiofastnet:
            args.append("--aiofastnet")
        child = Child("benchmarks.clients", args, self._cpu(1), f"client {name}")
        try:
            child.readline(30)
        except BenchError:
            child.stop()
            raise
        return child

    def _client_spec(self, section: str, lib: str) -> tuple[str, str, str]:
        """(client library, peer kind, loop) of the client process of a column."""
        if section in SERVER_SECTIONS:
            byte_echoes = ASGI_BYTE_ECHOES if section == "asgi" else BYTE_ECHOES
            peer = "echo" if lib in byte_echoes else "ws"
            return self.s.loadgen, peer, self.s.loadgen_loop
        return lib, "ws", self.s.loop

    def _server_key(self, section: str, lib: str) -> str:
        if section == "server":
            return lib
        if section in SERVER_SECTIONS:
            return f"{section} {lib}"
        return f"fixed {FIXED_SERVER}"

    def pair(self, section: str, lib: str) -> Child:
        """The running client process of a column, with its server: started if needed."""
        key = self._server_key(section, lib)
        client = self.clients.get(lib)
        server = self.servers.get(key)
        if client is not None and client.alive() and server is not None and server.alive():
            return client
        if client is not None:
            client.stop()
            del self.clients[lib]
        if server is None or not server.alive():
            if server is not None:
                server.stop()
            if section in CLIENT_SECTIONS:
                server, self.ports[key] = self.start_server(FIXED_SERVER, self.s.loadgen_loop)
            else:
                server, self.ports[key] = self.start_server(lib, self.s.loop, section)
            self.servers[key] = server
        client_lib, peer, loop = self._client_spec(section, lib)
        # CPU time is the server's in the server and ASGI rows, the client's own in the
        # client rows.
        measured = None if section in CLIENT_SECTIONS else server.pid
        client = self.clients[lib] = self.start_client(
            client_lib, self.ports[key], peer, loop, measured
        )
        # Prime the pair with 16 connections that run briefly and close: the first
        # connections of a fresh process were seen to settle for good in a slow regime
        # (plain TCP echo on asyncio: 24 µs of server CPU per message instead of 6), the
        # next ones never.
        client.request(60, op="throughput", size=16, conns=16, duration=0.1, warmup=0, repeats=1)
        return client

    def reset(self, section: str, lib: str) -> None:
        """Throw away a column's client, and its server in the server and ASGI sections,
        after a failure: they are started afresh for the next row."""
        child = self.clients.pop(lib, None)
        if child is not None:
            child.stop()
        if section not in CLIENT_SECTIONS:
            child = self.servers.pop(self._server_key(section, lib), None)
            if child is not None:
                child.stop()

    def stop_all(self) -> None:
        for child in [*self.clients.values(), *self.servers.values()]:
            child.stop()
        self.clients.clear()
        self.servers.clear()

    # Measurements ----------------------------------------------------------------------------

    def wanted(self, section: str, key: str) -> bool:
        if all(row.key != key for row in section_rows(section)):
            return False
        return any(
            fnmatch.fnmatch(key, pattern) or fnmatch.fnmatch(f"{section}.{key}", pattern)
            for pattern in self.s.rows
        )

    def libraries(self, section: str) -> list[str]:
        libs = list(self.s.libraries[section])
        if section == "server" and self.s.loadgen == "picows":
            # The picows client can't talk to a byte echo.
            libs = [lib for lib in libs if lib not in BYTE_ECHOES]
        return libs

    def run_section(self, section: str) -> None:
        if section == "broadcast":
            broadcast.run(
                self.broadcast_settings(),
                self.progress,
                self.broadcast_results,
                self.broadcast_notes,
            )
            return
        libs = self.libraries(section)
        text = self.s.text
        for size, short, _ in SIZES:
            for conns in CONNS:
                key = f"msg{short}x{conns}"
                if self.wanted(section, key) or self.wanted(section, f"cpu{short}x{conns}"):
                    command = {"size": size, "conns": conns, "text": text}
                    self.measure_row(section, libs, key, "throughput", command)
        if self.wanted(section, "lat16.p50") or self.wanted(section, "lat16.p99"):
            self.measure_row(section, libs, "lat16", "latency", {"size": 16, "text": text})
        if self.wanted(section, "hs") or self.wanted(section, "hs.cpu"):
            self.measure_row(section, libs, "hs", "handshakes", {})
        self.stop_all()
        counts = [n for n in IDLE_COUNTS if self.wanted(section, f"mem{n}")]
        if counts:
            if section in CLIENT_SECTIONS:
                key = self._server_key(section, "")
                fixed = self.start_server(FIXED_SERVER, self.s.loadgen_loop)
                self.servers[key], self.ports[key] = fixed
            for lib in libs:
                self.measure_memory(section, lib, counts)
            self.stop_all()

    def broadcast_settings(self) -> broadcast.BroadcastSettings:
        s = self.s
        return broadcast.BroadcastSettings.make(s.quick, s.loop, s.pin, s.rows, s.repeats)

    def measure_row(
        self, section: str, libs: list[str], key: str, op: str, command: dict[str, Any]
    ) -> None:
        """Run a row: one run of each library in turn, ``repeats`` times, the order rotated
        each time, so that the machine's drift hits every library alike."""
        s = self.s
        if key == "lat16":
            keys = ["lat16.p50", "lat16.p99"]
        elif key == "hs":
            keys = ["hs", "hs.cpu"]
        else:
            keys = [key, key.replace("msg", "cpu")]
        unit = next(row.unit for row in ROWS if row.key == keys[0])
        cells = {lib: {k: Cell() for k in keys} for lib in libs}
        timeout = 60 + 3 * (s.warmup + s.duration)
        for repeat in range(s.repeats):
            shift = repeat % len(libs)
            shown = []
            for lib in libs[shift:] + libs[:shift]:
                if cells[lib][keys[0]].error is not None:
                    continue
                try:
                    client = self.pair(section, lib)
                    server = self.servers[self._server_key(section, lib)]
                    watch = CpuWatch([os.getpid(), client.pid, server.pid])
                    answer = client.request(
                        timeout, op=op, repeats=1, duration=s.duration, warmup=s.warmup, **command
                    )
                    background = watch.background()
                except BenchError as exc:
                    self.reset(section, lib)
                    for cell in cells[lib].values():
                        cell.error = str(exc)
                    shown.append(f"{lib} ERROR")
                    continue
                cells[lib][keys[0]].values += answer["values"]
                cells[lib][keys[1]].values += answer["p99" if key == "lat16" else "cpu_us"]
                for cell in cells[lib].values():
                    cell.background.append(background)
                busy = f" (busy {background:.0%})" if background > BUSY else ""
                shown.append(f"{lib} {format_value(answer['values'][0], unit)}{busy}")
            self.progress(
                f"{section:<6} {key:<10} run {repeat + 1}/{s.repeats}: {', '.join(shown)}"
            )
        for lib in libs:
            for k, cell in cells[lib].items():
                self.record(section, k, lib, cell)

    def measure_memory(self, section: str, lib: str, counts: list[int]) -> None:
        per_count: dict[int, Cell] = {n: Cell() for n in counts}
        for _ in range(self.s.mem_repeats):
            server: Child | None = None
            client: Child | None = None
            try:
                client_lib, peer, loop = self._client_spec(section, lib)
                if section in CLIENT_SECTIONS:
                    port = self.ports[self._server_key(section, lib)]
                else:
                    server, port = self.start_server(lib, self.s.loop, section)
                client = self.start_client(client_lib, port, peer, loop)
                measured = server if server is not None else client
                # Warm-up: 10 connections exchange messages and close.
                client.request(
                    60, op="throughput", size=16, conns=10, duration=0.05, warmup=0.0, repeats=1
                )
                base = settled_rss_kib(measured.pid)
                opened = 0
                for count in counts:
                    client.request(120, op="idle", count=count - opened)
                    opened = count
                    rss = settled_rss_kib(measured.pid)
                    per_count[count].values.append((rss - base) / count)
            except BenchError as exc:
                for cell in per_count.values():
                    cell.error = str(exc)
                break
            finally:
                for child in (client, server):
                    if child is not None:
                        child.stop()
        for count, cell in per_count.items():
            self.record(section, f"mem{count}", lib, cell)


# Report --------------------------------------------------------------------------------------


def table(results: Results, settings: Settings) -> str:
    lines = []
    width = 21
    resumed = (
        ", resumed inside the read callback" if settings.task_wakeup == "read-callback" else ""
    )
    for section in settings.sections:
        if section not in COLUMNS:
            continue  # the broadcast section prints its own table
        header = f"{'':<26}" + "".join(f"{column:>{width}}" for column in COLUMNS[section])
        names = NAMES[section]
        if section == "asgi":
            title = (
                f"ASGI (a Starlette echo endpoint under uvicorn {_version('uvicorn')}, one "
                f"column per --ws backend; --http httptools, loop {settings.loop}, "
                "ws_per_message_deflate off; load generator: "
                f"{settings.loadgen} client on {settings.loadgen_loop}, offering no compression)"
            )
        elif section == "threads-server":
            title = (
                f"THREADS SERVERS (one thread per connection and no event loop; load "
                f"generator: {settings.loadgen} client on {settings.loadgen_loop})"
            )
        elif section == "threads-client":
            title = (
                f"THREADS CLIENTS (one thread per connection; against a {FIXED_SERVER} server "
                f"on {settings.loadgen_loop})"
            )
        elif section == "server":
            title = (
                f"SERVERS (load generator: {settings.loadgen} client on "
                f"{settings.loadgen_loop}; servers on {settings.loop}; ceiling = plain "
                f"asyncio TCP echo; task echo = the same through a handler task{resumed}, the "
                "ceiling of an async-for API; task floor = the task echo over wsio's C frame "
                "parser and builder, the ceiling of an async-for WebSocket API)"
            )
        else:
            title = (
                f"CLIENTS (against a {FIXED_SERVER} server on {settings.loadgen_loop}; clients on "
                f"{settings.loop}; ceiling = raw client, pre-built frames; task client = the "
                f"same, a task awaiting each reply{resumed}, the ceiling of a send/recv API)"
            )
        section_lines = []
        for row in ROWS:
            cells = [results.get((section, row.key, name)) for name in names]
            if not row.shown or all(cell is None for cell in cells):
                continue
            reference = cells[0]
            text = f"{row.label:<26}" + "".join(
                f"{cell_text(cell, row.unit, reference, index == 0):>{width}}"
                for index, cell in enumerate(cells)
            )
            section_lines.append(text)
        if section_lines:
            lines += [title, header, *section_lines, ""]
    lines.append(
        "Median of the runs; × = library ÷ wsio (higher is better for msg/s and handshakes/s, "
        "lower for µs and KiB); ± = (max - min) / 2 / median;\nCPU = CPU time of the server "
        "(client) per message; * = other processes used over "
        f"{BUSY:.0%} of the CPUs: distrust msg/s, CPU µs hold better."
    )
    return "\n".join(lines)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"


def _versions() -> dict[str, str]:
    names = ["wsio", "websockets", "aiohttp", "picows", "aiofastnet", "uvloop"]
    names += ["uvicorn", "starlette", "httptools", "wsproto"]
    return {name: _version(name) for name in names}


def _wsio_speedups() -> bool | None:
    """Whether wsio runs its C accelerator, when it has one."""
    try:
        from wsio.protocol import masking
    except ImportError:
        return None
    speedups = getattr(masking, "SPEEDUPS", None)
    return None if speedups is None else bool(speedups)


def _git() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "src_dirty": bool(git("status", "-s", "src"))}
    except (OSError, subprocess.SubprocessError):
        return {}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def to_json(results: Results, settings: Settings, interrupted: bool, elapsed: float) -> Any:
    rows = []
    for section in settings.sections:
        if section not in COLUMNS:
            continue
        names = NAMES[section]
        for row in ROWS:
            cells = {name: results.get((section, row.key, name)) for name in names}
            if all(cell is None for cell in cells.values()):
                continue
            rows.append(
                {
                    "section": section,
                    "key": row.key,
                    "label": row.label,
                    "unit": row.unit,
                    "higher_is_better": row.higher_is_better,
                    "results": {
                        name: cell.to_json() for name, cell in cells.items() if cell is not None
                    },
                }
            )
    return {
        "meta": {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu": _cpu_model(),
            "cpus": os.cpu_count(),
            "versions": _versions(),
            "git": _git(),
            "wsio_speedups": _wsio_speedups(),
            "settings": dataclasses.asdict(settings),
            "fixed_server": f"{FIXED_SERVER} on {settings.loadgen_loop}",
            "elapsed_s": round(elapsed, 1),
            "interrupted": interrupted,
        },
        "rows": rows,
    }


# Command line --------------------------------------------------------------------------------


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _parse(argv: list[str] | None) -> tuple[Settings, str | None]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Echo benchmarks of wsio, websockets, aiohttp, picows and plain asyncio.",
        epilog="Rows: " + ", ".join(row.key for row in ROWS) + " (globs; prefix with a "
        "section's name and a dot for one section, e.g. --only 'msg16*,server.hs'); "
        "section asgi: " + ", ".join(row.key for row in section_rows("asgi")) + "; sections "
        "threads-server and threads-client: "
        + ", ".join(row.key for row in section_rows("threads-server"))
        + "; section broadcast: "
        + ", ".join(broadcast.KEYS)
        + ".",
    )
    parser.add_argument("--quick", action="store_true", help="3 x 0.1 s runs: about a minute")
    parser.add_argument("--json", metavar="PATH", help="write the results there as JSON")
    parser.add_argument("--only", metavar="ROWS", default="*", help="comma-separated rows")
    parser.add_argument(
        "--sections",
        default=",".join(DEFAULT_SECTIONS),
        help="comma-separated: server, client, broadcast, asgi, threads (threads-server "
        "and threads-client) (default: all but asgi)",
    )
    parser.add_argument("--servers", default=",".join(SERVERS), help="server columns")
    parser.add_argument("--clients", default=",".join(CLIENTS), help="client columns")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="asgi columns")
    parser.add_argument("--repeats", type=int, help="runs per row (5; quick: 3)")
    parser.add_argument("--duration", type=float, help="seconds per run (2; quick: 0.1)")
    parser.add_argument("--text", action="store_true", help="text messages instead of binary")
    parser.add_argument(
        "--uvloop", action="store_true", help="run the servers and the clients on uvloop"
    )
    parser.add_argument(
        "--loadgen",
        choices=("raw", "picows"),
        default=LOAD_GENERATOR,
        help="client for the server rows",
    )
    parser.add_argument(
        "--aiofastnet",
        action="store_true",
        help="let picows use aiofastnet (its default) instead of asyncio's transports",
    )
    parser.add_argument(
        "--task-wakeup",
        choices=("future", "read-callback"),
        default="future",
        help="how a read wakes the task of the task echo and the task client: through a "
        "future, as asyncio does (default), or inside the read callback, as wsio does",
    )
    parser.add_argument("--no-pin", action="store_true", help="don't pin processes to CPUs")
    args = parser.parse_args(argv)

    sections = tuple(
        dict.fromkeys(
            part for name in _split(args.sections) for part in SECTION_GROUPS.get(name, (name,))
        )
    )
    servers = tuple(_split(args.servers))
    clients = tuple(_split(args.clients))
    backends = tuple(_split(args.backends))
    for name, allowed, given in (
        ("--sections", SECTIONS, sections),
        ("--servers", SERVERS, servers),
        ("--clients", CLIENTS, clients),
        ("--backends", BACKENDS, backends),
    ):
        unknown = set(given) - set(allowed)
        if unknown:
            parser.error(f"{name}: unknown {', '.join(sorted(unknown))}")
    patterns = tuple(_split(args.only)) or ("*",)
    keys = [
        f"{section}.{row.key}"
        for section in sections
        if section in COLUMNS
        for row in section_rows(section)
    ]
    keys += [key.partition(".")[2] for key in keys]
    if "broadcast" in sections:
        keys += [*broadcast.KEYS, *(f"broadcast.{key}" for key in broadcast.KEYS)]
    for pattern in patterns:
        if not fnmatch.filter(keys, pattern):
            parser.error(f"--only: {pattern!r} matches no row")
    uvloop_installed = have_uvloop()
    if args.uvloop and not uvloop_installed:
        parser.error("--uvloop: uvloop isn't installed (pip install '.[bench]')")
    settings = Settings(
        quick=args.quick,
        repeats=args.repeats or (3 if args.quick else 5),
        duration=args.duration or (0.1 if args.quick else 2.0),
        warmup=0.05 if args.quick else 0.25,
        mem_repeats=1 if args.quick else 3,
        text=args.text,
        loop="uvloop" if args.uvloop else "asyncio",
        loadgen=args.loadgen,
        loadgen_loop="uvloop" if uvloop_installed else "asyncio",
        aiofastnet=args.aiofastnet,
        task_wakeup=args.task_wakeup,
        pin=not args.no_pin,
        sections=sections,
        libraries={
            "server": servers,
            "client": clients,
            "asgi": backends,
            "threads-server": THREADS,
            "threads-client": THREADS,
        },
        rows=patterns,
    )
    return settings, args.json


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    settings, json_path = _parse(argv)
    atexit.register(kill_children)
    # Ctrl-C, even when started with SIGINT ignored (in the background of a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    bench = Bench(settings)
    interrupted = False
    bench.progress(
        f"{settings.repeats} x {settings.duration} s runs; "
        f"sections {', '.join(settings.sections)}; rows {','.join(settings.rows)}"
    )
    try:
        for section in settings.sections:
            bench.run_section(section)
    except KeyboardInterrupt:
        interrupted = True
        bench.progress("interrupted: stopping the servers and clients")
    finally:
        kill_children()
    elapsed = time.monotonic() - bench.started
    if set(settings.sections) & set(COLUMNS):
        print(table(bench.results, settings))
    if "broadcast" in settings.sections:
        if set(settings.sections) & set(COLUMNS):
            print()
        print(
            broadcast.table(
                bench.broadcast_results, bench.broadcast_settings(), bench.broadcast_notes
            )
        )
    if interrupted:
        print("(interrupted: partial results)")
    if json_path is not None:
        data = to_json(bench.results, settings, interrupted, elapsed)
        if "broadcast" in settings.sections:
            data["broadcast"] = broadcast.to_json(bench.broadcast_results, bench.broadcast_notes)
        Path(json_path).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        bench.progress(f"results written to {json_path}")
    bench.progress(f"done in {elapsed:.0f} s")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
