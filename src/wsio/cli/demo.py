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
check, so everything else is a 404 there. The chat goes through a :class:`~wsio.Hub`: in
memory, one room per process; with ``--redis``, one room for every process and machine
sharing that Redis. It never lets one client slow down the others: a member that can't
keep up is closed with 1013 instead of being waited for.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import itertools
import logging
import secrets
import ssl as ssl_module
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from typing import TypeAlias
from urllib.parse import urlsplit

from .. import defaults
from ..asyncio.hub import Hub
from ..asyncio.server import Server, ServerConnection, serve
from ..exceptions import HubError
from ..protocol.http11 import Request, Response
from .common import serve_until_stopped

__all__ = ["ChatRoom", "demo_server", "load_page", "serve_demo"]

_logger = logging.getLogger("wsio.demo")

#: Longest chat line, in characters.
CHAT_MAX_LINE = 4096

#: The hub topic of the chat room.
CHAT_TOPIC = "chat"

_WEBSOCKET_PATHS = ("/chat", "/echo")

ProcessRequestHook: TypeAlias = Callable[[ServerConnection, Request], "Response | None"]


def load_page() -> bytes:
    """The chat page, read from the package data (``wsio/cli/demo.html``)."""
    return importlib.resources.files(__package__ or "wsio.cli").joinpath("demo.html").read_bytes()


class ChatRoom:
    """Everyone connected to ``/chat``: in this process, or, with a hub on Redis, in every
    process and on every machine sharing it.

    Every line goes through the hub's topic ``chat``, which broadcasts it: the room never
    waits for a member. A member that can't keep up (more than ``limit`` bytes unsent) is
    closed with 1013 (try again later) instead of being waited for.

    :param hub: the hub to chat through; one in memory by default.
    :param name_prefix: what names start with; processes sharing a hub need different
        ones so that names stay unique (``guest-`` then a number by default).
    """

    def __init__(
        self,
        hub: Hub | None = None,
        *,
        limit: int = defaults.BROADCAST_LIMIT,
        name_prefix: str = "guest-",
        max_line: int = CHAT_MAX_LINE,
    ) -> None:
        self.hub = Hub(limit=limit, slow_consumer="close") if hub is None else hub
        self.name_prefix = name_prefix
        self.max_line = max_line
        #: The members connected to this process, and their names.
        self.members: dict[ServerConnection, str] = {}
        self._numbers = itertools.count(1)
        # Whether the latest publish failed: one warning per outage, not one per line.
        self._failing = False

    async def handler(self, ws: ServerConnection) -> None:
        """Run one member: it is told its name, joins, relays its text messages, and
        leaves when it closes."""
        name = f"{self.name_prefix}{next(self._numbers)}"
        await ws.send(f"you are {name}")
        self.members[ws] = name
        self.hub.subscribe(ws, CHAT_TOPIC)
        try:
            await self._say(f"{name} joined")
            async for message in ws:
                if not isinstance(message, str):
                    await ws.close(1003, "the chat takes text messages only")
                    break
                if len(message) > self.max_line:
                    # Every member gets each line: its size is everyone's cost, and the
                    # whole line must fit the members' own message size limits.
                    await ws.send(f"(not delivered: lines are at most {self.max_line} characters)")
                elif not await self._say(f"{name}: {message}"):
                    await ws.send("(not delivered: the chat is unavailable, try again later)")
        finally:
            del self.members[ws]
            self.hub.unsubscribe(ws)
            await self._say(f"{name} left")

    async def _say(self, line: str) -> bool:
        """Publish ``line`` to the room; whether the hub took it."""
        try:
            await self.hub.publish(CHAT_TOPIC, line)
        except HubError as exc:
            if not self._failing:
                self._failing = True
                _logger.warning("chat: %s", exc)
            return False
        self._failing = False
        return True


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
    redis: str | None = None,
) -> AsyncIterator[Server]:
    """Run the demo's server for the duration of an ``async with`` block.

    Tests run it in-process with this; ``room`` replaces the chat room (to shrink its
    queues, for example). Leaving the block closes the server: open connections get 1001.
    ``reuse_port`` and ``worker`` (its index) serve a worker of ``--workers``; ``redis``
    (a URL) makes the chat one room for every server sharing that Redis.

    :raises HubError: Redis is unreachable.
    """
    if room is not None:
        chat = room
    elif redis is not None:
        # Only here: the redis package is optional.
        from ..asyncio.redis_hub import RedisBackend

        # Several processes name members: a random part keeps their names apart.
        chat = ChatRoom(
            Hub(RedisBackend(redis, stream="wsio:demo"), slow_consumer="close"),
            name_prefix=f"guest-{secrets.token_hex(4)}-",
        )
    else:
        chat = ChatRoom()
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
        # Every line goes to every member: compressed once for all of them.
        server_no_context_takeover=True,
        ssl=ssl,
        reuse_port=reuse_port,
    )
    try:
        async with chat.hub:
            try:
                yield server
            finally:
                # Before the hub closes: the members' handlers, ending, publish their
                # departures, which the other processes sharing the hub must get too.
                server.close()
                await server.wait_closed()
    finally:
        # Also when the hub didn't start (Redis unreachable).
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
    redis: str | None = None,
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
        redis=redis,
    )
    scheme = "http" if ssl is None else "https"
    return await serve_until_stopped(server, "wsio demo", scheme, host, port)
