"""The ASGI echo server: ``python -m benchmarks.asgi BACKEND PORT [--loop L]``.

A Starlette app with one ``WebSocketRoute`` on ``/`` that sends every message back as it
came (text as text, bytes as bytes) until the client leaves, served by uvicorn
(``uvicorn.Config`` and ``uvicorn.Server``) with the WebSocket protocol class of
``BACKEND``:

- ``wsio``: ``wsio.asgi:WebSocketProtocol``;
- ``websockets-sansio``, ``wsproto``: uvicorn's own backends of those names;
- ``ceiling``: :class:`CeilingProtocol`, no WebSocket work at all, a byte echo.

Everything else is the same for every backend: the httptools HTTP parser, ``lifespan="off"``,
log level ``warning`` without the access log, the 2 MiB size limit of the other servers
(``ws_max_size``), uvicorn's default keepalive (a ping every 20 s), and
``ws_per_message_deflate=False``: compression is off in every server of the benchmark, and
the load generator doesn't offer it either. The event loop is the one the other servers
run on (``--loop``), started the same way (:func:`benchmarks.common.run_loop`).

Like :mod:`benchmarks.servers`, it listens on 127.0.0.1 (``PORT`` 0 picks a free port),
prints ``READY <port>`` on stdout once uvicorn accepts connections, and runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from .common import HOST, LOOPS, MAX_SIZE, prepare_child, run_loop
from .servers import _TaskEcho, _TcpEcho

__all__ = ["BACKENDS", "main", "make_app", "make_config"]

#: The ``ws`` setting of uvicorn for each column.
BACKENDS = {
    "wsio": "wsio.asgi:WebSocketProtocol",
    "websockets-sansio": "websockets-sansio",
    "wsproto": "wsproto",
    "ceiling": "benchmarks.asgi:CeilingProtocol",
}


class CeilingProtocol(_TaskEcho):
    """The ceiling of the section: a uvicorn WebSocket protocol class that does no
    WebSocket work. It answers the upgrade with a canned 101, hands each read to the
    application as a ``websocket.receive`` of its raw bytes, and writes what the
    application sends back untouched: the load generator checks it as a byte echo. What is
    left is the price of uvicorn, Starlette, the endpoint and the loop for each message,
    which every backend pays on top of its own work.
    """

    def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> None:
        super().__init__()
        if not config.loaded:
            config.load()
        self.app = config.loaded_app
        self.connect_due = True

    def data_received(self, data: bytes) -> None:
        opening = not self.open
        if opening:
            _TcpEcho.data_received(self, data)
            if self.open:
                scope = {"type": "websocket", "path": "/", "raw_path": b"/", "headers": []}
                self.task = asyncio.get_running_loop().create_task(
                    self.app(scope, self.asgi_receive, self.asgi_send)
                )
            return
        self.chunks.append(data)
        self.wake()

    async def asgi_receive(self) -> dict[str, Any]:
        if self.connect_due:
            self.connect_due = False
            return {"type": "websocket.connect"}
        data = await self.receive()
        if not data:
            return {"type": "websocket.disconnect", "code": 1006}
        return {"type": "websocket.receive", "bytes": data}

    async def asgi_send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            await self.send(message["bytes"])


#: Seconds allowed to uvicorn to start listening.
_START_TIMEOUT = 30.0


def make_app() -> Any:
    """The Starlette echo app."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is not None:
                await websocket.send_text(text)
            else:
                await websocket.send_bytes(message["bytes"])

    return Starlette(routes=[WebSocketRoute("/", echo)])


def make_config(backend: str, port: int, loop: str) -> Any:
    """The ``uvicorn.Config`` of a column."""
    import uvicorn

    return uvicorn.Config(
        make_app(),
        host=HOST,
        port=port,
        ws=BACKENDS[backend],
        http="httptools",
        # Not used by Server.serve(), which runs on the loop started by run_loop(); set
        # all the same, so that the configuration says what the process runs on.
        loop=loop,
        lifespan="off",
        log_level="warning",
        access_log=False,
        ws_per_message_deflate=False,
        ws_max_size=MAX_SIZE,
    )


async def _serve(backend: str, port: int, loop: str) -> None:
    import uvicorn

    config = make_config(backend, port, loop)
    # Load here rather than in serve(): a backend that can't be imported fails at once,
    # with its own error, instead of inside the server task.
    config.load()
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(_START_TIMEOUT):
        while not server.started:
            if task.done():
                task.result()  # raises what stopped uvicorn
                raise RuntimeError("uvicorn stopped before it started listening")
            await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    print(f"READY {bound}", flush=True)
    await task  # until killed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.asgi")
    parser.add_argument("backend", choices=sorted(BACKENDS))
    parser.add_argument("port", type=int)
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    parser.add_argument("--cpu", type=int, default=None)
    args = parser.parse_args(argv)
    prepare_child(args.cpu)
    try:
        run_loop(args.loop, lambda: _serve(args.backend, args.port, args.loop))
    except Exception as exc:
        # One line, which the orchestrator shows in the table's progress: most often a
        # backend that can't be imported.
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
