"""Echo servers, one per library: ``python -m benchmarks.servers NAME PORT [--loop L]``.

Each listens on 127.0.0.1 (``PORT`` 0 picks a free port), prints ``READY <port>`` on stdout
once it accepts connections, and runs until killed. Compression is off everywhere, every
library keeps its default checks and keepalive, and the size limit is :data:`MAX_SIZE`.

- ``wsio``: the way users write it, ``async for message in ws: await ws.send(message)``.
- ``wsio-listener``: a :class:`wsio.Listener` whose ``on_message`` calls
  ``ws.send(message)``, served by ``wsio.serve_listener``: no task per connection.
- ``websockets``: the same handler on the new asyncio API (``websockets.asyncio.server``).
- ``aiohttp``: ``web.WebSocketResponse(compress=False)``, ``async for msg in ws``.
- ``picows``: a ``WSListener`` that sends each data frame back as it arrives; text is
  decoded first, since picows does not validate UTF-8 itself. picows runs on asyncio's own
  transports unless ``--aiofastnet`` (its default when aiofastnet is installed).
- ``tcp``: plain ``asyncio.Protocol``: answers the opening handshake with a canned 101,
  then writes back every byte it receives, untouched. No WebSocket library can do less, so
  it is the ceiling for the others on the same event loop.
- ``task``: the same byte echo, except that each read is handed to a task per connection
  that awaits it and writes it back, the way ``async for message in ws: await
  ws.send(message)`` wakes a handler. It is the ceiling for any library with that API:
  the price of waking a task for each message, without any WebSocket work.
- ``task-floor``: the task echo with the WebSocket work that no library can skip, done by
  wsio's C pieces: each read parsed into messages by ``parse_messages`` (unmasked, UTF-8
  and size checked), each message handed to the task, which writes back the frame that
  ``serialize_frame`` builds. No state, control frame or fragment: the floor of a coroutine
  API over a checking parser, not a server.
- ``task-resumed``: the task echo, except that each read resumes the task inside the read
  callback, as wsio resumes its handlers (:mod:`wsio.asyncio.waiter`), instead of through
  a future and a turn of the loop (``python -m benchmarks --task-wakeup read-callback``).
- ``wsio-sync``: the threads server, ``for message in ws: ws.send(message)`` in the
  handler thread of each connection (``wsio.sync.serve``); no event loop.
- ``websockets-sync``: the same handler on ``websockets.sync.server``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any, cast

from .common import HOST, LOOPS, MAX_SIZE, accept_key, prepare_child, run_loop

__all__ = ["SERVERS", "THREAD_SERVERS", "main"]


async def _wsio(port: int, aiofastnet: bool) -> int:
    import wsio

    async def echo(ws: wsio.ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    server = await wsio.serve(echo, HOST, port, compression=None, max_size=MAX_SIZE)
    return int(server.sockets[0].getsockname()[1])


async def _wsio_listener(port: int, aiofastnet: bool) -> int:
    import wsio

    class Echo(wsio.Listener):
        def on_message(self, ws: wsio.ListenerConnection, message: str | bytes) -> None:
            ws.send(message)

    server = await wsio.serve_listener(Echo, HOST, port, compression=None, max_size=MAX_SIZE)
    return int(server.sockets[0].getsockname()[1])


async def _websockets(port: int, aiofastnet: bool) -> int:
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    server = await serve(echo, HOST, port, compression=None, max_size=MAX_SIZE)
    return int(server.sockets[0].getsockname()[1])


async def _aiohttp(port: int, aiofastnet: bool) -> int:
    from aiohttp import WSMsgType, web

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=MAX_SIZE)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
            elif msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port)
    await site.start()
    return int(runner.addresses[0][1])


async def _picows(port: int, aiofastnet: bool) -> int:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

    class Echo(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            msg_type = frame.msg_type
            if msg_type is WSMsgType.BINARY or msg_type is WSMsgType.CONTINUATION:
                transport.send(msg_type, frame.get_payload_as_memoryview(), frame.fin)
            elif msg_type is WSMsgType.TEXT:
                # picows doesn't validate UTF-8: decoding does (whole-frame messages only).
                transport.send(msg_type, frame.get_payload_as_utf8_text().encode(), frame.fin)
            elif msg_type is WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()

    def listener_factory(request: Any) -> WSListener:
        return Echo()

    server = await ws_create_server(
        listener_factory, HOST, port, max_frame_size=MAX_SIZE, use_aiofastnet=aiofastnet
    )
    return int(server.sockets[0].getsockname()[1])


class _TcpEcho(asyncio.Protocol):
    """Echo every byte once a canned 101 answered the opening handshake."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.open = False
        self.head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's aren't subclasses

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self.open:
            self.transport.write(data)
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > 8192:
                self.transport.abort()
            return
        key = b""
        for line in self.head[:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n"
        )
        self.open = True
        rest, self.head = self.head[end + 4 :], b""
        if rest:
            self.transport.write(rest)


async def _tcp(port: int, aiofastnet: bool) -> int:
    server = await asyncio.get_running_loop().create_server(_TcpEcho, HOST, port)
    return int(server.sockets[0].getsockname()[1])


class _TaskEcho(_TcpEcho):
    """The byte echo through a handler task that awaits each read, as ``async for`` does."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[bytes] = []
        self.waiter: Any = None
        self.task: asyncio.Task[None] | None = None
        self.lost = False

    def data_received(self, data: bytes) -> None:
        if not self.open:
            super().data_received(data)
            if self.open:
                self.task = asyncio.get_running_loop().create_task(self.echo())
            return
        self.chunks.append(data)
        self.wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.wake()

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def new_waiter(self) -> Any:
        return asyncio.get_running_loop().create_future()

    async def receive(self) -> bytes:
        """The next chunk read; empty once the connection is lost."""
        while not self.chunks:
            if self.lost:
                return b""
            self.waiter = self.new_waiter()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.chunks.pop(0)

    async def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def echo(self) -> None:
        while data := await self.receive():
            await self.send(data)


async def _task(port: int, aiofastnet: bool) -> int:
    server = await asyncio.get_running_loop().create_server(_TaskEcho, HOST, port)
    return int(server.sockets[0].getsockname()[1])


class _TaskFloor(_TaskEcho, asyncio.BufferedProtocol):
    """The task echo over wsio's C frame parser and builder (``task-floor``)."""

    #: Where every connection reads, as a wsio server's connections share theirs.
    shared_buffer = memoryview(bytearray(256 * 1024))

    def __init__(self) -> None:
        from wsio.protocol import frames

        super().__init__()
        # The module, not its functions: the instruction counter's --pure swaps them there.
        self.frames = frames
        self.buffer = self.shared_buffer
        # What follows the whole messages of the reads so far: the start of a frame that
        # a read ended in the middle of (large messages), or the client's close frame.
        self.pending = bytearray()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        if not self.open:
            self.data_received(bytes(self.buffer[:nbytes]))
            return
        # The messages go straight into the task's list, made by str() and bytes(), which
        # return what they are given: no Python runs per message on the way in.
        if not self.pending:
            consumed = self.frames.parse_messages(
                self.buffer[:nbytes],
                self.chunks,
                True,
                MAX_SIZE,
                str,  # type: ignore[arg-type]
                bytes,
            )
            if consumed < nbytes:
                self.pending += self.buffer[consumed:nbytes]
        else:
            self.pending += self.buffer[:nbytes]
            consumed = self.frames.parse_messages(
                self.pending,
                self.chunks,
                True,
                MAX_SIZE,
                str,  # type: ignore[arg-type]
                bytes,
            )
            del self.pending[:consumed]
        if self.pending and self.pending[0] & 0x0F == 8:
            # The client's close frame: answered with 1000, and the server closes TCP.
            assert self.transport is not None
            self.transport.write(b"\x88\x02\x03\xe8")
            self.transport.close()
        self.wake()

    async def send(self, data: bytes | str) -> None:
        assert self.transport is not None
        binary = type(data) is bytes
        payload = data if binary else data.encode()  # type: ignore[union-attr]
        frame = self.frames.serialize_frame(2 if binary else 1, payload, True, 0, None)  # type: ignore[arg-type]
        self.transport.write(frame)


async def _task_floor(port: int, aiofastnet: bool) -> int:
    server = await asyncio.get_running_loop().create_server(_TaskFloor, HOST, port)
    return int(server.sockets[0].getsockname()[1])


class _ResumedTaskEcho(_TaskEcho):
    """The task echo, with the task resumed inside the read callback, as wsio resumes a
    handler: the same API ceiling, whatever wakes the task."""

    def __init__(self, waiter_class: Callable[[asyncio.AbstractEventLoop], Any]) -> None:
        super().__init__()
        self.waiter_class = waiter_class

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is None:
            return
        if self.lost:
            # As wsio does at the end of the stream: a turn later.
            waiter.resume_soon()
        else:
            waiter.resume()

    def new_waiter(self) -> Any:
        return self.waiter_class(asyncio.get_running_loop())


async def _task_resumed(port: int, aiofastnet: bool) -> int:
    from wsio.asyncio.waiter import Waiter

    server = await asyncio.get_running_loop().create_server(
        lambda: _ResumedTaskEcho(Waiter), HOST, port
    )
    return int(server.sockets[0].getsockname()[1])


SERVERS: dict[str, Callable[[int, bool], Awaitable[int]]] = {
    "wsio": _wsio,
    "wsio-listener": _wsio_listener,
    "websockets": _websockets,
    "aiohttp": _aiohttp,
    "picows": _picows,
    "tcp": _tcp,
    "task": _task,
    "task-floor": _task_floor,
    "task-resumed": _task_resumed,
}


def _wsio_sync(port: int) -> tuple[socket.socket, Callable[[], None]]:
    import wsio.sync

    def echo(ws: wsio.sync.ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    server = wsio.sync.serve(echo, HOST, port, compression=None, max_size=MAX_SIZE)
    return server.socket, server.serve_forever


def _websockets_sync(port: int) -> tuple[socket.socket, Callable[[], None]]:
    from websockets.sync.server import ServerConnection, serve

    def echo(ws: ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    server = serve(echo, HOST, port, compression=None, max_size=MAX_SIZE)
    return server.socket, server.serve_forever


#: Servers over threads: each returns its listening socket and the blocking call that
#: serves it, run in the main thread; no event loop.
THREAD_SERVERS: dict[str, Callable[[int], tuple[socket.socket, Callable[[], None]]]] = {
    "wsio-sync": _wsio_sync,
    "websockets-sync": _websockets_sync,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.servers")
    parser.add_argument("name", choices=sorted([*SERVERS, *THREAD_SERVERS]))
    parser.add_argument("port", type=int)
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    parser.add_argument("--cpu", type=int, default=None)
    parser.add_argument("--aiofastnet", action="store_true")
    args = parser.parse_args(argv)
    prepare_child(args.cpu)
    if args.name in THREAD_SERVERS:
        listener, serve_forever = THREAD_SERVERS[args.name](args.port)
        print(f"READY {listener.getsockname()[1]}", flush=True)
        serve_forever()  # until killed
        return

    async def serve() -> None:
        port = await SERVERS[args.name](args.port, args.aiofastnet)
        print(f"READY {port}", flush=True)
        await asyncio.Event().wait()  # until killed

    run_loop(args.loop, serve)


if __name__ == "__main__":
    main()
