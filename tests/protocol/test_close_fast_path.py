"""The receive fast path of the peer's close frame (``parse_close`` in
``Protocol.receive_data``) against the general parser: whatever the close frame, valid or
broken in any way, the connection ends up exactly as the general parser leaves it.

The general parser is reached by feeding the same bytes one at a time: a single byte is
never a whole frame, so the fast path declines it and the parser takes over for good.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsio.protocol import connection as connection_module
from wsio.protocol.connection import Protocol, Side
from wsio.protocol.frames import Close

from .helpers import (
    BINARY,
    CLOSE,
    CLOSE_PAYLOADS,
    PING,
    TEXT,
    close_frames,
    close_payload,
    frame,
    make,
    to,
)


def outcome(protocol: Protocol) -> dict[str, Any]:
    """Everything the connection shows after its input: events, writes, state, close
    frames, failure, and whether it still reads."""
    failure = protocol.failure
    return {
        "events": protocol.events_received(),
        "writes": protocol.data_to_send(),
        "state": protocol.state,
        "close_rcvd": protocol.close_rcvd,
        "close_sent": protocol.close_sent,
        "close_rcvd_then_sent": protocol.close_rcvd_then_sent,
        "failure": None if failure is None else (type(failure), str(failure)),
        "close_code": getattr(failure, "close_code", None),
        "receiving": protocol.receiving,
        "close_expected": protocol.close_expected(),
        "peer_done": protocol.peer_done,
    }


def run(side: Side, before: str, data: bytes, whole: bool) -> list[dict[str, Any]]:
    """The outcome of ``data`` fed whole or byte by byte, after ``before``, then of more
    bytes, then of the end of the stream."""
    protocol = make(side, hold_failures=before == "hold")
    if before == "closing":
        protocol.send_close(1001, "going")
    elif before == "message":
        # A message in the same read, ahead of the close frame.
        data = to(side, TEXT, b"hi") + data
    outcomes = [outcome(protocol)]
    if whole:
        protocol.receive_data(data)
    else:
        for index in range(len(data)):
            protocol.receive_data(data[index : index + 1])
    outcomes.append(outcome(protocol))
    protocol.receive_data(to(side, BINARY, b"after"))
    outcomes.append(outcome(protocol))
    protocol.receive_eof()
    outcomes.append(outcome(protocol))
    return outcomes


SIDES = [Side.SERVER, Side.CLIENT]
BEFORE = ["open", "closing", "message", "hold"]


@pytest.mark.parametrize("before", BEFORE)
@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("payload", CLOSE_PAYLOADS)
def test_close_payloads_as_the_general_parser(side: Side, before: str, payload: bytes) -> None:
    data = to(side, CLOSE, payload)
    assert run(side, before, data, whole=True) == run(side, before, data, whole=False)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(
    "data",
    [
        pytest.param(lambda side, payload: to(side, CLOSE, payload, fin=False), id="no FIN"),
        pytest.param(lambda side, payload: to(side, CLOSE, payload, rsv=0x40), id="RSV1"),
        pytest.param(lambda side, payload: to(side, CLOSE, payload, rsv=0x10), id="RSV3"),
        pytest.param(lambda side, payload: to(side, CLOSE, payload, encoding=16), id="16-bit"),
        pytest.param(lambda side, payload: to(side, CLOSE, payload, encoding=64), id="64-bit"),
        pytest.param(
            lambda side, payload: frame(
                CLOSE, payload, mask=None if side is Side.SERVER else b"abcd"
            ),
            id="wrong mask bit",
        ),
        pytest.param(lambda side, payload: to(side, CLOSE, payload)[:-1], id="cut"),
        pytest.param(lambda side, payload: to(side, CLOSE, payload) + b"\x81", id="trailing"),
        pytest.param(lambda side, payload: to(side, PING, payload), id="ping"),
    ],
)
@pytest.mark.parametrize("payload", [b"", close_payload(1000, b"bye")])
def test_broken_close_frames_as_the_general_parser(side: Side, data: Any, payload: bytes) -> None:
    frame_bytes = data(side, payload)
    for before in BEFORE:
        expected = run(side, before, frame_bytes, whole=False)
        assert run(side, before, frame_bytes, whole=True) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(SIDES).flatmap(
        lambda side: st.tuples(
            st.just(side), close_frames(side is Side.SERVER), st.sampled_from(BEFORE)
        )
    )
)
def test_any_close_frame_as_the_general_parser(case: tuple[Side, bytes, str]) -> None:
    side, data, before = case
    assert run(side, before, data, whole=True) == run(side, before, data, whole=False)


@pytest.mark.parametrize("side", SIDES)
def test_a_valid_close_frame_takes_the_fast_path(
    side: Side, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = []
    parse_close = connection_module.parse_close

    def spy(data: Any, mask_expected: bool) -> Any:
        result = parse_close(data, mask_expected)
        taken.append(result)
        return result

    monkeypatch.setattr(connection_module, "parse_close", spy)
    protocol = make(side)
    protocol.receive_data(to(side, CLOSE, close_payload(1000, b"bye")))
    assert taken == [(1000, "bye", close_payload(1000, b"bye"))]
    assert protocol.close_rcvd == Close(1000, "bye")
    # Nothing buffered, no parser but the one that drops what comes after (§5.5.1).
    assert not protocol._reader.buffer
    assert not protocol.receiving
