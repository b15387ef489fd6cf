"""The sans-I/O WebSocket connection: bytes in, events and bytes out (RFC 6455).

Theory of operation
-------------------

A :class:`Protocol` is the state machine of one connection. The I/O layer feeds it what
the network delivers (:meth:`~Protocol.receive_data`, :meth:`~Protocol.receive_eof`), takes
the events it parsed (:meth:`~Protocol.events_received`) and the bytes it wants written
(:meth:`~Protocol.data_to_send`, where an empty ``bytes`` means "half-close now"), and asks
:meth:`~Protocol.close_expected` to know when the peer should end the TCP connection, so
that it can arm the close timeout. The application's commands (``send_text``,
``send_ping``, ``send_close``...) queue frames. The core never touches a socket, a clock or
a thread.

Input is parsed by a generator that reads as straight-line code: it ``yield``\\ s when it
needs more bytes. Every rule of RFC 6455 is checked there, as early as the bytes allow:
reserved bits, opcodes and masks as soon as the 2-byte header is in; the size limit from the
declared length, before any payload is buffered; UTF-8 of text as each piece of payload
arrives, so that an invalid fragment fails at once. A violation never raises out of the
core: it becomes :attr:`Protocol.failure`, the matching close frame is queued, and parsing
stops. Mistakes of the caller raise at once.

States follow §4 and §7: CONNECTING until the opening handshake completes, OPEN, CLOSING
once a close frame was sent, CLOSED once the TCP connection ended.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import logging
import struct
from collections.abc import Callable, Generator, Hashable, Iterable, Iterator, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Generic, TypeVar, cast, overload

from .. import defaults
from .._accelerator import speedups
from ..exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidArgument,
    InvalidHandshake,
    InvalidMessage,
    InvalidState,
    PayloadTooBig,
    ProtocolError,
    SecurityError,
)
from . import entropy
from .arguments import check_max_size
from .extensions import ClientExtensionFactory, Extension, ServerExtensionFactory
from .frames import (
    MAX_CLOSE_REASON,
    MAX_CONTROL_PAYLOAD,
    Close,
    CloseCode,
    Opcode,
    deliver_messages,
    parse_close,
    parse_messages,
    serialize_frame,
    serialize_header,
)
from .handshake import (
    HANDSHAKE_FIELDS,
    Origin,
    accept_response,
    build_accept,
    build_rejection,
    build_request,
    check_origin,
    check_request,
    check_subprotocols,
    generate_key,
    negotiate_extensions,
    offered_subprotocols,
    select_subprotocol,
    serialized_accept,
)
from .http11 import (
    Headers,
    HeadersLike,
    Request,
    Response,
    build_response,
    parse_request,
    parse_response,
)
from .masking import MASKED_PIECE, MaskedPieces, PayloadBuffer, apply_mask, join_masked
from .streams import StreamReader
from .uri import WebSocketURI
from .utf8 import IncrementalValidator

__all__ = [
    "BinaryMessage",
    "ClientProtocol",
    "Event",
    "Ping",
    "Pong",
    "PreparedMessage",
    "Protocol",
    "ServerProtocol",
    "Side",
    "State",
    "TextMessage",
]

_OK_CLOSE_CODES = frozenset(
    {CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY, CloseCode.NO_STATUS_RCVD}
)
_KNOWN_OPCODES = frozenset(int(opcode) for opcode in Opcode)
# What an empty close payload parses to (§7.1.5), as Close.parse gives it.
_EMPTY_CLOSE = Close.parse(b"")
# Module constants: read for every frame and message sent or parsed, cheaper than Opcode.X.
_CONTINUATION, _TEXT, _BINARY, _CLOSE = (
    Opcode.CONTINUATION,
    Opcode.TEXT,
    Opcode.BINARY,
    Opcode.CLOSE,
)

# From this size on, a server's payload is written after its header, not copied behind it:
# copying 128 KiB costs more than the extra write; copying 64 KiB costs less (measured). A
# client's is masked a piece at a time past MASKED_PIECE (MaskedPieces).
_SEPARATE_PAYLOAD = 128 * 1024

# Bytes of pongs queued and not yet taken by the I/O layer beyond which the pong for a newer
# ping replaces the last one queued (§5.5.3): the pings of one read, whatever their number,
# then cost at most this much, while a few pings in a row still get a pong each.
_PONGS_UNTAKEN_LIMIT = 4096

# Longest frame header: 2 bytes, 8 of extended length, 4 of masking key (§5.2).
_MAX_HEADER = 14

# Frame header, first two bytes (RFC 6455 §5.2).
_FIN = 0x80
_RSV = 0x70
_OPCODE = 0x0F
_MASK = 0x80
_LENGTH = 0x7F


class Side(enum.Enum):
    """Which end of the connection a protocol plays."""

    SERVER = "server"
    CLIENT = "client"


class State(enum.IntEnum):
    """State of the connection (RFC 6455 §4, §7)."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


# Module constants: read on the path of every message and handshake, where an enum's class
# attribute costs as much as a property call (about 900 instructions: EnumType defines
# __getattr__, which routes every class attribute through a call of __getattribute__).
_CONNECTING, _OPEN, _CLOSING, _CLOSED = State.CONNECTING, State.OPEN, State.CLOSING, State.CLOSED
_SERVER, _CLIENT = Side.SERVER, Side.CLIENT


@dataclasses.dataclass(frozen=True, slots=True)
class TextMessage:
    """A complete text message, validated and decoded."""

    data: str


@dataclasses.dataclass(frozen=True, slots=True)
class BinaryMessage:
    """A complete binary message."""

    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Ping:
    """A ping was received; the core already queued the pong (§5.5.2)."""

    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Pong:
    """A pong was received.

    ``acknowledged`` lists the payloads of the pings it answers: the one with the same
    payload and every ping sent before it, since a pong may answer only the latest ping
    (§5.5.3). It is empty for an unsolicited pong, which is otherwise ignored.
    """

    data: bytes
    acknowledged: tuple[bytes, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class RequestReceived:
    """The server received the client's opening handshake request."""

    request: Request


@dataclasses.dataclass(frozen=True, slots=True)
class ResponseReceived:
    """The client received the server's answer to its opening handshake."""

    response: Response


Event = TextMessage | BinaryMessage | Ping | Pong | RequestReceived | ResponseReceived


class PreparedMessage:
    """A whole data message to send to many connections with :meth:`Protocol.send_prepared`.

    Its frame is built once per distinct wire encoding and reused: a server's frames are
    unmasked (§5.1), so every connection that transforms the message the same way, whatever
    it sent before, writes the same bytes. With permessage-deflate, that takes a server
    side without context takeover (RFC 7692 §7.1.1.1) for a compressed message; a client's
    frames, masked anew each time (§5.3), are built per connection.

    :param data: the payload; UTF-8 for a text message.
    :param text: a text message (§5.6) rather than a binary one.
    :param compress: as for :meth:`Protocol.send_text`.
    """

    __slots__ = ("_frames", "compress", "data", "encodings", "opcode")

    def __init__(self, data: bytes, *, text: bool, compress: bool | None = None) -> None:
        self.data = data
        self.opcode = _TEXT if text else _BINARY
        self.compress = compress
        #: Frames built for this message so far: once per distinct encoding, plus once per
        #: connection that can't share one.
        self.encodings = 0
        # The writes of the frame, by encoding key (Extension.shared_encoding).
        self._frames: dict[tuple[Hashable, ...], tuple[bytes, ...]] = {}


_Parser = Generator[None, None, None]


class Protocol:
    """State machine of a WebSocket connection, shared by both sides.

    :param side: which end this is; it decides masking and who closes TCP.
    :param state: initial state; ``OPEN`` skips the opening handshake (for tests, or when
        another layer performed it).
    :param max_size: largest message accepted, in bytes, 1 or more; ``None`` disables
        the limit.
    :param random_bytes: source of masking keys and handshake keys, by default the
        system's cryptographic source drawn in bulk (:mod:`wsio.protocol.entropy`); tests
        pass a deterministic one. RFC 6455 §10.3 requires unpredictable masks otherwise.
    :param hold_failures: when the peer breaks a rule, stop reading at once but hold the
        close frame until :meth:`release_failure`, so that the application can first handle
        (and answer) the valid messages that arrived before the violation. The I/O layer
        releases it when the application has taken those messages, or after a timeout.
    :raises TypeError: ``max_size`` isn't an ``int`` or ``None``.
    :raises InvalidArgument: ``max_size`` is below 1.
    """

    # Slots: a server holds thousands of these, and an instance dict costs about 1.5 KiB
    # each. "__dict__" stays so that users and subclasses may still add attributes; the
    # dict is only allocated when one does.
    __slots__ = (
        "__dict__",
        "__weakref__",
        "_between_messages",
        "_deferred",
        "_deferred_size",
        "_eof_sent",
        "_events",
        "_extension_rsv",
        "_held_failure",
        "_masked_pieces",
        "_message_room",
        "_message_size",
        "_parser",
        "_pending_pings",
        "_pong_due",
        "_pong_index",
        "_pong_queued",
        "_pong_untaken",
        "_pongs_paused",
        "_reader",
        "_receiving",
        "_sending_fragments",
        "_writes",
        "close_rcvd",
        "close_rcvd_then_sent",
        "close_sent",
        "extensions",
        "failure",
        "handshake_exc",
        "hold_failures",
        "logger",
        "max_size",
        "parsing_paused",
        "payload_buffer",
        "random_bytes",
        "side",
        "state",
    )

    def __init__(
        self,
        side: Side,
        *,
        state: State = State.OPEN,
        max_size: int | None = defaults.MAX_SIZE,
        random_bytes: Callable[[int], bytes] = entropy.random_bytes,
        hold_failures: bool = False,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        if type(max_size) is not int or max_size < 1:  # the call only to raise
            check_max_size(max_size)
        self.side = side
        self.hold_failures = hold_failures
        self.state = state
        self.max_size = max_size
        self.random_bytes = random_bytes
        self.logger = logger if logger is not None else logging.getLogger("wsio")

        #: Close frames received and sent, and their order when both exist.
        self.close_rcvd: Close | None = None
        self.close_sent: Close | None = None
        self.close_rcvd_then_sent: bool | None = None
        #: Why the connection failed, when the peer broke a rule or the stream ended early.
        self.failure: Exception | None = None
        #: Why the opening handshake failed, if it did.
        self.handshake_exc: InvalidHandshake | None = None

        self._reader = StreamReader()
        self._events: list[Event] = []
        self._writes: list[bytes | memoryview | MaskedPieces] = []
        # The first large payload in _writes that is masked a piece at a time, if any.
        self._masked_pieces: MaskedPieces | None = None
        self._eof_sent = False
        # Payloads of pings sent and not yet answered, in the order they were sent; None
        # rather than an empty dict while none is (most of a connection's life).
        self._pending_pings: dict[bytes, None] | None = None
        # While the I/O layer can't write, the payload of the latest ping left unanswered;
        # its pong is queued when writing resumes (§5.5.3).
        self._pongs_paused = False
        self._pong_due: bytes | None = None
        # The last pong queued, its index in _writes and the bytes of pongs queued with it
        # that the I/O layer hasn't taken: past _PONGS_UNTAKEN_LIMIT, a newer ping's pong
        # replaces it (§5.5.3).
        self._pong_queued: bytes | None = None
        self._pong_index = 0
        self._pong_untaken = 0
        # Whether a fragmented message is being sent, so the next frame is a continuation.
        self._sending_fragments = False
        # Prepared messages that came while a fragmented message was being sent, to send
        # after its last frame (None rather than an empty list: most connections never
        # have one).
        self._deferred: list[PreparedMessage] | None = None
        self._deferred_size = 0
        # Size of the message being received, for the size limit.
        self._message_size = 0
        # How many more messages the parser may complete before it pauses (None: no
        # bound), and whether it is paused at a frame boundary for that reason.
        self._message_room: int | None = None
        #: Whether the parser waits for :meth:`allow_messages` to decode the next message
        #: (read-only; an attribute rather than a property: read after every read).
        self.parsing_paused = False
        self._receiving = True
        self._held_failure: Close | None = None
        #: Extensions in use, negotiated during the opening handshake (§9).
        self.extensions: list[Extension] = []
        # RSV bits that the extensions in use define.
        self._extension_rsv = 0
        # Whether the parser waits for the first byte of a message with nothing buffered
        # and no extension would touch a plain message: receive_data may then parse whole
        # messages itself.
        self._between_messages = False
        #: The payload of a large binary frame being received, while the parser waits for
        #: it with nothing buffered; ``None`` otherwise. :meth:`receive_data` writes what
        #: comes into it, or an I/O layer reads the stream straight into its
        #: ``prepare()`` view and calls :meth:`receive_payload`.
        self.payload_buffer: PayloadBuffer | None = None

        # The parser of input: none while an open connection waits between messages with
        # nothing buffered (see _parse), which is how most connections spend their life.
        self._parser: _Parser | None = None
        if state is _OPEN:
            self._between_messages = True
        else:
            self._parser = self._parse_handshake()
            next(self._parser)

    # Input ------------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes received from the network; then read events and data to send.

        ``data`` is not kept: a buffer that the caller reuses afterwards is fine.
        """
        reader = self._reader
        if reader.eof:
            raise InvalidState("data received after end of stream")
        payload_buffer = self.payload_buffer
        if payload_buffer is not None and not reader.buffer:
            # The payload of a large frame goes straight where it belongs, unmasked.
            taken = payload_buffer.write(data)
            if payload_buffer.remaining:
                return
            data = memoryview(data)[taken:]
        elif self._between_messages and not reader.buffer:
            # Fast path: whole unfragmented messages are parsed straight from ``data``,
            # without going through the buffer and the generator. It stops at anything
            # else -- a control frame, a fragment, a partial frame, a violation -- and the
            # general parser takes over from there with every rule checked.
            parsed = len(self._events)
            consumed = parse_messages(
                data,
                self._events,
                self.side is _SERVER,
                -1 if self.max_size is None else self.max_size,
                TextMessage,
                BinaryMessage,
            )
            if self._message_room is not None:
                # Plain messages cost no more than their bytes on the wire: the fast path
                # may overshoot the room by one read, and the parser pauses after it.
                self._message_room -= len(self._events) - parsed
            if consumed == len(data):
                return
            if consumed:
                data = memoryview(data)[consumed:]
            # The peer's close frame, whole and valid, ends the connection's input here:
            # no buffer, no parser. Anything else about it goes to the general parser.
            close = parse_close(data, self.side is _SERVER)
            if close is not None:
                code, reason, payload = close
                self._close_received(Close(code, reason) if payload else _EMPTY_CLOSE, payload)
                self._parser = self._discard()
                next(self._parser)
                return
        reader.feed_data(data)
        self._advance()

    def receive_payload(self, nbytes: int) -> None:
        """Feed ``nbytes`` bytes received straight into the view that
        ``payload_buffer.prepare()`` returned: :meth:`receive_data` for a large frame's
        payload, without copying it. Then read events and data to send."""
        if self._reader.eof:
            raise InvalidState("data received after end of stream")
        payload_buffer = self.payload_buffer
        if payload_buffer is None:
            if not self._receiving:
                # The input is dropped already: the connection failed while these bytes
                # were on their way (a read that completes later, as on Windows).
                return
            raise InvalidState("no payload is being received")
        payload_buffer.commit(nbytes)
        if not payload_buffer.remaining:
            self._advance()

    def receive_messages(
        self,
        buffer: bytearray | memoryview,
        size: int,
        deliver: Callable[[str | bytes], object],
    ) -> bool:
        """Feed the ``size`` bytes at the start of ``buffer`` (as a
        :class:`~asyncio.BufferedProtocol` receives them) as :meth:`receive_data` does,
        handing the whole messages they start with to ``deliver`` rather than to
        :meth:`events_received`: a callback API's receive path, with no event per message
        and no slice of the buffer.

        Between messages, with nothing buffered and no extension that would touch a plain
        message, each whole unfragmented message at the start goes to ``deliver(message)``
        -- ``str`` for text, validated UTF-8; ``bytes`` for binary -- with every rule
        checked, as it is parsed, while ``deliver`` returns true. The rest -- what follows
        a message that ``deliver`` returned false for, a control frame, a fragment, a
        partial frame, a violation, anything in the middle of a frame -- goes to
        :meth:`receive_data`.

        Return ``True`` when ``deliver`` took all of it: nothing else was parsed, so there
        is no event and the core queued nothing (what ``deliver`` sends is its caller's to
        write). ``False``: read :meth:`events_received` and :meth:`data_to_send` as after
        :meth:`receive_data`. ``deliver`` must not raise: what it raises propagates, and
        the bytes after its message are lost.
        """
        if self._between_messages and not self._reader.buffer:
            max_size = self.max_size
            consumed = deliver_messages(
                buffer, size, deliver, self.side is _SERVER, -1 if max_size is None else max_size
            )
            if consumed == size:
                return True
        else:
            consumed = 0
        self.receive_data(memoryview(buffer)[consumed:size])
        return False

    #: The reference of :meth:`receive_messages`, which its C twin calls for all but the
    #: common case (``--pure receive_messages`` puts it back in its place).
    _python_receive_messages = receive_messages
    if not TYPE_CHECKING and (_accelerator := speedups()) is not None:
        # Every read of a listener goes through here: between messages, the messages are
        # handed over from C, with no frame of Python.
        receive_messages = _accelerator.receive_messages_twin(receive_messages, _SERVER)
        del _accelerator

    def receive_eof(self) -> None:
        """Feed the end of the stream: the peer closed its side of TCP."""
        if self._reader.eof:
            return
        self._reader.feed_eof()
        self._advance()
        # The peer will send nothing more: finish the TCP closing handshake.
        self.state = _CLOSED
        self._send_eof()

    def events_received(self) -> list[Event]:
        """Events parsed since the last call, in order."""
        events, self._events = self._events, []
        return events

    @property
    def has_events(self) -> bool:
        """Whether :meth:`events_received` has anything to return."""
        return bool(self._events)

    def allow_messages(self, count: int | None) -> None:
        """Let the parser complete ``count`` more data messages; ``None`` lifts the bound.

        The I/O layer gives the room left in its queue of received messages. Decoding is
        where a peer's bytes turn into memory -- a few hundred bytes of permessage-deflate
        may inflate to ``max_size`` -- so the parser pauses before the first message that
        an extension would decode past the room, whatever the messages look like on the
        wire. Plain messages cost no more than their bytes, which the I/O layer bounds by
        pausing reading. A paused parser keeps what arrives in its buffer, control frames
        included, as the transport's buffer would.
        """
        self._message_room = count
        if self.parsing_paused:
            self._advance()

    @property
    def has_data_to_send(self) -> bool:
        """Whether :meth:`data_to_send` has anything to return."""
        return bool(self._writes)

    @property
    def size_to_send(self) -> int:
        """How many bytes :meth:`data_to_send` would return over its next calls: what is
        queued and not yet taken by the I/O layer. Counted on demand, in one pass over
        the queue."""
        writes = self._writes
        return sum(map(len, writes)) if writes else 0

    def data_to_send(self) -> list[bytes | memoryview]:
        """Bytes to write since the last call; an empty ``bytes`` means "half-close TCP".

        A client's large frame may come as a ``memoryview`` of a buffer that the next large
        frame reuses once no view of it is left (:func:`~wsio.protocol.masking.join_masked`):
        keeping the view, or a slice of it, keeps the bytes.

        The large payload of a frame a client sends is masked a piece at a time (§5.3): the
        list ends with its next piece, and the rest waits (:attr:`has_data_to_send` stays
        true) for the next call. The I/O layer makes it once these bytes are written, or
        are in a buffer below its write limit; so a client holds one masked piece of the
        payload at a time, not a masked copy of all of it.
        """
        writes, self._writes = self._writes, []
        masked = self._masked_pieces
        if masked is None:
            # Nothing but bytes: MaskedPieces only go in with _masked_pieces set.
            return writes  # type: ignore[return-value]
        index = writes.index(masked)
        taken = cast("list[bytes | memoryview]", writes[:index])
        taken.append(masked.next_piece())
        if masked:
            self._writes = writes[index:]
        else:
            self._writes = rest = writes[index + 1 :]
            self._masked_pieces = next((w for w in rest if type(w) is MaskedPieces), None)
        return taken

    def drop_data_to_send(self) -> None:
        """Forget what is queued for writing: the I/O layer has nowhere to write it."""
        self._writes = []
        self._masked_pieces = None

    def close_expected(self) -> bool:
        """Whether the peer is now expected to end the TCP connection.

        When this turns true, the I/O layer arms the close timeout and aborts the connection
        if it fires. A server closes TCP first once the closing handshake is done (§7.1.1);
        a client waits for that.
        """
        return self.state is _CLOSING or self.handshake_exc is not None

    # Derived state ----------------------------------------------------------------------

    @property
    def close_code(self) -> int | None:
        """Code of the first close frame of the closing handshake; 1006 when the connection
        closed without one; ``None`` while it is open."""
        if self.state is not _CLOSED and self.close_sent is None and self.close_rcvd is None:
            return None
        return ConnectionClosed(self.close_rcvd, self.close_sent, self.close_rcvd_then_sent).code

    @property
    def close_reason(self) -> str | None:
        """Reason of the first close frame of the closing handshake; ``None`` while open."""
        if self.state is not _CLOSED and self.close_sent is None and self.close_rcvd is None:
            return None
        return ConnectionClosed(self.close_rcvd, self.close_sent, self.close_rcvd_then_sent).reason

    @property
    def closed_ok(self) -> bool:
        """Whether :attr:`close_exc` is a :class:`ConnectionClosedOK`: both close frames
        carry 1000, 1001 or 1005. Known without building the exception, for an iteration
        that ends quietly on a normal closure."""
        return (
            self.close_rcvd is not None
            and self.close_sent is not None
            and self.close_rcvd.code in _OK_CLOSE_CODES
            and self.close_sent.code in _OK_CLOSE_CODES
        )

    @property
    def close_exc(self) -> ConnectionClosed:
        """The exception that operations raise once the connection is closed or closing.

        :class:`ConnectionClosedOK` when both close frames carry 1000, 1001 or 1005, else
        :class:`ConnectionClosedError` with :attr:`failure` chained as its cause.
        """
        exc_class = ConnectionClosedOK if self.closed_ok else ConnectionClosedError
        exc = exc_class(self.close_rcvd, self.close_sent, self.close_rcvd_then_sent)
        exc.__cause__ = self.failure
        return exc

    # Commands ---------------------------------------------------------------------------

    def send_text(self, data: bytes, fin: bool = True, compress: bool | None = None) -> None:
        """Send a text frame starting a message; ``data`` is UTF-8 (§5.6).

        ``compress`` asks negotiated extensions to transform the message (``True``) or
        not (``False``); ``None`` lets them decide, e.g. by size (RFC 7692 §6).
        """
        self._send_data(_TEXT, data, fin, compress)

    def send_binary(self, data: bytes, fin: bool = True, compress: bool | None = None) -> None:
        """Send a binary frame starting a message; see :meth:`send_text` for ``compress``."""
        self._send_data(_BINARY, data, fin, compress)

    def send_message(
        self, data: bytes, text: bool, compress: bool | None = None
    ) -> bytes | memoryview | None:
        """Send a whole message, text (``data`` is UTF-8, §5.6) or binary, in one frame; see
        :meth:`send_text` for ``compress``.

        When nothing else waits in :meth:`data_to_send`, return the frame, for the I/O
        layer to write at once rather than queue and take back: the common case of an
        open connection answering a message. Otherwise queue it, after what waits, and
        return ``None``.
        """
        if self._writes or self._sending_fragments or self.state is not _OPEN:
            # The general path: after what is queued, or to raise.
            self._send_data(_TEXT if text else _BINARY, data, True, compress)
            return None
        rsv = 0
        if self.extensions:
            data, rsv = self._encoded(data, True, True, compress)
        if self.side is _CLIENT:
            if len(data) > MASKED_PIECE:
                self._send_frame(_TEXT if text else _BINARY, data, True, rsv)
                return None
            return self._masked_frame(_TEXT if text else _BINARY, data, True, rsv)
        if len(data) >= _SEPARATE_PAYLOAD:
            self._send_frame(_TEXT if text else _BINARY, data, True, rsv)
            return None
        return serialize_frame(_TEXT if text else _BINARY, data, True, rsv, None)

    #: The reference of :meth:`send_message`, which its C twin calls for all but the
    #: common case (``--pure send_message`` puts it back in its place).
    _python_send_message = send_message
    if not TYPE_CHECKING and (_accelerator := speedups()) is not None:
        # Every message sent goes through here: the common case is built in C, a client's
        # masked with a key from random_bytes, with no frame of Python.
        send_message = _accelerator.send_message_twin(
            send_message, _OPEN, _CLIENT, _SEPARATE_PAYLOAD, MASKED_PIECE
        )
        del _accelerator

    def send_continuation(self, data: bytes, fin: bool) -> None:
        """Send the next fragment of the message started by ``send_text``/``send_binary``
        with ``fin=False`` (§5.4)."""
        self._send_data(_CONTINUATION, data, fin)
        if fin and self._deferred is not None:
            deferred, self._deferred = self._deferred, None
            for message in deferred:
                self._send_prepared(message)

    def send_prepared(self, message: PreparedMessage) -> None:
        """Send a message prepared for many connections, reusing the frame built for
        another connection when this one would write the same bytes.

        While a fragmented message is being sent, it goes after that message's last frame:
        §5.4 forbids interleaving the fragments of two messages.
        """
        self._check_open()
        if self._sending_fragments:
            if self._deferred is None:
                self._deferred = []
                self._deferred_size = 0
            self._deferred.append(message)
            # A frame's header too: empty messages aren't free.
            self._deferred_size += len(message.data) + _MAX_HEADER
        else:
            self._send_prepared(message)

    @property
    def deferred_size(self) -> int:
        """Bytes of the prepared messages waiting for a fragmented message to end, each
        counted with the largest frame header."""
        return 0 if self._deferred is None else self._deferred_size

    def _send_prepared(self, message: PreparedMessage) -> None:
        key: tuple[Hashable, ...] | None = None
        if self.side is _SERVER:
            key = ()
            for extension in self.extensions:
                encoding = extension.shared_encoding(len(message.data), message.compress)
                if encoding is None:
                    key = None
                    break
                if encoding != ():
                    # () leaves the message as it is: the same as no extension.
                    key += (encoding,)
        if key is not None:
            writes = message._frames.get(key)
            if writes is not None:
                self._writes.extend(writes)
                return
        start = len(self._writes)
        self._send_data(message.opcode, message.data, True, message.compress)
        message.encodings += 1
        if key is not None:
            # A server's frames: bytes only, no MaskedPieces.
            message._frames[key] = tuple(cast("list[bytes]", self._writes[start:]))

    def _send_data(
        self, opcode: Opcode, data: bytes, fin: bool, compress: bool | None = None
    ) -> None:
        if self.state is not _OPEN:  # micro-optimisation: the call only to raise
            self._check_open()
        if (opcode is _CONTINUATION) != self._sending_fragments:
            if self._sending_fragments:
                raise InvalidState("a fragmented message is being sent: send a continuation")
            raise InvalidState("no fragmented message is being sent")
        self._sending_fragments = not fin
        rsv = 0
        if self.extensions:
            data, rsv = self._encoded(data, opcode is not _CONTINUATION, fin, compress)
        self._send_frame(opcode, data, fin, rsv)

    def _encoded(
        self, data: bytes, first: bool, fin: bool, compress: bool | None
    ) -> tuple[bytes, int]:
        """A data frame's payload through the extensions in use, and the RSV bits they set."""
        rsv = 0
        for extension in self.extensions:
            data, bits = extension.encode(data, first=first, fin=fin, transform=compress)
            rsv |= bits
        return data, rsv

    def send_ping(self, data: bytes) -> None:
        """Send a ping (§5.5.2); the :class:`Pong` event that answers it lists ``data``.

        :raises InvalidArgument: payload over 125 bytes.
        :raises ConcurrencyError: a ping with the same payload awaits its pong.
        """
        self._check_open()
        self._check_control_payload(data, "ping")
        pending = self._pending_pings
        if pending is None:
            pending = self._pending_pings = {}
        elif data in pending:
            raise ConcurrencyError("a ping with the same payload is waiting for its pong")
        pending[data] = None
        self._send_frame(Opcode.PING, data)

    def send_pong(self, data: bytes) -> None:
        """Send an unsolicited pong, e.g. as a unidirectional heartbeat (§5.5.3)."""
        self._check_open()
        self._check_control_payload(data, "pong")
        self._send_frame(Opcode.PONG, data)

    def send_close(self, code: int | None = None, reason: str = "") -> None:
        """Start the closing handshake (§7.1.2). ``code=None`` sends an empty payload.

        :raises InvalidArgument: a code that may not be sent (1005, 1006, 1015, 999...)
            or a reason over 123 bytes of UTF-8.
        """
        self._check_open()
        if code is None:
            if reason:
                raise InvalidArgument("a close reason needs a close code")
            close = Close(CloseCode.NO_STATUS_RCVD)
            payload = b""
        else:
            if code == CloseCode.NO_STATUS_RCVD:
                raise InvalidArgument("close code 1005 may not be sent: use code=None")
            close = Close(code, reason)
            payload = close.serialize()
        self._send_frame(_CLOSE, payload)
        self.close_sent = close
        self.state = _CLOSING
        if self.parsing_paused:
            # The peer's close frame may already wait behind the messages held back.
            self._advance()

    def pause_pongs(self) -> None:
        """The I/O layer can't write for now (its buffer is full): hold the pongs that
        received pings call for, keeping only the latest, until :meth:`resume_pongs`.

        §5.5.3: "If an endpoint receives a Ping frame and has not yet sent Pong frame(s)
        in response to previous Ping frame(s), the endpoint MAY elect to send a Pong frame
        for only the most recently processed Ping frame." A peer that floods pings and
        reads nothing thus costs one pending payload, not a pong per ping.

        Nothing else the peer provokes needs holding back: the close echo (§5.5.1) and the
        close frame of a failure (§7.1.7) are one frame each, of at most 131 bytes, sent
        once per connection.
        """
        self._pongs_paused = True

    def resume_pongs(self) -> None:
        """The I/O layer can write again: queue the pong held by :meth:`pause_pongs`, if
        the connection still answers pings: not after the peer's close frame (§5.5.2) nor
        after a failure (§7.1.7)."""
        self._pongs_paused = False
        payload, self._pong_due = self._pong_due, None
        if payload is not None and self._receiving:
            self._queue_pong(payload)

    def ping_timeout_expired(self) -> None:
        """The peer didn't answer a keepalive ping in time: it is gone or stuck, so fail
        the connection with 1011 (§7.1.7). The I/O layer owns the timer."""
        self.failure = TimeoutError("keepalive ping timeout")
        self.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")

    def close_timeout_expired(self) -> None:
        """The peer didn't finish the closing handshake in time: stop waiting for it
        (§7.1.1). The I/O layer then aborts the TCP connection."""
        if self.failure is None and self.close_rcvd is None:
            self.failure = TimeoutError("timed out waiting for the closing handshake")
        self.receive_eof()

    @property
    def stream_ended(self) -> bool:
        """Whether the peer ended its side of TCP (:meth:`receive_eof` was called)."""
        return self._reader.eof

    @property
    def peer_done(self) -> bool:
        """Whether the peer may send nothing more: it ended its side of TCP, or its close
        frame arrived (§5.5.1: nothing may follow it).

        When the core then asks to half-close (an empty ``bytes`` in :meth:`data_to_send`),
        the I/O layer closes TCP altogether: there is nothing left to read. A server that
        completed the closing handshake thus closes at once (§7.1.1) rather than waiting a
        round trip for the client's end of the stream. After a failure, the peer may still
        be sending: the half-close stands, so that our close frame isn't lost to a reset.
        """
        return self._reader.eof or self.close_rcvd is not None

    @property
    def receiving(self) -> bool:
        """Whether more messages may still be parsed: false once the peer's close frame
        arrived, the connection failed or the stream ended."""
        return self._receiving

    @property
    def failure_held(self) -> bool:
        """Whether a failure was detected and its close frame awaits :meth:`release_failure`."""
        return self._held_failure is not None and self.state is _OPEN

    def release_failure(self) -> None:
        """Send the close frame of a held failure (see ``hold_failures``); no-op otherwise."""
        held, self._held_failure = self._held_failure, None
        if held is not None:
            self.fail(held.code, held.reason)

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection (§7.1.7): send a close frame if still open, then stop
        processing input. A server then closes TCP at once; a client waits for the server
        to do it. The I/O layer calls this when a timer it owns fires (keepalive: 1011)."""
        self._held_failure = None
        if self.state is _OPEN:
            # The reason is informative: cut it to fit in a control frame (§5.5).
            encoded = reason.encode()[:MAX_CLOSE_REASON]
            close = Close(code, encoded.decode(errors="ignore"))
            self._send_frame(_CLOSE, close.serialize())
            self.close_sent = close
            self.state = _CLOSING
        if self.side is _SERVER or self.state is _CONNECTING:
            self._send_eof()
        # §7.1.7: "An endpoint MUST NOT continue to attempt to process data (including a
        # responding Close frame) from the remote endpoint after being instructed to _Fail
        # the WebSocket Connection_."
        if self._parser is not None:
            self._parser.close()
        self._parser = self._discard()
        next(self._parser)

    def _use_extensions(self, extensions: list[Extension]) -> None:
        self.extensions = extensions
        self._extension_rsv = 0
        for extension in extensions:
            self._extension_rsv |= extension.rsv_bits

    def _check_open(self) -> None:
        if self.state is not _OPEN:
            raise InvalidState(f"connection is {self.state.name.lower()}")

    @staticmethod
    def _check_control_payload(data: bytes, kind: str) -> None:
        if len(data) > MAX_CONTROL_PAYLOAD:
            raise InvalidArgument(
                f"{kind} payload is {len(data)} bytes long; at most {MAX_CONTROL_PAYLOAD} fit"
            )

    def _send_frame(self, opcode: Opcode, data: bytes, fin: bool = True, rsv: int = 0) -> None:
        if self.side is _CLIENT:
            if len(data) <= MASKED_PIECE:
                self._writes.append(self._masked_frame(opcode, data, fin, rsv))
                return
            # Masked a piece at a time as data_to_send() hands it over.
            mask = self.random_bytes(4)  # §5.3: a fresh key, as for every frame
            masked = MaskedPieces(serialize_header(opcode, len(data), fin, rsv, mask), data, mask)
            self._writes.append(masked)
            if self._masked_pieces is None:
                self._masked_pieces = masked
        elif len(data) >= _SEPARATE_PAYLOAD:
            # Written as they are, the header then the payload: no copy of a large payload.
            self._writes.append(serialize_header(opcode, len(data), fin, rsv))
            self._writes.append(data)
        else:
            self._writes.append(serialize_frame(opcode, data, fin, rsv, None))

    def _masked_frame(
        self, opcode: Opcode, data: bytes, fin: bool, rsv: int
    ) -> bytes | memoryview:
        """A frame a client sends, of :data:`MASKED_PIECE` bytes at most."""
        # §5.3: a fresh, unpredictable masking key for every frame a client sends.
        mask = self.random_bytes(4)
        if len(data) < _SEPARATE_PAYLOAD:
            return serialize_frame(opcode, data, fin, rsv, mask)
        # Built in a buffer reused from one large frame to the next (join_masked).
        return join_masked(serialize_header(opcode, len(data), fin, rsv, mask), data, mask)

    def _send_eof(self) -> None:
        if not self._eof_sent:
            self._eof_sent = True
            self._writes.append(b"")

    # Parsing ----------------------------------------------------------------------------

    def _advance(self) -> None:
        """Resume the parser with the bytes now buffered, or start one between messages;
        turn a violation into a failure."""
        parser = self._parser
        if parser is None:
            parser = self._parser = self._parse()
        try:
            parser.send(None)
        except StopIteration:
            # The parser ended between messages, with nothing buffered: the next bytes
            # start another.
            self._parser = None
        except ProtocolError as exc:
            self.failure = exc
            if self.hold_failures and self.state is _OPEN:
                # Stop reading now; send the close frame once the application has handled
                # the messages that came before the violation (see release_failure).
                self._held_failure = Close(exc.close_code, str(exc))
                self._parser = self._discard()
                next(self._parser)
            else:
                self.fail(exc.close_code, str(exc))
        except EOFError as exc:
            # The stream ended in the middle of a frame or before the closing handshake.
            if self.failure is None:
                self.failure = exc
            self._parser = self._discard()
            next(self._parser)

    def _discard(self) -> _Parser:
        """Drop every byte from now on, until the end of the stream."""
        self._receiving = False
        self._between_messages = False
        self.parsing_paused = False
        self.payload_buffer = None
        while not self._reader.eof:
            self._reader.discard()
            yield
        self._reader.discard()
        while True:
            yield

    def _parse_handshake(self) -> _Parser:
        # Each side overrides this; the base class only runs already open connections.
        raise InvalidState("the opening handshake needs a ClientProtocol or a ServerProtocol")
        yield  # pragma: no cover - makes this a generator

    def _plain_messages_pass(self) -> bool:
        """Whether the extensions in use leave messages without RSV bits alone, as
        permessage-deflate does: the fast path of receive_data, which takes only those,
        may then parse them."""
        return not self.extensions or all(
            extension.passes_plain_messages for extension in self.extensions
        )

    def _parse(self) -> _Parser:
        """Parse frames until a close frame arrives or the stream ends (§5, §6.2), or
        until it waits between messages with nothing buffered: it then returns, and
        :meth:`_advance` starts another when bytes come."""
        reader = self._reader
        mask_expected = self.side is _SERVER
        # The message being received: its opcode (None between messages), its bytes, and
        # the UTF-8 validator of a text message.
        message_opcode: int | None = None
        message = bytearray()
        validator: IncrementalValidator | None = None
        # The extensions that transform the message being received, in decoding order.
        decoders: list[Extension] = []
        # The payload on the wire of the message being received, for its size limit.
        wire_size = 0
        fast_path = self._plain_messages_pass()
        while True:
            # The parser may wait a long time for the rest of a message: what the last
            # frame left in these would stay in memory meanwhile, up to a whole message's
            # bytes after the application dropped it.
            payload = chunk = piece = tail = b""
            if message_opcode is None and not reader.buffer and not reader.eof:
                # Between messages with nothing buffered, nothing here differs from what a
                # new parser starts with: end, rather than keep suspended frames (about
                # 1 KiB) for each idle connection. _advance starts a parser when bytes come.
                self._between_messages = fast_path
                return
            self._between_messages = fast_path and message_opcode is None
            head = yield from reader.read_exact(2)
            self._between_messages = False
            first, second = head[0], head[1]
            fin = bool(first & _FIN)
            opcode = first & _OPCODE
            length = second & _LENGTH
            rsv = first & _RSV
            # §5.2: "If a nonzero value is received and none of the negotiated extensions
            # defines the meaning of such a nonzero value, the receiving endpoint MUST
            # _Fail the WebSocket Connection_." Extensions here define bits on the first
            # frame of data messages only (RFC 7692 §6: not on continuations or control).
            if rsv:
                if rsv & ~self._extension_rsv:
                    raise ProtocolError("reserved bits must be 0")
                if opcode == _CONTINUATION:
                    raise ProtocolError("reserved bits set on a continuation frame")
                if opcode >= _CLOSE:
                    raise ProtocolError("reserved bits set on a control frame")
            if opcode not in _KNOWN_OPCODES:
                raise ProtocolError(f"invalid opcode {opcode:#x}")
            # §5.1: a server MUST close on an unmasked frame, a client on a masked one.
            if bool(second & _MASK) is not mask_expected:
                raise ProtocolError(
                    "incorrect masking: "
                    + (
                        "client frames must be masked"
                        if mask_expected
                        else "server frames must not be masked"
                    )
                )
            if opcode >= _CLOSE:
                # §5.5: control frames are 125 bytes at most and are never fragmented.
                if not fin:
                    raise ProtocolError("fragmented control frame")
                if length > MAX_CONTROL_PAYLOAD:
                    raise ProtocolError("control frame too long")
            elif opcode == _CONTINUATION:
                if message_opcode is None:
                    raise ProtocolError("continuation frame outside a fragmented message")
            elif message_opcode is not None:
                raise ProtocolError("expected a continuation frame")
            else:
                decoders = [ext for ext in reversed(self.extensions) if ext.begin_incoming(rsv)]
                # A message that extensions decode may cost max_size however few bytes it
                # takes on the wire: none is decoded past the room the I/O layer gave.
                # Once our close frame is sent, the closing handshake needs the peer's,
                # wherever it stands behind messages: see _message_received.
                while (
                    decoders
                    and self._message_room is not None
                    and self._message_room <= 0
                    and self.state is not _CLOSING
                ):
                    self.parsing_paused = True
                    yield
                self.parsing_paused = False
            if length == 126:
                (length,) = struct.unpack("!H", (yield from reader.read_exact(2)))
            elif length == 127:
                (length,) = struct.unpack("!Q", (yield from reader.read_exact(8)))
                # §5.2: "the most significant bit MUST be 0".
                if length >> 63:
                    raise ProtocolError("64-bit payload length with the top bit set")
            # The limit applies to what the application gets: for a message that an
            # extension transforms (decompresses), it is checked while decoding, and its
            # payload on the wire may exceed it by what DEFLATE adds to incompressible
            # data only: 5 bytes per stored block, of 127 bytes at least from zlib
            # (memLevel 1), and a few flushes.
            if opcode < _CLOSE and self.max_size is not None:
                if opcode != _CONTINUATION:
                    wire_size = 0
                wire_size += length
                if not decoders and self._message_size + length > self.max_size:
                    raise PayloadTooBig(
                        f"message of {self._message_size + length} bytes or more "
                        f"exceeds the limit of {self.max_size} bytes"
                    )
                if decoders and wire_size > self.max_size + 5 * (self.max_size // 127) + 69:
                    raise PayloadTooBig(
                        f"compressed message of {wire_size} bytes or more "
                        f"exceeds the limit of {self.max_size} bytes"
                    )
            if opcode >= _CLOSE:
                # The masking key and the short payload (§5.5) in one read.
                if mask_expected:
                    masked = yield from reader.read_exact(4 + length)
                    payload = apply_mask(masked[4:], masked[:4])
                else:
                    payload = yield from reader.read_exact(length)
                if opcode == _CLOSE:
                    self._receive_close(payload)
                    # §1.4: after a close frame, the peer sends nothing more; ignore it.
                    yield from self._discard()
                self._receive_control(opcode, payload)
                continue

            mask = (yield from reader.read_exact(4)) if mask_expected else None
            # Fast path: a whole unfragmented message already buffered is decoded once.
            if fin and message_opcode is None and not decoders and len(reader.buffer) >= length:
                payload = yield from reader.read_exact(length)
                if mask is not None:
                    payload = apply_mask(payload, mask)
                if opcode == _TEXT:
                    try:
                        self._message_received(TextMessage(payload.decode()))
                    except UnicodeDecodeError as exc:
                        raise ProtocolError("invalid UTF-8 in text message", 1007) from exc
                else:
                    self._message_received(BinaryMessage(payload))
                continue

            if fin and message_opcode is None and not decoders and opcode == _BINARY:
                # A large binary frame: its payload goes into the bytes object delivered,
                # unmasked on the way, one copy in all (receive_data fills it directly).
                payload_buffer = self.payload_buffer = PayloadBuffer(length, mask)
                while payload_buffer.remaining:
                    if reader.buffer:
                        with memoryview(reader.buffer) as view:
                            taken = payload_buffer.write(view)
                        del reader.buffer[:taken]
                    elif reader.eof:
                        raise EOFError(
                            f"stream ends, expected {payload_buffer.remaining} more bytes"
                        )
                    else:
                        yield
                self.payload_buffer = None
                self._message_received(BinaryMessage(payload_buffer.finish()))
                continue

            if message_opcode is None:
                message_opcode = opcode
                validator = IncrementalValidator() if opcode == _TEXT else None
            # Stream the payload as it arrives, so that UTF-8 fails at the first bad piece.
            offset = 0
            while offset < length:
                chunk = yield from reader.read_some(length - offset)
                if mask is not None:
                    chunk = apply_mask(chunk, mask, offset)
                offset += len(chunk)
                for piece in self._decoded(decoders, chunk):
                    self._append(message, piece, validator)
            if not fin:
                continue
            for index, decoder in enumerate(decoders):
                # The end of the message flushes each decoder, the next ones decoding it.
                for tail in decoder.end_incoming(
                    self._room() if index == len(decoders) - 1 else None
                ):
                    for piece in self._decoded(decoders[index + 1 :], tail):
                        self._append(message, piece, validator)
            decoders = []
            if validator is not None:
                try:
                    validator.feed(b"", final=True)
                except UnicodeDecodeError as exc:
                    raise ProtocolError("invalid UTF-8 in text message", 1007) from exc
                self._message_received(TextMessage(message.decode()))
            else:
                self._message_received(BinaryMessage(bytes(message)))
            message_opcode = None
            validator = None
            message = bytearray()
            self._message_size = 0

    def _message_received(self, message: TextMessage | BinaryMessage) -> None:
        if self._message_room is not None:
            if self._message_room <= 0 and self.state is _CLOSING:
                # We sent a close frame and the application's queue is full: what the
                # peer sends before its own close frame is read to reach that frame, and
                # dropped rather than held beyond the bound (§7.1.2 lets us stop there).
                return
            self._message_room -= 1
        self._events.append(message)

    def _decoded(self, decoders: list[Extension], data: bytes) -> Iterator[bytes]:
        """``data`` through the extensions' decoders, piece by piece; only the last one's
        output is bounded by the room left under the size limit."""
        if not decoders:
            yield data
            return
        bound = self._room() if len(decoders) == 1 else None
        for piece in decoders[0].decode(data, bound):
            yield from self._decoded(decoders[1:], piece)

    def _room(self) -> int | None:
        """Bytes that the message being received may still grow by, under the limit."""
        return None if self.max_size is None else self.max_size - self._message_size

    def _append(
        self, message: bytearray, data: bytes, validator: IncrementalValidator | None
    ) -> None:
        """Add a piece of payload to the message being received; validate text at once."""
        if validator is not None:
            try:
                validator.feed(data)
            except UnicodeDecodeError as exc:
                raise ProtocolError("invalid UTF-8 in text message", 1007) from exc
        message += data
        self._message_size += len(data)

    def _receive_control(self, opcode: int, payload: bytes) -> None:
        if opcode == Opcode.PING:
            # §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in
            # response, unless it already received a Close frame" -- or failed.
            if self.state is _OPEN or (self.state is _CLOSING and self.close_rcvd is None):
                if self._pongs_paused:
                    self._pong_due = payload
                else:
                    self._queue_pong(payload)
            self._events.append(Ping(payload))
        else:
            acknowledged: tuple[bytes, ...] = ()
            pending_pings = self._pending_pings
            if pending_pings is not None and payload in pending_pings:
                pending = list(pending_pings)
                acknowledged = tuple(pending[: pending.index(payload) + 1])
                if len(acknowledged) == len(pending):
                    self._pending_pings = None
                else:
                    for data in acknowledged:
                        del pending_pings[data]
            self._events.append(Pong(payload, acknowledged))

    def _queue_pong(self, payload: bytes) -> None:
        """Queue the pong for a ping (§5.5.2); once the pongs queued and not yet taken
        reach :data:`_PONGS_UNTAKEN_LIMIT` bytes, in place of the last one (§5.5.3)."""
        pong = serialize_frame(
            Opcode.PONG,
            payload,
            True,
            0,
            self.random_bytes(4) if self.side is _CLIENT else None,  # §5.3
        )
        writes = self._writes
        index = self._pong_index
        # Once the I/O layer took _writes, the index points into a new list, where the
        # object found there is not the pong queued last.
        if index < len(writes) and writes[index] is self._pong_queued:
            if self._pong_untaken >= _PONGS_UNTAKEN_LIMIT:
                writes[index] = pong
                self._pong_queued = pong
                return
        else:
            self._pong_untaken = 0
        self._pong_index = len(writes)
        writes.append(pong)
        self._pong_queued = pong
        self._pong_untaken += len(pong)

    def _receive_close(self, payload: bytes) -> None:
        """Handle the peer's close frame (§5.5.1, §7.1.2, §7.1.3)."""
        self._close_received(Close.parse(payload), payload)

    def _close_received(self, close: Close, payload: bytes) -> None:
        """Handle the peer's close frame, ``close`` parsed from ``payload``."""
        self.close_rcvd = close
        if self.state is _OPEN:
            # §5.5.1: "the endpoint typically echos the status code it received"; the
            # reason is echoed too, as browsers and most libraries do.
            self.close_rcvd_then_sent = True
            # The payload that Close.parse accepted is what close.serialize() would give:
            # sent back as received.
            self._send_frame(_CLOSE, payload)
            self.close_sent = close
            self.state = _CLOSING
        elif self.close_rcvd_then_sent is None:
            self.close_rcvd_then_sent = False
        # §7.1.1: "the server SHOULD close [the TCP connection] first".
        if self.side is _SERVER:
            self._send_eof()


_V = TypeVar("_V")


@dataclasses.dataclass(slots=True)
class _ServerOptions:
    """The options of a :class:`ServerProtocol` that the connections of a server share:
    held once for all of them rather than in each (8 bytes an option per connection)."""

    origins: Sequence[Origin] | None
    available_extensions: Sequence[ServerExtensionFactory]
    available_subprotocols: Sequence[str] | None
    server_header: str | None
    max_line_length: int
    max_headers: int


# The options made so far, by the identities of the objects they hold, which they keep
# alive: a server makes each connection with the same objects. Bounded, so that servers
# made without end (tests) only stop it from growing.
_SERVER_OPTIONS: dict[tuple[int, ...], _ServerOptions] = {}
_MAX_SERVER_OPTIONS = 16
# The options made or found last: most processes run one server.
_last_server_options: list[_ServerOptions] = []


def _server_options(
    origins: Sequence[Origin] | None,
    available_extensions: Sequence[ServerExtensionFactory],
    available_subprotocols: Sequence[str] | None,
    server_header: str | None,
    max_line_length: int,
    max_headers: int,
) -> _ServerOptions:
    """Options made of these objects, shared with the connections made with the same."""
    if _last_server_options:
        last = _last_server_options[0]
        if (
            last.origins is origins
            and last.available_extensions is available_extensions
            and last.available_subprotocols is available_subprotocols
            and last.server_header is server_header
            and last.max_line_length is max_line_length
            and last.max_headers is max_headers
        ):
            return last
    values = (
        origins,
        available_extensions,
        available_subprotocols,
        server_header,
        max_line_length,
        max_headers,
    )
    key = tuple(map(id, values))
    options = _SERVER_OPTIONS.get(key)
    if options is None:
        options = _ServerOptions(*values)
        if len(_SERVER_OPTIONS) < _MAX_SERVER_OPTIONS:
            _SERVER_OPTIONS[key] = options
    _last_server_options[:] = [options]
    return options


class _SharedOption(Generic[_V]):
    """An attribute of a :class:`ServerProtocol` held in its :class:`_ServerOptions`:
    setting it gives that connection options of its own."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, protocol: None, owner: type) -> _SharedOption[_V]: ...

    @overload
    def __get__(self, protocol: ServerProtocol, owner: type) -> _V: ...

    def __get__(self, protocol: ServerProtocol | None, owner: type) -> _V | _SharedOption[_V]:
        if protocol is None:
            return self
        value: _V = getattr(protocol._options, self._name)
        return value

    def __set__(self, protocol: ServerProtocol, value: _V) -> None:
        options = copy.copy(protocol._options)
        setattr(options, self._name, value)
        protocol._options = options


class ServerProtocol(Protocol):
    """The server side: parses the opening handshake request, then frames.

    After a :class:`RequestReceived` event, the I/O layer calls :meth:`accept` (or builds
    its own answer with :meth:`reject`) and then :meth:`send_response`.

    :raises InvalidArgument: a subprotocol that isn't a token, which no client could
        offer (RFC 6455 §4.1), or ``max_size`` below 1.
    :raises TypeError: ``subprotocols`` or ``max_size`` of the wrong type.
    """

    __slots__ = (
        "_accept_head",
        "_negotiated",
        "_options",
        "request",
        "request_started",
        "response",
        "select_subprotocol",
        "subprotocol",
    )

    # The options given, each an attribute that may be read and set.
    origins: _SharedOption[Sequence[Origin] | None] = _SharedOption()
    available_extensions: _SharedOption[Sequence[ServerExtensionFactory]] = _SharedOption()
    available_subprotocols: _SharedOption[Sequence[str] | None] = _SharedOption()
    server_header: _SharedOption[str | None] = _SharedOption()
    max_line_length: _SharedOption[int] = _SharedOption()
    max_headers: _SharedOption[int] = _SharedOption()

    def __init__(
        self,
        *,
        origins: Sequence[Origin] | None = None,
        subprotocols: Sequence[str] | None = None,
        extensions: Sequence[ServerExtensionFactory] = (),
        server_header: str | None = defaults.SERVER_HEADER,
        max_size: int | None = defaults.MAX_SIZE,
        max_line_length: int = defaults.MAX_LINE_LENGTH,
        max_headers: int = defaults.MAX_HEADERS,
        random_bytes: Callable[[int], bytes] = entropy.random_bytes,
        hold_failures: bool = False,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        if subprotocols is not None:
            check_subprotocols(subprotocols)
        self._options = _server_options(
            origins, extensions, subprotocols, server_header, max_line_length, max_headers
        )
        # The extensions that accept() negotiated, until the answer is sent.
        self._negotiated: list[Extension] | None = None
        # The head of the 101 that accept() built, if it made one, until the answer is sent.
        self._accept_head: bytes | None = None
        #: Replaces the choice of subprotocol: called with those offered, returns one or None.
        self.select_subprotocol: Callable[[Sequence[str]], str | None] | None = None
        self.request: Request | None = None
        #: Whether any byte of the opening handshake request has arrived: a server
        #: shutting down answers connections without one at once, and lets the others
        #: finish their request.
        self.request_started = False
        self.response: Response | None = None
        self.subprotocol: str | None = None
        super().__init__(
            _SERVER,
            state=_CONNECTING,
            max_size=max_size,
            random_bytes=random_bytes,
            hold_failures=hold_failures,
            logger=logger,
        )

    def _parse_handshake(self) -> _Parser:
        while not self._reader.buffer and not self._reader.eof:
            yield
        self.request_started = bool(self._reader.buffer)
        try:
            request = yield from parse_request(
                self._reader,
                max_line_length=self._options.max_line_length,
                max_headers=self._options.max_headers,
            )
        except EOFError as exc:
            self.handshake_exc = InvalidMessage("connection closed during opening handshake")
            self.handshake_exc.__cause__ = exc
            self.state = _CLOSED
            yield from self._discard()
        except (InvalidMessage, SecurityError) as exc:
            self.handshake_exc = exc
            self._queue_response(build_rejection(exc, server_header=self._options.server_header))
            yield from self._discard()
        self.request = request
        self._events.append(RequestReceived(request))
        while self.state is _CONNECTING:
            yield
        if self.state is not _OPEN:
            yield from self._discard()
        yield from self._parse()

    def accept(self, request: Request) -> Response:
        """Check ``request`` and build the answer: a 101, or the rejection that the failure
        calls for (400, 403, 405, 426, 505), recorded in :attr:`handshake_exc`."""
        options = self._options
        # Every field the checks look up, in one pass over the headers.
        fields = request.headers.by_name()
        try:
            key = check_request(request, fields)
            if options.origins is not None:
                check_origin(request, options.origins, fields)
            if self.select_subprotocol is None:
                subprotocol = select_subprotocol(request, options.available_subprotocols, fields)
            else:
                offered = offered_subprotocols(request, fields)
                subprotocol = self.select_subprotocol(offered)
                if subprotocol is not None and subprotocol not in offered:
                    raise InvalidArgument(
                        f"select_subprotocol returned {subprotocol!r}, which wasn't offered"
                    )
            extensions_header, self._negotiated = negotiate_extensions(
                request, options.available_extensions, fields
            )
        except InvalidHandshake as exc:
            self.handshake_exc = exc
            return build_rejection(exc, server_header=options.server_header)
        response = build_accept(
            key,
            subprotocol=subprotocol,
            extensions=extensions_header,
            server_header=options.server_header,
        )
        self._accept_head = response.headers._head
        return response

    def complete_accept(
        self,
        response: Response,
        *,
        subprotocol: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Add what the application chose after :meth:`accept` to the 101 it built: the
        subprotocol and more header fields. For servers whose application accepts once
        the request was checked, such as ASGI's ``websocket.accept``.

        The subprotocol must be one the client offered (RFC 6455 §4.2.2). The fields that
        the handshake itself sets (``Upgrade``, ``Connection``, ``Sec-WebSocket-*``) can't
        be added: the answer would contradict the negotiation.

        :raises InvalidArgument: a subprotocol not offered, or a field that the handshake
            sets, or one that isn't a valid header field.
        """
        if subprotocol is not None:
            assert self.request is not None
            if subprotocol not in offered_subprotocols(self.request):
                raise InvalidArgument(f"subprotocol {subprotocol!r} wasn't offered")
            response.headers["Sec-WebSocket-Protocol"] = subprotocol
        for name, value in headers:
            if name.lower() in HANDSHAKE_FIELDS:
                raise InvalidArgument(f"the {name} header is set by the handshake")
            response.headers[name] = value

    def reject(self, status: HTTPStatus | int, text: str) -> Response:
        """A plain-text HTTP answer that refuses the upgrade and closes the connection."""
        headers = Headers()
        server_header = self._options.server_header
        if server_header is not None:
            headers["Server"] = server_header
        return build_response(status, text, headers)

    def send_response(self, response: Response) -> None:
        """Send the answer; a 101 opens the connection, anything else closes it."""
        if self.state is not _CONNECTING:
            raise InvalidState("the opening handshake is over")
        self._queue_response(response)
        reader = self._reader
        if response.status_code == 101 and not reader.buffer and not reader.eof:
            # Nothing came behind the request: no parser until bytes come (see _parse).
            self._parser = None
            self._between_messages = self._plain_messages_pass()
            return
        # Frames that arrived right behind the request can be parsed now.
        self._advance()
        if reader.eof and not self._eof_sent:
            # The client had already ended its side: nothing more can come.
            self.state = _CLOSED
            self._send_eof()

    def receive_eof(self) -> None:
        """Feed the end of the stream. A client may end its side once its request is
        sent (RFC 9112 §9.6): the answer is still due, and the connection closes once
        :meth:`send_response` has queued it."""
        if self.state is _CONNECTING and self.request is not None:
            self._reader.feed_eof()
            self._advance()
            return
        super().receive_eof()

    def _queue_response(self, response: Response) -> None:
        self.response = response
        head, self._accept_head = self._accept_head, None
        if head is not None and serialized_accept(response, head) is not None:
            # The 101 that accept() built, as it built it: its head is what it sends, and
            # it has no subprotocol and no extensions.
            self._writes.append(head)
            self._negotiated = None
            if self.request is not None:
                self.request.headers._shed()
            response.headers._shed()
            self.state = _OPEN
            return
        data = response.serialize()
        self._writes.append(data)
        if response.status_code == 101:
            self.subprotocol = response.headers.get("Sec-WebSocket-Protocol")
            # The extensions that accept() negotiated, unless a hook took them out.
            if self._negotiated and "Sec-WebSocket-Extensions" in response.headers:
                self._use_extensions(self._negotiated)
            self._negotiated = None
            # The connection keeps its request and its answer: their heads, parsed again
            # if read.
            if self.request is not None:
                self.request.headers._shed()
            if not response.body:
                response.headers._shed_into(data)
            self.state = _OPEN
        else:
            if self.handshake_exc is None:
                self.handshake_exc = InvalidHandshake(
                    f"handshake rejected with HTTP {response.status_code}"
                )
            # Nothing the client sends afterwards is read: no request smuggling.
            self._send_eof()
            self.state = _CLOSED


class ClientProtocol(Protocol):
    """The client side: sends the opening handshake request, checks the answer, then
    exchanges frames.

    The I/O layer calls :meth:`connect` and :meth:`send_request`, then feeds the answer;
    a :class:`ResponseReceived` event tells that it is complete, and
    :attr:`handshake_exc` whether it failed.
    """

    __slots__ = (
        "additional_headers",
        "available_extensions",
        "available_subprotocols",
        "key",
        "max_body_size",
        "max_headers",
        "max_line_length",
        "origin",
        "request",
        "response",
        "subprotocol",
        "uri",
        "user_agent_header",
    )

    def __init__(
        self,
        uri: WebSocketURI,
        *,
        origin: str | None = None,
        subprotocols: Sequence[str] | None = None,
        extensions: Sequence[ClientExtensionFactory] = (),
        additional_headers: HeadersLike | None = None,
        user_agent_header: str | None = defaults.USER_AGENT,
        max_size: int | None = defaults.MAX_SIZE,
        max_line_length: int = defaults.MAX_LINE_LENGTH,
        max_headers: int = defaults.MAX_HEADERS,
        max_body_size: int = defaults.MAX_BODY_SIZE,
        random_bytes: Callable[[int], bytes] = entropy.random_bytes,
        hold_failures: bool = False,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.uri = uri
        self.available_extensions = extensions
        self.origin = origin
        self.available_subprotocols = subprotocols
        self.additional_headers = additional_headers
        self.user_agent_header = user_agent_header
        self.max_line_length = max_line_length
        self.max_headers = max_headers
        self.max_body_size = max_body_size
        self.request: Request | None = None
        self.response: Response | None = None
        self.subprotocol: str | None = None
        self.key = generate_key(random_bytes)
        super().__init__(
            _CLIENT,
            state=_CONNECTING,
            max_size=max_size,
            random_bytes=random_bytes,
            hold_failures=hold_failures,
            logger=logger,
        )

    def connect(self) -> Request:
        """The opening handshake request, to edit if needed before :meth:`send_request`."""
        return build_request(
            self.uri,
            self.key,
            origin=self.origin,
            subprotocols=self.available_subprotocols,
            additional_headers=self.additional_headers,
            user_agent=self.user_agent_header,
            extensions=self.available_extensions,
        )

    def send_request(self, request: Request) -> None:
        """Send the opening handshake request.

        An answer can only be read once its request is sent: bytes received before are
        kept, and parsed here. If the peer already ended the connection, the request is
        not sent, and the answer or its absence decides the outcome.
        """
        if self.request is not None:
            raise InvalidState("the opening handshake request was already sent")
        self.request = request
        if not self._eof_sent:
            data = request.serialize()
            self._writes.append(data)
            # The connection keeps its request: as the head sent, parsed again if read.
            request.headers._shed_into(data)
        self._advance()

    def _parse_handshake(self) -> _Parser:
        # A server may answer early (a 403 or a 503 on accept); what it sent is read as
        # the answer to the request, once that request is sent.
        while self.request is None:
            yield
        try:
            response = yield from parse_response(
                self._reader,
                max_line_length=self.max_line_length,
                max_headers=self.max_headers,
                max_body_size=self.max_body_size,
            )
        except EOFError as exc:
            self.handshake_exc = InvalidMessage("connection closed during opening handshake")
            self.handshake_exc.__cause__ = exc
            self.state = _CLOSED
            self._send_eof()
            yield from self._discard()
        except InvalidHandshake as exc:
            self.handshake_exc = exc
            self.state = _CLOSED
            self._send_eof()
            yield from self._discard()
        self.response = response
        try:
            self._accept_response(response)
        except InvalidHandshake as exc:
            self.handshake_exc = exc
            self.state = _CLOSED
            self._send_eof()
            self._events.append(ResponseReceived(response))
            yield from self._discard()
        self.state = _OPEN
        self._events.append(ResponseReceived(response))
        yield from self._parse()

    def _accept_response(self, response: Response) -> None:
        """Check the answer to the opening handshake (§4.1) and take up the subprotocol and
        the extensions it selected.

        A method of its own, not inline in the parser: the parser's frame may live on while
        frames arrive behind the answer, and would keep the checks' scratch (the fields by
        name) with it.

        :raises InvalidHandshake: the answer doesn't complete the handshake.
        """
        # Every field the checks look up, in one pass over the headers.
        fields = response.headers.by_name()
        self.subprotocol, extensions = accept_response(
            response, self.key, self.available_subprotocols, self.available_extensions, fields
        )
        self._use_extensions(extensions)
        # The connection keeps the answer: its head, parsed again if read.
        response.headers._shed()
