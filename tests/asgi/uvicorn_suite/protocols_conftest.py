"""Installed by `make` as ``tests/protocols/conftest.py`` of uvicorn's own test suite.

`make test` downloads uvicorn's source distribution (the installed version, with pip) under
``.venv/uvicorn-suite/`` and runs its ``tests/protocols/test_websocket.py`` with this file
beside it. Being deeper than uvicorn's ``tests/conftest.py``, it overrides that file's
``ws_protocol_cls`` fixture: uvicorn's two backends plus wsio's class. ``http_protocol_cls``
stays uvicorn's (httptools, h11; zttp is skipped when not installed).

The file is not named ``conftest.py`` here so that wsio's own test run never loads it.

Three adaptations apply when, and only when, the wsio parameter runs (see
``_adapt_for_wsio``); nothing else in uvicorn's tests is changed. After the run, a summary
counts the outcomes per (WebSocket backend, HTTP protocol) with the skip reasons.
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from typing import Any

import pytest
from uvicorn.importer import import_from_string

WSIO = "wsio.asgi:WebSocketProtocol"

# Import string -> test id, as in uvicorn's tests/conftest.py, plus wsio's class.
WS_BACKENDS = {
    "uvicorn.protocols.websockets.wsproto_impl:WSProtocol": "wsproto",
    "uvicorn.protocols.websockets.websockets_sansio_impl:WebSocketsSansIOProtocol": (
        "websockets-sansio"
    ),
    WSIO: "wsio",
}


@pytest.fixture(
    params=[
        pytest.param(
            "uvicorn.protocols.websockets.wsproto_impl:WSProtocol",
            marks=pytest.mark.skipif(
                not importlib.util.find_spec("wsproto"), reason="wsproto not installed."
            ),
            id="wsproto",
        ),
        pytest.param(
            "uvicorn.protocols.websockets.websockets_sansio_impl:WebSocketsSansIOProtocol",
            id="websockets-sansio",
        ),
        pytest.param(WSIO, id="wsio"),
    ]
)
def ws_protocol_cls(request: pytest.FixtureRequest) -> Any:
    return import_from_string(request.param)


# MockWriteTransport in test_websocket.py has only the methods uvicorn's backends call. Every
# asyncio transport also has these, and wsio's connection uses them (half-close, abort,
# buffer limits). They are given the semantics of a transport that cannot half-close, as
# TLS: no write_eof, abort is close, no buffering, nothing to tune.
def _can_write_eof(self: Any) -> bool:
    return False


def _write_eof(self: Any) -> None:
    raise NotImplementedError("this transport cannot half-close")


def _abort(self: Any) -> None:
    self.close()


def _get_write_buffer_size(self: Any) -> int:
    return 0


def _set_write_buffer_limits(self: Any, high: int | None = None, low: int | None = None) -> None:
    return None


def _get_write_buffer_limits(self: Any) -> tuple[int, int]:
    return (0, 0)


TRANSPORT_METHODS = {
    "can_write_eof": _can_write_eof,
    "write_eof": _write_eof,
    "abort": _abort,
    "get_write_buffer_size": _get_write_buffer_size,
    "set_write_buffer_limits": _set_write_buffer_limits,
    "get_write_buffer_limits": _get_write_buffer_limits,
}


@pytest.fixture(autouse=True)
def _adapt_for_wsio(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    callspec = getattr(request.node, "callspec", None)
    if callspec is None or callspec.params.get("ws_protocol_cls") != WSIO:
        return
    module = request.module
    wsio_cls = import_from_string(WSIO)

    # a. test_server_keepalive_ping_pong and test_server_keepalive_disabled assert
    # `isinstance(protocol, (_WSProtocol, WebSocketsSansIOProtocol))`, a type-narrowing
    # assert naming uvicorn's two classes, which rejects any third backend. The module's
    # global is widened to a tuple that also holds wsio's class (isinstance accepts nested
    # tuples). Of the tests that take ws_protocol_cls, only those two read that global; the
    # tests that pass `ws=WebSocketsSansIOProtocol` themselves don't take ws_protocol_cls,
    # so they never get here and run for websockets-sansio only.
    monkeypatch.setattr(
        module,
        "WebSocketsSansIOProtocol",
        (module.WebSocketsSansIOProtocol, wsio_cls),
    )

    # c. test_close_resumes_reads_paused_on_an_unconsumed_message first asserts that
    # reading paused with one message waiting, as uvicorn's two backends do whatever
    # ws_max_queue says. wsio pauses once ws_max_queue messages wait (32 by uvicorn's
    # default); what the test checks -- closing resumes reads paused on unread messages --
    # is then tested with a queue of one: the module's Config gets ws_max_queue=1 by
    # default, for that test only.
    if request.node.originalname == "test_close_resumes_reads_paused_on_an_unconsumed_message":
        config_cls = module.Config

        class QueueOfOne(config_cls):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, ws_max_queue: int = 1, **kwargs: Any) -> None:
                super().__init__(*args, ws_max_queue=ws_max_queue, **kwargs)

        monkeypatch.setattr(module, "Config", QueueOfOne)

    # b. The asyncio transport methods MockWriteTransport lacks (see TRANSPORT_METHODS),
    # added to the class; those it defines are left as they are.
    transport_cls = module.MockWriteTransport
    for name, method in TRANSPORT_METHODS.items():
        if not hasattr(transport_cls, name):
            monkeypatch.setattr(transport_cls, name, method, raising=False)


# The summary: outcomes per (WebSocket backend, HTTP protocol), then the skip reasons.
_backends: dict[str, tuple[str, str]] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        ws = WS_BACKENDS.get(params.get("ws_protocol_cls", ""), "(pins websockets-sansio)")
        http = params.get("http_protocol_cls", "")
        # "uvicorn.protocols.http.h11_impl:H11Protocol" -> "h11"
        http = http.partition(":")[0].rpartition(".")[2].removesuffix("_impl") or "-"
        _backends[item.nodeid] = (ws, http)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    outcomes: dict[str, str] = {}
    reasons: dict[str, str] = {}
    # Later categories win, so a test that passed its call and errored in teardown counts
    # once, as an error.
    for category in ("passed", "skipped", "xfailed", "xpassed", "failed", "error"):
        for report in terminalreporter.stats.get(category, []):
            nodeid = getattr(report, "nodeid", None)
            if nodeid in _backends:
                outcomes[nodeid] = category
                if category == "skipped" and isinstance(report.longrepr, tuple):
                    reasons[nodeid] = str(report.longrepr[2]).removeprefix("Skipped: ")
    if not outcomes:
        return
    counts: dict[tuple[str, str], Counter[str]] = {}
    for nodeid, category in outcomes.items():
        counts.setdefault(_backends[nodeid], Counter())[category] += 1
    write = terminalreporter.write_line
    terminalreporter.section("outcomes per WebSocket backend and HTTP protocol")
    for (ws, http), counter in sorted(counts.items()):
        tally = ", ".join(f"{n} {category}" for category, n in sorted(counter.items()))
        write(f"{ws:<26} {http:<10} {tally}")
    skips = Counter((_backends[nodeid][0], reason) for nodeid, reason in reasons.items())
    if skips:
        write("skipped, per WebSocket backend and reason:")
        for (ws, reason), n in sorted(skips.items()):
            write(f"{ws:<26} {n:>3} x {reason}")
