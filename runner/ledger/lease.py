"""Keep a job's lease alive while it works, and notice at once when it is lost.

A background thread renews the lease every third of its length. The pipeline
calls :meth:`LeaseKeeper.check` before every side effect on GitHub, so a worker
that lost its lease (a long GC pause, a partition) stops touching the task, and
:meth:`LeaseKeeper.renew` right before a request that creates something, so
that only the holder of a fresh lease creates (the lease is the fence).

The job's own final write (complete, fail) runs inside :meth:`finishing`,
which stops the heartbeat first, under the same lock: a heartbeat racing the
job's completion would find the row no longer ``running`` and cry "lease lost"
about a job that simply finished.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from runner.errors import DiskFull, LeaseLost, LedgerUnavailable, RunnerError
from runner.ledger.base import Job, JobLedger

T = TypeVar("T")

#: The final write's retries while the ledger is down: 0.5 s, doubling, at most this apart.
FIRST_FINAL_RETRY_S = 0.5
FINAL_RETRY_CAP_S = 5.0


class LeaseKeeper:
    def __init__(self, ledger: JobLedger, job: Job, *, lease_seconds: float,
                 clock: Callable[[], datetime], log: Any, final_hold_s: float = 0.0) -> None:
        self.job = job
        self._ledger = ledger
        self._lease_seconds = lease_seconds
        self._final_hold_s = final_hold_s  # how long the final write is retried (TRANSIENT_RETRY_HOURS)
        self._clock = clock
        self._log = log
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one ledger write about this lease at a time
        self._lost: str | None = None
        self._thread = threading.Thread(target=self._beat, name=f"lease-{job.key}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def check(self) -> None:
        if self._lost is not None:
            raise LeaseLost(self._lost)

    @property
    def lost(self) -> bool:
        return self._lost is not None

    def renew(self) -> None:
        """Extend the lease now; raise LeaseLost if someone else holds the task.

        When the ledger cannot be reached, the lease still counts until it
        expires by our own clock: past that, another worker may have taken over.
        """
        with self._lock:
            self.check()
            if self._stop.is_set():
                return  # finishing: the final write decides
            try:
                self.job = self._ledger.heartbeat(self.job, now=self._clock(), lease_seconds=self._lease_seconds)
            except LeaseLost as exc:
                self._lost = str(exc)
                self._log.warning("lease lost", error=str(exc))
                raise
            except RunnerError as exc:  # the database blinked
                self._log.warning("lease heartbeat failed", error=str(exc))
                if self.job.lease_expires_at <= self._clock():
                    self._lost = f"The lease ran out while the ledger was unreachable ({exc})."
                    raise LeaseLost(self._lost) from exc

    def finish(self, write: Callable[[Job], T]) -> T:
        """The job's own final write (complete, fail, wait), retried in place while the ledger cannot take it.

        The database unreachable, its breaker open, or its disk full (issue #29): the task
        holds its outcome here instead of ending without one (a takeover would count a
        failure and do the work again). LeaseLost (another worker took the task over) ends it."""
        with self._lock:
            self._stop.set()
        deadline = time.monotonic() + self._final_hold_s
        delay, said = FIRST_FINAL_RETRY_S, False
        while True:
            try:
                return write(self.job)
            except (LedgerUnavailable, DiskFull) as exc:
                if time.monotonic() >= deadline:
                    raise
                if not said:
                    said = True
                    self._log.warning("the task's final write waits for the ledger", error=str(exc))
            time.sleep(delay)
            delay = min(FINAL_RETRY_CAP_S, delay * 2)

    @contextmanager
    def finishing(self) -> Iterator[Job]:
        """Stop heartbeating, then hand out the current job for the final ledger write."""
        with self._lock:
            self._stop.set()
            yield self.job

    def _beat(self) -> None:
        interval = max(0.2, self._lease_seconds / 3)
        while not self._stop.wait(interval):
            try:
                self.renew()
            except LeaseLost:
                return
