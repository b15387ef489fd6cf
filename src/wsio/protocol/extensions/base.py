"""The extension mechanism of the core (RFC 6455 §9).

An extension is negotiated with the ``Sec-WebSocket-Extensions`` header, may claim reserved
bits of the frame header, and transforms the payloads of messages. Here, transforms work
on pieces of a message as they arrive, so that the core can keep its limits (size checked
while decoding, in bounded steps) and fail fast.

- :class:`Extension` is what a negotiation produces and what the connection uses.
- :class:`ClientExtensionFactory` makes a client's offer and checks the server's answer.
- :class:`ServerExtensionFactory` picks among a client's offers and builds the answer.
"""

from __future__ import annotations

import abc
from collections.abc import Hashable, Iterator, Sequence

__all__ = [
    "ClientExtensionFactory",
    "Extension",
    "ExtensionParameter",
    "ServerExtensionFactory",
]

#: A parameter of an extension offer or answer: name, and value or ``None`` when bare.
ExtensionParameter = tuple[str, str | None]


class Extension(abc.ABC):
    """A negotiated extension, as the connection sees it.

    Incoming: the core calls :meth:`begin_incoming` with the RSV bits of a message's first
    frame, :meth:`decode` with each piece of its payload, :meth:`end_incoming` at its end.
    Outgoing: :meth:`encode` transforms each fragment and tells the RSV bits to set.
    """

    #: Registered extension name (RFC 6455 §11.4).
    name: str
    #: The RSV bits (as in the first header byte: 0x40, 0x20, 0x10) this extension defines
    #: on the first frame of data messages; any other use of them fails the connection.
    rsv_bits: int = 0
    #: Whether a message whose first frame carries none of the RSV bits reaches the
    #: application untouched (``begin_incoming(0)`` is false, always), as with RFC 7692:
    #: the core may then parse such messages on its fast path.
    passes_plain_messages: bool = True

    @abc.abstractmethod
    def begin_incoming(self, rsv: int) -> bool:
        """A data message starts, its first frame carrying these RSV bits: return whether
        this extension transforms it (then :meth:`decode` gets its payload)."""

    @abc.abstractmethod
    def decode(self, data: bytes, max_length: int | None) -> Iterator[bytes]:
        """Transform a piece of the incoming payload, yielding the result in pieces so that
        the core can take each before the next is made; ``max_length`` bounds the total.

        :raises PayloadTooBig: the output would exceed ``max_length``.
        :raises ProtocolError: the payload is invalid for this extension.
        """

    @abc.abstractmethod
    def end_incoming(self, max_length: int | None) -> Iterator[bytes]:
        """The message ended: yield what remains of its transformed payload."""

    @abc.abstractmethod
    def encode(
        self, data: bytes, *, first: bool, fin: bool, transform: bool | None
    ) -> tuple[bytes, int]:
        """Transform a fragment of an outgoing message; return the payload and the RSV
        bits for its frame. ``transform`` (on the first fragment) is the caller's wish:
        ``None`` lets the extension decide."""

    def shared_encoding(self, size: int, transform: bool | None) -> Hashable | None:
        """How :meth:`encode` would transform a whole message of ``size`` bytes, as a key
        equal between connections exactly when their output is the same whatever each sent
        before: ``()`` when the message goes untransformed; ``None`` when the output depends
        on this connection's history.

        A message sent to many connections (:class:`~wsio.protocol.PreparedMessage`) is
        encoded once per key. The default, ``None``, is always safe.
        """
        return None


class ClientExtensionFactory(abc.ABC):
    """How a client offers an extension and accepts the server's answer."""

    name: str

    @abc.abstractmethod
    def offer(self) -> Sequence[ExtensionParameter]:
        """Parameters of the offer in ``Sec-WebSocket-Extensions``."""

    @abc.abstractmethod
    def accept(self, parameters: Sequence[ExtensionParameter]) -> Extension:
        """Check the server's answer to the offer and build the extension.

        :raises NegotiationError: the answer isn't one the offer allows.
        """


class ServerExtensionFactory(abc.ABC):
    """How a server answers a client's offers of an extension."""

    name: str

    @abc.abstractmethod
    def negotiate(
        self, offers: Sequence[Sequence[ExtensionParameter]]
    ) -> tuple[list[ExtensionParameter], Extension] | None:
        """Pick the first acceptable offer, in the client's order of preference; return the
        parameters of the answer and the extension, or ``None`` to decline them all."""
