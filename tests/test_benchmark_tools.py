"""The instruction counter of the benchmarks (``python -m benchmarks.instructions``) still
drives a wsio server connection: it reaches into the server's internals, so a change there
must not break it unnoticed. Nothing is timed or counted here."""

from __future__ import annotations

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
