"""examples/fastapi_app.py in a real headless Chromium: the app runs under uvicorn on wsio's
WebSocket protocol class; two tabs chat through its page over compressed connections, and
a page reaches the other endpoints with the browser's own WebSocket."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import pytest
from cdp import Chromium, Tab

from appserver import example, serve_app
from wsio.asgi import WebSocketProtocol

pytestmark = pytest.mark.timeout(30)

app_module = example("fastapi_app")

LINES = "window.chat.lines"


@pytest.fixture
async def base() -> AsyncIterator[str]:
    async with serve_app(app_module.app, ws=WebSocketProtocol) as base:
        yield base


async def open_chat(browser: Chromium, url: str) -> tuple[Tab, str]:
    """Open the chat page in a new tab and wait for its greeting; the tab and its name."""
    tab = await browser.cdp.open_tab(url)
    await tab.wait_for("window.chat && window.chat.state", lambda state: state == "open")
    greeting = await tab.wait_for(f"{LINES}[0]")
    match = re.fullmatch(r"you are (guest-\d+)", greeting)
    assert match, greeting
    return tab, match.group(1)


async def lines_end_with(tab: Tab, line: str) -> None:
    await tab.wait_for(LINES, lambda lines: lines[-1:] == [line])


async def type_and_send(tab: Tab, text: str) -> None:
    """Type ``text`` in the input and click Send, as a person would."""
    left = await tab.evaluate(
        f"""(() => {{
            const input = document.getElementById('input');
            input.value = {json.dumps(text)};
            document.getElementById('send').click();
            return input.value;
        }})()"""
    )
    assert left == "", "the page didn't send (the input wasn't cleared)"


async def test_two_tabs_chat_compressed(browser: Chromium, base: str) -> None:
    tab_a, name_a = await open_chat(browser, f"http://{base}/")
    await lines_end_with(tab_a, f"{name_a} joined")
    tab_b, name_b = await open_chat(browser, f"http://{base}/")
    await lines_end_with(tab_b, f"{name_b} joined")
    await lines_end_with(tab_a, f"{name_b} joined")
    # Chromium offered permessage-deflate; the server accepted it.
    for tab in (tab_a, tab_b):
        extensions = await tab.evaluate("window.chat.socket.extensions")
        assert extensions.startswith("permessage-deflate"), extensions

    await type_and_send(tab_a, "hello from A")
    await lines_end_with(tab_b, f"{name_a}: hello from A")
    await lines_end_with(tab_a, f"{name_a}: hello from A")
    await type_and_send(tab_b, "<i>hi</i> from B ☕ " + "long " * 100)
    line_b = f"{name_b}: <i>hi</i> from B ☕ " + "long " * 100
    await lines_end_with(tab_a, line_b)
    await lines_end_with(tab_b, line_b)
    # Shown as text, never as markup.
    assert await tab_a.evaluate("document.querySelector('#log i')") is None

    await tab_b.close()
    await lines_end_with(tab_a, f"{name_b} left")
    assert await tab_a.evaluate(LINES) == [
        f"you are {name_a}",
        f"{name_a} joined",
        f"{name_b} joined",
        f"{name_a}: hello from A",
        line_b,
        f"{name_b} left",
    ]
    assert tab_a.exceptions() == []


ENDPOINTS_SCRIPT = """(async () => {
    const base = location.origin.replace(/^http/, "ws");
    const timeout = (what) => new Promise((_, reject) =>
        setTimeout(() => reject(new Error("timed out: " + what)), 5000));
    // Resolves with the socket once open, or with the close event if it never opens.
    const open = (path, protocols) => {
        const ws = new WebSocket(base + path, protocols);
        ws.binaryType = "arraybuffer";
        return Promise.race([
            new Promise((resolve) => {
                ws.onopen = () => resolve(ws);
                ws.onclose = (event) => resolve({refused: event.code});
            }),
            timeout("open " + path),
        ]);
    };
    const next = (ws) => Promise.race([
        new Promise((resolve) => ws.addEventListener(
            "message", (event) => resolve(event.data), {once: true})),
        timeout("a message"),
    ]);
    const results = {};

    const echo = await open("/echo");
    results.echoExtensions = echo.extensions;
    echo.send(new Uint8Array([0, 1, 254, 255]));
    results.binary = Array.from(new Uint8Array(await next(echo)));
    const big = "abc".repeat(100000);
    echo.send(big);
    results.bigSame = (await next(echo)) === big;
    echo.close();

    const proto = await open("/proto", ["chat.v1", "chat.v2"]);
    results.protocol = proto.protocol;
    results.protoGreeting = await next(proto);
    proto.close();
    results.protoRefused = await open("/proto", ["chat.v3"]);

    results.privateRefused = await open("/private");
    const allowed = await open("/private?token=TOKEN");
    results.privateGreeting = await next(allowed);
    allowed.close();
    return results;
})()"""


async def test_other_endpoints_from_the_page(browser: Chromium, base: str) -> None:
    tab = await browser.cdp.open_tab(f"http://{base}/")
    # The tab starts as about:blank: wait for the page itself.
    await tab.wait_for("document.title", lambda title: title == "wsio FastAPI chat")
    results = await tab.evaluate(ENDPOINTS_SCRIPT.replace("TOKEN", app_module.TOKEN))
    assert results.pop("echoExtensions").startswith("permessage-deflate")
    # A browser isn't shown a refused handshake's status: the socket closes with 1006.
    assert results == {
        "binary": [0, 1, 254, 255],
        "bigSame": True,
        "protocol": "chat.v2",
        "protoGreeting": "speaking chat.v2",
        "protoRefused": {"refused": 1006},
        "privateRefused": {"refused": 1006},
        "privateGreeting": "welcome",
    }
