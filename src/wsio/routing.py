"""Routing of WebSocket connections by request path, without a web framework.

A :class:`Router` maps path patterns to handlers. It does no I/O and knows no event loop:
its ``process_request`` hook answers 404 when no pattern matches and otherwise records
the match on the connection, and calling the router with the connection calls the
handler and returns what it returns -- a coroutine for an asyncio handler, ``None`` for
a plain function. So one router serves any I/O layer; :func:`wsio.route` runs one on
asyncio.

Patterns
--------

A pattern is a path whose segments are literal text or parameters in braces::

    "/"                   the root only
    "/chat/{room}"        a parameter is one whole segment, passed as a str
    "/user/{id:int}"      ASCII digits, passed as an int
    "/files/{rest:path}"  every segment to the end, slashes included, passed as a str

Matching follows the path as the client wrote it, with these rules:

- The query string is not part of the path: ``/chat/a?x=1`` matches ``/chat/{room}``.
- The path is split at its slashes first, then each segment is percent-decoded (as
  UTF-8; a segment that isn't never matches). So ``%2F`` is a character of a segment,
  not a separator: ``/chat/a%2Fb`` gives ``room="a/b"``, and literal text in a pattern
  is written decoded (``"/café"`` matches ``/caf%C3%A9``).
- A trailing slash is significant: ``/chat`` and ``/chat/`` are different paths and
  each matches only a pattern written the same way. Browsers don't follow redirects in
  a WebSocket handshake, so redirecting one form to the other wouldn't help them, and
  accepting both silently would give one endpoint two URLs; the 404 names the other
  form when it would have matched, which is what a mistyped client needs to know.
- A path with an empty segment (``//``) or a dot segment (``.`` or ``..``, encoded or
  not) matches nothing: clients remove dot segments before sending (RFC 3986 §5.2.4),
  and a parameter that could hold ``..`` would invite path traversal in handlers that
  open files.
- When several patterns match, the most specific wins, segment by segment from the
  left: literal text, then ``int``, then a one-segment parameter, then ``path``.
  Patterns that match exactly the same paths -- the same pattern, or one that differs
  only in parameter names -- are refused when the router is built, as are malformed
  patterns.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import quote, unquote

from .exceptions import InvalidArgument, InvalidState
from .protocol.http11 import Request, Response

__all__ = ["Match", "RoutedConnection", "Router", "routing_hook"]

_R = TypeVar("_R")

#: Attribute of the connection where ``Router.process_request`` records the match.
_MATCH_ATTRIBUTE = "route"

# Rank of each kind of segment: lower is more specific.
_LITERAL, _INT, _SEGMENT, _PATH = range(4)
_CONVERTERS = {"int": _INT, "str": _SEGMENT, "path": _PATH}
_PARAMETER = re.compile(r"\{([^{}:]*)(?::([^{}]*))?\}")
_DIGITS = re.compile(r"[0-9]+")


class RoutedConnection(Protocol):
    """What routing needs of a server connection: a way to answer 404."""

    def respond(self, status: HTTPStatus | int, text: str) -> Response: ...


# Match and _Route are plain classes: a dataclass costs a millisecond to build at import.


class Match(Generic[_R]):
    """The route a request matched: its pattern, its handler and the parameters."""

    __slots__ = ("handler", "params", "pattern")

    def __init__(self, pattern: str, handler: Callable[..., _R], params: dict[str, Any]) -> None:
        self.pattern = pattern
        self.handler = handler
        self.params = params

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Match):
            return NotImplemented
        return (self.pattern, self.handler, self.params) == (
            other.pattern,
            other.handler,
            other.params,
        )

    __hash__ = None  # type: ignore[assignment]  # params is a dict

    def __repr__(self) -> str:
        return f"Match({self.pattern!r}, {self.handler!r}, {self.params!r})"


class _Route(Generic[_R]):
    __slots__ = ("handler", "pattern", "segments")

    def __init__(
        self, pattern: str, handler: Callable[..., _R], segments: tuple[tuple[int, str], ...]
    ) -> None:
        self.pattern = pattern
        self.handler = handler
        # (rank, text): the literal text, or the parameter name.
        self.segments = segments

    @property
    def ranks(self) -> tuple[int, ...]:
        return tuple(rank for rank, _ in self.segments)

    @property
    def shape(self) -> tuple[tuple[int, str], ...]:
        """The segments without parameter names, which don't change what matches."""
        return tuple((rank, text if rank == _LITERAL else "") for rank, text in self.segments)

    def match(self, segments: list[str]) -> dict[str, Any] | None:
        """The parameters when the decoded ``segments`` match, else ``None``."""
        params: dict[str, Any] = {}
        for index, (rank, text) in enumerate(self.segments):
            if rank == _PATH:
                rest = segments[index:]
                if not rest or rest == [""]:
                    return None
                params[text] = "/".join(rest)
                return params
            if index >= len(segments):
                return None
            segment = segments[index]
            if rank == _LITERAL:
                if segment != text:
                    return None
            elif rank == _INT:
                if not _DIGITS.fullmatch(segment):
                    return None
                params[text] = int(segment)
            elif segment:
                params[text] = segment
            else:
                return None
        return params if len(segments) == len(self.segments) else None


def _compile(pattern: str, handler: Callable[..., _R]) -> _Route[_R]:
    """The route of ``pattern``.

    :raises InvalidArgument: a pattern that doesn't start with ``/``, has a query or a
        fragment, an empty or dot segment, a parameter that isn't a whole segment, an
        unknown converter, a parameter name that isn't an identifier or is repeated or
        is ``connection`` (the handler's first argument), or a ``path`` parameter
        before the end.
    """
    if not isinstance(pattern, str) or not pattern.startswith("/"):
        raise InvalidArgument(f"route pattern must start with '/': {pattern!r}")
    if "?" in pattern or "#" in pattern:
        raise InvalidArgument(f"route pattern has a query or fragment: {pattern!r}")
    if not callable(handler):
        raise InvalidArgument(f"handler of route {pattern!r} isn't callable: {handler!r}")
    texts = pattern[1:].split("/")
    segments: list[tuple[int, str]] = []
    names: set[str] = set()
    for index, text in enumerate(texts):
        parameter = _PARAMETER.fullmatch(text)
        if parameter is None:
            if "{" in text or "}" in text:
                raise InvalidArgument(
                    f"a route parameter must be a whole segment: {text!r} in {pattern!r}"
                )
            # The root's single empty segment and a trailing slash are the only empty ones.
            if (not text and index < len(texts) - 1) or text in (".", ".."):
                raise InvalidArgument(f"empty or dot segment in route pattern {pattern!r}")
            segments.append((_LITERAL, text))
            continue
        name, converter = parameter.group(1), parameter.group(2)
        if not name.isidentifier() or name == "connection" or name in names:
            raise InvalidArgument(
                f"route parameter name must be a new identifier other than 'connection': "
                f"{name!r} in {pattern!r}"
            )
        rank = _SEGMENT if converter is None else _CONVERTERS.get(converter)
        if rank is None:
            raise InvalidArgument(
                f"unknown route converter {converter!r} in {pattern!r}: use int, str or path"
            )
        if rank == _PATH and index != len(texts) - 1:
            raise InvalidArgument(f"a path parameter must end the route pattern: {pattern!r}")
        names.add(name)
        segments.append((rank, name))
    return _Route(pattern, handler, tuple(segments))


def _segments(path: str) -> list[str] | None:
    """The decoded segments of the path of request target ``path``, or ``None`` when it
    can't match any route (see the module)."""
    raw_segments = path.partition("?")[0][1:].split("/")
    last = len(raw_segments) - 1
    segments = []
    for index, raw in enumerate(raw_segments):
        try:
            segment = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            return None
        # Only the last segment may be empty: the root, or after a trailing slash.
        if segment in (".", "..") or (not segment and index < last):
            return None
        segments.append(segment)
    return segments


class Router(Generic[_R]):
    """Routes connections to handlers by request path; see the module for patterns.

    ``url_map`` maps each pattern to its handler, called as ``handler(connection,
    **params)``: pass :meth:`process_request` as the server's ``process_request`` hook
    and the router itself as its handler, as :func:`wsio.route` does.

    :raises InvalidArgument: a malformed pattern, or two patterns that match the same
        paths.
    """

    __slots__ = ("_by_pattern", "_literal", "_routes")

    def __init__(self, url_map: Mapping[str, Callable[..., _R]]) -> None:
        routes = [_compile(pattern, handler) for pattern, handler in url_map.items()]
        shapes: dict[tuple[tuple[int, str], ...], str] = {}
        for route in routes:
            other = shapes.setdefault(route.shape, route.pattern)
            if other != route.pattern:
                raise InvalidArgument(
                    f"route patterns {other!r} and {route.pattern!r} match the same paths"
                )
        self._by_pattern = {route.pattern: route for route in routes}
        # Patterns without parameters, by decoded segments (a decoded segment may hold a
        # slash, so they aren't joined): one dict lookup for the commonest case.
        self._literal = {
            tuple(text for _, text in route.segments): route
            for route in routes
            if set(route.ranks) == {_LITERAL}
        }
        # The others, most specific first; sorted() is stable, so ties keep their order.
        self._routes = sorted(
            (route for route in routes if set(route.ranks) != {_LITERAL}),
            key=lambda route: route.ranks,
        )

    def match(self, path: str) -> Match[_R] | None:
        """The route that request target ``path`` (path and query) matches, if any."""
        segments = _segments(path)
        if segments is None:
            return None
        route = self._literal.get(tuple(segments))
        if route is not None:
            return Match(route.pattern, route.handler, {})
        for route in self._routes:
            params = route.match(segments)
            if params is not None:
                return Match(route.pattern, route.handler, params)
        return None

    def process_request(self, connection: RoutedConnection, request: Request) -> Response | None:
        """A ``process_request`` hook: 404 when no route matches ``request.path``, else
        ``None`` after recording the :class:`Match` as ``connection.route``."""
        match = self.match(request.path)
        if match is None:
            return connection.respond(HTTPStatus.NOT_FOUND, self._not_found(request.path))
        vars(connection)[_MATCH_ATTRIBUTE] = match
        return None

    def _not_found(self, path: str) -> str:
        """The text of the 404: the other form of the path when it has a route."""
        path = path.partition("?")[0]
        other = path[:-1] if path.endswith("/") else path + "/"
        if other and self.match(other) is not None:
            return f"Not Found: did you mean {other} ?\n"
        return "Not Found\n"

    def __call__(self, connection: object) -> _R:
        """Call the handler of the route recorded on ``connection`` by
        :meth:`process_request` and return what it returns.

        :raises InvalidState: no route was recorded: the server doesn't run
            :meth:`process_request`.
        """
        match: Match[_R] | None = vars(connection).get(_MATCH_ATTRIBUTE)
        if match is None:
            raise InvalidState(
                "no route recorded on the connection: pass router.process_request as "
                "the server's process_request, or use wsio.route"
            )
        return match.handler(connection, **match.params)

    def path(self, pattern: str, /, **params: Any) -> str:
        """The path that route ``pattern`` matches with ``params``, percent-encoded:
        ``router.path("/user/{id:int}", id=7) == "/user/7"``.

        :raises InvalidArgument: no such pattern, missing or unknown parameters, or a
            value the pattern can't match.
        """
        route = self._by_pattern.get(pattern)
        if route is None:
            raise InvalidArgument(f"no route pattern {pattern!r}")
        names = {text for rank, text in route.segments if rank != _LITERAL}
        if names != params.keys():
            raise InvalidArgument(
                f"route {pattern!r} takes parameters {sorted(names)}, not {sorted(params)}"
            )
        parts = []
        for rank, text in route.segments:
            if rank == _LITERAL:
                parts.append(quote(text, safe=""))
                continue
            value = params[text]
            if rank == _INT:
                if type(value) is not int or value < 0:
                    raise InvalidArgument(f"{text} must be a non-negative int, not {value!r}")
                parts.append(str(value))
                continue
            pieces = value.split("/") if rank == _PATH and isinstance(value, str) else [value]
            if not all(isinstance(piece, str) for piece in pieces) or any(
                piece in ("", ".", "..") for piece in pieces
            ):
                raise InvalidArgument(f"{text} can't be matched by {pattern!r}: {value!r}")
            parts.append("/".join(quote(piece, safe="") for piece in pieces))
        return "/" + "/".join(parts)


def routing_hook(
    router: Router[Any], first: Callable[[Any, Request], Any] | None = None
) -> Callable[[Any, Request], Any]:
    """The ``process_request`` hook of a server that routes by path, for both I/O layers:
    ``first``, the application's own hook, if any, then ``router``.

    A response that ``first`` returns is the answer; ``None`` lets the router answer. An
    awaitable from ``first`` makes the hook return one too, awaited by the asyncio
    server only: a plain ``first`` keeps the answer where nothing awaits.
    """
    if first is None:
        return router.process_request
    own = first

    def process_request(connection: Any, request: Request) -> Any:
        answer = own(connection, request)
        if inspect.isawaitable(answer):
            return _route_after(answer, router, connection, request)
        if answer is not None:
            # A Response, or something the server refuses as a hook's answer.
            return answer
        return router.process_request(connection, request)

    return process_request


async def _route_after(
    answer: Awaitable[Any], router: Router[Any], connection: Any, request: Request
) -> Any:
    response = await answer
    if response is not None:
        return response
    return router.process_request(connection, request)
