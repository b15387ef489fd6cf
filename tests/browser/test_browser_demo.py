"""The demo page in a real headless Chromium, driven over the DevTools protocol through
wsio's own client: two tabs chat through the page's form, also when two server processes
serve them through one Redis; a page echoes through /echo, the status line reports
closes. Chromium's WebSocket client meets wsio's server, and Chromium's DevTools
WebSocket server meets wsio's client."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable

import pytest
from cdp import Chromium, Tab

import wsio
from redisserver import RedisServer
from wsio.cli.demo import demo_server

pytestmark = pytest.mark.timeout(30)

LOG_TEXT = "document.getElementById('log').innerText"

# The demo_process fixture: starts `wsio serve ARGS`, returns its http:// base URL.
DemoProcess = Callable[..., Awaitable[str]]


async def open_chat(browser: Chromium, url: str) -> tuple[Tab, str]:
    """Open the page in a new tab, wait until its WebSocket is open and it was greeted;
    return the tab and the chat name it was given."""
    tab = await browser.cdp.open_tab(url)
    await tab.wait_for("window.demo && window.demo.state", lambda state: state == "open")
    greeting = await tab.wait_for("window.demo.messages[0]")
    # guest-3, or guest-1a2b-3 from a server chatting through Redis.
    match = re.fullmatch(r"you are (guest-(?:[0-9a-f]{8}-)?\d+)", greeting)
    assert match, greeting
    status = await tab.evaluate("document.getElementById('status').textContent")
    assert status == f"connected to {url.replace('http:', 'ws:')}chat"
    return tab, match.group(1)


async def log_has(tab: Tab, line: str) -> None:
    """Wait until the chat log shown in ``tab`` has ``line``."""
    await tab.wait_for(LOG_TEXT, lambda text: line in text.split("\n"))


async def type_and_send(tab: Tab, text: str) -> None:
    """Type ``text`` in the input and click Send, as a person would."""
    left_in_input = await tab.evaluate(
        f"""(() => {{
            const input = document.getElementById('input');
            input.value = {json.dumps(text)};
            document.getElementById('send').click();
            return input.value;
        }})()"""
    )
    assert left_in_input == "", "the page didn't send (the input wasn't cleared)"


async def test_two_tabs_chat(browser: Chromium, demo_url: str) -> None:
    page = f"{demo_url}/"
    tab_a, name_a = await open_chat(browser, page)
    tab_b, name_b = await open_chat(browser, page)
    assert name_a != name_b
    await log_has(tab_a, f"{name_a} joined")
    await log_has(tab_a, f"{name_b} joined")
    await log_has(tab_b, f"{name_b} joined")

    await type_and_send(tab_a, "hello from A")
    await log_has(tab_b, f"{name_a}: hello from A")
    await log_has(tab_a, f"{name_a}: hello from A")
    # Text is shown as text, never as markup.
    await type_and_send(tab_b, "<b>bold</b> & ☕")
    await log_has(tab_a, f"{name_b}: <b>bold</b> & ☕")
    assert await tab_a.evaluate("document.querySelector('#log b')") is None

    await tab_a.close()
    await log_has(tab_b, f"{name_a} left")
    messages = await tab_b.evaluate("window.demo.messages")
    assert messages == [
        f"you are {name_b}",
        f"{name_b} joined",
        f"{name_a}: hello from A",
        f"{name_b}: <b>bold</b> & ☕",
        f"{name_a} left",
    ]
    assert tab_b.exceptions() == []


async def test_two_servers_chat_through_redis(
    browser: Chromium, redis_server: RedisServer, demo_process: DemoProcess
) -> None:
    """``wsio serve --redis``: two tabs served by two server processes sharing one Redis
    chat through the page's form, over compressed connections."""
    first = await demo_process("--redis", redis_server.url)
    second = await demo_process("--redis", redis_server.url)
    assert first != second
    tab_a, name_a = await open_chat(browser, f"{first}/")
    # A's join line first, so that B's tab can't see it: B's log is then known exactly.
    await log_has(tab_a, f"{name_a} joined")
    tab_b, name_b = await open_chat(browser, f"{second}/")
    # Each process draws the random part of its names.
    part_a, part_b = (re.fullmatch(r"guest-([0-9a-f]{8})-\d+", n) for n in (name_a, name_b))
    assert part_a and part_b, (name_a, name_b)
    assert part_a.group(1) != part_b.group(1), "both processes drew the same part (p = 2**-16)"
    await log_has(tab_b, f"{name_b} joined")
    await log_has(tab_a, f"{name_b} joined")
    # Chromium offered permessage-deflate, and each server accepted it.
    for tab in (tab_a, tab_b):
        extensions = await tab.evaluate("window.demo.socket.extensions")
        assert extensions.startswith("permessage-deflate"), extensions

    await type_and_send(tab_a, "hello from A")
    await log_has(tab_b, f"{name_a}: hello from A")
    await log_has(tab_a, f"{name_a}: hello from A")
    await type_and_send(tab_b, "<b>bold</b> & ☕")
    await log_has(tab_a, f"{name_b}: <b>bold</b> & ☕")
    await log_has(tab_b, f"{name_b}: <b>bold</b> & ☕")
    assert await tab_a.evaluate("document.querySelector('#log b')") is None
    # Chat lines are shown as chat lines, the server's own lines as notices.
    shown = await tab_a.evaluate(
        "Array.from(document.querySelectorAll('#log li'), (li) => [li.textContent, li.className])"
    )
    assert shown == [
        [f"you are {name_a}", "notice"],
        [f"{name_a} joined", "notice"],
        [f"{name_b} joined", "notice"],
        [f"{name_a}: hello from A", ""],
        [f"{name_b}: <b>bold</b> & ☕", ""],
    ]

    await tab_a.close()
    await log_has(tab_b, f"{name_a} left")
    assert await tab_b.evaluate("window.demo.messages") == [
        f"you are {name_b}",
        f"{name_b} joined",
        f"{name_a}: hello from A",
        f"{name_b}: <b>bold</b> & ☕",
        f"{name_a} left",
    ]
    assert tab_b.exceptions() == []


ECHO_SCRIPT = """(async () => {
    const url = location.origin.replace(/^http/, "ws") + "/echo";
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    const timeout = (what) => new Promise((_, reject) =>
        setTimeout(() => reject(new Error("timed out: " + what)), 5000));
    const opened = new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = () => reject(new Error("WebSocket error"));
    });
    await Promise.race([opened, timeout("open")]);
    const echo = async (message) => {
        const reply = new Promise((resolve) =>
            ws.addEventListener("message", (event) => resolve(event.data), {once: true}));
        ws.send(message);
        return await Promise.race([reply, timeout("echo")]);
    };
    const results = {};
    results.text = await echo("echo me ☕");
    results.empty = await echo("");
    const big = "x".repeat(300000);
    results.bigSame = (await echo(big)) === big;
    const binary = await echo(new Uint8Array([0, 1, 2, 253, 254, 255]));
    results.binaryType = binary instanceof ArrayBuffer ? "ArrayBuffer" : typeof binary;
    results.binary = Array.from(new Uint8Array(binary));
    const closed = new Promise((resolve) => { ws.onclose = resolve; });
    ws.close(1000, "done");
    const event = await Promise.race([closed, timeout("close")]);
    results.close = [event.code, event.reason, event.wasClean];
    return results;
})()"""


async def test_echo_from_the_page(browser: Chromium, demo_url: str) -> None:
    tab = await browser.cdp.open_tab(f"{demo_url}/")
    await tab.wait_for("window.demo && window.demo.state", lambda state: state == "open")
    results = await tab.evaluate(ECHO_SCRIPT)
    assert results == {
        "text": "echo me ☕",
        "empty": "",
        "bigSame": True,
        "binaryType": "ArrayBuffer",
        "binary": [0, 1, 2, 253, 254, 255],
        "close": [1000, "done", True],
    }
    assert tab.exceptions() == []


async def test_status_line_shows_close_code(browser: Chromium) -> None:
    async with demo_server("127.0.0.1", 0, None) as server:
        port = server.sockets[0].getsockname()[1]
        tab, _ = await open_chat(browser, f"http://127.0.0.1:{port}/")
        assert await tab.evaluate("document.getElementById('send').disabled") is False
    # Leaving the block closed the server: the page was told 1001, going away.
    await tab.wait_for("window.demo.state", lambda state: state == "closed")
    assert await tab.evaluate("window.demo.closeCode") == 1001
    status = await tab.evaluate("document.getElementById('status').textContent")
    assert status.startswith("closed (code 1001")
    assert await tab.evaluate("document.getElementById('send').disabled") is True


async def test_devtools_server_interop(browser: Chromium) -> None:
    """wsio's client against Chromium's DevTools WebSocket server: ping, a command with a
    large answer, and the closing handshake."""
    cdp = browser.cdp
    assert browser.version["Browser"].startswith(("Chrome/", "HeadlessChrome/"))
    async with asyncio.timeout(5):
        latency = await cdp.ws.ping()
    assert latency >= 0
    version = await cdp.send("Browser.getVersion")
    assert version["product"] == browser.version["Browser"]
    # A message well over a frame of 64 KiB, both ways.
    tab = await cdp.open_tab("about:blank")
    size = 3 * 2**20
    value = await tab.evaluate(f"'y'.repeat({size})")
    assert value == "y" * size
    echoed = await tab.evaluate(json.dumps("z" * size) + ".length")
    assert echoed == size
    async with asyncio.timeout(10):
        await cdp.ws.close()
    assert cdp.ws.close_code == 1000
    with pytest.raises(wsio.ConnectionClosed):
        await cdp.send("Browser.getVersion")
