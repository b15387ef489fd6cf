"""Drive a :mod:`conformance_cases` scenario over a raw connection and check the outcome.

Works for both directions: ``peer_is_client`` tells whether the wsio endpoint on the other
end is a client (its frames must be masked; the raw side, a server, closes TCP at the end)
or a server (its frames must be unmasked and it must close TCP itself after the closing
handshake).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time

from conformance_cases import Case, Event, Expect, F, Wait

from rawpeer import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Frame,
    RawConnection,
    build_frame,
    close_payload,
)

SYNC_PAUSE = 0.01
"""Pause after a frame marked ``sync`` (so it travels alone)."""

CLOSE_WAIT = 2.0
"""Seconds allowed for a close frame that must come now (Autobahn allows about 1 s)."""

EOF_WAIT = 2.0
"""Seconds allowed for a wsio server to close TCP after the closing handshake."""

QUIET = 0.5
"""Seconds during which nothing may arrive when the peer must stay silent."""

_NAMES = {OP_TEXT: "text", OP_BINARY: "binary", OP_PING: "ping", OP_PONG: "pong"}


def show(event: Event | tuple[str, int | None, bytes]) -> tuple[object, ...]:
    """A printable form of an event: payloads over 64 bytes become a length and a digest."""
    kind, *rest = event
    out: list[object] = [kind]
    for item in rest:
        if isinstance(item, bytes | bytearray) and len(item) > 64:
            digest = hashlib.sha1(item).hexdigest()[:12]
            out.append(f"<{len(item)} bytes sha1:{digest}>")
        else:
            out.append(item)
    return tuple(out)


def shown(events: list[Event] | tuple[Event, ...]) -> list[tuple[object, ...]]:
    return [show(e) for e in events]


class Closed(Exception):
    """Internal: the wsio endpoint sent a close frame (kept in ``frame``)."""

    def __init__(self, frame: Frame) -> None:
        super().__init__(frame)
        self.frame = frame


class EventReader:
    """Reads frames from the wsio endpoint, checks each one, reassembles messages."""

    def __init__(self, conn: RawConnection, *, peer_is_client: bool) -> None:
        self.conn = conn
        self.peer_is_client = peer_is_client
        self.partial: tuple[int, bytearray] | None = None
        self.close_frame: Frame | None = None
        self.after_close: list[Frame] = []

    def check_frame(self, frame: Frame) -> None:
        who = "client" if self.peer_is_client else "server"
        assert frame.masked == self.peer_is_client, (
            f"wsio {who} sent a frame with mask bit {frame.masked}: {frame!r}"
        )
        assert not (frame.rsv1 or frame.rsv2 or frame.rsv3), f"RSV bit set: {frame!r}"
        assert frame.opcode in (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG), (
            f"reserved opcode {frame.opcode} sent by wsio"
        )
        assert frame.is_minimal, f"non-minimal payload length encoding: {frame!r}"
        if frame.opcode >= 8:
            assert frame.fin, f"fragmented control frame: {frame!r}"
            assert len(frame.payload) <= 125, f"control frame over 125 bytes: {frame!r}"
        if frame.opcode == OP_CONT:
            assert self.partial is not None, "continuation frame without a message"
        elif frame.opcode in (OP_TEXT, OP_BINARY):
            assert self.partial is None, "new data frame inside a fragmented message"

    async def next_event(self, timeout: float) -> Event | None:
        """Next message/ping/pong; ``None`` at EOF; raises :class:`Closed` on a close frame
        and :class:`TimeoutError` when nothing completes in time."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            frame = await self.conn.recv_frame(timeout=remaining)
            if frame is None:
                return None
            self.check_frame(frame)
            if frame.opcode == OP_CLOSE:
                self.close_frame = frame
                raise Closed(frame)
            if frame.opcode in (OP_PING, OP_PONG):
                return (_NAMES[frame.opcode], frame.payload)
            if frame.opcode in (OP_TEXT, OP_BINARY):
                if frame.fin:
                    return self._message(frame.opcode, frame.payload)
                self.partial = (frame.opcode, bytearray(frame.payload))
                continue
            assert self.partial is not None
            self.partial[1].extend(frame.payload)
            if frame.fin:
                opcode, data = self.partial
                self.partial = None
                return self._message(opcode, bytes(data))

    @staticmethod
    def _message(opcode: int, payload: bytes) -> Event:
        if opcode == OP_TEXT:
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError:
                shown_payload = show(("text", payload))
                raise AssertionError(f"wsio sent invalid UTF-8 text: {shown_payload}") from None
        return (_NAMES[opcode], payload)

    async def collect(self, count: int, timeout: float) -> list[Event]:
        """Up to ``count`` events; stops early (without error) on close, EOF or timeout."""
        events: list[Event] = []
        deadline = time.monotonic() + timeout
        with contextlib.suppress(Closed, TimeoutError):
            while len(events) < count:
                event = await self.next_event(max(deadline - time.monotonic(), 0.001))
                if event is None:
                    break
                events.append(event)
        return events

    async def until_close(self, timeout: float) -> list[Event]:
        """Events received before the close frame (``self.close_frame``; ``None`` when the
        connection ended or the time ran out without one)."""
        events: list[Event] = []
        if self.close_frame is not None:
            return events
        deadline = time.monotonic() + timeout
        with contextlib.suppress(Closed, TimeoutError):
            while True:
                event = await self.next_event(max(deadline - time.monotonic(), 0.001))
                if event is None:
                    break
                events.append(event)
        return events


def frame_bytes(step: F, mask: bytes | None) -> bytes:
    rsv = {"rsv1": bool(step.rsv & 4), "rsv2": bool(step.rsv & 2), "rsv3": bool(step.rsv & 1)}
    if step.frag is None:
        return build_frame(step.opcode, step.payload, fin=step.fin, mask=mask, **rsv)
    size = step.frag
    pieces = [step.payload[i : i + size] for i in range(0, len(step.payload), size)] or [b""]
    return b"".join(
        build_frame(
            step.opcode if i == 0 else OP_CONT,
            piece,
            fin=i == len(pieces) - 1,
            mask=mask,
            **rsv,
        )
        for i, piece in enumerate(pieces)
    )


async def send_step(conn: RawConnection, step: F, timeout: float = 30.0) -> None:
    data = frame_bytes(step, conn.default_mask)
    if step.chop:
        await conn.send_chopped(data, step.chop, timeout=timeout)
    else:
        await conn.send(data, timeout=timeout)
    if step.sync:
        await asyncio.sleep(SYNC_PAUSE)


async def send_quietly(conn: RawConnection, data: bytes) -> None:
    """Send, ignoring a connection the wsio side already closed."""
    with contextlib.suppress(ConnectionError, TimeoutError, OSError):
        await conn.send(data, timeout=1.0)


async def finish_tcp(conn: RawConnection, reader: EventReader, case_id: str) -> None:
    """After the closing handshake: a wsio server must close TCP and send nothing more;
    against a wsio client the raw server closes TCP itself."""
    if reader.peer_is_client:
        conn.close()
        return
    assert await conn.wait_eof(EOF_WAIT), (
        f"{case_id}: wsio server did not close the TCP connection within {EOF_WAIT} s "
        "after the closing handshake"
    )
    leftover = conn.parser.frames()
    assert not leftover, f"{case_id}: frames after the close frame: {leftover!r}"


def _code_of(frame: Frame) -> int | None:
    return frame.close_code


def check_close_frame(case: Case, frame: Frame | None, events: list[Event], what: str) -> None:
    assert frame is not None, (
        f"{case.id}: expected a close frame with code in {case.codes} {what}; got events "
        f"{shown(events)} and no close frame"
    )
    assert len(frame.payload) != 1, f"{case.id}: close frame with a 1-byte payload"
    code = _code_of(frame)
    assert code in case.codes, (
        f"{case.id}: close code {code} (reason {frame.close_reason!r}), expected one of "
        f"{case.codes}"
    )
    with contextlib.suppress(UnicodeDecodeError):
        frame.close_reason.decode("utf-8")
        return
    raise AssertionError(f"{case.id}: close reason is not UTF-8: {frame.close_reason!r}")


async def run_case(conn: RawConnection, case: Case, *, peer_is_client: bool) -> None:
    """Play ``case`` against the wsio endpoint behind ``conn`` (already past the handshake)."""
    reader = EventReader(conn, peer_is_client=peer_is_client)
    for step in case.steps:
        if isinstance(step, F):
            try:
                await send_step(conn, step)
            except (ConnectionError, OSError):
                # the wsio side closed while we were still sending: judge what it sent
                break
        elif isinstance(step, Wait):
            await asyncio.sleep(step.seconds)
        elif isinstance(step, Expect):
            got = await reader.collect(len(step.events), step.timeout)
            assert shown(got) == shown(step.events), (
                f"{case.id}: midway, expected {shown(step.events)} within {step.timeout} s, "
                f"got {shown(got)} (close: {reader.close_frame!r})"
            )

    if case.end == "echo":
        got = await reader.collect(len(case.expect), case.timeout)
        assert shown(got) == shown(case.expect), (
            f"{case.id}: expected {shown(case.expect)}, got {shown(got)} "
            f"(close: {reader.close_frame!r})"
        )
        # like Autobahn, close as soon as everything expected has arrived
        await send_quietly(
            conn, build_frame(OP_CLOSE, close_payload(1000), mask=conn.default_mask)
        )
        extra = await reader.until_close(CLOSE_WAIT)
        assert not extra, f"{case.id}: unexpected extra events {shown(extra)}"
        check_close_frame(case, reader.close_frame, extra, "in reply to our close 1000")
    elif case.end == "fail":
        got = await reader.until_close(max(CLOSE_WAIT, case.timeout))
        assert shown(got) == shown(case.expect), (
            f"{case.id}: expected {shown(case.expect)} then a close {case.codes}, got "
            f"{shown(got)} (close: {reader.close_frame!r})"
        )
        check_close_frame(case, reader.close_frame, got, "(the connection must be failed)")
        assert reader.close_frame is not None
        # Autobahn answers the close frame it receives
        await send_quietly(
            conn, build_frame(OP_CLOSE, reader.close_frame.payload[:2], mask=conn.default_mask)
        )
    else:  # "reply": our close frame is part of the steps
        got = await reader.until_close(max(CLOSE_WAIT, case.timeout))
        assert shown(got) == shown(case.expect), (
            f"{case.id}: expected {shown(case.expect)} then a close {case.codes}, got "
            f"{shown(got)} (close: {reader.close_frame!r})"
        )
        check_close_frame(case, reader.close_frame, got, "in reply to our close frame")
    await finish_tcp(conn, reader, case.id)


async def run_fail_fast(
    conn: RawConnection,
    case_id: str,
    how: str,
    parts: tuple[bytes, bytes, bytes],
    *,
    peer_is_client: bool,
) -> None:
    """6.4.x: the wsio endpoint must fail with 1007 as soon as the invalid part arrives,
    before the rest of the message (``how="frames"``) or of the frame (``"chops"``)."""
    reader = EventReader(conn, peer_is_client=peer_is_client)
    mask = conn.default_mask
    if how == "frames":
        chunks = [
            build_frame(OP_TEXT, parts[0], fin=False, mask=mask),
            build_frame(OP_CONT, parts[1], fin=False, mask=mask),
            build_frame(OP_CONT, parts[2], fin=True, mask=mask),
        ]
    else:
        whole = b"".join(parts)
        frame = build_frame(OP_TEXT, whole, mask=mask)
        cut1 = len(frame) - len(whole) + len(parts[0])
        cut2 = cut1 + len(parts[1])
        chunks = [frame[:cut1], frame[cut1:cut2], frame[cut2:]]

    await conn.send(chunks[0])
    early = await reader.collect(1, QUIET)
    assert not early and reader.close_frame is None and not conn.eof, (
        f"{case_id}: the first part is valid UTF-8 so far, yet wsio answered "
        f"{shown(early)} / close {reader.close_frame!r} / eof {conn.eof}"
    )
    await conn.send(chunks[1])
    got = await reader.until_close(CLOSE_WAIT)
    if reader.close_frame is None:
        # diagnose: does it fail at least once the message is complete (Autobahn NON-STRICT)?
        await send_quietly(conn, chunks[2])
        late = await reader.until_close(CLOSE_WAIT)
        raise AssertionError(
            f"{case_id}: no close within {CLOSE_WAIT} s after the invalid {how[:-1]} arrived "
            f"(not fail-fast); after sending the rest: events {shown(got + late)}, "
            f"close {reader.close_frame!r}"
        )
    assert not got, f"{case_id}: unexpected events before the close: {shown(got)}"
    assert reader.close_frame.close_code == 1007, (
        f"{case_id}: close code {reader.close_frame.close_code}, expected 1007"
    )
    await send_quietly(conn, build_frame(OP_CLOSE, close_payload(1007), mask=mask))
    await finish_tcp(conn, reader, case_id)


async def run_round_trips(
    conn: RawConnection,
    case_id: str,
    opcode: int,
    size: int,
    count: int,
    *,
    peer_is_client: bool,
) -> None:
    """9.7.x / 9.8.x: ``count`` messages, each sent once the previous echo came back."""
    reader = EventReader(conn, peer_is_client=peer_is_client)
    payload = b"*" * size if opcode == OP_TEXT else b"\xfe" * size
    data = build_frame(opcode, payload, mask=conn.default_mask)
    expected = (_NAMES[opcode], payload)
    for i in range(count):
        await conn.send(data)
        try:
            event = await reader.next_event(5.0)
        except Closed as exc:
            raise AssertionError(f"{case_id}: close {exc.frame!r} after {i} echoes") from None
        if event != expected:
            raise AssertionError(
                f"{case_id}: echo #{i}: expected {show(expected)}, got "
                f"{show(event) if event else 'EOF'}"
            )
    await send_quietly(conn, build_frame(OP_CLOSE, close_payload(1000), mask=conn.default_mask))
    extra = await reader.until_close(CLOSE_WAIT)
    assert not extra, f"{case_id}: unexpected extra events {shown(extra)}"
    assert reader.close_frame is not None and reader.close_frame.close_code == 1000, (
        f"{case_id}: expected close 1000, got {reader.close_frame!r}"
    )
    await finish_tcp(conn, reader, case_id)


async def run_close_after_big_message(conn: RawConnection, *, peer_is_client: bool) -> None:
    """7.1.6 (informational in Autobahn): 256 KiB text, a small text, close, ping, all in
    one write. Echoes may be cut short by the close, but what arrives must be an in-order
    prefix of the two echoes, no pong may follow the close, and the close must be clean."""
    reader = EventReader(conn, peer_is_client=peer_is_client)
    mask = conn.default_mask
    big = (b"BAsd7&jh23" * (256 * 1024 // 10 + 1))[: 256 * 1024]
    await conn.send(
        build_frame(OP_TEXT, big, mask=mask)
        + build_frame(OP_TEXT, b"Hello World!", mask=mask)
        + build_frame(OP_CLOSE, close_payload(1000), mask=mask)
        + build_frame(OP_PING, b"", mask=mask)
    )
    got = await reader.until_close(10.0)
    allowed = [("text", big), ("text", b"Hello World!")]
    assert got == allowed[: len(got)], f"7.1.6: got {shown(got)}"
    assert reader.close_frame is not None and reader.close_frame.close_code == 1000, (
        f"7.1.6: expected close 1000, got {reader.close_frame!r}"
    )
    await finish_tcp(conn, reader, "7.1.6")
