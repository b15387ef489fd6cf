"""Serving, for both I/O layers: the options of ``serve``, checked once, and the answer to
an opening handshake request, with the application's hooks."""

from __future__ import annotations

import inspect
import logging
import reprlib
from collections.abc import Callable, Generator, Sequence
from http import HTTPStatus
from typing import Any

from .. import defaults
from ..exceptions import InvalidArgument
from ..protocol.connection import ServerProtocol
from ..protocol.extensions import ServerExtensionFactory
from ..protocol.handshake import Origin, check_subprotocols
from ..protocol.http11 import Headers, Request, Response
from .broadcast import check_broadcast_policy
from .compression import server_extensions
from .connection import ConnectionOptions, connection_options, opening_options

__all__ = [
    "SHUTTING_DOWN",
    "ServerOptions",
    "ServerSettings",
    "answer_request",
    "answer_request_now",
    "failed_hook_answer",
    "hook_answer",
    "log_no_upgrade",
]

LoggerLike = logging.Logger | logging.LoggerAdapter[logging.Logger]

_logger = logging.getLogger("wsio.server")

#: The answer to a handshake that comes while the server shuts down.
SHUTTING_DOWN = (HTTPStatus.SERVICE_UNAVAILABLE, "Server is shutting down.\n")

_HOOK_FAILED = "Failed to open a WebSocket connection.\nSee server log for more information.\n"


class ServerOptions(ConnectionOptions, total=False):
    """The keyword arguments that ``serve`` takes in both I/O layers, with their
    defaults in :mod:`wsio.defaults`: those of :class:`ConnectionOptions`, and

    - ``ssl``: TLS context: the server speaks ``wss://``.
    - ``origins``: allowed values of the ``Origin`` header (strings, patterns, ``None``
      for "no header"); ``None`` accepts every origin. Others get 403.
    - ``subprotocols``: supported subprotocols, the client's preference deciding.
    - ``select_subprotocol``: ``(connection, offered) -> str | None`` replaces that
      choice; it must return one of ``offered`` or ``None``.
    - ``compression``: ``"deflate"`` (default) accepts permessage-deflate offers
      (RFC 7692); ``None`` declines compression.
    - ``compression_threshold``: messages shorter than this many bytes are sent
      uncompressed; ``send(..., compress=...)`` decides for one message.
    - ``server_no_context_takeover``: compress each message afresh (RFC 7692 §7.1.1.1).
    - ``extensions``: more extensions to accept, after compression.
    - ``process_request``: ``(connection, request) -> Response | None``, called before
      the handshake is checked: a response returned is sent instead of upgrading.
    - ``process_response``: ``(connection, request, response) -> Response | None``,
      called with the 101 before it is sent; edit it or return another.
    - ``server_header``: value of the ``Server`` header; ``None`` leaves it out.
    - ``open_timeout``: seconds from the TCP accept to the end of the HTTP upgrade, TLS
      included.
    - ``max_size``: largest incoming message in bytes; ``None`` disables the limit.
    - ``broadcast_limit``: unsent bytes above which a connection is a slow consumer for
      a broadcast; ``None``: never.
    - ``slow_consumer``: what a broadcast does with a slow consumer: ``"skip"`` the
      message for it, or ``"close"`` it with 1013.
    - ``logger``: where the connections log; ``wsio.server`` if omitted.
    """

    ssl: Any
    origins: Sequence[Origin] | None
    subprotocols: Sequence[str] | None
    select_subprotocol: Callable[[Any, Sequence[str]], str | None] | None
    compression: str | None
    compression_threshold: int
    server_no_context_takeover: bool
    extensions: Sequence[ServerExtensionFactory]
    process_request: Callable[[Any, Request], Any] | None
    process_response: Callable[[Any, Request, Response], Any] | None
    server_header: str | None
    open_timeout: float | None
    max_size: int | None
    broadcast_limit: int | None
    slow_consumer: str
    logger: LoggerLike | None


class ServerSettings:
    """:class:`ServerOptions` checked and completed with their defaults: the core of each
    connection (:meth:`make_protocol`), what the I/O layer's connection takes
    (:attr:`connection_kwargs`), the hooks and the timeouts.

    :raises InvalidArgument: a limit or timeout out of range, a subprotocol that isn't a
        token, a ``server_header`` that can't be sent.
    :raises ValueError: an unknown compression.
    :raises TypeError: an option that ``serve`` doesn't take, or of the wrong type.
    """

    def __init__(self, options: dict[str, Any]) -> None:
        unknown = sorted(set(options) - ServerOptions.__optional_keys__)
        if unknown:
            raise TypeError(f"serve() got an unexpected keyword argument {unknown[0]!r}")
        self.connection_kwargs = connection_options(options)
        self.open_timeout: float | None
        self.open_timeout, max_size = opening_options(options)
        self.broadcast_limit: int | None = options.get("broadcast_limit", defaults.BROADCAST_LIMIT)
        self.slow_consumer: str = options.get("slow_consumer", defaults.SLOW_CONSUMER)
        if self.slow_consumer is None:
            raise InvalidArgument("slow_consumer must be 'skip' or 'close', not None")
        check_broadcast_policy(self.broadcast_limit, self.slow_consumer)
        self.ssl: Any = options.get("ssl")
        self.process_request = options.get("process_request")
        self.process_response = options.get("process_response")
        self.select_subprotocol = options.get("select_subprotocol")
        logger = options.get("logger")
        self.logger: LoggerLike = logger if logger is not None else _logger
        self._extensions = server_extensions(
            options.get("compression", defaults.COMPRESSION),
            options.get("compression_threshold", defaults.COMPRESSION_THRESHOLD),
            options.get("extensions", ()),
            options.get("server_no_context_takeover", False),
        )
        # Checked here as well as by each connection's core, or as each answer is built:
        # refused as the server is configured, not as each client arrives.
        subprotocols = options.get("subprotocols")
        check_subprotocols(subprotocols)
        server_header = options.get("server_header", defaults.SERVER_HEADER)
        if server_header is not None:
            Headers(Server=server_header)
        self._protocol_kwargs: dict[str, Any] = dict(
            origins=options.get("origins"),
            subprotocols=subprotocols,
            server_header=server_header,
            max_size=max_size,
        )

    @property
    def broadcast_policy(self) -> tuple[int | None, str]:
        """``broadcast_limit`` and ``slow_consumer``: what a broadcast applies to this
        server's connections unless told otherwise."""
        return self.broadcast_limit, self.slow_consumer

    def make_protocol(self, connection: Any) -> ServerProtocol:
        """The core of a new connection; ``select_subprotocol``, if any, is called with
        ``connection`` and held to returning one of the subprotocols offered or ``None``
        (RFC 6455 §4.2.2)."""
        protocol = ServerProtocol(
            extensions=self._extensions,
            hold_failures=True,
            logger=self.logger,
            **self._protocol_kwargs,
        )
        select = self.select_subprotocol
        if select is not None:

            def select_subprotocol(offered: Sequence[str]) -> str | None:
                chosen = select(connection, offered)
                if chosen is None or isinstance(chosen, str):
                    return chosen
                raise wrong_type("select_subprotocol", chosen, "a str or None")

            protocol.select_subprotocol = select_subprotocol
        return protocol


def answer_request(
    connection: Any, request: Request, settings: ServerSettings
) -> Generator[object, object, tuple[Response, bool]]:
    """Answer an opening handshake request: ``process_request`` may answer it, else the
    core checks it and ``process_response`` may then edit the 101.

    Yields what each hook returned; the I/O layer sends back what that resolves to (the
    asyncio layer awaits an awaitable, the threads layer takes the value as it is), which
    :func:`hook_answer` then checks. Returns the answer, and whether a hook gave it
    instead of upgrading (a health check or a challenge, not a failure).

    :raises TypeError: a hook returned something else than a :class:`Response` or
        ``None``; answer with :func:`failed_hook_answer`.
    """
    if settings.process_request is not None:
        answer = yield settings.process_request(connection, request)
        response = hook_answer("process_request", answer)
        if response is not None:
            return response, True
    response = connection.protocol.accept(request)
    if response.status_code == 101 and settings.process_response is not None:
        answer = yield settings.process_response(connection, request, response)
        edited = hook_answer("process_response", answer)
        if edited is not None:
            response = edited
    return response, False


def answer_request_now(
    connection: Any, request: Request, settings: ServerSettings
) -> tuple[Response, bool]:
    """:func:`answer_request` for hooks that are plain functions, as the threads layer
    calls them.

    :raises TypeError: a hook returned an awaitable, which no event loop would run, or
        something else than a :class:`Response` or ``None``.
    """
    steps = answer_request(connection, request, settings)
    answer: object = None  # what starts the generator
    while True:
        try:
            answer = steps.send(answer)
        except StopIteration as done:
            result: tuple[Response, bool] = done.value
            return result
        if inspect.isawaitable(answer):
            raise wrong_type("a hook of the threads server", answer, "a plain value")


def hook_answer(hook: str, answer: object) -> Response | None:
    """What a hook returned, held to a :class:`Response` or ``None``.

    :raises TypeError: anything else, such as the ``(status, headers, body)`` tuple of
        other libraries.
    """
    if answer is None or isinstance(answer, Response):
        return answer
    raise wrong_type(hook, answer, "a Response or None")


def wrong_type(hook: str, value: object, expected: str) -> TypeError:
    """The error for a hook that returned ``value`` instead of ``expected``."""
    close = getattr(value, "close", None)
    if inspect.isawaitable(value) and callable(close):
        close()  # never to be awaited: spare the "never awaited" warning
    return TypeError(f"{hook} returned {reprlib.repr(value)}, not {expected}")


def failed_hook_answer(protocol: ServerProtocol, exc: BaseException) -> Response:
    """The answer when a hook (or select_subprotocol) raised or returned something
    unusable: 500, and the error in the log, since that is a bug of the application."""
    protocol.logger.error("opening handshake failed in a hook: %s", exc, exc_info=exc)
    return protocol.reject(HTTPStatus.INTERNAL_SERVER_ERROR, _HOOK_FAILED)


def log_no_upgrade(
    protocol: ServerProtocol, response: Response | None, answered_by_hook: bool
) -> None:
    """Log why a connection ended without upgrading: routine for a hook's answer (a
    health check, an auth challenge), worth a line for a refused handshake."""
    if response is not None and answered_by_hook:
        protocol.logger.debug("answered HTTP %d without upgrading", response.status_code)
    elif protocol.handshake_exc is not None:
        protocol.logger.info("opening handshake failed: %s", protocol.handshake_exc)
    else:
        protocol.logger.debug("connection closed before the opening handshake was answered")
