"""The ``compression=`` option of :func:`~wsio.connect` and :func:`~wsio.serve`."""

from __future__ import annotations

from collections.abc import Sequence

from ..protocol.arguments import check_count
from ..protocol.extensions import (
    ClientExtensionFactory,
    ClientPerMessageDeflateFactory,
    ServerExtensionFactory,
    ServerPerMessageDeflateFactory,
)

__all__ = ["client_extensions", "server_extensions"]


def _check(compression: str | None, threshold: int) -> None:
    """Refuse an unknown compression, and a threshold that isn't a size, even with no
    compression to apply it to: the mistake is the same.

    :raises ValueError: an unknown compression.
    :raises InvalidArgument: a negative threshold.
    :raises TypeError: a threshold that isn't an ``int``.
    """
    if compression not in ("deflate", None):
        raise ValueError(f"unsupported compression: {compression!r}; use 'deflate' or None")
    check_count("compression_threshold", threshold, 0)


def client_extensions(
    compression: str | None, threshold: int, extensions: Sequence[ClientExtensionFactory]
) -> list[ClientExtensionFactory]:
    """What a client offers: permessage-deflate, as browsers do, then ``extensions``."""
    _check(compression, threshold)
    factories: list[ClientExtensionFactory] = []
    if compression == "deflate":
        factories.append(ClientPerMessageDeflateFactory(compression_threshold=threshold))
    return [*factories, *extensions]


def server_extensions(
    compression: str | None,
    threshold: int,
    extensions: Sequence[ServerExtensionFactory],
    no_context_takeover: bool = False,
) -> list[ServerExtensionFactory]:
    """What a server accepts: permessage-deflate, then ``extensions``."""
    _check(compression, threshold)
    factories: list[ServerExtensionFactory] = []
    if compression == "deflate":
        factories.append(
            ServerPerMessageDeflateFactory(
                server_no_context_takeover=no_context_takeover,
                compression_threshold=threshold,
            )
        )
    return [*factories, *extensions]
