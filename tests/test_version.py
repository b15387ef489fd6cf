"""``wsio.__version__``: one literal, the one the build writes into the package metadata."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import wsio
from wsio import defaults


def test_version_matches_the_installed_metadata() -> None:
    assert wsio.__version__ == importlib.metadata.version("wsio")


def test_headers_announce_the_version() -> None:
    assert f"wsio/{wsio.__version__}" == defaults.USER_AGENT
    assert f"wsio/{wsio.__version__}" == defaults.SERVER_HEADER


def test_import_does_not_load_importlib_metadata() -> None:
    # Reading the metadata costs tens of milliseconds at every start of a program.
    code = "import sys, wsio; print('importlib.metadata' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout == "False\n"
