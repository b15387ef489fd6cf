"""``python -m benchmarks.instructions``: instructions per handshake and per message.

Loopback rates on a shared 2-core machine move by 10-30 % from run to run, more than most
single changes gain. This program counts what doesn't move: the CPU instructions that the
Python side of a server spends per opening handshake and per echoed 16 B message, counted by
``valgrind --tool=callgrind`` (the same count for the same code, whatever else the machine is
doing). Use it to compare two commits; use ``python -m benchmarks`` for speed. It sees
neither system calls nor how the reads of several connections share a turn of the loop:
a change in when tasks wake up needs the benchmark too (the ``cpu16x16`` rows).

What is counted, in one process, with a fake transport (no sockets, no system calls):

- ``handshake``: a server connection from the accept to the end of its handler: the
  request parsed, checked and answered with a 101, the client's close frame answered, the
  connection lost, the handler's task ended;
- ``message``: one binary message, 16 B unless ``--size`` says otherwise, received and
  echoed by a handler written ``async for message in ws: await ws.send(message)``;
  ``--text`` sends text instead, ``--reads N`` hands each frame over in N reads; for
  ``listener``, by a :class:`wsio.Listener` whose ``on_message`` calls ``ws.send(message)``;
  for ``picows``, by picows' ``WSListener`` that sends each frame back from ``on_ws_frame``;
- ``client``: the other end, one round trip of a client: a connection opened by
  :func:`wsio.connect` sends the message with ``await ws.send(message)`` and takes the
  server's echo with ``await ws.recv()`` (``--size``, ``--text`` and ``--reads`` as for
  ``message``, ``--reads`` splitting the echo); for the callback clients, the drivers of
  ``benchmarks.clients`` running their own echo loop: wsio's listener client
  (``listener``, the next message sent from ``on_message``), the raw client (``raw``:
  pre-built masked frames, each reply checked byte for byte, the next frame written from
  the read callback: the floor of a callback client) and picows' client (``picows``);
- with ``--client``, ``client handshake``: ``wsio.connect(uri)`` then ``close()``, as the
  benchmark's client does, everything but ``loop.create_connection``, over a fake
  transport that answers as a server (a 101 with the right ``Sec-WebSocket-Accept``, a
  close frame, the end of the connection), against the raw client
  (:class:`benchmarks.clients.RawProtocol`, byte-exact checks) doing the same.

With ``--socket``, real servers instead: each server of :mod:`benchmarks.servers` (wsio's
``async for`` echo, the task echo and the task floor, wsio's listener, the TCP echo and
picows') runs under callgrind on the stdlib loop and answers the benchmark's load generator
over loopback (``--conns`` connections, 16 by default, ``--size`` bytes a message), the
load generator outside valgrind. What is counted is the server's process, between
callgrind's counters zeroed and dumped around a run of twice ``--duration`` seconds (3 by
default), less the same around a run of ``--duration``, per message the load generator
counted: the transport's reads and writes are in it, and the reads of several connections
share the loop's turns as they do in the benchmark's ``x16`` rows, so the count moves a
little with the machine's timing (a few tenths of a percent). ``--socket client`` counts
the clients of :mod:`benchmarks.clients` the same way (wsio's ``send``/``recv`` client and
the task client, wsio's listener client, the raw client and picows'), each under
callgrind against the server of the benchmark's client rows, outside valgrind: the
client's process per round trip. With ``--only handshake``, ``--socket`` counts handshakes
instead, per connection opened and closed one after the other (the ``handshakes`` rows):
wsio's servers (or clients), picows', and the TCP echo's canned 101 (the raw client's
canned request), which parses nothing, beside them. These counts move by a few percent
from run to run: the process's garbage collections and its other timers fall on few
handshakes.

``--pure PIECE`` swaps one C piece of :mod:`wsio._speedups` for its pure-Python twin in
the worker, the rest staying C: the difference with a run without it is what that piece
saves (``--pure all``: every piece).

The task echo (``benchmarks.servers``: a canned 101, a task woken for each read) does the
same work without any WebSocket code: it is the floor of a coroutine API. The task floor
(``task-floor``, counted for messages) adds what a coroutine WebSocket API cannot skip,
done by wsio's C pieces: each read parsed by ``parse_messages`` into the task's list, each
echo framed by ``serialize_frame``. The plain TCP
echo (``tcp``: the bytes of each read written back from the read callback) is the floor of
any API, the listener's included. The C floor (``floor``: each read handed to wsio's C
``deliver_messages``, each message written back as the frame its ``serialize_frame``
builds, from a Python callback that checks nothing else) is the floor of a listener whose
connection and core are Python objects over those C pieces: what the listener spends above
it is its Python between the transport and the C. picows' echo server (``picows``, the
one of ``benchmarks.servers``, counted when picows is installed: a Cython listener API, its
opening handshake answered before the messages) is the listener's rival: the same callback
API, compiled. The task client (``benchmarks.clients``:
pre-built masked frames, each reply checked byte for byte and waking the task that sent the
message) is the floor of a client's coroutine API. Each count is the difference between a
run of N and a run of 2N operations, divided by N, so that start-up and imports cancel out;
each operation includes the turn of the event loop that drives it.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Coroutine
from typing import Any

from .common import (
    BYTE_ECHOES,
    FIXED_SERVER,
    LOAD_GENERATOR,
    accept_key,
    build_frame,
    have_uvloop,
    make_payload,
)
from .harness import BenchError, Child

LIBRARIES = ("wsio", "task")
OPERATIONS = ("handshake", "message", "client")
#: Counted for messages only, against the plain TCP echo: callback APIs (picows' when it
#: is installed).
CALLBACK_LIBRARIES = ("listener", "floor", "tcp", "picows")
#: The servers of :mod:`benchmarks.servers` that ``--socket`` counts.
SOCKET_SERVERS = ("wsio", "task", "task-floor", "wsio-listener", "tcp", "picows")
#: The clients of :mod:`benchmarks.clients` that ``--socket client`` counts.
SOCKET_CLIENTS = ("wsio", "task", "wsio-listener", "raw", "picows")
#: The servers and clients whose handshakes ``--socket --only handshake`` counts: the
#: plain TCP echo answers with a canned 101, the raw client sends a canned request.
SOCKET_HANDSHAKE_SERVERS = ("wsio", "wsio-listener", "tcp", "picows")
SOCKET_HANDSHAKE_CLIENTS = ("wsio", "wsio-listener", "raw", "picows")
_HANDSHAKE_LABELS = {
    "wsio-listener": "listener",
    "tcp": "tcp echo (canned)",
    "raw": "raw client (canned)",
}
#: Counted for client round trips, against the raw client: callback clients.
CALLBACK_CLIENTS = ("listener", "raw", "picows")

_REQUEST = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8765\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
_CLOSE = build_frame(8, b"\x03\xe8", b"abcd")
_MASK = b"abcd"
#: The C pieces that ``--pure`` can swap, each for its pure-Python twin.
PIECES = (
    "apply_mask",
    "parse_messages",
    "parse_close",
    "serialize_frame",
    "PayloadBuffer",
    "Utf8Validator",
    "head_fields",
    "send_message",
    "receive_messages",
    "field_values",
    "fields_by_name",
    "random_bytes",
)


class _FakeTransport(asyncio.Transport):
    """What a server connection calls on its transport, doing nothing but keep count,
    except that closing it loses the connection at the next turn, as asyncio's do."""

    def __init__(self, protocol: asyncio.BaseProtocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.writes = 0
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1

    def write_eof(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _echo(ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


def _feed(connection: Any, data: bytes) -> None:
    """Hand ``data`` to a protocol as the loop would: into its buffer, as many times as
    the buffer is too short for what is left, or as bytes."""
    if isinstance(connection, asyncio.BufferedProtocol):
        buffer = memoryview(connection.get_buffer(len(data)))
        try:
            # Nothing more in the usual case: the rows compare such protocols with
            # data_received ones.
            buffer[: len(data)] = data
        except ValueError:
            # Larger than the buffer.
            size = len(buffer)
            buffer[:] = data[:size]
            connection.buffer_updated(size)
            _feed(connection, data[size:])
            return
        connection.buffer_updated(len(data))
    else:
        connection.data_received(data)


async def _turn() -> None:
    """One turn of the loop: what a real server runs between two reads."""
    await asyncio.sleep(0)


async def _read(protocol: Any, data: bytes) -> None:
    """``data`` handed over by a loop callback, as a transport does (not from within a
    task, where wsio can't resume its receiver at once), then a turn of the loop."""
    asyncio.get_running_loop().call_soon(_feed, protocol, data)
    await _turn()


async def _handshake(protocol: Any, transport: _FakeTransport) -> None:
    """One server connection from the accept to the loss of the connection: the request,
    then the client's close frame, each read with a turn of the loop, then the client's
    end of the stream unless the server closed the connection first."""
    protocol.connection_made(transport)
    await _read(protocol, _REQUEST)
    await _read(protocol, _CLOSE)
    if not transport.closing:
        asyncio.get_running_loop().call_soon(_end_of_stream, protocol, transport)
        await _turn()


def _end_of_stream(protocol: Any, transport: _FakeTransport) -> None:
    """The peer's end of the stream, as the loop reports it: the transport closes unless
    the protocol keeps it half-open."""
    if not protocol.eof_received():
        transport.close()


async def _wsio_handshakes(count: int) -> None:
    import wsio
    from wsio.asyncio.server import ServerConnection

    # The connections are made as the server's listening socket makes them.
    server = wsio.serve(_echo, compression=None).server
    for _ in range(count):
        connection = ServerConnection(server)
        transport = _FakeTransport(connection)
        await _handshake(connection, transport)
        assert connection._handler_task is not None
        await connection._handler_task
        assert transport.writes == 2, "expected a 101 and a close frame"


async def _task_handshakes(count: int) -> None:
    from .servers import _TaskEcho

    for _ in range(count):
        protocol = _TaskEcho()
        transport = _FakeTransport(protocol)
        await _handshake(protocol, transport)
        assert protocol.task is not None
        await protocol.task
        assert transport.writes == 2, "expected a 101 and the echoed close frame"


def _message_reads() -> list[bytes]:
    """The frame of one message, as the reads that hand it over (``--size``, ``--text``,
    ``--reads``, passed to the worker in the environment)."""
    size = int(os.environ.get("BENCH_SIZE", "16"))
    text = os.environ.get("BENCH_TEXT") == "1"
    reads = int(os.environ.get("BENCH_READS", "1"))
    if text:
        payload = make_payload(size, text=True)
    else:
        # Not random: the same bytes, and the same count, in every run.
        payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    frame = build_frame(1 if text else 2, payload, _MASK)
    step = -(-len(frame) // reads)
    return [frame[start : start + step] for start in range(0, len(frame), step)]


def _use_pure(pieces: str) -> None:
    """Replace the C pieces named (comma-separated, or ``all``) by their pure-Python
    twins wherever wsio's modules hold them."""
    import wsio.asyncio.connection  # noqa: F401  (loads every module that holds a piece)
    from wsio import _speedups
    from wsio.protocol import entropy, frames, http11, masking, utf8

    twins = {
        "apply_mask": (_speedups.apply_mask, masking.python_apply_mask),
        "parse_messages": (_speedups.parse_messages, frames.python_parse_messages),
        "parse_close": (_speedups.parse_close, frames.python_parse_close),
        "serialize_frame": (_speedups.serialize_frame, frames.python_serialize_frame),
        "PayloadBuffer": (_speedups.PayloadBuffer, masking.PythonPayloadBuffer),
        "Utf8Validator": (_speedups.Utf8Validator, utf8.PythonIncrementalValidator),
        "head_fields": (_speedups.head_fields, http11.python_head_fields),
        "field_values": (_speedups.field_values, http11.python_field_values),
        "fields_by_name": (_speedups.fields_by_name, http11.python_fields_by_name),
        "random_bytes": (_speedups.random_bytes, entropy.python_random_bytes),
    }
    names = PIECES if pieces == "all" else pieces.split(",")
    # Methods of the protocol, not functions of a module.
    from wsio.protocol.connection import Protocol

    if "send_message" in names:
        Protocol.send_message = Protocol._python_send_message  # type: ignore[method-assign]
    if "receive_messages" in names:
        Protocol.receive_messages = Protocol._python_receive_messages  # type: ignore[method-assign]
    names = [name for name in names if name not in ("send_message", "receive_messages")]
    for name in names:
        c_version, python_version = twins[name]
        for module_name, module in list(sys.modules.items()):
            if module_name.startswith("wsio"):
                for attribute, value in list(vars(module).items()):
                    if value is c_version:
                        setattr(module, attribute, python_version)
                    _swap_defaults(value, c_version, python_version)


def _swap_defaults(value: object, c_version: object, python_version: object) -> None:
    """Swap ``c_version`` for ``python_version`` where a function, or a method of a
    class, holds it as the default of a parameter (``random_bytes=`` of the protocols)."""
    functions = list(vars(value).values()) if isinstance(value, type) else [value]
    for function in functions:
        if not isinstance(function, types.FunctionType):
            continue
        if function.__defaults__ is not None:
            function.__defaults__ = tuple(
                python_version if default is c_version else default
                for default in function.__defaults__
            )
        if function.__kwdefaults__ is not None:
            for key, default in function.__kwdefaults__.items():
                if default is c_version:
                    function.__kwdefaults__[key] = python_version


async def _messages(protocol: Any, transport: _FakeTransport, count: int) -> None:
    reads = _message_reads()
    await _turn()
    for _ in range(count):
        for data in reads:
            await _read(protocol, data)
    await _turn()
    assert transport.writes >= count, "messages weren't echoed"


async def _wsio_messages(count: int) -> None:
    from wsio.asyncio.connection import Connection
    from wsio.protocol.connection import Protocol, Side, State

    connection = Connection(Protocol(Side.SERVER, state=State.OPEN))
    transport = _FakeTransport(connection)
    connection.connection_made(transport)
    task = asyncio.get_running_loop().create_task(_echo(connection))
    await _messages(connection, transport, count)
    task.cancel()


async def _task_echo_messages(protocol: Any, count: int) -> None:
    """``count`` messages through a task echo of ``benchmarks.servers``, opened."""
    transport = _FakeTransport(protocol)
    protocol.connection_made(transport)
    protocol.open = True
    protocol.task = asyncio.get_running_loop().create_task(protocol.echo())
    await _messages(protocol, transport, count)
    protocol.task.cancel()


async def _task_messages(count: int) -> None:
    from .servers import _TaskEcho

    await _task_echo_messages(_TaskEcho(), count)


async def _task_floor_messages(count: int) -> None:
    from .servers import _TaskFloor

    await _task_echo_messages(_TaskFloor(), count)


async def _listener_messages(count: int) -> None:
    from wsio.asyncio.listener import Listener, ListenerConnection
    from wsio.protocol.connection import Protocol, Side, State

    class Echo(Listener):
        def on_message(self, ws: ListenerConnection, message: str | bytes) -> None:
            ws.send(message)

    connection = ListenerConnection(Protocol(Side.SERVER, state=State.OPEN), listener_factory=Echo)
    transport = _FakeTransport(connection)
    connection.connection_made(transport)
    connection._open_listener()  # as the end of the opening handshake does
    await _messages(connection, transport, count)


#: The read buffer of the C floor, as large as a listener's; and the largest frame header
#: of a client's message.
_FLOOR_BUFFER = 256 * 1024
_MAX_HEADER = 14


class _ListenerFloor(asyncio.BufferedProtocol):
    """The least Python that a listener on wsio's C pieces can run per message: a read
    callback that hands the read to ``deliver_messages``, and a callback that writes back
    the frame that ``serialize_frame`` builds for each message. Nothing else is checked or
    handled (no state, no control frame, no fragment, no frame over several reads): a
    floor to count against, not a server."""

    def __init__(self) -> None:
        from wsio.protocol import frames

        # The module, not its functions: --pure swaps them there.
        self.frames = frames
        self.buffer = memoryview(bytearray(_FLOOR_BUFFER))
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.frames.deliver_messages(self.buffer, nbytes, self.deliver, True, -1)

    def deliver(self, message: str | bytes) -> bool:
        binary = type(message) is bytes
        data = message if binary else message.encode()  # type: ignore[union-attr]
        self.transport.write(self.frames.serialize_frame(2 if binary else 1, data, True, 0, None))  # type: ignore[union-attr,arg-type]
        return True


async def _floor_messages(count: int) -> None:
    protocol = _ListenerFloor()
    transport = _FakeTransport(protocol)
    protocol.connection_made(transport)
    await _messages(protocol, transport, count)


class _SocketTransport(_FakeTransport):
    """A fake transport with a socket behind it, unconnected: picows' protocol sets its
    options when the connection is made."""

    def __init__(self, protocol: asyncio.BaseProtocol, sock: socket.socket) -> None:
        super().__init__(protocol)
        self.socket = sock

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.socket if name == "socket" else default


async def _picows_messages(count: int) -> None:
    """picows' echo server, the one of ``benchmarks.servers``, built as that server builds
    it: ``loop.create_server`` only hands over the protocol factory it is given."""
    from .servers import SERVERS

    loop = asyncio.get_running_loop()
    factories: list[Callable[[], asyncio.BaseProtocol]] = []
    with socket.socket() as sock:

        async def create_server(
            factory: Callable[[], asyncio.BaseProtocol], *args: Any, **kwargs: Any
        ) -> Any:
            factories.append(factory)
            return types.SimpleNamespace(sockets=[sock])

        loop.create_server = create_server  # type: ignore[method-assign,assignment]
        await SERVERS["picows"](0, False)
        protocol = factories[0]()
        transport = _SocketTransport(protocol, sock)
        protocol.connection_made(transport)
        await _read(protocol, _REQUEST)
        assert transport.writes == 1, "no answer to the opening handshake"
        await _messages(protocol, transport, count)


async def _tcp_messages(count: int) -> None:
    from .servers import _TcpEcho

    protocol = _TcpEcho()
    transport = _FakeTransport(protocol)
    protocol.connection_made(transport)
    protocol.open = True
    await _messages(protocol, transport, count)


class _ServerTransport(_FakeTransport):
    """A client's transport to a server that answers at the next turn of the loop, as a
    read callback: the opening handshake request with a 101, each frame with ``reply``
    (handed over in ``BENCH_READS`` reads)."""

    def __init__(self, protocol: asyncio.BaseProtocol, reply: bytes) -> None:
        super().__init__(protocol)
        step = -(-len(reply) // int(os.environ.get("BENCH_READS", "1")))
        self.reads = [reply[start : start + step] for start in range(0, len(reply), step)]

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1
        loop = asyncio.get_running_loop()
        if bytes(data[:4]) == b"GET ":
            match = re.search(rb"Sec-WebSocket-Key: (\S+)\r\n", bytes(data))
            assert match is not None, "no Sec-WebSocket-Key in the request"
            response = (
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                % accept_key(match.group(1))
            )
            loop.call_soon(_feed, self.protocol, response)
            return
        for data in self.reads:
            loop.call_soon(_feed, self.protocol, data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8765) if name == "peername" else default


def _client_message() -> Any:
    """The message of the client rows, as ``benchmarks.clients`` makes it."""
    from .clients import Message

    return Message(int(os.environ.get("BENCH_SIZE", "16")), os.environ.get("BENCH_TEXT") == "1")


async def _wsio_client(count: int) -> None:
    from wsio.asyncio.client import ClientSide, connect

    message = _client_message()

    class FakeConnect(connect):
        """:func:`wsio.connect`, with the fake transport where TCP would be."""

        async def _create_connection(
            self, factory: Callable[[], ClientSide], uri: Any, kwargs: dict[str, Any]
        ) -> None:
            connection = factory()
            connection.connection_made(_ServerTransport(connection, message.reply))

    # As benchmarks.clients opens it, but with no keepalive: the fake server answers every
    # frame with the echo, so a ping, due once a run under callgrind lasts ping_interval,
    # would never get its pong and would end the connection.
    ws = await FakeConnect(
        "ws://127.0.0.1:8765/", compression=None, proxy=None, ping_interval=None
    )
    value = message.value
    send, recv = ws.send, ws.recv
    await _turn()
    for _ in range(count):
        await send(value)
        reply = await recv()
    assert count == 0 or reply == value, "the reply isn't the echo"


async def _task_client(count: int) -> None:
    from .clients import Run, TaskRawProtocol, _Job

    message = _client_message()
    loop = asyncio.get_running_loop()
    protocol = TaskRawProtocol(echo_peer=False)
    protocol.connection_made(_ServerTransport(protocol, message.reply))
    await protocol.waiter
    run = Run(latency=False)
    await _turn()
    # TaskRawDriver.echo_loop, for count messages.
    for _ in range(count):
        job = _Job(message, run, loop.create_future())
        protocol.start(job)
        await job.done
    assert run.count == count, "replies weren't all the echo"


class _SocketServerTransport(_ServerTransport):
    """A :class:`_ServerTransport` with an unconnected socket behind it, for picows."""

    def __init__(self, protocol: asyncio.BaseProtocol, reply: bytes, sock: socket.socket) -> None:
        super().__init__(protocol, reply)
        self.socket = sock

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.socket if name == "socket" else super().get_extra_info(name, default)


async def _callback_client(driver_name: str, count: int) -> None:
    """One connection of a callback client of ``benchmarks.clients`` (``driver_name``),
    connected through ``loop.create_connection`` to a :class:`_ServerTransport`, running
    the driver's own ``echo_loop`` until ``count`` echoes."""
    from .clients import CLIENTS

    message = _client_message()
    loop = asyncio.get_running_loop()
    with socket.socket() as sock:

        async def create_connection(
            factory: Callable[[], asyncio.BaseProtocol], *args: Any, **kwargs: Any
        ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
            protocol = factory()
            transport = _SocketServerTransport(protocol, message.reply, sock)
            protocol.connection_made(transport)
            return transport, protocol

        loop.create_connection = create_connection  # type: ignore[method-assign,assignment]
        driver = CLIENTS[driver_name](8765, echo_peer=False, aiofastnet=False)
        await driver.setup()
        conn = await driver.connect()
        await _turn()
        run = _CountedRun(count)
        await driver.echo_loop(conn, message, run)
        assert run.count == count, "replies weren't all the echo"


class _CountedRun:
    """A :class:`benchmarks.clients.Run` that stops itself after ``limit`` echoes."""

    def __init__(self, limit: int) -> None:
        self.count = 0
        self.samples = None
        self.limit = limit

    @property
    def stop(self) -> bool:
        return self.count >= self.limit


async def _listener_client(count: int) -> None:
    await _callback_client("wsio-listener", count)


async def _picows_client(count: int) -> None:
    await _callback_client("picows", count)


async def _raw_client(count: int) -> None:
    await _callback_client("raw", count)


_CLIENT_URI = "ws://127.0.0.1:8765/"
_SERVER_CLOSE = build_frame(8, b"\x03\xe8")


class _FakeServer(_FakeTransport):
    """A client's transport that answers as a server would: the request with a 101
    (its ``Sec-WebSocket-Accept`` computed from the key), the close frame with a close
    frame followed by the end of the connection; each answer read at the next turn."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1
        loop = asyncio.get_running_loop()
        if self.writes == 1:
            key = re.search(rb"Sec-WebSocket-Key: ([^\r]*)", bytes(data))
            assert key is not None, "no key in the request"
            accept = accept_key(key.group(1))
            loop.call_soon(
                _feed,
                self.protocol,
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n",
            )
        elif self.writes == 2:
            loop.call_soon(_feed, self.protocol, _SERVER_CLOSE)
            # The server ends the TCP connection first (RFC 6455 §7.1.1).
            loop.call_soon(_end_of_stream, self.protocol, self)

    def write_eof(self) -> None:
        self.close()


async def _wsio_client_handshakes(count: int) -> None:
    """``wsio.connect(uri)`` then ``close()``, as the benchmark's client does, over a
    :class:`_FakeServer` instead of a socket: everything but ``loop.create_connection``."""
    import wsio

    class FakeConnect(wsio.connect):
        async def _create_connection(self, factory: Any, uri: Any, kwargs: Any) -> None:
            protocol = factory()
            protocol.connection_made(_FakeServer(protocol))

    for _ in range(count):
        ws = await FakeConnect(_CLIENT_URI, compression=None, max_size=2**26, proxy=None)
        await ws.close()
        assert ws.protocol.close_rcvd is not None, "no closing handshake"


async def _raw_client_handshakes(count: int) -> None:
    """The benchmark's raw client (:class:`benchmarks.clients.RawProtocol`), opened and
    closed over a :class:`_FakeServer`: the floor of a checked client handshake."""
    from .clients import RawProtocol

    for _ in range(count):
        protocol = RawProtocol(echo_peer=False)
        transport = _FakeServer(protocol)
        transport.get_extra_info = lambda name, default=None: ("127.0.0.1", 8765)  # type: ignore[method-assign]
        protocol.connection_made(transport)
        await protocol.waiter
        await protocol.close()
        await protocol.lost


_WORKERS: dict[tuple[str, str], Callable[[int], Coroutine[Any, Any, None]]] = {
    ("wsio", "client-handshake"): _wsio_client_handshakes,
    ("raw", "client-handshake"): _raw_client_handshakes,
    ("wsio", "handshake"): _wsio_handshakes,
    ("task", "handshake"): _task_handshakes,
    ("wsio", "message"): _wsio_messages,
    ("task", "message"): _task_messages,
    ("task-floor", "message"): _task_floor_messages,
    ("listener", "message"): _listener_messages,
    ("floor", "message"): _floor_messages,
    ("tcp", "message"): _tcp_messages,
    ("picows", "message"): _picows_messages,
    ("wsio", "client"): _wsio_client,
    ("task", "client"): _task_client,
    ("listener", "client"): _listener_client,
    ("picows", "client"): _picows_client,
    ("raw", "client"): _raw_client,
}


def _count(library: str, operation: str, count: int, options: dict[str, str] | None = None) -> int:
    """Instructions of a whole run of ``count`` operations, under callgrind."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "benchmarks.instructions",
        "--worker",
        library,
        operation,
        str(count),
    ]
    # A fixed hash seed: string hashing, and with it dict probing, the same in every run.
    env = {**os.environ, "PYTHONHASHSEED": "0", **(options or {})}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    match = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or match is None:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return int(match.group(1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.instructions",
        description="Instructions per server handshake, per echoed message and per client"
        " round trip (callgrind).",
    )
    parser.add_argument(
        "--handshakes", type=int, default=1000, help="N for the handshake rows (1000)"
    )
    parser.add_argument("--messages", type=int, default=20000, help="N for the message rows")
    parser.add_argument("--size", type=int, default=16, help="message payload in bytes (16)")
    parser.add_argument("--text", action="store_true", help="text messages (default: binary)")
    parser.add_argument(
        "--reads", type=int, default=1, help="reads that hand over each message's frame (1)"
    )
    parser.add_argument(
        "--pure",
        metavar="PIECE",
        help=f"comma-separated C pieces to replace by their Python twins: {', '.join(PIECES)}"
        " or all",
    )
    parser.add_argument(
        "--only", choices=OPERATIONS, help="count this operation only (default: all)"
    )
    parser.add_argument(
        "--library", choices=LIBRARIES, help="count this library only (default: both)"
    )
    parser.add_argument(
        "--client",
        action="store_true",
        help="count a client handshake instead (wsio.connect and close, against the raw"
        " client), over a fake transport answering as a server",
    )
    parser.add_argument(
        "--socket",
        nargs="?",
        const="server",
        choices=("server", "client"),
        help="count real servers instead, over loopback, driven by the benchmark's load"
        " generator; --socket client: real clients, against the server of the client rows"
        " (--size, --conns, --duration); with --only handshake, their handshakes",
    )
    parser.add_argument("--conns", type=int, default=16, help="connections, with --socket (16)")
    parser.add_argument(
        "--duration", type=float, default=3.0, help="seconds of each run, with --socket (3)"
    )
    parser.add_argument(
        "--worker", nargs=3, metavar=("LIBRARY", "OPERATION", "N"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)

    if args.worker is not None:
        library, operation, count = args.worker
        if os.environ.get("BENCH_PURE"):
            _use_pure(os.environ["BENCH_PURE"])
        asyncio.run(_WORKERS[library, operation](int(count)))
        return

    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind isn't installed: apt install valgrind")
    accelerated = os.environ.get("WSIO_NO_SPEEDUPS", "") == ""
    options = {"BENCH_SIZE": str(args.size), "BENCH_READS": str(args.reads)}
    if args.text:
        options["BENCH_TEXT"] = "1"
    if args.pure and accelerated:
        options["BENCH_PURE"] = args.pure
    pure = f", pure-Python {args.pure}" if args.pure and accelerated else ""
    if args.client:
        _print_client(args.handshakes, options)
        return
    if args.socket:
        try:
            if args.only == "handshake":
                _print_socket_handshakes(args.socket, args.duration)
            else:
                _print_socket(args.socket, args.size, args.conns, args.duration)
        except BenchError as exc:
            raise SystemExit(str(exc)) from None
        return
    print(
        "Instructions per operation, Python side of the server (of the client for the"
        " client rows), fake transport "
        f"(callgrind; wsio accelerator {'on' if accelerated else 'off'}{pure})"
    )
    if args.only != "client":
        print(f"{'':22}{'wsio':>12}{'task echo':>12}{'ratio':>8}{'task floor':>12}{'ratio':>8}")
    for operation, count in (("handshake", args.handshakes), ("message", args.messages)):
        if args.only not in (None, operation):
            continue
        per_operation = {}
        for library in LIBRARIES:
            if args.library not in (None, library):
                per_operation[library] = float("nan")
                continue
            per_operation[library] = _per_operation(library, operation, count, options)
        wsio, task = per_operation["wsio"], per_operation["task"]
        kind = "text" if args.text else "message"
        label = "handshake" if operation == "handshake" else f"{args.size} B {kind} echoed"
        floor_cells = ""
        if operation == "message" and args.library is None:
            # The task echo with wsio's C parser and builder: what no coroutine API over a
            # checking parser can spend less than.
            task_floor = _per_operation("task-floor", operation, count, options)
            floor_cells = f"{task_floor:>12,.0f}{task_floor / task:>7.2f}×"
        print(f"{label:22}{wsio:>12,.0f}{task:>12,.0f}{wsio / task:>7.2f}×{floor_cells}")
    if args.only in (None, "message") and args.library is None:
        # The floor takes whole frames only, each in one read of its buffer.
        floor_applies = args.reads == 1 and args.size + _MAX_HEADER <= _FLOOR_BUFFER
        picows_installed = importlib.util.find_spec("picows") is not None
        listener, floor, tcp, picows = (
            _per_operation(name, "message", args.messages, options)
            if (name != "floor" or floor_applies) and (name != "picows" or picows_installed)
            else float("nan")
            for name in CALLBACK_LIBRARIES
        )
        print(
            f"{'':22}{'listener':>12}{'tcp echo':>12}{'ratio':>8}{'C floor':>12}{'ratio':>8}"
            f"{'picows':>12}{'ratio':>8}"
        )
        print(
            f"{label:22}{listener:>12,.0f}{tcp:>12,.0f}{listener / tcp:>7.2f}×"
            f"{floor:>12,.0f}{floor / tcp:>7.2f}×{picows:>12,.0f}{picows / tcp:>7.2f}×"
        )
        if not picows_installed:
            print("picows isn't installed: no picows column (pip install picows)")
    if args.only in (None, "client"):
        # The client's side, against the task client.
        wsio, task = (
            float("nan")
            if args.library not in (None, library)
            else _per_operation(library, "client", args.messages, options)
            for library in LIBRARIES
        )
        kind = "text" if args.text else "message"
        print(f"{'':22}{'wsio':>12}{'task client':>12}{'ratio':>8}")
        label = f"{args.size} B {kind} trip"
        print(f"{label:22}{wsio:>12,.0f}{task:>12,.0f}{wsio / task:>7.2f}×")
        if args.library is None:
            _print_callback_clients(label, args.messages, options)


def _print_callback_clients(label: str, count: int, options: dict[str, str]) -> None:
    """The callback clients' row: wsio's listener client against the raw client (its
    floor) and picows' client."""
    picows_installed = importlib.util.find_spec("picows") is not None
    listener, raw, picows = (
        _per_operation(name, "client", count, options)
        if name != "picows" or picows_installed
        else float("nan")
        for name in CALLBACK_CLIENTS
    )
    print(f"{'':22}{'listener':>12}{'raw client':>12}{'ratio':>8}{'picows':>12}{'ratio':>8}")
    print(
        f"{label:22}{listener:>12,.0f}{raw:>12,.0f}{listener / raw:>7.2f}×"
        f"{picows:>12,.0f}{picows / raw:>7.2f}×"
    )
    if not picows_installed:
        print("picows isn't installed: no picows column (pip install picows)")


def _print_client(count: int, options: dict[str, str]) -> None:
    """The ``--client`` row: instructions per client handshake, wsio and the raw client."""
    print("Instructions per client handshake (connect and close), fake transport (callgrind)")
    print(f"{'':22}{'wsio':>12}{'raw':>12}{'ratio':>8}")
    wsio, raw = (
        _per_operation(name, "client-handshake", count, options) for name in ("wsio", "raw")
    )
    print(f"{'client handshake':22}{wsio:>12,.0f}{raw:>12,.0f}{wsio / raw:>7.2f}×")


def _socket_total(counted: Child, client: Child, run: dict[str, Any], out: str) -> tuple[int, int]:
    """Instructions of ``counted`` during one ``run`` of ``client``, and the operations
    (messages or handshakes) that ``client`` counted: callgrind's counters zeroed before
    and dumped after."""
    subprocess.run(["callgrind_control", "-z", str(counted.pid)], capture_output=True, check=True)
    answer = client.request(300, **run)
    # Each dump is a file of its own: out.1, out.2...
    before = set(glob.glob(f"{out}.*"))
    subprocess.run(["callgrind_control", "-d", str(counted.pid)], capture_output=True, check=True)
    for _ in range(300):
        dumps = set(glob.glob(f"{out}.*")) - before
        if dumps:
            with open(dumps.pop()) as file:
                match = re.search(r"^(?:summary|totals): (\d+)", file.read(), re.MULTILINE)
            if match is not None:
                return int(match.group(1)), int(answer["counts"][0])
        time.sleep(0.1)
    raise SystemExit(f"callgrind wrote no dump of {counted.label}")


def _per_socket_operation(side: str, name: str, request: dict[str, Any]) -> float:
    """Instructions per operation of ``name``, a server of :mod:`benchmarks.servers`
    (``side`` ``"server"``) or a client of :mod:`benchmarks.clients` (``"client"``), run
    under callgrind on the stdlib loop: a server driven over loopback by the benchmark's
    load generator, a client against the server of the client rows, neither under valgrind.
    ``request`` is the client's command (``throughput`` or ``handshakes``), run for
    ``2 * duration`` less a run of ``duration``, so that what happens once per run (opening
    and closing the connections of a throughput run) cancels out."""
    print(f"  counting {side} {name} over a socket...", end="\r", file=sys.stderr, flush=True)
    loop = "uvloop" if have_uvloop() else "asyncio"
    duration = request["duration"]
    with tempfile.TemporaryDirectory() as directory:
        out = os.path.join(directory, "callgrind.out")
        prefix = ("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}")
        server = client = None
        try:
            if side == "server":
                server = counted = Child(
                    "benchmarks.servers", [name, "0"], None, f"server {name}", prefix
                )
                peer = "echo" if name in BYTE_ECHOES else "ws"
                port = str(server.ready_port(120))
                args = [LOAD_GENERATOR, port, "--peer", peer, "--loop", loop]
                client = Child("benchmarks.clients", args, None, "load generator")
            else:
                args = [FIXED_SERVER, "0", "--loop", loop]
                server = Child("benchmarks.servers", args, None, f"server {FIXED_SERVER}")
                args = [name, str(server.ready_port(60)), "--peer", "ws"]
                client = counted = Child(
                    "benchmarks.clients", args, None, f"client {name}", prefix
                )
            client.readline(120)
            run = {**request, "warmup": 0.0, "repeats": 1}
            # Warms up valgrind's translation of the code that the runs take.
            client.request(300, **run)
            once, once_operations = _socket_total(counted, client, run, out)
            twice, twice_operations = _socket_total(
                counted, client, {**run, "duration": 2 * duration}, out
            )
        finally:
            if client is not None:
                client.stop()
            if server is not None:
                server.stop()
    return (twice - once) / (twice_operations - once_operations)


def _socket_counts(
    side: str, names: tuple[str, ...], request: dict[str, Any]
) -> tuple[dict[str, float], bool]:
    """Instructions per operation of each of ``names`` (:func:`_per_socket_operation`),
    and whether picows is installed: without it, its count is NaN, and clients can't be
    counted at all (they face a picows server)."""
    picows_installed = importlib.util.find_spec("picows") is not None
    if side == "client" and not picows_installed:
        raise SystemExit(
            f"the clients are counted against a {FIXED_SERVER} server: pip install picows"
        )
    counts = {
        name: _per_socket_operation(side, name, request)
        if name != "picows" or picows_installed
        else float("nan")
        for name in names
    }
    return counts, picows_installed


def _print_socket(side: str, size: int, conns: int, duration: float) -> None:
    """The ``--socket`` table: real servers (each message a read and a send), or real
    clients (each round trip a send and a read)."""
    names = SOCKET_SERVERS if side == "server" else SOCKET_CLIENTS
    request = {"op": "throughput", "size": size, "conns": conns, "duration": duration}
    counts, picows_installed = _socket_counts(side, names, request)
    if side == "server":
        print(
            f"Instructions per {size} B message echoed by a server over loopback, {conns}"
            " connection(s), the server's process only (callgrind; the stdlib loop)"
        )
        references = ("task echo", "task", "task floor", "task-floor", "tcp echo", "tcp")
    else:
        print(
            f"Instructions per {size} B message round trip of a client over loopback, {conns}"
            f" connection(s), against a {FIXED_SERVER} server, the client's process only"
            " (callgrind; the stdlib loop)"
        )
        references = ("task client", "task", "", "", "raw client", "raw")
    task_label, task, floor_label, floor, plain_label, plain = references
    print(f"{'':22}{'wsio':>12}{task_label:>12}{'ratio':>8}{floor_label:>12}", end="")
    print(f"{'ratio' if floor else '':>8}")
    wsio, task_count = counts["wsio"], counts[task]
    print(f"{'async for':22}{wsio:>12,.0f}{task_count:>12,.0f}{wsio / task_count:>7.2f}×", end="")
    if floor:
        print(f"{counts[floor]:>12,.0f}{counts[floor] / task_count:>7.2f}×")
    else:
        print()
    print(f"{'':22}{'listener':>12}{plain_label:>12}{'ratio':>8}{'picows':>12}{'ratio':>8}")
    listener, plain_count, picows = counts["wsio-listener"], counts[plain], counts["picows"]
    print(f"{'listener':22}{listener:>12,.0f}{plain_count:>12,.0f}", end="")
    print(f"{listener / plain_count:>7.2f}×{picows:>12,.0f}{picows / plain_count:>7.2f}×")
    if not picows_installed:
        print("picows isn't installed: no picows column (pip install picows)")


def _print_socket_handshakes(side: str, duration: float) -> None:
    """The ``--socket --only handshake`` table: instructions per opening and closing
    handshake of real servers (each connection opened and closed by the load generator),
    or of real clients (each against the server of the client rows)."""
    names = SOCKET_HANDSHAKE_SERVERS if side == "server" else SOCKET_HANDSHAKE_CLIENTS
    counts, picows_installed = _socket_counts(
        side, names, {"op": "handshakes", "duration": duration}
    )
    if side == "server":
        print(
            "Instructions per handshake (a connection opened and closed) of a server over"
            " loopback, the server's process only (callgrind; the stdlib loop)"
        )
    else:
        print(
            "Instructions per handshake (a connection opened and closed) of a client over"
            f" loopback, against a {FIXED_SERVER} server, the client's process only"
            " (callgrind; the stdlib loop)"
        )
    picows = counts["picows"]
    print(f"{'':22}{'handshake':>12}{'÷ picows':>10}")
    for name in names:
        label = _HANDSHAKE_LABELS.get(name, name)
        print(f"{label:22}{counts[name]:>12,.0f}{counts[name] / picows:>9.2f}×")
    if not picows_installed:
        print("picows isn't installed: no picows column (pip install picows)")


def _per_operation(library: str, operation: str, count: int, options: dict[str, str]) -> float:
    """Instructions per operation: a run of ``2 * count`` less a run of ``count``."""
    print(f"  counting {library} {operation}s...", end="\r", file=sys.stderr, flush=True)
    once = _count(library, operation, count, options)
    twice = _count(library, operation, 2 * count, options)
    return (twice - once) / count


if __name__ == "__main__":
    main()
