"""Compression in the asyncio API: ``compression=`` and ``compression_threshold=`` of
connect() and serve(), ``send(..., compress=)``, and the size limit against a compression
bomb, measured in a separate process.

Raw peers (tests/rawpeer.py) negotiate permessage-deflate themselves and use Python's zlib,
so that what wsio puts on the wire is checked independently of wsio.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import wsio
from rawpeer import (
    DEFAULT_MASK,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_TEXT,
    Frame,
    RawClient,
    RawConnection,
    RawServer,
    ServerConn,
    build_frame,
    close_payload,
)
from wsio.protocol.extensions import PerMessageDeflate

T = 5.0  # upper bound of every wait that should succeed
PMD = "permessage-deflate"
TAIL = b"\x00\x00\xff\xff"
KiB = 1024
MiB = 1024 * KiB


def deflate(compressor: Any, data: bytes) -> bytes:
    payload: bytes = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert payload.endswith(TAIL)
    return payload[: -len(TAIL)]


def new_compressor() -> Any:
    return zlib.compressobj(9, zlib.DEFLATED, -15)


def inflate(decompressor: Any, payload: bytes) -> bytes:
    data: bytes = decompressor.decompress(payload + TAIL)
    assert not decompressor.unused_data
    return data


# wsio against wsio ---------------------------------------------------------------------


@pytest.fixture
async def wsio_pair() -> AsyncIterator[Callable[..., Awaitable[tuple[Any, Any]]]]:
    """``client, server_ws = await wsio_pair(client_kwargs, server_kwargs)``."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(
            client_kwargs: dict[str, Any] | None = None,
            server_kwargs: dict[str, Any] | None = None,
        ) -> tuple[Any, Any]:
            got: asyncio.Queue[Any] = asyncio.Queue()
            release = asyncio.Event()

            async def handler(ws: Any) -> None:
                got.put_nowait(ws)
                await release.wait()

            server = await stack.enter_async_context(
                wsio.serve(handler, "127.0.0.1", 0, **(server_kwargs or {}))
            )
            port = server.sockets[0].getsockname()[1]
            client = await stack.enter_async_context(
                wsio.connect(f"ws://127.0.0.1:{port}/", proxy=None, **(client_kwargs or {}))
            )
            stack.callback(release.set)
            async with asyncio.timeout(T):
                return client, await got.get()

        yield make


def only_deflate(ws: Any) -> PerMessageDeflate:
    [extension] = ws.protocol.extensions
    assert isinstance(extension, PerMessageDeflate)
    return extension


async def test_compression_is_on_by_default(wsio_pair: Any) -> None:
    client, server_ws = await wsio_pair()
    assert client.request.headers.get_all("Sec-WebSocket-Extensions") == [
        f"{PMD}; client_max_window_bits"
    ]
    assert client.response.headers.get_all("Sec-WebSocket-Extensions") == [
        f"{PMD}; server_max_window_bits=12; client_max_window_bits=12"
    ]
    client_ext, server_ext = only_deflate(client), only_deflate(server_ws)
    assert (client_ext.local_max_window_bits, client_ext.remote_max_window_bits) == (12, 12)
    assert (server_ext.local_max_window_bits, server_ext.remote_max_window_bits) == (12, 12)
    assert not client_ext.local_no_context_takeover
    assert not server_ext.local_no_context_takeover


@pytest.mark.parametrize(
    ("client_kwargs", "server_kwargs"),
    [({"compression": None}, {}), ({}, {"compression": None}), ({"compression": None},) * 2],
    ids=["client", "server", "both"],
)
async def test_compression_none(
    wsio_pair: Any, client_kwargs: dict[str, Any], server_kwargs: dict[str, Any]
) -> None:
    client, server_ws = await wsio_pair(client_kwargs, server_kwargs)
    assert client.protocol.extensions == []
    assert server_ws.protocol.extensions == []
    assert "Sec-WebSocket-Extensions" not in client.response.headers
    if client_kwargs:
        assert "Sec-WebSocket-Extensions" not in client.request.headers
    # Messages still flow, compress=True is ignored without the extension.
    await client.send("x" * 1000, compress=True)
    await server_ws.send(b"y" * 1000, compress=True)
    async with asyncio.timeout(T):
        assert await server_ws.recv() == "x" * 1000
        assert await client.recv() == b"y" * 1000


@pytest.mark.parametrize("threshold", [0, 128, 4096])
async def test_messages_round_trip(wsio_pair: Any, threshold: int) -> None:
    client, server_ws = await wsio_pair(
        {"compression_threshold": threshold, "max_size": 8 * MiB},
        {"compression_threshold": threshold, "max_size": 8 * MiB},
    )
    messages: list[str | bytes] = []
    for size in [0, 1, 127, 128, 129, 1000, 4095, 4096, 70000, 3 * MiB]:
        messages.append(("é" * size)[:size])
        messages.append(os.urandom(size // 2) + b"\x00" * (size - size // 2))
    async with asyncio.timeout(30):
        for message in messages:
            await client.send(message)
            assert await server_ws.recv() == message
            await server_ws.send(message, compress=True)
            assert await client.recv() == message
        # Fragmented, from iterables and async iterables.
        await client.send(["frag", "mented", " text" * 1000])

        async def pieces() -> AsyncIterator[bytes]:
            for i in range(5):
                yield bytes([i]) * 3000

        await server_ws.send(pieces())
        assert await server_ws.recv() == "fragmented" + " text" * 1000
        assert await client.recv() == b"".join(bytes([i]) * 3000 for i in range(5))


# wsio against a raw peer that negotiates permessage-deflate -------------------------------


@dataclass
class DeflatePair:
    """An open connection between wsio (``ws``) and a raw peer with permessage-deflate."""

    role: str
    ws: Any
    peer: RawConnection
    answer: str | None

    @property
    def wsio_masks(self) -> bool:
        return self.role == "client"

    async def frames_of_next_message(self) -> list[Frame]:
        frames: list[Frame] = []
        while True:
            frame = await self.peer.recv_frame(T)
            assert frame is not None
            assert frame.masked is self.wsio_masks
            assert not (frame.rsv2 or frame.rsv3)
            frames.append(frame)
            if frame.opcode in (OP_TEXT, OP_BINARY, OP_CONT) and frame.fin:
                return frames

    async def send_compressed(
        self, opcode: int, data: bytes, compressor: Any | None = None
    ) -> None:
        payload = deflate(compressor or new_compressor(), data)
        await self.peer.send_frame(opcode, payload, rsv1=True)


DeflatePairFactory = Callable[..., Awaitable[DeflatePair]]


@pytest.fixture
async def deflate_pair() -> AsyncIterator[DeflatePairFactory]:
    """``pair = await deflate_pair(role, extensions_header, **wsio_kwargs)``: for role
    "server", the raw client offers ``extensions_header``; for role "client", the raw server
    answers with it (``None``: no header)."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(role: str, header: str | None = PMD, **kwargs: Any) -> DeflatePair:
            loop = asyncio.get_running_loop()
            release = asyncio.Event()
            if role == "server":
                got: asyncio.Future[Any] = loop.create_future()

                async def handler(ws: Any) -> None:
                    if not got.done():
                        got.set_result(ws)
                    await release.wait()

                server = await stack.enter_async_context(
                    wsio.serve(handler, "127.0.0.1", 0, **kwargs)
                )
                port = server.sockets[0].getsockname()[1]
                client = await RawClient.open("127.0.0.1", port)
                stack.callback(client.abort)
                headers = [] if header is None else [("Sec-WebSocket-Extensions", header)]
                response = await client.handshake("/", headers=headers)
                assert response.status_code == 101, response.raw
                answers = response.get_all("Sec-WebSocket-Extensions")
                ws = await asyncio.wait_for(got, T)
                stack.callback(release.set)
                return DeflatePair(role, ws, client, ", ".join(answers) or None)

            conn_got: asyncio.Future[ServerConn] = loop.create_future()

            async def script(conn: ServerConn) -> None:
                request = await conn.read_request()
                extra = [] if header is None else [("Sec-WebSocket-Extensions", header)]
                await conn.accept(request, extra_headers=extra)
                conn_got.set_result(conn)
                await release.wait()

            srv = await stack.enter_async_context(RawServer(script))
            try:
                ws = await asyncio.wait_for(wsio.connect(f"{srv.url}/", proxy=None, **kwargs), T)
            except BaseException:
                release.set()
                raise
            stack.push_async_callback(_close_quietly, ws)
            peer = await asyncio.wait_for(conn_got, T)
            # Teardown: the raw server's script returns first, then the client closes.
            stack.callback(release.set)
            return DeflatePair(role, ws, peer, header)

        yield make


async def _close_quietly(ws: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(), T)


ROLES = ["server", "client"]


@pytest.mark.parametrize("role", ROLES)
async def test_send_compress_flag(deflate_pair: DeflatePairFactory, role: str) -> None:
    pair = await deflate_pair(role)
    only_deflate(pair.ws)
    big_text, big_bytes = "big text " * 100, b"\x07" * 1000
    cases: list[tuple[Any, bool | None, bool]] = [
        ("small", None, False),
        (big_text, None, True),
        (big_bytes, None, True),
        (big_text, False, False),
        (big_bytes, False, False),
        ("small", True, True),
        (b"", True, True),
        (b"", None, False),
    ]
    peer_inflater = zlib.decompressobj(wbits=-15)
    for message, compress, compressed in cases:
        await pair.ws.send(message, compress=compress)
        [frame] = await pair.frames_of_next_message()
        assert frame.rsv1 is compressed, (message[:10], compress)
        data = message.encode() if isinstance(message, str) else message
        assert frame.opcode == (OP_TEXT if isinstance(message, str) else OP_BINARY)
        if compressed:
            assert inflate(peer_inflater, frame.payload) == data
        else:
            assert frame.payload == data


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("compress", [None, True, False])
async def test_send_fragmented(
    deflate_pair: DeflatePairFactory, role: str, compress: bool | None
) -> None:
    pair = await deflate_pair(role)
    parts = [b"a" * 10, b"b" * 3000, b"", b"c" * 5]
    await pair.ws.send(parts, compress=compress)
    frames = await pair.frames_of_next_message()
    assert [f.opcode for f in frames] == [OP_BINARY, OP_CONT, OP_CONT, OP_CONT]
    # A fragmented message is compressed unless told not to: its size isn't known upfront.
    compressed = compress is not False
    assert [f.rsv1 for f in frames] == [compressed, False, False, False]
    payload = b"".join(f.payload for f in frames)
    if compressed:
        assert inflate(zlib.decompressobj(wbits=-15), payload) == b"".join(parts)
    else:
        assert payload == b"".join(parts)


@pytest.mark.parametrize("role", ROLES)
async def test_compression_threshold(deflate_pair: DeflatePairFactory, role: str) -> None:
    pair = await deflate_pair(role, compression_threshold=1000)
    assert only_deflate(pair.ws).compression_threshold == 1000
    for size, compressed in [(999, False), (1000, True), (5000, True), (10, False)]:
        await pair.ws.send(b"z" * size)
        [frame] = await pair.frames_of_next_message()
        assert frame.rsv1 is compressed, size


@pytest.mark.parametrize("role", ROLES)
async def test_compression_none_against_raw_peer(
    deflate_pair: DeflatePairFactory, role: str
) -> None:
    """compression=None: the server declines a raw client's offer; the client offers
    nothing, so a raw server that answers permessage-deflate anyway is refused."""
    if role == "server":
        pair = await deflate_pair(role, compression=None)
        assert pair.answer is None
        assert pair.ws.protocol.extensions == []
        await pair.ws.send(b"q" * 1000, compress=True)
        [frame] = await pair.frames_of_next_message()
        assert not frame.rsv1
        # RSV1 without the extension fails the connection with 1002.
        await pair.send_compressed(OP_TEXT, b"Hello")
        frames = await pair.peer.recv_frames_until_close(T)
        assert frames[-1].opcode == OP_CLOSE and frames[-1].close_code == 1002
    else:
        with pytest.raises(wsio.NegotiationError):
            await deflate_pair(role, compression=None)


@pytest.mark.parametrize("role", ROLES)
async def test_receive_compressed(deflate_pair: DeflatePairFactory, role: str) -> None:
    pair = await deflate_pair(role)
    compressor = new_compressor()
    async with asyncio.timeout(T):
        for i in range(5):
            text = f"message {i} " * 50
            await pair.send_compressed(OP_TEXT, text.encode(), compressor)
            assert await pair.ws.recv() == text
            await pair.send_compressed(OP_BINARY, bytes([i]) * 5000, compressor)
            assert await pair.ws.recv() == bytes([i]) * 5000


@pytest.mark.parametrize("role", ROLES)
async def test_receive_compressed_past_max_size(
    deflate_pair: DeflatePairFactory, role: str
) -> None:
    pair = await deflate_pair(role, max_size=64 * KiB)
    await pair.send_compressed(OP_BINARY, b"\x00" * (64 * KiB))
    async with asyncio.timeout(T):
        assert await pair.ws.recv() == b"\x00" * (64 * KiB)
    await pair.send_compressed(OP_BINARY, b"\x00" * (64 * KiB + 1))
    frames = await pair.peer.recv_frames_until_close(T)
    assert frames[-1].opcode == OP_CLOSE and frames[-1].close_code == 1009
    with pytest.raises(wsio.ConnectionClosedError) as info:
        async with asyncio.timeout(T):
            await pair.ws.recv()
    assert info.value.code == 1009


async def expect_failure(pair: DeflatePair, code: int) -> None:
    """The raw peer gets a close frame with ``code``; the application, ConnectionClosedError."""
    frames = await pair.peer.recv_frames_until_close(T)
    assert frames[-1].opcode == OP_CLOSE and frames[-1].close_code == code
    with pytest.raises(wsio.ConnectionClosedError) as info:
        async with asyncio.timeout(T):
            await pair.ws.recv()
    assert info.value.code == code


@pytest.mark.parametrize("role", ROLES)
async def test_receive_many_empty_final_blocks_fails_with_1008(
    deflate_pair: DeflatePairFactory, role: str
) -> None:
    """A message of 200,000 empty DEFLATE blocks with BFINAL set, each a new stream
    (RFC 7692 §7.2.3.4), fails with 1008 instead of costing a decompressor per 2 bytes."""
    pair = await deflate_pair(role)
    await pair.send_compressed(OP_TEXT, b"context " * 5000)
    async with asyncio.timeout(T):
        assert await pair.ws.recv() == "context " * 5000
    await pair.peer.send_frame(OP_BINARY, b"\x03\x00" * 200_000, rsv1=True)
    await expect_failure(pair, 1008)


@pytest.mark.parametrize("role", ROLES)
async def test_receive_compressed_payload_past_max_size_fails_with_1009(
    deflate_pair: DeflatePairFactory, role: str
) -> None:
    """A compressed message longer on the wire than max_size plus DEFLATE's overhead
    fails with 1009, though its empty stored blocks inflate to nothing."""
    pair = await deflate_pair(role, max_size=64 * KiB)
    await pair.peer.send_frame(OP_BINARY, b"\x00\x00\x00\xff\xff" * (20 * KiB), rsv1=True)
    await expect_failure(pair, 1009)


@pytest.mark.parametrize("value", ["gzip", "", "Deflate", "permessage-deflate", True, False, 1])
async def test_invalid_compression_value(value: Any) -> None:
    async def handler(ws: Any) -> None:
        pass

    with pytest.raises(ValueError):
        wsio.connect("ws://127.0.0.1:9/", compression=value)
    with pytest.raises(ValueError):
        wsio.serve(handler, "127.0.0.1", 0, compression=value)


# The compression bomb, in a separate process ---------------------------------------------

BOMB_MAX_SIZE = MiB

# The server under test runs alone in a fresh interpreter, so that its resident memory
# reflects what wsio does and nothing else. It prints its port, then answers commands read
# on stdin: "reset" starts a new peak (Linux: /proc/self/clear_refs), "measure" reports the
# current and peak resident memory, "alloc N" touches N bytes and frees them and reports how
# far the peak rose above the resident size just before (a control that the measurement
# sees growth).
SERVER_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, mmap, resource, sys

    import wsio

    def memory():
        try:
            with open("/proc/self/status") as f:
                fields = dict(line.split(":", 1) for line in f)
            # VmHWM is the peak of this process's own memory since start or since the
            # last reset; ru_maxrss would include the parent's at fork time on Linux.
            return {
                "rss": int(fields["VmRSS"].split()[0]) * 1024,
                "peak": int(fields["VmHWM"].split()[0]) * 1024,
            }
        except OSError:
            scale = 1 if sys.platform == "darwin" else 1024
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
            return {"rss": peak, "peak": peak}

    def reset():
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    async def echo(ws):
        try:
            async for message in ws:
                await ws.send(message)
        except wsio.ConnectionClosed:
            pass

    async def main():
        async with wsio.serve(echo, "127.0.0.1", 0, max_size=MAX_SIZE) as server:
            print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
            loop = asyncio.get_running_loop()
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    return
                command, *args = line.split()
                result = {}
                if command == "reset":
                    result["reset"] = reset()
                elif command == "alloc":
                    # The baseline is taken here, right before the allocation: memory that
                    # the last connection's objects give back to the system later would
                    # otherwise lower the resident size under a baseline taken earlier.
                    reset_done = reset()
                    before = memory()
                    # Fresh pages from the kernel: a bytearray could reuse heap memory
                    # that the bombs left resident, and the control would see no growth.
                    block = mmap.mmap(-1, int(args[0]))
                    for offset in range(0, len(block), 4096):
                        block[offset] = 1
                    block.close()
                    baseline = before["rss"] if reset_done else before["peak"]
                    result["grew"] = memory()["peak"] - baseline
                result.update(memory())
                result["connections"] = len(server.connections)
                print(json.dumps(result), flush=True)

    asyncio.run(main())
    """
)


class ServerProcess:
    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_SCRIPT.replace("MAX_SIZE", str(max_size))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parent,
        )
        self.port = self._read()["port"]

    def _read(self) -> dict[str, int]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the server process ended"
        result: dict[str, int] = json.loads(line)
        return result

    async def command(self, line: str) -> dict[str, int]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        async with asyncio.timeout(T):
            return await asyncio.to_thread(self._read)

    async def growth_of(self, action: Callable[[], Awaitable[None]]) -> int:
        """How far the server's peak resident memory rose above where it stood before
        ``action``, in bytes."""
        # The previous action's connection must be gone first: memory it frees after the
        # baseline would hide growth. Bounded: 100 polls of 20 ms.
        for _ in range(100):
            if (await self.command("measure"))["connections"] == 0:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the previous connection is still open")
        before = await self.command("reset")
        # Without a reset, the peak so far is the baseline.
        baseline = before["rss"] if before["reset"] else before["peak"]
        await action()
        after = await self.command("measure")
        return after["peak"] - baseline

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(T)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(T)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
async def server_process(request: pytest.FixtureRequest) -> AsyncIterator[ServerProcess]:
    """A wsio server in a fresh process, with ``max_size`` given by indirect parametrization."""
    process = await asyncio.wait_for(asyncio.to_thread(ServerProcess, request.param), 30)
    try:
        yield process
    finally:
        await asyncio.to_thread(process.stop)


def zeros_bomb(total: int) -> bytes:
    """A compressed message that inflates to ``total`` zero bytes (a multiple of 1 MiB),
    built without compressing them all: after the first MiB, the same sync-flushed block
    of back-references (distance 1) repeats."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(b"\x00" * MiB) + compressor.flush(zlib.Z_SYNC_FLUSH)
    again = compressor.compress(b"\x00" * MiB) + compressor.flush(zlib.Z_SYNC_FLUSH)
    payload = first + again * (total // MiB - 1)
    assert payload.endswith(TAIL)
    return payload[: -len(TAIL)]


def test_zeros_bomb_inflates_as_announced() -> None:
    payload = zeros_bomb(16 * MiB)
    decompressor = zlib.decompressobj(wbits=-15)
    out = decompressor.decompress(payload + TAIL)
    assert out == b"\x00" * (16 * MiB)
    assert len(payload) < 20 * KiB


async def open_deflate_client(port: int) -> RawClient:
    client = await RawClient.open("127.0.0.1", port)
    response = await client.handshake("/", headers=[("Sec-WebSocket-Extensions", PMD)])
    assert response.status_code == 101, response.raw
    assert response.get_all("Sec-WebSocket-Extensions"), "permessage-deflate not accepted"
    return client


async def send_bomb(port: int, payload: bytes) -> None:
    """Send ``payload`` as one compressed binary message: the server must close with 1009."""
    client = await open_deflate_client(port)
    async with client:
        with contextlib.suppress(ConnectionError, OSError):
            await client.send(build_frame(OP_BINARY, payload, rsv1=True), timeout=30)
        frames = await client.recv_frames_until_close(30)
        assert frames and frames[-1].opcode == OP_CLOSE, frames
        assert [f.opcode for f in frames] == [OP_CLOSE]
        assert frames[-1].close_code == 1009, frames[-1]
        with contextlib.suppress(ConnectionError, OSError):
            await client.send(build_frame(OP_CLOSE, close_payload(1009)))
        assert await client.wait_eof(T)


@pytest.mark.parametrize(
    "server_process", [BOMB_MAX_SIZE, 4 * MiB], indirect=True, ids=["1MiB", "4MiB"]
)
async def test_bomb_fails_with_1009_and_bounded_memory(server_process: ServerProcess) -> None:
    """A 10 KiB message inflating to 10 MiB, then a 1 MiB one inflating to 1 GiB, sent to a
    server with max_size=1 MiB (the issue's case), or 4 MiB: each fails with 1009, and the
    server's peak resident memory grows by less than max_size + 1 MiB.

    Why ru_maxrss in a fresh process: it is the peak of everything the process holds --
    Python objects, zlib's C buffers, socket buffers in user space -- so nothing escapes it,
    and no tracing slows the code or adds its own memory. The process runs the server only,
    and a first connection exchanging compressed messages warms it up (imports, caches,
    zlib's state) before the baseline is taken. tracemalloc would only see allocations
    made through Python's allocators and misses peaks between snapshots of C buffers."""
    port = server_process.port
    # Warm-up: a normal compressed exchange.
    client = await open_deflate_client(port)
    async with client:
        compressor = new_compressor()
        decompressor = zlib.decompressobj(wbits=-15)
        for size in (100, 10 * KiB, 100 * KiB):
            data = os.urandom(size // 2) + b"\x00" * (size - size // 2)
            await client.send(build_frame(OP_BINARY, deflate(compressor, data), rsv1=True))
            frame = await client.recv_frame(T)
            assert frame is not None and frame.opcode == OP_BINARY
            assert (inflate(decompressor, frame.payload) if frame.rsv1 else frame.payload) == data
        await client.send(build_frame(OP_CLOSE, close_payload(1000)))
        frames = await client.recv_frames_until_close(T)
        assert frames[-1].close_code == 1000

    limit = server_process.max_size + MiB

    small_bomb = deflate(new_compressor(), b"\x00" * (10 * MiB))
    assert len(small_bomb) <= 11 * KiB
    growth = await server_process.growth_of(lambda: send_bomb(port, small_bomb))
    assert growth < limit, f"10 KiB bomb: memory grew by {growth} bytes"

    big_bomb = zeros_bomb(1024 * MiB)
    assert len(big_bomb) <= 2 * MiB
    growth = await server_process.growth_of(lambda: send_bomb(port, big_bomb))
    assert growth < limit, f"1 GiB bomb: memory grew by {growth} bytes"

    # Control: the measurement does see memory used while an action runs.
    seen = (await server_process.command(f"alloc {4 * MiB}"))["grew"]
    assert seen >= 3 * MiB, f"the measurement missed a 4 MiB allocation ({seen} bytes)"

    # The server still works.
    client = await open_deflate_client(port)
    async with client:
        await client.send(build_frame(OP_TEXT, deflate(new_compressor(), b"alive"), rsv1=True))
        frame = await client.recv_frame(T)
        assert frame is not None and frame.opcode == OP_TEXT


async def test_client_bomb_fails_with_1009() -> None:
    """The same bomb against a wsio client: it fails with 1009 at once."""
    payload = deflate(new_compressor(), b"\x00" * (10 * MiB))
    closes: list[Frame] = []

    async def script(conn: ServerConn) -> None:
        request = await conn.read_request()
        await conn.accept(request, extra_headers=[("Sec-WebSocket-Extensions", PMD)])
        await conn.send_frame(OP_BINARY, payload, rsv1=True)
        frames = await conn.recv_frames_until_close(T)
        closes.extend(f for f in frames if f.opcode == OP_CLOSE)
        conn.close()

    async with RawServer(script) as server:
        async with wsio.connect(
            server.url + "/", max_size=BOMB_MAX_SIZE, proxy=None, close_timeout=2
        ) as ws:
            with pytest.raises(wsio.ConnectionClosedError) as info:
                async with asyncio.timeout(T):
                    await ws.recv()
            assert info.value.code == 1009
        await server.wait_scripts(T)
    assert [f.close_code for f in closes] == [1009]
    assert closes[0].masked


@pytest.mark.parametrize("role", ROLES)
async def test_burst_of_compressed_messages_stays_within_the_queue(
    deflate_pair: DeflatePairFactory, role: str
) -> None:
    """Many small compressed messages, each inflating to max_size, sent in one burst while
    the application doesn't read: the core decodes no more than the queue holds (a few
    hundred bytes on the wire each would otherwise cost max_size each), and every message
    is delivered, in order, once the application reads."""
    max_size, max_queue, count = 256 * KiB, 4, 64
    pair = await deflate_pair(role, max_size=max_size, max_queue=max_queue)
    compressor = new_compressor()
    messages = [bytes([i]) * max_size for i in range(count)]
    mask = DEFAULT_MASK if role == "server" else None
    burst = b"".join(
        build_frame(OP_BINARY, deflate(compressor, message), rsv1=True, mask=mask)
        for message in messages
    )
    assert len(burst) < 32 * KiB
    tracemalloc.start()
    try:
        await pair.peer.send(burst)
        # The burst arrives in one or a few reads; then give the loop time to handle them.
        for _ in range(100):
            if len(pair.ws._messages) >= max_queue:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < max_queue * max_size + 512 * KiB
    async with asyncio.timeout(T):
        for message in messages:
            assert await pair.ws.recv() == message
