"""permessage-deflate (RFC 7692): compression of messages with DEFLATE.

Memory per connection, with wsio's defaults (window of 2**12 bytes for what wsio
compresses, zlib ``memLevel`` 5): about 40 KiB to compress (window and hash chains), more
precisely ``2**(bits + 2) + 2**(mem_level + 9)`` bytes; to decompress, ``2**bits`` plus
about 7 KiB for zlib's decompressor and up to ``2**bits`` more for the last window of
output, kept for a stream that restarts after BFINAL: about 72 KiB at the peer's largest
window (2**15) once a message of 32 KiB or more arrived.

Decompression is bounded: each piece of payload is inflated with the room left under the
message size limit, so a small message that would inflate to gigabytes fails with 1009
once it passes the limit, having used no more memory than the limit plus the window.
Its CPU is bounded too: a new DEFLATE stream after a block with BFINAL set (§7.2.3.4)
costs a decompressor and a dictionary of one window, so a piece of payload may start one
such stream, as at the end of a fragment, plus one per 1,024 bytes; a peer that starts
more (empty final blocks, 2 bytes each) fails with 1008. The parser refuses with 1009 a
compressed message whose payload exceeds the limit by more than DEFLATE adds to
incompressible data.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Hashable, Iterator, Sequence

from ... import defaults
from ...exceptions import NegotiationError, PayloadTooBig, ProtocolError
from .base import ClientExtensionFactory, Extension, ExtensionParameter, ServerExtensionFactory

__all__ = [
    "ClientPerMessageDeflateFactory",
    "PerMessageDeflate",
    "ServerPerMessageDeflateFactory",
]

_NAME = "permessage-deflate"
# §7.1.2: a window size is a decimal integer from 8 to 15, without leading zeros.
_WINDOW_BITS = re.compile(r"[89]|1[0-5]")
# §7.2.1: the tail removed from, and §7.2.2 appended back to, every compressed message.
_EMPTY_BLOCK = b"\x00\x00\xff\xff"
_RSV1 = 0x40
# Largest piece of output per call to zlib: inflation goes in bounded steps.
_INFLATE_STEP = 65536
# Input handed to zlib at once after a stream ended with BFINAL, doubling from there.
_RESTART_SLICE = 4
# Compressed bytes that pay for one more DEFLATE stream in a piece of payload, beyond the
# one that a fragment ended by BFINAL starts. A new stream costs a decompressor and its
# dictionary, a few microseconds: a peer sending empty final blocks (2 bytes each) would
# otherwise buy that much CPU for every 2 bytes it sends.
_BYTES_PER_STREAM = 1024


def _window_bits(name: str, value: str | None) -> int:
    if value is None or not _WINDOW_BITS.fullmatch(value):
        raise NegotiationError(f"invalid {name}: {value}")
    return int(value)


class PerMessageDeflate(Extension):
    """The negotiated permessage-deflate extension of one connection.

    "local" is this endpoint's sending side, "remote" the peer's. A window of 8 bits can't
    be produced by zlib; when the peer demands it, messages are sent uncompressed, which
    RFC 7692 always allows (§6).
    """

    name = _NAME
    rsv_bits = _RSV1

    def __init__(
        self,
        *,
        remote_no_context_takeover: bool,
        local_no_context_takeover: bool,
        remote_max_window_bits: int,
        local_max_window_bits: int,
        compression_threshold: int = defaults.COMPRESSION_THRESHOLD,
        window_bits: int = defaults.DEFLATE_WINDOW_BITS,
        mem_level: int = defaults.DEFLATE_MEM_LEVEL,
    ) -> None:
        self.remote_no_context_takeover = remote_no_context_takeover
        self.local_no_context_takeover = local_no_context_takeover
        self.remote_max_window_bits = remote_max_window_bits
        self.local_max_window_bits = local_max_window_bits
        self.compression_threshold = compression_threshold
        self._compress_bits = min(local_max_window_bits, window_bits)
        self._mem_level = mem_level
        # zlib's state is made on first use: a connection that never sends or receives a
        # compressed message doesn't pay for it.
        self._decoder: zlib._Decompress | None = None
        self._encoder: zlib._Compress | None = None
        # The peer's latest output, for a stream that restarts after a BFINAL block: at
        # most one window, a ring once full whose oldest byte is at ``_history_start``.
        self._history = bytearray()
        self._history_start = 0
        # The history as the dictionary of a new stream, made once and kept while no
        # output arrives: every restart until then reuses it.
        self._dictionary: bytes | None = None
        self._encoding = False

    def __repr__(self) -> str:
        return (
            f"PerMessageDeflate(remote_no_context_takeover={self.remote_no_context_takeover}, "
            f"local_no_context_takeover={self.local_no_context_takeover}, "
            f"remote_max_window_bits={self.remote_max_window_bits}, "
            f"local_max_window_bits={self.local_max_window_bits})"
        )

    @property
    def can_compress(self) -> bool:
        """False when the peer demands a window of 2**8 bytes, which zlib can't produce."""
        return self._compress_bits >= 9

    # Incoming ---------------------------------------------------------------------------

    def begin_incoming(self, rsv: int) -> bool:
        """Whether this message is compressed: RSV1 on its first frame (§6)."""
        return bool(rsv & _RSV1)

    @property
    def _window(self) -> int:
        # A stream made with a window of 2**8 bytes is read with 2**9: zlib can't do 8.
        return 1 << max(self.remote_max_window_bits, 9)

    def _new_decoder(self) -> zlib._Decompress:
        bits = self._window.bit_length() - 1
        if not self._history:
            return zlib.decompressobj(wbits=-bits)
        # A new stream after a BFINAL block, with context takeover: its back-references
        # may reach into what came before (§7.2.2), so that is its dictionary.
        if self._dictionary is None:
            start = self._history_start
            with memoryview(self._history) as view:
                # Oldest first: one copy of the window.
                self._dictionary = b"".join((view[start:], view[:start]))
        return zlib.decompressobj(wbits=-bits, zdict=self._dictionary)

    def _remember(self, output: bytes) -> None:
        """Keep the latest output, as much as the peer's window spans, for a stream that
        restarts after a BFINAL block: one window at most, written over in a ring."""
        if self.remote_no_context_takeover:
            return
        self._dictionary = None
        window = self._window
        if len(output) >= window:
            self._history = bytearray(output[-window:])
            self._history_start = 0
            return
        history = self._history
        room = window - len(history)
        if room > 0:
            history += output[:room]
            output = output[room:]
        # Full: the newest bytes replace the oldest, from the start of the ring.
        start = self._history_start
        end = start + len(output)
        if end <= window:
            history[start:end] = output
        else:
            history[start:] = output[: window - start]
            history[: end - window] = output[window - start :]
        self._history_start = end % window

    def decode(self, data: bytes, max_length: int | None) -> Iterator[bytes]:
        """Inflate ``data`` in steps of at most ``_INFLATE_STEP`` bytes of output, so that
        what is held at once stays small, checking the total against ``max_length``.

        A stream that ends with BFINAL may be followed by a new one (§7.2.3.4): once in
        ``data``, as at the end of a fragment, and once more per ``_BYTES_PER_STREAM``
        bytes of it; more fails with 1008, so that restarts cost CPU in proportion to the
        bytes received."""
        produced = 0
        view = memoryview(data)
        position = 0
        restarts = 1 + len(view) // _BYTES_PER_STREAM
        # How much input to hand zlib at once: all of it, until a stream ends within it;
        # then little at first, so that each restart hands back little (linear time).
        size = len(view)
        while position < len(view):
            chunk: bytes | memoryview = view[position : position + size]
            position += len(chunk)
            if self._decoder is None:
                self._decoder = self._new_decoder()
            while True:
                # Ask for one byte more than allowed: getting it means the limit is crossed.
                limit = _INFLATE_STEP
                if max_length is not None:
                    limit = min(limit, max_length - produced + 1)
                try:
                    piece = self._decoder.decompress(chunk, limit)
                except zlib.error as exc:
                    raise ProtocolError(f"invalid compressed data: {exc}", 1007) from exc
                produced += len(piece)
                if max_length is not None and produced > max_length:
                    raise PayloadTooBig("decompressed message exceeds the size limit")
                if piece:
                    self._remember(piece)
                    yield piece
                if self._decoder.eof:
                    # §7.2.3.4, §7.2.3.5: after a block with BFINAL set, what follows is
                    # read "in the same manner", as a new stream: e.g. the octet that
                    # starts the empty stored block completed by 00 00 ff ff.
                    position -= len(self._decoder.unused_data)
                    self._decoder = None
                    if position < len(view):
                        restarts -= 1
                        if restarts < 0:
                            raise ProtocolError("too many DEFLATE streams in a message", 1008)
                    size = _RESTART_SLICE
                    break
                chunk = self._decoder.unconsumed_tail
                if not chunk:
                    size *= 2
                    break

    def end_incoming(self, max_length: int | None) -> Iterator[bytes]:
        yield from self.decode(_EMPTY_BLOCK, max_length)
        # Restarts in one message share the dictionary; between messages, it goes.
        self._dictionary = None
        # A sender that doesn't keep context starts afresh.
        if self.remote_no_context_takeover:
            self._decoder = None

    # Outgoing ---------------------------------------------------------------------------

    def encode(
        self, data: bytes, *, first: bool, fin: bool, transform: bool | None
    ) -> tuple[bytes, int]:
        if first:
            if transform is None:
                # A fragmented message's size isn't known: compress it.
                transform = not fin or len(data) >= self.compression_threshold
            self._encoding = transform and self.can_compress
        if not self._encoding:
            return data, 0
        if self._encoder is None:
            self._encoder = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -self._compress_bits, self._mem_level
            )
        payload = self._encoder.compress(data) + self._encoder.flush(zlib.Z_SYNC_FLUSH)
        if fin:
            # §7.2.1: drop the empty stored block that ends a sync flush.
            payload = payload[: -len(_EMPTY_BLOCK)]
            if self.local_no_context_takeover:
                self._encoder = None
        return payload, (_RSV1 if first else 0)

    def shared_encoding(self, size: int, transform: bool | None) -> Hashable | None:
        """Uncompressed messages are the same everywhere; compressed ones too when this
        side keeps no context between messages (``*_no_context_takeover``, §7.1.1) and
        compresses with the same window and memory level: each starts a fresh stream."""
        if transform is None:
            transform = size >= self.compression_threshold
        if not (transform and self.can_compress):
            return ()
        if not self.local_no_context_takeover:
            return None
        return (self.name, self._compress_bits, self._mem_level)


def _parse_parameters(
    parameters: Sequence[ExtensionParameter],
) -> dict[str, str | None]:
    """Parameters by name; refuses unknown and repeated ones and bad values (§7)."""
    found: dict[str, str | None] = {}
    for name, value in parameters:
        if name in found:
            raise NegotiationError(f"duplicate {name}")
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:
                raise NegotiationError(f"{name} takes no value: {value}")
        elif name == "server_max_window_bits":
            _window_bits(name, value)
        elif name == "client_max_window_bits":
            if value is not None:
                _window_bits(name, value)
        else:
            raise NegotiationError(f"unknown permessage-deflate parameter: {name}")
        found[name] = value
    return found


class ClientPerMessageDeflateFactory(ClientExtensionFactory):
    """A client's offer of permessage-deflate.

    :param server_no_context_takeover: ask the server not to keep context across messages.
    :param client_no_context_takeover: announce that this client won't keep context.
    :param server_max_window_bits: ask the server for a window of at most 2**N bytes.
    :param client_max_window_bits: ``True`` lets the server choose this client's window;
        a number announces one; ``None`` leaves the parameter out.
    """

    name = _NAME

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        client_max_window_bits: int | bool | None = True,
        compression_threshold: int = defaults.COMPRESSION_THRESHOLD,
    ) -> None:
        for bits in (server_max_window_bits, client_max_window_bits):
            if not isinstance(bits, bool) and bits is not None and not 8 <= bits <= 15:
                raise ValueError("max_window_bits must be between 8 and 15")
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.compression_threshold = compression_threshold

    def offer(self) -> list[ExtensionParameter]:
        parameters: list[ExtensionParameter] = []
        if self.server_no_context_takeover:
            parameters.append(("server_no_context_takeover", None))
        if self.client_no_context_takeover:
            parameters.append(("client_no_context_takeover", None))
        if self.server_max_window_bits is not None:
            parameters.append(("server_max_window_bits", str(self.server_max_window_bits)))
        if self.client_max_window_bits is True:
            parameters.append(("client_max_window_bits", None))
        elif self.client_max_window_bits:
            parameters.append(("client_max_window_bits", str(self.client_max_window_bits)))
        return parameters

    def accept(self, parameters: Sequence[ExtensionParameter]) -> PerMessageDeflate:
        """Check the server's answer against this offer (§5.1, §7.1)."""
        found = _parse_parameters(parameters)
        if "server_no_context_takeover" not in found and self.server_no_context_takeover:
            raise NegotiationError("server ignored server_no_context_takeover")
        server_bits = found.get("server_max_window_bits")
        if self.server_max_window_bits is not None:
            if server_bits is None:
                raise NegotiationError("server ignored server_max_window_bits")
            if int(server_bits) > self.server_max_window_bits:
                raise NegotiationError(f"server_max_window_bits={server_bits} is too large")
        client_bits: int | None = None
        if "client_max_window_bits" in found:
            if self.client_max_window_bits is None:
                raise NegotiationError("client_max_window_bits wasn't offered")
            # §7.1.2.2: in an answer, the parameter has a value.
            client_bits = _window_bits("client_max_window_bits", found["client_max_window_bits"])
            offered = self.client_max_window_bits
            if not isinstance(offered, bool) and client_bits > offered:
                raise NegotiationError(f"client_max_window_bits={client_bits} is too large")
        elif not isinstance(self.client_max_window_bits, bool | None):
            client_bits = self.client_max_window_bits
        return PerMessageDeflate(
            remote_no_context_takeover="server_no_context_takeover" in found,
            local_no_context_takeover=(
                "client_no_context_takeover" in found or self.client_no_context_takeover
            ),
            remote_max_window_bits=int(server_bits) if server_bits is not None else 15,
            local_max_window_bits=client_bits if client_bits is not None else 15,
            compression_threshold=self.compression_threshold,
        )


class ServerPerMessageDeflateFactory(ServerExtensionFactory):
    """A server's answer to offers of permessage-deflate.

    :param server_no_context_takeover: don't keep context across the server's messages.
    :param client_no_context_takeover: ask clients not to keep context.
    :param server_max_window_bits: largest window for the server's messages; announced.
    :param client_max_window_bits: ask clients that allow it for at most 2**N bytes.
    :param require_client_max_window_bits: decline offers that don't allow the former.
    """

    name = _NAME

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = defaults.DEFLATE_WINDOW_BITS,
        client_max_window_bits: int | None = defaults.DEFLATE_WINDOW_BITS,
        require_client_max_window_bits: bool = False,
        compression_threshold: int = defaults.COMPRESSION_THRESHOLD,
    ) -> None:
        for bits in (server_max_window_bits, client_max_window_bits):
            if bits is not None and not 8 <= bits <= 15:
                raise ValueError("max_window_bits must be between 8 and 15")
        if require_client_max_window_bits and client_max_window_bits is None:
            raise ValueError("require_client_max_window_bits needs client_max_window_bits")
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.require_client_max_window_bits = require_client_max_window_bits
        self.compression_threshold = compression_threshold

    def negotiate(
        self, offers: Sequence[Sequence[ExtensionParameter]]
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate] | None:
        for parameters in offers:
            try:
                return self._answer(_parse_parameters(parameters))
            except NegotiationError:
                # §7: an invalid or unsupported offer is declined; try the next one.
                continue
        return None

    def _answer(
        self, offer: dict[str, str | None]
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        answer: list[ExtensionParameter] = []
        # §7.1.1.1: honour the client's request; §7.1.1.2: ask for it at will.
        server_no_context = (
            "server_no_context_takeover" in offer or self.server_no_context_takeover
        )
        if server_no_context:
            answer.append(("server_no_context_takeover", None))
        client_no_context = (
            self.client_no_context_takeover or "client_no_context_takeover" in offer
        )
        if client_no_context:
            answer.append(("client_no_context_takeover", None))
        # §7.1.2.1: at most what the client asked for.
        server_bits = self.server_max_window_bits
        if offer.get("server_max_window_bits") is not None:
            asked = int(offer["server_max_window_bits"] or 15)
            server_bits = asked if server_bits is None else min(server_bits, asked)
        if server_bits is not None:
            answer.append(("server_max_window_bits", str(server_bits)))
        # §7.1.2.2: only when the client allows it, and at most its value if it gave one.
        client_bits: int | None = None
        if "client_max_window_bits" in offer:
            announced = offer["client_max_window_bits"]
            client_bits = self.client_max_window_bits
            if announced is not None:
                client_bits = (
                    int(announced) if client_bits is None else min(client_bits, int(announced))
                )
            if client_bits is not None:
                answer.append(("client_max_window_bits", str(client_bits)))
        elif self.require_client_max_window_bits:
            raise NegotiationError("client_max_window_bits required")
        extension = PerMessageDeflate(
            remote_no_context_takeover=client_no_context,
            local_no_context_takeover=server_no_context,
            remote_max_window_bits=client_bits if client_bits is not None else 15,
            local_max_window_bits=server_bits if server_bits is not None else 15,
            compression_threshold=self.compression_threshold,
        )
        return answer, extension
