"""wsio: a strict, fast WebSocket library (RFC 6455) over a sans-I/O core, asyncio first.

The API mirrors the asyncio API of the ``websockets`` package::

    async with wsio.connect("ws://localhost:9001") as ws:
        await ws.send("hello")
        print(await ws.recv())
"""

from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__
from .asyncio import (
    ClientListenerConnection,
    Listener,
    ListenerConnection,
    ServerListenerConnection,
    connect_listener,
    serve_listener,
    unix_connect_listener,
    unix_serve_listener,
)
from .asyncio.client import ClientConnection, connect, unix_connect
from .asyncio.hub import Backend, Hub, MemoryBackend
from .asyncio.router import route
from .asyncio.server import Server, ServerConnection, serve, unix_serve
from .exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HubError,
    InvalidArgument,
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderFormat,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidOrigin,
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    InvalidState,
    InvalidStatus,
    InvalidUpgrade,
    InvalidURI,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
    ProxyError,
    SecurityError,
    WebSocketError,
)
from .protocol.connection import State
from .protocol.frames import Close, CloseCode
from .protocol.http11 import Headers, MultipleValuesError, Request, Response
from .reconnect import Backoff
from .shared.auth import basic_auth
from .shared.broadcast import BroadcastResult, broadcast

__all__ = [
    "Backend",
    "Backoff",
    "BroadcastResult",
    "ClientConnection",
    "ClientListenerConnection",
    "Close",
    "CloseCode",
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Headers",
    "Hub",
    "HubError",
    "InvalidArgument",
    "InvalidHandshake",
    "InvalidHeader",
    "InvalidHeaderFormat",
    "InvalidHeaderValue",
    "InvalidMessage",
    "InvalidOrigin",
    "InvalidProxy",
    "InvalidProxyMessage",
    "InvalidProxyStatus",
    "InvalidState",
    "InvalidStatus",
    "InvalidURI",
    "InvalidUpgrade",
    "Listener",
    "ListenerConnection",
    "MemoryBackend",
    "MultipleValuesError",
    "NegotiationError",
    "PayloadTooBig",
    "ProtocolError",
    "ProxyError",
    "RedisBackend",
    "Request",
    "Response",
    "SecurityError",
    "Server",
    "ServerConnection",
    "ServerListenerConnection",
    "State",
    "WebSocketError",
    "basic_auth",
    "broadcast",
    "connect",
    "connect_listener",
    "route",
    "serve",
    "serve_listener",
    "unix_connect",
    "unix_connect_listener",
    "unix_serve",
    "unix_serve_listener",
]

if TYPE_CHECKING:
    from .asyncio.redis_hub import RedisBackend


def __getattr__(name: str) -> Any:
    # RedisBackend needs the optional redis package: imported when first asked for.
    if name == "RedisBackend":
        from .asyncio.redis_hub import RedisBackend

        return RedisBackend
    raise AttributeError(f"module 'wsio' has no attribute {name!r}")
