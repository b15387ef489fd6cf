"""HTTP Basic authentication for the opening handshake (RFC 7617)."""

from __future__ import annotations

import base64
import binascii

__all__ = ["basic_authorization", "basic_challenge", "parse_basic_authorization"]


def basic_authorization(username: str, password: str) -> str:
    """The ``Authorization`` value for these credentials (RFC 7617 §2, UTF-8 as in §2.1)."""
    if ":" in username:
        raise ValueError("a Basic username can't contain ':'")
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def parse_basic_authorization(value: str) -> tuple[str, str]:
    """Username and password from an ``Authorization: Basic ...`` value.

    :raises ValueError: another scheme, or credentials that aren't base64 of
        ``user:password`` in UTF-8.
    """
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic":
        raise ValueError(f"unsupported authorization scheme: {scheme}")
    try:
        decoded = base64.b64decode(token.strip().encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("invalid Basic credentials") from exc
    username, colon, password = decoded.partition(":")
    if not colon:
        raise ValueError("invalid Basic credentials: no ':'")
    return username, password


def basic_challenge(realm: str) -> str:
    """The ``WWW-Authenticate`` value asking for Basic credentials (RFC 7617 §2)."""
    escaped = realm.replace("\\", "\\\\").replace('"', '\\"')
    return f'Basic realm="{escaped}", charset="UTF-8"'
