"""A FastAPI app whose WebSocket endpoints run on wsio, under uvicorn.

From the repository root::

    uvicorn examples.fastapi_app:app --ws wsio.asgi:WebSocketProtocol

then open http://127.0.0.1:8000/ in two tabs and chat. The endpoints:

- ``/``: a chat page for ``/chat``;
- ``/echo``: sends every message back, text as text, bytes as bytes;
- ``/chat?room=NAME``: each line a client sends goes to everyone in the room (``lobby``
  when not given) through a :class:`wsio.Hub`; lines are at most ``MAX_LINE`` characters;
- ``/proto``: speaks ``chat.v2`` or ``chat.v1``, whichever of them the client offers,
  ``chat.v2`` first; refuses the handshake with HTTP 400 when the client offers neither;
- ``/private``: refuses the handshake with HTTP 401 without a token, 403 with a wrong one.

docs/asgi.md walks through this file.
"""

import itertools
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, WebSocket, status
from fastapi.responses import HTMLResponse, PlainTextResponse

import wsio
from wsio.asgi import get_connection

#: The longest chat line accepted, in characters. Longer ones close the sender's connection
#: with 1009 (message too big). uvicorn's ``--ws-max-size`` bounds every message of every
#: endpoint before it is read whole; this bound is the chat's own.
MAX_LINE = 1000

#: The subprotocols of ``/proto``, most preferred first.
SUBPROTOCOLS = ("chat.v2", "chat.v1")

#: The token ``/private`` wants. A real app would check a signed token or a session.
TOKEN = os.environ.get("EXAMPLE_TOKEN", "let-me-in")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    # One hub for the server process, started before the first connection and closed
    # after the last. It carries messages within this process only: with several workers
    # (`uvicorn --workers N`), give it a wsio.RedisBackend so that rooms span them.
    async with wsio.Hub() as hub:
        # Lifespan state: each request's and WebSocket's `.state` gets a copy of this.
        yield {"hub": hub}


app = FastAPI(lifespan=lifespan)


def get_hub(websocket: WebSocket) -> wsio.Hub:
    hub: wsio.Hub = websocket.state.hub
    return hub


HubDep = Annotated[wsio.Hub, Depends(get_hub)]
Room = Annotated[str, Query(min_length=1, max_length=40, pattern=r"^[\w-]+$")]

guest_numbers = itertools.count(1)


async def echo_messages(websocket: WebSocket) -> None:
    """Send every message back as it came, text or bytes, until the client goes."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"])
        else:
            await websocket.send_bytes(message["bytes"])


@app.websocket("/echo")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await echo_messages(websocket)


@app.websocket("/chat")
async def chat(websocket: WebSocket, hub: HubDep, room: Room = "lobby") -> None:
    await websocket.accept()
    name = f"guest-{next(guest_numbers)}"
    topic = f"room:{room}"
    await websocket.send_text(f"you are {name}")
    # From here on the hub writes the room's lines to this client itself: each line is
    # framed (and compressed) once for the whole room, and no task of this endpoint sends.
    # The endpoint only reads. The subscription ends when the connection closes.
    hub.subscribe(get_connection(websocket.scope), topic)
    await hub.publish(topic, f"{name} joined")
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            break
        line = message.get("text")
        if line is None:
            await websocket.close(status.WS_1003_UNSUPPORTED_DATA, "chat lines are text")
            break
        if len(line) > MAX_LINE:
            reason = f"lines are at most {MAX_LINE} characters"
            await websocket.close(status.WS_1009_MESSAGE_TOO_BIG, reason)
            break
        await hub.publish(topic, f"{name}: {line}")
    await hub.publish(topic, f"{name} left")


@app.websocket("/proto")
async def proto(websocket: WebSocket) -> None:
    # The client's offer, from its Sec-WebSocket-Protocol header. RFC 6455 leaves the
    # choice to the server: ours is by our own preference, not by the client's order.
    offered = websocket.scope.get("subprotocols", [])
    chosen = next((name for name in SUBPROTOCOLS if name in offered), None)
    if chosen is None:
        # Accepting without a subprotocol would leave the client guessing what to speak;
        # an HTTP answer tells it why, in a body that a client or a person can read.
        supported = ", ".join(SUBPROTOCOLS)
        response = PlainTextResponse(
            f"no supported subprotocol offered; this endpoint speaks {supported}\n",
            status_code=status.HTTP_400_BAD_REQUEST,
        )
        await websocket.send_denial_response(response)
        return
    await websocket.accept(subprotocol=chosen)
    await websocket.send_text(f"speaking {chosen}")
    await echo_messages(websocket)


@app.websocket("/private")
async def private(websocket: WebSocket, token: str | None = None) -> None:
    # Browsers can't set headers on a WebSocket, so the token may come in the query string;
    # other clients can send it as `Authorization: Bearer ...`.
    if token is None:
        scheme, _, credentials = websocket.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credentials:
            token = credentials
    if token is None:
        # A denial response instead of accepting then closing: the client learns the
        # status before any WebSocket exists, as with a refused HTTP request.
        response = PlainTextResponse(
            "a token is required: ?token=... or Authorization: Bearer ...\n",
            status_code=status.HTTP_401_UNAUTHORIZED,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await websocket.send_denial_response(response)
        return
    if not secrets.compare_digest(token.encode(), TOKEN.encode()):
        response = PlainTextResponse("wrong token\n", status_code=status.HTTP_403_FORBIDDEN)
        await websocket.send_denial_response(response)
        return
    await websocket.accept()
    await websocket.send_text("welcome")
    await echo_messages(websocket)


@app.get("/", response_class=HTMLResponse)
async def page() -> str:
    return PAGE.replace("MAX_LINE", str(MAX_LINE))


# The page connects to /chat on its own host, in the room of its own ?room=, and shows each
# line as text. window.chat (socket, lines, state) is there for tests.
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>wsio FastAPI chat</title>
<link rel="icon" href="data:,">
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; }
  #log { list-style: none; padding: .5rem; height: 20rem; overflow-y: auto;
         border: 1px solid #ccc; white-space: pre-wrap; }
  #form { display: flex; gap: .5rem; }
  #input { flex: 1; }
</style>
</head>
<body>
<h1>Chat</h1>
<p id="status">connecting…</p>
<ul id="log"></ul>
<form id="form">
  <input id="input" autocomplete="off" maxlength="MAX_LINE" disabled>
  <button id="send" disabled>Send</button>
</form>
<script>
"use strict";
const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const socket = new WebSocket(`${scheme}//${location.host}/chat${location.search}`);
const chat = { socket, lines: [], state: "connecting" };
window.chat = chat;
const [statusLine, log, form, input, send] =
  ["status", "log", "form", "input", "send"].map((id) => document.getElementById(id));

function setState(state, text) {
  chat.state = state;
  statusLine.textContent = text;
  input.disabled = send.disabled = state !== "open";
}

socket.onopen = () => setState("open", "connected");
socket.onclose = (event) => setState("closed", `closed (${event.code} ${event.reason})`);
socket.onmessage = (event) => {
  chat.lines.push(event.data);
  const item = document.createElement("li");
  item.textContent = event.data;  // others' text, never markup
  log.append(item);
  log.scrollTop = log.scrollHeight;
};
form.onsubmit = (event) => {
  event.preventDefault();
  if (input.value !== "") socket.send(input.value);
  input.value = "";
};
</script>
</body>
</html>
"""
