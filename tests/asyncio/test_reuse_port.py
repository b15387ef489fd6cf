"""wsio.serve(..., reuse_port=True): several servers listening on one port (Linux
SO_REUSEPORT), each accepting a share of the connections."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Awaitable, Callable

import pytest

import wsio

T = 10.0

# The kernel picks a server by a hash of each connection's addresses: with a new client
# port every time, 200 attempts all landing on one of two servers has probability 2**-199.
ATTEMPTS = 200

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or not hasattr(socket, "SO_REUSEPORT"),
    reason="SO_REUSEPORT spreads connections on Linux only",
)


def greeter(name: str) -> Callable[[wsio.ServerConnection], Awaitable[None]]:
    """A handler that sends ``name`` and closes: the client learns which server it reached."""

    async def handler(ws: wsio.ServerConnection) -> None:
        await ws.send(name)

    return handler


async def test_two_servers_share_a_port() -> None:
    async with asyncio.timeout(T):
        async with wsio.serve(greeter("first"), "127.0.0.1", 0, reuse_port=True) as first:
            port = first.sockets[0].getsockname()[1]
            async with wsio.serve(greeter("second"), "127.0.0.1", port, reuse_port=True):
                seen: set[str | bytes] = set()
                for _ in range(ATTEMPTS):
                    async with wsio.connect(f"ws://127.0.0.1:{port}/") as ws:
                        seen.add(await ws.recv())
                    if len(seen) == 2:
                        break
    assert seen == {"first", "second"}


async def test_without_reuse_port_the_port_is_taken() -> None:
    """Both servers must ask for it: a server without ``reuse_port`` can't join."""
    async with wsio.serve(greeter("first"), "127.0.0.1", 0, reuse_port=True) as first:
        port = first.sockets[0].getsockname()[1]
        with pytest.raises(OSError):
            await wsio.serve(greeter("second"), "127.0.0.1", port)
