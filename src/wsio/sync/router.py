"""``route()`` over threads: a server that dispatches connections by path; see
:mod:`wsio.routing`."""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import Any, Unpack

from ..protocol.http11 import Request
from ..routing import Router
from ..shared.serving import ServerOptions
from .server import Server, ServerConnection, serve

__all__ = ["route"]

#: A plain ``process_request`` hook of the threads server.
ProcessRequest = Callable[[ServerConnection, Request], Any]


def route(
    url_map: Router[None] | Mapping[str, Callable[..., None]],
    host: str | None = None,
    port: int | None = None,
    *,
    sock: socket.socket | None = None,
    reuse_port: bool = False,
    **options: Unpack[ServerOptions],
) -> Server:
    """Like :func:`~wsio.sync.serve`, with handlers chosen by request path: ``url_map``
    (a :class:`~wsio.routing.Router`, or the mapping to build one from) maps patterns
    such as ``"/chat/{room}"`` or ``"/user/{id:int}"`` to plain functions called as
    ``handler(connection, **params)`` in the connection's thread; a path that no pattern
    matches is answered 404. See :mod:`wsio.routing` for the patterns and how paths
    match them.

    ``process_request``, if given, runs first: a response it returns is sent, and the
    request is routed only when it returns ``None``. The match is then available to
    ``process_response`` and the handler as ``connection.route``.

    :raises InvalidArgument: a malformed pattern, or two that match the same paths.
    """
    router = url_map if isinstance(url_map, Router) else Router(url_map)
    first: ProcessRequest | None = options.get("process_request")

    def process_request(connection: ServerConnection, request: Request) -> Any:
        if first is not None:
            answer = first(connection, request)
            if answer is not None:
                # A Response, or something the server refuses as a hook's answer.
                return answer
        return router.process_request(connection, request)

    options["process_request"] = process_request
    return serve(router, host, port, sock=sock, reuse_port=reuse_port, **options)
