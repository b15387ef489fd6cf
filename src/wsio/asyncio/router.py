"""``route()``: a server that dispatches connections by path; see :mod:`wsio.routing`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from ..routing import Router, routing_hook
from .server import ProcessRequest, serve

__all__ = ["route"]


def route(
    url_map: Router[Awaitable[None]] | Mapping[str, Callable[..., Awaitable[None]]],
    host: str | Sequence[str] | None = None,
    port: int | None = None,
    *,
    process_request: ProcessRequest | None = None,
    **serve_kwargs: Any,
) -> serve:
    """Like :func:`~wsio.serve`, with handlers chosen by request path: ``url_map`` (a
    :class:`~wsio.routing.Router`, or the mapping to build one from) maps patterns such
    as ``"/chat/{room}"`` or ``"/user/{id:int}"`` to coroutine functions called as
    ``handler(connection, **params)``; a path that no pattern matches is answered 404.
    See :mod:`wsio.routing` for the patterns and how paths match them.

    ``process_request``, if given, runs first: a response it returns is sent, and the
    request is routed only when it returns ``None``. The match is then available to
    ``process_response`` and the handler as ``connection.route``.

    :raises InvalidArgument: a malformed pattern, or two that match the same paths.
    """
    router = url_map if isinstance(url_map, Router) else Router(url_map)
    hook = routing_hook(router, process_request)
    return serve(router, host, port, process_request=hook, **serve_kwargs)
