"""The rules of the opening handshake (RFC 6455 §4), as pure functions."""

from __future__ import annotations

import os
import re
from http import HTTPStatus
from typing import Any

import pytest

from wsio.exceptions import (
    InvalidArgument,
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderFormat,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidOrigin,
    InvalidStatus,
    InvalidUpgrade,
    NegotiationError,
)
from wsio.protocol.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from wsio.protocol.handshake import (
    GUID,
    accept_key,
    accept_response,
    build_accept,
    build_rejection,
    build_request,
    check_origin,
    check_request,
    check_response,
    generate_key,
    parse_token_list,
    select_subprotocol,
    serialized_accept,
)
from wsio.protocol.http11 import Headers, Request, Response
from wsio.protocol.uri import parse_uri

from .helpers import RFC_ACCEPT, RFC_KEY, RFC_NONCE, fixed_random

BASE_REQUEST = [
    ("Host", "server.example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", RFC_KEY),
    ("Sec-WebSocket-Version", "13"),
]


def make_request(
    *,
    drop: tuple[str, ...] = (),
    extra: list[tuple[str, str]] | None = None,
    method: str = "GET",
    version: str = "HTTP/1.1",
) -> Request:
    headers = Headers([(n, v) for n, v in BASE_REQUEST if n not in drop])
    headers.update(extra or [])
    return Request("/chat", headers, method, version)


def make_response(
    *,
    drop: tuple[str, ...] = (),
    extra: list[tuple[str, str]] | None = None,
    status: int = 101,
    reason: str = "Switching Protocols",
) -> Response:
    headers = Headers(
        [
            (n, v)
            for n, v in [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", RFC_ACCEPT),
            ]
            if n not in drop
        ]
    )
    headers.update(extra or [])
    return Response(status, reason, headers)


# Keys (§1.3, §4.1, §4.2.2)


def test_guid() -> None:
    assert GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def test_accept_key_rfc_example() -> None:
    assert accept_key(RFC_KEY) == RFC_ACCEPT


def test_generate_key() -> None:
    """§4.1: 16 random bytes, base64-encoded, taken from ``random_bytes``."""
    assert generate_key(fixed_random) == RFC_KEY
    asked: list[int] = []

    def spy(n: int) -> bytes:
        asked.append(n)
        return RFC_NONCE

    generate_key(spy)
    assert asked == [16]


def test_generate_key_default_randomness_is_24_chars() -> None:
    key = generate_key(os.urandom)
    assert len(key) == 24 and key.endswith("==")


# parse_token_list (RFC 9110 §5.6.1)


@pytest.mark.parametrize(
    ("values", "tokens"),
    [
        (["websocket"], ["websocket"]),
        (["keep-alive, Upgrade"], ["keep-alive", "Upgrade"]),
        (["a,b", "c"], ["a", "b", "c"]),
        ([", , a ,\t,b,"], ["a", "b"]),
        ([""], []),
        ([], []),
    ],
)
def test_parse_token_list(values: list[str], tokens: list[str]) -> None:
    assert parse_token_list(values, "X") == tokens


@pytest.mark.parametrize("value", ["a b", "a;b", "é", '"quoted"', "a/b"])
def test_parse_token_list_invalid(value: str) -> None:
    with pytest.raises(InvalidHeaderValue) as info:
        parse_token_list([value], "X")
    assert info.value.name == "X"


# build_request (§4.1)


def test_build_request_rfc_example() -> None:
    req = build_request(
        parse_uri("ws://server.example.com/chat"),
        RFC_KEY,
        origin="http://example.com",
        subprotocols=["chat", "superchat"],
    )
    assert req.serialize() == (
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


def test_build_request_minimal() -> None:
    req = build_request(parse_uri("wss://example.com:8443/a?b=c"), RFC_KEY)
    assert req.method == "GET"
    assert req.version == "HTTP/1.1"
    assert req.path == "/a?b=c"
    assert req.headers.raw_items() == [
        ("Host", "example.com:8443"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", RFC_KEY),
        ("Sec-WebSocket-Version", "13"),
    ]


def test_build_request_user_agent() -> None:
    req = build_request(parse_uri("ws://a/"), RFC_KEY, user_agent="test/1")
    assert req.headers["User-Agent"] == "test/1"


def test_build_request_additional_headers_override_defaults() -> None:
    req = build_request(
        parse_uri("ws://a/"),
        RFC_KEY,
        user_agent="test/1",
        additional_headers={"user-agent": "other/2", "X-Token": "t"},
    )
    assert req.headers.get_all("User-Agent") == ["other/2"]
    assert req.headers["X-Token"] == "t"


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("origin", "https://a\r\nX-Evil: 1", InvalidArgument),
        ("origin", "https://\u0101", InvalidArgument),
        ("user_agent", "a\x00b", InvalidArgument),
        ("user_agent", 42, TypeError),
        ("key", "k\ney", InvalidArgument),
    ],
)
def test_build_request_refuses_a_value_that_cannot_be_sent(
    field: str, value: Any, error: type[Exception]
) -> None:
    options: dict[str, Any] = {"origin": "https://a", "user_agent": "ua/1", "key": RFC_KEY}
    options[field] = value
    key = options.pop("key")
    with pytest.raises(error):
        build_request(parse_uri("ws://a/"), key, **options)


def test_build_request_keeps_whitespace_valued_fields_valid() -> None:
    # Tab and space are field characters: values with them are sent as given.
    req = build_request(parse_uri("ws://a/"), RFC_KEY, user_agent="a\tb c")
    assert req.headers["User-Agent"] == "a\tb c"
    assert list(req.headers)[:5] == [name for name, _ in BASE_REQUEST]


def test_build_request_empty_subprotocols() -> None:
    req = build_request(parse_uri("ws://a/"), RFC_KEY, subprotocols=[])
    assert "Sec-WebSocket-Protocol" not in req.headers


@pytest.mark.parametrize("protocol", ["a b", "chat,x", "", "a/b", "caf\u00e9", "\ud800", "x\r\n"])
def test_build_request_subprotocol_not_a_token(protocol: str) -> None:
    """§4.1 item 10: each subprotocol offered is a token."""
    with pytest.raises(InvalidArgument, match="subprotocol"):
        build_request(parse_uri("ws://a/"), RFC_KEY, subprotocols=["chat", protocol])


def test_build_request_passes_check_request() -> None:
    req = build_request(parse_uri("ws://a/"), RFC_KEY, origin="https://a")
    assert check_request(req) == RFC_KEY


# check_response (§4.1, the client's requirements on the answer)


def test_check_response_rfc_example() -> None:
    resp = make_response(extra=[("Sec-WebSocket-Protocol", "chat")])
    assert check_response(resp, RFC_KEY, ["chat", "superchat"]) == "chat"


def test_check_response_without_subprotocol() -> None:
    assert check_response(make_response(), RFC_KEY, None) is None
    assert check_response(make_response(), RFC_KEY, ["chat"]) is None


@pytest.mark.parametrize("reason", ["Switching Protocols", "OK", "", "Whatever you like"])
def test_check_response_ignores_reason_phrase(reason: str) -> None:
    assert check_response(make_response(reason=reason), RFC_KEY, None) is None


@pytest.mark.parametrize(
    ("upgrade", "connection"),
    [("WebSocket", "upgrade"), ("WEBSOCKET", "keep-alive, Upgrade"), ("websocket", "UPGRADE")],
)
def test_check_response_case_insensitive(upgrade: str, connection: str) -> None:
    """§4.1 points 2 and 3: ASCII case-insensitive matches."""
    resp = make_response(drop=("Upgrade", "Connection"))
    resp.headers["Upgrade"] = upgrade
    resp.headers["Connection"] = connection
    assert check_response(resp, RFC_KEY, None) is None


@pytest.mark.parametrize("status", [200, 301, 400, 403, 404, 426, 500, 100, 102])
def test_check_response_not_101(status: int) -> None:
    """§4.1 point 1: any status other than 101 fails the handshake."""
    resp = make_response(status=status, reason="Nope")
    with pytest.raises(InvalidStatus) as info:
        check_response(resp, RFC_KEY, None)
    assert info.value.response is resp
    assert str(status) in str(info.value)


@pytest.mark.parametrize(
    "headers",
    [
        [("Connection", "Upgrade")],
        [("Upgrade", "h2c"), ("Connection", "Upgrade")],
        [("Upgrade", "websocket, h2c"), ("Connection", "Upgrade")],
        [("Upgrade", ""), ("Connection", "Upgrade")],
    ],
)
def test_check_response_bad_upgrade(headers: list[tuple[str, str]]) -> None:
    resp = make_response(drop=("Upgrade", "Connection"), extra=headers)
    with pytest.raises(InvalidUpgrade) as info:
        check_response(resp, RFC_KEY, None)
    assert info.value.name == "Upgrade"


@pytest.mark.parametrize(
    "headers",
    [[], [("Connection", "keep-alive")], [("Connection", "close")], [("Connection", "")]],
)
def test_check_response_bad_connection(headers: list[tuple[str, str]]) -> None:
    resp = make_response(drop=("Connection",), extra=headers)
    with pytest.raises(InvalidUpgrade) as info:
        check_response(resp, RFC_KEY, None)
    assert info.value.name == "Connection"


def test_check_response_upgrade_on_two_lines() -> None:
    # Two lines are one list (RFC 9110 §5.3): "websocket, websocket" names two protocols.
    resp = make_response(extra=[("Upgrade", "websocket")])
    with pytest.raises(InvalidUpgrade):
        check_response(resp, RFC_KEY, None)
    resp = make_response(extra=[("Connection", "Upgrade")])
    assert check_response(resp, RFC_KEY, None) is None


@pytest.mark.parametrize("value", [" websocket", "websocket\t"])
def test_check_response_upgrade_with_whitespace(value: str) -> None:
    resp = make_response(drop=("Upgrade",))
    resp.headers._items.append(("Upgrade", value))  # as a parser that kept it would
    assert check_response(resp, RFC_KEY, None) is None


def test_accept_response_makes_each_extension_once() -> None:
    accepted = []

    class Factory(ClientPerMessageDeflateFactory):
        def accept(self, parameters: Any) -> Any:
            extension = super().accept(parameters)
            accepted.append(extension)
            return extension

    resp = make_response(
        extra=[
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
            ("Sec-WebSocket-Protocol", "chat"),
        ]
    )
    subprotocol, extensions = accept_response(resp, RFC_KEY, ["chat"], [Factory()])
    assert subprotocol == "chat"
    assert extensions == accepted
    assert len(accepted) == 1


def test_check_response_missing_accept() -> None:
    with pytest.raises(InvalidHeader) as info:
        check_response(make_response(drop=("Sec-WebSocket-Accept",)), RFC_KEY, None)
    assert info.value.name == "Sec-WebSocket-Accept"
    assert info.value.value is None


@pytest.mark.parametrize(
    "accept", [accept_key("x" + RFC_KEY), "", RFC_ACCEPT.lower(), RFC_ACCEPT + " x"]
)
def test_check_response_wrong_accept(accept: str) -> None:
    """§4.1 point 4: the value must be exactly the base64 SHA-1 of key + GUID."""
    resp = make_response(drop=("Sec-WebSocket-Accept",), extra=[("Sec-WebSocket-Accept", accept)])
    with pytest.raises(InvalidHeaderValue) as info:
        check_response(resp, RFC_KEY, None)
    assert info.value.name == "Sec-WebSocket-Accept"


def test_check_response_repeated_accept() -> None:
    resp = make_response(extra=[("Sec-WebSocket-Accept", RFC_ACCEPT)])
    with pytest.raises(InvalidHeader):
        check_response(resp, RFC_KEY, None)


def test_check_response_accept_of_another_key() -> None:
    with pytest.raises(InvalidHeaderValue):
        check_response(make_response(), "x3JJHMbDL1EzLkh9GBhXDw==", None)


@pytest.mark.parametrize("extensions", ["permessage-deflate", "x-custom; a=1", ""])
def test_check_response_unoffered_extension(extensions: str) -> None:
    """§4.1 point 5: the client offered no extension, so any is a failure (an empty
    header is malformed: the grammar is 1#extension)."""
    resp = make_response(extra=[("Sec-WebSocket-Extensions", extensions)])
    with pytest.raises(NegotiationError if extensions else InvalidHeaderFormat):
        check_response(resp, RFC_KEY, None)


@pytest.mark.parametrize("offered", [None, [], ["superchat"]])
def test_check_response_unoffered_subprotocol(offered: list[str] | None) -> None:
    """§4.1 point 6."""
    resp = make_response(extra=[("Sec-WebSocket-Protocol", "chat")])
    with pytest.raises(NegotiationError):
        check_response(resp, RFC_KEY, offered)


def test_check_response_several_subprotocols() -> None:
    resp = make_response(extra=[("Sec-WebSocket-Protocol", "chat, superchat")])
    with pytest.raises(NegotiationError):
        check_response(resp, RFC_KEY, ["chat", "superchat"])


def test_check_response_subprotocol_is_case_sensitive() -> None:
    resp = make_response(extra=[("Sec-WebSocket-Protocol", "Chat")])
    with pytest.raises(NegotiationError):
        check_response(resp, RFC_KEY, ["chat"])


# check_request (§4.2.1) and the status of each failure


def test_check_request_rfc_example() -> None:
    assert check_request(make_request()) == RFC_KEY


def test_check_request_lenient_tokens() -> None:
    req = make_request(drop=("Upgrade", "Connection"))
    req.headers["Upgrade"] = "WebSocket"
    req.headers["Connection"] = "keep-alive, Upgrade"
    assert check_request(req) == RFC_KEY


def test_check_request_upgrade_with_other_protocols() -> None:
    """RFC 9110 §7.8: Upgrade lists protocols, each a token with an optional version."""
    req = make_request(drop=("Upgrade",), extra=[("Upgrade", "h2c/1.0, websocket")])
    assert check_request(req) == RFC_KEY


@pytest.mark.parametrize("value", ["web socket", "websocket;q=1", "websocket/", "/13"])
def test_check_request_malformed_upgrade(value: str) -> None:
    req = make_request(drop=("Upgrade",), extra=[("Upgrade", value)])
    with pytest.raises(InvalidUpgrade) as info:
        check_request(req)
    assert info.value.http_status == 426


def test_check_response_malformed_upgrade() -> None:
    resp = make_response(drop=("Upgrade",), extra=[("Upgrade", "web socket")])
    with pytest.raises(InvalidUpgrade):
        check_response(resp, RFC_KEY, None)


def test_check_request_allows_empty_body_length() -> None:
    assert check_request(make_request(extra=[("Content-Length", "0")])) == RFC_KEY


@pytest.mark.parametrize(
    ("request_", "exc_type", "status"),
    [
        (make_request(method="POST"), InvalidMessage, 405),
        (make_request(method="get"), InvalidMessage, 405),
        (make_request(version="HTTP/1.0"), InvalidMessage, 505),
        (make_request(drop=("Host",)), InvalidHeader, 400),
        (make_request(extra=[("Host", "other")]), InvalidHeader, 400),
        (make_request(drop=("Upgrade",)), InvalidUpgrade, 426),
        (make_request(drop=("Upgrade",), extra=[("Upgrade", "h2c")]), InvalidUpgrade, 426),
        (make_request(drop=("Connection",)), InvalidUpgrade, 426),
        (make_request(drop=("Connection",), extra=[("Connection", "close")]), InvalidUpgrade, 426),
        (make_request(drop=("Sec-WebSocket-Version",)), InvalidHeader, 426),
        (
            make_request(drop=("Sec-WebSocket-Version",), extra=[("Sec-WebSocket-Version", "8")]),
            InvalidHeader,
            426,
        ),
        (make_request(extra=[("Sec-WebSocket-Version", "13")]), InvalidHeader, 426),
        (make_request(drop=("Sec-WebSocket-Key",)), InvalidHeader, 400),
        (make_request(extra=[("Sec-WebSocket-Key", RFC_KEY)]), InvalidHeader, 400),
        (
            make_request(
                drop=("Sec-WebSocket-Key",), extra=[("Sec-WebSocket-Key", "not base64!")]
            ),
            InvalidHeaderValue,
            400,
        ),
        (
            # 15 bytes once decoded
            make_request(drop=("Sec-WebSocket-Key",), extra=[("Sec-WebSocket-Key", "A" * 20)]),
            InvalidHeaderValue,
            400,
        ),
        (
            # 17 bytes once decoded
            make_request(
                drop=("Sec-WebSocket-Key",),
                extra=[("Sec-WebSocket-Key", "QUFBQUFBQUFBQUFBQUFBQUE=")],
            ),
            InvalidHeaderValue,
            400,
        ),
        (make_request(extra=[("Content-Length", "5")]), InvalidMessage, 400),
        (make_request(extra=[("Transfer-Encoding", "chunked")]), InvalidMessage, 400),
    ],
)
def test_check_request_failures(
    request_: Request, exc_type: type[InvalidHandshake], status: int
) -> None:
    with pytest.raises(exc_type) as info:
        check_request(request_)
    assert info.value.http_status == status


# check_origin (§4.2.1 point 8, §10.2)


def test_check_origin_allowed() -> None:
    req = make_request(extra=[("Origin", "https://example.com")])
    assert check_origin(req, ["https://example.com"]) == "https://example.com"


@pytest.mark.parametrize(
    "origin", ["https://example.com:443", "http://example.com", "https://example.com.evil", ""]
)
def test_check_origin_exact_match_only(origin: str) -> None:
    req = make_request(extra=[("Origin", origin)])
    with pytest.raises(InvalidOrigin) as info:
        check_origin(req, ["https://example.com"])
    assert info.value.http_status == 403


def test_check_origin_missing() -> None:
    with pytest.raises(InvalidOrigin) as info:
        check_origin(make_request(), ["https://example.com"])
    assert info.value.http_status == 403


def test_check_origin_none_allows_missing() -> None:
    assert check_origin(make_request(), ["https://example.com", None]) is None


def test_check_origin_none_does_not_allow_any() -> None:
    with pytest.raises(InvalidOrigin):
        check_origin(make_request(extra=[("Origin", "https://evil")]), [None])


def test_check_origin_pattern_must_match_fully() -> None:
    pattern = re.compile(r"https://[a-z]+\.example\.com")
    assert check_origin(make_request(extra=[("Origin", "https://a.example.com")]), [pattern])
    with pytest.raises(InvalidOrigin):
        check_origin(make_request(extra=[("Origin", "https://a.example.com.evil")]), [pattern])
    with pytest.raises(InvalidOrigin):
        check_origin(make_request(), [pattern])


def test_check_origin_repeated() -> None:
    req = make_request(extra=[("Origin", "https://a"), ("Origin", "https://a")])
    with pytest.raises(InvalidHeader) as info:
        check_origin(req, ["https://a"])
    assert info.value.http_status == 400


def test_check_origin_empty_list_refuses_all() -> None:
    with pytest.raises(InvalidOrigin):
        check_origin(make_request(), [])


# select_subprotocol (§4.2.2 point 5.4)


@pytest.mark.parametrize(
    ("offered", "supported", "selected"),
    [
        ("chat, superchat", ["superchat", "chat"], "chat"),  # the client's preference
        ("chat, superchat", ["superchat"], "superchat"),
        ("chat", ["other"], None),
        (None, ["chat"], None),
        ("chat", None, None),
        ("chat", [], None),
        ("Chat", ["chat"], None),
    ],
)
def test_select_subprotocol(
    offered: str | None, supported: list[str] | None, selected: str | None
) -> None:
    req = make_request(extra=[("Sec-WebSocket-Protocol", offered)] if offered else [])
    assert select_subprotocol(req, supported) == selected


def test_select_subprotocol_several_headers() -> None:
    req = make_request(extra=[("Sec-WebSocket-Protocol", "a"), ("Sec-WebSocket-Protocol", "b, c")])
    assert select_subprotocol(req, ["c", "b"]) == "b"


# build_accept (§4.2.2 point 5)


def test_build_accept_rfc_example() -> None:
    resp = build_accept(RFC_KEY, subprotocol="chat")
    assert resp.serialize() == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"Sec-WebSocket-Protocol: chat\r\n"
        b"\r\n"
    )


def test_build_accept_server_header() -> None:
    resp = build_accept(RFC_KEY, server_header="test/1")
    assert resp.headers["Server"] == "test/1"
    assert "Sec-WebSocket-Protocol" not in resp.headers
    assert check_response(resp, RFC_KEY, None) is None


@pytest.mark.parametrize("value", ["bad\r\nX-Injected: 1", "caf\u00e9\u2026"])
def test_build_accept_refuses_a_server_header_that_cant_be_sent(value: str) -> None:
    # Checked each time: a value refused once isn't remembered as valid.
    for _ in range(2):
        with pytest.raises(InvalidArgument):
            build_accept(RFC_KEY, server_header=value)


def test_build_accept_refuses_a_server_header_that_isnt_a_str() -> None:
    with pytest.raises(TypeError):
        build_accept(RFC_KEY, server_header=["wsio"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "server_header", [None, "wsio/1", "", " padded ", "a  b", "tab\tinside", "caf\u00e9"]
)
@pytest.mark.parametrize("subprotocol", [None, "chat"])
def test_build_accept_head_is_its_serialization(
    server_header: str | None, subprotocol: str | None
) -> None:
    for _ in range(2):  # built, then from the parts remembered
        resp = build_accept(RFC_KEY, subprotocol=subprotocol, server_header=server_header)
        head = resp.headers._head
        if head is None:
            # Only where the head might not parse back to the same fields.
            assert subprotocol is not None or server_header in ("", " padded ")
            continue
        assert subprotocol is None
        plain = Response(resp.status_code, resp.reason_phrase, resp.headers.copy())
        assert head == plain.serialize() == resp.serialize()
        assert serialized_accept(resp, head) is head
        # The fields parse back from the head alone.
        resp.headers._shed()
        assert resp.headers.raw_items() == plain.headers.raw_items()


@pytest.mark.parametrize(
    "edit",
    [
        lambda resp: resp.headers.__setitem__("X-Edited", "1"),
        lambda resp: resp.headers.replace("Upgrade", "websocket"),
        lambda resp: resp.headers.__delitem__("Upgrade"),
        lambda resp: resp.headers.clear(),
        lambda resp: resp.headers.update({"X-Edited": "1"}),
        lambda resp: setattr(resp, "status_code", 200),
        lambda resp: setattr(resp, "reason_phrase", "OK"),
        lambda resp: setattr(resp, "version", "HTTP/1.0"),
        lambda resp: setattr(resp, "body", b"x"),
    ],
)
def test_serialized_accept_refuses_an_edited_answer(edit: Any) -> None:
    resp = build_accept(RFC_KEY, server_header="wsio")
    head = resp.headers._head
    assert head is not None
    edit(resp)
    assert serialized_accept(resp, head) is None
    # Another answer with the same head bytes isn't taken for it either.
    other = build_accept(RFC_KEY, server_header="wsio")
    assert other.headers._head == head
    assert serialized_accept(other, head) is None


# build_rejection


def _rejection(exc: InvalidHandshake) -> Response:
    resp = build_rejection(exc, server_header="test/1")
    assert resp.headers["Connection"] == "close"
    assert resp.headers["Server"] == "test/1"
    assert resp.headers["Content-Length"] == str(len(resp.body))
    assert resp.body.startswith(b"Failed to open a WebSocket connection: ")
    return resp


def test_rejection_405_allow() -> None:
    """RFC 9110 §15.5.6: a 405 MUST carry Allow."""
    with pytest.raises(InvalidHandshake) as info:
        check_request(make_request(method="POST"))
    resp = _rejection(info.value)
    assert resp.status_code == 405
    assert resp.reason_phrase == "Method Not Allowed"
    assert resp.headers["Allow"] == "GET"


def test_rejection_426_version() -> None:
    """RFC 6455 §4.2.2 and §4.4: tell the client which version is supported."""
    with pytest.raises(InvalidHandshake) as info:
        check_request(
            make_request(drop=("Sec-WebSocket-Version",), extra=[("Sec-WebSocket-Version", "8")])
        )
    resp = _rejection(info.value)
    assert resp.status_code == 426
    assert resp.headers["Sec-WebSocket-Version"] == "13"


def test_rejection_426_upgrade() -> None:
    """RFC 9110 §15.5.22: a 426 MUST send Upgrade."""
    with pytest.raises(InvalidHandshake) as info:
        check_request(make_request(drop=("Upgrade",)))
    resp = _rejection(info.value)
    assert resp.status_code == 426
    assert resp.headers["Upgrade"] == "websocket"


def test_rejection_400() -> None:
    with pytest.raises(InvalidHandshake) as info:
        check_request(make_request(drop=("Sec-WebSocket-Key",)))
    resp = _rejection(info.value)
    assert (resp.status_code, resp.reason_phrase) == (400, "Bad Request")
    assert "Allow" not in resp.headers
    assert "Sec-WebSocket-Key" in resp.body.decode()


def test_rejection_403() -> None:
    resp = _rejection(InvalidOrigin("https://evil"))
    assert resp.status_code == 403


def test_rejection_505() -> None:
    resp = _rejection(InvalidMessage("nope", HTTPStatus.HTTP_VERSION_NOT_SUPPORTED))
    assert (resp.status_code, resp.reason_phrase) == (505, "HTTP Version Not Supported")


def test_rejection_without_server_header() -> None:
    assert "Server" not in build_rejection(InvalidMessage("x")).headers


def test_header_format_error_quotes_the_value_around_the_error_only() -> None:
    """A long malformed header makes a short message that still shows where it broke."""
    from wsio.exceptions import InvalidHeaderFormat

    value = "a" * 5000 + "," + "b" * 5000
    exc = InvalidHeaderFormat("Sec-WebSocket-Protocol", "expected token", value, 5001)
    message = str(exc)
    assert "at 5001 in ..." in message and message.endswith("...")
    assert len(message) < 200
    short = InvalidHeaderFormat("Upgrade", "expected token", "web socket", 3)
    assert str(short).endswith("at 3 in web socket")
