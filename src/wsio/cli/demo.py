"""``wsio serve``: the demo, a small application written on wsio's public API only.

One server answers plain HTTP and WebSocket on the same port:

- ``GET /`` -- the chat page (``demo.html``, shipped as package data);
- ``GET /healthz`` -- ``OK``, for scripts and load balancers; from a worker of
  ``--workers``, with ``Wsio-Worker: <index>`` telling which one answered;
- ``/chat`` -- a chat room: each connection gets a short name (``guest-3``), every text
  message is relayed to everyone as ``guest-3: text``, and joins and departures are
  announced to everyone;
- ``/echo`` -- sends every message back unchanged, text as text and binary as binary.

Plain HTTP requests are answered by the ``process_request`` hook, before any WebSocket
check, so everything else is a 404 there. The chat never lets one client slow down the
others: each member has its own bounded queue drained by its own task, and a member whose
queue overflows is dropped (close code 1008) instead of being waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import itertools
import ssl as ssl_module
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from typing import TypeAlias
from urllib.parse import urlsplit

from .. import defaults
from ..asyncio.server import Server, ServerConnection, serve
from ..exceptions import ConnectionClosed
from ..protocol.http11 import Request, Response
from .common import serve_until_stopped

__all__ = ["ChatRoom", "demo_server", "load_page", "serve_demo"]

#: Messages waiting for one chat member before that member is dropped as too slow.
CHAT_QUEUE_SIZE = 100

_WEBSOCKET_PATHS = ("/chat", "/echo")

ProcessRequestHook: TypeAlias = Callable[[ServerConnection, Request], "Response | None"]


def load_page() -> bytes:
    """The chat page, read from the package data (``wsio/cli/demo.html``)."""
    return importlib.resources.files(__package__ or "wsio.cli").joinpath("demo.html").read_bytes()


class ChatMember:
    """One connection in the chat room: its name, its outgoing queue and the task that
    drains the queue into the connection."""

    def __init__(self, ws: ServerConnection, name: str, queue_size: int) -> None:
        self.ws = ws
        self.name = name
        self.queue: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self.writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        """Send queued messages in order; only this task sends, so a slow peer holds up
        nothing but its own queue."""
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.ws.send(await self.queue.get())


class ChatRoom:
    """Everyone connected to ``/chat``.

    Broadcasting never waits: it puts the message in each member's queue. A member whose
    queue is full (its peer doesn't read, or reads slower than the room talks) is removed
    and its connection closed with 1008, in the background.
    """

    def __init__(self, queue_size: int = CHAT_QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self.members: dict[ServerConnection, ChatMember] = {}
        self._numbers = itertools.count(1)
        self._closing: set[asyncio.Task[None]] = set()

    async def handler(self, ws: ServerConnection) -> None:
        """Run one member: join, relay its text messages, leave when it closes."""
        member = self.join(ws)
        try:
            async for message in ws:
                if not isinstance(message, str):
                    await ws.close(1003, "the chat takes text messages only")
                    break
                self.broadcast(f"{member.name}: {message}")
        finally:
            self.leave(ws)
            member.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await member.writer

    def join(self, ws: ServerConnection) -> ChatMember:
        """Add ``ws`` under a new name; it is told its name, then everyone (itself included)
        that it joined."""
        member = ChatMember(ws, f"guest-{next(self._numbers)}", self.queue_size)
        member.queue.put_nowait(f"you are {member.name}")
        self.members[ws] = member
        self.broadcast(f"{member.name} joined")
        return member

    def leave(self, ws: ServerConnection) -> None:
        """Remove ``ws`` if it is still a member and tell the others it left."""
        member = self.members.pop(ws, None)
        if member is not None:
            self.broadcast(f"{member.name} left")

    def broadcast(self, text: str) -> None:
        """Queue ``text`` for every member, without waiting; drop members that can't keep
        up (their leaving is announced in turn)."""
        too_slow = []
        for ws, member in self.members.items():
            try:
                member.queue.put_nowait(text)
            except asyncio.QueueFull:
                too_slow.append(ws)
        for ws in too_slow:
            self._drop(ws)

    def _drop(self, ws: ServerConnection) -> None:
        member = self.members.get(ws)
        if member is None:
            return
        member.writer.cancel()
        self.leave(ws)
        # Closing waits for the peer (close_timeout at most): don't make the room wait.
        task = asyncio.get_running_loop().create_task(ws.close(1008, "too slow to keep up"))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


async def echo_handler(ws: ServerConnection) -> None:
    """Send every message back unchanged: text as text, binary as binary."""
    async for message in ws:
        await ws.send(message)


def _path(request: Request) -> str:
    """The request target without its query. (Not ``urlsplit``: it would read a target
    such as ``//host/chat`` as a host and the path ``/chat``.)"""
    return request.path.partition("?")[0]


def _is_upgrade(request: Request) -> bool:
    """Whether the request asks for a WebSocket upgrade (RFC 6455 §4.1, RFC 9110 §7.8)."""
    values = request.headers.get_all("Upgrade")
    return any(
        token.strip().lower() == "websocket" for value in values for token in value.split(",")
    )


def _same_origin(request: Request) -> bool:
    """Whether the ``Origin`` header, when there is one, names the host the request was
    sent to. Browsers always send it; refusing other sites' pages stops them from joining
    the chat on the visitor's behalf (cross-site WebSocket hijacking). Clients that aren't
    browsers send no ``Origin`` and are let in."""
    origins = request.headers.get_all("Origin")
    if not origins:
        return True
    hosts = request.headers.get_all("Host")
    if len(origins) != 1 or len(hosts) != 1:
        return False
    return urlsplit(origins[0]).netloc.lower() == hosts[0].strip().lower()


def make_process_request(page: bytes, worker: int | None = None) -> ProcessRequestHook:
    """The ``process_request`` hook of the demo: it answers the plain HTTP requests (the
    page, the health check, 404, 405) and lets WebSocket requests to ``/chat`` and
    ``/echo`` through to the handshake. The health check of ``worker`` says so in a
    ``Wsio-Worker`` header."""

    def process_request(ws: ServerConnection, request: Request) -> Response | None:
        path = _path(request)
        if path in _WEBSOCKET_PATHS:
            if not _same_origin(request):
                return ws.respond(HTTPStatus.FORBIDDEN, "Cross-origin WebSocket refused.\n")
            # The handshake checks the rest: the method, the headers (426 without them).
            return None
        if path not in ("/", "/healthz"):
            return ws.respond(HTTPStatus.NOT_FOUND, "Not found.\n")
        if _is_upgrade(request):
            return ws.respond(
                HTTPStatus.NOT_FOUND, f"No WebSocket here; try {' or '.join(_WEBSOCKET_PATHS)}.\n"
            )
        if request.method != "GET":
            response = ws.respond(HTTPStatus.METHOD_NOT_ALLOWED, "Only GET is allowed.\n")
            response.headers["Allow"] = "GET"
            return response
        if path == "/healthz":
            health = ws.respond(HTTPStatus.OK, "OK\n")
            if worker is not None:
                health.headers["Wsio-Worker"] = str(worker)
            return health
        # respond() gives the headers every answer has (Server, Connection: close):
        # swap its text for the page.
        response = ws.respond(HTTPStatus.OK, "")
        response.headers.replace("Content-Type", "text/html; charset=utf-8")
        response.headers.replace("Content-Length", str(len(page)))
        response.headers.replace("Cache-Control", "no-store")
        response.body = page
        return response

    return process_request


@contextlib.asynccontextmanager
async def demo_server(
    host: str | None,
    port: int,
    max_size: int | None,
    *,
    room: ChatRoom | None = None,
    compression: str | None = defaults.COMPRESSION,
    ssl: ssl_module.SSLContext | None = None,
    reuse_port: bool = False,
    worker: int | None = None,
) -> AsyncIterator[Server]:
    """Run the demo's server for the duration of an ``async with`` block.

    Tests run it in-process with this; ``room`` replaces the chat room (to shrink its
    queues, for example). Leaving the block closes the server: open connections get 1001.
    ``reuse_port`` and ``worker`` (its index) serve a worker of ``--workers``.
    """
    chat = ChatRoom() if room is None else room
    page = load_page()

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        if _path(ws.request) == "/chat":
            await chat.handler(ws)
        else:
            await echo_handler(ws)

    server = await serve(
        handler,
        host,
        port,
        max_size=max_size,
        compression=compression,
        process_request=make_process_request(page, worker),
        ssl=ssl,
        reuse_port=reuse_port,
    )
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()


async def serve_demo(
    host: str,
    port: int,
    max_size: int | None,
    compression: str | None = defaults.COMPRESSION,
    ssl: ssl_module.SSLContext | None = None,
    reuse_port: bool = False,
    worker: int | None = None,
) -> int:
    """Run the demo server until SIGINT or SIGTERM; return the exit status (0, or 1 when
    it can't listen).

    Leaving closes the server: open connections get 1001 (going away).
    """
    server = demo_server(
        host,
        port,
        max_size,
        compression=compression,
        ssl=ssl,
        reuse_port=reuse_port,
        worker=worker,
    )
    scheme = "http" if ssl is None else "https"
    return await serve_until_stopped(server, "wsio demo", scheme, host, port)
