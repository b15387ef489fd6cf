"""Types of the optional C accelerator built from ``_speedups.c``."""

from collections.abc import Callable
from typing import TypeVar

from _typeshed import ReadableBuffer

_E = TypeVar("_E")

def apply_mask(data: ReadableBuffer, mask: ReadableBuffer, offset: int = 0) -> bytes: ...

class Utf8Validator:
    def feed(self, data: ReadableBuffer, final: bool = False) -> None: ...

def parse_messages(
    data: ReadableBuffer,
    events: list[_E],
    mask_expected: bool,
    max_size: int,
    text_message: Callable[[str], _E],
    binary_message: Callable[[bytes], _E],
    /,
) -> int: ...
def deliver_messages(
    data: ReadableBuffer,
    size: int,
    deliver: Callable[[str | bytes], object],
    mask_expected: bool,
    max_size: int,
    /,
) -> int: ...
def serialize_frame(
    opcode: int,
    payload: ReadableBuffer,
    fin: bool = True,
    rsv: int = 0,
    mask: ReadableBuffer | None = None,
) -> bytes: ...

class PayloadBuffer:
    def __init__(self, length: int, mask: ReadableBuffer | None = None) -> None: ...
    @property
    def remaining(self) -> int: ...
    def write(self, data: ReadableBuffer, /) -> int: ...
    def finish(self) -> bytes: ...
