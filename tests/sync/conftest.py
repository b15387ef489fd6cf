"""Fixtures of the threads layer's tests: threads servers run in the background."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from threads_servers import Servers


@pytest.fixture
def servers() -> Iterator[Servers]:
    manager = Servers()
    yield manager
    manager.stop_all()
