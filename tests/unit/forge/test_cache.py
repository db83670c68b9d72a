"""Cached GitHub facts expire after their time to live, and a failed read is not cached."""

from __future__ import annotations

import pytest

from runner.forge.cache import TtlCache


def test_entries_expire_after_their_ttl() -> None:
    now = [0.0]
    cache: TtlCache[str] = TtlCache(60.0, clock=lambda: now[0])
    loads: list[int] = []

    def load() -> str:
        loads.append(1)
        return f"v{len(loads)}"

    assert cache.get_or_load("k", load) == "v1"
    now[0] = 59.0
    assert cache.get_or_load("k", load) == "v1"
    now[0] = 61.0
    assert cache.get_or_load("k", load) == "v2"


def test_zero_ttl_caches_nothing_and_errors_are_not_kept() -> None:
    cache: TtlCache[int] = TtlCache(0.0)
    assert cache.get_or_load("k", lambda: 1) == 1
    assert cache.get_or_load("k", lambda: 2) == 2
    cached: TtlCache[int] = TtlCache(60.0)

    def broken() -> int:
        raise RuntimeError("GitHub is down")

    with pytest.raises(RuntimeError):
        cached.get_or_load("k", broken)
    assert cached.get_or_load("k", lambda: 3) == 3
