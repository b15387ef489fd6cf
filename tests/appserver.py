"""An ASGI app served by a real uvicorn server inside the test's event loop; the examples.

``async with serve_app(app, ws=WebSocketProtocol, http="h11") as base:`` starts
``uvicorn.Server`` as a task on a free loopback port (port 0: the kernel picks it, so there
is no race for it) and yields ``"127.0.0.1:PORT"``; leaving the block asks the server to
shut down (running its lifespan shutdown) and waits for it, every wait bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import uvicorn

#: The examples, as `uvicorn --app-dir examples` sees them: ``import fastapi_app``.
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

#: Bound on starting and on stopping the server.
TIMEOUT = 10.0


@contextlib.asynccontextmanager
async def serve_app(app: Any, **config: Any) -> AsyncIterator[str]:
    """Serve ``app`` with ``uvicorn.Config(app, **config)`` on 127.0.0.1 and a free port;
    yield ``"127.0.0.1:PORT"``. Lifespan events are on unless ``lifespan=`` says otherwise."""
    config.setdefault("lifespan", "on")
    # log_config=None: uvicorn leaves the logging setup alone (pytest captures its records).
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", log_config=None, **config
        )
    )
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        async with asyncio.timeout(TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped it
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            async with asyncio.timeout(TIMEOUT):
                await asyncio.shield(task)
        except TimeoutError:
            # Connections or tasks that won't end: stop waiting for them.
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise AssertionError(f"uvicorn didn't stop within {TIMEOUT} s") from None


def example(name: str) -> ModuleType:
    """The module ``examples/NAME.py``."""
    return importlib.import_module(name)
