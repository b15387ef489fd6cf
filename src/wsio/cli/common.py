"""Pieces shared by the subcommands of ``wsio``."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import ssl as ssl_module
import sys
import unicodedata

from ..asyncio.server import Server
from ..exceptions import HubError, InvalidURI
from ..protocol.uri import WebSocketURI, parse_uri

__all__ = [
    "UsageError",
    "cannot_listen",
    "client_ssl_context",
    "escape",
    "escape_lines",
    "host_port",
    "parse_uri_argument",
    "serve_until_stopped",
    "server_ssl_context",
    "stop_on_signals",
    "timed_out",
]


class UsageError(Exception):
    """A bad argument found after parsing (a URI, a certificate file): the command prints
    the message and exits with status 2, as argparse does for the arguments it checks."""


def stop_on_signals() -> asyncio.Future[None]:
    """A future resolved by SIGINT or SIGTERM, so that servers close cleanly (1001)."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def set_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, set_stop)
    return stop


# Characters a terminal acts on or draws misleadingly: controls (C0, DEL, C1: ESC
# sequences, CR, backspace), format characters (bidi overrides and isolates, zero-width
# characters), line and paragraph separators, and lone surrogates.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_LINE_END = re.compile(r"\r?\n")


def escape(text: str) -> str:
    """``text`` with every unsafe character written as a Python escape (``\\x1b``,
    ``\\r``, ``\\n``, ``\\u202e``), so that what a server sends is shown, on one line,
    and can't move the cursor, rewrite what was printed or reorder it."""
    if text.isprintable():  # the common case, checked at C speed
        return text
    return "".join(
        char.encode("unicode_escape").decode("ascii")
        if unicodedata.category(char) in _UNSAFE_CATEGORIES
        else char
        for char in text
    )


def escape_lines(text: str) -> list[str]:
    """``text`` cut at its line ends (LF or CRLF), each line escaped."""
    lines = _LINE_END.split(text)
    if lines[-1] == "":
        lines.pop()
    return [escape(line) for line in lines]


def timed_out(seconds: float) -> str:
    """The reason given when an open timeout of ``seconds`` expired."""
    return f"timed out after {seconds:g} s"


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets, so that it can be pasted in a URI."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_uri_argument(uri: str) -> WebSocketURI:
    """The URI given on the command line, parsed.

    :raises UsageError: it isn't a valid ``ws://`` or ``wss://`` URI.
    """
    try:
        wsuri = parse_uri(uri)
        # Refuse now a host name that the resolver couldn't encode (an empty label, one
        # over 63 characters), rather than fail at connect time.
        wsuri.host.encode("idna")
    except InvalidURI as exc:
        raise UsageError(str(exc)) from exc
    except ValueError as exc:  # what urllib and the IDNA codec raise for a malformed host
        raise UsageError(f"{uri} isn't a valid URI: {exc}") from exc
    return wsuri


def client_ssl_context(cafile: str | None, insecure: bool) -> ssl_module.SSLContext | None:
    """The TLS context for ``--cafile`` and ``--insecure``; ``None`` (the default, verifying
    context) when neither is given.

    :raises UsageError: ``cafile`` can't be read or holds no certificate.
    """
    if cafile is None and not insecure:
        return None
    try:
        context = ssl_module.create_default_context(cafile=cafile)
    except (OSError, ssl_module.SSLError) as exc:
        raise UsageError(f"can't use {cafile} as CA certificates: {exc}") from exc
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl_module.CERT_NONE
    return context


def server_ssl_context(certfile: str | None, keyfile: str | None) -> ssl_module.SSLContext | None:
    """The TLS context for ``--certfile`` and ``--keyfile``; ``None`` (plain TCP) without them.

    :raises UsageError: a key without a certificate, or files that can't be loaded.
    """
    if certfile is None:
        if keyfile is not None:
            raise UsageError("--keyfile needs --certfile")
        return None
    context = ssl_module.create_default_context(ssl_module.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl_module.SSLError) as exc:
        files = certfile if keyfile is None else f"{certfile} and {keyfile}"
        raise UsageError(f"can't use {files} as certificate and key: {exc}") from exc
    return context


def error_line(message: str) -> None:
    """Write ``wsio: message`` and its newline to stderr in one write: the workers of
    ``--workers`` share their parent's stderr, and a line written in two pieces, as
    ``print`` does when stderr is unbuffered (``PYTHONUNBUFFERED``), can be cut in two by
    another process's line."""
    sys.stderr.write(f"wsio: {message}\n")
    sys.stderr.flush()


def cannot_listen(host: str, port: int, exc: Exception) -> int:
    """Say on one line why a server can't listen on ``host:port``; return 1, the exit
    status for it."""
    error_line(f"couldn't listen on {host_port(host, port)}: {exc}")
    return 1


async def serve_until_stopped(
    server: contextlib.AbstractAsyncContextManager[Server],
    name: str,
    scheme: str,
    host: str,
    port: int,
) -> int:
    """Run ``server`` until SIGINT or SIGTERM, after printing ``name listening on URL``.

    Return 0, or 1 with a one-line message when it can't listen (port in use, address
    not local, unknown host); leaving closes the server, so connections get 1001.
    """
    stop = stop_on_signals()
    async with contextlib.AsyncExitStack() as stack:
        try:
            running = await stack.enter_async_context(server)
        except (OSError, ValueError) as exc:  # ValueError: a host the IDNA codec refuses
            return cannot_listen(host, port, exc)
        except HubError as exc:  # the demo's chat through an unreachable Redis
            error_line(escape(str(exc)))
            return 1
        address = running.sockets[0].getsockname()
        print(f"{name} listening on {scheme}://{host_port(address[0], address[1])}/", flush=True)
        await stop
    return 0
