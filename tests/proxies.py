"""Real proxy servers for the tests: HTTP ``CONNECT`` (RFC 9110 §9.3.6), optionally over
TLS, and SOCKS5 (RFC 1928) with username/password authentication (RFC 1929).

Both listen on ``127.0.0.1``, port chosen by the OS, and are async context managers::

    async with HTTPProxy(auth=("user", "pass")) as proxy:
        ...  # connect through proxy.url; proxy.requests lists the CONNECT requests seen

    async with SOCKS5Proxy() as proxy:
        ...  # proxy.requests lists the destinations asked for

Once a tunnel is open they relay bytes both ways until either side closes. They are written
from scratch on asyncio streams, independently of wsio; every read is bounded by a timeout
and leaving the ``async with`` block closes the listener and every connection.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import binascii
import contextlib
import ipaddress
import socket
import ssl as ssl_module
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

__all__ = ["ConnectRequest", "HTTPProxy", "SOCKS5Proxy", "SocksRequest"]

#: Seconds allowed for each read while a proxy negotiates a tunnel.
HANDSHAKE_TIMEOUT = 5.0
#: Seconds a tunnel may stay silent in both directions before the proxy drops it.
IDLE_TIMEOUT = 20.0
#: Seconds given to connection handlers to finish when a proxy shuts down.
SHUTDOWN_TIMEOUT = 5.0
#: Largest request head an HTTP proxy reads.
MAX_HEAD = 16384

_REASONS = {
    200: "Connection established",
    400: "Bad Request",
    403: "Forbidden",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    502: "Bad Gateway",
}


class _ProxyServer(abc.ABC):
    """What both proxies share: the listener, the connection tasks, relaying, shutdown."""

    scheme = ""

    def __init__(
        self,
        *,
        ssl: ssl_module.SSLContext | None = None,
        resolve: Mapping[str, str] | None = None,
        close_early: bool = False,
        garbage: bytes | None = None,
        linger: bool = False,
        silent: bool = False,
        timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        self.ssl = ssl
        self.linger = linger
        self.resolve = dict(resolve or {})
        self.close_early = close_early
        self.garbage = garbage
        self.silent = silent
        self.timeout = timeout
        self.host = "127.0.0.1"
        self.port = 0
        #: How many TCP connections the proxy accepted.
        self.connections = 0
        #: How many of them ended (the handler returned), whatever the reason.
        self.finished = 0
        #: Exceptions that escaped connection handlers (bugs of the proxy itself).
        self.errors: list[BaseException] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._finished_changed = asyncio.Event()

    @property
    def url(self) -> str:
        """The proxy's URI, without credentials."""
        return f"{self.scheme}://{self.host}:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        """The proxy's URI with ``user:password@`` (given already percent-encoded)."""
        return f"{self.scheme}://{user}:{password}@{self.host}:{self.port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(
            self._on_connection, self.host, 0, ssl=self.ssl, limit=MAX_HEAD
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_TIMEOUT)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=SHUTDOWN_TIMEOUT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), SHUTDOWN_TIMEOUT)
        if exc is None and self.errors:
            raise self.errors[0]

    async def wait_finished(self, count: int = 1, timeout: float = HANDSHAKE_TIMEOUT) -> None:
        """Wait until ``count`` connections have ended; :class:`TimeoutError` otherwise."""
        async with asyncio.timeout(timeout):
            while self.finished < count:
                self._finished_changed.clear()
                await self._finished_changed.wait()

    def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.get_running_loop().create_task(self._run(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Run the negotiation, then close the connection, recording what went wrong."""
        self._writers.add(writer)
        try:
            await self._negotiate(reader, writer)
        except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away, or never finished: nothing to check here
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.errors.append(exc)
        finally:
            self._writers.discard(writer)
            await _close(writer)
            self.finished += 1
            self._finished_changed.set()

    @abc.abstractmethod
    async def _negotiate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Speak the proxy's protocol with one client, then relay."""

    async def _read(self, reader: asyncio.StreamReader, n: int) -> bytes:
        """Read exactly ``n`` bytes within the handshake timeout."""
        return await asyncio.wait_for(reader.readexactly(n), self.timeout)

    async def _misbehave(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Apply ``close_early``, ``garbage`` or ``silent``; ``True`` if one applied."""
        if self.close_early:
            return True
        if self.garbage is not None:
            writer.write(self.garbage)
            await asyncio.wait_for(writer.drain(), self.timeout)
            if self.linger:
                await self._wait_for_client(reader)
            return True
        if self.silent:
            await self._wait_for_client(reader)
            return True
        return False

    async def _wait_for_client(self, reader: asyncio.StreamReader) -> None:
        """Read and drop whatever comes until the client closes (bounded)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(IDLE_TIMEOUT):
                while await reader.read(65536):
                    pass

    async def _open_upstream(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to the destination, resolving its name here, at the proxy."""
        return await asyncio.wait_for(
            asyncio.open_connection(self.resolve.get(host, host), port), self.timeout
        )

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        """Copy bytes both ways until both directions ended, then close both sides.

        Bytes that the client sent right after its request are still in ``reader``'s buffer:
        they are relayed first."""
        self._writers.add(up_writer)
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            self._writers.discard(up_writer)
            up_writer.transport.abort()


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy ``source`` to ``sink`` until end of stream, then pass the end on."""
    try:
        while data := await asyncio.wait_for(source.read(65536), IDLE_TIMEOUT):
            sink.write(data)
            await asyncio.wait_for(sink.drain(), IDLE_TIMEOUT)
    except (OSError, TimeoutError):
        sink.transport.abort()
        return
    if sink.can_write_eof():
        with contextlib.suppress(OSError):
            sink.write_eof()
    else:
        sink.close()  # TLS can't half-close: closing is the only way to pass the end on


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close gracefully (FIN, or TLS close_notify), within a second; abort otherwise."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    except (OSError, TimeoutError):
        writer.transport.abort()


# HTTP CONNECT --------------------------------------------------------------------------------


@dataclass
class ConnectRequest:
    """A request an :class:`HTTPProxy` received."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    #: The request head exactly as received, up to and including the empty line.
    raw: bytes

    def header(self, name: str) -> str | None:
        """The value of the first header ``name`` (case-insensitive), if any."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def host_port(self) -> tuple[str, int]:
        """The destination from the request target ``host:port`` (``[v6]:port`` too)."""
        host, _, port = self.target.rpartition(":")
        return host.removeprefix("[").removesuffix("]"), int(port)


class HTTPProxy(_ProxyServer):
    """An HTTP proxy that only handles ``CONNECT`` (RFC 9110 §9.3.6); ``ssl`` makes it an
    ``https://`` proxy (the client speaks TLS to the proxy itself).

    :param auth: credentials required in ``Proxy-Authorization: Basic ...``; without them
        the answer is 407 with ``Proxy-Authenticate``.
    :param refuse: ``(status, body)`` to answer every CONNECT with, instead of a tunnel.
    :param garbage: bytes to answer with instead of HTTP, before closing.
    :param linger: after ``garbage``, keep the connection open until the client closes it.
    :param close_early: close right after reading the request, without answering.
    :param silent: read the request, then never answer.
    :param reason: reason phrase of the 200 answer (``""`` sends ``HTTP/1.1 200``).
    :param after_200: bytes sent right after the 200, as if they came through the tunnel.
    :param resolve: names (or addresses) to replace before connecting to the destination.
    """

    def __init__(
        self,
        *,
        ssl: ssl_module.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
        refuse: tuple[int, bytes] | None = None,
        garbage: bytes | None = None,
        linger: bool = False,
        close_early: bool = False,
        silent: bool = False,
        reason: str = _REASONS[200],
        after_200: bytes = b"",
        resolve: Mapping[str, str] | None = None,
        timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        super().__init__(
            ssl=ssl,
            resolve=resolve,
            close_early=close_early,
            garbage=garbage,
            linger=linger,
            silent=silent,
            timeout=timeout,
        )
        self.scheme = "https" if ssl is not None else "http"
        self.auth = auth
        self.refuse = refuse
        self.reason = reason
        self.after_200 = after_200
        #: Every request received, in order, whether it was granted or not.
        self.requests: list[ConnectRequest] = []

    @property
    def targets(self) -> list[str]:
        """The request targets of the CONNECT requests received, in order."""
        return [request.target for request in self.requests]

    async def _negotiate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.timeout)
        except asyncio.LimitOverrunError:
            await self._answer(writer, 400, b"request head too long\n")
            return
        request = _parse_request(raw)
        if request is None:
            await self._answer(writer, 400, b"malformed request\n")
            return
        self.requests.append(request)
        if await self._misbehave(reader, writer):
            return
        if request.method != "CONNECT":
            await self._answer(writer, 405, b"only CONNECT\n", [("Allow", "CONNECT")])
            return
        if self.auth is not None and not _authorized(
            request.header("Proxy-Authorization"), self.auth
        ):
            await self._answer(
                writer,
                407,
                b"proxy credentials required\n",
                [("Proxy-Authenticate", 'Basic realm="test proxy"')],
            )
            return
        if self.refuse is not None:
            await self._answer(writer, *self.refuse)
            return
        try:
            host, port = request.host_port
            up_reader, up_writer = await self._open_upstream(host, port)
        except (OSError, ValueError, TimeoutError):
            await self._answer(writer, 502, b"can't reach the destination\n")
            return
        status_line = f"HTTP/1.1 200 {self.reason}" if self.reason else "HTTP/1.1 200"
        writer.write(f"{status_line}\r\n\r\n".encode() + self.after_200)
        await self._relay(reader, writer, up_reader, up_writer)

    async def _answer(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        """Send a complete HTTP answer that ends the connection."""
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
        lines += [f"{name}: {value}" for name, value in headers or []]
        lines += [
            "Content-Type: text/plain",
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await asyncio.wait_for(writer.drain(), self.timeout)


def _parse_request(raw: bytes) -> ConnectRequest | None:
    """The request line and headers of ``raw``; ``None`` when they are malformed."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    request_line, *lines = text[:-4].split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3:
        return None
    headers: list[tuple[str, str]] = []
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            return None
        headers.append((name, value.strip()))
    return ConnectRequest(parts[0], parts[1], parts[2], headers, raw)


def _authorized(value: str | None, auth: tuple[str, str]) -> bool:
    """Whether a ``Proxy-Authorization`` value carries exactly these Basic credentials."""
    if value is None:
        return False
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    return decoded == f"{auth[0]}:{auth[1]}"


# SOCKS5 --------------------------------------------------------------------------------------


@dataclass
class SocksRequest:
    """What a :class:`SOCKS5Proxy` was asked: the methods offered, credentials, and the
    ``CONNECT`` destination (RFC 1928 §4)."""

    methods: bytes = b""
    credentials: tuple[str, str] | None = None
    command: int | None = None
    #: Address type as sent: 1 IPv4, 3 domain name, 4 IPv6.
    address_type: int | None = None
    #: The destination host exactly as sent: a dotted or colon address, or the domain name.
    host: str | None = None
    port: int | None = None
    #: The raw bytes of each message received, in order.
    messages: list[bytes] = field(default_factory=list)


class SOCKS5Proxy(_ProxyServer):
    """A SOCKS5 proxy (RFC 1928) handling ``CONNECT``, to IPv4, IPv6 and domain-name
    destinations, the name being resolved here, at the proxy.

    :param auth: require RFC 1929 username/password authentication with these credentials;
        wrong credentials get status 1 and the connection is closed.
    :param reply: reply code (RFC 1928 §6) to answer every CONNECT with; 0 opens the tunnel.
    :param bound_type: address type (1, 3 or 4) of BND.ADDR in the reply.
    :param garbage: bytes to answer the greeting with, before closing.
    :param linger: after ``garbage``, keep the connection open until the client closes it.
    :param close_early: close right after the greeting, without answering.
    :param silent: read the greeting, then never answer.
    :param resolve: names (or addresses) to replace before connecting to the destination.
    """

    scheme = "socks5"

    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        reply: int = 0,
        bound_type: int = 1,
        garbage: bytes | None = None,
        linger: bool = False,
        close_early: bool = False,
        silent: bool = False,
        resolve: Mapping[str, str] | None = None,
        scheme: str = "socks5",
        timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        super().__init__(
            resolve=resolve,
            close_early=close_early,
            garbage=garbage,
            linger=linger,
            silent=silent,
            timeout=timeout,
        )
        assert bound_type in (1, 3, 4)
        self.scheme = scheme
        self.auth = auth
        self.reply = reply
        self.bound_type = bound_type
        #: One entry per connection, filled in as the negotiation goes.
        self.requests: list[SocksRequest] = []

    @property
    def destinations(self) -> list[tuple[int | None, str | None, int | None]]:
        """``(address_type, host, port)`` of each CONNECT received, in order."""
        return [(r.address_type, r.host, r.port) for r in self.requests if r.command is not None]

    async def _negotiate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = SocksRequest()
        self.requests.append(request)
        # §3: VER NMETHODS METHODS.
        version, count = await self._read(reader, 2)
        methods = await self._read(reader, count)
        request.messages.append(bytes([version, count]) + methods)
        request.methods = methods
        if version != 5:
            return
        if await self._misbehave(reader, writer):
            return
        wanted = 2 if self.auth is not None else 0
        if wanted not in methods:
            writer.write(b"\x05\xff")
            await asyncio.wait_for(writer.drain(), self.timeout)
            return
        writer.write(bytes([5, wanted]))
        if self.auth is not None:
            # RFC 1929 §2: VER ULEN UNAME PLEN PASSWD.
            sub_version, user_length = await self._read(reader, 2)
            user = await self._read(reader, user_length)
            (password_length,) = await self._read(reader, 1)
            password = await self._read(reader, password_length)
            request.messages.append(
                bytes([sub_version, user_length]) + user + bytes([password_length]) + password
            )
            request.credentials = (
                user.decode(errors="replace"),
                password.decode(errors="replace"),
            )
            if sub_version != 1 or request.credentials != self.auth:
                writer.write(b"\x01\x01")
                await asyncio.wait_for(writer.drain(), self.timeout)
                return
            writer.write(b"\x01\x00")
        # §4: VER CMD RSV ATYP DST.ADDR DST.PORT.
        head = await self._read(reader, 4)
        version, command, _, address_type = head
        if address_type == 1:
            raw = await self._read(reader, 4)
            host = str(ipaddress.IPv4Address(raw))
        elif address_type == 4:
            raw = await self._read(reader, 16)
            host = str(ipaddress.IPv6Address(raw))
        elif address_type == 3:
            length = await self._read(reader, 1)
            raw = length + await self._read(reader, length[0])
            host = raw[1:].decode("ascii", errors="replace")
        else:
            await self._reply(writer, 8)
            return
        port_bytes = await self._read(reader, 2)
        request.messages.append(head + raw + port_bytes)
        (port,) = struct.unpack("!H", port_bytes)
        request.command, request.address_type, request.host, request.port = (
            command,
            address_type,
            host,
            port,
        )
        if version != 5:
            await self._reply(writer, 1)
            return
        if command != 1:
            await self._reply(writer, 7)
            return
        if self.reply != 0:
            await self._reply(writer, self.reply)
            return
        try:
            up_reader, up_writer = await self._open_upstream(host, port)
        except (OSError, TimeoutError):
            await self._reply(writer, 5)
            return
        await self._reply(writer, 0, up_writer.get_extra_info("sockname"))
        await self._relay(reader, writer, up_reader, up_writer)

    async def _reply(
        self, writer: asyncio.StreamWriter, code: int, bound: tuple[str, int] | None = None
    ) -> None:
        """Send a reply (§6) with BND.ADDR of the configured type."""
        port = bound[1] if bound is not None else 0
        if self.bound_type == 1:
            address = b"\x01" + socket.inet_aton("127.0.0.1")
        elif self.bound_type == 4:
            address = b"\x04" + socket.inet_pton(socket.AF_INET6, "::1")
        else:
            name = b"bound.proxy.test"
            address = b"\x03" + bytes([len(name)]) + name
        writer.write(bytes([5, code, 0]) + address + struct.pack("!H", port))
        await asyncio.wait_for(writer.drain(), self.timeout)
