"""The threads API of wsio: the asyncio API's connections and options over blocking
sockets, on the same sans-I/O core, for code that doesn't run an event loop."""

from ..shared.auth import basic_auth
from ..shared.broadcast import BroadcastResult, broadcast
from .client import ClientConnection, connect, reconnecting, unix_connect
from .connection import Connection
from .router import route
from .server import Server, ServerConnection, serve, unix_serve

__all__ = [
    "BroadcastResult",
    "ClientConnection",
    "Connection",
    "Server",
    "ServerConnection",
    "basic_auth",
    "broadcast",
    "connect",
    "reconnecting",
    "route",
    "serve",
    "unix_connect",
    "unix_serve",
]
