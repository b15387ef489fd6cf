"""The ``Sec-WebSocket-Extensions`` header (RFC 6455 §9.1, §11.3.2).

Parsing is a single left-to-right scan, so a hostile header costs time linear in its
length; optional whitespace and quoted values are accepted wherever the grammar allows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from ...exceptions import InvalidHeaderFormat
from .base import ExtensionParameter

__all__ = ["build_extensions", "parse_extensions"]

_NAME = "Sec-WebSocket-Extensions"
_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_OWS = re.compile(r"[ \t]*")
_QUOTED = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\t -~])*)"')
_UNESCAPE = re.compile(r"\\(.)")


def _token(header: str, pos: int) -> tuple[str, int]:
    match = _TOKEN.match(header, pos)
    if match is None:
        raise InvalidHeaderFormat(_NAME, "expected token", header, pos)
    return match.group(), match.end()


def _ows(header: str, pos: int) -> int:
    match = _OWS.match(header, pos)
    assert match is not None  # it matches the empty string
    return match.end()


def _value(header: str, pos: int) -> tuple[str, int]:
    """A parameter value: a token, or a quoted string whose content is a token (§9.1)."""
    if header.startswith('"', pos):
        match = _QUOTED.match(header, pos)
        if match is None:
            raise InvalidHeaderFormat(_NAME, "invalid quoted string", header, pos)
        value = _UNESCAPE.sub(r"\1", match.group(1))
        if not _TOKEN.fullmatch(value):
            raise InvalidHeaderFormat(_NAME, "quoted value isn't a token", header, pos)
        return value, match.end()
    return _token(header, pos)


def parse_extensions(values: Iterable[str]) -> list[tuple[str, list[ExtensionParameter]]]:
    """Parse every ``Sec-WebSocket-Extensions`` value into (name, parameters), in order.

    :raises InvalidHeaderFormat: the header doesn't follow the grammar.
    """
    extensions: list[tuple[str, list[ExtensionParameter]]] = []
    for header in values:
        pos, end = 0, len(header)
        # 1#extension: a value needs one extension at least (RFC 6455 §9.1).
        if not header.strip(" \t,"):
            raise InvalidHeaderFormat(_NAME, "expected extension", header, 0)
        while True:
            pos = _ows(header, pos)
            # Empty list elements (",,") are allowed (RFC 9110 §5.6.1).
            if pos < end and header[pos] == ",":
                pos += 1
                continue
            if pos >= end:
                break
            name, pos = _token(header, pos)
            parameters: list[ExtensionParameter] = []
            pos = _ows(header, pos)
            while pos < end and header[pos] == ";":
                pos = _ows(header, pos + 1)
                parameter, pos = _token(header, pos)
                pos = _ows(header, pos)
                value = None
                if pos < end and header[pos] == "=":
                    value, pos = _value(header, _ows(header, pos + 1))
                    pos = _ows(header, pos)
                parameters.append((parameter, value))
            extensions.append((name, parameters))
            if pos < end:
                if header[pos] != ",":
                    raise InvalidHeaderFormat(_NAME, "expected comma", header, pos)
                pos += 1
    return extensions


def build_extensions(extensions: Sequence[tuple[str, Sequence[ExtensionParameter]]]) -> str:
    """The header value for these extensions and parameters."""
    return ", ".join(
        "; ".join([name, *(p if v is None else f"{p}={v}" for p, v in parameters)])
        for name, parameters in extensions
    )
