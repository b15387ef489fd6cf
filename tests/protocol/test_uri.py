"""WebSocket URIs (RFC 6455 §3)."""

from __future__ import annotations

import pytest

from wsio.exceptions import InvalidURI
from wsio.protocol.uri import WebSocketURI, parse_uri


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("ws://example.com", WebSocketURI(False, "example.com", 80, "/")),
        ("ws://example.com/", WebSocketURI(False, "example.com", 80, "/")),
        ("wss://example.com", WebSocketURI(True, "example.com", 443, "/")),
        ("ws://example.com:8080/chat", WebSocketURI(False, "example.com", 8080, "/chat")),
        ("wss://example.com:443/", WebSocketURI(True, "example.com", 443, "/")),
        ("ws://example.com:443/", WebSocketURI(False, "example.com", 443, "/")),
        ("ws://example.com/a/b?x=1&y=2", WebSocketURI(False, "example.com", 80, "/a/b?x=1&y=2")),
        # §3: "/" when the path is empty, then "?" and the query.
        ("ws://example.com?x=1", WebSocketURI(False, "example.com", 80, "/?x=1")),
        ("ws://127.0.0.1:9000", WebSocketURI(False, "127.0.0.1", 9000, "/")),
        ("ws://[::1]:9000/", WebSocketURI(False, "::1", 9000, "/")),
        ("WS://Example.COM/Path", WebSocketURI(False, "example.com", 80, "/Path")),
    ],
)
def test_parse(uri: str, expected: WebSocketURI) -> None:
    assert parse_uri(uri) == expected


def test_user_info() -> None:
    uri = parse_uri("ws://user:p%40ss@example.com/")
    assert uri.user_info == ("user", "p@ss")
    assert uri.host == "example.com"


def test_user_info_without_password() -> None:
    assert parse_uri("ws://user@example.com/").user_info == ("user", "")


def test_no_user_info() -> None:
    assert parse_uri("ws://example.com/").user_info is None


def test_non_ascii_path_is_percent_encoded() -> None:
    assert parse_uri("ws://example.com/café?q=ü").resource_name == "/caf%C3%A9?q=%C3%BC"


def test_percent_encoding_is_kept() -> None:
    assert parse_uri("ws://example.com/a%20b").resource_name == "/a%20b"


def test_idna_host() -> None:
    assert parse_uri("ws://bücher.example/").host == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    "uri",
    [
        "http://example.com/",
        "https://example.com/",
        "example.com",
        "ws:/path",
        "ws://",
        "ws://example.com/#fragment",  # §3: fragments MUST NOT be used
        "ws://example.com:99999/",
        "ws://example.com:port/",
    ],
)
def test_invalid(uri: str) -> None:
    with pytest.raises(InvalidURI) as info:
        parse_uri(uri)
    assert info.value.uri == uri
    assert uri in str(info.value)


@pytest.mark.parametrize(
    ("uri", "host_header"),
    [
        ("ws://example.com/", "example.com"),
        ("ws://example.com:80/", "example.com"),
        ("ws://example.com:443/", "example.com:443"),
        ("wss://example.com:443/", "example.com"),
        ("wss://example.com:80/", "example.com:80"),
        ("ws://example.com:8080/", "example.com:8080"),
        ("ws://[::1]/", "[::1]"),
        ("ws://[::1]:8080/", "[::1]:8080"),
    ],
)
def test_host_header(uri: str, host_header: str) -> None:
    """RFC 6455 §4.1 point 4 and RFC 9110 §7.2: the port only when it isn't the default."""
    assert parse_uri(uri).host_header == host_header


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("ws://[::1/", "unterminated IPv6 address"),
        ("ws://[::1]x/", "after IPv6 address"),
        ("ws://[zz]/", "invalid IPv6 address"),
        ("ws://[1.2.3.4]/", "invalid IPv6 address"),
        ("ws://[fe80::1%25eth0]/", "invalid IPv6 address"),
        ("ws://[v1.x]/", "IPvFuture"),
        ("ws://a..b/", "invalid domain name"),
        ("ws://.example/", "invalid domain name"),
        ("ws://" + "a" * 64 + ".example/", "invalid domain name"),
        ("ws://bü..cher/", "internationalized domain name"),
        ("ws://\u00ad/", "internationalized domain name"),
        ("ws://h:0/", "port 0"),
        ("ws://a,b/", "invalid host"),
        ("ws://a b/", "invalid host"),
        ("ws://h\\x/", "invalid host"),
        ("ws://h<x>/", "invalid host"),
        ("ws://h\x00/", "control character"),
        ("ws://h/\x1f", "control character"),
        ("ws://h/\x7f", "control character"),
        ("ws://h/\r\nX: y", "control character"),
        ("ws://h\t/", "control character"),
        ("ws://h/\ud800", "lone surrogate"),
        ("ws://\udfff/", "lone surrogate"),
        ("ws://user:\ud800@h/", "lone surrogate"),
        ("ws://h/100%", "percent-encoding"),
        ("ws://h/%zz", "percent-encoding"),
        ("ws://h/?q=%2", "percent-encoding"),
        ("ws://h/#", "fragment"),
    ],
)
def test_invalid_with_reason(uri: str, message: str) -> None:
    """Every bad URI raises InvalidURI with a short reason, never ValueError or
    UnicodeError; the message prints whatever the URI holds."""
    with pytest.raises(InvalidURI) as info:
        parse_uri(uri)
    assert info.value.uri == uri
    assert message in info.value.msg
    assert str(info.value).isprintable()


PARSE_EDGES = [
    ("ws://h/a b", WebSocketURI(False, "h", 80, "/a%20b")),
    ("ws://h/a[0]{x}|y^z`\\", WebSocketURI(False, "h", 80, "/a%5B0%5D%7Bx%7D%7Cy%5Ez%60%5C")),
    ('ws://h/?q="<>"', WebSocketURI(False, "h", 80, "/?q=%22%3C%3E%22")),
    ("ws://h/:@!$&'()*+,;=-._~?/?", WebSocketURI(False, "h", 80, "/:@!$&'()*+,;=-._~?/?")),
    ("ws://h?", WebSocketURI(False, "h", 80, "/?")),
    ("ws://h:/", WebSocketURI(False, "h", 80, "/")),
    ("ws://h:00080/", WebSocketURI(False, "h", 80, "/")),
    ("ws://[::FFFF:1.2.3.4]/", WebSocketURI(False, "::ffff:1.2.3.4", 80, "/")),
    ("ws://my_host.example./", WebSocketURI(False, "my_host.example.", 80, "/")),
    ("ws://BÜCHER.example/", WebSocketURI(False, "xn--bcher-kva.example", 80, "/")),
    ("ws://u:p:q@h/", WebSocketURI(False, "h", 80, "/", ("u", "p:q"))),
    ("ws://a@b@h/", WebSocketURI(False, "h", 80, "/", ("a@b", ""))),
]


def test_parse_edges() -> None:
    """What the request line and Host carry is always valid (RFC 3986): characters a
    path or query can't hold are percent-encoded."""
    for uri, expected in PARSE_EDGES:
        assert parse_uri(uri) == expected, uri
