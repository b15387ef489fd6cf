"""The sans-I/O core of wsio: every rule of RFC 6455, no sockets, no event loop, no clock.

See :mod:`wsio.protocol.connection` for the state machine and its contract.
"""

from .connection import (
    BinaryMessage,
    ClientProtocol,
    Event,
    Ping,
    Pong,
    Protocol,
    RequestReceived,
    ResponseReceived,
    ServerProtocol,
    Side,
    State,
    TextMessage,
)
from .frames import Close, CloseCode, Opcode
from .http11 import Headers, Request, Response
from .uri import WebSocketURI, parse_uri

__all__ = [
    "BinaryMessage",
    "ClientProtocol",
    "Close",
    "CloseCode",
    "Event",
    "Headers",
    "Opcode",
    "Ping",
    "Pong",
    "Protocol",
    "Request",
    "RequestReceived",
    "Response",
    "ResponseReceived",
    "ServerProtocol",
    "Side",
    "State",
    "TextMessage",
    "WebSocketURI",
    "parse_uri",
]
