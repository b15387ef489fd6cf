"""Fixtures of the browser tests: a headless Chromium driven over CDP, and the demo
server running in-process on a free port."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

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
