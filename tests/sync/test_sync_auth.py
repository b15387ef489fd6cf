"""wsio.basic_auth on the threads server: the same hook as on the asyncio server."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

import wsio
import wsio.sync


@pytest.fixture
def authenticated() -> Iterator[Callable[..., int]]:
    """Serve ``basic_auth(**kwargs)`` in front of a handler that sends the username;
    return the port."""
    servers: list[tuple[wsio.sync.Server, threading.Thread]] = []

    def start(**kwargs: Any) -> int:
        def greet(ws: wsio.sync.ServerConnection) -> None:
            ws.send(ws.username or "")

        server = wsio.sync.serve(
            greet, "127.0.0.1", 0, process_request=wsio.sync.basic_auth(**kwargs)
        )
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return int(server.socket.getsockname()[1])

    yield start
    for server, thread in servers:
        server.shutdown()
        thread.join(5)


def status_of(uri: str) -> int:
    with pytest.raises(wsio.InvalidStatus) as caught:
        wsio.sync.connect(uri, open_timeout=5)
    return caught.value.response.status_code


def test_credentials_let_in_and_others_are_challenged(
    authenticated: Callable[..., int],
) -> None:
    port = authenticated(realm="test", credentials=("alice", "s3cret"))
    with wsio.sync.connect(f"ws://alice:s3cret@127.0.0.1:{port}/", open_timeout=5) as ws:
        assert ws.recv(timeout=5) == "alice"
    with pytest.raises(wsio.InvalidStatus) as caught:
        wsio.sync.connect(f"ws://127.0.0.1:{port}/", open_timeout=5)
    response = caught.value.response
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="test", charset="UTF-8"'
    assert status_of(f"ws://alice:wrong@127.0.0.1:{port}/") == 401


def test_plain_check_credentials(authenticated: Callable[..., int]) -> None:
    port = authenticated(check_credentials=lambda username, password: password == "ok")
    with wsio.sync.connect(f"ws://bob:ok@127.0.0.1:{port}/", open_timeout=5) as ws:
        assert ws.recv(timeout=5) == "bob"
    assert status_of(f"ws://bob:no@127.0.0.1:{port}/") == 401


def test_check_that_needs_a_loop_is_a_500_not_a_way_in(
    authenticated: Callable[..., int],
) -> None:
    async def check(username: str, password: str) -> bool:
        return False

    port = authenticated(check_credentials=check)
    assert status_of(f"ws://bob:no@127.0.0.1:{port}/") == 500


def test_check_returning_something_else_than_a_bool_is_a_500(
    authenticated: Callable[..., int],
) -> None:
    # An awaitable that is no coroutine, say: truthy, it must not let anyone in.
    class Pending:
        def __await__(self) -> Any:
            yield

    def check(username: str, password: str) -> Awaitable[bool]:
        return Pending()

    port = authenticated(check_credentials=lambda username, password: "yes")
    assert status_of(f"ws://bob:no@127.0.0.1:{port}/") == 500
    port = authenticated(check_credentials=check)
    assert status_of(f"ws://bob:no@127.0.0.1:{port}/") == 500
