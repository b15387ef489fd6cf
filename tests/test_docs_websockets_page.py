"""docs/coming-from-websockets.md: every Python block of the page runs as it is.

Each block is a whole program -- a server on a free port, a client talking to it, both
closed at the end -- run in a fresh interpreter, so that a block can't lean on what another
one imported or defined. The ``websockets`` blocks show the code before a port and need the
``websockets`` package, a test dependency.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = Path(__file__).parent.parent / "docs" / "coming-from-websockets.md"

_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)

# The clients connect to 127.0.0.1 directly, whatever proxy the environment names.
_PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def _blocks() -> list[str]:
    return _BLOCK.findall(PAGE.read_text(encoding="utf-8"))


def _environment() -> dict[str, str]:
    return {
        name: value for name, value in os.environ.items() if name.lower() not in _PROXY_VARIABLES
    }


def test_the_page_has_its_ports_side_by_side() -> None:
    blocks = _blocks()
    assert len(blocks) == 6
    assert sum("import wsio" in block for block in blocks) == 3


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_block_runs(index: int) -> None:
    block = _blocks()[index]
    result = subprocess.run(
        [sys.executable, "-c", block],
        capture_output=True,
        text=True,
        timeout=30,
        env=_environment(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Nothing logged or warned: a block that closes a connection badly would show here.
    assert result.stderr == ""
    assert "hello" in result.stdout
