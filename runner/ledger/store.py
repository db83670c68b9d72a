"""Implement the ledger once over SQL: a task's life from queued to done, under a fenced lease.

:class:`SqlLedger` is the :class:`runner.ledger.base.Ledger` protocol over the
shared statements of :mod:`runner.ledger.sql`. It is composed of the task
lifecycle (here: enqueue, claim, heartbeat, complete, fail, wait, own a branch,
release), the feedback rounds' records (:mod:`runner.ledger.feedback`) and the
webhook delivery log (:mod:`runner.ledger.deliveries`), all over one
:class:`runner.ledger.database.SqlDatabase`. A backend (SQLite, PostgreSQL)
subclasses it and supplies connections and types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from runner.ledger.base import Job, Status, TaskKey, TaskRecord, Workload, lease_expiry, require_utc
from runner.ledger.database import (
    URL_FORMATS,
    Executor,
    Params,
    PerThread,
    Row,
    SqlDatabase,
    redact_url,
)
from runner.ledger.deliveries import DeliveryLog
from runner.ledger.feedback import FeedbackRecords

# Moved to runner.ledger.database; still importable from here, where they used to live.
__all__ = ["URL_FORMATS", "Executor", "Params", "PerThread", "Row", "SqlDatabase", "SqlLedger", "redact_url"]


class SqlLedger(FeedbackRecords, DeliveryLog, SqlDatabase):
    """The :class:`runner.ledger.base.Ledger` protocol over the shared SQL."""

    def enqueue(self, key: TaskKey, *, task_id: str | None, body_hash: str | None, now: datetime) -> bool:
        rows = self._watched(self._write,
            self._sql.enqueue,
            {**self._key(key), "task_id": task_id, "body_hash": body_hash, "now": self._now(now)},
        )
        return bool(rows)

    def requeue(
        self,
        key: TaskKey,
        *,
        now: datetime,
        task_id: str | None = None,
        body_hash: str | None = None,
        attempt: int | None = None,
    ) -> bool:
        params = {**self._key(key), "task_id": task_id, "body_hash": body_hash, "now": self._now(now),
                  "attempt": attempt}
        return bool(self._watched(self._write, self._sql.requeue, params))

    def claim(self, owner: str, *, now: datetime, lease_seconds: float, repo: str | None = None) -> Job | None:
        if repo is not None:
            return self._take(self._sql.claim_in, {"repo": repo}, owner, now, lease_seconds)
        return self._take(self._sql.claim, {}, owner, now, lease_seconds)

    def claim_key(self, key: TaskKey, owner: str, *, now: datetime, lease_seconds: float) -> Job | None:
        return self._take(self._sql.claim_key, self._key(key), owner, now, lease_seconds)

    def heartbeat(self, job: Job, *, now: datetime, lease_seconds: float) -> Job:
        expires = lease_expiry(require_utc(now), lease_seconds)
        self._fenced(self._sql.heartbeat, job, now, expires=self._time_in(expires))
        return replace(job, lease_expires_at=expires)

    def complete(
        self,
        job: Job,
        *,
        now: datetime,
        pr_url: str | None,
        stage_seconds: Mapping[str, float],
        transcript: str | None = None,
    ) -> None:
        self._fenced(
            self._sql.complete, job, now,
            pr_url=pr_url, stages=self._json_in(stage_seconds), transcript=transcript,
        )

    def fail(
        self,
        job: Job,
        *,
        now: datetime,
        error: str,
        retry_at: datetime | None,
        stage_seconds: Mapping[str, float] | None = None,
        transcript: str | None = None,
    ) -> None:
        status: Status = "dead" if retry_at is None else "failed"
        self._fenced(
            self._sql.fail, job, now,
            status=status,
            error=error,
            retry_at=None if retry_at is None else self._time_in(require_utc(retry_at, "retry_at")),
            stages=None if stage_seconds is None else self._json_in(stage_seconds),
            transcript=transcript,
        )

    def wait(self, job: Job, *, now: datetime, error: str, service: str, retry_at: datetime,
             stage_seconds: Mapping[str, float] | None = None) -> None:
        since = job.waiting_since or now
        self._fenced(
            self._sql.wait, job, now, error=error, service=service, since=self._now(since),
            retry_at=self._time_in(require_utc(retry_at, "retry_at")),
            stages=None if stage_seconds is None else self._json_in(stage_seconds),
        )

    def own_branch(self, job: Job, branch: str, *, now: datetime) -> bool:
        fence = {**self._key(job.key), "attempt": job.attempt, "owner": job.owner}
        try:
            return bool(self._watched(self._write, self._sql.own_branch, {**fence, "branch": branch, "now": self._now(now)}))
        except Exception as exc:  # the unique index: another task took the name in the same instant
            if not any(cls.__name__ == "IntegrityError" for cls in type(exc).__mro__):
                raise
            return False

    def release(self, job: Job, *, now: datetime) -> None:
        self._fenced(self._sql.release, job, now)

    def _take(self, statement: str, params: Params, owner: str, now: datetime, lease_seconds: float) -> Job | None:
        expires = lease_expiry(require_utc(now), lease_seconds)
        rows = self._watched(self._write,
            statement, {**params, "owner": owner, "now": self._now(now), "expires": self._time_in(expires)}
        )
        if not rows:
            return None
        (repo, issue, attempt, lease_owner, lease_expires_at, task_id, failures, waits, waiting_on,
         waiting_since, task_error, branch) = rows[0]
        return Job(
            key=TaskKey(repo, int(issue)),
            attempt=int(attempt),
            owner=lease_owner,
            lease_expires_at=self._time_out(lease_expires_at),
            task_id=task_id,
            failures=int(failures),
            waits=int(waits or 0),
            waiting_on=waiting_on,
            waiting_since=self._maybe_time(waiting_since),
            task_error=task_error,
            branch=branch,
        )

    # -- what the status page and the write budget read ---------------------------------

    def list(self, *, limit: int = 100) -> Sequence[TaskRecord]:
        return [self._record(row) for row in self._watched(self._read, self._sql.list, {"limit": limit})]

    def workload(self) -> Workload:
        """Tasks queued (or due a retry), running, and feedback rounds pending, in the whole deployment."""
        rows = self._watched(self._read, self._sql.workload, {})
        queued, running, pending = rows[0] if rows else (0, 0, 0)
        return Workload(int(queued), int(running), int(pending))
