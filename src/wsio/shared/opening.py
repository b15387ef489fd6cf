"""Opening a client connection, for both I/O layers: the options of ``connect``, checked
once, and the redirects followed on the way to the server (RFC 9110 §15.4)."""

from __future__ import annotations

import logging
import ssl as ssl_module
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from .. import defaults
from ..exceptions import InvalidArgument, InvalidHandshake, InvalidStatus, SecurityError
from ..protocol.extensions import ClientExtensionFactory
from ..protocol.handshake import build_request, redirect_location
from ..protocol.http11 import Headers, HeadersLike, Response
from ..protocol.proxy import Proxy, parse_proxy, proxy_from_environment
from ..protocol.uri import WebSocketURI, parse_uri, resolve_redirect, same_origin
from .compression import client_extensions
from .connection import ConnectionOptions, connection_options, opening_options

__all__ = ["ClientOptions", "ClientSettings", "Redirects", "unix_options"]

LoggerLike = logging.Logger | logging.LoggerAdapter[logging.Logger]

_logger = logging.getLogger("wsio.client")


class ClientOptions(ConnectionOptions, total=False):
    """The keyword arguments that ``connect`` takes in both I/O layers, with their
    defaults in :mod:`wsio.defaults`: those of :class:`ConnectionOptions`, and

    - ``ssl``: TLS context for ``wss://``; a default, verifying context if omitted.
    - ``server_hostname``: the name TLS checks the certificate against; the URI's host
      if omitted.
    - ``origin``: value of the ``Origin`` header.
    - ``subprotocols``: subprotocols to offer, in order of preference.
    - ``additional_headers``: extra request headers; they replace defaults of the same
      name.
    - ``user_agent_header``: value of ``User-Agent``; ``None`` leaves it out.
    - ``open_timeout``: seconds for TCP connect, TLS and the HTTP upgrade together,
      redirects included; ``None`` waits forever. Exceeding it raises
      :class:`TimeoutError`.
    - ``max_size``: largest incoming message in bytes; ``None`` disables the limit.
    - ``compression``: ``"deflate"`` (default) offers permessage-deflate (RFC 7692);
      ``None`` offers no compression.
    - ``compression_threshold``: messages shorter than this many bytes are sent
      uncompressed; ``send(..., compress=...)`` decides for one message.
    - ``extensions``: more extensions to offer, after compression.
    - ``proxy``: ``http://``, ``https://``, ``socks5://`` or ``socks5h://`` proxy URI;
      ``True`` (default) takes it from ``https_proxy``/``http_proxy``/``all_proxy``
      unless ``no_proxy`` exempts the host; ``None`` connects directly.
    - ``proxy_ssl``: TLS context for an ``https://`` proxy.
    - ``logger``: where the connection logs; ``wsio.client`` if omitted.
    """

    ssl: ssl_module.SSLContext | None
    server_hostname: str | None
    origin: str | None
    subprotocols: Sequence[str] | None
    additional_headers: HeadersLike | None
    user_agent_header: str | None
    open_timeout: float | None
    max_size: int | None
    compression: str | None
    compression_threshold: int
    extensions: Sequence[ClientExtensionFactory]
    proxy: str | Literal[True] | None
    proxy_ssl: ssl_module.SSLContext | None
    logger: LoggerLike | None


class ClientSettings:
    """:class:`ClientOptions` checked and completed with their defaults, as each attempt
    to connect needs them: what the core takes (:attr:`protocol_kwargs`), what the I/O
    layer's connection takes (:attr:`connection_kwargs`), TLS and the proxy.

    :raises InvalidURI: ``uri`` isn't a ``ws://`` or ``wss://`` URI.
    :raises InvalidProxy: an invalid proxy URI.
    :raises InvalidArgument: a limit or timeout out of range, a subprotocol that isn't a
        token, a header (extra, ``origin``, ``user_agent_header``) that can't be sent.
    :raises ValueError: ``ssl`` with a ``ws://`` URI, or an unknown compression.
    :raises TypeError: an option that ``connect`` doesn't take, or of the wrong type.
    """

    def __init__(self, uri: str, options: Mapping[str, Any]) -> None:
        unknown = sorted(set(options) - ClientOptions.__optional_keys__)
        if unknown:
            raise TypeError(f"connect() got an unexpected keyword argument {unknown[0]!r}")
        self.uri = parse_uri(uri)
        self.connection_kwargs = connection_options(options)
        self.open_timeout: float | None
        self.open_timeout, max_size = opening_options(options)
        proxy = options.get("proxy", True)
        if isinstance(proxy, str):
            parse_proxy(proxy)  # fail early on an invalid proxy
        self.proxy: str | Literal[True] | None = proxy
        self.proxy_ssl: ssl_module.SSLContext | None = options.get("proxy_ssl")
        self.ssl: ssl_module.SSLContext | None = options.get("ssl")
        if self.ssl is not None and not self.uri.secure:
            raise ValueError("ssl argument is incompatible with a ws:// URI")
        self.server_hostname: str | None = options.get("server_hostname")
        self.user_agent_header: str | None = options.get("user_agent_header", defaults.USER_AGENT)
        # Copied once: the request built below and every attempt read the same fields,
        # even when they were given as an iterator.
        additional_headers = options.get("additional_headers")
        if additional_headers is not None:
            additional_headers = Headers(additional_headers)
        logger = options.get("logger")
        self.protocol_kwargs: dict[str, Any] = dict(
            # A tuple: the connections of these settings share it.
            extensions=tuple(
                client_extensions(
                    options.get("compression", defaults.COMPRESSION),
                    options.get("compression_threshold", defaults.COMPRESSION_THRESHOLD),
                    options.get("extensions", ()),
                )
            ),
            origin=options.get("origin"),
            subprotocols=options.get("subprotocols"),
            additional_headers=additional_headers,
            user_agent_header=self.user_agent_header,
            max_size=max_size,
            hold_failures=True,
            logger=logger if logger is not None else _logger,
        )
        # Each attempt builds its request; one built now refuses what couldn't be sent
        # (a subprotocol that isn't a token, a control character in a header...) as it
        # is given, rather than at every attempt, once connected.
        build_request(
            self.uri,
            "",
            origin=self.protocol_kwargs["origin"],
            subprotocols=self.protocol_kwargs["subprotocols"],
            additional_headers=additional_headers,
            user_agent=self.user_agent_header,
            extensions=self.protocol_kwargs["extensions"],
        )

    @classmethod
    def of(cls, uri: str, options: Mapping[str, Any]) -> ClientSettings:
        """The settings of ``uri`` and ``options``: the same object for the same
        arguments, checked once, when every value is immutable or held by reference only
        (a context, a logger, a tuple of strings or factories); new ones otherwise.

        An application that calls ``connect`` with the same arguments for each
        connection checks its options and builds their request once, not each time.
        """
        values = tuple(options.values())
        for value in values:
            if value.__class__ not in _SCALARS and not _is_fixed(value):
                return cls(uri, options)
        # The types too: 1 and True are equal, but max_size=True isn't a limit.
        key = (uri, tuple(options), values, tuple(map(type, values)))
        settings = _settings_cache.get(key)
        if settings is None:
            settings = cls(uri, options)
            if len(_settings_cache) >= _SETTINGS_CACHE_SIZE:
                _settings_cache.clear()
            _settings_cache[key] = settings
        return settings

    def proxy_for(self, uri: WebSocketURI) -> Proxy | None:
        """The proxy to reach ``uri`` through; ``None`` to connect directly."""
        proxy = proxy_from_environment(uri) if self.proxy is True else self.proxy
        return None if proxy is None else parse_proxy(proxy)

    def ssl_for(self, uri: WebSocketURI) -> ssl_module.SSLContext | None:
        """The TLS context for ``uri``; ``None`` for ``ws://``."""
        if not uri.secure:
            return None
        return self.ssl if self.ssl is not None else ssl_module.create_default_context()

    def server_hostname_for(self, uri: WebSocketURI) -> str:
        """The name that TLS checks the server's certificate against."""
        return self.server_hostname or uri.host

    def proxy_ssl_for(self, proxy: Proxy) -> ssl_module.SSLContext | None:
        """The TLS context for the connection to ``proxy``; ``None`` unless ``https://``."""
        if not proxy.secure:
            return None
        return self.proxy_ssl or ssl_module.create_default_context()


#: How many sets of arguments :meth:`ClientSettings.of` remembers; beyond, it starts over.
_SETTINGS_CACHE_SIZE = 64
_settings_cache: dict[tuple[Any, ...], ClientSettings] = {}


#: Option values that can't change behind a cached :class:`ClientSettings`: immutable,
#: or only held by reference, never copied or read at the time the settings are made.
_FIXED_TYPES = (
    type(None),
    bool,
    int,
    float,
    str,
    ssl_module.SSLContext,
    logging.Logger,
    logging.LoggerAdapter,
    ClientExtensionFactory,
)


#: The usual types of option values, which :func:`_is_fixed` accepts: a quicker test.
_SCALARS = frozenset({type(None), bool, int, float, str})


def _is_fixed(value: object) -> bool:
    """Whether ``value`` can be a key of the settings cache: a fixed value, or a tuple of
    them (not an iterator, a list or a mapping, which may change or be used up)."""
    if isinstance(value, tuple):
        return all(map(_is_fixed, value))
    return isinstance(value, _FIXED_TYPES)


class Redirects:
    """The redirects followed while opening a connection (RFC 9110 §15.4).

    Each attempt connects to :attr:`uri` with :attr:`protocol_kwargs`; an attempt that
    gets an :class:`InvalidStatus` hands it to :meth:`follow`, which moves on to the
    ``Location`` or raises. Credentials don't follow a redirect to another origin. Any
    :class:`InvalidHandshake` that ends the opening goes through :meth:`annotate`.

    With ``fixed_endpoint``, every attempt reaches the same socket whatever the URI says
    (a Unix socket): a redirect to another origin can't be followed, since its request
    would reach that socket as if it were the other origin.
    """

    def __init__(self, settings: ClientSettings, *, fixed_endpoint: bool = False) -> None:
        self.uri = settings.uri
        # The settings' own, until a redirect changes them (replaced, never edited).
        self.protocol_kwargs = settings.protocol_kwargs
        self.fixed_endpoint = fixed_endpoint
        #: ``(uri, response)`` of each redirect followed, in order.
        self.followed: list[tuple[str, Response]] = []

    def follow(self, exc: InvalidStatus) -> None:
        """Move on to where ``exc``'s response redirects.

        :raises InvalidStatus: ``exc`` itself, when it isn't a redirect.
        :raises SecurityError: too many redirects, or a redirect from ``wss`` to ``ws``.
        :raises InvalidURI: a ``Location`` that isn't a WebSocket or HTTP URI.
        :raises InvalidHandshake: a redirect to another origin from a fixed endpoint.
        """
        location = redirect_location(exc.response)
        if location is None:
            raise exc
        self.followed.append((self.uri.url, exc.response))
        if len(self.followed) > defaults.MAX_REDIRECTS:
            raise SecurityError(f"more than {defaults.MAX_REDIRECTS} redirects")
        new_uri = resolve_redirect(self.uri, location)
        if not same_origin(self.uri, new_uri):
            if self.fixed_endpoint:
                raise InvalidHandshake(
                    f"cannot follow a redirect to another origin over a Unix socket: {new_uri.url}"
                ) from exc
            self.protocol_kwargs = dict(
                self.protocol_kwargs,
                additional_headers=_without_credentials(
                    self.protocol_kwargs["additional_headers"]
                ),
            )
        self.uri = new_uri

    def annotate(self, exc: InvalidHandshake) -> None:
        """Record in ``exc`` the redirects that led to it, if any."""
        if self.followed:
            exc.redirects = self.followed


def unix_options(uri: str | None, options: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The URI and options of a connection over a Unix socket: ``uri`` names the
    ``Host`` header and the request's path, ``ws://localhost/`` by default, or
    ``wss://localhost/`` with ``ssl`` (TLS works over a Unix socket too). The socket is
    reached directly: no proxy.

    :raises InvalidArgument: a ``proxy``.
    """
    if uri is None:
        uri = "ws://localhost/" if options.get("ssl") is None else "wss://localhost/"
    # True is connect's default, "from the environment": nothing to take from there.
    if options.get("proxy", True) is not True and options.get("proxy") is not None:
        raise InvalidArgument("a connection over a Unix socket can't use a proxy")
    return uri, {**options, "proxy": None}


def _without_credentials(headers: HeadersLike | None) -> Headers | None:
    """Extra headers minus those that carry credentials, for a redirect to another origin."""
    if headers is None:
        return None
    kept = Headers(headers)
    for name in ("Authorization", "Cookie", "Proxy-Authorization"):
        if name in kept:
            del kept[name]
    return kept
