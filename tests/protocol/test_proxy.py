"""The sans-I/O proxy tunnel, bytes in and bytes out: HTTP CONNECT (RFC 9110 §9.3.6), SOCKS5
(RFC 1928) with username/password (RFC 1929); proxy URIs; proxies from the environment as
curl and urllib read them."""

from __future__ import annotations

import base64
import ipaddress

import pytest

from wsio.exceptions import (
    InvalidArgument,
    InvalidHandshake,
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    ProxyError,
)
from wsio.protocol.proxy import Proxy, ProxyTunnel, parse_proxy, proxy_from_environment
from wsio.protocol.uri import parse_uri


def tunnel(proxy: str, host: str = "example.com", port: int = 443, **kwargs: str) -> ProxyTunnel:
    return ProxyTunnel(parse_proxy(proxy), host, port, **kwargs)


def sent(t: ProxyTunnel) -> bytes:
    return b"".join(t.data_to_send())


def feed_bytewise(t: ProxyTunnel, data: bytes) -> None:
    for i in range(len(data)):
        t.receive_data(data[i : i + 1])


# HTTP CONNECT: the request --------------------------------------------------------------------


def test_connect_request_bytes() -> None:
    t = tunnel("http://proxy.test:3128", "example.com", 443)
    assert sent(t) == b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
    assert sent(t) == b""  # sent once
    assert not t.done
    assert t.error is None


def test_connect_request_with_credentials_and_user_agent() -> None:
    t = tunnel("http://alice:s%3Acret@proxy.test", "example.com", 80, user_agent="wsio/1")
    token = base64.b64encode(b"alice:s:cret").decode()
    assert sent(t) == (
        b"CONNECT example.com:80 HTTP/1.1\r\n"
        b"Host: example.com:80\r\n"
        b"User-Agent: wsio/1\r\n"
        b"Proxy-Authorization: Basic " + token.encode() + b"\r\n"
        b"\r\n"
    )


@pytest.mark.parametrize("user_agent", ["x\r\nX-Injected: 1", "x\x01", "\u65e5\u672c"])
def test_connect_request_refuses_a_user_agent_that_cant_be_sent(user_agent: str) -> None:
    """The request goes through Headers: no line of the proxy's request can be added or
    garbled by the User-Agent given."""
    with pytest.raises(InvalidArgument, match="invalid value for header User-Agent"):
        tunnel("http://proxy.test", user_agent=user_agent)


def test_connect_request_utf8_credentials() -> None:
    """RFC 7617 §2.1: user-id and password encoded as UTF-8 before base64."""
    t = tunnel("https://j%C3%BCrgen:p%C3%A4ss@proxy.test", "example.com", 443)
    token = base64.b64encode("jürgen:päss".encode()).decode()
    assert f"Proxy-Authorization: Basic {token}\r\n".encode() in sent(t)


def test_connect_request_ipv6_target() -> None:
    t = tunnel("http://proxy.test", "2001:db8::1", 8443)
    assert sent(t) == (b"CONNECT [2001:db8::1]:8443 HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n")


def test_connect_request_ipv4_target_keeps_default_port() -> None:
    """The target is always authority-form, port included (RFC 9110 §9.3.6)."""
    t = tunnel("http://proxy.test", "192.0.2.1", 80)
    assert sent(t).startswith(b"CONNECT 192.0.2.1:80 HTTP/1.1\r\nHost: 192.0.2.1:80\r\n")


# HTTP CONNECT: the answer ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 Connection established\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nVia: 1.1 proxy\r\n\r\n",
        b"HTTP/1.1 200\r\n\r\n",
        b"HTTP/1.1 200 \r\n\r\n",
        b"HTTP/1.0 200 Connection established\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 299 Whatever\r\n\r\n",
        # RFC 9110 §9.3.6: a client MUST ignore Content-Length / Transfer-Encoding in a 2xx.
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
)
def test_connect_2xx_opens_tunnel(answer: bytes) -> None:
    t = tunnel("http://proxy.test")
    sent(t)
    t.receive_data(answer)
    assert t.done
    assert t.error is None
    assert t.leftover() == b""
    assert sent(t) == b""


def test_connect_answer_byte_by_byte() -> None:
    t = tunnel("http://proxy.test")
    sent(t)
    answer = b"HTTP/1.1 200 Connection established\r\n\r\n"
    feed_bytewise(t, answer[:-1])
    assert not t.done
    assert t.error is None
    t.receive_data(answer[-1:])
    assert t.done


def test_connect_leftover_kept() -> None:
    """Bytes after the head already came through the tunnel."""
    t = tunnel("http://proxy.test")
    sent(t)
    t.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n\x16\x03\x01tls bytes")
    assert t.done
    assert t.leftover() == b"\x16\x03\x01tls bytes"
    assert t.leftover() == b""


def test_data_after_done_is_leftover() -> None:
    t = tunnel("http://proxy.test")
    t.receive_data(b"HTTP/1.1 200 OK\r\n\r\nab")
    t.receive_data(b"cd")
    assert t.done
    assert t.error is None
    assert t.leftover() == b"abcd"


def test_connect_interim_1xx_ignored() -> None:
    """RFC 9110 §15.2: a client MUST be able to parse 1xx responses before the final one
    "even if the client does not expect one"; an interim answer isn't a refusal."""
    t = tunnel("http://proxy.test")
    sent(t)
    t.receive_data(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n")
    assert t.error is None
    assert t.done
    assert t.leftover() == b""


def test_connect_407_with_body() -> None:
    t = tunnel("http://proxy.test")
    sent(t)
    body = b"<html>credentials required</html>"
    t.receive_data(
        b"HTTP/1.1 407 Proxy Authentication Required\r\n"
        b'Proxy-Authenticate: Basic realm="corp"\r\n'
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10]
    )
    assert t.error is None  # the body isn't complete yet
    t.receive_data(body[10:])
    assert not t.done
    assert isinstance(t.error, InvalidProxyStatus)
    response = t.error.response
    assert response is not None
    assert response.status_code == 407
    assert response.reason_phrase == "Proxy Authentication Required"
    assert response.headers["Proxy-Authenticate"] == 'Basic realm="corp"'
    assert response.body == body
    assert t.error.reply is None
    assert isinstance(t.error, ProxyError)
    assert isinstance(t.error, InvalidHandshake)


def test_connect_403_chunked_body() -> None:
    t = tunnel("http://proxy.test")
    t.receive_data(
        b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nno wa\r\n2\r\ny!\r\n0\r\n\r\n"
    )
    assert isinstance(t.error, InvalidProxyStatus)
    assert t.error.response is not None
    assert t.error.response.status_code == 403
    assert t.error.response.body == b"no way!"


def test_connect_403_body_until_eof() -> None:
    t = tunnel("http://proxy.test")
    t.receive_data(b"HTTP/1.1 403 Forbidden\r\n\r\nblocked ")
    t.receive_data(b"by policy")
    assert t.error is None
    t.receive_eof()
    assert isinstance(t.error, InvalidProxyStatus)
    assert t.error.response is not None
    assert t.error.response.body == b"blocked by policy"


def test_connect_error_then_more_data_is_ignored() -> None:
    t = tunnel("http://proxy.test")
    t.receive_data(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    error = t.error
    assert isinstance(error, InvalidProxyStatus)
    t.receive_data(b"HTTP/1.1 200 OK\r\n\r\n")
    t.receive_eof()
    assert t.error is error
    assert not t.done


@pytest.mark.parametrize(
    "answer",
    [
        b"",
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.1 200 OK\r\nVia: proxy\r\n",
        b"HTTP/1.1 20",
    ],
)
def test_connect_truncated_answer(answer: bytes) -> None:
    t = tunnel("http://proxy.test")
    t.receive_data(answer)
    assert t.error is None
    t.receive_eof()
    assert isinstance(t.error, InvalidProxyMessage)
    assert not t.done


@pytest.mark.parametrize(
    "answer",
    [
        b"garbage\r\n\r\n",
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\nVia: proxy\n\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"\x05\x00\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x50\r\n",
        b"HTTP/1.1 200 " + b"x" * 9000 + b"\r\n\r\n",
    ],
)
def test_connect_garbage(answer: bytes) -> None:
    t = tunnel("http://proxy.test")
    t.receive_data(answer)
    assert isinstance(t.error, InvalidProxyMessage)
    assert not t.done


def test_connect_garbage_is_chained() -> None:
    t = tunnel("http://proxy.test")
    t.receive_data(b"garbage\r\n")
    assert isinstance(t.error, InvalidProxyMessage)
    assert t.error.__cause__ is not None


# SOCKS5 ---------------------------------------------------------------------------------------


def socks(
    host: str = "example.com", port: int = 443, credentials: str = ""
) -> tuple[ProxyTunnel, bytes]:
    """A SOCKS5 tunnel and its greeting."""
    t = tunnel(f"socks5://{credentials}proxy.test", host, port)
    return t, sent(t)


def connect_reply(code: int = 0, bound: bytes = b"\x01\x7f\x00\x00\x01", port: int = 80) -> bytes:
    return bytes([5, code, 0]) + bound + port.to_bytes(2, "big")


def test_socks5_domain_name() -> None:
    t, greeting = socks("example.com", 443)
    assert greeting == b"\x05\x01\x00"
    t.receive_data(b"\x05\x00")
    assert sent(t) == b"\x05\x01\x00\x03\x0bexample.com\x01\xbb"
    t.receive_data(connect_reply())
    assert t.done
    assert t.error is None
    assert t.leftover() == b""


def test_socks5h_same_as_socks5() -> None:
    t = tunnel("socks5h://proxy.test", "example.com", 8080)
    assert sent(t) == b"\x05\x01\x00"
    t.receive_data(b"\x05\x00")
    assert sent(t) == b"\x05\x01\x00\x03\x0bexample.com\x1f\x90"


def test_socks5_ipv4() -> None:
    t, _ = socks("192.0.2.10", 80)
    t.receive_data(b"\x05\x00")
    assert sent(t) == b"\x05\x01\x00\x01\xc0\x00\x02\x0a\x00\x50"


def test_socks5_ipv6() -> None:
    t, _ = socks("2001:db8::1", 443)
    t.receive_data(b"\x05\x00")
    packed = ipaddress.IPv6Address("2001:db8::1").packed
    assert sent(t) == b"\x05\x01\x00\x04" + packed + b"\x01\xbb"


def test_socks5_idna_name() -> None:
    t, _ = socks("bücher.example", 80)
    t.receive_data(b"\x05\x00")
    name = b"xn--bcher-kva.example"
    assert sent(t) == b"\x05\x01\x00\x03" + bytes([len(name)]) + name + b"\x00\x50"


def test_socks5_credentials_not_needed() -> None:
    """A proxy that picks "no authentication" among the methods offered needs none."""
    t, _ = socks("example.com", 443, "user:pass@")
    t.receive_data(b"\x05\x00")
    assert sent(t) == b"\x05\x01\x00\x03\x0bexample.com\x01\xbb"


def test_socks5_credentials() -> None:
    t, greeting = socks("example.com", 443, "us%40er:p%3Ass@")
    # With credentials, both "no authentication" and username/password are offered.
    assert greeting == b"\x05\x02\x00\x02"
    t.receive_data(b"\x05\x02")
    # RFC 1929 §2: VER=1 ULEN UNAME PLEN PASSWD.
    assert sent(t) == b"\x01\x05us@er\x04p:ss"
    assert not t.done
    t.receive_data(b"\x01\x00")
    assert sent(t) == b"\x05\x01\x00\x03\x0bexample.com\x01\xbb"
    t.receive_data(connect_reply())
    assert t.done


def test_socks5_empty_password() -> None:
    t, _ = socks("example.com", 443, "user@")
    t.receive_data(b"\x05\x02")
    assert sent(t) == b"\x01\x04user\x00"


@pytest.mark.parametrize("status", [1, 2, 0xFF])
def test_socks5_credentials_rejected(status: int) -> None:
    t, _ = socks(credentials="user:wrong@")
    t.receive_data(b"\x05\x02")
    sent(t)
    t.receive_data(bytes([1, status]))
    assert isinstance(t.error, InvalidProxyStatus)
    assert t.error.reply == status
    assert t.error.response is None
    assert sent(t) == b""  # no CONNECT after a failed authentication


def test_socks5_credentials_too_long() -> None:
    t, _ = socks(credentials=f"{'u' * 256}:p@")
    t.receive_data(b"\x05\x02")
    assert isinstance(t.error, ProxyError)
    assert sent(t) == b""


def test_socks5_name_too_long() -> None:
    t, _ = socks(".".join(["a" * 60] * 5), 80)
    t.receive_data(b"\x05\x00")
    assert isinstance(t.error, ProxyError)


@pytest.mark.parametrize(("credentials", "method"), [("", 0xFF), ("u:p@", 0xFF), ("", 2)])
def test_socks5_method_refused(credentials: str, method: int) -> None:
    """X'FF': no acceptable method (RFC 1928 §3); or a method that wasn't offered."""
    t, _ = socks(credentials=credentials)
    t.receive_data(bytes([5, method]))
    assert isinstance(t.error, InvalidProxyStatus)
    assert sent(t) == b""


def test_socks5_not_a_socks5_proxy() -> None:
    t, _ = socks()
    t.receive_data(b"\x04\x5a")
    assert isinstance(t.error, InvalidProxyMessage)


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (1, "general SOCKS server failure"),
        (2, "connection not allowed by ruleset"),
        (3, "network unreachable"),
        (4, "host unreachable"),
        (5, "connection refused"),
        (6, "TTL expired"),
        (7, "command not supported"),
        (8, "address type not supported"),
        (9, "9"),
        (0xFF, "255"),
    ],
)
def test_socks5_reply_codes(code: int, text: str) -> None:
    t, _ = socks()
    t.receive_data(b"\x05\x00")
    sent(t)
    t.receive_data(connect_reply(code))
    assert isinstance(t.error, InvalidProxyStatus)
    assert t.error.reply == code
    assert t.error.response is None
    assert text in str(t.error)
    assert not t.done


@pytest.mark.parametrize(
    "bound",
    [
        b"\x01\xc0\x00\x02\x01",
        b"\x03\x0bexample.com",
        b"\x03\x00",
        b"\x04" + bytes(range(16)),
    ],
)
def test_socks5_bound_address_skipped(bound: bytes) -> None:
    t, _ = socks()
    t.receive_data(b"\x05\x00")
    sent(t)
    reply = connect_reply(0, bound, 1234)
    feed_bytewise(t, reply[:-1])
    assert not t.done
    t.receive_data(reply[-1:] + b"\x16\x03\x01server")
    assert t.done
    assert t.error is None
    assert t.leftover() == b"\x16\x03\x01server"


def test_socks5_greeting_and_reply_in_one_read() -> None:
    """A proxy may send the method reply and the CONNECT reply together."""
    t, _ = socks()
    t.receive_data(b"\x05\x00" + connect_reply() + b"after")
    assert t.done
    assert t.leftover() == b"after"


@pytest.mark.parametrize(
    "reply",
    [
        b"\x04\x00\x00\x01\x7f\x00\x00\x01\x00\x50",  # version 4
        b"\x05\x00\x00\x07\x7f\x00\x00\x01\x00\x50",  # address type 7
        b"\x05\x00\x00\x02\x7f\x00\x00\x01\x00\x50",  # address type 2
    ],
)
def test_socks5_invalid_reply(reply: bytes) -> None:
    t, _ = socks()
    t.receive_data(b"\x05\x00")
    t.receive_data(reply)
    assert isinstance(t.error, InvalidProxyMessage)
    assert not t.done


@pytest.mark.parametrize(
    ("before_eof", "stage"),
    [
        (b"", "greeting"),
        (b"\x05", "greeting"),
        (b"\x05\x00", "connect"),
        (b"\x05\x00\x05\x00\x00", "connect"),
        (b"\x05\x00\x05\x00\x00\x01\x7f\x00", "connect"),
        (b"\x05\x00\x05\x00\x00\x03\x05ab", "connect"),
    ],
)
def test_socks5_truncated(before_eof: bytes, stage: str) -> None:
    t, _ = socks()
    t.receive_data(before_eof)
    assert t.error is None
    assert not t.done
    t.receive_eof()
    assert isinstance(t.error, InvalidProxyMessage)


def test_socks5_truncated_authentication() -> None:
    t, _ = socks(credentials="u:p@")
    t.receive_data(b"\x05\x02\x01")
    t.receive_eof()
    assert isinstance(t.error, InvalidProxyMessage)


# parse_proxy -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://proxy.test", Proxy("http", "proxy.test", 80)),
        ("https://proxy.test", Proxy("https", "proxy.test", 443)),
        ("socks5://proxy.test", Proxy("socks5", "proxy.test", 1080)),
        ("socks5h://proxy.test", Proxy("socks5h", "proxy.test", 1080)),
        ("http://proxy.test:3128", Proxy("http", "proxy.test", 3128)),
        ("http://proxy.test:3128/", Proxy("http", "proxy.test", 3128)),
        ("HTTP://Proxy.Test:8080", Proxy("http", "proxy.test", 8080)),
        ("https://192.0.2.1:8443", Proxy("https", "192.0.2.1", 8443)),
        ("http://[2001:db8::1]:3128", Proxy("http", "2001:db8::1", 3128)),
        ("socks5://[::1]", Proxy("socks5", "::1", 1080)),
        ("http://user:pass@proxy.test", Proxy("http", "proxy.test", 80, ("user", "pass"))),
        ("http://user@proxy.test", Proxy("http", "proxy.test", 80, ("user", ""))),
        ("http://user:@proxy.test", Proxy("http", "proxy.test", 80, ("user", ""))),
        (
            "socks5://us%40er:p%3Ass%20w%2F%C3%B6@proxy.test:1",
            Proxy("socks5", "proxy.test", 1, ("us@er", "p:ss w/ö")),
        ),
    ],
)
def test_parse_proxy(uri: str, expected: Proxy) -> None:
    assert parse_proxy(uri) == expected


def test_proxy_secure() -> None:
    assert parse_proxy("https://p").secure
    assert not parse_proxy("http://p").secure
    assert not parse_proxy("socks5://p").secure


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "ftp://x",
        "socks4://proxy.test",
        "socks://proxy.test",
        "ws://proxy.test",
        "http://",
        "http://:8080",
        "http://proxy.test/path",
        "http://proxy.test?query",
        "http://proxy.test/#fragment",
        "http://proxy.test:99999",
        "http://proxy.test:port",
    ],
)
def test_parse_proxy_invalid(uri: str) -> None:
    with pytest.raises(InvalidProxy) as excinfo:
        parse_proxy(uri)
    assert excinfo.value.proxy == uri
    assert excinfo.value.msg
    assert "isn't a valid proxy" in str(excinfo.value)


# proxy_from_environment --------------------------------------------------------------------


WS = parse_uri("ws://example.com/")
WSS = parse_uri("wss://example.com/")


@pytest.mark.parametrize(
    ("environ", "ws", "wss"),
    [
        ({}, None, None),
        ({"http_proxy": "http://a"}, "http://a", None),
        ({"https_proxy": "http://b"}, None, "http://b"),
        ({"all_proxy": "socks5://c"}, "socks5://c", "socks5://c"),
        ({"http_proxy": "http://a", "all_proxy": "socks5://c"}, "http://a", "socks5://c"),
        ({"https_proxy": "http://b", "all_proxy": "socks5://c"}, "socks5://c", "http://b"),
        ({"HTTP_PROXY": "http://A", "HTTPS_PROXY": "http://B"}, "http://A", "http://B"),
        ({"ALL_PROXY": "http://C"}, "http://C", "http://C"),
        # Lower-case names win, whatever the order of the mapping.
        ({"http_proxy": "http://a", "HTTP_PROXY": "http://A"}, "http://a", None),
        ({"HTTP_PROXY": "http://A", "http_proxy": "http://a"}, "http://a", None),
        ({"HTTPS_PROXY": "http://B", "https_proxy": "http://b"}, None, "http://b"),
        ({"all_proxy": "http://c", "ALL_PROXY": "http://C"}, "http://c", "http://c"),
        # Empty values count as unset, as in curl.
        ({"http_proxy": "", "all_proxy": "http://c"}, "http://c", "http://c"),
        # Other variables don't matter.
        ({"ftp_proxy": "http://f", "PROXY": "http://p", "proxy": "x"}, None, None),
    ],
)
def test_environment(environ: dict[str, str], ws: str | None, wss: str | None) -> None:
    assert proxy_from_environment(WS, environ) == ws
    assert proxy_from_environment(WSS, environ) == wss


def test_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)
    assert proxy_from_environment(WS) is None
    monkeypatch.setenv("http_proxy", "http://from-os:1")
    assert proxy_from_environment(WS) == "http://from-os:1"


def test_cgi_http_proxy_ignored() -> None:
    """httpoxy (CVE-2016-5385): in a CGI script, HTTP_PROXY may come from a request's
    ``Proxy:`` header."""
    environ = {"REQUEST_METHOD": "GET", "HTTP_PROXY": "http://attacker"}
    assert proxy_from_environment(WS, environ) is None
    environ["ALL_PROXY"] = "http://all"
    assert proxy_from_environment(WS, environ) == "http://all"
    # Without REQUEST_METHOD, it's a plain environment variable.
    assert proxy_from_environment(WS, {"HTTP_PROXY": "http://A"}) == "http://A"
    # Only HTTP_PROXY can come from a request header; HTTPS_PROXY is still used.
    environ = {"REQUEST_METHOD": "GET", "HTTPS_PROXY": "http://B"}
    assert proxy_from_environment(WSS, environ) == "http://B"


def test_cgi_lower_case_http_proxy_still_used() -> None:
    """A CGI variable is always upper-case: http_proxy can't come from the request, so
    curl (which never reads HTTP_PROXY) and urllib (CVE-2016-1000110 fix) still use it."""
    environ = {
        "REQUEST_METHOD": "GET",
        "HTTP_PROXY": "http://attacker",
        "http_proxy": "http://admin-chosen",
    }
    assert proxy_from_environment(WS, environ) == "http://admin-chosen"


def exempt(uri: str, no_proxy: str, name: str = "no_proxy") -> bool:
    environ = {"http_proxy": "http://p", "https_proxy": "http://p", name: no_proxy}
    return proxy_from_environment(parse_uri(uri), environ) is None


@pytest.mark.parametrize(
    ("uri", "no_proxy"),
    [
        ("ws://example.com/", "*"),
        ("ws://example.com/", " * "),
        ("ws://example.com/", "example.com"),
        ("ws://EXAMPLE.com/", "example.COM"),
        ("ws://example.com./", "example.com"),
        ("ws://example.com/", "example.com."),
        ("ws://example.com/", "other.test,example.com"),
        ("ws://example.com/", "other.test , example.com "),
        ("ws://example.com/", ",,example.com,"),
        ("ws://www.example.com/", "example.com"),
        ("ws://a.b.example.com/", "example.com"),
        ("ws://www.example.com/", ".example.com"),
        ("ws://www.example.com/", "*.example.com"),
        ("ws://example.com/", ".example.com"),
        ("ws://example.com:8080/", "example.com:8080"),
        ("wss://example.com/", "example.com:443"),
        ("ws://example.com/", "example.com:80"),
        ("ws://www.example.com:8080/", ".example.com:8080"),
        ("ws://192.0.2.1/", "192.0.2.1"),
        ("ws://192.0.2.1:8080/", "192.0.2.1:8080"),
        ("ws://192.0.2.1/", "192.0.2.0/24"),
        ("ws://10.1.2.3/", "10.0.0.0/8"),
        ("ws://[2001:db8::1]/", "2001:db8::1"),
        ("ws://[2001:db8::1]/", "[2001:db8::1]"),
        ("ws://[2001:db8::1]/", "2001:db8::/32"),
        ("ws://[::1]/", "::1"),
    ],
)
def test_no_proxy_exempts(uri: str, no_proxy: str) -> None:
    assert exempt(uri, no_proxy)
    assert exempt(uri, no_proxy, "NO_PROXY")


@pytest.mark.parametrize(
    ("uri", "no_proxy"),
    [
        ("ws://example.com/", ""),
        ("ws://example.com/", " , "),
        ("ws://example.com/", "example.org"),
        ("ws://example.com/", "ample.com"),
        ("ws://example.com/", "www.example.com"),
        ("ws://notexample.com/", "example.com"),
        ("ws://example.com.evil.test/", "example.com"),
        ("ws://example.com:8080/", "example.com:8081"),
        ("ws://example.com/", "example.com:8080"),
        ("wss://example.com/", "example.com:80"),
        ("ws://192.0.2.1/", "192.0.2.2"),
        ("ws://192.0.2.1/", "192.0.3.0/24"),
        ("ws://192.0.2.1/", "192.0.2.1:8080"),
        ("ws://192.0.2.10/", "192.0.2.1"),
        ("ws://[2001:db8::1]/", "2001:db8::2"),
        ("ws://[2001:db8::1]/", "2001:db9::/32"),
        ("ws://[2001:db8::1]/", "192.0.2.0/24"),
        ("ws://192.0.2.1/", "2001:db8::/32"),
        ("ws://example.com/", "192.0.2.0/24"),
    ],
)
def test_no_proxy_does_not_exempt(uri: str, no_proxy: str) -> None:
    assert not exempt(uri, no_proxy)


def test_no_proxy_lower_case_wins() -> None:
    environ = {"http_proxy": "http://p", "NO_PROXY": "*", "no_proxy": "other.test"}
    assert proxy_from_environment(WS, environ) == "http://p"
    environ = {"http_proxy": "http://p", "NO_PROXY": "other.test", "no_proxy": "*"}
    assert proxy_from_environment(WS, environ) is None


def test_no_proxy_applies_to_all_proxy() -> None:
    environ = {"all_proxy": "socks5://c", "no_proxy": "example.com"}
    assert proxy_from_environment(WS, environ) is None
    assert proxy_from_environment(WSS, environ) is None


@pytest.mark.parametrize(
    ("proxy", "message"),
    [
        ("http://[::1", "unterminated IPv6 address"),
        ("http://[zz]:3128", "invalid IPv6 address"),
        ("http://a..b:3128", "invalid domain name"),
        ("http://bü..cher:3128", "internationalized domain name"),
        ("http://a b:3128", "invalid host"),
        ("http://a,b:3128", "invalid host"),
        ("http://h:3128\x00", "control character"),
        ("socks5://\ud800", "lone surrogate"),
        ("http://h:0", "port 0"),
    ],
)
def test_parse_proxy_invalid_host_or_port(proxy: str, message: str) -> None:
    """The host and port rules of WebSocket URIs; never ValueError or UnicodeError."""
    with pytest.raises(InvalidProxy) as info:
        parse_proxy(proxy)
    assert message in info.value.msg
    assert str(info.value).isprintable()


def test_parse_proxy_hosts() -> None:
    """Names in ASCII (IDNA when internationalized), lowercase; addresses unbracketed."""
    for proxy, expected in [
        ("http://Proxy.Example:3128", Proxy("http", "proxy.example", 3128)),
        ("http://bücher.example:3128", Proxy("http", "xn--bcher-kva.example", 3128)),
        ("socks5h://[::1]", Proxy("socks5h", "::1", 1080)),
        ("proxy:3128", Proxy("http", "proxy", 3128)),
        ("http://u:p%40@proxy:", Proxy("http", "proxy", 80, ("u", "p@"))),
    ]:
        assert parse_proxy(proxy) == expected, proxy
