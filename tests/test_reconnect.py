"""wsio.reconnect: the backoff, the transient-or-fatal decision and the reconnection state,
all without I/O: deterministic with a stub for randomness."""

from __future__ import annotations

import itertools
import logging
import ssl
from collections.abc import Iterator, Sequence

import pytest

from wsio import defaults
from wsio.exceptions import (
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidHeader,
    InvalidMessage,
    InvalidProxyMessage,
    InvalidProxyStatus,
    InvalidStatus,
    InvalidURI,
    NegotiationError,
    SecurityError,
)
from wsio.protocol.frames import Close
from wsio.protocol.http11 import Headers, Response
from wsio.reconnect import Backoff, Reconnection, process_exception, retry_after


def response(status: int, headers: Sequence[tuple[str, str]] = ()) -> Response:
    return Response(status, "", Headers(headers), b"")


def take(delays: Iterator[float], count: int) -> list[float]:
    return list(itertools.islice(delays, count))


# Backoff -----------------------------------------------------------------------------------------


def test_defaults_come_from_defaults_module() -> None:
    backoff = Backoff()
    assert (backoff.initial_delay, backoff.factor, backoff.max_delay, backoff.jitter) == (
        defaults.BACKOFF_INITIAL_DELAY,
        defaults.BACKOFF_FACTOR,
        defaults.BACKOFF_MAX_DELAY,
        defaults.BACKOFF_JITTER,
    )


def test_delays_grow_by_factor_up_to_max_without_jitter() -> None:
    backoff = Backoff(initial_delay=1.0, factor=2.0, max_delay=10.0, jitter=0.0)
    assert take(backoff.delays(), 7) == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_jitter_draws_that_fraction_of_each_pause() -> None:
    backoff = Backoff(initial_delay=4.0, factor=2.0, max_delay=100.0, jitter=0.5)
    # random() at its bounds: the whole pause, or half of it.
    assert take(backoff.delays(lambda: 0.0), 3) == [4.0, 8.0, 16.0]
    assert take(backoff.delays(lambda: 1.0), 3) == [2.0, 4.0, 8.0]


def test_full_jitter_spreads_the_first_pause_from_zero() -> None:
    # RFC 6455 §7.2.3: the first reconnect attempt is delayed by a random amount of time.
    backoff = Backoff()
    firsts = [next(backoff.delays(lambda r=r: r)) for r in (0.0, 0.25, 0.999)]
    assert firsts == pytest.approx(
        [defaults.BACKOFF_INITIAL_DELAY * (1 - r) for r in (0.0, 0.25, 0.999)]
    )


def test_delays_stay_finite_after_many_failures() -> None:
    backoff = Backoff(initial_delay=1.0, factor=10.0, max_delay=60.0, jitter=0.0)
    assert take(backoff.delays(), 2000)[-1] == 60.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_delay": -1.0},
        {"initial_delay": 5.0, "max_delay": 1.0},
        {"factor": 0.5},
        {"factor": float("nan")},
        {"jitter": -0.1},
        {"jitter": 1.5},
    ],
)
def test_invalid_backoff_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kwargs)


# process_exception -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "refused"),
        ConnectionResetError(104, "reset"),
        TimeoutError(),
        OSError(101, "network unreachable"),
        EOFError(),
        ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
        ConnectionClosedError(None, None),
        *(InvalidStatus(response(status)) for status in (408, 429, 500, 502, 503, 504)),
        InvalidProxyStatus("proxy", response=response(502)),
        *(InvalidProxyStatus("socks", reply=reply) for reply in (3, 4, 5, 6)),
    ],
    ids=repr,
)
def test_transient_errors(exc: Exception) -> None:
    assert process_exception(exc) is None


def invalid_message_after_eof() -> InvalidMessage:
    exc = InvalidMessage("connection closed during opening handshake")
    exc.__cause__ = EOFError("connection closed while reading status line")
    return exc


def test_truncated_response_is_transient() -> None:
    assert process_exception(invalid_message_after_eof()) is None


@pytest.mark.parametrize(
    "exc",
    [
        InvalidURI("http://example.com/", "scheme isn't ws or wss"),
        *(InvalidStatus(response(status)) for status in (200, 301, 400, 401, 403, 404, 426, 501)),
        InvalidMessage("invalid status code: 'abc'"),
        InvalidHeader("Sec-WebSocket-Accept", "wrong"),
        NegotiationError("unsupported subprotocol: chat"),
        SecurityError("more than 10 redirects"),
        InvalidHandshake("cannot follow a redirect to another origin"),
        ssl.SSLCertVerificationError(1, "certificate verify failed"),
        ssl.SSLError(1, "wrong version number"),
        InvalidProxyStatus("proxy", response=response(407)),
        InvalidProxyStatus("socks", reply=2),
        InvalidProxyStatus("socks auth methods"),
        InvalidProxyMessage("not a SOCKS5 proxy"),
        ValueError("ssl argument is incompatible with a ws:// URI"),
    ],
    ids=repr,
)
def test_fatal_errors(exc: Exception) -> None:
    assert process_exception(exc) is exc


# retry_after -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([("Retry-After", "7")], 7.0),
        ([("Retry-After", " 12 ")], 12.0),
        ([], 0.0),
        ([("Retry-After", "Fri, 31 Dec 1999 23:59:59 GMT")], 0.0),
        ([("Retry-After", "-1")], 0.0),
        ([("Retry-After", "1.5")], 0.0),
        ([("Retry-After", "\u00b3")], 0.0),  # a superscript digit: not HTTP's DIGIT
        ([("Retry-After", "1"), ("Retry-After", "2")], 0.0),
    ],
)
def test_retry_after(headers: list[tuple[str, str]], expected: float) -> None:
    assert retry_after(InvalidStatus(response(503, headers))) == expected


def test_retry_after_from_a_proxy_and_from_other_errors() -> None:
    proxy = InvalidProxyStatus("busy", response=response(503, [("Retry-After", "3")]))
    assert retry_after(proxy) == 3.0
    assert retry_after(InvalidProxyStatus("socks", reply=5)) == 0.0
    assert retry_after(ConnectionRefusedError()) == 0.0


# Reconnection ------------------------------------------------------------------------------------

BACKOFF = Backoff(initial_delay=1.0, factor=2.0, max_delay=8.0, jitter=0.0)


def test_failures_in_a_row_back_off_and_an_opening_resets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reconnection = Reconnection(BACKOFF)
    with caplog.at_level(logging.INFO, logger="wsio.client"):
        delays = [reconnection.open_failed(ConnectionRefusedError(111, "refused")) for _ in "abc"]
        reconnection.opened()
        delays.append(reconnection.open_failed(TimeoutError()))
    assert delays == [1.0, 2.0, 4.0, 1.0]
    assert [record.levelno for record in caplog.records] == [logging.INFO] * 4
    assert caplog.records[0].getMessage() == (
        "connection failed: ConnectionRefusedError: [Errno 111] refused; reconnecting in 1 s"
    )
    # An exception without a message is named.
    assert caplog.records[3].getMessage() == "connection failed: TimeoutError; reconnecting in 1 s"


def test_fatal_failure_is_raised() -> None:
    reconnection = Reconnection(BACKOFF)
    exc = InvalidStatus(response(403))
    with pytest.raises(InvalidStatus) as caught:
        reconnection.open_failed(exc)
    assert caught.value is exc


def test_retry_after_lengthens_the_pause_up_to_max_delay() -> None:
    reconnection = Reconnection(BACKOFF)
    assert reconnection.open_failed(InvalidStatus(response(503, [("Retry-After", "3")]))) == 3.0
    assert reconnection.open_failed(InvalidStatus(response(429, [("Retry-After", "99")]))) == 8.0
    # Shorter than the backoff: the backoff wins.
    assert reconnection.open_failed(InvalidStatus(response(503, [("Retry-After", "0")]))) == 4.0


def test_custom_process_exception() -> None:
    class Fatal(Exception):
        pass

    def process(exc: Exception) -> Exception | None:
        if isinstance(exc, InvalidStatus) and exc.response.status_code == 403:
            return None  # this server answers 403 while it warms up
        if isinstance(exc, ConnectionRefusedError):
            return Fatal("no server")
        return exc

    reconnection = Reconnection(BACKOFF, process)
    assert reconnection.open_failed(InvalidStatus(response(403))) == 1.0
    refused = ConnectionRefusedError()
    with pytest.raises(Fatal, match="no server") as caught:
        reconnection.open_failed(refused)
    assert caught.value.__cause__ is refused


def test_normal_closure_reopens_at_once() -> None:
    reconnection = Reconnection(BACKOFF)
    reconnection.opened()
    closed = ConnectionClosedOK(Close(1001, "going away"), Close(1001, ""), True)
    assert reconnection.closed(closed) == 0.0
    # Nothing counted: a failure after it starts the backoff at its first pause.
    assert reconnection.open_failed(ConnectionRefusedError()) == 1.0


def test_abnormal_closure_waits_and_counts_as_the_first_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reconnection = Reconnection(BACKOFF, random=lambda: 0.5)
    reconnection.opened()
    with caplog.at_level(logging.INFO, logger="wsio.client"):
        assert reconnection.closed(ConnectionClosedError(None, None)) == 1.0
    assert caplog.records[0].getMessage() == (
        "connection closed: no close frame received or sent; reconnecting in 1 s"
    )
    assert reconnection.open_failed(ConnectionRefusedError()) == 2.0
    # With jitter, the pause is drawn at random (here, half of it).
    jittery = Reconnection(Backoff(initial_delay=1.0, jitter=1.0), random=lambda: 0.5)
    assert jittery.closed(ConnectionClosedError(Close(1012, ""), None)) == 0.5
