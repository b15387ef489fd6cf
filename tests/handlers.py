"""Connection handlers that several test modules serve with."""

from __future__ import annotations

from typing import Any


class Capture:
    """An asyncio handler recording the server-side view of each connection, then
    echoing."""

    def __init__(self) -> None:
        self.connections: list[Any] = []

    async def __call__(self, ws: Any) -> None:
        self.connections.append(ws)
        async for message in ws:
            await ws.send(message)

    @property
    def request(self) -> Any:
        """The request of the last connection that reached the handler."""
        assert self.connections, "no connection reached the handler"
        return self.connections[-1].request
