"""The asyncio WebSocket client: :func:`connect` and :class:`ClientConnection`."""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import Sequence
from typing import Any

from .. import defaults
from ..exceptions import InvalidStatus, SecurityError
from ..protocol.connection import ClientProtocol
from ..protocol.handshake import redirect_location
from ..protocol.http11 import Headers, HeadersLike
from ..protocol.uri import WebSocketURI, parse_uri, resolve_redirect, same_origin
from .connection import Connection, Opener

__all__ = ["ClientConnection", "connect"]

_logger = logging.getLogger("wsio.client")


class ClientConnection(Connection):
    """The client's side of a WebSocket connection."""

    protocol: ClientProtocol

    async def _handshake(self) -> None:
        """Send the opening handshake request and wait for the answer to be checked."""
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        await asyncio.shield(self._handshake_done)
        if self.protocol.handshake_exc is not None:
            self._abort()
            raise self.protocol.handshake_exc
        if self.protocol.response is None:
            # The connection ended before the answer arrived.
            raise self.protocol.close_exc
        # Open, or already closing if the server closed right after the 101: either way
        # the handshake succeeded, and recv() tells the rest.
        self._start_keepalive()


class connect(Opener[ClientConnection]):
    """Open a WebSocket connection: ``async with connect(uri) as ws:`` or
    ``ws = await connect(uri)``.

    :param ssl: TLS context for ``wss://``; a default, verifying context if omitted.
    :param open_timeout: seconds for TCP connect, TLS and the HTTP upgrade together;
        ``None`` waits forever. Exceeding it raises :class:`TimeoutError`.
    :param origin: value of the ``Origin`` header.
    :param subprotocols: subprotocols to offer, in order of preference.
    :param additional_headers: extra request headers; they replace defaults of the same name.
    :param user_agent_header: value of ``User-Agent``; ``None`` leaves it out.
    :param max_size: largest incoming message in bytes; ``None`` disables the limit.
    :raises InvalidURI: ``uri`` isn't a ``ws://`` or ``wss://`` URI.
    :raises InvalidHandshake: the handshake failed; :class:`~wsio.InvalidStatus` carries
        the server's whole answer when it wasn't 101.
    """

    def __init__(
        self,
        uri: str,
        *,
        ssl: ssl_module.SSLContext | None = None,
        server_hostname: str | None = None,
        origin: str | None = None,
        subprotocols: Sequence[str] | None = None,
        additional_headers: HeadersLike | None = None,
        user_agent_header: str | None = defaults.USER_AGENT,
        open_timeout: float | None = defaults.OPEN_TIMEOUT,
        ping_interval: float | None = defaults.PING_INTERVAL,
        ping_timeout: float | None = defaults.PING_TIMEOUT,
        close_timeout: float | None = defaults.CLOSE_TIMEOUT,
        max_size: int | None = defaults.MAX_SIZE,
        max_queue: int = defaults.MAX_QUEUE,
        write_limit: int = defaults.WRITE_LIMIT,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
        **create_connection_kwargs: Any,
    ) -> None:
        self.uri = parse_uri(uri)
        if ssl is not None and not self.uri.secure:
            raise ValueError("ssl argument is incompatible with a ws:// URI")
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.open_timeout = open_timeout
        self._protocol_kwargs: dict[str, Any] = dict(
            origin=origin,
            subprotocols=subprotocols,
            additional_headers=additional_headers,
            user_agent_header=user_agent_header,
            max_size=max_size,
            hold_failures=True,
            logger=logger if logger is not None else _logger,
        )
        self._connection_kwargs: dict[str, Any] = dict(
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_queue=max_queue,
            write_limit=write_limit,
        )
        self._create_connection_kwargs = create_connection_kwargs
        self.connection: ClientConnection | None = None

    async def _open(self) -> ClientConnection:
        """Connect, following redirects, all within ``open_timeout``."""
        uri = self.uri
        protocol_kwargs = dict(self._protocol_kwargs)
        async with asyncio.timeout(self.open_timeout):
            for _ in range(defaults.MAX_REDIRECTS + 1):
                try:
                    self.connection = await self._connect_once(uri, protocol_kwargs)
                    return self.connection
                except InvalidStatus as exc:
                    location = redirect_location(exc.response)
                    if location is None:
                        raise
                    new_uri = resolve_redirect(uri, location)
                    if not same_origin(uri, new_uri):
                        protocol_kwargs["additional_headers"] = _without_credentials(
                            protocol_kwargs["additional_headers"]
                        )
                    uri = new_uri
        raise SecurityError(f"more than {defaults.MAX_REDIRECTS} redirects")

    async def _connect_once(
        self, uri: WebSocketURI, protocol_kwargs: dict[str, Any]
    ) -> ClientConnection:
        loop = asyncio.get_running_loop()
        kwargs = dict(self._create_connection_kwargs)
        if uri.secure:
            kwargs["ssl"] = (
                self.ssl if self.ssl is not None else ssl_module.create_default_context()
            )
            kwargs["server_hostname"] = self.server_hostname or uri.host

        def factory() -> ClientConnection:
            return ClientConnection(
                ClientProtocol(uri, **protocol_kwargs), **self._connection_kwargs
            )

        # With sock=..., asyncio wants neither host nor port.
        address = (None, None) if "sock" in kwargs else (uri.host, uri.port)
        connection: ClientConnection | None = None
        try:
            _, connection = await loop.create_connection(factory, *address, **kwargs)
            await connection._handshake()
        except BaseException:
            if connection is not None:
                connection._abort()
            raise
        return connection


def _without_credentials(headers: HeadersLike | None) -> Headers | None:
    """Extra headers minus those that carry credentials, for a redirect to another origin."""
    if headers is None:
        return None
    kept = Headers(headers)
    for name in ("Authorization", "Cookie", "Proxy-Authorization"):
        if name in kept:
            del kept[name]
    return kept
