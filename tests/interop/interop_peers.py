"""Helpers for the interop tests: Node `ws` peers run as subprocesses, and TLS material.

The Node scripts live in tests/interop/node (see the comments at the top of each script for
their command line and the JSON lines they print).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"
ECHO_SERVER_JS = NODE_DIR / "echo_server.js"
CLIENT_JS = NODE_DIR / "client.js"

# Seconds: how long any single wait on a Node process may take.
START_TIMEOUT = 15.0
EVENT_TIMEOUT = 10.0
CLIENT_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
# Bytes: longest stdout line accepted from a Node script (big messages are summarised).
LINE_LIMIT = 8 * 1024 * 1024

Event = dict[str, Any]
# One step of a client.js script, e.g. {"op": "send", "text": "hi"}.
Step = dict[str, Any]


@dataclass(frozen=True)
class NodeSetup:
    """Where node and the installed `ws` package are."""

    node: str
    node_dir: Path
    ws_version: str


def locate_node() -> NodeSetup:
    """Find node and tests/interop/node/node_modules/ws, or fail the test run with a hint."""
    hint = "run `make test` (it runs `npm install` in tests/interop/node) before pytest"
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"interop tests need Node.js (`node` on PATH): {hint}", pytrace=False)
    ws_package = NODE_DIR / "node_modules" / "ws" / "package.json"
    if not ws_package.is_file():
        missing = f"interop tests need the `ws` npm package ({ws_package})"
        pytest.fail(f"{missing}: {hint}", pytrace=False)
    version = str(json.loads(ws_package.read_text(encoding="utf-8"))["version"])
    return NodeSetup(node=node, node_dir=NODE_DIR, ws_version=version)


@dataclass(frozen=True)
class TLSFiles:
    """A throwaway CA and a certificate for 127.0.0.1/localhost, as files and contexts."""

    ca_pem: Path
    cert_pem: Path
    key_pem: Path
    server_context: ssl.SSLContext
    client_context: ssl.SSLContext


def sha256_hex(data: bytes | str) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)


@dataclass
class NodeEchoServer:
    """A running tests/interop/node/echo_server.js."""

    proc: asyncio.subprocess.Process
    port: int
    scheme: str
    events: list[Event] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, setup: NodeSetup, tls: TLSFiles | None = None) -> NodeEchoServer:
        args = [str(ECHO_SERVER_JS), "--host", "127.0.0.1", "--port", "0"]
        args += ["--max-payload", str(16 * 1024 * 1024)]
        if tls is not None:
            args += ["--cert", str(tls.cert_pem), "--key", str(tls.key_pem)]
        proc = await asyncio.create_subprocess_exec(
            setup.node,
            *args,
            cwd=setup.node_dir,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=LINE_LIMIT,
        )
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
            port = int(line.decode("ascii").strip())
        except (TimeoutError, ValueError) as exc:
            await _kill(proc)
            stderr = await proc.stderr.read() if proc.stderr is not None else b""
            detail = stderr.decode(errors="replace")
            raise RuntimeError(f"echo_server.js did not start: {detail}") from exc
        server = cls(proc=proc, port=port, scheme="wss" if tls is not None else "ws")
        server._reader = asyncio.create_task(server._read_events())
        return server

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    async def _read_events(self) -> None:
        assert self.proc.stdout is not None
        # Bounded by the process: readline() returns b"" at EOF, which ends the loop.
        while line := await self.proc.stdout.readline():
            event = json.loads(line)
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def wait_event(
        self, predicate: Callable[[Event], bool], timeout: float = EVENT_TIMEOUT
    ) -> Event:
        """Return the first event (past or future) that satisfies predicate."""

        def found() -> bool:
            return any(predicate(event) for event in self.events)

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(found), timeout)
            except TimeoutError:
                raise AssertionError(
                    f"no matching event from echo_server.js within {timeout} s: {self.events}"
                ) from None
            return next(event for event in self.events if predicate(event))

    async def wait_close_event(self, timeout: float = EVENT_TIMEOUT) -> Event:
        return await self.wait_event(lambda event: event["event"] == "close", timeout)

    async def shutdown(self) -> None:
        """Ask the server to close every connection with 1001 and exit."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"shutdown\n")
        await self.proc.stdin.drain()

    async def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
        await _kill(self.proc)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader


@dataclass(frozen=True)
class NodeClientResult:
    """What tests/interop/node/client.js printed, parsed."""

    returncode: int
    events: list[Event]
    stderr: str

    def of(self, kind: str) -> list[Event]:
        return [event for event in self.events if event["event"] == kind]

    @property
    def messages(self) -> list[Event]:
        return self.of("message")

    @property
    def close(self) -> Event:
        closes = self.of("close")
        assert len(closes) == 1, f"expected one close event: {self.events}"
        return closes[0]

    def assert_ok(self) -> None:
        assert self.returncode == 0 and self.of("done") and not self.of("error"), (
            f"client.js failed (exit {self.returncode}): {self.events}\n{self.stderr}"
        )


async def run_node_client(
    setup: NodeSetup,
    url: str,
    steps: Sequence[Step],
    *,
    options: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = CLIENT_TIMEOUT,
) -> NodeClientResult:
    """Run client.js against url with the given steps; the script is passed on stdin."""
    script = {"steps": list(steps), "timeout_ms": int(timeout * 1000) - 2000, **(options or {})}
    proc = await asyncio.create_subprocess_exec(
        setup.node,
        str(CLIENT_JS),
        url,
        "-",
        cwd=setup.node_dir,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
        limit=LINE_LIMIT,
    )
    try:
        stdout, stderr = await asyncio.wait_for(
            proc.communicate(json.dumps(script).encode("utf-8")), timeout
        )
    finally:
        await _kill(proc)
    events = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert proc.returncode is not None
    return NodeClientResult(proc.returncode, events, stderr.decode("utf-8", errors="replace"))


StartNodeServer = Callable[..., Awaitable[NodeEchoServer]]
