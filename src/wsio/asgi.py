"""WebSocket for ASGI applications under uvicorn.

``uvicorn app:app --ws wsio.asgi:WebSocketProtocol`` serves an application's WebSocket
endpoints with wsio.

:class:`WebSocketProtocol` is a uvicorn WebSocket protocol class (``Config(ws=...)`` takes it
too). uvicorn parses the HTTP request; when it asks to upgrade, uvicorn hands the connection
to this class, which runs the application with the ``websocket`` scope of the ASGI
specification 2.4: ``websocket.connect``, ``accept`` (with a subprotocol and headers),
``receive``, ``send``, ``close``, ``disconnect``, and the denial response extension
(``websocket.http.response.start`` / ``body``).

It is a :class:`wsio.asyncio.connection.Connection`, the same as ``wsio.serve`` gives its
handlers, over the same sans-I/O core: every check of the protocol applies (UTF-8 validated
as it arrives, sizes bounded from frame headers and after decompression, control frames),
permessage-deflate leaves messages under ``compression_threshold`` uncompressed, and at
most ``ws_max_queue`` received messages wait for the application before reading pauses.
:func:`get_connection` gives an application that connection, for :func:`wsio.broadcast`
and :class:`wsio.Hub`.

uvicorn's options apply: ``ws_max_size`` (largest message), ``ws_max_queue``,
``ws_ping_interval`` and ``ws_ping_timeout`` (keepalive; 0 or ``None`` turns pings off),
``ws_per_message_deflate``, ``root_path``, ``server_header`` and ``date_header``.

Where the ASGI specification leaves a choice, this class does what uvicorn's own backends
do, so that applications behave the same on each: an application that returns (or raises)
without sending ``websocket.close`` has the TCP connection closed without a close frame
(the client sees 1006); ``websocket.close`` before ``websocket.accept`` answers 403; an
application that fails before accepting gets 500; server shutdown closes open connections
with 1012 (service restart).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import unquote

from uvicorn.config import Config
from uvicorn.protocols.utils import (
    ClientDisconnected,
    get_client_addr,
    get_local_addr,
    get_path_with_query_string,
    get_remote_addr,
    is_ssl,
)
from uvicorn.server import ServerState

from . import defaults
from .asyncio.connection import Connection
from .exceptions import ConnectionClosed
from .protocol.connection import RequestReceived, ResponseReceived, ServerProtocol, State
from .protocol.http11 import Headers, Response
from .shared.compression import server_extensions
from .shared.serving import SHUTTING_DOWN

__all__ = ["WebSocketProtocol", "get_connection"]

_logger = logging.getLogger("uvicorn.error")

Message = dict[str, Any]

#: The key of :class:`WebSocketProtocol` in ``scope["extensions"]``.
SCOPE_EXTENSION: Final = "wsio"

# The application's side of the handshake, in order.
_AWAITING_ANSWER = 0  # websocket.connect delivered or due; no answer sent yet
_DENYING = 1  # websocket.http.response.start sent, the body being gathered
_ACCEPTED = 2  # websocket.accept sent
_DONE = 3  # websocket.close sent, or the handshake refused

_INTERNAL_ERROR = (HTTPStatus.INTERNAL_SERVER_ERROR, "Internal Server Error")

# What the application may raise that is no failure of its own: these end its task
# (and, for the first two, the loop) without being logged as an application error.
_ENDS_TASK = (KeyboardInterrupt, SystemExit, asyncio.CancelledError)


class WebSocketProtocol(Connection):
    """One WebSocket connection of a uvicorn server, running the ASGI application.

    uvicorn creates it once the HTTP layer sees an upgrade request, with its
    ``config``, the server's shared ``server_state`` and the ``app_state`` of lifespan.
    """

    __slots__ = (
        "_app_task",
        "_connect_due",
        "_denial",
        "_disconnect",
        "_offered",
        "_pending_accept",
        "_phase",
        "app",
        "app_state",
        "config",
        "default_headers",
        "ping_sent_at",
        "scope",
        "server_state",
    )

    protocol: ServerProtocol

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        protocol = ServerProtocol(
            extensions=server_extensions(
                defaults.COMPRESSION if config.ws_per_message_deflate else None,
                defaults.COMPRESSION_THRESHOLD,
                (),
            ),
            # uvicorn's default headers (Server, Date) go in every answer instead.
            server_header=None,
            max_size=config.ws_max_size,
            hold_failures=True,
            logger=_logger,
        )
        # The subprotocols offered are the scope's; the application picks one as it accepts.
        protocol.select_subprotocol = self._note_offered
        super().__init__(
            protocol,
            # uvicorn's 0 means no keepalive, or no timeout, as None does.
            ping_interval=config.ws_ping_interval or None,
            ping_timeout=config.ws_ping_timeout or None,
            max_queue=config.ws_max_queue,
        )
        self.config = config
        self.app = config.loaded_app
        self.app_state = app_state
        self.server_state = server_state
        self.default_headers = server_state.default_headers
        #: The ASGI scope, once the request arrived.
        self.scope: dict[str, Any] = {}
        #: When the last keepalive ping was sent (the loop's time); 0.0 before the first.
        self.ping_sent_at = 0.0
        self._phase = _AWAITING_ANSWER
        self._connect_due = True
        self._offered: list[str] = []
        # The 101 that accept() built, sent once the application accepts.
        self._pending_accept: Response | None = None
        # The denial response being gathered: status, headers, body.
        self._denial: tuple[int, Headers, bytearray] | None = None
        # The websocket.disconnect that receive() returns once its messages are taken,
        # when this side decided the end (close, refusal, shutdown).
        self._disconnect: Message | None = None
        self._app_task: asyncio.Task[None] | None = None

    # What uvicorn's tests and tools read on its backends.

    @property
    def close_timer(self) -> asyncio.TimerHandle | None:
        """The timer that gives up on the peer's close frame, while it is awaited."""
        return self._close_timer if self.protocol.close_rcvd is None else None

    @property
    def ping_timer(self) -> float | None:
        """When the next keepalive step is due (the loop's time); ``None`` when off."""
        return self._timer_slot

    # asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # uvicorn types the set with its own protocol classes.
        self.server_state.connections.add(self)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            self.server_state.connections.discard(self)

    def shutdown(self) -> None:
        """The server is shutting down: close with 1012 (service restart), answer a
        handshake still waiting for the application with 503, stop waiting for the
        peer's close frame if one was sent already."""
        transport = self.transport
        assert transport is not None
        state = self.protocol.state
        if state is State.OPEN:
            self._disconnect = {"type": "websocket.disconnect", "code": 1012}
            self._start_closing(1012, "")
            return
        if state is State.CONNECTING and self.protocol.request is not None:
            self._disconnect = {"type": "websocket.disconnect", "code": 1006}
            self._answer(self.protocol.reject(*SHUTTING_DOWN))
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        transport.close()

    # The opening handshake ----------------------------------------------------------------

    def _note_offered(self, offered: Sequence[str]) -> None:
        self._offered = list(offered)

    def _handshake_event(self, event: RequestReceived | ResponseReceived) -> None:
        request = self.protocol.request
        assert request is not None and self.transport is not None
        response = self.protocol.accept(request)
        if response.status_code != 101:
            self._answer(response)
            return
        self._pending_accept = response
        transport = self.transport
        root_path = self.config.root_path
        raw_path, _, query_string = request.path.partition("?")
        self.scope = {
            "type": "websocket",
            "asgi": {"version": self.config.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if is_ssl(transport) else "ws",
            "server": get_local_addr(transport),
            "client": get_remote_addr(transport),
            "root_path": root_path,
            "path": root_path + unquote(raw_path),
            "raw_path": (root_path + raw_path).encode(),
            "query_string": query_string.encode(),
            "headers": [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in request.headers.raw_items()
            ],
            "subprotocols": self._offered,
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}, SCOPE_EXTENSION: {"connection": self}},
        }
        self._app_task = self.loop.create_task(self._run_app())
        self.server_state.tasks.add(self._app_task)
        self._app_task.add_done_callback(self.server_state.tasks.discard)

    def _end_handshake(self) -> None:
        super()._end_handshake()
        if self.protocol.state is State.OPEN:
            self._start_keepalive()

    def _keepalive_ping(self) -> None:
        self.ping_sent_at = self.loop.time()
        super()._keepalive_ping()

    def _answer(self, response: Response) -> None:
        """Send an answer other than 101, with uvicorn's default headers unless it has
        its own; the core closes the connection after it."""
        self._add_default_headers(response.headers, skip=response.headers)
        self.protocol.send_response(response)
        self._process_events()
        if self.scope:
            _logger.info(
                '%s - "WebSocket %s" %d',
                get_client_addr(self.scope),  # type: ignore[arg-type]
                get_path_with_query_string(self.scope),  # type: ignore[arg-type]
                response.status_code,
            )

    def _add_default_headers(self, headers: Headers, skip: Headers | None = None) -> None:
        for name, value in self.default_headers:
            field = name.decode("latin-1")
            if skip is None or field not in skip:
                headers[field] = value.decode("latin-1")

    # The application ----------------------------------------------------------------------

    async def _run_app(self) -> None:
        try:
            result = await self.app(self.scope, self._asgi_receive, self._asgi_send)
        except ClientDisconnected:
            pass
        except _ENDS_TASK:
            self._end_app_task(failed=True)
            raise
        except BaseException:
            _logger.error("Exception in ASGI application\n", exc_info=True)
            self._end_app_task(failed=True)
        else:
            if result is not None:
                _logger.error("ASGI callable should return None, but returned '%s'.", result)
            self._end_app_task(failed=False)

    def _end_app_task(self, *, failed: bool) -> None:
        """The application returned or raised: answer a handshake it left unanswered,
        and end a connection it left open."""
        if self.protocol.state is State.CONNECTING and not self._connection_lost.done():
            if self._denial is not None:
                # A denial response whose body didn't come, or not all of it: send what
                # the application gave, which its Content-Length, if any, must describe.
                self._send_denial()
            else:
                if not failed:
                    _logger.error("ASGI callable returned without completing handshake.")
                self._phase = _DONE
                self._answer(self.protocol.reject(*_INTERNAL_ERROR))
        elif self.protocol.state is State.OPEN and self.transport is not None:
            # No websocket.close: the connection ends without a close frame, as on
            # uvicorn's other backends.
            self.transport.close()

    async def _asgi_receive(self) -> Message:
        """The application's ``receive()``."""
        if self._connect_due:
            self._connect_due = False
            return {"type": "websocket.connect"}
        if self._disconnect is not None and (self._phase == _DONE or not self._messages):
            return self._disconnect
        if self.protocol.state is State.CONNECTING:
            # Nothing arrives before the application answers: wait for the end.
            await asyncio.shield(self._connection_lost)
            return {"type": "websocket.disconnect", "code": 1006}
        try:
            data = await self._receive(False)
        except ConnectionClosed:
            if self._disconnect is not None:
                return self._disconnect
            code = self.protocol.close_code
            if code == 1006:
                return {"type": "websocket.disconnect", "code": 1006}
            return {"type": "websocket.disconnect", "code": code, "reason": self.close_reason}
        if isinstance(data, str):
            return {"type": "websocket.receive", "text": data}
        return {"type": "websocket.receive", "bytes": data}

    async def _asgi_send(self, message: Message) -> None:
        """The application's ``send()``.

        :raises ClientDisconnected: the connection is closed (an :class:`OSError`, as the
            specification asks), with the :class:`~wsio.ConnectionClosed` as its cause.
        :raises RuntimeError: a message that doesn't fit the state of the connection.
        """
        kind = message["type"]
        phase = self._phase
        if phase == _ACCEPTED:
            if kind == "websocket.send":
                await self._send_data(message)
            elif kind == "websocket.close":
                self._close_from_app(message)
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.send' or 'websocket.close', "
                    f"but got '{kind}'."
                )
        elif phase == _AWAITING_ANSWER:
            if self._connection_lost.done() or self.protocol.state is not State.CONNECTING:
                raise ClientDisconnected("the client closed the connection")
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._phase = _DONE
                self._disconnect = {"type": "websocket.disconnect", "code": 1006}
                self._answer(self.protocol.reject(HTTPStatus.FORBIDDEN, ""))
            elif kind == "websocket.http.response.start":
                self._start_denial(message)
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.accept', 'websocket.close' or "
                    f"'websocket.http.response.start' but got '{kind}'."
                )
        elif phase == _DENYING:
            if kind != "websocket.http.response.body":
                raise RuntimeError(
                    f"Expected ASGI message 'websocket.http.response.body' but got '{kind}'."
                )
            assert self._denial is not None
            self._denial[2].extend(message.get("body", b""))
            if not message.get("more_body", False):
                self._send_denial()
        else:
            raise RuntimeError(
                f"Unexpected ASGI message '{kind}', after sending 'websocket.close'."
            )

    def _accept(self, message: Message) -> None:
        response = self._pending_accept
        assert response is not None
        headers = Headers()
        self._add_default_headers(headers)
        headers.update(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in message.get("headers", ())
        )
        # Raises InvalidArgument for a subprotocol not offered or a field of the handshake.
        self.protocol.complete_accept(
            response, subprotocol=message.get("subprotocol"), headers=headers.raw_items()
        )
        self._pending_accept = None
        self._phase = _ACCEPTED
        self.protocol.send_response(response)
        self._process_events()
        _logger.info(
            '%s - "WebSocket %s" [accepted]',
            get_client_addr(self.scope),  # type: ignore[arg-type]
            get_path_with_query_string(self.scope),  # type: ignore[arg-type]
        )

    def _start_denial(self, message: Message) -> None:
        status = message["status"]
        if not isinstance(status, int) or not 200 <= status < 600:
            raise RuntimeError(f"Invalid HTTP status code '{status}' in response.")
        headers = Headers(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in message.get("headers", ())
        )
        self._denial = (status, headers, bytearray())
        self._phase = _DENYING

    def _send_denial(self) -> None:
        assert self._denial is not None
        status, headers, body = self._denial
        self._phase = _DONE
        self._disconnect = {"type": "websocket.disconnect", "code": 1006}
        answer = headers.copy()
        lengths = headers.get_all("Content-Length")
        if not lengths:
            answer["Content-Length"] = str(len(body))
        elif lengths != [str(len(body))]:
            _logger.error(
                "ASGI callable sent a %d-byte body with Content-Length %s",
                len(body),
                ", ".join(lengths),
            )
            self._answer(self.protocol.reject(*_INTERNAL_ERROR))
            return
        if "Connection" not in headers:
            # The connection ends after the answer: no second request rides on it.
            answer["Connection"] = "close"
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        self._answer(Response(status, phrase, answer, bytes(body)))

    async def _send_data(self, message: Message) -> None:
        data = message.get("bytes")
        if data is None:
            data = message.get("text")
            if data is None:
                raise RuntimeError("ASGI message 'websocket.send' needs 'bytes' or 'text'.")
        try:
            if self._writing_paused or self._fragmented_send is not None:
                # Wait for room before writing as well as after: a paused transport takes
                # nothing more until it drained. (A fragmented message in progress was
                # sent through get_connection(): send() waits for its end.)
                await self._drain()
                await self.send(data)
                return
            if not self._write_message(data, None):
                raise RuntimeError(
                    "ASGI message 'websocket.send' needs 'bytes' or 'text', "
                    f"not {type(data).__name__}."
                )
            if self._writing_paused:
                await self._drain()
        except ConnectionClosed as exc:
            raise ClientDisconnected("the connection is closed") from exc

    def _close_from_app(self, message: Message) -> None:
        code = message.get("code") or 1000
        reason = message.get("reason") or ""
        self._phase = _DONE
        if self.protocol.state is State.OPEN:
            self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
            self._start_closing(code, reason)


def get_connection(scope: Mapping[str, Any]) -> WebSocketProtocol:
    """The wsio connection behind an ASGI ``websocket`` scope served by
    :class:`WebSocketProtocol` (with FastAPI or Starlette: ``websocket.scope``).

    It is a :class:`~wsio.asyncio.connection.Connection` like those that ``wsio.serve``
    gives its handlers: pass it to :func:`wsio.broadcast` or :meth:`wsio.Hub.subscribe`,
    which send to it directly, a frame prepared once for every connection.

    :raises LookupError: the scope isn't served by :class:`WebSocketProtocol`.
    """
    try:
        connection = scope["extensions"][SCOPE_EXTENSION]["connection"]
    except (KeyError, TypeError):
        raise LookupError("this scope isn't served by wsio.asgi.WebSocketProtocol") from None
    assert isinstance(connection, WebSocketProtocol)
    return connection
