"""Implement the ledger once over SQL; a backend only supplies connections and types.

:class:`SqlLedger` runs the shared statements of :mod:`runner.ledger.sql`,
checks the fences, maps rows to :class:`Job` and :class:`TaskRecord`, and
applies migrations. A backend subclass says how to run one statement in a
write transaction (:meth:`SqlLedger._write`), how to read
(:meth:`SqlLedger._read`), and how times and JSON travel to and from its
database. :class:`PerThread` gives each worker thread its own connection,
because neither ``sqlite3`` nor a psycopg connection lets two threads run
statements at once.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast

from runner.breakers import Breaker
from runner.errors import ConfigError, LeaseLost
from runner.ledger import sql
from runner.ledger.base import (
    DeliveryRecord,
    Job,
    Status,
    TaskKey,
    TaskRecord,
    Workload,
    lease_expiry,
    require_utc,
)

#: Appended to every ConfigError about LEDGER_URL.
URL_FORMATS = (
    "LEDGER_URL takes `sqlite:///relative/path/ledger.db`, `sqlite:////absolute/path/ledger.db` "
    "or `postgresql://user:password@host:5432/database`."
)

Row = Sequence[Any]
Params = Mapping[str, Any]
Executor = Callable[[str, Params], list[Row]]
C = TypeVar("C")


def redact_url(url: str) -> str:
    """The URL with its password masked, for messages that may reach logs or issues."""
    try:
        parts = urllib.parse.urlsplit(url)
        netloc, query = parts.netloc, parts.query
        if parts.password is not None:
            netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
        if "password" in query.lower():
            pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
            query = "&".join(
                f"{k}=***" if k.lower() == "password" else urllib.parse.urlencode({k: v})
                for k, v in pairs
            )
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        return "<unparseable URL>"


class PerThread(Generic[C]):
    """One connection per thread, all closed together by :meth:`close_all`.

    Connections of threads that have ended are closed when the next thread
    connects, so a pool that recycles threads does not leak them."""

    def __init__(self, connect: Callable[[], C], close: Callable[[C], None], usable: Callable[[C], bool]):
        self._connect, self._close, self._usable = connect, close, usable
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: dict[threading.Thread, C] = {}
        self._closed = False

    def get(self) -> C:
        if self._closed:
            raise RuntimeError("the ledger is closed")
        conn: C | None = getattr(self._local, "conn", None)
        if conn is not None and self._usable(conn):
            return conn
        with self._lock:
            if self._closed:
                raise RuntimeError("the ledger is closed")
            for thread in [t for t in self._open if not t.is_alive()]:
                self._close(self._open.pop(thread))
            if conn is not None:
                self._close(self._open.pop(threading.current_thread(), conn))
        conn = self._connect()
        with self._lock:
            self._open[threading.current_thread()] = conn
        self._local.conn = conn
        return conn

    def close_all(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._open = list(self._open.values()), {}
        for conn in conns:
            self._close(conn)


class SqlLedger(ABC):
    """The :class:`runner.ledger.base.Ledger` protocol over the shared SQL."""

    dialect: sql.Dialect

    def __init__(self) -> None:
        self._sql = sql.statements(self.dialect)
        #: Watches the database (up or down, logged once each way, on /metrics); it holds no
        #: call: the lease arithmetic and the loop's own retries already ride out an outage.
        self.breaker = Breaker(f"ledger:{self.dialect.name}", service="the ledger database")

    def _watched(self, run: Callable[[str, Params], list[Row]], statement: str, params: Params) -> list[Row]:
        try:
            rows = run(statement, params)
        except Exception as exc:
            self.breaker.settle(exc)
            raise
        self.breaker.settle(None)
        return rows

    # -- what a backend supplies ------------------------------------------------

    @abstractmethod
    def _write(self, statement: str, params: Params) -> list[Row]:
        """Run one statement in its own write transaction; return RETURNING rows."""

    @abstractmethod
    def _read(self, statement: str, params: Params) -> list[Row]:
        """Run one read-only statement."""

    @abstractmethod
    def _migration_transaction(self) -> AbstractContextManager[Executor]:
        """A transaction that holds the migration lock and yields an executor."""

    @abstractmethod
    def close(self) -> None: ...

    def _time_in(self, value: datetime) -> Any:
        return value

    def _time_out(self, value: Any) -> datetime:
        return cast(datetime, value).astimezone(UTC)

    def _json_in(self, value: Mapping[str, Any]) -> Any:
        return json.dumps(dict(value), sort_keys=True)

    def _json_out(self, value: Any) -> dict[str, Any]:
        return dict(json.loads(value) if isinstance(value, str | bytes) else value or {})

    # -- the protocol -------------------------------------------------------------

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

    def get(self, key: TaskKey) -> TaskRecord | None:
        rows = self._watched(self._read, self._sql.get, self._key(key))
        return self._record(rows[0]) if rows else None

    def list(self, *, limit: int = 100) -> Sequence[TaskRecord]:
        return [self._record(row) for row in self._watched(self._read, self._sql.list, {"limit": limit})]

    def record_delivery(self, delivery: DeliveryRecord) -> bool:
        rows = self._watched(self._write, self._sql.record_delivery, {
            "delivery_id": delivery.delivery_id, "event": delivery.event, "action": delivery.action,
            "repo": delivery.repo, "issue": delivery.issue_number, "outcome": delivery.outcome,
            "payload": None if delivery.payload is None else self._json_in(delivery.payload),  # type: ignore[arg-type]
            "now": self._now(delivery.received_at),
        })
        return bool(rows)

    def deliveries(self, *, outcome: str | None = None, limit: int = 100) -> Sequence[DeliveryRecord]:
        rows = self._watched(self._read, self._sql.deliveries, {"outcome": outcome, "limit": limit})
        return [
            DeliveryRecord(delivery_id=d, event=e, action=a, repo=r,
                           issue_number=None if n is None else int(n), outcome=o,
                           payload=None if p is None else self._json_out(p),
                           received_at=self._time_out(t))
            for d, e, a, r, n, o, p, t in rows
        ]

    # -- feedback rounds (runner.core.feedback) ------------------------------------------

    def add_feedback(self, key: TaskKey, item_key: str, item: Mapping[str, Any], *, now: datetime) -> bool:
        """Record a feedback item of a known task once, and queue the task if it had finished.

        False, changing nothing, when the item is already known (a redelivery, the next
        poll, an edit of a handled comment) or the ledger has no such task."""
        added = bool(self._watched(self._write, self._sql.add_feedback, {
            **self._key(key), "item_key": item_key, "item": self._json_in(item), "now": self._now(now)}))
        if added:
            self.wake_for_feedback(now=now, key=key)
        return added

    def add_own_comment(self, key: TaskKey, item_key: str, *, now: datetime) -> bool:
        """Record a comment the runner posted on the task's issue: known, so it never becomes feedback."""
        return bool(self._write(self._sql.add_own_comment, {
            **self._key(key), "item_key": item_key, "item": self._json_in({"own": True}),
            "outcome": self._json_in({"own": True}), "now": self._now(now)}))

    def wake_for_feedback(self, *, now: datetime, key: TaskKey | None = None) -> Sequence[TaskKey]:
        """Queue finished tasks that have pending feedback (all of them, or ``key``)."""
        params = self._key(key) if key else {"repo": None, "issue": None}
        rows = self._watched(self._write, self._sql.wake_for_feedback, {**params, "now": self._now(now)})
        return [TaskKey(r, int(n)) for r, n in rows]

    def pending_feedback(self, key: TaskKey) -> Sequence[tuple[str, dict[str, Any]]]:
        """(item key, item) of the task's unhandled feedback, oldest first."""
        return [(k, self._json_out(v)) for k, v in self._watched(self._read, self._sql.pending_feedback, self._key(key))]

    def handled_feedback(self, key: TaskKey) -> Sequence[tuple[str, str, int | None, dict[str, Any]]]:
        """(item key, status, round, outcome) of every handled item, in round order."""
        rows = self._watched(self._read, self._sql.handled_feedback, self._key(key))
        return [(k, st, None if r is None else int(r), self._json_out(o)) for k, st, r, o in rows]

    def finish_feedback(self, job: Job, item_key: str, *, status: str, round_no: int | None,
                        outcome: Mapping[str, Any], now: datetime) -> None:
        """Mark one item handled, fenced on the job's lease (LeaseLost otherwise)."""
        self._fenced(self._sql.finish_feedback, job, now, item_key=item_key, status=status, round=round_no,
                     outcome=self._json_in(outcome))

    def record_usage(self, job: Job, usage: Mapping[str, Any], *, now: datetime) -> None:
        """Store what the task's first run cost, so budgets cover every round."""
        self._fenced(self._sql.record_usage, job, now, usage=self._json_in(usage))

    def usage_of(self, key: TaskKey) -> dict[str, Any]:
        rows = self._watched(self._read, self._sql.usage_of, self._key(key))
        return self._json_out(rows[0][0]) if rows and rows[0][0] is not None else {}

    def pull_tasks(self) -> Sequence[tuple[TaskKey, str]]:
        """(task, PR URL) of every task that has opened a pull request."""
        return [(TaskKey(r, int(n)), url) for r, n, url in self._watched(self._read, self._sql.pull_tasks, {})]

    def workload(self) -> Workload:
        """Tasks queued (or due a retry), running, and feedback rounds pending, in the whole deployment."""
        rows = self._watched(self._read, self._sql.workload, {})
        queued, running, pending = rows[0] if rows else (0, 0, 0)
        return Workload(int(queued), int(running), int(pending))

    def __enter__(self) -> SqlLedger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- shared machinery -------------------------------------------------------

    def _migrate(self) -> None:
        """Apply the pending migrations in one transaction, under the migration lock."""
        now = self._time_in(datetime.now(UTC))
        with self._migration_transaction() as execute:
            execute(sql.CREATE_VERSION_TABLE.format(timestamp=self.dialect.timestamp), {})
            current = int(execute(sql.CURRENT_VERSION, {})[0][0])
            latest = sql.MIGRATIONS[-1].version
            if current > latest:
                raise ConfigError(
                    f"The ledger at LEDGER_URL has schema version {current}, but this runner "
                    f"only knows up to {latest}. Upgrade agent-runner, or point LEDGER_URL "
                    "at another database."
                )
            for migration in sql.MIGRATIONS:
                if migration.version <= current:
                    continue
                for statement in migration.render(self.dialect):
                    execute(statement, {})
                execute(
                    sql.RECORD_VERSION,
                    {"version": migration.version, "description": migration.description, "now": now},
                )

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

    def _fenced(self, statement: str, job: Job, now: datetime, **params: Any) -> None:
        fence = {**self._key(job.key), "attempt": job.attempt, "owner": job.owner}
        if self._watched(self._write, statement, {**fence, **params, "now": self._now(now)}):
            return
        current = self.get(job.key)
        if current is None:
            state = "the task is gone from the ledger"
        else:
            state = f"it is now attempt {current.attempt}, {current.status}, by {current.lease_owner}"
        raise LeaseLost(
            f"Lost the lease on {job.key}: attempt {job.attempt} of {job.owner} is no longer "
            f"current ({state})."
        )

    def _now(self, now: datetime) -> Any:
        return self._time_in(require_utc(now))

    @staticmethod
    def _key(key: TaskKey) -> dict[str, Any]:
        return {"repo": key.dispatch_repo, "issue": key.issue_number}

    def _record(self, row: Row) -> TaskRecord:
        (repo, issue, task_id, body_hash, status, attempt, owner, lease_expires_at, next_attempt_at,
         pr_url, last_error, created_at, updated_at, stages, transcript, failures, waits, waiting_on,
         waiting_since, task_error, branch) = row
        return TaskRecord(
            key=TaskKey(repo, int(issue)),
            task_id=task_id,
            body_hash=body_hash,
            status=status,
            attempt=int(attempt),
            lease_owner=owner,
            lease_expires_at=self._maybe_time(lease_expires_at),
            next_attempt_at=self._maybe_time(next_attempt_at),
            pr_url=pr_url,
            last_error=last_error,
            created_at=self._time_out(created_at),
            updated_at=self._time_out(updated_at),
            stage_seconds=self._json_out(stages),
            transcript=transcript,
            failures=int(failures),
            waits=int(waits or 0),
            waiting_on=waiting_on,
            waiting_since=self._maybe_time(waiting_since),
            task_error=task_error,
            branch=branch,
        )

    def _maybe_time(self, value: Any) -> datetime | None:
        return None if value is None else self._time_out(value)

