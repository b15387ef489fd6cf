"""A small Chrome DevTools Protocol client over wsio, and a headless Chromium launcher.

Talking CDP through ``wsio.connect`` doubles as an interop test: the browser's DevTools
endpoint is Chromium's own WebSocket server. Every wait here is bounded.

- :class:`Chromium` starts ``chromium --headless`` with a fresh profile, finds its DevTools
  port and connects to it; it kills the whole process group and removes the profile when
  it exits.
- :class:`CDP` sends commands with increasing ids and matches the responses to them;
  events are collected.
- :class:`Tab` is a page attached with ``flatten: true``: its commands carry its
  ``sessionId`` on the browser's one connection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import os
import shutil
import signal
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import wsio

CHROMIUM = "/usr/bin/chromium"

#: Bound on one CDP command, and on starting Chromium.
TIMEOUT = 10.0

JSON = dict[str, Any]


class CDPError(Exception):
    """A CDP command failed, or JavaScript evaluated in a page threw."""


class CDP:
    """One DevTools WebSocket connection: commands matched to responses by id."""

    def __init__(self, ws: wsio.ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[JSON]] = {}
        #: Events received (the latest 10,000): ``{"method", "params", "sessionId"?}``.
        self.events: collections.deque[JSON] = collections.deque(maxlen=10_000)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, url: str) -> CDP:
        # DevTools messages (screenshots, DOM snapshots) can be large: no size limit.
        async with asyncio.timeout(TIMEOUT):
            ws = await wsio.connect(url, max_size=None)
        return cls(ws)

    async def _read(self) -> None:
        """Dispatch every incoming message; when the connection ends, fail what waits."""
        error: BaseException = ConnectionError("DevTools connection closed")
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                if "id" not in message:
                    self.events.append(message)
                    continue
                future = self._pending.pop(message["id"], None)
                if future is None or future.done():
                    continue  # a command whose caller gave up waiting
                if "error" in message:
                    future.set_exception(CDPError(f"{message['error']}"))
                else:
                    future.set_result(message.get("result", {}))
        except wsio.ConnectionClosed as exc:
            error = exc
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(error)
            self._pending.clear()

    async def send(
        self,
        method: str,
        params: JSON | None = None,
        *,
        session_id: str | None = None,
        timeout: float = TIMEOUT,
    ) -> JSON:
        """Run one command and return its ``result``; raise :class:`CDPError` on an error
        response and :class:`TimeoutError` after ``timeout`` seconds."""
        command_id = next(self._ids)
        command: JSON = {"id": command_id, "method": method, "params": params or {}}
        if session_id is not None:
            command["sessionId"] = session_id
        future: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        try:
            async with asyncio.timeout(timeout):
                await self.ws.send(json.dumps(command))
                return await future
        finally:
            self._pending.pop(command_id, None)

    def events_of(self, method: str, session_id: str | None = None) -> list[JSON]:
        """The events named ``method`` received so far, from one session if given."""
        return [
            event
            for event in self.events
            if event.get("method") == method
            and (session_id is None or event.get("sessionId") == session_id)
        ]

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(TIMEOUT):
                await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def open_tab(self, url: str) -> Tab:
        """Open ``url`` in a new tab and attach to it (flattened session); ``Runtime`` is
        enabled so that uncaught exceptions in the page are recorded as events."""
        target = await self.send("Target.createTarget", {"url": url})
        target_id: str = target["targetId"]
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target_id, "flatten": True}
        )
        tab = Tab(self, target_id, attached["sessionId"])
        await tab.send("Runtime.enable")
        return tab


class Tab:
    """A page target reached through a flattened session of :class:`CDP`."""

    def __init__(self, cdp: CDP, target_id: str, session_id: str) -> None:
        self.cdp = cdp
        self.target_id = target_id
        self.session_id = session_id

    async def send(self, method: str, params: JSON | None = None) -> JSON:
        return await self.cdp.send(method, params, session_id=self.session_id)

    async def evaluate(self, expression: str, *, timeout: float = TIMEOUT) -> Any:
        """Evaluate JavaScript in the page, await it if it is a promise, return the value
        (as JSON); raise :class:`CDPError` if it throws."""
        result = await self.cdp.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session_id=self.session_id,
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"JavaScript error: {text}")
        return result["result"].get("value")

    async def wait_for(
        self,
        expression: str,
        check: Callable[[Any], bool] = bool,
        *,
        timeout: float = 5.0,
        interval: float = 0.05,
    ) -> Any:
        """Evaluate ``expression`` until ``check(value)`` holds; return the value. After
        ``timeout`` seconds, fail with the last value seen."""
        value: Any = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    with contextlib.suppress(CDPError):  # e.g. the page is still loading
                        value = await self.evaluate(expression)
                        if check(value):
                            return value
                    await asyncio.sleep(interval)
        except TimeoutError:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {expression!r}; last value: {value!r}"
            ) from None

    def exceptions(self) -> list[str]:
        """Uncaught JavaScript exceptions reported by the page so far."""
        return [
            json.dumps(event["params"]["exceptionDetails"])[:500]
            for event in self.cdp.events_of("Runtime.exceptionThrown", self.session_id)
        ]

    async def close(self) -> None:
        await self.cdp.send("Target.closeTarget", {"targetId": self.target_id})


class Chromium:
    """``async with Chromium() as browser:`` -- a headless Chromium with a fresh profile;
    ``browser.cdp`` is connected to it, ``browser.version`` is ``/json/version``."""

    def __init__(self, executable: str = CHROMIUM) -> None:
        self.executable = executable
        self.proc: asyncio.subprocess.Process | None = None
        self.version: JSON = {}
        self._tmp = Path(tempfile.mkdtemp(prefix="wsio-chromium-"))
        self._cdp: CDP | None = None

    @property
    def cdp(self) -> CDP:
        assert self._cdp is not None, "Chromium isn't started"
        return self._cdp

    @property
    def log(self) -> str:
        """The tail of Chromium's output, for failure messages."""
        try:
            return (self._tmp / "chromium.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    async def __aenter__(self) -> Chromium:
        try:
            await self._start()
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stop()

    async def _start(self) -> None:
        profile = self._tmp / "profile"
        profile.mkdir()
        with open(self._tmp / "chromium.log", "wb") as log:
            # A session of its own: the whole process group (renderers, zygote, GPU and
            # network services) can be killed at once.
            self.proc = await asyncio.create_subprocess_exec(
                self.executable,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--disable-extensions",
                "--mute-audio",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        port = await self._devtools_port(profile / "DevToolsActivePort")
        self.version = await asyncio.to_thread(self._get_json, port, "/json/version")
        self._cdp = await CDP.connect(self.version["webSocketDebuggerUrl"])

    async def _devtools_port(self, path: Path) -> int:
        """The port Chromium picked, from the first line of ``DevToolsActivePort``."""
        assert self.proc is not None
        try:
            async with asyncio.timeout(TIMEOUT):
                while True:
                    if self.proc.returncode is not None:
                        raise RuntimeError(
                            f"chromium exited with status {self.proc.returncode}:\n{self.log}"
                        )
                    with contextlib.suppress(OSError, ValueError, IndexError):
                        # The file may exist before both lines are written.
                        lines = path.read_text().splitlines()
                        if len(lines) >= 2:
                            return int(lines[0])
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise RuntimeError(f"chromium wrote no DevToolsActivePort:\n{self.log}") from None

    @staticmethod
    def _get_json(port: int, path: str) -> JSON:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=TIMEOUT) as r:
            data: JSON = json.load(r)
        return data

    async def _stop(self) -> None:
        """Ask the browser to quit, then kill its process group whatever happened, and
        remove the profile."""
        asked_to_quit = False
        if self._cdp is not None:
            if self._cdp.ws.state is wsio.State.OPEN:
                asked_to_quit = True
                # The browser may close the connection before it answers.
                with contextlib.suppress(CDPError, wsio.ConnectionClosed, TimeoutError):
                    await self._cdp.send("Browser.close", timeout=2)
            await self._cdp.close()
            self._cdp = None
        if self.proc is not None:
            if self.proc.returncode is None and asked_to_quit:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), 2)
            # Children may outlive the main process: kill the group in every case.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 5)
        for _ in range(10):  # a dying child may still write into the profile
            shutil.rmtree(self._tmp, ignore_errors=True)
            if not self._tmp.exists():
                break
            await asyncio.sleep(0.1)
