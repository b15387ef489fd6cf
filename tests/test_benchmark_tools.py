"""The instruction counter of the benchmarks (``python -m benchmarks.instructions``) still
drives a wsio server connection: it reaches into the server's internals, so a change there
must not break it unnoticed. Nothing is timed or counted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run_worker(*args: str, **options: str) -> None:
    """Run an instruction counter's worker (``--worker ARGS``) with the ``BENCH_*``
    ``options`` in its environment; it fails if a message goes unanswered or isn't echoed."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.instructions", "--worker", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **options},
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("library", ["wsio", "task"])
@pytest.mark.parametrize("operation", ["handshake", "message"])
def test_instruction_counter_workers_run(library: str, operation: str) -> None:
    _run_worker(library, operation, "20")


@pytest.mark.parametrize("library", ["task-floor", "listener", "floor", "tcp", "picows"])
@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
def test_instruction_counter_callback_workers_echo(library: str, text: bool) -> None:
    """The task floor and the callback rows (a listener, the C floor, the plain TCP echo,
    picows' echo server) echo every message; the worker fails if one goes unanswered."""
    if library == "picows" and sys.platform != "linux":
        pytest.skip("picows is a test dependency on Linux only, as the benchmarks are")
    _run_worker(library, "message", "20", **({"BENCH_TEXT": "1"} if text else {}))


@pytest.mark.parametrize("library", ["wsio", "task", "listener", "raw", "picows"])
@pytest.mark.parametrize(
    "options",
    [{}, {"BENCH_TEXT": "1"}, {"BENCH_SIZE": "600000"}],
    ids=["binary", "text", "larger-than-a-read"],
)
def test_instruction_counter_client_workers_echo(library: str, options: dict[str, str]) -> None:
    """The client rows (wsio's coroutine and listener clients, the task and raw clients,
    picows' client) each make every round trip, its echo checked; the worker fails if one
    is missing or isn't the echo. An echo larger than a read buffer comes in several."""
    if library == "picows" and sys.platform != "linux":
        pytest.skip("picows is a test dependency on Linux only, as the benchmarks are")
    _run_worker(library, "client", "5", **options)


def test_task_floor_worker_joins_frames_split_over_reads() -> None:
    """The task floor keeps the start of a frame that a read ends in, and parses it whole
    with the next reads."""
    _run_worker("task-floor", "message", "5", BENCH_SIZE="70000", BENCH_READS="3")


@pytest.mark.skipif(
    bool(os.environ.get("WSIO_NO_SPEEDUPS")), reason="--pure swaps the C pieces for Python"
)
@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
def test_instruction_counter_swaps_every_c_piece(text: bool) -> None:
    """``--pure all`` (every C piece in Python), with large messages split over reads so
    that each piece has work to do, still echoes every message."""
    options = {"BENCH_PURE": "all", "BENCH_SIZE": "70000", "BENCH_READS": "3"}
    if text:
        options["BENCH_TEXT"] = "1"
    _run_worker("wsio", "message", "5", **options)


def _start_server(*args: str) -> tuple[subprocess.Popen[str], str]:
    """A server process of the benchmark (``python -m benchmarks.servers``, or another
    module's when given as ``-m MODULE``), and the port it listens on."""
    command = list(args) if args[0] == "-m" else ["-m", "benchmarks.servers", *args]
    server = subprocess.Popen(
        [sys.executable, *command],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    ready = server.stdout.readline()
    if not ready.startswith("READY "):
        server.kill()
        assert server.stderr is not None
        pytest.fail(f"server said {ready!r}: {server.stderr.read()}")
    return server, ready.split()[1]


def _run_client(args: list[str], commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run a client process of the benchmark on ``commands``; its answers, none an error
    and none a measurement of zero."""
    client = subprocess.run(
        [sys.executable, "-m", "benchmarks.clients", *args],
        cwd=ROOT,
        input="".join(json.dumps(command) + "\n" for command in commands),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert client.returncode == 0, client.stderr
    lines = client.stdout.splitlines()
    assert json.loads(lines[0]) == {"ready": True}
    results = [json.loads(line) for line in lines[1:]]
    assert len(results) == len(commands)
    for result in results:
        assert "error" not in result, result
        assert "values" not in result or result["values"][0] > 0, result
        # What instructions --socket divides by: the messages or handshakes of each run.
        assert "cpu_us" not in result or result["counts"][0] > 0, result
    return results


def _echo_and_hold(args: list[str]) -> None:
    """A client process of the benchmark echoes text and binary messages, small and large,
    opens and closes connections, and holds 5 idle ones."""
    results = _run_client(args, [*_echo_commands(text=True), {"op": "idle", "count": 5}])
    assert results[-1] == {"open": 5}


def _echo_commands(text: bool = False) -> list[dict[str, Any]]:
    """Small and large messages over one and several connections, then handshakes; with
    ``text``, the small ones over several connections are text."""
    commands = [
        {"op": "throughput", "size": size, "conns": conns, "repeats": 1, "text": text and is_text}
        | {"duration": 0.05, "warmup": 0.01}
        for size, conns, is_text in ((16, 1, False), (16, 4, True), (70_000, 2, False))
    ]
    commands.append({"op": "handshakes", "repeats": 1, "duration": 0.05, "warmup": 0.01})
    return commands


@pytest.mark.parametrize("task", ["task", "task-resumed"])
def test_task_client_and_task_echo_exchange_messages(task: str) -> None:
    """The API ceilings of the benchmark (the task echo and the task client), woken through
    a future or inside the read callback, echo and check real messages over loopback."""
    server, port = _start_server(task, "0", "--loop", "asyncio")
    try:
        _run_client([task, port, "--peer", "echo"], _echo_commands())
    finally:
        server.kill()
        server.wait(timeout=10)


def test_task_floor_answers_the_load_generator() -> None:
    """The task floor server echoes text and binary messages, small and large, as frames
    that the load generator checks byte for byte, and answers its close frames."""
    server, port = _start_server("task-floor", "0", "--loop", "asyncio")
    try:
        _echo_and_hold(["raw", port])
    finally:
        server.kill()
        server.wait(timeout=10)


@pytest.mark.parametrize("library", ["wsio-sync", "websockets-sync"])
def test_threads_server_and_client_exchange_messages(library: str) -> None:
    """The threads section's server of a library answers the load generator, which checks
    every byte, and the same library's threads client (a thread per connection) echoes and
    checks messages with it, opens and closes connections and holds idle ones."""
    if library == "websockets-sync":
        pytest.importorskip("websockets.sync.client")
    server, port = _start_server(library, "0")
    try:
        for client in ("raw", library):
            _echo_and_hold([client, port])
    finally:
        server.kill()
        server.wait(timeout=10)


@pytest.mark.parametrize("backend", ["wsio", "websockets-sansio", "wsproto", "ceiling"])
def test_asgi_echo_answers_the_load_generator(backend: str) -> None:
    """The ASGI section's server (a Starlette echo under uvicorn, one --ws backend each)
    echoes binary and text messages, small and large, to the load generator, which checks
    every byte, and completes opening and closing handshakes. The ceiling is a byte echo,
    checked as such."""
    pytest.importorskip("uvicorn")
    pytest.importorskip("starlette")
    if backend == "wsio":
        pytest.importorskip("wsio.asgi")
    server, port = _start_server("-m", "benchmarks.asgi", backend, "0", "--loop", "asyncio")
    try:
        peer = "echo" if backend == "ceiling" else "ws"
        _echo_and_hold(["raw", port, "--peer", peer])
    finally:
        server.kill()
        server.wait(timeout=10)


def test_asgi_section_is_selectable_with_its_rows() -> None:
    """``--sections asgi`` picks the ASGI section, with its own subset of rows; the default
    run leaves it out."""
    from benchmarks.__main__ import _parse, section_rows

    settings, _ = _parse(["--sections", "asgi", "--only", "asgi.msg16*,hs,mem1000"])
    assert settings.sections == ("asgi",)
    assert settings.libraries["asgi"] == ("wsio", "websockets-sansio", "wsproto", "ceiling")
    keys = {row.key for row in section_rows("asgi")}
    assert {"msg16x1", "msg16x16", "msg64kx1", "msg64kx16", "hs", "mem1000"} <= keys
    assert not keys & {"msg1kx1", "lat16.p50", "mem5000"}
    with pytest.raises(SystemExit):
        _parse(["--sections", "asgi", "--only", "asgi.lat16*"])
    default, _ = _parse([])
    assert "asgi" not in default.sections


def test_threads_sections_are_selectable_with_their_rows() -> None:
    """``--sections threads`` picks the servers and the clients over threads, with the
    message rows of 16 B and 64 KiB; the default run has them."""
    from benchmarks.__main__ import _parse, section_rows

    settings, _ = _parse(["--sections", "threads", "--only", "threads-client.msg16*"])
    assert settings.sections == ("threads-server", "threads-client")
    assert settings.libraries["threads-client"] == ("wsio-sync", "websockets-sync")
    keys = {row.key for row in section_rows("threads-server")}
    assert keys == {
        f"{kind}{size}x{conns}"
        for kind in ("msg", "cpu")
        for size in ("16", "64k")
        for conns in (1, 16)
    }
    with pytest.raises(SystemExit):
        _parse(["--sections", "threads", "--only", "threads-server.hs"])
    default, _ = _parse([])
    assert {"threads-server", "threads-client"} <= set(default.sections)
