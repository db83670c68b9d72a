"""Enforce GitHub's secondary rate limits, per token and per App installation, and record every hit.

What GitHub documents
(https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits,
https://docs.github.com/en/graphql/overview/rate-limits-and-query-limits-for-the-graphql-api#secondary-rate-limits):

- no more than 100 concurrent requests, REST and GraphQL together;
- no more than 900 points a minute for REST endpoints and 2,000 for GraphQL:
  a GET, HEAD or OPTIONS (a GraphQL query) is 1 point, a POST, PATCH, PUT or
  DELETE (a GraphQL mutation) is 5;
- no more than 80 content-generating requests a minute and 500 an hour;
  a GraphQL request counts once per mutation it carries (GitHub documents no
  cheaper rule, so the worst is assumed).

Exceeding one answers 403 with the documented message and a ``Retry-After``
(the seconds until the window admits the request again). Windows are sliding;
``time_scale`` runs them that many times faster, so a benchmark can cover "an
hour" in minutes (the runner's GITHUB_LIMIT_TIME_SCALE must match).
Nothing here knows HTTP: :class:`App` asks :meth:`SecondaryLimits.admit`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

SECONDARY_MESSAGE = ("You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
                     "If you reach out to GitHub Support for help, please include the request ID {request_id}.")
SECONDARY_DOCS = ("https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"
                  "#about-secondary-rate-limits")
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
#: Called with every hit of every emulator in this process, so a test suite can fail the test
#: that caused one (agent-runner's tests/conftest.py), however short-lived its emulator was.
HIT_OBSERVERS: list[Callable[[LimitHit], None]] = []


@dataclass(frozen=True)
class LimitConfig:
    """The documented numbers; ``time_scale`` > 1 shortens every window (benchmarks only)."""

    concurrent: int = 100
    rest_points_per_minute: int = 900
    graphql_points_per_minute: int = 2000
    content_per_minute: int = 80
    content_per_hour: int = 500
    time_scale: float = 1.0

    @property
    def minute_s(self) -> float:
        return 60.0 / self.time_scale

    @property
    def hour_s(self) -> float:
        return 3600.0 / self.time_scale


@dataclass(frozen=True)
class LimitHit:
    """One request refused for a limit: which one, whose bucket, and what was answered."""

    limit: str  # concurrent, rest_points_per_minute, content_per_minute, primary, ...
    bucket: str  # "user:<login>" or "installation:<id>"
    method: str
    path: str
    status: int
    retry_after: int
    at: float

    def as_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class _Bucket:
    content: deque[float] = field(default_factory=deque)  # times of content-creating requests
    rest_points: deque[tuple[float, int]] = field(default_factory=deque)
    graphql_points: deque[tuple[float, int]] = field(default_factory=deque)
    in_flight: int = 0


class SecondaryLimits:
    """Sliding-window counters per bucket; :meth:`admit` charges or refuses, :meth:`leave` ends a request."""

    def __init__(self, config: LimitConfig | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or LimitConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self._hits: list[LimitHit] = []

    @property
    def hits(self) -> list[LimitHit]:
        with self._lock:
            return list(self._hits)

    def clear_hits(self) -> None:
        with self._lock:
            self._hits.clear()

    def note(self, hit: LimitHit) -> None:
        """Record a hit decided elsewhere (the primary limit)."""
        with self._lock:
            self._hits.append(hit)
        _tell(hit)

    def admit(self, bucket: str, method: str, path: str, *, mutations: int = 0) -> LimitHit | None:
        """Count one request that starts now; None when it may go (then call :meth:`leave`), else the hit."""
        c = self.config
        graphql = path == "/graphql"
        content = mutations if graphql else (1 if method in WRITE_METHODS else 0)
        points = 5 if (mutations if graphql else method in WRITE_METHODS) else 1
        with self._lock:
            now = self._clock()
            b = self._buckets.setdefault(bucket, _Bucket())
            self._prune(b, now)
            wait: tuple[str, float] | None = None
            if b.in_flight >= c.concurrent:
                wait = ("concurrent", 1.0)
            elif content and len(b.content) + content > c.content_per_hour:
                wait = ("content_per_hour", b.content[len(b.content) + content - c.content_per_hour - 1]
                        + c.hour_s - now)
            elif content and self._in(b.content, now - c.minute_s) + content > c.content_per_minute:
                recent = [t for t in b.content if t > now - c.minute_s]
                wait = ("content_per_minute", recent[len(recent) + content - c.content_per_minute - 1]
                        + c.minute_s - now)
            else:
                window = b.graphql_points if graphql else b.rest_points
                cap = c.graphql_points_per_minute if graphql else c.rest_points_per_minute
                used = sum(p for _, p in window)
                if used + points > cap:
                    name = "graphql_points_per_minute" if graphql else "rest_points_per_minute"
                    wait = (name, window[0][0] + c.minute_s - now)
            hit = None
            if wait is not None:
                hit = LimitHit(wait[0], bucket, method, path, 403, max(1, math.ceil(wait[1])), time.time())
                self._hits.append(hit)
            else:
                b.in_flight += 1
                b.content.extend([now] * content)
                (b.graphql_points if graphql else b.rest_points).append((now, points))
        if hit is not None:
            _tell(hit)
        return hit

    def leave(self, bucket: str) -> None:
        with self._lock:
            b = self._buckets.get(bucket)
            if b is not None and b.in_flight > 0:
                b.in_flight -= 1

    def _prune(self, b: _Bucket, now: float) -> None:
        while b.content and b.content[0] <= now - self.config.hour_s:
            b.content.popleft()
        for window in (b.rest_points, b.graphql_points):
            while window and window[0][0] <= now - self.config.minute_s:
                window.popleft()

    @staticmethod
    def _in(times: deque[float], since: float) -> int:
        return sum(1 for t in times if t > since)


def _tell(hit: LimitHit) -> None:
    for observer in list(HIT_OBSERVERS):
        observer(hit)
