"""Shared by the interop tests: sample messages, limits, and a recording wsio server."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import wsio
from layers import Layer

# Every wait in these tests is bounded by this many seconds (pytest-timeout adds its own 60 s).
STEP = 10.0
# Large messages: a little over 1 MiB, with a 4 MiB limit on both sides.
LARGE = 2**20 + 1024
MAX_SIZE = 4 * 2**20

TEXTS: list[str] = [
    "hello",
    "héllo wörld ✓ — 你好 — 🎉🚀",
    "a" * 300,
    "\x00 nul and \u2028 separator",
]
BINARIES: list[bytes] = [b"\x00\x01\x02\xff", bytes(range(256)), b"\xc3\x28 not utf-8"]
SAMPLES: list[str | bytes] = [*TEXTS, *BINARIES]


def large_binary() -> bytes:
    return os.urandom(LARGE)


def large_text() -> str:
    unit = "0123456789abcdef€✓🎉"  # 1-, 3- and 4-byte UTF-8 sequences
    text = unit * (LARGE // len(unit.encode("utf-8")) + 1)
    return text


# --- a wsio server whose handler records what it saw ---


@dataclass
class HandlerLog:
    """What a wsio server handler saw."""

    messages: list[str | bytes] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None
    error: BaseException | None = None
    latencies: list[float] = field(default_factory=list)
    connection: Any = None
    got_message: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)


Behaviour = Callable[[Any, HandlerLog], Awaitable[None]]


async def echo(ws: Any, log: HandlerLog) -> None:
    async for message in ws:
        log.messages.append(message)
        await ws.send(message)
        log.got_message.set()


def make_handler(
    log: HandlerLog, behaviour: Behaviour, wait_closed: bool
) -> Callable[[Any], Awaitable[None]]:
    async def handler(ws: Any) -> None:
        log.connection = ws
        try:
            await behaviour(ws, log)
        except wsio.ConnectionClosed as exc:
            log.error = exc
        finally:
            if wait_closed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ws.wait_closed(), STEP)
                log.close_code, log.close_reason = ws.close_code, ws.close_reason
            log.done.set()

    return handler


@contextlib.asynccontextmanager
async def wsio_server(
    layer: Layer,
    behaviour: Behaviour,
    *,
    scheme: str = "ws",
    wait_closed: bool = True,
    **kwargs: Any,
) -> AsyncIterator[tuple[str, HandlerLog]]:
    """Serve behaviour with wsio's ``layer``; wait_closed: the handler waits for the closing
    handshake."""
    log = HandlerLog()
    handler = make_handler(log, behaviour, wait_closed)
    async with layer.serve(handler, **kwargs) as server:
        yield f"{scheme}://127.0.0.1:{server.port}/", log


async def handler_finished(log: HandlerLog) -> None:
    await asyncio.wait_for(log.done.wait(), STEP)


# Handler behaviours.


async def fragmenting_echo(ws: Any, log: HandlerLog) -> None:
    async for message in ws:
        log.messages.append(message)
        third = max(1, len(message) // 3)
        parts = [message[:third], message[third : 2 * third], message[2 * third :]]
        await ws.send(parts)


async def pinging(ws: Any, log: HandlerLog) -> None:
    message = await ws.recv()
    log.messages.append(message)
    log.latencies.append(await ws.ping(b"wsio ping"))
    await ws.send("pong received")
    await ws.recv()  # until the client closes


async def closing_4000(ws: Any, log: HandlerLog) -> None:
    log.messages.append(await ws.recv())
    await ws.close(code=4000, reason="wsio says bye ✓")


async def returning(ws: Any, log: HandlerLog) -> None:
    log.messages.append(await ws.recv())
