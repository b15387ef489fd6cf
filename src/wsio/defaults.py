"""Every default limit and timeout of wsio, declared once.

The core (:mod:`wsio.protocol`), the asyncio layer and the command line all take their
defaults from here, so that a limit is never written twice. ``None`` always means
"disabled" for the options that accept it.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BACKOFF_FACTOR",
    "BACKOFF_INITIAL_DELAY",
    "BACKOFF_JITTER",
    "BACKOFF_MAX_DELAY",
    "BROADCAST_LIMIT",
    "CLOSE_TIMEOUT",
    "COMPRESSION",
    "COMPRESSION_THRESHOLD",
    "DEFLATE_MEM_LEVEL",
    "DEFLATE_WINDOW_BITS",
    "FAILURE_GRACE",
    "MAX_BODY_SIZE",
    "MAX_HEADERS",
    "MAX_LINE_LENGTH",
    "MAX_QUEUE",
    "MAX_REDIRECTS",
    "MAX_SIZE",
    "OPEN_TIMEOUT",
    "PING_INTERVAL",
    "PING_TIMEOUT",
    "REDIS_BLOCK",
    "REDIS_MAXLEN",
    "REDIS_MAX_CONNECTIONS",
    "REDIS_RETRY_DELAY",
    "REDIS_STREAM",
    "REDIS_TIMEOUT",
    "SERVER_HEADER",
    "SLOW_CONSUMER",
    "USER_AGENT",
    "WRITE_LIMIT",
]

from ._version import __version__ as _VERSION

#: Largest message accepted, in bytes, counted after decompression (``None``: no limit).
MAX_SIZE: Final[int | None] = 2**20

#: Longest line of an HTTP request or response during the opening handshake, in bytes.
MAX_LINE_LENGTH: Final[int] = 8192

#: Most header fields accepted in an HTTP request or response during the opening handshake.
MAX_HEADERS: Final[int] = 128

#: Largest body of a non-101 handshake response kept for the caller, in bytes.
MAX_BODY_SIZE: Final[int] = 2**20

#: Redirects followed by a client before it gives up.
MAX_REDIRECTS: Final[int] = 10

#: Incoming messages queued before reading from the network pauses.
MAX_QUEUE: Final[int] = 16

#: Bytes buffered for writing before ``send()`` waits for the network to drain.
WRITE_LIMIT: Final[int] = 32768

#: Bytes that a connection may hold unsent (write buffer, messages waiting for a fragmented
#: message to end) and still get a broadcast message: above it, it is a slow consumer.
BROADCAST_LIMIT: Final[int] = 2**18

#: What a broadcast does with a slow consumer: ``"skip"`` the message for it (counted), or
#: ``"close"`` the connection with 1013 (try again later).
SLOW_CONSUMER: Final[str] = "skip"

#: Redis stream through which the hubs of a :class:`~wsio.RedisBackend` share topics.
REDIS_STREAM: Final[str] = "wsio:hub"

#: About how many entries that stream keeps (``XADD MAXLEN ~``): how far behind a hub may
#: fall without losing messages.
REDIS_MAXLEN: Final[int] = 10_000

#: Seconds for connecting to Redis and for each command of a publish.
REDIS_TIMEOUT: Final[float] = 5.0

#: Seconds each read of the stream waits for new entries before asking again.
REDIS_BLOCK: Final[float] = 1.0

#: Longest pause, in seconds, between attempts to reach Redis again after it was lost.
REDIS_RETRY_DELAY: Final[float] = 5.0

#: Connections to Redis for publishing, at most (the reader has one more).
REDIS_MAX_CONNECTIONS: Final[int] = 4

#: Seconds for the whole opening handshake: TCP connect, TLS and HTTP upgrade.
OPEN_TIMEOUT: Final[float | None] = 10.0

#: Seconds to wait for the closing handshake and the end of the TCP connection.
CLOSE_TIMEOUT: Final[float | None] = 10.0

#: Seconds between keepalive pings (``None``: no keepalive). Keepalive deadlines are kept
#: within 1/16 of their length, and within a second (:mod:`wsio.asyncio.timers`).
PING_INTERVAL: Final[float | None] = 20.0

#: Seconds to wait for the pong answering a keepalive ping (``None``: wait forever).
PING_TIMEOUT: Final[float | None] = 20.0

#: Compression negotiated by default: permessage-deflate (RFC 7692), as browsers expect.
COMPRESSION: Final[str | None] = "deflate"

#: Messages shorter than this many bytes are sent uncompressed even when permessage-deflate
#: is negotiated: deflating them costs CPU for little gain (RFC 7692 §6 allows it).
COMPRESSION_THRESHOLD: Final[int] = 128

#: Window of 2**N bytes for what wsio compresses, and what its server asks of clients:
#: 2**12 instead of zlib's 2**15 saves most of the memory for a small loss of ratio.
DEFLATE_WINDOW_BITS: Final[int] = 12

#: zlib memLevel for compression (1-9): 5 takes 16 KiB of hash tables instead of 128 KiB.
DEFLATE_MEM_LEVEL: Final[int] = 5

#: Seconds a connection that the peer broke waits before sending its close frame, so that
#: the application can first handle (and answer) the valid messages that came before.
FAILURE_GRACE: Final[float] = 0.1

#: Longest pause, in seconds, before a client reconnecting with ``async for ws in
#: connect(...)`` tries again after its first failure: the pauses grow from there
#: (RFC 6455 §7.2.3).
BACKOFF_INITIAL_DELAY: Final[float] = 3.0

#: Factor by which that pause grows after each failure in a row (2: truncated binary
#: exponential backoff, as RFC 6455 §7.2.3 suggests).
BACKOFF_FACTOR: Final[float] = 2.0

#: Longest pause, in seconds, between two reconnection attempts.
BACKOFF_MAX_DELAY: Final[float] = 60.0

#: Fraction of each pause drawn at random, so that clients that lost the same server at
#: once don't all come back at once: 1 draws the whole pause between 0 and its length.
BACKOFF_JITTER: Final[float] = 1.0

#: Value of the ``User-Agent`` header sent by clients.
USER_AGENT: Final[str] = f"wsio/{_VERSION}"

#: Value of the ``Server`` header sent by servers.
SERVER_HEADER: Final[str] = f"wsio/{_VERSION}"
