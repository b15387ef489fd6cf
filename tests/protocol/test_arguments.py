"""Checks of configured limits and timeouts, and the core refusing a bad ``max_size`` or
bad subprotocols as it is made."""

from __future__ import annotations

import math
from typing import Any

import pytest

from wsio.exceptions import InvalidArgument
from wsio.protocol.arguments import check_count, check_max_size, check_timeout
from wsio.protocol.connection import ClientProtocol, Protocol, ServerProtocol, Side
from wsio.protocol.uri import parse_uri

NOT_INTS = [None, 1.0, "1", (1, 2), [1], True, False]


@pytest.mark.parametrize("value", [1, 2, 2**40])
def test_check_count_accepts_ints_from_the_minimum(value: int) -> None:
    check_count("n", value, 1)


@pytest.mark.parametrize("value", NOT_INTS)
def test_check_count_refuses_other_types(value: Any) -> None:
    with pytest.raises(TypeError, match=r"^n must be an int, not \w+$"):
        check_count("n", value, 1)


@pytest.mark.parametrize("value", [0, -1])
def test_check_count_refuses_values_below_the_minimum(value: int) -> None:
    with pytest.raises(InvalidArgument, match=f"^n must be at least 1, not {value}$"):
        check_count("n", value, 1)


def test_check_count_with_none_allowed() -> None:
    check_count("n", None, 0, "no limit")
    with pytest.raises(InvalidArgument, match=r"^n must be at least 0, or None for no limit"):
        check_count("n", -1, 0, "no limit")
    with pytest.raises(TypeError, match=r"^n must be an int, or None for no limit, not str"):
        check_count("n", "", 0, "no limit")


@pytest.mark.parametrize("value", [None, 1, 2**40])
def test_check_max_size_accepts(value: int | None) -> None:
    check_max_size(value)


def test_check_max_size_refuses_zero_and_points_to_none() -> None:
    """0 isn't "no limit" here, as it is in some libraries: ``None`` is."""
    with pytest.raises(InvalidArgument, match="max_size must be at least 1, or None for no limit"):
        check_max_size(0)


@pytest.mark.parametrize("value", [None, 0.001, 1, 20.0, 1e9])
def test_check_timeout_accepts(value: float | None) -> None:
    check_timeout("t", value)


@pytest.mark.parametrize("value", [0, 0.0, -1, -0.5, math.inf, -math.inf, math.nan])
def test_check_timeout_refuses_out_of_range(value: float) -> None:
    with pytest.raises(InvalidArgument, match=r"^t must be a finite number of seconds above 0"):
        check_timeout("t", value)


@pytest.mark.parametrize("value", ["1", (1, 2), True, False, [1.0]])
def test_check_timeout_refuses_other_types(value: Any) -> None:
    with pytest.raises(TypeError, match=r"^t must be a number of seconds or None"):
        check_timeout("t", value)


# The core: wsio.asgi and other integrations make it directly.


def make_client(**kwargs: Any) -> ClientProtocol:
    return ClientProtocol(parse_uri("ws://example.com/"), **kwargs)


MAKERS = [lambda **kwargs: Protocol(Side.SERVER, **kwargs), make_client, ServerProtocol]


@pytest.mark.parametrize("make", MAKERS, ids=["protocol", "client", "server"])
@pytest.mark.parametrize("max_size", [(1, 2), True, 1.5, "1024"])
def test_core_refuses_max_size_of_another_type(make: Any, max_size: Any) -> None:
    """Refused where given: taken, it would fail only at the first frame, where the core
    compares it with a length."""
    with pytest.raises(TypeError, match="max_size must be an int"):
        make(max_size=max_size)


@pytest.mark.parametrize("make", MAKERS, ids=["protocol", "client", "server"])
@pytest.mark.parametrize("max_size", [0, -1])
def test_core_refuses_max_size_below_one(make: Any, max_size: int) -> None:
    with pytest.raises(InvalidArgument, match="max_size"):
        make(max_size=max_size)


@pytest.mark.parametrize("make", MAKERS, ids=["protocol", "client", "server"])
@pytest.mark.parametrize("max_size", [1, None])
def test_core_accepts_max_size(make: Any, max_size: int | None) -> None:
    assert make(max_size=max_size).max_size == max_size


@pytest.mark.parametrize("protocol", ["a b", "chat,x", "", "a/b", "caf\u00e9", "x\r\n"])
def test_server_refuses_a_subprotocol_that_isnt_a_token(protocol: str) -> None:
    """No client could offer it (RFC 6455 §4.1 item 10): the same check as the client's."""
    with pytest.raises(InvalidArgument, match="subprotocol isn't a token"):
        ServerProtocol(subprotocols=["chat", protocol])


@pytest.mark.parametrize(
    ("subprotocols", "message"),
    [
        # A string is a sequence of one-letter subprotocols: never what is meant.
        ("chat", r"subprotocols must be a sequence of str, not a str: \['chat'\]"),
        ([b"chat"], "subprotocol must be a str, not bytes"),
    ],
)
def test_subprotocols_of_another_type_are_refused(subprotocols: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        ServerProtocol(subprotocols=subprotocols)
    with pytest.raises(TypeError, match=message):
        make_client(subprotocols=subprotocols).connect()
