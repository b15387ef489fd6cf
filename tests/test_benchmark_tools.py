"""The instruction counter of the benchmarks (``python -m benchmarks.instructions``) still
drives a wsio server connection: it reaches into the server's internals, so a change there
must not break it unnoticed. Nothing is timed or counted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("library", ["wsio", "task"])
@pytest.mark.parametrize("operation", ["handshake", "message"])
def test_instruction_counter_workers_run(library: str, operation: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.instructions", "--worker", library, operation, "20"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("task", ["task", "task-resumed"])
def test_task_client_and_task_echo_exchange_messages(task: str) -> None:
    """The API ceilings of the benchmark (the task echo and the task client), woken through
    a future or inside the read callback, echo and check real messages over loopback."""
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.servers", task, "0", "--loop", "asyncio"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready = server.stdout.readline()
        assert ready.startswith("READY "), ready
        port = ready.split()[1]
        commands = [
            {"op": "throughput", "size": size, "conns": conns, "repeats": 1}
            | {"duration": 0.05, "warmup": 0.01}
            for size, conns in ((16, 1), (16, 4), (70_000, 2))
        ]
        commands.append({"op": "handshakes", "repeats": 1, "duration": 0.05, "warmup": 0.01})
        client = subprocess.run(
            [sys.executable, "-m", "benchmarks.clients", task, port, "--peer", "echo"],
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
            assert result["values"][0] > 0
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
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.asgi", backend, "0", "--loop", "asyncio"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready = server.stdout.readline()
        assert ready.startswith("READY "), (ready, server.stderr and server.stderr.read())
        port = ready.split()[1]
        commands = [
            {"op": "throughput", "size": size, "conns": conns, "repeats": 1, "text": text}
            | {"duration": 0.05, "warmup": 0.01}
            for size, conns, text in ((16, 1, False), (16, 4, True), (70_000, 2, False))
        ]
        commands.append({"op": "handshakes", "repeats": 1, "duration": 0.05, "warmup": 0.01})
        commands.append({"op": "idle", "count": 5})
        peer = "echo" if backend == "ceiling" else "ws"
        client = subprocess.run(
            [sys.executable, "-m", "benchmarks.clients", "raw", port, "--peer", peer],
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
        for result in results[:-1]:
            assert result["values"][0] > 0
        assert results[-1] == {"open": 5}
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
