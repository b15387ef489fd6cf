"""What the orchestrator, the servers and the clients share: constants, frames, process set-up."""

from __future__ import annotations

import asyncio
import base64
import ctypes
import hashlib
import json
import os
import resource
import signal
import struct
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

__all__ = [
    "HOST",
    "LOOPS",
    "MAX_SIZE",
    "accept_key",
    "answer",
    "build_frame",
    "check_response",
    "make_payload",
    "prepare_child",
    "run_loop",
    "serve_commands",
]

#: Every socket of the benchmark is on loopback.
HOST = "127.0.0.1"

#: Largest message every server and client accepts: the 1 MiB rows fit, the limit stays on.
MAX_SIZE = 2 * 2**20

#: Event loops a process can run on.
LOOPS = ("asyncio", "uvloop")

#: Servers that echo bytes rather than frames: the load generator checks them byte for byte.
BYTE_ECHOES = ("tcp", "task")

#: The client that drives the servers (``--loadgen``), unless told otherwise.
LOAD_GENERATOR = "raw"

#: The server every client row runs against, on uvloop when installed.
FIXED_SERVER = "picows"


def have_uvloop() -> bool:
    """Whether uvloop is installed: the load generator runs on it then."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

_T = TypeVar("_T")


def accept_key(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def _xor(data: bytes, mask: bytes) -> bytes:
    length = len(data)
    key = (mask * ((length >> 2) + 1))[:length]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(
        length, "little"
    )


def build_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One final frame with the shortest length encoding; masked when ``mask`` is given."""
    length = len(payload)
    first = 0x80 | opcode
    bit = 0x80 if mask is not None else 0
    if length < 126:
        header = struct.pack("!BB", first, bit | length)
    elif length < 2**16:
        header = struct.pack("!BBH", first, bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, bit | 127, length)
    if mask is None:
        return header + payload
    return header + mask + _xor(payload, mask)


def make_payload(size: int, text: bool) -> bytes:
    """Random bytes for binary messages; for text, valid UTF-8 that mixes 1- to 4-byte
    characters, so that validation has work to do."""
    if not text:
        return os.urandom(size)
    unit = "wsio ünïcødé € ✓ 𝄞 ".encode()
    data = (unit * (size // len(unit) + 1))[:size]
    # Cut at a character boundary, then pad with ASCII to the exact size.
    data = data.decode("utf-8", "ignore").encode()
    return data + b"a" * (size - len(data))


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def prepare_child(cpu: int | None) -> None:
    """Set up a server or client process: die with the orchestrator, raise the limit of
    open files, pin to ``cpu`` if given, and leave Ctrl-C to the orchestrator."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() == 1:  # the orchestrator died before prctl: don't linger
            os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _raise_nofile()
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def run_loop(loop: str, main: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run ``main()`` on the stdlib asyncio loop or on uvloop."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


def check_response(head: bytes, key: bytes) -> str:
    """What is wrong with the head of a handshake response to ``key``: ``""`` if nothing."""
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 101"):
        return f"handshake failed: {lines[0]!r}"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-accept":
            if value.strip() == accept_key(key):
                return ""
            return "wrong Sec-WebSocket-Accept"
    return "no Sec-WebSocket-Accept"


def answer(result: dict[str, Any]) -> None:
    """Tell the orchestrator: one JSON line on stdout."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


async def serve_commands(commands: dict[str, Callable[..., Awaitable[dict[str, Any]]]]) -> None:
    """Answer the orchestrator's commands, one JSON line each, until stdin ends or
    ``quit``; then end the process at once (open connections are simply dropped)."""
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        request = json.loads(line)
        op = request.pop("op")
        if op == "quit":
            break
        try:
            result = await commands[op](**request)
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
        answer(result)
    os._exit(0)
