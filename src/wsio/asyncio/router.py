"""``route()``: a server that dispatches connections by path; see :mod:`wsio.routing`."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from ..protocol.http11 import Request, Response
from ..routing import Router
from .server import ProcessRequest, ServerConnection, serve

__all__ = ["route"]


def route(
    url_map: Mapping[str, Callable[..., Awaitable[None]]],
    host: str | Sequence[str] | None = None,
    port: int | None = None,
    *,
    process_request: ProcessRequest | None = None,
    **serve_kwargs: Any,
) -> serve:
    """Like :func:`~wsio.serve`, with handlers chosen by request path: ``url_map`` maps
    patterns such as ``"/chat/{room}"`` or ``"/user/{id:int}"`` to coroutine functions
    called as ``handler(connection, **params)``; a path that no pattern matches is
    answered 404. See :mod:`wsio.routing` for the patterns and how paths match them.

    ``process_request``, if given, runs first: a response it returns is sent, and the
    request is routed only when it returns ``None``. The match is then available to
    ``process_response`` and the handler as ``connection.route``.

    :raises InvalidArgument: a malformed pattern, or two that match the same paths.
    """
    router = Router(url_map)
    hook: ProcessRequest = router.process_request
    if process_request is not None:
        first = process_request

        def hook(
            connection: ServerConnection, request: Request
        ) -> Response | Awaitable[Response | None] | None:
            answer = first(connection, request)
            if inspect.isawaitable(answer):
                # Awaited only when the user's hook is a coroutine: a plain one keeps the
                # answer on the server's path where nothing awaits.
                return _route_after(answer, router, connection, request)
            if answer is not None:
                return answer
            return router.process_request(connection, request)

    return serve(router, host, port, process_request=hook, **serve_kwargs)


async def _route_after(
    answer: Awaitable[Response | None],
    router: Router[Awaitable[None]],
    connection: ServerConnection,
    request: Request,
) -> Response | None:
    response = await answer
    if response is not None:
        return response
    return router.process_request(connection, request)
