"""The threads API of wsio: the asyncio API's connections and options over blocking
sockets, on the same sans-I/O core, for code that doesn't run an event loop."""

from ..shared.auth import basic_auth
from .client import ClientConnection, connect
from .connection import Connection
from .server import Server, ServerConnection, serve

__all__ = [
    "ClientConnection",
    "Connection",
    "Server",
    "ServerConnection",
    "basic_auth",
    "connect",
    "serve",
]
