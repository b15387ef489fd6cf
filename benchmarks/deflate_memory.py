"""Memory that inflating costs a wsio server connection, measured apart from the table.

``python -m benchmarks.deflate_memory [--conns N]`` opens N sans-I/O server connections
(:class:`wsio.protocol.connection.ServerProtocol`, no sockets) whose client offered
permessage-deflate without ``client_max_window_bits``, so that the client's window is 2**15
bytes, the largest. Each connection then receives one compressed message, masked as a
client sends it; the message is delivered and dropped. The memory that the connections
hold afterwards, less what they held after the handshake, divided by N, is what inflating
costs each one: zlib's decompressor and the output kept for a stream that restarts after a
block with BFINAL set (RFC 7692 §7.2.3.4). tracemalloc counts it: zlib allocates through
Python's allocator. (The resident set would count only the pages touched so far.)

One row per message size, received at once and in segments of 1,460 bytes (TCP over
Ethernet): the kept output is the message itself under the window, one window above it.
"""

from __future__ import annotations

import argparse
import base64
import gc
import os
import tracemalloc
import zlib

from wsio.protocol.connection import RequestReceived, ServerProtocol
from wsio.protocol.extensions import ServerPerMessageDeflateFactory

from .common import build_frame

_KEY = base64.b64encode(b"deflate memory!!").decode()
_REQUEST = (
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    f"Sec-WebSocket-Key: {_KEY}\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
).encode()
_RSV1 = 0x40
_TEXT = 0x1


def _opened() -> ServerProtocol:
    server = ServerProtocol(extensions=[ServerPerMessageDeflateFactory()], max_size=None)
    server.receive_data(_REQUEST)
    [event] = server.events_received()
    assert isinstance(event, RequestReceived)
    server.send_response(server.accept(event.request))
    server.data_to_send()
    return server


def _compressed_frame(size: int) -> bytes:
    """One compressed text message of ``size`` bytes of random hexadecimal digits, which
    compress to about half, as a client sends it."""
    text = os.urandom(size // 2).hex().encode()
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)
    frame = build_frame(_TEXT, payload[:-4], mask=os.urandom(4))
    return bytes([frame[0] | _RSV1]) + frame[1:]


def measure(conns: int, size: int, segment: int | None) -> float:
    """KiB per connection that one compressed message of ``size`` bytes, received in pieces
    of ``segment`` bytes (``None``: at once), leaves behind."""
    frame = _compressed_frame(size)
    step = segment or len(frame)
    servers = [_opened() for _ in range(conns)]
    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    for server in servers:
        for start in range(0, len(frame), step):
            server.receive_data(frame[start : start + step])
        [message] = server.events_received()
        assert server.failure is None, server.failure
    del message
    gc.collect()
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (after - before) / 1024 / conns


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.deflate_memory")
    parser.add_argument("--conns", type=int, default=1000, help="connections (1,000)")
    args = parser.parse_args()
    print(f"inflate KiB/conn @{args.conns:,}, window 2**15     at once   1,460 B segments")
    for size in (1024, 16 * 1024, 64 * 1024):
        whole = measure(args.conns, size, None)
        segments = measure(args.conns, size, 1460)
        label = f"after one compressed {size // 1024} KiB message"
        print(f"{label:40} {whole:10.1f} {segments:18.1f}")


if __name__ == "__main__":
    main()
