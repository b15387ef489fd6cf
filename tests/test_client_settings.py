"""ClientSettings.of: the options of ``connect`` checked once for the same arguments."""

from __future__ import annotations

import logging
import ssl
from typing import Any

import pytest

import wsio
from wsio.protocol.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from wsio.shared.opening import ClientSettings

URI = "ws://127.0.0.1:8765/"


def test_same_arguments_share_settings() -> None:
    options: dict[str, Any] = {"compression": None, "max_size": 2**20, "proxy": None}
    assert ClientSettings.of(URI, options) is ClientSettings.of(URI, dict(options))


@pytest.mark.parametrize(
    "options",
    [
        {"subprotocols": ("chat", "superchat"), "origin": "https://example.com"},
        {"logger": logging.getLogger("test"), "user_agent_header": None},
        {"ssl": None, "open_timeout": 3.5, "extensions": ()},
    ],
)
def test_fixed_values_are_cached(options: dict[str, Any]) -> None:
    assert ClientSettings.of(URI, options) is ClientSettings.of(URI, dict(options))


def test_other_arguments_get_other_settings() -> None:
    first = ClientSettings.of(URI, {"max_size": 2**20})
    assert ClientSettings.of(URI, {"max_size": 2**21}) is not first
    assert ClientSettings.of("ws://127.0.0.1:8766/", {"max_size": 2**20}) is not first


@pytest.mark.parametrize(
    "options",
    [
        {"subprotocols": ["chat"]},
        {"additional_headers": {"X-Test": "1"}},
        {"additional_headers": iter([("X-Test", "1")])},
        {"extensions": [ClientPerMessageDeflateFactory()]},
    ],
)
def test_values_that_may_change_are_not_cached(options: dict[str, Any]) -> None:
    assert ClientSettings.of(URI, options) is not ClientSettings.of(URI, options)


def test_a_value_equal_to_a_valid_one_is_still_checked() -> None:
    # True == 1 and hash(True) == hash(1): the type is part of what is remembered.
    ClientSettings.of(URI, {"max_size": 1})
    with pytest.raises(TypeError):
        ClientSettings.of(URI, {"max_size": True})


def test_an_invalid_option_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(wsio.InvalidArgument):
            ClientSettings.of(URI, {"subprotocols": ("not a token",)})


def test_ssl_context_is_kept_by_reference() -> None:
    context = ssl.create_default_context()
    settings = ClientSettings.of("wss://127.0.0.1:8765/", {"ssl": context})
    assert settings is ClientSettings.of("wss://127.0.0.1:8765/", {"ssl": context})
    assert settings.ssl is context
    other = ssl.create_default_context()
    assert ClientSettings.of("wss://127.0.0.1:8765/", {"ssl": other}).ssl is other


def test_cache_is_bounded() -> None:
    from wsio.shared import opening

    for port in range(1, 3 * opening._SETTINGS_CACHE_SIZE):
        ClientSettings.of(f"ws://127.0.0.1:{port}/", {})
    assert len(opening._settings_cache) <= opening._SETTINGS_CACHE_SIZE
