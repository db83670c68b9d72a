"""Keep a job's lease alive while it works, and notice at once when it is lost.

A background thread renews the lease every third of its length. The pipeline
calls :meth:`LeaseKeeper.check` before every side effect on GitHub, so a worker
that lost its lease (a long GC pause, a partition) stops touching the task.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from runner.errors import LeaseLost, RunnerError
from runner.ledger.base import Job, JobLedger


class LeaseKeeper:
    def __init__(self, ledger: JobLedger, job: Job, *, lease_seconds: float,
                 clock: Callable[[], datetime], log: Any) -> None:
        self.job = job
        self._ledger = ledger
        self._lease_seconds = lease_seconds
        self._clock = clock
        self._log = log
        self._stop = threading.Event()
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

    def _beat(self) -> None:
        interval = max(0.2, self._lease_seconds / 3)
        while not self._stop.wait(interval):
            try:
                self.job = self._ledger.heartbeat(self.job, now=self._clock(), lease_seconds=self._lease_seconds)
            except LeaseLost as exc:
                self._lost = str(exc)
                self._log.warning("lease lost", error=str(exc))
                return
            except RunnerError as exc:  # the database blinked; try again next beat
                self._log.warning("lease heartbeat failed", error=str(exc))
