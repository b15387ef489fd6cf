"""HTTP Basic authentication of the opening handshake (RFC 7617), as a ``process_request``
hook that both I/O layers' servers take."""

from __future__ import annotations

import hmac
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable
from http import HTTPStatus
from typing import Any

from ..protocol.auth import basic_challenge, parse_basic_authorization
from ..protocol.http11 import MultipleValuesError, Request, Response

__all__ = ["basic_auth"]

CheckCredentials = Callable[[str, str], "bool | Awaitable[bool]"]
ProcessRequest = Callable[[Any, Request], "Response | Awaitable[Response | None] | None"]


def basic_auth(
    realm: str = "",
    credentials: tuple[str, str] | Iterable[tuple[str, str]] | None = None,
    check_credentials: CheckCredentials | None = None,
) -> ProcessRequest:
    """A ``process_request`` hook that requires HTTP Basic authentication (RFC 7617).

    Give either ``credentials`` -- one ``(username, password)`` pair or several -- compared
    in constant time, or ``check_credentials(username, password)``. Requests without valid
    credentials get 401 with a ``WWW-Authenticate`` challenge; on success,
    ``connection.username`` is set.

    The hook is a plain function, for the servers of both :mod:`wsio` (asyncio) and
    :mod:`wsio.sync`. A ``check_credentials`` that returns an awaitable makes it return
    one too, which only the asyncio server awaits (the threads server answers 500).
    """
    if (credentials is None) == (check_credentials is None):
        raise TypeError("provide either credentials or check_credentials")
    if credentials is not None:
        pairs: list[Any] = [credentials] if _is_credential_pair(credentials) else list(credentials)
        if not all(_is_credential_pair(pair) for pair in pairs):
            raise TypeError("credentials must be (username, password) pairs of strings")
        expected = {username.encode(): password.encode() for username, password in pairs}

        def check_known(username: str, password: str) -> bool:
            # The password is compared even for an unknown user, in constant time, so that
            # timing tells nothing about which users exist or how much of a password fits.
            known = expected.get(username.encode())
            matches = hmac.compare_digest(known or b"\x00" * 32, password.encode())
            return known is not None and matches

        check_credentials = check_known

    check = check_credentials
    assert check is not None

    def challenge(connection: Any, text: str) -> Response:
        """401, challenging the client to authenticate (RFC 7617 §2)."""
        response: Response = connection.respond(HTTPStatus.UNAUTHORIZED, text)
        response.headers["WWW-Authenticate"] = basic_challenge(realm)
        return response

    def conclude(connection: Any, username: str, valid: object) -> Response | None:
        if valid is not True and valid is not False:
            # Anything else, a coroutine that no loop will run above all, is truthy: it
            # must not let the client in.
            raise TypeError(f"check_credentials returned {type(valid).__name__}, not a bool")
        if not valid:
            return challenge(connection, "Invalid credentials\n")
        connection.username = username
        return None

    async def conclude_later(
        connection: Any, username: str, valid: Awaitable[object]
    ) -> Response | None:
        return conclude(connection, username, await valid)

    def defer(connection: Any, username: str, valid: Awaitable[object]) -> _Deferred:
        return _Deferred(conclude_later(connection, username, valid), valid)

    def process_request(
        connection: Any, request: Request
    ) -> Response | Awaitable[Response | None] | None:
        try:
            authorization = request.headers["Authorization"]
        except KeyError:
            return challenge(connection, "Missing credentials\n")
        except MultipleValuesError:
            too_many: Response = connection.respond(
                HTTPStatus.BAD_REQUEST, "Too many credentials\n"
            )
            return too_many
        try:
            username, password = parse_basic_authorization(authorization)
        except ValueError:
            return challenge(connection, "Unsupported credentials\n")
        valid = check(username, password)
        if inspect.isawaitable(valid):
            return defer(connection, username, valid)
        return conclude(connection, username, valid)

    return process_request


class _Deferred:
    """The hook's answer once ``check_credentials`` returned an awaitable: awaiting it
    concludes. A server that can't await closes it, and the check with it, so that
    neither is left "never awaited"."""

    def __init__(
        self, conclusion: Coroutine[Any, Any, Response | None], check: Awaitable[object]
    ) -> None:
        self._conclusion = conclusion
        self._check = check

    def __await__(self) -> Generator[Any, None, Response | None]:
        return self._conclusion.__await__()

    def close(self) -> None:
        self._conclusion.close()
        if inspect.iscoroutine(self._check):
            self._check.close()


def _is_credential_pair(value: object) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(item, str) for item in value)
    )
