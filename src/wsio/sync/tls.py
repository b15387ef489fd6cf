"""TLS inside TLS for the threads client: ``wss://`` through an ``https://`` proxy.

The connection to the proxy is an :class:`ssl.SSLSocket`; the server's TLS session runs
inside the tunnel that the proxy opened, so it can't be another socket's. It runs on an
:class:`ssl.SSLObject` (:meth:`ssl.SSLContext.wrap_bio`) instead, whose memory buffers
:class:`TLSInTLS` fills from the outer socket and empties into it. To
:class:`~wsio.sync.connection.Connection`, :class:`TLSInTLS` is a socket: it has the
methods the connection calls, with the same meaning.

Two threads use it at once, as they use a socket: the reader thread in :meth:`recv`,
one writer at a time in :meth:`sendall`. The TLS state and its buffers are guarded by a
lock that is never held during I/O, and one thread at a time writes to the outer socket,
so that records never interleave.
"""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Any

__all__ = ["TLSInTLS"]

#: Bytes asked of the outer socket per read.
_READ_SIZE = 65536

# How the inner session's end shows when reading: close_notify, or the stream ended
# without it. SSLSocket returns b"" for both (suppress_ragged_eofs); so does TLSInTLS,
# and the core tells a closing handshake from an abrupt end.
_ENDED = (ssl.SSLZeroReturnError, ssl.SSLEOFError)


class TLSInTLS:
    """A TLS session to the server inside ``outer``, a TLS connection to a proxy whose
    tunnel reaches the server; :meth:`do_handshake` starts it.

    :meth:`recv` returns everything it decrypted from what it read, which may be a little
    more than ``bufsize``: plaintext kept back here would be invisible to ``poll()`` on
    :meth:`fileno`, which the reader thread waits on.
    """

    def __init__(
        self, outer: ssl.SSLSocket, context: ssl.SSLContext, server_hostname: str
    ) -> None:
        self._outer = outer
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_hostname=server_hostname
        )
        # The SSLObject and its buffers: held for memory operations only, never for I/O.
        self._lock = threading.Lock()
        # One writer of the outer socket at a time, emptying _outgoing in order.
        self._send_lock = threading.Lock()

    def do_handshake(self) -> None:
        """Run the TLS handshake with the server, within the outer socket's timeout.

        :raises ssl.SSLError: the handshake failed (a certificate that doesn't verify,
            the stream ended).
        :raises TimeoutError: the outer socket's timeout passed.
        """
        while True:
            try:
                with self._lock:
                    self._tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
            else:
                break
        self._flush()

    def recv(self, bufsize: int) -> bytes:
        """Wait for plaintext from the server; ``b""`` once the session ended."""
        while True:
            try:
                with self._lock:
                    data = self._tls.read(bufsize)
            except ssl.SSLWantReadError:
                self._fill()
                continue
            except _ENDED:
                return b""
            break
        chunks = [data]
        # Decrypt all that already arrived, in the outer socket's buffer too, so that
        # nothing waits where poll() doesn't look.
        while data:
            pending = self._outer.pending()
            if pending:
                self._feed(self._outer.recv(pending))
            try:
                with self._lock:
                    data = self._tls.read(bufsize)
            except (ssl.SSLWantReadError, *_ENDED):
                # What ended shows at the next call.
                break
            chunks.append(data)
        if self._outgoing.pending:
            # Reading produced a message of its own (a key update): send it unless a
            # writer is at it, who then sends it, so the reader never waits for a writer.
            self._flush(wait=False)
        return b"".join(chunks)

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt ``data`` and write it all to the outer socket."""
        with self._lock:
            self._tls.write(data)
        self._flush()

    def shutdown(self, how: int) -> None:
        """End the outer TCP connection both ways, whatever ``how``: TLS can't half-close.

        The outer socket is shut down as a plain socket: :meth:`ssl.SSLSocket.shutdown`
        would also detach its TLS state under a thread that may be reading.
        """
        socket.socket.shutdown(self._outer, socket.SHUT_RDWR)

    def close(self) -> None:
        self._outer.close()

    def settimeout(self, timeout: float | None) -> None:
        self._outer.settimeout(timeout)

    def fileno(self) -> int:
        return self._outer.fileno()

    @property
    def family(self) -> int:
        """The address family of the connection to the proxy."""
        return self._outer.family

    def setsockopt(self, level: int, option: int, value: int) -> None:
        """Set an option of the connection to the proxy, which carries every byte."""
        self._outer.setsockopt(level, option, value)

    def getsockname(self) -> Any:
        return self._outer.getsockname()

    def getpeername(self) -> Any:
        """The proxy's address: the server is only reached through it."""
        return self._outer.getpeername()

    def getpeercert(self) -> Any:
        """The server's certificate, as :meth:`ssl.SSLSocket.getpeercert` gives it."""
        return self._tls.getpeercert()

    def _fill(self) -> None:
        """Read once from the outer socket into the TLS session's input."""
        self._feed(self._outer.recv(_READ_SIZE))

    def _feed(self, data: bytes) -> None:
        with self._lock:
            if data:
                self._incoming.write(data)
            else:
                self._incoming.write_eof()

    def _flush(self, wait: bool = True) -> None:
        """Write what the TLS session produced to the outer socket. With ``wait=False``,
        give up when another thread writes: it writes all there is before it lets go."""
        while True:
            if not self._send_lock.acquire(blocking=wait):
                return
            try:
                while True:
                    with self._lock:
                        data = self._outgoing.read()
                    if not data:
                        break
                    self._outer.sendall(data)
            finally:
                self._send_lock.release()
            # What another thread produced and left here while this one held the lock.
            if not self._outgoing.pending:
                return
