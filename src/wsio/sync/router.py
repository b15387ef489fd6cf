"""``route()`` over threads: a server that dispatches connections by path; see
:mod:`wsio.routing`."""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import Unpack

from ..routing import Router, routing_hook
from ..shared.serving import ServerOptions
from .server import Server, serve

__all__ = ["route"]


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
    options["process_request"] = routing_hook(router, options.get("process_request"))
    return serve(router, host, port, sock=sock, reuse_port=reuse_port, **options)
