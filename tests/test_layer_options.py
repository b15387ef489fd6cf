"""Both I/O layers take the same options: the asyncio layer's explicit signatures and the
threads layer's ``**options`` are checked against the one list of each
(:class:`~wsio.shared.opening.ClientOptions`, :class:`~wsio.shared.serving.ServerOptions`)."""

from __future__ import annotations

import inspect

import pytest

import wsio
from wsio.shared.opening import ClientOptions
from wsio.shared.serving import ServerOptions


@pytest.mark.parametrize(
    ("opener", "options"),
    [
        (wsio.connect, ClientOptions),
        (wsio.unix_connect, ClientOptions),
        (wsio.serve, ServerOptions),
        (wsio.unix_serve, ServerOptions),
    ],
    ids=["connect", "unix_connect", "serve", "unix_serve"],
)
def test_asyncio_signature_has_every_shared_option(opener: type, options: type) -> None:
    # unix_* take **kwargs and pass them on to connect/serve: check what they reach.
    target = opener.__mro__[1] if opener.__name__.startswith("unix_") else opener
    parameters = inspect.signature(target).parameters
    missing = sorted(options.__optional_keys__ - set(parameters))  # type: ignore[attr-defined]
    assert not missing
