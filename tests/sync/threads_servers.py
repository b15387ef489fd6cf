"""Threads servers run in the background for the threads layer's tests, and what those
tests serve."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import wsio.sync


class Servers:
    """Starts threads servers (``wsio.sync.serve`` or ``wsio.sync.route``) on 127.0.0.1,
    each serving in a thread of its own; :meth:`stop` shuts one down, and every server
    still running is shut down when the test ends."""

    def __init__(self) -> None:
        self._running: list[tuple[wsio.sync.Server, threading.Thread]] = []

    def start(
        self,
        handler: Any,
        port: int = 0,
        *,
        factory: Callable[..., wsio.sync.Server] = wsio.sync.serve,
        **options: Any,
    ) -> wsio.sync.Server:
        server = factory(handler, "127.0.0.1", port, **options)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self._running.append((server, thread))
        return server

    def stop(self, server: wsio.sync.Server) -> None:
        for running in self._running:
            if running[0] is server:
                self._running.remove(running)
                server.shutdown()
                running[1].join(5)
                return

    def stop_all(self) -> None:
        while self._running:
            self.stop(self._running[-1][0])


def port_of(server: wsio.sync.Server) -> int:
    port: int = server.socket.getsockname()[1]
    return port


def echo(ws: wsio.sync.ServerConnection) -> None:
    for message in ws:
        ws.send(message)
