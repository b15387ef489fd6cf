"""What the tests of reconnecting clients share, on either I/O layer: a backoff of a few
milliseconds, the retries logged, a port where nothing listens, a server hook that
refuses for a while."""

from __future__ import annotations

import socket
from http import HTTPStatus
from typing import Any

import pytest

import wsio

#: Pauses of 10, 20, 40, then 50 ms, without jitter.
FAST = wsio.Backoff(initial_delay=0.01, factor=2.0, max_delay=0.05, jitter=0.0)
#: No test needs more turns of its loop.
TURNS = 10
#: What the client logs when a 503 with ``Retry-After: 1`` refused it (see :func:`answering`):
#: the server's delay, cut to :data:`FAST`'s ``max_delay``.
RETRIED_503 = (
    "connection failed: InvalidStatus: server rejected WebSocket connection: HTTP 503; "
    "reconnecting in 0.05 s"
)


def retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The lines that the client logged for each retry, in order."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "wsio.client" and "reconnecting in" in record.getMessage()
    ]


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago: nothing listens there."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answering(statuses: list[int]) -> tuple[Any, list[int]]:
    """A process_request hook answering the first requests with ``statuses`` (a
    ``Retry-After: 1`` with each 503), then upgrading; and the list of answers given."""
    given: list[int] = []

    def process_request(connection: Any, request: Any) -> Any:
        if len(given) < len(statuses):
            status = statuses[len(given)]
            given.append(status)
            response = connection.respond(status, "not now\n")
            if status == HTTPStatus.SERVICE_UNAVAILABLE:
                response.headers["Retry-After"] = "1"
            return response
        given.append(101)
        return None

    return process_request, given
