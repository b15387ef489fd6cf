"""The pool of system random bytes behind masking and handshake keys (RFC 6455 §10.3)."""

from __future__ import annotations

import itertools
import os
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from wsio.protocol import entropy
from wsio.protocol.connection import ClientProtocol, Protocol, ServerProtocol, Side
from wsio.protocol.uri import parse_uri

try:
    from wsio import _speedups
except ImportError:  # pragma: no cover - only where wsio was installed without a C compiler
    IMPLEMENTATIONS: dict[str, Callable[[int], bytes]] = {"python": entropy.python_random_bytes}
else:
    IMPLEMENTATIONS = {"python": entropy.python_random_bytes, "c": _speedups.random_bytes}


class CountingSource:
    """Stands in for ``os.urandom``: every byte it returns is a distinct 4-byte number's,
    so that a byte handed out twice shows up as a repeated number."""

    def __init__(self) -> None:
        self.numbers = itertools.count()
        self.lock = threading.Lock()
        self.sizes: list[int] = []

    def __call__(self, size: int) -> bytes:
        assert size % 4 == 0
        with self.lock:
            self.sizes.append(size)
            return b"".join(next(self.numbers).to_bytes(4, "big") for _ in range(size // 4))


def numbers(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 4], "big") for i in range(0, len(data), 4)]


RandomBytes = Callable[[int], bytes]


def forget_pools() -> None:
    """Empty every pool, of each implementation."""
    entropy._forget_pools()
    if "c" in IMPLEMENTATIONS:
        _speedups.forget_random_pools()


@pytest.fixture(params=list(IMPLEMENTATIONS.values()), ids=list(IMPLEMENTATIONS))
def random_bytes(request: pytest.FixtureRequest) -> RandomBytes:
    """Each implementation: the Python reference, and the C version when it is built."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def source(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingSource]:
    fake = CountingSource()
    monkeypatch.setattr(entropy.os, "urandom", fake)
    forget_pools()
    yield fake
    forget_pools()


def test_sizes(random_bytes: RandomBytes) -> None:
    for size in (0, 1, 4, 16, entropy.POOL_SIZE // 4, entropy.POOL_SIZE + 1):
        data = random_bytes(size)
        assert type(data) is bytes and len(data) == size


def test_sizes_below_one(random_bytes: RandomBytes) -> None:
    assert random_bytes(0) == random_bytes(-1) == random_bytes(-5) == b""


def test_consecutive_keys_differ(random_bytes: RandomBytes) -> None:
    keys = [random_bytes(16) for _ in range(2 * entropy.POOL_SIZE // 16 + 3)]
    assert len(set(keys)) == len(keys)


def test_bytes_handed_out_in_order_once(random_bytes: RandomBytes, source: CountingSource) -> None:
    per_pool = entropy.POOL_SIZE // 4
    drawn = b"".join(random_bytes(4) for _ in range(2 * per_pool + 1))
    assert numbers(drawn) == list(range(2 * per_pool + 1))
    assert source.sizes == [entropy.POOL_SIZE] * 3


def test_request_across_a_refill(random_bytes: RandomBytes, source: CountingSource) -> None:
    """A request larger than what is left takes the rest, then bytes of a new pool."""
    per_pool = entropy.POOL_SIZE // 4
    head = b"".join(random_bytes(4) for _ in range(per_pool - 2))  # 8 bytes left
    assert numbers(head) == list(range(per_pool - 2))
    key = random_bytes(16)
    assert numbers(key) == list(range(per_pool - 2, per_pool + 2))
    assert numbers(random_bytes(4)) == [per_pool + 2]
    assert source.sizes == [entropy.POOL_SIZE] * 2


def test_sizes_not_a_multiple_of_4(random_bytes: RandomBytes, source: CountingSource) -> None:
    """The rest of the last key is dropped: no byte is handed out twice."""
    assert random_bytes(5) == bytes([0, 0, 0, 0, 0])
    assert numbers(random_bytes(4)) == [2]
    assert random_bytes(0) == b""
    assert numbers(random_bytes(4)) == [3]


def test_exact_fit_then_refill(random_bytes: RandomBytes, source: CountingSource) -> None:
    for _ in range(entropy.POOL_SIZE // 4 - 1):
        random_bytes(4)
    assert numbers(random_bytes(4)) == [entropy.POOL_SIZE // 4 - 1]
    assert source.sizes == [entropy.POOL_SIZE]
    assert numbers(random_bytes(4)) == [entropy.POOL_SIZE // 4]
    assert source.sizes == [entropy.POOL_SIZE] * 2


def test_large_requests_bypass_the_pool(random_bytes: RandomBytes, source: CountingSource) -> None:
    """A large request that doesn't fit in what is left is drawn on its own: refilling
    for it would drop most of a pool."""
    for _ in range(3):
        random_bytes(4)
    large = random_bytes(entropy.POOL_SIZE - 8)
    assert len(large) == entropy.POOL_SIZE - 8
    assert source.sizes == [entropy.POOL_SIZE, entropy.POOL_SIZE - 8]
    # The pool goes on where it was.
    assert numbers(random_bytes(4)) == [3]


def test_each_thread_has_its_own_pool(random_bytes: RandomBytes, source: CountingSource) -> None:
    """No thread takes bytes from another's pool, so none can race another for them."""
    main = random_bytes(4)
    other: list[bytes] = []
    thread = threading.Thread(target=lambda: other.append(random_bytes(4)))
    thread.start()
    thread.join(timeout=10)
    assert numbers(main) == [0]
    assert numbers(other[0]) == [entropy.POOL_SIZE // 4]
    assert numbers(random_bytes(4)) == [1]


def test_threads_never_hand_out_the_same_bytes(
    random_bytes: RandomBytes, source: CountingSource
) -> None:
    threads_count, keys_per_thread = 8, 1500  # each thread refills its pool
    drawn: list[list[bytes]] = [[] for _ in range(threads_count)]
    barrier = threading.Barrier(threads_count)

    def draw(keys: list[bytes]) -> None:
        barrier.wait(timeout=10)
        for _ in range(keys_per_thread):
            keys.append(random_bytes(4))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=draw, args=(keys,)) for keys in drawn]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        sys.setswitchinterval(interval)
    every = [number for keys in drawn for number in numbers(b"".join(keys))]
    assert len(every) == threads_count * keys_per_thread
    assert len(set(every)) == len(every)


def test_threads_with_the_system_source(random_bytes: RandomBytes) -> None:
    drawn: list[list[bytes]] = [[] for _ in range(4)]

    def draw(keys: list[bytes]) -> None:
        for _ in range(600):
            keys.append(random_bytes(16))

    threads = [threading.Thread(target=draw, args=(keys,)) for keys in drawn]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    every = [key for keys in drawn for key in keys]
    assert len(every) == 2400 and len(set(every)) == 2400


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_doesnt_reuse_the_parents_bytes(random_bytes: RandomBytes) -> None:
    """The child's keys aren't the ones its parent hands out next from the same pool."""
    forget_pools()
    random_bytes(4)  # the parent's pool is full, less one key
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.close(read_end)
            os.write(write_end, b"".join(random_bytes(4) for _ in range(64)))
        finally:
            os._exit(0)
    os.close(write_end)
    received = b""
    for _ in range(100):
        chunk = os.read(read_end, 256)
        if not chunk:
            break
        received += chunk
    os.close(read_end)
    os.waitpid(pid, 0)
    child = [received[i : i + 4] for i in range(0, len(received), 4)]
    parent = [random_bytes(4) for _ in range(64)]
    assert len(child) == 64
    assert not set(child) & set(parent)


def test_protocols_use_the_pool_by_default() -> None:
    assert Protocol(Side.CLIENT).random_bytes is entropy.random_bytes
    assert ServerProtocol().random_bytes is entropy.random_bytes
    client = ClientProtocol(parse_uri("ws://a/"))
    assert client.random_bytes is entropy.random_bytes
    assert len(client.key) == 24


def test_client_masks_come_from_the_pool(source: CountingSource) -> None:
    protocol = Protocol(Side.CLIENT)
    frame = protocol.send_message(b"x", text=False)
    assert frame is not None
    assert numbers(frame[2:6]) == [0]
    protocol.send_binary(b"y")
    assert numbers(protocol.data_to_send()[0][2:6]) == [1]
