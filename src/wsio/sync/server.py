"""The threads WebSocket server: :func:`serve`, :class:`Server` and
:class:`ServerConnection`."""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Self, Unpack

from ..exceptions import ConnectionClosed
from ..protocol.connection import ServerProtocol, State
from ..protocol.http11 import Response
from ..shared.serving import (
    SHUTTING_DOWN,
    ServerOptions,
    ServerSettings,
    answer_request_now,
    failed_hook_answer,
    log_no_upgrade,
)
from .connection import Connection

__all__ = ["Server", "ServerConnection", "serve", "unix_serve"]

Handler = Callable[["ServerConnection"], None]


class ServerConnection(Connection):
    """The server's side of one WebSocket connection, passed to the handler."""

    protocol: ServerProtocol

    def __init__(self, sock: socket.socket, server: Server) -> None:
        settings = server.settings
        super().__init__(sock, settings.make_protocol(self), **settings.connection_kwargs)
        self.server = server
        #: The user authenticated by :func:`~wsio.basic_auth`, if any.
        self.username: str | None = None
        # Whether process_request answered instead of upgrading.
        self._answered_by_hook = False

    @property
    def broadcast_policy(self) -> tuple[int | None, str]:
        return self.server.settings.broadcast_policy

    def respond(self, status: HTTPStatus | int, text: str) -> Response:
        """A plain-text HTTP response, for ``process_request`` to return instead of
        upgrading (health checks, errors, challenges)."""
        return self.protocol.reject(status, text)

    def _run(self, deadline: float | None) -> None:
        """Serve the connection from its first byte to its end: the opening handshake
        within ``deadline``, then the handler if it upgraded."""
        try:
            self._receive_handshake(deadline)
        except TimeoutError:
            self.logger.info(
                "opening handshake timed out after %s s", self.server.settings.open_timeout
            )
            self._end()
            return
        except OSError as exc:
            self.logger.debug("connection failed during the opening handshake: %s", exc)
            self._end()
            return
        request = self.protocol.request
        if request is not None and self.protocol.state is State.CONNECTING:
            self._answer(request)
        response = self.protocol.response
        if response is None or response.status_code != 101:
            log_no_upgrade(self.protocol, response, self._answered_by_hook)
            # The answer went out and the core closed its side: read until the client
            # closes its own, for close_timeout at most, so that nothing it still sends
            # turns the end into a reset that could destroy the answer.
            self._flush()
            self._read_loop()
            return
        self._start_reader(f"wsio reader {self.remote_address}")
        try:
            self.server.handler(self)
        except ConnectionClosed as exc:
            # The peer closed while the handler was sending or receiving: not a bug,
            # and often the peer's mistake. One line, no traceback.
            self.logger.debug("connection closed during handler: %s", exc)
        except Exception:
            self.logger.error("connection handler failed", exc_info=True)
            self.close(1011)
        else:
            self.close()
        finally:
            if self.protocol.state is not State.CLOSED:
                self.close()

    def _answer(self, request: Any) -> None:
        """Answer the request with the hooks' say (:func:`answer_request`)."""
        answered_by_hook = False
        if self.server.closing:
            response = self.respond(*SHUTTING_DOWN)
        else:
            try:
                response, answered_by_hook = answer_request_now(
                    self, request, self.server.settings
                )
            except Exception as exc:
                response = failed_hook_answer(self.protocol, exc)
        if self.server.closing and response.status_code == 101:
            # The server started closing while a hook ran: don't open after the others.
            response = self.respond(*SHUTTING_DOWN)
        with self._mutex:
            try:
                self.protocol.send_response(response)
            except Exception as exc:
                # A hook's Response that can't be serialized (a str body, say). The core
                # queued nothing of it, and the handshake is still to answer.
                self.protocol.send_response(failed_hook_answer(self.protocol, exc))
            self._process_events()
        self._answered_by_hook = answered_by_hook
        self._flush()

    def _refuse_while_closing(self) -> None:
        """The server is closing: answer 503 now, rather than when the request arrives.

        Browsers open spare connections ahead of need and may never send a request on
        them; waiting for one would hold the shutdown until open_timeout. A connection
        that started a request is left to finish it.
        """
        with self._mutex:
            if self.protocol.request_started or self.protocol.state is not State.CONNECTING:
                return
            self.protocol.send_response(self.respond(*SHUTTING_DOWN))
            self._process_events()
        self._flush()
        # Nothing was read, so nothing is left to wait for; this wakes the thread that
        # waits for the request.
        self._abort()


class Server:
    """A WebSocket server over threads: one thread accepts, one thread per connection
    runs its handshake and handler, and one more reads its frames; see :func:`serve`.

    :meth:`shutdown` stops accepting connections, answers handshakes in progress with
    503, and closes open connections with 1001 (going away).
    """

    def __init__(
        self, listener: socket.socket, handler: Handler, settings: ServerSettings
    ) -> None:
        self.socket = listener
        self.handler = handler
        self.settings = settings
        self.closing = False
        self._connections: set[ServerConnection] = set()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        # Written to by shutdown() to wake serve_forever() from its wait for a client.
        self._wakeup_read, self._wakeup_write = socket.socketpair()
        # Clear while serve_forever() uses the sockets: shutdown() closes them once it's set.
        self._stopped = threading.Event()
        self._stopped.set()

    @property
    def connections(self) -> set[ServerConnection]:
        """The connections currently open or opening."""
        with self._lock:
            return set(self._connections)

    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown`, each in a thread of its own."""
        with self._lock:
            if self.closing:
                return
            self._stopped.clear()
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wakeup_read, selectors.EVENT_READ)
            try:
                while not self.closing:
                    for key, _ in selector.select():
                        if key.fileobj is self._wakeup_read:
                            return
                        with contextlib.suppress(BlockingIOError, InterruptedError):
                            self._accept()
            finally:
                self._stopped.set()

    def _accept(self) -> None:
        sock, _ = self.socket.accept()
        sock.setblocking(True)
        with self._lock:
            if self.closing:
                sock.close()
                return
            thread = threading.Thread(
                target=self._serve_connection, args=(sock,), name="wsio connection", daemon=True
            )
            self._threads.add(thread)
            # Started before shutdown() can see it, which joins every thread it sees.
            thread.start()

    def _serve_connection(self, sock: socket.socket) -> None:
        settings = self.settings
        timeout = settings.open_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            if settings.ssl is not None:
                sock.settimeout(timeout)
                try:
                    sock = settings.ssl.wrap_socket(sock, server_side=True)
                except (OSError, TimeoutError) as exc:
                    settings.logger.info("TLS handshake failed: %s", exc)
                    sock.close()
                    return
            connection = ServerConnection(sock, self)
            with self._lock:
                self._connections.add(connection)
                closing = self.closing
            if closing:
                # shutdown() listed the connections to refuse before this one joined them.
                connection._refuse_while_closing()
            try:
                connection._run(deadline)
            finally:
                with self._lock:
                    self._connections.discard(connection)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def shutdown(self, close_connections: bool = True) -> None:
        """Stop the server: stop accepting, answer handshakes in progress with 503, close
        open connections with 1001 unless ``close_connections`` is false, and wait for
        every connection's thread and :meth:`serve_forever` to end. Call it from another
        thread than :meth:`serve_forever`'s (a handler's thread will do)."""
        with self._lock:
            self.closing = True
            connections = list(self._connections)
        with contextlib.suppress(OSError):
            self._wakeup_write.send(b"\0")
        for connection in connections:
            if connection.state is State.CONNECTING:
                connection._refuse_while_closing()
        if close_connections:
            closers = [
                threading.Thread(target=connection.close, args=(1001,), daemon=True)
                for connection in connections
                if connection.state is State.OPEN
            ]
            for closer in closers:
                closer.start()
            for closer in closers:
                closer.join()
        current = threading.current_thread()
        while True:
            with self._lock:
                # A handler may call shutdown(): its own thread can't be waited for.
                threads = [thread for thread in self._threads if thread is not current]
            if not threads:
                break
            for thread in threads:
                thread.join()
        # serve_forever() may still be on its way out of its wait: closing its sockets
        # under it would fail its accept(), or drop the wake-up from the wait.
        self._stopped.wait()
        self.socket.close()
        self._wakeup_read.close()
        self._wakeup_write.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


def serve(
    handler: Handler,
    host: str | None = None,
    port: int | None = None,
    *,
    sock: socket.socket | None = None,
    reuse_port: bool = False,
    **options: Unpack[ServerOptions],
) -> Server:
    """Start a WebSocket server over threads, listening at once:
    ``with serve(handler, host, port) as server: server.serve_forever()``.

    ``handler`` is called in a thread of its own with each :class:`ServerConnection` once
    the opening handshake succeeded; the connection is closed when it returns (1000) or
    raises (1011). Takes the options of :func:`wsio.serve` (see
    :class:`~wsio.shared.serving.ServerOptions`); the hooks are plain functions.

    :param sock: a listening socket to serve on, instead of ``host`` and ``port``.
    :param reuse_port: let several processes listen on one port (Linux ``SO_REUSEPORT``).
    """
    settings = ServerSettings(dict(options))
    if sock is None:
        sock = socket.create_server(
            (host or "", port or 0),
            family=socket.AF_INET6 if host and ":" in host else socket.AF_INET,
            reuse_port=reuse_port,
        )
    if os.name == "posix":
        # serve_forever() accepts when the selector says so: a client that gave up
        # meanwhile mustn't block it.
        sock.setblocking(False)
    return Server(sock, handler, settings)


def unix_serve(handler: Handler, path: str, **options: Unpack[ServerOptions]) -> Server:
    """Start a WebSocket server over threads on the Unix socket at ``path``, listening at
    once: as :func:`serve`, whose options it takes (``ssl`` included: TLS works over a
    Unix socket too). The socket file stays after :meth:`Server.shutdown`, as with any
    Unix socket; remove it before serving at the same path again.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen()
    except BaseException:
        sock.close()
        raise
    return serve(handler, sock=sock, **options)
