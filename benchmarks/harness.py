"""What the orchestrators of the benchmark share: child processes spoken to with JSON lines,
the share of the CPUs that other processes used, the resident set of a process, results and
how a table cell shows them.

:mod:`benchmarks.__main__` (the echo rows) and :mod:`benchmarks.broadcast` (the broadcast
rows) both use them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

__all__ = [
    "BUSY",
    "BenchError",
    "Cell",
    "Child",
    "CpuWatch",
    "cell_text",
    "format_value",
    "kill_children",
    "rss_kib",
    "settled_rss_kib",
]

ROOT = Path(__file__).resolve().parent.parent

#: Share of the CPUs used by other processes above which a run is flagged.
BUSY = 0.10


# Results -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Cell:
    values: list[float] = dataclasses.field(default_factory=list)
    error: str | None = None
    #: Share of the CPUs that other processes used during each run (see CpuWatch).
    background: list[float] = dataclasses.field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> float:
        """(max - min) / median."""
        median = self.median
        return (max(self.values) - min(self.values)) / median if median else 0.0

    def to_json(self) -> dict[str, Any]:
        if self.error is not None or not self.values:
            return {"error": self.error or "not measured"}
        return {
            "median": self.median,
            "min": min(self.values),
            "max": max(self.values),
            "spread": self.spread,
            "values": self.values,
            "background_cpu": [round(share, 3) for share in self.background],
        }


# Child processes -----------------------------------------------------------------------------


class BenchError(Exception):
    """A measurement failed: a child reported an error, died or didn't answer in time."""


_CHILDREN: set[Child] = set()


class Child:
    """A server or client process, spoken to with JSON lines."""

    def __init__(
        self,
        module: str,
        args: list[str],
        cpu: int | None,
        label: str,
        prefix: tuple[str, ...] = (),
    ) -> None:
        """``prefix``: what runs the interpreter (a ``valgrind`` command line), if anything."""
        self.label = label
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        command = [*prefix, sys.executable, "-X", "faulthandler", "-m", module, *args]
        if cpu is not None:
            command += ["--cpu", str(cpu)]
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            cwd=ROOT,
            start_new_session=True,  # Ctrl-C reaches the orchestrator only
        )
        _CHILDREN.add(self)
        self._buffer = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def readline(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"{self.label}: no answer within {timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.proc.wait(5)
                    raise BenchError(
                        f"{self.label} exited ({self.proc.returncode}): {self.stderr_tail()}"
                    )
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def ready_port(self, timeout: float) -> int:
        """The port that a server process says it listens on (``READY <port>``)."""
        line = self.readline(timeout)
        if not line.startswith("READY "):
            raise BenchError(f"{self.label} said {line!r}")
        return int(line.split()[1])

    def request(self, timeout: float, **command: Any) -> dict[str, Any]:
        self.send(**command)
        return self.answer(timeout)

    def send(self, **command: Any) -> None:
        """Send a command without reading its answer: several children can then work on
        theirs at once, each answer read after with :meth:`answer`."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(command).encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise BenchError(f"{self.label} is gone: {self.stderr_tail()}") from None

    def answer(self, timeout: float) -> dict[str, Any]:
        """The answer to the command sent last; an error answer raises :class:`BenchError`."""
        answer: dict[str, Any] = json.loads(self.readline(timeout))
        if "error" in answer:
            raise BenchError(f"{self.label}: {answer['error']}")
        return answer

    def stderr_tail(self, size: int = 600) -> str:
        self.log.seek(0, os.SEEK_END)
        self.log.seek(max(0, self.log.tell() - size))
        return self.log.read().decode(errors="replace").strip().replace("\n", " | ")

    def stop(self) -> None:
        if self.alive():
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self.log.close()
        _CHILDREN.discard(self)


def kill_children() -> None:
    for child in list(_CHILDREN):
        child.stop()


class CpuWatch:
    """How much CPU time processes other than ours used meanwhile: a busy machine (a build,
    a test suite) skews a run, and this says which runs to distrust."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.start = time.monotonic()
        self.busy = self._busy()
        self.ours = self._ours()

    @staticmethod
    def _busy() -> int:
        with open("/proc/stat") as stat:
            fields = [int(field) for field in stat.readline().split()[1:9]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields
        return user + nice + system + irq + softirq + steal

    def _ours(self) -> int:
        total = 0
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    fields = stat.read().rpartition(")")[2].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total

    def background(self) -> float:
        """Share of all CPUs used by other processes since the start (0 to 1)."""
        elapsed = time.monotonic() - self.start
        ticks = elapsed * os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
        others = (self._busy() - self.busy) - (self._ours() - self.ours)
        return max(0.0, others / ticks) if ticks else 0.0


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for {pid}")


def settled_rss_kib(pid: int, limit: float = 3.0) -> int:
    """RSS once it stops moving: two readings 0.1 s apart within 64 KiB."""
    deadline = time.monotonic() + limit
    previous = rss_kib(pid)
    while True:
        time.sleep(0.1)
        current = rss_kib(pid)
        if abs(current - previous) <= 64 or time.monotonic() > deadline:
            return current
        previous = current


# Report --------------------------------------------------------------------------------------


def format_value(value: float, unit: str) -> str:
    if unit in ("msg/s", "1/s"):
        if value >= 1e6:
            return f"{value / 1e6:.2f}M"
        if value >= 1e3:
            return f"{value / 1e3:.1f}k"
        return f"{value:.0f}"
    if value >= 1000 or unit == "msg":
        return f"{value:.0f}"
    return f"{value:.1f}"


def cell_text(cell: Cell | None, unit: str, reference: Cell | None, is_reference: bool) -> str:
    if cell is None:
        return "-"
    if cell.error is not None or not cell.values:
        return "error"
    text = format_value(cell.median, unit)
    if (
        not is_reference
        and reference is not None
        and reference.error is None
        and reference.values
        and reference.median
    ):
        text += f" {cell.median / reference.median:.2f}×"
    busy = "*" if cell.background and statistics.median(cell.background) > BUSY else " "
    return f"{text} ±{cell.spread * 50:.0f}%{busy}"
