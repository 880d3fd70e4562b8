"""Recent uploads' network outputs, bounded in bytes, so a new temperature re-renders without the network.

Entries are dropped least recently used first once the total passes ``capacity_bytes``; an entry larger than the
whole capacity is not kept at all. The cache lives in one model replica: a re-render must reach the replica that
colorized the upload (docs/serving.md says how requests are routed), and a miss means "upload again".
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

Value = TypeVar("Value")


class ByteBoundedLRU(Generic[Value]):
    """A thread-safe LRU map whose capacity is a number of bytes (each entry states its own size).

    Args:
        capacity_bytes: the most bytes kept; 0 disables the cache.
    """

    def __init__(self, capacity_bytes: int) -> None:
        if capacity_bytes < 0:
            raise ValueError(f"capacity_bytes must be >= 0; got {capacity_bytes}")
        self.capacity_bytes = capacity_bytes
        self._entries: OrderedDict[str, tuple[Value, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, key: str, value: Value, size_bytes: int) -> bool:
        """Stores ``value``; returns False when it is larger than the whole cache (then nothing is stored)."""
        with self._lock:
            self._drop(key)
            if size_bytes > self.capacity_bytes:
                return False
            self._entries[key] = (value, size_bytes)
            self._bytes += size_bytes
            while self._bytes > self.capacity_bytes:
                self._drop(next(iter(self._entries)))
            return True

    def get(self, key: str) -> Value | None:
        """The value of ``key`` (now the most recently used), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[1]

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
