"""The asyncio API of wsio."""

from .client import ClientConnection, connect, unix_connect
from .connection import Connection, Data
from .server import Server, ServerConnection, serve, unix_serve

__all__ = [
    "ClientConnection",
    "Connection",
    "Data",
    "Server",
    "ServerConnection",
    "connect",
    "serve",
    "unix_connect",
    "unix_serve",
]
