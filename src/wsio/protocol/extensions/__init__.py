"""Extensions (RFC 6455 §9): the mechanism, and permessage-deflate (RFC 7692)."""

from .base import ClientExtensionFactory, Extension, ExtensionParameter, ServerExtensionFactory
from .header import build_extensions, parse_extensions
from .permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)

__all__ = [
    "ClientExtensionFactory",
    "ClientPerMessageDeflateFactory",
    "Extension",
    "ExtensionParameter",
    "PerMessageDeflate",
    "ServerExtensionFactory",
    "ServerPerMessageDeflateFactory",
    "build_extensions",
    "parse_extensions",
]
