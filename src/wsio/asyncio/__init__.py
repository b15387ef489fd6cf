"""The asyncio API of wsio."""

from .client import (
    ClientConnection,
    ClientListenerConnection,
    connect,
    connect_listener,
    unix_connect,
    unix_connect_listener,
)
from .connection import Connection, Data
from .listener import Listener, ListenerConnection
from .server import (
    Server,
    ServerConnection,
    ServerListenerConnection,
    serve,
    serve_listener,
    unix_serve,
    unix_serve_listener,
)

__all__ = [
    "ClientConnection",
    "ClientListenerConnection",
    "Connection",
    "Data",
    "Listener",
    "ListenerConnection",
    "Server",
    "ServerConnection",
    "ServerListenerConnection",
    "connect",
    "connect_listener",
    "serve",
    "serve_listener",
    "unix_connect",
    "unix_connect_listener",
    "unix_serve",
    "unix_serve_listener",
]
