"""Every Python example in the documentation runs as it is.

Each fenced ``python`` block of a page under ``docs/`` is a whole program -- a server on a
free port, a client talking to it, both closed at the end, or a computation that checks
itself -- run in a fresh interpreter, so that a block can't lean on what another one
imported or defined. It must exit with status 0 and write nothing to stderr. Blocks in other
languages (shell sessions, configuration files) are shown, not run. Some blocks show the
``websockets`` package, a test dependency, for comparison.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"

_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)

# The clients connect to 127.0.0.1 directly, whatever proxy the environment names.
_PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def _examples() -> list[tuple[str, int, str]]:
    """(page, number of the block on its page, code) for every Python block."""
    examples = []
    for page in sorted(DOCS.rglob("*.md")):
        name = page.relative_to(DOCS).as_posix()
        for number, code in enumerate(_BLOCK.findall(page.read_text(encoding="utf-8")), 1):
            examples.append((name, number, code))
    return examples


_EXAMPLES = _examples()


def _environment() -> dict[str, str]:
    return {
        name: value for name, value in os.environ.items() if name.lower() not in _PROXY_VARIABLES
    }


def test_the_docs_have_examples() -> None:
    pages = {page for page, _, _ in _EXAMPLES}
    assert "coming-from-websockets.md" in pages


@pytest.mark.parametrize(
    ("page", "number", "code"),
    _EXAMPLES,
    ids=[f"{page}-{number}" for page, number, _ in _EXAMPLES],
)
def test_example_runs(page: str, number: int, code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        env=_environment(),
        cwd=DOCS,
        check=False,
    )
    assert result.returncode == 0, f"{page}, block {number}:\n{result.stderr}"
    assert result.stderr == "", f"{page}, block {number}:\n{result.stderr}"
