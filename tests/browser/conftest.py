"""Fixtures of the browser tests: a headless Chromium driven over CDP, and the demo
server running in-process on a free port, or as ``wsio serve`` subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from cdp import CHROMIUM, Chromium

from wsio.cli.demo import demo_server


@pytest.fixture
async def browser() -> AsyncIterator[Chromium]:
    """A fresh headless Chromium, killed at teardown; skipped, loudly, if not installed."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(
            f"chromium not installed: {CHROMIUM} is missing, so the demo page can't be "
            "tested in a real browser; run `make test` as root or `apt-get install chromium`"
        )
    async with Chromium() as chromium:
        yield chromium


@pytest.fixture
async def demo_url() -> AsyncIterator[str]:
    """The demo (page, /chat, /echo) served in-process; its ``http://`` base URL."""
    async with demo_server("127.0.0.1", 0, None) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"


DemoProcess = Callable[..., Awaitable[str]]


@pytest.fixture
async def demo_process(tmp_path: Path) -> AsyncIterator[DemoProcess]:
    """A factory: ``await demo_process(*args)`` starts ``wsio serve --host 127.0.0.1
    --port 0 ARGS`` as a subprocess (``--redis URL``, say) and returns its ``http://`` base
    URL once it listens. Every process started is killed at teardown."""
    procs: list[asyncio.subprocess.Process] = []

    async def start(*args: str) -> str:
        # A file, not a pipe: nobody has to read it for the server to go on.
        err_path = tmp_path / f"wsio-serve-{len(procs) + 1}.err"
        with err_path.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "wsio", "serve", "--host", "127.0.0.1", "--port", "0"),
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
            )
        procs.append(proc)
        assert proc.stdout is not None
        async with asyncio.timeout(10):
            line = (await proc.stdout.readline()).decode()
        match = re.fullmatch(r"wsio demo listening on (http://127\.0\.0\.1:\d+)/\n", line)
        assert match, f"unexpected first line {line!r}; stderr: {err_path.read_text()!r}"
        return match.group(1)

    try:
        yield start
    finally:
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
