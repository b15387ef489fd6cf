"""The processes of the broadcast rows, driven by :mod:`benchmarks.broadcast` over stdin/stdout.

``python -m benchmarks.fanout server LIB [--hub memory|redis] [--redis URL]`` serves
``ws://127.0.0.1:PORT/`` and keeps every open connection in a set; with ``--hub``, its
handler subscribes each connection to one topic of a :class:`wsio.Hub`, in memory or on a
:class:`wsio.RedisBackend`. Compression and keepalive are off (a ping that a stalled client
doesn't answer would close its connection in the middle of a measurement).

``python -m benchmarks.fanout client PORT[,PORT...] --conns N [--stalled K]`` opens N
connections, spread over the ports in turn, and counts the messages each one receives; K of
them have a 4 KiB receive buffer, set before connecting, and stop reading on ``stall``. The
client is as cheap as a WebSocket client can be: a raw handshake (checked: status 101 and
``Sec-WebSocket-Accept``), then a frame parser that skips payloads without copying them,
checks that each frame is a final, unmasked binary frame, and answers pings.

Both print one JSON line once ready, then answer one JSON command per line with one line:

- server: ``stats`` (open connections, subscribers, bytes waiting in write buffers),
  ``broadcast`` (size: one message to every connection with ``wsio.broadcast`` or
  ``websockets.broadcast``; the ``time.monotonic()`` just before the call, the call's
  duration and CPU time, and what wsio's :class:`~wsio.BroadcastResult` says),
  ``publish`` (count, size: ``await hub.publish`` one after the other), ``totals`` (what
  the hub's broadcasts did in this process);
- client: ``open``, ``wait`` (count, within: until every reading connection received ``count``
  messages since it opened; the ``time.monotonic()`` at which the last one did, comparable
  across processes: ``CLOCK_MONOTONIC`` is system-wide on Linux), ``stall``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

from .common import (
    HOST,
    LOOPS,
    answer,
    build_frame,
    check_response,
    prepare_child,
    run_loop,
    serve_commands,
)

__all__ = ["TOPIC", "main"]

#: The one topic of the fan-out rows.
TOPIC = "bench"

#: Receive buffer of the connections that stop reading: the kernel takes little for them,
#: so what a server doesn't hold back stays in its own memory.
_STALLED_RCVBUF = 4096
#: Connections a client process opens at a time: under the listen backlog of the servers
#: (100) with two client processes.
_OPEN_CONCURRENCY = 32
_OPEN_TIMEOUT = 120.0

_BINARY_FINAL = 0x82
_PING = 0x89
_PONG = 0xA


# Servers -------------------------------------------------------------------------------------


class _Server:
    """A server of one library holding its connections, broadcasting or publishing on demand."""

    def __init__(
        self,
        lib: str,
        hub_kind: str | None = None,
        redis_url: str | None = None,
        stream: str = "wsio:bench",
        sndbuf: int | None = None,
    ) -> None:
        self.lib = lib
        self.sndbuf = sndbuf
        self.hub_kind = hub_kind
        self.redis_url = redis_url
        self.stream = stream
        self.connections: set[Any] = set()
        self.hub: Any = None
        self.payloads: dict[int, bytes] = {}
        #: Sends one message to every connection, with the library's broadcast.
        self.broadcast: Callable[[bytes], dict[str, Any]] = self._broadcast_wsio

    def payload(self, size: int) -> bytes:
        """The message of ``size`` bytes, made once: it shouldn't count in the RSS rows."""
        if size not in self.payloads:
            self.payloads[size] = os.urandom(size)
        return self.payloads[size]

    async def start(self, port: int) -> int:
        if self.lib == "wsio":
            return await self._start_wsio(port)
        if self.lib == "ceiling":
            port = await self._start_wsio(port)
            self.broadcast = self._broadcast_ceiling
            return port
        return await self._start_websockets(port)

    async def _start_wsio(self, port: int) -> int:
        import wsio

        if self.hub_kind == "memory":
            self.hub = wsio.Hub()
        elif self.hub_kind == "redis":
            assert self.redis_url is not None
            self.hub = wsio.Hub(wsio.RedisBackend(self.redis_url, stream=self.stream))
        if self.hub is not None:
            await self.hub.start()
        hub = self.hub

        async def handler(ws: wsio.ServerConnection) -> None:
            self.opened(ws.transport)
            self.connections.add(ws)
            if hub is not None:
                hub.subscribe(ws, TOPIC)
            try:
                await ws.wait_closed()
            finally:
                self.connections.discard(ws)

        server = await wsio.serve(handler, HOST, port, compression=None, ping_interval=None)
        self.broadcast = self._broadcast_wsio
        return int(server.sockets[0].getsockname()[1])

    async def _start_websockets(self, port: int) -> int:
        if self.hub_kind is not None:
            raise ValueError("only wsio has a hub")
        from websockets.asyncio.server import ServerConnection, serve

        async def handler(ws: ServerConnection) -> None:
            self.opened(ws.transport)
            self.connections.add(ws)
            try:
                await ws.wait_closed()
            finally:
                self.connections.discard(ws)

        server = await serve(handler, HOST, port, compression=None, ping_interval=None)
        self.broadcast = self._broadcast_websockets
        return int(server.sockets[0].getsockname()[1])

    def opened(self, transport: Any) -> None:
        """Fix the kernel's send buffer of a new connection, when asked to."""
        if self.sndbuf is not None and transport is not None:
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)

    def _broadcast_wsio(self, message: bytes) -> dict[str, Any]:
        import wsio

        result = wsio.broadcast(self.connections, message)
        return {"delivered": result.delivered, "skipped": result.skipped}

    def _broadcast_ceiling(self, message: bytes) -> dict[str, Any]:
        """The floor of any broadcast in one thread: one frame built beforehand, then
        one ``send()`` system call per connection, with nothing checked."""
        frame = build_frame(0x2, message)
        sent = 0
        for connection in self.connections:
            fd = connection.transport.get_extra_info("socket").fileno()
            with contextlib.suppress(BlockingIOError):
                sent += os.write(fd, frame) == len(frame)
        return {"delivered": sent}

    def _broadcast_websockets(self, message: bytes) -> dict[str, Any]:
        from websockets.asyncio.server import broadcast

        broadcast(self.connections, message)
        return {}

    # Commands --------------------------------------------------------------------------------

    async def stats(self) -> dict[str, Any]:
        buffered = 0
        for connection in self.connections:
            transport = connection.transport
            if transport is not None:
                buffered += transport.get_write_buffer_size()
        subscribers = len(self.hub.subscribers(TOPIC)) if self.hub is not None else 0
        return {"open": len(self.connections), "subscribers": subscribers, "buffered": buffered}

    async def do_broadcast(self, size: int) -> dict[str, Any]:
        message = self.payload(size)
        cpu = time.process_time()
        start = time.monotonic()
        result = self.broadcast(message)
        end = time.monotonic()
        cpu = time.process_time() - cpu
        return {"start": start, "call_ms": (end - start) * 1e3, "cpu_ms": cpu * 1e3, **result}

    async def publish(self, count: int, size: int) -> dict[str, Any]:
        if self.hub is None:
            raise ValueError("no hub: start the server with --hub")
        message = self.payload(size)
        publish = self.hub.publish
        start = time.monotonic()
        for _ in range(count):
            await publish(TOPIC, message)
        return {"start": start, "publish_ms": (time.monotonic() - start) * 1e3}

    async def totals(self) -> dict[str, Any]:
        if self.hub is None:
            raise ValueError("no hub: start the server with --hub")
        totals = self.hub.totals
        return {"delivered": totals.delivered, "skipped": totals.skipped, "closed": totals.closed}

    async def run(self, port: int) -> None:
        port = await self.start(port)
        answer({"ready": True, "port": port})
        await serve_commands(
            {
                "stats": self.stats,
                "broadcast": self.do_broadcast,
                "publish": self.publish,
                "totals": self.totals,
            }
        )


# Clients -------------------------------------------------------------------------------------


class _Group:
    """The connections of a client process, and how far each message has got among them."""

    def __init__(self) -> None:
        #: Connections that read: those that haven't stalled.
        self.reading = 0
        #: reached[k]: reading connections that received their k-th message.
        self.reached: list[int] = [0]
        #: last[k]: time.monotonic() at which the last reading connection received it.
        self.last: list[float] = [0.0]
        self.waiters: dict[int, asyncio.Future[None]] = {}
        self.failure: BaseException | None = None

    def received(self, index: int) -> None:
        reached = self.reached
        if index == len(reached):
            reached.append(0)
            self.last.append(0.0)
        reached[index] += 1
        if reached[index] == self.reading:
            self.last[index] = time.monotonic()
            waiter = self.waiters.pop(index, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
        for waiter in self.waiters.values():
            if not waiter.done():
                waiter.set_exception(exc)
        self.waiters.clear()


class _Listener(asyncio.Protocol):
    """A WebSocket client that only counts the messages it receives."""

    def __init__(self, group: _Group, port: int) -> None:
        self.group = group
        self.port = port
        self.transport: asyncio.Transport | None = None
        self.key = base64.b64encode(os.urandom(16))
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.open = False
        self.stalled = False
        self.count = 0
        #: Payload bytes of the current frame still to come, to skip.
        self.skip = 0
        #: Bytes of a frame header (or of a ping) cut by the end of a read.
        self.partial = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's aren't subclasses
        self.transport.write(
            b"GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (HOST.encode(), self.port, self.key)
        )

    def connection_lost(self, exc: Exception | None) -> None:
        error = ConnectionError(f"connection lost: {exc}")
        if not self.opened.done():
            self.opened.set_exception(error)
        elif not self.stalled:
            self.group.fail(error)

    def data_received(self, data: bytes) -> None:
        if self.partial:
            data = self.partial + data
            self.partial = b""
        if not self.open:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.partial = data
                return
            error = self._check_response(data[:end])
            if error:
                self._fail(ConnectionError(error))
                return
            self.open = True
            self.opened.set_result(None)
            data = data[end + 4 :]
        self._frames(data)

    def _frames(self, data: bytes) -> None:
        # Straight-line parsing by offsets: payloads are skipped, never copied.
        size = len(data)
        pos = 0
        if self.skip:
            pos = min(self.skip, size)
            self.skip -= pos
            if self.skip:
                return
            self._message()
        while pos < size:
            if size - pos < 2:
                break
            first = data[pos]
            length = data[pos + 1]
            head = 2
            if length & 0x80:
                self._fail(ConnectionError("masked frame from the server"))
                return
            if length == 126:
                head = 4
                if size - pos < head:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            elif length == 127:
                head = 10
                if size - pos < head:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
            if first == _BINARY_FINAL:
                pos += head
                available = size - pos
                if available < length:
                    self.skip = length - available
                    return
                pos += length
                self._message()
            elif first == _PING and head == 2:
                if size - pos < head + length:
                    break
                assert self.transport is not None
                payload = data[pos + head : pos + head + length]
                self.transport.write(build_frame(_PONG, payload, os.urandom(4)))
                pos += head + length
            else:
                self._fail(ConnectionError(f"unexpected frame {data[pos : pos + 2]!r}"))
                return
        self.partial = data[pos:]

    def _message(self) -> None:
        self.count += 1
        if not self.stalled:
            self.group.received(self.count)

    def _check_response(self, head: bytes) -> str:
        return check_response(head, self.key)

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        self.group.fail(exc)
        if self.transport is not None:
            self.transport.abort()


class _Client:
    """The connections of one client process."""

    def __init__(self, ports: list[int], conns: int, stalled: int) -> None:
        self.ports = ports
        self.conns = conns
        self.stalled = stalled
        self.group = _Group()
        self.listeners: list[_Listener] = []

    async def _connect(self, index: int) -> _Listener:
        loop = asyncio.get_running_loop()
        port = self.ports[index % len(self.ports)]
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if index < self.stalled:
                # Before connecting: the window scale is agreed in the handshake.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _STALLED_RCVBUF)
            sock.setblocking(False)
            await loop.sock_connect(sock, (HOST, port))
        except BaseException:
            sock.close()
            raise
        _, listener = await loop.create_connection(lambda: _Listener(self.group, port), sock=sock)
        await listener.opened
        return listener

    async def open(self) -> dict[str, Any]:
        semaphore = asyncio.Semaphore(_OPEN_CONCURRENCY)

        async def one(index: int) -> _Listener:
            async with semaphore:
                return await self._connect(index)

        async with asyncio.timeout(_OPEN_TIMEOUT):
            self.listeners = list(await asyncio.gather(*(one(i) for i in range(self.conns))))
        self.group.reading = len(self.listeners)
        return {"open": len(self.listeners)}

    async def wait(self, count: int, within: float) -> dict[str, Any]:
        group = self.group
        if group.failure is not None:
            raise group.failure
        if count >= len(group.last) or not group.last[count]:
            waiter = group.waiters.get(count)
            if waiter is None:
                waiter = group.waiters[count] = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(within):
                    await waiter
            except TimeoutError:
                reached = group.reached[count] if count < len(group.reached) else 0
                raise TimeoutError(
                    f"{reached} of {group.reading} connections got message {count} "
                    f"within {within} s"
                ) from None
        return {"last": group.last[count]}

    async def stall(self) -> dict[str, Any]:
        stalled = self.listeners[: self.stalled]
        for listener in stalled:
            listener.stalled = True
            assert listener.transport is not None
            listener.transport.pause_reading()
        self.group.reading -= len(stalled)
        return {"stalled": len(stalled), "reading": self.group.reading}

    async def run(self) -> None:
        answer({"ready": True})
        await serve_commands({"open": self.open, "wait": self.wait, "stall": self.stall})


# Command line --------------------------------------------------------------------------------


def _ports(value: str) -> list[int]:
    return [int(port) for port in value.split(",")]


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fanout")
    roles = parser.add_subparsers(dest="role", required=True)
    server = roles.add_parser("server")
    server.add_argument("lib", choices=("wsio", "websockets", "ceiling"))
    server.add_argument("--port", type=int, default=0)
    server.add_argument("--hub", choices=("memory", "redis"), default=None)
    server.add_argument("--redis", default=None, help="Redis URL for --hub redis")
    server.add_argument("--stream", default="wsio:bench", help="stream of --hub redis")
    server.add_argument("--sndbuf", type=int, default=None, help="SO_SNDBUF of connections")
    client = roles.add_parser("client")
    client.add_argument("ports", type=_ports)
    client.add_argument("--conns", type=int, required=True)
    client.add_argument("--stalled", type=int, default=0)
    for role in (server, client):
        role.add_argument("--loop", choices=LOOPS, default="asyncio")
        role.add_argument("--cpu", type=int, default=None)
    args = parser.parse_args(None if argv is None else list(argv))
    prepare_child(args.cpu)
    if args.role == "server":
        if args.hub == "redis" and args.redis is None:
            parser.error("--hub redis needs --redis URL")
        process = _Server(args.lib, args.hub, args.redis, args.stream, args.sndbuf)
        run_loop(args.loop, lambda: process.run(args.port))
    else:
        run_loop(args.loop, _Client(args.ports, args.conns, args.stalled).run)


if __name__ == "__main__":
    main()
