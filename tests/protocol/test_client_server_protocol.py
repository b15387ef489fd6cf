"""ClientProtocol and ServerProtocol: the opening handshake in bytes (RFC 6455 §4), then
a whole conversation between the two."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsio import defaults
from wsio.exceptions import (
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidOrigin,
    InvalidState,
    InvalidStatus,
    InvalidUpgrade,
    NegotiationError,
    SecurityError,
)
from wsio.protocol.connection import (
    BinaryMessage,
    ClientProtocol,
    Ping,
    Pong,
    RequestReceived,
    ResponseReceived,
    ServerProtocol,
    Side,
    State,
    TextMessage,
)
from wsio.protocol.frames import Close
from wsio.protocol.handshake import Origin
from wsio.protocol.http11 import Response, parse_response
from wsio.protocol.uri import parse_uri

from .helpers import (
    CLOSE,
    MASK,
    PING,
    RFC_ACCEPT,
    RFC_KEY,
    TEXT,
    chop,
    close_payload,
    fixed_random,
    frame,
    output,
    parse_all,
)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

RFC_REQUEST = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Origin: http://example.com\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"\r\n"
)

RFC_RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"Sec-WebSocket-Protocol: chat\r\n"
    b"\r\n"
)

OTHER_ACCEPT = b"x3JJHMbDL1EzLkh9GBhXDw=="

MINIMAL_RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"\r\n"
)


def make_client(**kwargs: object) -> ClientProtocol:
    kwargs.setdefault("user_agent_header", None)
    return ClientProtocol(
        parse_uri("ws://server.example.com/chat"),
        random_bytes=fixed_random,
        **kwargs,  # type: ignore[arg-type]
    )


def started_client(**kwargs: object) -> ClientProtocol:
    client = make_client(**kwargs)
    client.send_request(client.connect())
    client.data_to_send()
    return client


def make_server(**kwargs: object) -> ServerProtocol:
    kwargs.setdefault("server_header", None)
    return ServerProtocol(random_bytes=fixed_random, **kwargs)  # type: ignore[arg-type]


def serve(data: bytes, **kwargs: object) -> ServerProtocol:
    """Feed a request to a server and answer as an I/O layer does: accept() it."""
    server = make_server(**kwargs)
    server.receive_data(data)
    for event in server.events_received():
        assert isinstance(event, RequestReceived)
        server.send_response(server.accept(event.request))
    return server


def request(*lines: str, drop: Sequence[str] = (), start: str = "GET /chat HTTP/1.1") -> bytes:
    """The RFC example request without the headers in ``drop``, plus ``lines``."""
    head = [start]
    for line in RFC_REQUEST.decode().split("\r\n")[1:-2]:
        if line.split(":")[0] not in drop:
            head.append(line)
    head.extend(lines)
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def written_response(server: ServerProtocol) -> tuple[Response, bool]:
    """The response the server wrote, parsed back, and whether it then closed TCP."""
    writes = server.data_to_send()
    eof = b"" in writes
    data = b"".join(writes)
    return parse_all(parse_response, data), eof


def assert_rejected(server: ServerProtocol, status: int) -> Response:
    """The server answered ``status``, closed TCP and won't read anything more."""
    response, eof = written_response(server)
    assert response.status_code == status
    assert eof
    assert server.state is State.CLOSED
    assert isinstance(server.handshake_exc, InvalidHandshake)
    assert response.headers["Connection"] == "close"
    assert response.headers["Content-Length"] == str(len(response.body))
    # No request smuggling: what follows is never parsed.
    server.receive_data(RFC_REQUEST + frame(TEXT, b"x", mask=MASK))
    assert server.events_received() == []
    assert server.data_to_send() == []
    with pytest.raises(InvalidState):
        server.send_response(response)
    return response


# Client: the request (§4.1)


def test_client_request_rfc_example() -> None:
    client = make_client(origin="http://example.com", subprotocols=["chat", "superchat"])
    assert client.key == RFC_KEY
    assert client.state is State.CONNECTING
    client.send_request(client.connect())
    assert client.data_to_send() == [RFC_REQUEST]


def test_client_request_defaults() -> None:
    client = ClientProtocol(
        parse_uri("wss://example.com:8443/path?q=1"), random_bytes=fixed_random
    )
    client.send_request(client.connect())
    assert client.data_to_send() == [
        b"GET /path?q=1 HTTP/1.1\r\n"
        b"Host: example.com:8443\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"User-Agent: " + defaults.USER_AGENT.encode() + b"\r\n"
        b"\r\n"
    ]


def test_client_request_additional_headers() -> None:
    client = make_client(additional_headers=[("Authorization", "Bearer x"), ("X-A", "1")])
    request = client.connect()
    assert request.headers["Authorization"] == "Bearer x"
    assert request.headers["X-A"] == "1"


def test_client_request_can_be_edited() -> None:
    client = make_client()
    request = client.connect()
    request.headers["X-Edited"] = "yes"
    client.send_request(request)
    assert b"X-Edited: yes\r\n" in client.data_to_send()[0]
    assert client.request is request


def test_client_key_is_fresh_randomness() -> None:
    """§4.1 point 7: the nonce MUST be selected randomly for each connection."""
    keys = {ClientProtocol(parse_uri("ws://a/")).key for _ in range(5)}
    assert len(keys) == 5


def test_client_sends_the_request_once() -> None:
    client = make_client()
    client.send_request(client.connect())
    with pytest.raises(InvalidState):
        client.send_request(client.connect())


def test_client_cannot_send_messages_before_the_handshake() -> None:
    client = started_client()
    for command in (
        lambda: client.send_text(b"x"),
        lambda: client.send_binary(b"x"),
        lambda: client.send_ping(b"x"),
        lambda: client.send_close(1000),
    ):
        with pytest.raises(InvalidState):
            command()
    assert client.data_to_send() == []
    assert not client.close_expected()


# Client: the response (§4.1, §4.2.2)


def test_client_accepts_rfc_response() -> None:
    client = started_client(subprotocols=["chat", "superchat"])
    client.receive_data(RFC_RESPONSE)
    [event] = client.events_received()
    assert isinstance(event, ResponseReceived)
    assert event.response is client.response
    assert event.response.status_code == 101
    assert client.state is State.OPEN
    assert client.subprotocol == "chat"
    assert client.handshake_exc is None
    assert client.data_to_send() == []


def test_open_connections_keep_no_parser_while_idle() -> None:
    # An idle connection's memory: once open, with nothing buffered, neither side keeps
    # a suspended parser (the handshake's nor the frames'); the next bytes start one.
    client = started_client(subprotocols=["chat", "superchat"])
    client.receive_data(RFC_RESPONSE)
    server = serve(RFC_REQUEST, subprotocols=["chat"])
    for protocol in client, server:
        assert protocol.state is State.OPEN
        assert protocol._parser is None
    # The request and the answer received are kept as their heads alone, read on demand.
    assert server.request is not None and client.response is not None
    assert server.request.headers._lines is None
    assert server.request.headers["Sec-WebSocket-Protocol"] == "chat, superchat"
    assert client.response.headers._lines is None
    assert client.response.headers["Sec-WebSocket-Protocol"] == "chat"
    # And the request and the answer sent, as the heads written.
    assert client.request is not None and server.response is not None
    assert client.request.headers._lines is None
    assert client.request.headers["Sec-WebSocket-Protocol"] == "chat, superchat"
    assert server.response.headers._lines is None
    assert server.response.headers["Sec-WebSocket-Protocol"] == "chat"
    server.receive_data(b"\x81\x82abcd" + bytes([ord("h") ^ 97, ord("i") ^ 98])[:1])
    assert server._parser is not None  # in the middle of a frame
    server.receive_data(bytes([ord("i") ^ 98]))
    assert server.events_received() == [TextMessage("hi")]
    assert server._parser is None


EARLY_REJECTION = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nearly"


def test_client_reads_an_early_answer_once_its_request_is_sent() -> None:
    # A server may answer on accept; the answer is only parsed as the request's.
    client = make_client()
    client.receive_data(EARLY_REJECTION)
    assert client.events_received() == []
    assert client.state is State.CONNECTING
    client.send_request(client.connect())
    [event] = client.events_received()
    assert isinstance(event, ResponseReceived)
    assert isinstance(client.handshake_exc, InvalidStatus)
    assert client.handshake_exc.response.body == b"early"
    writes = client.data_to_send()
    assert writes[0].startswith(b"GET /chat HTTP/1.1\r\n")
    assert writes[1:] == [b""]
    assert client.state is State.CLOSED


def test_client_early_answer_then_eof_before_the_request() -> None:
    # The server ended the connection before the request could go: it is not sent, and
    # the answer still decides the outcome.
    client = make_client()
    client.receive_data(EARLY_REJECTION)
    client.receive_eof()
    assert client.stream_ended
    assert client.data_to_send() == [b""]
    client.send_request(client.connect())
    assert client.data_to_send() == []
    assert isinstance(client.handshake_exc, InvalidStatus)
    assert client.handshake_exc.response.status_code == 403


def test_client_eof_before_the_request() -> None:
    client = make_client()
    client.receive_eof()
    client.send_request(client.connect())
    assert client.data_to_send() == [b""]
    assert isinstance(client.handshake_exc, InvalidMessage)
    assert client.response is None


def test_client_accepts_response_one_byte_at_a_time() -> None:
    client = started_client()
    for i in range(len(MINIMAL_RESPONSE)):
        assert client.state is State.CONNECTING
        client.receive_data(MINIMAL_RESPONSE[i : i + 1])
    assert client.state is State.OPEN
    assert [type(e) for e in client.events_received()] == [ResponseReceived]


@pytest.mark.parametrize(
    "status_line",
    [
        b"HTTP/1.1 101 Switching Protocols",
        b"HTTP/1.1 101 Web Socket Protocol Handshake",
        b"HTTP/1.1 101 OK",
        b"HTTP/1.1 101 ",
        b"HTTP/1.1 101",
        b"HTTP/1.1 101 \xe9t\xe9",
    ],
)
def test_client_accepts_any_reason_phrase(status_line: bytes) -> None:
    """§4.1 point 1 only looks at the status code; RFC 9112 §4 makes the reason optional."""
    client = started_client()
    client.receive_data(status_line + MINIMAL_RESPONSE[MINIMAL_RESPONSE.index(b"\r\n") :])
    assert client.handshake_exc is None
    assert client.state is State.OPEN


def test_client_accepts_header_variants() -> None:
    client = started_client()
    client.receive_data(
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"upgrade: WebSocket\r\n"
        b"connection: keep-alive, upgrade\r\n"
        b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"Server: test\r\n"
        b"\r\n"
    )
    assert client.state is State.OPEN
    assert client.subprotocol is None


def test_client_parses_frames_right_after_the_response() -> None:
    client = started_client()
    client.receive_data(MINIMAL_RESPONSE + frame(TEXT, b"hello") + frame(PING, b"p"))
    events = client.events_received()
    assert [type(e) for e in events] == [ResponseReceived, TextMessage, Ping]
    assert events[1] == TextMessage("hello")
    assert client.data_to_send() == [frame(0xA, b"p", mask=MASK)]


def test_client_handles_close_right_after_the_response() -> None:
    client = started_client()
    client.receive_data(MINIMAL_RESPONSE + frame(CLOSE, close_payload(1001)))
    client.receive_eof()
    assert client.state is State.CLOSED
    assert client.close_rcvd == Close(1001)
    assert isinstance(client.close_exc, ConnectionClosedOK)


def test_client_server_closes_right_after_101() -> None:
    client = started_client()
    client.receive_data(MINIMAL_RESPONSE)
    client.receive_eof()
    assert [type(e) for e in client.events_received()] == [ResponseReceived]
    assert client.handshake_exc is None
    assert client.state is State.CLOSED
    assert client.close_code == 1006
    assert client.data_to_send() == [b""]


def _assert_client_failed(client: ClientProtocol, exc_type: type[InvalidHandshake]) -> None:
    assert isinstance(client.handshake_exc, exc_type)
    assert client.state is State.CLOSED
    assert client.data_to_send() == [b""]  # the client closes TCP itself
    # Nothing after the failed handshake is parsed as frames.
    assert not client.receiving
    client.receive_data(frame(TEXT, b"x"))
    assert [e for e in client.events_received() if not isinstance(e, ResponseReceived)] == []
    with pytest.raises(InvalidState):
        client.send_text(b"x")


@pytest.mark.parametrize("status", [200, 301, 400, 403, 404, 426, 500, 503])
def test_client_non_101_content_length(status: int) -> None:
    client = started_client()
    client.receive_data(
        b"HTTP/1.1 %d Some Reason\r\nContent-Length: 5\r\nX-Why: test\r\n\r\nhello" % status
    )
    exc = client.handshake_exc
    assert isinstance(exc, InvalidStatus)
    assert exc.response.status_code == status
    assert exc.response.reason_phrase == "Some Reason"
    assert exc.response.headers["X-Why"] == "test"
    assert exc.response.body == b"hello"
    assert not exc.response.body_truncated
    assert [type(e) for e in client.events_received()] == [ResponseReceived]
    _assert_client_failed(client, InvalidStatus)


def test_client_non_101_chunked() -> None:
    client = started_client()
    client.receive_data(
        b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"6\r\nDenied\r\n2\r\n.\n\r\n0\r\n\r\n"
    )
    exc = client.handshake_exc
    assert isinstance(exc, InvalidStatus)
    assert exc.response.body == b"Denied.\n"
    _assert_client_failed(client, InvalidStatus)


def test_client_non_101_body_until_eof() -> None:
    client = started_client()
    client.receive_data(b"HTTP/1.1 404 Not Found\r\n\r\nNo such ")
    assert client.handshake_exc is None
    assert client.state is State.CONNECTING
    client.receive_data(b"endpoint")
    client.receive_eof()
    exc = client.handshake_exc
    assert isinstance(exc, InvalidStatus)
    assert exc.response.body == b"No such endpoint"
    assert client.state is State.CLOSED


def test_client_non_101_body_limit() -> None:
    client = started_client(max_body_size=4)
    client.receive_data(b"HTTP/1.1 500 Oops\r\nContent-Length: 10\r\n\r\n0123456789")
    exc = client.handshake_exc
    assert isinstance(exc, InvalidStatus)
    assert exc.response.body == b"0123"
    assert exc.response.body_truncated


def test_client_non_101_body_limit_without_eof() -> None:
    """A server that streams a body forever cannot keep the client waiting."""
    client = started_client(max_body_size=4)
    client.receive_data(b"HTTP/1.1 500 Oops\r\n\r\n0123456789")
    exc = client.handshake_exc
    assert isinstance(exc, InvalidStatus)
    assert exc.response.body == b"0123"
    assert exc.response.body_truncated


def test_client_non_101_without_body() -> None:
    client = started_client()
    client.receive_data(b"HTTP/1.1 204 No Content\r\n\r\n")
    exc = client.handshake_exc
    assert isinstance(exc, InvalidStatus)
    assert exc.response.body == b""


@pytest.mark.parametrize(
    ("response", "exc_type"),
    [
        (MINIMAL_RESPONSE.replace(RFC_ACCEPT.encode(), OTHER_ACCEPT), InvalidHeader),
        (MINIMAL_RESPONSE.replace(b"Sec-WebSocket-Accept: " + RFC_ACCEPT.encode() + b"\r\n", b""),
         InvalidHeader),
        (MINIMAL_RESPONSE.replace(b"Upgrade: websocket\r\n", b""), InvalidUpgrade),
        (MINIMAL_RESPONSE.replace(b"Upgrade: websocket", b"Upgrade: h2c"), InvalidUpgrade),
        (MINIMAL_RESPONSE.replace(b"Connection: Upgrade\r\n", b""), InvalidUpgrade),
        (MINIMAL_RESPONSE.replace(b"Connection: Upgrade", b"Connection: close"), InvalidUpgrade),
        (RFC_RESPONSE, NegotiationError),  # "chat" wasn't offered
        (MINIMAL_RESPONSE[:-2] + b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
         NegotiationError),
    ],
)  # fmt: skip
def test_client_rejects_bad_101(response: bytes, exc_type: type[InvalidHandshake]) -> None:
    client = started_client()
    client.receive_data(response + frame(TEXT, b"never parsed"))
    events = client.events_received()
    assert [type(e) for e in events] == [ResponseReceived]
    _assert_client_failed(client, exc_type)


def test_client_rejects_accept_of_another_key() -> None:
    """§4.1 point 4: the accept value must be derived from the key this client sent."""
    client = ClientProtocol(parse_uri("ws://a/"), random_bytes=lambda n: bytes(n))
    client.send_request(client.connect())
    client.receive_data(MINIMAL_RESPONSE)
    assert isinstance(client.handshake_exc, InvalidHeaderValue)


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 1010 Switching Protocols\r\n\r\n",
        b"HTTP/2 101\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1 101 OK\nUpgrade: websocket\r\n\r\n",
        b"HTTP/1.1 101 OK\r\nUpgrade : websocket\r\n\r\n",
    ],
)
def test_client_malformed_response(response: bytes) -> None:
    client = started_client()
    client.receive_data(response)
    assert client.events_received() == []
    _assert_client_failed(client, InvalidMessage)


def test_client_response_too_long() -> None:
    client = started_client(max_line_length=64)
    client.receive_data(b"HTTP/1.1 101 " + b"x" * 100)
    _assert_client_failed(client, SecurityError)


def test_client_response_too_many_headers() -> None:
    client = started_client(max_headers=3)
    client.receive_data(MINIMAL_RESPONSE[:-2] + b"Server: x\r\n\r\n")
    _assert_client_failed(client, SecurityError)


@pytest.mark.parametrize("cut", [0, 10, len(MINIMAL_RESPONSE) - 1])
def test_client_eof_during_handshake(cut: int) -> None:
    client = started_client()
    client.receive_data(MINIMAL_RESPONSE[:cut])
    client.receive_eof()
    assert isinstance(client.handshake_exc, InvalidMessage)
    assert isinstance(client.handshake_exc.__cause__, EOFError)
    assert client.state is State.CLOSED
    assert client.data_to_send() == [b""]
    assert client.events_received() == []


@pytest.mark.parametrize("value", [b"\xb2", b"1\xb3"])
def test_client_non_ascii_digits_in_content_length(value: bytes) -> None:
    """The core never raises on peer input: a Content-Length of "²" (ISO-8859-1 0xB2,
    a digit for str.isdigit() but not for RFC 9110's 1*DIGIT) fails the handshake."""
    client = started_client()
    client.receive_data(b"HTTP/1.1 403 Forbidden\r\nContent-Length: " + value + b"\r\n\r\n")
    assert isinstance(client.handshake_exc, InvalidMessage)
    assert client.state is State.CLOSED


# Server: accepting (§4.2.2)


def test_server_accepts_rfc_request() -> None:
    server = make_server(subprotocols=["superchat", "chat"])
    assert server.state is State.CONNECTING
    server.receive_data(RFC_REQUEST)
    [event] = server.events_received()
    assert isinstance(event, RequestReceived)
    assert event.request is server.request
    assert event.request.path == "/chat"
    assert server.data_to_send() == []
    response = server.accept(event.request)
    assert server.handshake_exc is None
    server.send_response(response)
    assert server.data_to_send() == [RFC_RESPONSE]
    assert server.state is State.OPEN
    assert server.subprotocol == "chat"
    assert server.response is response


def test_server_request_started_with_its_first_byte() -> None:
    # A server shutting down answers 503 at once only where no request has begun.
    server = make_server()
    assert not server.request_started
    server.receive_data(b"")
    assert not server.request_started
    server.receive_data(RFC_REQUEST[:1])
    assert server.request_started
    assert server.events_received() == []
    server.receive_data(RFC_REQUEST[1:])
    [event] = server.events_received()
    assert isinstance(event, RequestReceived)


def test_server_request_not_started_on_eof() -> None:
    server = make_server()
    server.receive_eof()
    assert not server.request_started
    assert isinstance(server.handshake_exc, InvalidMessage)
    assert server.state is State.CLOSED


@pytest.mark.parametrize("status", [101, 200])
def test_server_answers_a_client_that_ended_its_side_after_the_request(status: int) -> None:
    # RFC 9112 §9.6: a client may half-close once its request is sent; the answer is
    # still due, and the connection closes right after it.
    server = make_server()
    server.receive_data(RFC_REQUEST + frame(TEXT, b"before", mask=MASK))
    server.receive_eof()
    assert server.stream_ended
    assert server.state is State.CONNECTING
    [event] = server.events_received()
    assert isinstance(event, RequestReceived)
    assert server.data_to_send() == []
    accepted = status == 101
    server.send_response(
        server.accept(event.request) if accepted else server.reject(status, "health\n")
    )
    writes = server.data_to_send()
    assert parse_all(parse_response, writes[0]).status_code == status
    assert writes[1:] == [b""]
    assert server.state is State.CLOSED
    if accepted:
        # The message that came before the end is still delivered.
        assert [type(e) for e in server.events_received()] == [TextMessage]


def test_server_eof_before_a_complete_request_closes() -> None:
    server = make_server()
    server.receive_data(RFC_REQUEST[:20])
    server.receive_eof()
    assert server.state is State.CLOSED
    assert isinstance(server.handshake_exc, InvalidMessage)


def test_server_accept_key() -> None:
    server = serve(RFC_REQUEST)
    response, eof = written_response(server)
    assert response.headers["Sec-WebSocket-Accept"] == RFC_ACCEPT
    assert not eof


def test_server_header() -> None:
    server = ServerProtocol(random_bytes=fixed_random)
    server.receive_data(RFC_REQUEST)
    [event] = server.events_received()
    server.send_response(server.accept(event.request))  # type: ignore[union-attr]
    response, _ = written_response(server)
    assert response.headers["Server"] == defaults.SERVER_HEADER


def test_server_without_subprotocols_selects_none() -> None:
    server = serve(RFC_REQUEST)
    response, _ = written_response(server)
    assert "Sec-WebSocket-Protocol" not in response.headers
    assert server.subprotocol is None


def test_server_request_one_byte_at_a_time() -> None:
    server = make_server()
    for i in range(len(RFC_REQUEST) - 1):
        server.receive_data(RFC_REQUEST[i : i + 1])
        assert server.events_received() == []
    server.receive_data(RFC_REQUEST[-1:])
    assert [type(e) for e in server.events_received()] == [RequestReceived]


def test_server_frames_behind_the_request_wait_for_the_response() -> None:
    server = make_server()
    server.receive_data(RFC_REQUEST + frame(TEXT, b"early", mask=MASK))
    [event] = server.events_received()
    server.receive_data(frame(PING, b"p", mask=MASK))
    assert server.events_received() == []
    assert server.data_to_send() == []
    server.send_response(server.accept(event.request))  # type: ignore[union-attr]
    assert server.events_received() == [TextMessage("early"), Ping(b"p")]
    assert server.data_to_send() == [MINIMAL_RESPONSE, frame(0xA, b"p")]


def test_server_cannot_send_before_the_response() -> None:
    server = make_server()
    server.receive_data(RFC_REQUEST)
    with pytest.raises(InvalidState):
        server.send_text(b"x")


@pytest.mark.parametrize(
    ("origins", "origin", "allowed"),
    [
        (["http://example.com"], "http://example.com", True),
        (["https://example.com"], "http://example.com", False),
        ([re.compile(r"http://(www\.)?example\.com")], "http://example.com", True),
        ([re.compile(r"http://www\.example\.com")], "http://example.com", False),
        ([None], None, True),
        (["http://example.com"], None, False),
        ([], "http://example.com", False),
    ],
)
def test_server_origins(origins: list[Origin], origin: str | None, allowed: bool) -> None:
    """§4.2.2 point 4 and §10.2: a server may refuse an origin with 403."""
    data = request(*([f"Origin: {origin}"] if origin else []), drop=("Origin",))
    server = serve(data, origins=origins)
    if allowed:
        assert server.state is State.OPEN
    else:
        assert_rejected(server, 403)
        assert isinstance(server.handshake_exc, InvalidOrigin)


# Server: refusing (§4.2.1, §4.2.2, §4.4)


def test_server_bad_method() -> None:
    server = serve(request(start="POST /chat HTTP/1.1"))
    response = assert_rejected(server, 405)
    assert response.headers["Allow"] == "GET"


def test_server_http_1_0() -> None:
    assert_rejected(serve(request(start="GET /chat HTTP/1.0")), 505)


def test_server_http_2() -> None:
    """Refused by the parser itself: no RequestReceived event, the answer goes out."""
    server = make_server()
    server.receive_data(request(start="GET /chat HTTP/2.0"))
    assert server.events_received() == []
    assert_rejected(server, 505)


@pytest.mark.parametrize(
    "data",
    [
        request(drop=("Sec-WebSocket-Key",)),
        request("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="),
        request("Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw=="),
        request("Sec-WebSocket-Key: not a key", drop=("Sec-WebSocket-Key",)),
        request("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j", drop=("Sec-WebSocket-Key",)),
        request("Sec-WebSocket-Key: ", drop=("Sec-WebSocket-Key",)),
    ],
    ids=["missing", "duplicate", "two-different", "not-base64", "12-bytes", "empty"],
)
def test_server_bad_key(data: bytes) -> None:
    """§4.2.1 point 5: exactly one key, base64 of 16 bytes; else 400 (§4.2.2 point 4)."""
    server = serve(data)
    assert_rejected(server, 400)
    assert isinstance(server.handshake_exc, InvalidHeader)


@pytest.mark.parametrize(
    "data",
    [
        request(drop=("Sec-WebSocket-Version",)),
        request("Sec-WebSocket-Version: 8", drop=("Sec-WebSocket-Version",)),
        request("Sec-WebSocket-Version: 13, 8", drop=("Sec-WebSocket-Version",)),
        request("Sec-WebSocket-Version: 13"),
    ],
)
def test_server_bad_version(data: bytes) -> None:
    """§4.2.2 point 4 and §4.4: 426 with the supported version."""
    response = assert_rejected(serve(data), 426)
    assert response.headers.get_all("Sec-WebSocket-Version") == ["13"]


@pytest.mark.parametrize(
    "data",
    [
        request(drop=("Upgrade",)),
        request("Upgrade: h2c", drop=("Upgrade",)),
        request(drop=("Connection",)),
        request("Connection: keep-alive", drop=("Connection",)),
    ],
)
def test_server_bad_upgrade_or_connection(data: bytes) -> None:
    """RFC 9110 §15.5.22: a 426 says what to upgrade to."""
    server = serve(data)
    response = assert_rejected(server, 426)
    assert response.headers["Upgrade"] == "websocket"
    assert isinstance(server.handshake_exc, InvalidUpgrade)


def test_server_accepts_lenient_upgrade_and_connection() -> None:
    data = request(
        "Upgrade: WebSocket", "Connection: keep-alive, Upgrade", drop=("Upgrade", "Connection")
    )
    assert serve(data).state is State.OPEN


def test_server_invalid_subprotocol_list() -> None:
    server = serve(
        request("Sec-WebSocket-Protocol: chat superchat", drop=("Sec-WebSocket-Protocol",)),
        subprotocols=["chat"],
    )
    assert_rejected(server, 400)


def test_server_missing_host() -> None:
    assert_rejected(serve(request(drop=("Host",))), 400)


@pytest.mark.parametrize(
    "data",
    [
        request("Content-Length: 5", start="GET /chat HTTP/1.1") + b"hello",
        request("Transfer-Encoding: chunked") + b"5\r\nhello\r\n0\r\n\r\n",
    ],
)
def test_server_request_with_a_body(data: bytes) -> None:
    """A body would be read as frames: refused with 400."""
    assert_rejected(serve(data), 400)


def test_server_too_many_headers() -> None:
    server = make_server(max_headers=7)  # the RFC example has 7 header fields
    server.receive_data(request("X-Extra: 1"))
    assert server.events_received() == []
    assert_rejected(server, 431)
    assert isinstance(server.handshake_exc, SecurityError)


def test_server_header_line_too_long() -> None:
    server = make_server(max_line_length=100)
    server.receive_data(request("X-Long: " + "x" * 100))
    assert_rejected(server, 431)


def test_server_request_line_too_long() -> None:
    """RFC 9112 §3: 414 URI Too Long; refused before the line ends."""
    server = make_server(max_line_length=100)
    server.receive_data(b"GET /" + b"a" * 200)
    assert_rejected(server, 414)


@pytest.mark.parametrize(
    "data",
    [
        b"GET /chat\r\n\r\n",
        b"GET /chat HTTP/1.1\nHost: a\r\n\r\n",
        b"GET /chat HTTP/1.1\r\nHost : a\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n",  # TLS on a plain port
    ],
)
def test_server_malformed_request(data: bytes) -> None:
    server = make_server()
    server.receive_data(data)
    assert_rejected(server, 400)


def test_server_eof_during_handshake() -> None:
    server = make_server()
    server.receive_data(RFC_REQUEST[:20])
    server.receive_eof()
    assert isinstance(server.handshake_exc, InvalidMessage)
    assert isinstance(server.handshake_exc.__cause__, EOFError)
    assert server.state is State.CLOSED
    assert server.events_received() == []
    assert server.data_to_send() == [b""]


def test_server_custom_rejection() -> None:
    server = make_server(server_header="test/1")
    server.receive_data(RFC_REQUEST)
    server.events_received()
    response = server.reject(404, "No such chat room.\n")
    assert response.headers["Server"] == "test/1"
    server.send_response(response)
    written = assert_rejected(server, 404)
    assert written.body == b"No such chat room.\n"
    assert written.reason_phrase == "Not Found"


def test_server_custom_rejection_without_server_header() -> None:
    server = make_server()
    server.receive_data(RFC_REQUEST)
    server.events_received()
    response = server.reject(503, "Busy.\n")
    assert "Server" not in response.headers
    server.send_response(response)
    assert_rejected(server, 503)


def test_server_rejection_from_accept_is_recorded() -> None:
    server = make_server()
    server.receive_data(request(drop=("Sec-WebSocket-Key",)))
    [event] = server.events_received()
    response = server.accept(event.request)  # type: ignore[union-attr]
    assert response.status_code == 400
    assert isinstance(server.handshake_exc, InvalidHeader)
    assert server.state is State.CONNECTING  # until the response is sent
    server.send_response(response)
    assert server.state is State.CLOSED


# Both together


def pipe(source: ClientProtocol | ServerProtocol, sink: ClientProtocol | ServerProtocol) -> None:
    """Deliver what ``source`` wrote to ``sink``, EOF included."""
    for data in source.data_to_send():
        if data:
            sink.receive_data(data)
        else:
            sink.receive_eof()


def test_conversation() -> None:
    client = make_client(subprotocols=["chat"])
    server = make_server(subprotocols=["chat"])
    client.send_request(client.connect())
    pipe(client, server)
    [event] = server.events_received()
    server.send_response(server.accept(event.request))  # type: ignore[union-attr]
    pipe(server, client)
    assert [type(e) for e in client.events_received()] == [ResponseReceived]
    assert client.subprotocol == server.subprotocol == "chat"

    client.send_text("héllo".encode())
    client.send_binary(b"\x00" * 70000)
    client.send_ping(b"client ping")
    pipe(client, server)
    assert server.events_received() == [
        TextMessage("héllo"),
        BinaryMessage(b"\x00" * 70000),
        Ping(b"client ping"),
    ]
    server.send_text(b"fragmented ", fin=False)
    server.send_continuation(b"reply", fin=True)
    pipe(server, client)
    assert client.events_received() == [
        Pong(b"client ping", (b"client ping",)),
        TextMessage("fragmented reply"),
    ]

    client.send_close(1000, "done")
    pipe(client, server)
    assert server.close_rcvd == Close(1000, "done")
    pipe(server, client)  # the echo, then the server's EOF
    assert client.state is State.CLOSED
    pipe(client, server)  # the client's EOF
    assert server.state is State.CLOSED
    for side in (client, server):
        exc = side.close_exc
        assert isinstance(exc, ConnectionClosedOK)
        assert exc.code == 1000
        assert side.failure is None
    assert client.close_exc.rcvd_then_sent is False
    assert server.close_exc.rcvd_then_sent is True


def test_conversation_closed_by_the_server() -> None:
    client = make_client()
    server = make_server()
    client.send_request(client.connect())
    pipe(client, server)
    [event] = server.events_received()
    server.send_response(server.accept(event.request))  # type: ignore[union-attr]
    pipe(server, client)
    client.events_received()
    server.send_close(1001, "restart")
    pipe(server, client)
    frames, eof = output(client)
    assert [(f.opcode, f.payload[:2]) for f in frames] == [(CLOSE, close_payload(1001))]
    assert not eof
    server.receive_data(frame(CLOSE, frames[0].payload, mask=MASK))
    assert server.data_to_send() == [b""]  # the server closes TCP first
    client.receive_eof()
    assert client.data_to_send() == [b""]
    assert client.close_code == server.close_code == 1001


# Robustness: handshakes never raise on peer input


_request_like = st.tuples(
    st.sampled_from([RFC_REQUEST, request(start="POST / HTTP/1.1"), b"GET / HTTP/1.1\r\n"])
    | st.binary(max_size=60),
    st.integers(0, 400),
    st.binary(max_size=30),
).map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :])

_response_like = st.tuples(
    st.sampled_from(
        [
            MINIMAL_RESPONSE,
            RFC_RESPONSE,
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\n\r\nbody",
        ]
    )
    | st.binary(max_size=60),
    st.integers(0, 200),
    st.binary(max_size=30),
).map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :])


@SETTINGS
@given(
    _request_like | st.binary(max_size=200),
    st.lists(st.integers(0, 500), max_size=8),
    st.booleans(),
)
def test_server_handshake_never_raises(data: bytes, cuts: list[int], eof: bool) -> None:
    server = make_server(max_line_length=200, max_headers=10)
    for piece in chop(data, cuts):
        server.receive_data(piece)
        for event in server.events_received():
            assert isinstance(event, RequestReceived)
            server.send_response(server.accept(event.request))
    if eof:
        server.receive_eof()
    writes = server.data_to_send()
    if server.handshake_exc is not None:
        assert server.state is State.CLOSED
        assert writes[-1] == b""
    if server.response is not None:
        assert writes[0] == server.response.serialize()


@SETTINGS
@given(
    _response_like | st.binary(max_size=200),
    st.lists(st.integers(0, 500), max_size=8),
    st.booleans(),
)
def test_client_handshake_never_raises(data: bytes, cuts: list[int], eof: bool) -> None:
    client = started_client(max_line_length=200, max_headers=10, max_body_size=32)
    for piece in chop(data, cuts):
        client.receive_data(piece)
    if eof:
        client.receive_eof()
    if client.handshake_exc is not None:
        assert client.state is State.CLOSED
        assert client.data_to_send()[-1:] == [b""]
    elif client.state is State.OPEN:
        assert client.response is not None and client.response.status_code == 101
    for event in client.events_received():
        assert not isinstance(event, RequestReceived)


def test_sides_are_set() -> None:
    assert make_client().side is Side.CLIENT
    assert make_server().side is Side.SERVER


def test_servers_connections_share_their_options_until_one_sets_its_own() -> None:
    # A server's connections are made with the same objects: they share one copy of the
    # options rather than each holding them; setting one changes that connection only.
    origins = ["https://example.com"]
    subprotocols = ["chat"]
    first, second = (
        ServerProtocol(origins=origins, subprotocols=subprotocols, server_header="x")
        for _ in range(2)
    )
    assert first._options is second._options
    assert first.origins is origins and first.available_subprotocols is subprotocols
    assert (first.server_header, first.max_line_length) == ("x", defaults.MAX_LINE_LENGTH)
    first.origins = None
    first.max_headers = 3
    assert first.origins is None and first.max_headers == 3
    assert second.origins is origins and second.max_headers == defaults.MAX_HEADERS
    # What was set applies to that connection's handshake only.
    first.receive_data(RFC_REQUEST)
    assert first.events_received() == []
    assert isinstance(first.handshake_exc, SecurityError)
    second.receive_data(RFC_REQUEST)
    [event] = second.events_received()
    assert isinstance(event, RequestReceived)
