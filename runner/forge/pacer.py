"""Keep GitHub writes within its secondary limits for every worker of the process, and every replica.

GitHub asks integrations to wait at least one second between content-creating
requests (POST, PATCH, PUT, DELETE), and its secondary limits allow about 80
of them a minute and 500 an hour:
https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits
https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#avoid-concurrent-requests

One :class:`Pacer` per token is shared by all threads. A write *reserves* the
next slot that keeps all three limits (:func:`next_slot`, pure) and sleeps
until it, so concurrent workers queue up instead of bursting. The slots live
in a :class:`SlotStore`: in memory for one process, or in the PostgreSQL
ledger so that replicas share one budget.

Every request, read or write, also honours what GitHub said last: a
``Retry-After`` holds all requests for that long, and when
``x-ratelimit-remaining`` falls below a tenth of the limit the remaining
requests are spread evenly until ``x-ratelimit-reset``, so the runner slows
down before the primary limit, not after it.

Every wait is cut short by :meth:`Pacer.interrupt` (shutdown), which raises
:class:`runner.errors.ShuttingDown` in the waiting thread and in every later
request.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

from runner.errors import LedgerUnavailable, ShuttingDown

MINUTE = 60.0
HOUR = 3600.0
#: Below this share of the primary limit left, requests are spread until the reset.
LOW_WATER = 0.1
#: Added to the minute and hour windows: a write reserved exactly as the window's oldest write
#: leaves it may reach GitHub a little earlier, relative to that one, than it was reserved (the
#: first one was sent late); measured: a fleet benchmark saw 501 writes in GitHub's hour without it.
WINDOW_MARGIN_S = 1.0


@dataclass(frozen=True)
class BudgetView:
    """What one token's pacer knows now, for the status page: read from memory, never asked of GitHub."""

    writes_last_minute: int
    writes_last_hour: int
    reserved: int  # writes waiting for a slot they reserved
    next_write_in_s: float  # how long a write asked for now would wait
    limits: WriteLimits | None  # None: pacing is off (GITHUB_THROTTLE=false)
    rate_remaining: int | None  # the primary rate limit, as GitHub's last answer said
    rate_limit: int | None
    rate_reset_epoch: float | None
    hold_s: float  # Retry-After still in force
    shared_writes_last_hour: int | None = None  # every replica's, from the shared ledger; None: not shared


@dataclass(frozen=True)
class WriteLimits:
    """GitHub's secondary limits for content-creating requests, per token.

    ``notify_interval_s`` spaces the writes that notify people (comments, PRs,
    reviews) in a lane of their own, as octokit's throttling plugin does; they
    take a write slot too. ``minute_s``/``hour_s`` are the windows' lengths:
    shorter only when a benchmark compresses time (GITHUB_LIMIT_TIME_SCALE).
    """

    min_interval_s: float = 1.0
    per_minute: int = 80
    per_hour: int = 500
    notify_interval_s: float = 1.0
    minute_s: float = MINUTE
    hour_s: float = HOUR

    def compressed(self, scale: float) -> WriteLimits:
        """The same limits on a clock ``scale`` times faster (an "hour" of ``hour_s / scale``)."""
        if scale == 1:
            return self
        return replace(self, min_interval_s=self.min_interval_s / scale,
                       notify_interval_s=self.notify_interval_s / scale,
                       minute_s=self.minute_s / scale, hour_s=self.hour_s / scale)


GITHUB_LIMITS = WriteLimits()


def notify_lane(limits: WriteLimits) -> WriteLimits:
    """The notifications lane: spacing only; the minute and hour caps are the write lane's."""
    return replace(limits, min_interval_s=limits.notify_interval_s, per_minute=0, per_hour=0)


def next_slot(history: Sequence[float], now: float, limits: WriteLimits) -> float:
    """The earliest time >= ``now`` at which one more write keeps every limit.

    ``history`` holds the (ascending) times of earlier writes, past or already
    reserved, within the last hour. A write at ``t`` needs the previous one
    ``min_interval_s`` earlier, and fewer than ``per_minute`` (``per_hour``)
    writes in the window ending at ``t``.
    """
    t = max(now, history[-1] + limits.min_interval_s) if history else now
    while True:
        before = t
        for window, cap in ((limits.minute_s, limits.per_minute), (limits.hour_s, limits.per_hour)):
            if cap > 0 and len(history) >= cap:
                t = max(t, history[-cap] + window + WINDOW_MARGIN_S)
        if t == before:
            return t


class SlotStore(Protocol):
    """Where reserved write slots live: this process, or a database shared by replicas."""

    def reserve(self, bucket: str, limits: WriteLimits) -> float:
        """Reserve the next write slot of ``bucket``; return the seconds to wait for it."""

    def used(self, bucket: str, window_s: float) -> int:
        """How many slots of ``bucket`` were taken (or reserved) in the last ``window_s``."""


class LocalSlots:
    """Write slots in this process's memory, shared by its threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._history: dict[str, list[float]] = {}

    def reserve(self, bucket: str, limits: WriteLimits) -> float:
        with self._lock:
            now = self._clock()
            history = self._pruned(bucket, now)
            slot = next_slot(history, now, limits)
            history.append(slot)
            return slot - now

    def peek(self, bucket: str, limits: WriteLimits) -> float:
        """The seconds a write would wait now, without reserving anything."""
        with self._lock:
            now = self._clock()
            return next_slot(self._pruned(bucket, now), now, limits) - now

    def used(self, bucket: str, window_s: float) -> int:
        with self._lock:
            history = self._pruned(bucket, self._clock())
            return len(history) - bisect.bisect_right(history, self._clock() - window_s)

    def counts(self, bucket: str, minute_s: float = MINUTE, hour_s: float = HOUR) -> tuple[int, int, int]:
        """Writes sent in the last minute and hour, and slots reserved ahead (still waiting)."""
        with self._lock:
            now = self._clock()
            history = self._pruned(bucket, now)
            sent = bisect.bisect_right(history, now)
            minute = sent - bisect.bisect_left(history, now - minute_s)
            hour = sent - bisect.bisect_left(history, now - hour_s)
            return minute, hour, len(history) - sent

    def note(self, bucket: str) -> None:
        """Count a write sent now without pacing it (pacing off), so the status page still shows it."""
        with self._lock:
            now = self._clock()
            bisect.insort(self._pruned(bucket, now), now)

    def record(self, bucket: str, delay: float) -> None:
        """Note a slot reserved elsewhere (the shared store), ``delay`` seconds from now."""
        with self._lock:
            history = self._history.setdefault(bucket, [])
            bisect.insort(history, self._clock() + delay)

    def _pruned(self, bucket: str, now: float) -> list[float]:
        history = self._history.setdefault(bucket, [])
        del history[:bisect.bisect_left(history, now - HOUR)]
        return history


@runtime_checkable
class SlotLedger(Protocol):
    """A ledger that can keep write slots for all replicas (the PostgreSQL one)."""

    def reserve_slot(self, bucket: str, choose: Callable[[list[float], float], float]) -> float:
        """Under a lock, pass the bucket's slots of the last hour and now to ``choose``; store its slot."""

    def slots_used(self, bucket: str, window_s: float) -> int:
        """How many slots of ``bucket`` all replicas took (or reserved) in the last ``window_s``."""


#: Extra spacing between slots shared by processes. A process that wakes late for its slot
#: cannot hold back another process's next write (within one, :class:`Pacer` does), so
#: shared slots keep this margin for wake-up jitter: 3 replicas measured 0.96 s without it.
SHARED_MARGIN_S = 0.05


class LedgerSlots:
    """Write slots kept in the shared ledger, so every replica draws on one budget per token."""

    def __init__(self, ledger: SlotLedger, margin_s: float = SHARED_MARGIN_S) -> None:
        self._ledger = ledger
        self._margin_s = margin_s

    def reserve(self, bucket: str, limits: WriteLimits) -> float:
        spaced = replace(limits, min_interval_s=limits.min_interval_s + self._margin_s)
        return self._ledger.reserve_slot(bucket, lambda history, now: next_slot(history, now, spaced))

    def used(self, bucket: str, window_s: float) -> int:
        return self._ledger.slots_used(bucket, window_s)


class Pacer:
    """The request gate for one token; see the module docstring.

    ``limits=None`` turns write pacing off (``GITHUB_THROTTLE=false``); what
    GitHub says (Retry-After, the primary limit) is honoured all the same.
    ``sleep`` waits and returns True when woken by :meth:`interrupt`; tests
    pass a fake clock and sleep.
    """

    def __init__(
        self,
        limits: WriteLimits | None = GITHUB_LIMITS,
        *,
        bucket: str = "default",
        store: SlotStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], bool] | None = None,
        stop: threading.Event | None = None,
        log: object = None,
    ) -> None:
        self.limits = limits
        self.bucket = bucket
        self._local = LocalSlots(clock)
        self._store: SlotStore = store or self._local
        self._clock = clock
        self._wall = wall
        self._stop = stop or threading.Event()  # shared by the pacers of one forge
        self._sleep = sleep or self._stop.wait
        self._log = log
        self._lock = threading.Lock()
        self._hold_until = 0.0  # monotonic: no request before this (Retry-After)
        self._next_any = 0.0  # monotonic: the next spread-out request when the quota runs low
        self._quota: tuple[int, int, float] | None = None  # remaining, limit, reset (epoch)
        self._last_sent = -HOUR  # monotonic: when this process last let a write go
        self.writes = 0
        self.waited_s = 0.0

    # -- the gate ------------------------------------------------------------------

    def before(self, *, write: bool, notify: bool = False, cost: int = 1) -> None:
        """Block until a request may go; a write also takes ``cost`` write slots. Raises ShuttingDown.

        Lanes, as octokit's throttling plugin keeps them: a read never waits for
        a write slot; a write that notifies people (``notify``: a comment, a PR,
        a review) first takes its place in the notifications lane, then a write
        slot; a GraphQL request with mutations passes ``cost`` = the number of
        mutations, each one content-creating request.
        """
        self._check()
        with self._lock:
            now = self._clock()
            start = max(now, self._hold_until)
            start = max(start, self._quota_start(now))
        self._wait(start - now)
        if write and self.limits is not None:
            if notify:
                self._wait(self._reserve(notify_lane(self.limits), self.bucket + ":notify"))
            for _ in range(max(1, cost)):
                self._wait(self._reserve(self.limits, self.bucket))
                self._space_from_last_send(self.limits)
        elif write:
            for _ in range(max(1, cost)):
                self._local.note(self.bucket)
        if write:
            with self._lock:
                self.writes += max(1, cost)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn from a response's headers: Retry-After and the primary rate limit."""
        lowered = {k.lower(): v for k, v in headers.items()}
        retry_after = _number(lowered.get("retry-after"))
        if retry_after is not None:
            self.hold(retry_after)
        remaining = _number(lowered.get("x-ratelimit-remaining"))
        limit = _number(lowered.get("x-ratelimit-limit"))
        reset = _number(lowered.get("x-ratelimit-reset"))
        if remaining is not None and limit is not None and reset is not None:
            self.observe_quota(int(remaining), int(limit), reset)

    def observe_quota(self, remaining: int, limit: int, reset_epoch: float) -> None:
        if limit <= 0:
            return
        with self._lock:
            self._quota = (remaining, limit, reset_epoch)

    def hold(self, seconds: float) -> None:
        """No request of this token goes before ``seconds`` from now (GitHub said Retry-After)."""
        with self._lock:
            self._hold_until = max(self._hold_until, self._clock() + max(0.0, seconds))

    def write_wait(self) -> float:
        """Seconds a write would wait now (this process's view); for best-effort writes."""
        with self._lock:
            hold = max(0.0, self._hold_until - self._clock())
        if self.limits is None:
            return hold
        return max(hold, self._local.peek(self.bucket, self.limits))

    def writes_used(self) -> int:
        """Writes of this token in the trailing hour (every replica's, with the shared ledger)."""
        hour = (self.limits or GITHUB_LIMITS).hour_s
        if self._store is self._local:
            return self._local.used(self.bucket, hour)
        try:
            return self._store.used(self.bucket, hour)
        except LedgerUnavailable:
            return self._local.used(self.bucket, hour)

    def view(self) -> BudgetView:
        """This token's write budget as this process sees it (the shared store's other replicas aside)."""
        windows = self.limits or GITHUB_LIMITS
        minute, hour, reserved = self._local.counts(self.bucket, windows.minute_s, windows.hour_s)
        shared = None if self._store is self._local else self.writes_used()
        with self._lock:
            hold = max(0.0, self._hold_until - self._clock())
            quota = self._quota
        return BudgetView(writes_last_minute=minute, writes_last_hour=hour, reserved=reserved,
                          next_write_in_s=self.write_wait(), limits=self.limits,
                          rate_remaining=quota[0] if quota else None, rate_limit=quota[1] if quota else None,
                          rate_reset_epoch=quota[2] if quota else None, hold_s=hold,
                          shared_writes_last_hour=shared)

    # -- shutdown ----------------------------------------------------------------------

    def interrupt(self) -> None:
        """Wake every waiting thread with ShuttingDown, and refuse every later request."""
        self._stop.set()

    @property
    def interrupted(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> None:
        """Sleep for ``seconds`` unless interrupted (used by HTTP retries too)."""
        self._wait(seconds)

    # -- internals -----------------------------------------------------------------------

    def _check(self) -> None:
        if self._stop.is_set():
            raise ShuttingDown("The runner is shutting down; the request to GitHub was not sent.")

    def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            self._check()
            return
        with self._lock:
            self.waited_s += seconds
        if self._sleep(seconds) or self._stop.is_set():
            raise ShuttingDown("The runner is shutting down; it stopped waiting for GitHub.")

    def _space_from_last_send(self, limits: WriteLimits) -> None:
        """Hold a write that woke late for its slot back from the next one.

        Slots are reserved ``min_interval_s`` apart, but a thread the scheduler
        wakes late would send close to the one after it (a 0.89 s gap was
        measured at WORKERS=16), so the interval also holds between the moments
        this process actually lets writes go.
        """
        while True:
            with self._lock:
                now = self._clock()
                wait = self._last_sent + limits.min_interval_s - now
                if wait <= 0:
                    self._last_sent = now
                    return
            self._wait(wait)

    def _quota_start(self, now: float) -> float:
        """When the next request may go so that the primary quota lasts until its reset."""
        if self._quota is None:
            return now
        remaining, limit, reset_epoch = self._quota
        until_reset = reset_epoch - self._wall()
        if until_reset <= 0 or remaining >= limit * LOW_WATER:
            return now
        if remaining <= 0:
            return now + until_reset
        start = max(now, self._next_any)
        gap = max(0.0, until_reset - (start - now)) / remaining  # spread what is left from `start` on
        self._next_any = start + gap
        self._quota = (remaining - 1, limit, reset_epoch)  # this request spends one, until GitHub says more
        return start

    def _reserve(self, limits: WriteLimits, bucket: str) -> float:
        if self._store is self._local:
            return self._local.reserve(bucket, limits)
        try:
            delay = self._store.reserve(bucket, limits)
        except LedgerUnavailable as exc:
            # Keep pacing this process rather than stop writing while the database is away.
            warn = getattr(self._log, "warning", None)
            if warn is not None:
                warn("shared write pacing unavailable; pacing this process only", error=str(exc))
            return self._local.reserve(bucket, limits)
        self._local.record(bucket, delay)
        return delay


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
