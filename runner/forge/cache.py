"""Remember GitHub facts that rarely change for a short while, so a task reads only what can have changed.

Repository facts (default branch, clone URL) and a user's permission are the
same for every task of a burst; reading them once a minute instead of once a
task saves two requests per task. The time to live bounds how stale an answer
can be: a permission revoked on GitHub is honoured within ``ttl`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TtlCache(Generic[V]):
    """A thread-safe map whose entries expire ``ttl`` seconds after they were stored."""

    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.monotonic, max_entries: int = 4096) -> None:
        self.ttl = ttl
        self._clock = clock
        self._max = max_entries
        self._lock = threading.Lock()
        self._items: dict[Hashable, tuple[float, V]] = {}

    def get_or_load(self, key: Hashable, load: Callable[[], V]) -> V:
        """The cached value, or ``load()``'s (stored when ``ttl`` > 0; errors are not cached)."""
        now = self._clock()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        value = load()
        if self.ttl > 0:
            with self._lock:
                if len(self._items) >= self._max:
                    self._items = {k: v for k, v in self._items.items() if v[0] > now}
                    if len(self._items) >= self._max:
                        self._items.clear()
                self._items[key] = (now + self.ttl, value)
        return value

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._items.pop(key, None)
