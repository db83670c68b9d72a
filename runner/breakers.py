"""Stop sending work to a dependency that is down: one circuit breaker per dependency, probed alone.

A :class:`Breaker` watches one dependency (the GitHub API of one host and
credential, git transport to one host, one model upstream, the ledger). After
``threshold`` outage errors in a row it *opens*: from then on no caller sends
anything there. Callers hold where they are (their task keeps its worktree,
its conversation and its lease, and spends no attempt, money or GitHub write)
while one of them at a time probes the dependency, at growing intervals
capped at ``probe_cap_s``. A probe that answers *closes* the breaker and
releases every waiter; writes then go through the pacer as usual, so waiting
tasks do not all hit GitHub at the same instant.

The log says once "<dependency> unavailable since …" and once "<dependency>
back after …"; :class:`Breakers` gives ``/metrics`` each breaker's state
(:meth:`Breakers.snapshot`). Like Envoy's outlier detection and
resilience4j's CircuitBreaker, with a half-open state of one probe.

It sits low (beside the metrics) so the forge, the workspace, the model
clients and the ledger can all use it; it knows nothing about any of them:
what counts as an outage is the caller's ``is_outage``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from runner.errors import DependencyDown, RateLimited, ShuttingDown
from runner.log import get_logger

T = TypeVar("T")

#: The first probe of an open breaker goes out this long after it opened; each next one waits twice as long.
FIRST_PROBE_S = 1.0


@dataclass(frozen=True)
class BreakerState:
    """What ``/metrics`` and the status page show of one breaker."""

    name: str
    up: bool
    open_seconds: float
    since: str | None


class Breaker:
    """One dependency's breaker; thread-safe, shared by every caller of that dependency in the process."""

    def __init__(self, name: str, *, service: str, threshold: int = 3, probe_cap_s: float = 60.0,
                 hold_s: float = 86400.0, probe: Callable[[], None] | None = None,
                 is_outage: Callable[[BaseException], bool] | None = None,
                 clock: Callable[[], float] = time.monotonic, stop: threading.Event | None = None,
                 log: Any = None) -> None:
        self.name = name
        self.service = service
        self.threshold = threshold
        self.probe_cap_s = probe_cap_s
        self.hold_s = hold_s
        self._probe = probe
        self._outage = is_outage or _is_outage
        self._clock = clock
        self._stop = stop or threading.Event()
        self._log = log or get_logger()
        self._cond = threading.Condition()
        self._failures = 0  # outage errors in a row
        self._opened_at: float | None = None
        self._opened_wall: datetime | None = None
        self._next_probe = 0.0
        self._interval = FIRST_PROBE_S
        self._probing = False
        #: Requests sent while open (the probes), for tests and benchmarks.
        self.probes = 0

    # -- state -----------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self._opened_at is None

    def open_seconds(self) -> float:
        opened = self._opened_at
        return 0.0 if opened is None else self._clock() - opened

    def state(self) -> BreakerState:
        with self._cond:
            since = self._opened_wall.isoformat(timespec="seconds") if self._opened_wall else None
            return BreakerState(self.name, self.up, round(self.open_seconds(), 3), since)

    def success(self) -> None:
        """The dependency answered (even with an error about the request): close."""
        with self._cond:
            self._failures = 0
            self._probing = False
            if self._opened_at is not None:
                down = self._clock() - self._opened_at
                self._log.warning(f"{self.service} back after {down:.0f} s", dependency=self.name,
                                  down_s=round(down, 3), probes=self.probes)
                self._opened_at = self._opened_wall = None
                self._interval = FIRST_PROBE_S
            self._cond.notify_all()

    def failure(self) -> None:
        """An outage error: count it; open after ``threshold`` in a row, or back off the next probe."""
        with self._cond:
            self._failures += 1
            now = self._clock()
            if self._opened_at is not None:  # a probe failed
                self._probing = False
                self._interval = min(self.probe_cap_s, self._interval * 2)
                self._next_probe = now + self._interval
                self._cond.notify_all()
            elif self._failures >= self.threshold:
                self._opened_at, self._opened_wall = now, datetime.now(UTC)
                self._interval = min(self.probe_cap_s, FIRST_PROBE_S)
                self._next_probe = now + self._interval
                self._log.warning(f"{self.service} unavailable since {self._opened_wall.isoformat(timespec='seconds')}",
                                  dependency=self.name, failures=self._failures)

    def release(self) -> None:
        """A probe ended without a verdict (a bug, shutdown): let the next caller probe."""
        with self._cond:
            self._probing = False
            self._cond.notify_all()

    def _is_outage(self, exc: BaseException, *, retry: bool = False) -> bool:
        """An outage of this dependency (opens the breaker); with ``retry``, also what a retry in place waits out."""
        if retry and isinstance(exc, RateLimited):
            return True
        return self._outage(exc)

    def admit(self) -> bool:
        """Whether a caller may send now: always while closed; while open, one probe when it is due."""
        with self._cond:
            return self._admit()

    def _admit(self) -> bool:
        if self._opened_at is None:
            return True
        if self._probing or self._clock() < self._next_probe:
            return False
        self._probing = True
        self.probes += 1
        return True

    def wait_turn(self, deadline: float) -> None:
        """Hold until the breaker is closed or it is this caller's turn to probe.

        Raises DependencyDown past ``deadline`` (monotonic), ShuttingDown when stopped."""
        with self._cond:
            while not self._admit():
                if self._stop.is_set():
                    raise ShuttingDown(f"The runner is stopping while {self.service} is unavailable.")
                now = self._clock()
                if now >= deadline:
                    raise DependencyDown(
                        f"{self.service} has been unavailable for {self.open_seconds():.0f} s; "
                        "the runner did not send the request.", service=self.service)
                wake = self._next_probe - now if not self._probing else self.probe_cap_s
                self._cond.wait(timeout=max(0.05, min(wake, deadline - now, 1.0)))

    # -- calls -----------------------------------------------------------------

    def enter(self, *, hold_s: float | None = None) -> None:
        """Hold while the breaker is open, until it closes or this caller's probe answers.

        With a probe of its own, the breaker sends that (cheap, idempotent) probe
        and lets the caller's request go only once it answered; without one, the
        caller's request is the probe. Raises DependencyDown after ``hold_s``."""
        deadline = self._clock() + (self.hold_s if hold_s is None else hold_s)
        while True:
            self.wait_turn(deadline)
            if self.up or self._probe is None:
                return
            try:
                self._probe()
            except BaseException as exc:
                if not self.settle(exc):
                    raise
                continue
            self.success()
            return

    def settle(self, error: BaseException | None) -> bool:
        """Record how a call ended; True when ``error`` is an outage of this dependency."""
        if error is None:
            self.success()
            return False
        if self._is_outage(error):
            self.failure()
            return True
        if _answered(error):
            self.success()
        else:
            self.release()
        return False

    @contextmanager
    def guard(self, *, hold_s: float | None = None) -> Iterator[None]:
        """One request through the breaker: held while open, its ending recorded."""
        self.enter(hold_s=hold_s)
        try:
            yield
        except BaseException as exc:
            self.settle(exc)
            raise
        self.settle(None)

    def call(self, action: Callable[[], T], *, retry: bool = True, hold_s: float | None = None) -> T:
        """Run ``action`` through the breaker; with ``retry``, retried in place until the dependency answers.

        Retry only what is safe to send again (a read, a model turn, a fetch): see :func:`retrying`."""
        def once() -> T:
            with self.guard(hold_s=hold_s):
                return action()
        if not retry:
            return once()
        return retrying(once, breaker=self, hold_s=hold_s)

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise ShuttingDown(f"The runner is stopping while it waits for {self.service}.")


def retrying(action: Callable[[], T], *, breaker: Breaker, hold_s: float | None = None,
             first_wait_s: float = 0.5, wait_for: Callable[[BaseException], float] | None = None) -> T:
    """Run an idempotent ``action`` until it stops failing with an outage of ``breaker``'s dependency.

    Between tries it backs off (0.5 s, doubling, capped at the probe cap, at
    least ``wait_for(error)``, e.g. a Retry-After) while the breaker is closed;
    once the breaker is open the next try holds in the breaker instead, so the
    dependency sees only the probes. Gives up (re-raising) after ``hold_s``."""
    deadline = breaker._clock() + (breaker.hold_s if hold_s is None else hold_s)
    tries = 0
    while True:
        try:
            return action()
        except BaseException as exc:
            if not breaker._is_outage(exc, retry=True) or breaker._clock() >= deadline:
                raise
            tries += 1
            if breaker.up:
                wait = min(breaker.probe_cap_s, first_wait_s * 2 ** (tries - 1))
                breaker._sleep(max(wait, wait_for(exc) if wait_for else 0.0))


def _is_outage(exc: BaseException) -> bool:
    """By default: an error whose class says a service is down (``RunnerError.outage``).

    A rate limit is not an outage for a breaker (the pacer waits it out), nor is
    a breaker's own refusal (it sent nothing)."""
    return bool(getattr(exc, "outage", False)) and not isinstance(exc, RateLimited | DependencyDown)


def _answered(exc: BaseException) -> bool:
    """A RunnerError that is neither an outage nor transient (a 404, a 422, a 401) came from an answer."""
    return hasattr(exc, "transient") and not exc.transient


class Breakers:
    """Every breaker of one process, by name: made on first use, shown on ``/metrics``.

    ``hold_s`` is how long a caller holds for a dependency that is down (and how long a read is
    retried in place): the app sets TRANSIENT_RETRY_HOURS; the default, 0, holds nothing, so a
    forge built bare (a script, a test) fails fast as it always did."""

    def __init__(self, *, threshold: int = 3, probe_cap_s: float = 60.0, hold_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic, log: Any = None) -> None:
        self.threshold = threshold
        self.probe_cap_s = probe_cap_s
        self.hold_s = hold_s
        self.stop = threading.Event()
        self._clock = clock
        self._log = log
        self._lock = threading.Lock()
        self._breakers: dict[str, Breaker] = {}

    def configure(self, settings: Any) -> None:
        """Take BREAKER_THRESHOLD and BREAKER_PROBE_MAX_SECONDS, for the breakers made from now on and those made."""
        with self._lock:
            self.threshold, self.probe_cap_s = settings.breaker_threshold, settings.breaker_probe_max_seconds
            breakers = list(self._breakers.values())
        for breaker in breakers:
            with breaker._cond:
                breaker.threshold, breaker.probe_cap_s = self.threshold, self.probe_cap_s

    @classmethod
    def from_settings(cls, settings: Any, *, hold_s: float | None = None, log: Any = None) -> Breakers:
        return cls(threshold=settings.breaker_threshold, probe_cap_s=settings.breaker_probe_max_seconds,
                   hold_s=settings.transient_retry_hours * 3600 if hold_s is None else hold_s, log=log)

    def get(self, name: str, *, service: str, probe: Callable[[], None] | None = None,
            is_outage: Callable[[BaseException], bool] | None = None) -> Breaker:
        """The breaker named ``name`` (made on first use with ``service``, ``probe`` and ``is_outage``)."""
        with self._lock:
            found = self._breakers.get(name)
            if found is None:
                found = self._breakers[name] = Breaker(
                    name, service=service, threshold=self.threshold, probe_cap_s=self.probe_cap_s,
                    hold_s=self.hold_s, probe=probe, is_outage=is_outage, clock=self._clock, stop=self.stop,
                    log=self._log)
            return found

    def interrupt(self) -> None:
        """Shutdown: every holding caller stops waiting (ShuttingDown)."""
        self.stop.set()
        with self._lock:
            breakers = list(self._breakers.values())
        for breaker in breakers:
            with breaker._cond:
                breaker._cond.notify_all()

    def clear(self) -> None:
        """Forget every breaker (a test's upstreams are gone with it)."""
        with self._lock:
            self._breakers.clear()

    def snapshot(self) -> Sequence[BreakerState]:
        with self._lock:
            breakers = list(self._breakers.values())
        return [b.state() for b in breakers]

    def down(self) -> list[BreakerState]:
        return [s for s in self.snapshot() if not s.up]


#: One breaker per model upstream for the whole process (``model:<provider>:<host>``), shared by the
#: API generators' turns and the model gateway's forwarding, so both see one outage (issue #29).
MODEL_UPSTREAMS = Breakers()


def model_upstream(provider: str, url: str) -> str:
    """The name of a model upstream's breaker: the provider and the host (and port) it is reached at."""
    return f"model:{provider}:{urlsplit(url).netloc or url}"
