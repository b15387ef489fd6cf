"""The asyncio API of wsio."""

from .client import ClientConnection, connect
from .connection import Connection, Data
from .server import Server, ServerConnection, serve

__all__ = [
    "ClientConnection",
    "Connection",
    "Data",
    "Server",
    "ServerConnection",
    "connect",
    "serve",
]
