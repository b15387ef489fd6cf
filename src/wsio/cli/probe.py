"""``wsio probe``: the handshake inspector.

It opens one connection and shows the opening handshake as it happened: the request sent
and the response received, verbatim; each rule of RFC 6455 §4.1 (the client's side of
§4.2.2) with its verdict; TLS details for ``wss``; and how long each step took. It drives
the sans-I/O core directly, so that it sees every byte and every verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import ssl as ssl_module
import time
from collections.abc import Sequence
from typing import Any, TextIO

from .. import defaults
from ..exceptions import InvalidHandshake, InvalidURI
from ..protocol.connection import ClientProtocol, State
from ..protocol.extensions import build_extensions, parse_extensions
from ..protocol.handshake import Check, response_checks
from ..protocol.http11 import Headers, Request, Response
from ..protocol.uri import WebSocketURI, parse_uri
from ..shared.compression import client_extensions
from .common import (
    UsageError,
    client_ssl_context,
    escape,
    escape_lines,
    parse_uri_argument,
    timed_out,
)

__all__ = ["ProbeReport", "probe", "run_probe"]

# Seconds to wait for the server's answer to the probe's close frame.
_CLOSE_WAIT = 1.0


@dataclasses.dataclass
class ProbeReport:
    """What one probe saw. ``ok`` tells whether the handshake succeeded."""

    uri: str
    request: bytes = b""
    #: Whether the request was written to the server (not when TCP or TLS failed).
    request_sent: bool = False
    response: Response | None = None
    checks: list[Check] = dataclasses.field(default_factory=list)
    tls: dict[str, Any] | None = None
    #: The extensions negotiated, with their parameters.
    extensions: list[str] = dataclasses.field(default_factory=list)
    timing: dict[str, float] = dataclasses.field(default_factory=dict)
    error: str | None = None
    ok: bool = False

    def as_json(self) -> dict[str, Any]:
        response = self.response
        return {
            "uri": self.uri,
            "ok": self.ok,
            "error": self.error,
            "request": self.request.decode("iso-8859-1"),
            "request_sent": self.request_sent,
            "response": None
            if response is None
            else {
                "head": response.head.decode("iso-8859-1"),
                "status_code": response.status_code,
                "reason_phrase": response.reason_phrase,
                "headers": response.headers.raw_items(),
                "body": response.body.decode("utf-8", "replace"),
                "body_truncated": response.body_truncated,
            },
            "checks": [dataclasses.asdict(check) for check in self.checks],
            "extensions": self.extensions,
            "tls": self.tls,
            "timing_ms": {name: round(value * 1000, 3) for name, value in self.timing.items()},
        }


def _tls_details(writer: asyncio.StreamWriter) -> dict[str, Any]:
    ssl_object: ssl_module.SSLObject | None = writer.get_extra_info("ssl_object")
    if ssl_object is None:  # pragma: no cover - start_tls succeeded, so there is one
        return {}
    cipher = ssl_object.cipher()
    certificate: dict[str, Any] = dict(ssl_object.getpeercert() or {})
    subject = ", ".join(
        f"{name}={value}" for rdn in certificate.get("subject", ()) for (name, value) in rdn
    )
    return {
        "version": ssl_object.version(),
        "cipher": cipher[0] if cipher else None,
        "certificate_subject": subject or None,
        "server_hostname": ssl_object.server_hostname,
    }


async def probe(
    uri: str,
    *,
    headers: Sequence[tuple[str, str]] = (),
    subprotocols: Sequence[str] | None = None,
    origin: str | None = None,
    ssl: ssl_module.SSLContext | None = None,
    timeout: float | None = defaults.OPEN_TIMEOUT,
    compression: str | None = defaults.COMPRESSION,
) -> ProbeReport:
    """Open one connection to ``uri``, record the handshake, close cleanly.

    Never raises for what the server does: failures land in the report.

    :raises InvalidURI: ``uri`` isn't a WebSocket URI.
    """
    wsuri = parse_uri(uri)
    report = ProbeReport(uri)
    protocol = ClientProtocol(
        wsuri,
        extensions=client_extensions(compression, defaults.COMPRESSION_THRESHOLD, ()),
        origin=origin,
        subprotocols=subprotocols,
        additional_headers=Headers(headers),
    )
    request = protocol.connect()
    report.request = request.serialize()
    try:
        async with asyncio.timeout(timeout):
            await _exchange(wsuri, protocol, request, report, ssl)
    except TimeoutError:
        report.error = timed_out(timeout) if timeout is not None else "timed out"
    except (OSError, ssl_module.SSLError) as exc:
        report.error = f"{type(exc).__name__}: {exc}"
    if protocol.response is not None:
        report.response = protocol.response
        report.checks = response_checks(
            protocol.response,
            protocol.key,
            protocol.available_subprotocols,
            protocol.available_extensions,
        )
        if protocol.extensions:
            # As the server's answer put it: names with their parameters.
            report.extensions = [
                build_extensions([extension])
                for extension in parse_extensions(
                    protocol.response.headers.get_all("Sec-WebSocket-Extensions")
                )
            ]
    failure = protocol.handshake_exc
    if failure is not None and report.error is None:
        report.error = f"{type(failure).__name__}: {failure}"
    report.ok = report.error is None and protocol.response is not None and failure is None
    return report


async def _exchange(
    uri: WebSocketURI,
    protocol: ClientProtocol,
    request: Request,
    report: ProbeReport,
    ssl: ssl_module.SSLContext | None,
) -> None:
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(uri.host, uri.port)
    try:
        report.timing["tcp_connect"] = time.perf_counter() - start
        if uri.secure:
            step = time.perf_counter()
            context = ssl if ssl is not None else ssl_module.create_default_context()
            await writer.start_tls(context, server_hostname=uri.host)
            report.timing["tls_handshake"] = time.perf_counter() - step
            report.tls = _tls_details(writer)
        step = time.perf_counter()
        protocol.send_request(request)
        await _write(protocol, writer)
        report.request_sent = True
        await _pump(protocol, reader, writer, until=lambda: protocol.state is not State.CONNECTING)
        report.timing["response"] = time.perf_counter() - step
        report.timing["total"] = time.perf_counter() - start
        if protocol.state is State.OPEN:
            # Be polite: start the closing handshake, and wait a little for the answer. The
            # verdict is in already: a server that doesn't answer doesn't change it.
            protocol.send_close(1000, "probe done")
            with contextlib.suppress(TimeoutError, OSError):
                async with asyncio.timeout(_CLOSE_WAIT):
                    await _pump(
                        protocol, reader, writer, until=lambda: protocol.close_rcvd is not None
                    )
    finally:
        writer.close()


async def _write(protocol: ClientProtocol, writer: asyncio.StreamWriter) -> None:
    """Write what the core has to send: a large payload, a masked piece per round."""
    while protocol.has_data_to_send:
        for data in protocol.data_to_send():
            if data:
                writer.write(data)
        await writer.drain()


async def _pump(
    protocol: ClientProtocol,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    until: Any,
) -> None:
    """Move bytes between the socket and the core until ``until()`` or the end of stream."""
    while True:
        await _write(protocol, writer)
        protocol.events_received()
        if until() or protocol.state is State.CLOSED:
            return
        data = await reader.read(65536)
        if data:
            protocol.receive_data(data)
        else:
            protocol.receive_eof()


def _indent(prefix: str, data: bytes) -> list[str]:
    return [f"{prefix} {line}".rstrip() for line in escape_lines(data.decode("iso-8859-1"))]


def print_report(report: ProbeReport, out: TextIO) -> None:
    """The human-readable report.

    What came from the server is shown with its control characters escaped (see
    :func:`~wsio.cli.common.escape`): a hostile server can't drive the terminal.
    """
    title = "Request sent:" if report.request_sent else "Request (not sent):"
    lines = [f"Probing {escape(report.uri)}", "", title]
    lines += _indent(">", report.request)
    response = report.response
    if response is not None:
        lines += ["", "Response received (verbatim):"]
        lines += _indent("<", response.head)
        if response.body:
            body = response.body.decode("utf-8", "replace")
            lines += ["", "Body:"] + [f"  {line}" for line in escape_lines(body)]
            if response.body_truncated:
                lines.append(f"  [cut at {len(response.body)} bytes]")
        lines += ["", "Checks (RFC 6455 §4.1, the client's side of §4.2.2):"]
        for check in report.checks:
            mark = "PASS" if check.passed else "FAIL"
            lines.append(f"  [{mark}] {check.rule}: {escape(check.detail)}")
        reason = response.reason_phrase
        lines.append(
            f"  [INFO] reason phrase {reason!r}: free text, not examined (RFC 9112 §4)"
            if reason
            else "  [INFO] no reason phrase: allowed, it is free text and never examined"
        )
    if report.extensions:
        lines += ["", "Extensions negotiated:"] + [f"  {escape(ext)}" for ext in report.extensions]
    if report.tls is not None:
        lines += ["", "TLS:"] + [
            f"  {name}: {escape(str(value))}" for name, value in report.tls.items()
        ]
    if report.timing:
        lines += ["", "Timing:"] + [
            f"  {name.replace('_', ' ')}: {value * 1000:.1f} ms"
            for name, value in report.timing.items()
        ]
    lines.append("")
    if report.ok:
        lines.append("Result: handshake succeeded")
    else:
        lines.append(f"Result: handshake failed: {escape(str(report.error))}")
    print("\n".join(lines), file=out)


async def run_probe(
    uri: str,
    *,
    headers: Sequence[tuple[str, str]],
    subprotocols: Sequence[str],
    origin: str | None,
    cafile: str | None,
    insecure: bool,
    as_json: bool,
    timeout: float,
    compression: str | None = defaults.COMPRESSION,
    out: TextIO,
    err: TextIO,
) -> int:
    """``wsio probe``: 0 when the handshake succeeded, 1 when it failed, 2 for a bad URI
    or CA file."""
    try:
        context = client_ssl_context(cafile, insecure)
        parse_uri_argument(uri)
    except UsageError as exc:
        print(f"wsio: {escape(str(exc))}", file=err)
        return 2
    try:
        report = await probe(
            uri,
            headers=headers,
            subprotocols=subprotocols or None,
            origin=origin,
            ssl=context,
            timeout=timeout,
            compression=compression,
        )
    except (InvalidURI, InvalidHandshake) as exc:
        print(f"wsio: {escape(str(exc))}", file=err)
        return 2
    if as_json:
        print(json.dumps(report.as_json(), indent=2), file=out)
    else:
        print_report(report, out)
    return 0 if report.ok else 1
