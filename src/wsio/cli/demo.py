"""``wsio serve``: the demo (being written)."""

from __future__ import annotations


async def serve_demo(host: str, port: int, max_size: int | None) -> int:
    """Run the demo server until interrupted; return the exit status."""
    raise NotImplementedError
