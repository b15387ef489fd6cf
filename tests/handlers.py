"""Connection handlers that several test modules serve with."""

from __future__ import annotations

from http import HTTPStatus
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


def redirecting(location: str) -> Any:
    """A process_request hook that redirects requests for ``/old`` to ``location``."""

    def process_request(connection: Any, request: Any) -> Any:
        if request.path != "/old":
            return None
        response = connection.respond(HTTPStatus.FOUND, "moved\n")
        response.headers["Location"] = location
        return response

    return process_request
