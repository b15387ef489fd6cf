"""The ``wsio`` command: ``wsio echo`` (a server) and ``wsio connect`` (an interactive client)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import io
import logging
import math
import os
import ssl as ssl_module
import sys
import threading
from collections.abc import Sequence
from urllib.parse import urlsplit

from .. import defaults
from .._version import __version__
from ..asyncio.client import connect
from ..asyncio.server import ServerConnection, serve
from ..exceptions import (
    ConnectionClosed,
    InvalidArgument,
    InvalidHandshake,
    InvalidHeaderValue,
    InvalidStatus,
    WebSocketError,
)
from ..protocol.handshake import parse_token_list
from ..protocol.http11 import Headers
from .common import (
    UsageError,
    client_ssl_context,
    error_line,
    escape,
    escape_lines,
    parse_uri_argument,
    serve_until_stopped,
    server_ssl_context,
    stop_on_signals,
    timed_out,
)
from .demo import serve_demo
from .probe import run_probe
from .workers import MAX_WORKERS, run_workers, stop_with_parent

__all__ = ["main"]


# Seconds ``wsio connect`` waits for replies at the end of its input.
_WAIT = 1.0

# Bytes of an unsent line shown in the error message.
_SHOWN = 80


def _bytes(text: str) -> int | None:
    """``--max-size``: a positive number of bytes, or ``none`` for no limit."""
    if text.lower() == "none":
        return None
    with contextlib.suppress(ValueError):
        if (value := int(text)) > 0:
            return value
    raise argparse.ArgumentTypeError(
        f"expected a positive number of bytes or 'none', got {text!r}"
    )


def _float(text: str) -> float:
    """A finite number, or NaN (which fails every comparison) for anything else."""
    try:
        value = float(text)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def _seconds(text: str) -> float:
    """``--timeout``: a positive number of seconds."""
    if (value := _float(text)) > 0:
        return value
    raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")


def _seconds_or_zero(text: str) -> float:
    """``--wait``: a number of seconds, 0 included."""
    if (value := _float(text)) >= 0:
        return value
    raise argparse.ArgumentTypeError(f"expected a number of seconds, 0 or more, got {text!r}")


def _port(text: str) -> int:
    """``--port``: 0 to 65535, 0 meaning any free port."""
    with contextlib.suppress(ValueError):
        if 0 <= (value := int(text)) <= 65535:
            return value
    raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {text!r}")


def _workers(text: str) -> int:
    """``--workers`` (and the worker's hidden ``--as-worker``): 1 to MAX_WORKERS."""
    with contextlib.suppress(ValueError):
        if 1 <= (value := int(text)) <= MAX_WORKERS:
            return value
    raise argparse.ArgumentTypeError(
        f"expected a whole number from 1 to {MAX_WORKERS}, got {text!r}"
    )


def _redis_url(text: str) -> str:
    """``--redis``: a Redis URL, and the redis package to reach it with."""
    if urlsplit(text).scheme not in ("redis", "rediss", "unix"):
        raise argparse.ArgumentTypeError(
            f"expected a redis://, rediss:// or unix:// URL, got {text!r}"
        )
    if importlib.util.find_spec("redis") is None:
        raise argparse.ArgumentTypeError("needs the redis package: pip install 'wsio[redis]'")
    return text


def _header(text: str) -> tuple[str, str]:
    """``-H``: ``Name: value``, checked as the request will check it."""
    name, colon, value = text.partition(":")
    if not colon:
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    try:
        (field,) = Headers([(name.strip(), value.strip())]).raw_items()
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}: {exc}") from exc
    return field


def _origin(text: str) -> str:
    """``--origin``: a value that the ``Origin`` header can carry."""
    try:
        Headers([("Origin", text)])
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def _subprotocol(text: str) -> str:
    """``-p``: one subprotocol name, a token (RFC 6455 §4.1)."""
    with contextlib.suppress(InvalidHeaderValue):
        if parse_token_list([text], "Sec-WebSocket-Protocol") == [text]:
            return text
    raise argparse.ArgumentTypeError(
        f"expected a name made of letters, digits and !#$%&'*+-.^_`|~, got {text!r}"
    )


def _add_server_options(parser: argparse.ArgumentParser, default_port: int) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=default_port,
        help="port to listen on, 0 for any free port (default %(default)s)",
    )
    parser.add_argument(
        "--certfile",
        metavar="FILE",
        help="serve TLS (wss://) with this certificate chain (PEM), the key included or not",
    )
    parser.add_argument(
        "--keyfile", metavar="FILE", help="the private key, when it isn't in --certfile"
    )
    _add_max_size(parser)
    _add_no_compression(parser)
    parser.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="serve with N processes sharing the port, the kernel spreading connections "
        "among them (Linux only; default %(default)s: this process serves)",
    )
    # Set by the parent of --workers in each worker it starts: the worker's index. Its
    # name shares no prefix with --workers, which argparse would then find ambiguous.
    parser.add_argument("--as-worker", type=_workers, help=argparse.SUPPRESS)


def _add_client_tls(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cafile", metavar="FILE", help="CA certificates to verify a wss:// server with"
    )
    parser.add_argument(
        "--insecure", action="store_true", help="don't verify the wss:// server's certificate"
    )


def _add_timeout(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=defaults.OPEN_TIMEOUT,
        metavar="SECONDS",
        help=f"{what}: TCP, TLS and HTTP upgrade (default %(default)s)",
    )


def _add_no_compression(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-compression",
        dest="compression",
        action="store_const",
        const=None,
        default=defaults.COMPRESSION,
        help="don't negotiate permessage-deflate (RFC 7692), which is on by default",
    )


def _add_max_size(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-size",
        type=_bytes,
        default=defaults.MAX_SIZE,
        metavar="BYTES",
        help="largest message accepted, 'none' for no limit (default %(default)s)",
    )


def _add_header(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-H",
        "--header",
        type=_header,
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="extra request header (repeatable)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsio", description="WebSocket tools (RFC 6455).")
    parser.add_argument("--version", action="version", version=f"wsio {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    echo = commands.add_parser("echo", help="run a server that sends every message back")
    _add_server_options(echo, default_port=9001)
    demo = commands.add_parser(
        "serve", help="run the demo: a chat page at /, an echo endpoint at /echo, /healthz"
    )
    _add_server_options(demo, default_port=8765)
    demo.add_argument(
        "--redis",
        type=_redis_url,
        metavar="URL",
        help="chat through this Redis (redis://host:port/db): one room for every worker "
        "and every server sharing it, instead of one per process",
    )

    inspector = commands.add_parser(
        "probe", help="open one connection and show the handshake, checked against RFC 6455"
    )
    inspector.add_argument("uri", help="ws:// or wss:// URI")
    _add_header(inspector)
    inspector.add_argument(
        "-p",
        "--subprotocol",
        type=_subprotocol,
        action="append",
        default=[],
        metavar="NAME",
        help="subprotocol to offer (repeatable)",
    )
    inspector.add_argument("--origin", type=_origin, help="value of the Origin header")
    _add_client_tls(inspector)
    _add_timeout(inspector, "for the whole handshake")
    inspector.add_argument("--json", action="store_true", help="print one JSON object")
    _add_no_compression(inspector)

    client = commands.add_parser("connect", help="an interactive client")
    client.add_argument("uri", help="ws:// or wss:// URI")
    _add_header(client)
    _add_client_tls(client)
    _add_timeout(client, "to open the connection")
    client.add_argument(
        "--wait",
        type=_seconds_or_zero,
        default=_WAIT,
        metavar="SECONDS",
        help="at end of input, how long to wait for replies before closing; the server "
        "closing ends the wait (default %(default)s)",
    )
    _add_max_size(client)
    _add_no_compression(client)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``wsio`` command; return its exit status."""
    for stream in (sys.stdout, sys.stderr):
        # A character the terminal's encoding lacks is written as an escape, not raised.
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    arguments = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(arguments)
    logging.basicConfig(format="%(message)s", level=logging.WARNING)
    try:
        return asyncio.run(_run(args, arguments))
    except UsageError as exc:
        _error(str(exc))
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of the output went away (``wsio connect ... | head -1``): nothing
        # more can be shown. Point stdout at /dev/null so that the interpreter's own
        # flush at exit doesn't complain too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


async def _run(args: argparse.Namespace, argv: list[str]) -> int:
    """The command chosen (``argv``, its arguments, parsed as ``args``);
    :class:`UsageError` for an argument found bad after parsing."""
    if args.command in ("echo", "serve"):
        ssl = server_ssl_context(args.certfile, args.keyfile)
        worker = args.as_worker
        if worker is None and args.workers > 1:
            return await run_workers(argv, args.host, args.port, args.workers)
        if worker is not None:
            stop_with_parent()
        server_args = (args.host, args.port, args.max_size, args.compression, ssl)
        reuse_port = worker is not None
        if args.command == "echo":
            return await _echo(*server_args, reuse_port=reuse_port)
        return await serve_demo(
            *server_args, reuse_port=reuse_port, worker=worker, redis=args.redis
        )
    if args.command == "probe":
        return await run_probe(
            args.uri,
            headers=args.header,
            subprotocols=args.subprotocol,
            origin=args.origin,
            cafile=args.cafile,
            insecure=args.insecure,
            as_json=args.json,
            compression=args.compression,
            timeout=args.timeout,
            out=sys.stdout,
            err=sys.stderr,
        )
    wsuri = parse_uri_argument(args.uri)
    ssl = client_ssl_context(args.cafile, args.insecure)
    return await _connect(
        args.uri,
        args.header,
        max_size=args.max_size,
        compression=args.compression,
        # connect() refuses a context for ws://; a redirect to wss:// gets the default one.
        ssl=ssl if wsuri.secure else None,
        timeout=args.timeout,
        wait=args.wait,
    )


def _error(message: str) -> None:
    error_line(escape(message))


async def _echo_handler(ws: ServerConnection) -> None:
    """Send every message back, text as text and binary as binary."""
    async for message in ws:
        await ws.send(message)


async def _echo(
    host: str,
    port: int,
    max_size: int | None,
    compression: str | None,
    ssl: ssl_module.SSLContext | None,
    reuse_port: bool = False,
) -> int:
    server = serve(
        _echo_handler,
        host,
        port,
        max_size=max_size,
        compression=compression,
        ssl=ssl,
        reuse_port=reuse_port,
    )
    scheme = "ws" if ssl is None else "wss"
    return await serve_until_stopped(server, "wsio echo server", scheme, host, port)


def _describe_rejection(exc: InvalidHandshake) -> str:
    if not isinstance(exc, InvalidStatus):
        return f"handshake failed: {escape(str(exc))}"
    response = exc.response
    status = f"HTTP {response.status_code} {escape(response.reason_phrase)}".rstrip()
    lines = [f"handshake failed: {status}"]
    lines.extend(
        f"{escape(name)}: {escape(value)}" for name, value in response.headers.raw_items()
    )
    if response.body:
        lines.append("")
        lines.extend(escape_lines(response.body.decode("utf-8", "replace")))
        if response.body_truncated:
            lines.append(f"[body cut at {len(response.body)} bytes]")
    return "\n".join(lines)


async def _connect(
    uri: str,
    header: list[tuple[str, str]],
    *,
    max_size: int | None,
    compression: str | None,
    ssl: ssl_module.SSLContext | None,
    timeout: float,
    wait: float,
) -> int:
    """``wsio connect``: 0 after a normal close, 1 otherwise or when a line wasn't sent."""
    try:
        ws = await connect(
            uri,
            additional_headers=Headers(header),
            max_size=max_size,
            compression=compression,
            ssl=ssl,
            open_timeout=timeout,
        )
    except InvalidHandshake as exc:
        print(_describe_rejection(exc), file=sys.stderr)
        return 1
    except TimeoutError:
        _error(f"couldn't connect to {uri}: {timed_out(timeout)}")
        return 1
    except (OSError, WebSocketError) as exc:
        # WebSocketError: a redirect to an invalid URI, an invalid proxy setting.
        _error(f"couldn't connect to {uri}: {exc}")
        return 1
    print(f"connected to {escape(uri)}", file=sys.stderr)

    lines = _read_lines()
    stop = stop_on_signals()
    skipped = 0

    async def receive() -> None:
        async for message in ws:
            if isinstance(message, str):
                print(escape(message), flush=True)
            else:
                print(f"[binary, {len(message)} bytes] {message.hex()}", flush=True)

    async def send() -> None:
        """Send each line as a text message."""
        nonlocal skipped
        number = 0
        while (line := await lines.get()) is not None:
            number += 1
            try:
                text = line.decode()
            except UnicodeDecodeError as exc:
                # RFC 6455 §5.6: a text message is UTF-8. Replacing the bad bytes would
                # send something else than what was typed: skip the line, say so, go on.
                _error(
                    f"line {number} not sent: invalid UTF-8 at byte {exc.start + 1}: "
                    f"{line[:_SHOWN]!r}{'...' if len(line) > _SHOWN else ''}"
                )
                skipped += 1
                continue
            await ws.send(text)

    receiving = asyncio.ensure_future(receive())
    sending = asyncio.ensure_future(send())
    await asyncio.wait([receiving, sending, stop], return_when=asyncio.FIRST_COMPLETED)
    if sending.done() and not receiving.done() and not stop.done() and wait > 0:
        # End of input: replies may still be on their way. Wait for them, as long as
        # --wait allows; the server closing or Ctrl-C ends the wait sooner.
        await asyncio.wait([receiving, stop], timeout=wait)
    sending.cancel()
    # Messages that arrive during the closing handshake are still printed.
    await ws.close()
    with contextlib.suppress(ConnectionClosed):
        await receiving
    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
        await sending
    code, reason = ws.close_code, ws.close_reason
    print(f"connection closed: {code} {escape(reason or '')}".rstrip(), file=sys.stderr)
    return 0 if code in (1000, 1001, 1005) and not skipped else 1


def _read_lines() -> asyncio.Queue[bytes | None]:
    """Lines of standard input, without their end; ``None`` at end of input.

    They are bytes, decoded by the caller, so that a line that isn't UTF-8 is reported
    without losing the lines after it. A thread reads, since a terminal, a pipe and a
    file can't all be read by asyncio; it reads the file descriptor, not ``sys.stdin``,
    whose lock it would still hold when the interpreter exits during a read.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def put(line: bytes | None) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, line)

    def run() -> None:
        buffer = bytearray()
        # A missing or unreadable standard input is an empty one.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            fd = sys.stdin.fileno()
            while chunk := os.read(fd, 65536):
                # Look for line ends in the new bytes only: a long line costs linear time.
                search_from = len(buffer)
                buffer += chunk
                start = 0
                while (end := buffer.find(b"\n", search_from)) >= 0:
                    put(bytes(buffer[start:end]).rstrip(b"\r"))
                    start = search_from = end + 1
                del buffer[:start]
        if buffer:
            put(bytes(buffer).rstrip(b"\r"))
        put(None)

    threading.Thread(target=run, daemon=True).start()
    return queue
