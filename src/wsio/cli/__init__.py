"""The ``wsio`` command: ``wsio echo`` (a server) and ``wsio connect`` (an interactive client)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Sequence

from .. import defaults
from ..asyncio.client import connect
from ..asyncio.server import ServerConnection, serve
from ..exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from ..protocol.http11 import Headers
from .common import stop_on_signals
from .demo import serve_demo
from .probe import run_probe

__all__ = ["main"]


def _size(text: str) -> int | None:
    """``--max-size``: a number of bytes, or ``none`` for no limit."""
    if text.lower() == "none":
        return None
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of bytes, or none")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip() or any(c in text for c in "\r\n\x00"):
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def _add_server_options(parser: argparse.ArgumentParser, default_port: int) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=default_port, help="port to listen on")
    _add_max_size(parser)
    _add_no_compression(parser)


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
        type=_size,
        default=defaults.MAX_SIZE,
        metavar="BYTES",
        help=f"largest message accepted (default {defaults.MAX_SIZE}; 'none' for no limit)",
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
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    echo = commands.add_parser("echo", help="run a server that sends every message back")
    _add_server_options(echo, default_port=9001)
    demo = commands.add_parser(
        "serve", help="run the demo: a chat page at /, an echo endpoint at /echo, /healthz"
    )
    _add_server_options(demo, default_port=8765)

    inspector = commands.add_parser(
        "probe", help="open one connection and show the handshake, checked against RFC 6455"
    )
    inspector.add_argument("uri", help="ws:// or wss:// URI")
    _add_header(inspector)
    inspector.add_argument(
        "-p",
        "--subprotocol",
        action="append",
        default=[],
        metavar="NAME",
        help="subprotocol to offer (repeatable)",
    )
    inspector.add_argument("--origin", help="value of the Origin header")
    inspector.add_argument("--cafile", help="CA certificates to verify a wss:// server with")
    inspector.add_argument(
        "--insecure", action="store_true", help="don't verify the wss:// server's certificate"
    )
    inspector.add_argument(
        "--timeout",
        type=_seconds,
        default=defaults.OPEN_TIMEOUT,
        metavar="SECONDS",
        help=f"for the whole handshake (default {defaults.OPEN_TIMEOUT})",
    )
    inspector.add_argument("--json", action="store_true", help="print one JSON object")
    _add_no_compression(inspector)

    client = commands.add_parser("connect", help="an interactive client")
    client.add_argument("uri", help="ws:// or wss:// URI")
    _add_header(client)
    _add_max_size(client)
    _add_no_compression(client)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``wsio`` command; return its exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(format="%(message)s", level=logging.WARNING)
    try:
        if args.command in ("echo", "serve"):
            run_server = _echo if args.command == "echo" else serve_demo
            try:
                return asyncio.run(
                    run_server(args.host, args.port, args.max_size, args.compression)
                )
            except OSError as exc:
                print(f"wsio: couldn't listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
                return 1
        if args.command == "probe":
            return asyncio.run(
                run_probe(
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
            )
        return asyncio.run(_connect(args.uri, args.header, args.max_size, args.compression))
    except KeyboardInterrupt:
        return 130


async def _echo_handler(ws: ServerConnection) -> None:
    """Send every message back, text as text and binary as binary."""
    async for message in ws:
        await ws.send(message)


async def _echo(host: str, port: int, max_size: int | None, compression: str | None) -> int:
    stop = stop_on_signals()
    async with serve(
        _echo_handler, host, port, max_size=max_size, compression=compression
    ) as server:
        address = server.sockets[0].getsockname()
        print(f"wsio echo server listening on ws://{address[0]}:{address[1]}/", flush=True)
        await stop
    return 0


def _describe_rejection(exc: InvalidHandshake) -> str:
    if not isinstance(exc, InvalidStatus):
        return f"handshake failed: {exc}"
    response = exc.response
    lines = [f"handshake failed: HTTP {response.status_code} {response.reason_phrase}".rstrip()]
    lines.extend(f"{name}: {value}" for name, value in response.headers.items())
    if response.body:
        lines.append("")
        lines.append(response.body.decode("utf-8", "replace"))
        if response.body_truncated:
            lines.append(f"[body cut at {len(response.body)} bytes]")
    return "\n".join(lines)


async def _connect(
    uri: str, header: list[tuple[str, str]], max_size: int | None, compression: str | None
) -> int:
    try:
        ws = await connect(
            uri, additional_headers=Headers(header), max_size=max_size, compression=compression
        )
    except InvalidURI as exc:
        print(f"wsio: {exc}", file=sys.stderr)
        return 2
    except InvalidHandshake as exc:
        print(_describe_rejection(exc), file=sys.stderr)
        return 1
    except (OSError, TimeoutError) as exc:
        print(f"wsio: couldn't connect to {uri}: {exc or 'timed out'}", file=sys.stderr)
        return 1
    print(f"connected to {uri}", file=sys.stderr)

    lines = _read_lines()
    stop = stop_on_signals()

    async def receive() -> None:
        async for message in ws:
            if isinstance(message, str):
                print(message, flush=True)
            else:
                print(f"[binary, {len(message)} bytes] {message.hex()}", flush=True)

    async def send() -> None:
        while (line := await lines.get()) is not None:
            await ws.send(line)

    receiving = asyncio.ensure_future(receive())
    sending = asyncio.ensure_future(send())
    await asyncio.wait([receiving, sending, stop], return_when=asyncio.FIRST_COMPLETED)
    sending.cancel()
    # Messages that arrive during the closing handshake are still printed.
    await ws.close()
    with contextlib.suppress(ConnectionClosed):
        await receiving
    code, reason = ws.close_code, ws.close_reason
    print(f"connection closed: {code} {reason}".rstrip(), file=sys.stderr)
    return 0 if code in (1000, 1001, 1005) else 1


def _read_lines() -> asyncio.Queue[str | None]:
    """Lines typed on standard input, without their end; ``None`` at end of input.

    A thread reads, since a terminal, a pipe and a file can't all be read by asyncio.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def run() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\r\n"))
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=run, daemon=True).start()
    return queue
