"""The one exception tree of wsio.

.. code-block:: text

    WebSocketError
    ├── ConnectionClosed
    │   ├── ConnectionClosedOK
    │   └── ConnectionClosedError
    ├── InvalidURI
    ├── InvalidProxy
    ├── InvalidHandshake
    │   ├── InvalidMessage
    │   ├── InvalidStatus
    │   ├── InvalidHeader
    │   │   ├── InvalidHeaderFormat
    │   │   ├── InvalidHeaderValue
    │   │   ├── InvalidUpgrade
    │   │   └── InvalidOrigin
    │   ├── NegotiationError
    │   ├── SecurityError
    │   └── ProxyError
    │       ├── InvalidProxyMessage
    │       └── InvalidProxyStatus
    ├── ProtocolError
    │   └── PayloadTooBig
    ├── InvalidState
    ├── ConcurrencyError
    ├── InvalidArgument (also a ValueError)
    └── HubError

Peer mistakes never raise out of the core: the core records them as the cause of the
closure, and the I/O layer raises :class:`ConnectionClosedError` chained to that cause.
Mistakes of the caller raise at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .protocol.frames import Close
    from .protocol.http11 import Response

__all__ = [
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
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
    "NegotiationError",
    "PayloadTooBig",
    "ProtocolError",
    "ProxyError",
    "SecurityError",
    "WebSocketError",
]


class WebSocketError(Exception):
    """Base class of every exception raised by wsio."""


class ConnectionClosed(WebSocketError):
    """The connection is closed; raised by operations that need it open.

    :attr:`rcvd` and :attr:`sent` are the close frames received and sent, ``None`` when
    there was none. :attr:`rcvd_then_sent` tells their order when both exist.
    """

    def __init__(
        self,
        rcvd: Close | None,
        sent: Close | None,
        rcvd_then_sent: bool | None = None,
    ) -> None:
        self.rcvd = rcvd
        self.sent = sent
        self.rcvd_then_sent = rcvd_then_sent
        super().__init__(rcvd, sent, rcvd_then_sent)

    @property
    def code(self) -> int:
        """Close code of the first close frame of the closing handshake, else 1006.

        When wsio fails the connection, this is the code wsio sent (1002, 1007, 1009...);
        when the peer closed first, the code the peer sent.
        """
        first = self._first()
        return 1006 if first is None else first.code

    @property
    def reason(self) -> str:
        """Reason of the first close frame of the closing handshake, else ``""``."""
        first = self._first()
        return "" if first is None else first.reason

    def _first(self) -> Close | None:
        if self.rcvd is not None and self.sent is not None:
            return self.rcvd if self.rcvd_then_sent else self.sent
        return self.rcvd if self.rcvd is not None else self.sent

    def __str__(self) -> str:
        if self.rcvd is None and self.sent is None:
            return "no close frame received or sent"
        if self.rcvd is None:
            return f"sent {self.sent}; no close frame received"
        if self.sent is None:
            return f"received {self.rcvd}; no close frame sent"
        if self.rcvd_then_sent:
            return f"received {self.rcvd}; then sent {self.sent}"
        return f"sent {self.sent}; then received {self.rcvd}"


class ConnectionClosedOK(ConnectionClosed):
    """The connection closed properly: both close frames had code 1000, 1001 or 1005."""


class ConnectionClosedError(ConnectionClosed):
    """The connection closed with an error: a failure, an abnormal closure or an error code.

    The cause, when wsio detected it (a :class:`ProtocolError`, a timeout...), is chained
    as ``__cause__``.
    """


class InvalidURI(WebSocketError):
    """A URI is not a valid ``ws://`` or ``wss://`` URI."""

    def __init__(self, uri: str, msg: str) -> None:
        self.uri = uri
        self.msg = msg
        super().__init__(uri, msg)

    def __str__(self) -> str:
        # Quoted when it holds control characters or lone surrogates, which would
        # garble a terminal or break a log encoder.
        uri = self.uri if self.uri.isprintable() else repr(self.uri)
        return f"{uri} isn't a valid URI: {self.msg}"


class InvalidProxy(WebSocketError):
    """A proxy URI is not a valid ``http``, ``https``, ``socks5`` or ``socks5h`` URI."""

    def __init__(self, proxy: str, msg: str) -> None:
        self.proxy = proxy
        self.msg = msg
        super().__init__(proxy, msg)

    def __str__(self) -> str:
        # Quoted when it holds control characters or lone surrogates, as for InvalidURI.
        proxy = self.proxy if self.proxy.isprintable() else repr(self.proxy)
        return f"{proxy} isn't a valid proxy: {self.msg}"


class InvalidHandshake(WebSocketError):
    """The opening handshake failed.

    :attr:`http_status` is the status a server answers with when the failure is in the
    client's request. :attr:`redirects` lists the redirects a client followed before
    this failure, as ``(uri, response)`` pairs.
    """

    http_status: int = 400
    redirects: Sequence[tuple[str, Response]] = ()


class InvalidMessage(InvalidHandshake):
    """An HTTP request or response in the opening handshake is malformed."""

    def __init__(self, msg: str, http_status: int = 400) -> None:
        self.http_status = http_status
        super().__init__(msg)


class InvalidStatus(InvalidHandshake):
    """The server answered the upgrade with a status other than 101.

    :attr:`response` holds the whole answer: ``status_code``, ``reason_phrase`` verbatim,
    ``headers`` and ``body`` (kept up to :data:`wsio.defaults.MAX_BODY_SIZE` bytes).
    """

    def __init__(self, response: Response) -> None:
        self.response = response
        super().__init__(response)

    def __str__(self) -> str:
        return f"server rejected WebSocket connection: HTTP {self.response.status_code:d}"


class InvalidHeader(InvalidHandshake):
    """An HTTP header is missing, repeated or has an invalid value."""

    def __init__(self, name: str, value: str | None = None) -> None:
        self.name = name
        self.value = value
        super().__init__(name, value)

    def __str__(self) -> str:
        if self.value is None:
            return f"missing {self.name} header"
        if self.value == "":
            return f"empty {self.name} header"
        return f"invalid {self.name} header: {self.value}"


class InvalidHeaderFormat(InvalidHeader):
    """An HTTP header cannot be parsed."""

    def __init__(self, name: str, error: str, header: str, pos: int) -> None:
        # Quote the value around the error only: a header line may be 8 KiB long.
        start, end = max(0, pos - _CONTEXT), pos + _CONTEXT
        excerpt = (
            ("..." if start else "") + header[start:end] + ("..." if end < len(header) else "")
        )
        super().__init__(name, f"{error} at {pos} in {excerpt}")


#: Characters of a header value quoted on each side of a parse error.
_CONTEXT = 40


class InvalidHeaderValue(InvalidHeader):
    """An HTTP header has a value that wsio does not accept."""


class InvalidUpgrade(InvalidHeader):
    """The ``Upgrade`` or ``Connection`` header does not ask for WebSocket."""

    http_status = 426


class InvalidOrigin(InvalidHeader):
    """The ``Origin`` header is missing or not allowed."""

    def __init__(self, origin: str | None) -> None:
        super().__init__("Origin", origin)

    http_status = 403


class NegotiationError(InvalidHandshake):
    """A subprotocol or extension negotiation failed."""


class SecurityError(InvalidHandshake):
    """The opening handshake exceeded a security limit (line length, headers, body)."""

    def __init__(self, msg: str, http_status: int = 431) -> None:
        self.http_status = http_status
        super().__init__(msg)


class ProxyError(InvalidHandshake):
    """The proxy didn't open a tunnel to the server."""


class InvalidProxyMessage(ProxyError):
    """The proxy's answer is malformed."""


class InvalidProxyStatus(ProxyError):
    """The proxy refused to open the tunnel.

    For an HTTP proxy, :attr:`response` is its whole answer; for SOCKS5, :attr:`reply` is
    the reply code (RFC 1928 §6).
    """

    def __init__(self, msg: str, response: Response | None = None, reply: int | None = None):
        self.response = response
        self.reply = reply
        super().__init__(msg)


class ProtocolError(WebSocketError):
    """The peer violated RFC 6455.

    :attr:`close_code` is the close code that wsio sends when failing the connection.
    """

    close_code: int = 1002

    def __init__(self, msg: str, close_code: int | None = None) -> None:
        if close_code is not None:
            self.close_code = close_code
        super().__init__(msg)


class PayloadTooBig(ProtocolError):
    """A message exceeds the size limit (close code 1009)."""

    close_code = 1009


class InvalidState(WebSocketError, AssertionError):
    """An operation is not allowed in the connection's current state."""


class ConcurrencyError(WebSocketError, RuntimeError):
    """Two coroutines attempted an operation that allows only one at a time."""


class InvalidArgument(WebSocketError, ValueError):
    """The caller passed a value that RFC 6455 does not allow (close code, payload size...)."""


class HubError(WebSocketError):
    """The backend of a :class:`~wsio.Hub` failed: its Redis server is unreachable, for
    example. The backend's own exception is chained as ``__cause__``."""
