"""``wsio serve --workers N`` and ``wsio echo --workers N``: a parent process and N workers
sharing one port (SO_REUSEPORT), run as subprocesses and watched through /proc."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import wsio
from wsio.cli import main
from wsio.cli import workers as workers_module
from wsio.cli.workers import REUSE_PORT, supervise

T = 10.0  # a bound on every wait, subprocess start-up included

# Health checks sent before giving up on seeing every worker answer: the kernel picks a
# worker by a hash of the connection's addresses, new for each connection, so that 200
# all missing one of two workers has probability 2**-199.
ATTEMPTS = 200
ATTEMPTS_TIME = 20.0

Process = asyncio.subprocess.Process

linux_only = pytest.mark.skipif(not REUSE_PORT, reason="--workers needs Linux (SO_REUSEPORT)")

LINE = {"serve": "wsio demo listening on http", "echo": "wsio echo server listening on ws"}


# Processes, seen through /proc ------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid...); ``None``
    when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The name, in parentheses, may hold spaces and parentheses itself.
    return text.rpartition(")")[2].split()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped, doesn't)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and fields[1] == str(pid) and fields[0] != "Z":
                found.append(int(entry))
    return found


def workers_of(pid: int) -> dict[int, int]:
    """The workers of the parent ``pid``: their index (from ``--as-worker``) to their PID."""
    found = {}
    for child in children(pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if b"--as-worker" in argv:
                found[int(argv[argv.index(b"--as-worker") + 1])] = child
    return found


async def wait_for_workers(
    parent: int, indexes: set[int], *, not_pids: frozenset[int] = frozenset()
) -> dict[int, int]:
    """Wait (bounded) until the parent runs workers with exactly ``indexes``, none of them
    one of ``not_pids``; return them."""
    async with asyncio.timeout(T):
        while True:
            found = workers_of(parent)
            if set(found) == indexes and not set(found.values()) & not_pids:
                return found
            await asyncio.sleep(0.02)


async def wait_gone(pids: list[int]) -> None:
    """Wait (bounded) until none of ``pids`` runs."""
    async with asyncio.timeout(T):
        while any(alive(pid) for pid in pids):
            await asyncio.sleep(0.02)


# The command ------------------------------------------------------------------------------------


class Running:
    """The ``wsio`` processes started by a test; at teardown, those still running are
    killed, and their workers with them."""

    def __init__(self) -> None:
        self.procs: list[Process] = []

    async def start(self, *args: str) -> Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wsio",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self.procs.append(proc)
        return proc

    async def start_workers(
        self, command: str, *args: str, workers: int = 2
    ) -> tuple[Process, int]:
        """Start ``wsio COMMAND --host 127.0.0.1 --port 0 --workers N ARGS``; check that it
        printed the single-process command's line, once; return it and the port."""
        proc = await self.start(
            command, "--host", "127.0.0.1", "--port", "0", "--workers", str(workers), *args
        )
        assert proc.stdout is not None
        async with asyncio.timeout(T):
            line = (await proc.stdout.readline()).decode()
        match = re.fullmatch(rf"{LINE[command]}://127\.0\.0\.1:(\d+)/\n", line)
        assert match, f"unexpected first line: {line!r}"
        return proc, int(match.group(1))

    async def cleanup(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                workers = list(workers_of(proc.pid).values())
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                for pid in workers:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    r = Running()
    try:
        yield r
    finally:
        await r.cleanup()


async def finish(proc: Process) -> tuple[int, str, str]:
    """Wait (bounded) for ``proc`` to exit; return status, the rest of stdout, stderr."""
    async with asyncio.timeout(T):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def stop(proc: Process, signum: int = signal.SIGTERM) -> tuple[int, str, str]:
    """Signal the parent; check that it exits with 0, leaving no worker; return what
    :func:`finish` does."""
    workers = list(workers_of(proc.pid).values())
    assert workers
    proc.send_signal(signum)
    status, out, err = await finish(proc)
    assert status == 0, err
    assert out == ""
    assert "Traceback" not in err
    await wait_gone(workers)
    return status, out, err


async def answering_worker(port: int) -> str | None:
    """``GET /healthz``: the ``Wsio-Worker`` header of the answer (``""`` without one),
    or ``None`` when the connection failed (refused, or reset by a worker just killed)."""
    try:
        async with asyncio.timeout(T):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(
                    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                )
                data = await reader.read()
            finally:
                # The server waits for the client to close before it lets go of the connection.
                writer.close()
    except ConnectionError:
        return None
    if not data:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), data
    assert body == b"OK\n"
    match = re.search(rb"\r\nWsio-Worker: ([^\r]*)", head)
    return "" if match is None else match.group(1).decode()


async def until_all_answer(port: int, indexes: set[int]) -> None:
    """Ask /healthz until every worker of ``indexes`` has answered, and only those."""
    expected = {str(index) for index in indexes}
    seen: set[str] = set()
    async with asyncio.timeout(ATTEMPTS_TIME):
        for _ in range(ATTEMPTS):
            if (worker := await answering_worker(port)) is not None:
                assert worker in expected
                seen.add(worker)
            if seen == expected:
                return
            # A worker just started again may take a moment to listen.
            await asyncio.sleep(0.01)
    raise AssertionError(f"only workers {sorted(seen)} answered")


# wsio serve --workers ---------------------------------------------------------------------------


@linux_only
async def test_serve_workers_share_the_port(running: Running) -> None:
    proc, port = await running.start_workers("serve")
    assert set(workers_of(proc.pid)) == {1, 2}
    await until_all_answer(port, {1, 2})
    async with asyncio.timeout(T), wsio.connect(f"ws://127.0.0.1:{port}/echo") as ws:
        await ws.send("through a worker")
        assert await ws.recv() == "through a worker"
    _, _, err = await stop(proc)
    assert err == ""


@linux_only
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_signal_stops_workers_and_connections_get_1001(
    running: Running, signum: int
) -> None:
    proc, port = await running.start_workers("serve")
    async with asyncio.timeout(T):
        clients = [await wsio.connect(f"ws://127.0.0.1:{port}/echo") for _ in range(6)]
        for ws in clients:
            await ws.send("before")
            assert await ws.recv() == "before"
    await stop(proc, signum)
    async with asyncio.timeout(T):
        for ws in clients:
            with pytest.raises(wsio.ConnectionClosedOK):
                await ws.recv()
            assert ws.close_code == 1001


@linux_only
async def test_killed_worker_is_started_again(running: Running) -> None:
    proc, port = await running.start_workers("serve")
    first = await wait_for_workers(proc.pid, {1, 2})
    os.kill(first[1], signal.SIGKILL)
    again = await wait_for_workers(proc.pid, {1, 2}, not_pids=frozenset({first[1]}))
    assert again[2] == first[2]
    await until_all_answer(port, {1, 2})
    _, _, err = await stop(proc)
    assert err == "wsio: worker 1 exited (killed by SIGKILL); starting it again\n"


@linux_only
async def test_workers_that_keep_exiting_are_given_up(running: Running) -> None:
    """More than 5 exits within 10 s: the parent stops the others and exits with 1."""
    proc, _ = await running.start_workers("serve")
    killed: set[int] = set()
    deadline = time.monotonic() + T
    while proc.returncode is None and time.monotonic() < deadline:
        for pid in set(workers_of(proc.pid).values()) - killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.05)
    status, out, err = await finish(proc)
    assert status == 1, err
    assert out == ""
    assert err.endswith(", 6 worker exits within 10 s: giving up\n"), err
    assert err.count("starting it again") == 5
    assert "Traceback" not in err
    await wait_gone(list(killed))
    assert len(killed) >= 6


@linux_only
async def test_workers_stop_when_the_parent_is_killed(running: Running) -> None:
    """A worker left without its parent doesn't go on serving the port."""
    proc, port = await running.start_workers("serve")
    workers = list((await wait_for_workers(proc.pid, {1, 2})).values())
    proc.kill()
    await finish(proc)
    await wait_gone(workers)
    assert await answering_worker(port) is None


@linux_only
async def test_one_worker_is_the_single_process(running: Running) -> None:
    """``--workers 1``, the default: no worker process, no Wsio-Worker header."""
    proc, port = await running.start_workers("serve", workers=1)
    assert children(proc.pid) == []
    assert await answering_worker(port) == ""
    proc.send_signal(signal.SIGTERM)
    status, out, err = await finish(proc)
    assert (status, out, err) == (0, "", "")


# wsio echo --workers ----------------------------------------------------------------------------


@linux_only
async def test_echo_workers(running: Running) -> None:
    proc, port = await running.start_workers("echo", "--max-size", "100")
    assert set(workers_of(proc.pid)) == {1, 2}
    async with asyncio.timeout(T):
        for number in range(8):
            async with wsio.connect(f"ws://127.0.0.1:{port}/") as ws:
                await ws.send(f"message {number}")
                assert await ws.recv() == f"message {number}"
        # Every worker got the options.
        async with wsio.connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("x" * 101)
            with pytest.raises(wsio.ConnectionClosedError):
                await ws.recv()
        assert ws.close_code == 1009
    await stop(proc)


# The address ------------------------------------------------------------------------------------


@linux_only
@pytest.mark.parametrize("command", ["serve", "echo"])
async def test_port_in_use(running: Running, command: str) -> None:
    """A port bound by someone without SO_REUSEPORT: status 1 and one line, no worker."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        proc = await running.start(
            command, "--host", "127.0.0.1", "--port", str(port), "--workers", "2"
        )
        status, out, err = await finish(proc)
    assert status == 1
    assert out == ""
    assert err.startswith(f"wsio: couldn't listen on 127.0.0.1:{port}: "), err
    assert "address already in use" in err
    assert err.count("\n") == 1


@linux_only
async def test_port_of_another_workers_server(running: Running) -> None:
    """SO_REUSEPORT would let a second set of workers join the first one's port: it
    is refused as a single process would be."""
    first, port = await running.start_workers("serve")
    proc = await running.start(
        "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"
    )
    status, out, err = await finish(proc)
    assert status == 1
    assert out == ""
    assert err.startswith(f"wsio: couldn't listen on 127.0.0.1:{port}: "), err
    await until_all_answer(port, {1, 2})
    await stop(first)


@linux_only
async def test_host_that_cannot_be_bound(running: Running) -> None:
    proc = await running.start("echo", "--host", "ex..ample", "--port", "0", "--workers", "2")
    status, out, err = await finish(proc)
    assert status == 1
    assert out == ""
    assert err.startswith("wsio: couldn't listen on ex..ample:0: ")
    assert err.count("\n") == 1


# Arguments --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "value"), [("serve", "0"), ("serve", "x"), ("echo", "257"), ("echo", "-1")]
)
async def test_bad_workers(running: Running, command: str, value: str) -> None:
    proc = await running.start(command, "--port", "0", "--workers", value)
    status, out, err = await finish(proc)
    assert status == 2
    assert out == ""
    assert f"argument --workers: expected a whole number from 1 to 256, got {value!r}" in err
    assert "Traceback" not in err


async def test_help_shows_workers_but_not_the_worker_option(running: Running) -> None:
    proc = await running.start("serve", "--help")
    status, out, _ = await finish(proc)
    assert status == 0
    assert "--workers N" in out
    assert "--as-worker" not in out


def test_refused_without_reuse_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where the kernel doesn't spread connections among processes, --workers above 1 is
    a usage error."""
    monkeypatch.setattr(workers_module, "REUSE_PORT", False)
    assert main(["echo", "--port", "0", "--workers", "2"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "wsio: --workers 2: sharing a port among processes needs Linux (SO_REUSEPORT)\n"


# supervise(), with stand-in workers -------------------------------------------------------------

STUBBORN = """\
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(60)
"""


@linux_only
async def test_workers_ignoring_sigterm_are_killed(capsys: pytest.CaptureFixture[str]) -> None:
    """SIGTERM first; SIGKILL for the workers still running after the stop timeout. The
    first line is printed once every worker has sent one."""
    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    supervising = asyncio.create_task(
        supervise(lambda index: [sys.executable, "-c", STUBBORN], 2, stop, stop_timeout=0.5)
    )
    try:
        out = ""
        async with asyncio.timeout(T):
            while "ready" not in out:
                out += capsys.readouterr().out
                await asyncio.sleep(0.02)
        assert out == "ready\n"
        stubborn = [
            pid
            for pid in children(os.getpid())
            if STUBBORN.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        assert len(stubborn) == 2
    finally:
        stop.set_result(None)
        async with asyncio.timeout(T):
            status = await supervising
    assert status == 0
    await wait_gone(stubborn)
    assert capsys.readouterr() == ("", "")


class _RecordingStream:
    """A stderr that keeps each write apart."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_error_line_is_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers share their parent's stderr: each error line, newline included, goes out in
    one write, which another process's line can't cut in two."""
    from wsio.cli.common import error_line

    stream = _RecordingStream()
    monkeypatch.setattr(sys, "stderr", stream)
    error_line("can't reach redis at redis://127.0.0.1:1/0: refused")
    assert stream.writes == ["wsio: can't reach redis at redis://127.0.0.1:1/0: refused\n"]
