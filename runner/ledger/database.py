"""Run the ledger's statements against a database; a backend only supplies connections and types.

:class:`SqlDatabase` is what every part of :class:`runner.ledger.store.SqlLedger`
stands on: the contract a backend subclass fulfils (how to run one statement in
a write transaction, :meth:`SqlDatabase._write`; how to read,
:meth:`SqlDatabase._read`; how times and JSON travel to and from its
database), the migrations, the lease fence every write of a running job goes
through, and the mapping of rows to :class:`TaskRecord`. :class:`PerThread`
gives each worker thread its own connection, because neither ``sqlite3`` nor a
psycopg connection lets two threads run statements at once.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, Generic, Self, TypeVar, cast

from runner.breakers import Breaker
from runner.errors import ConfigError, DiskFull, LeaseLost, LedgerHeld, LedgerUnavailable
from runner.ledger import sql
from runner.ledger.base import Job, TaskKey, TaskRecord, require_utc

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


class SqlDatabase(ABC):
    """The shared SQL's machinery: a backend's contract, conversions, migrations, the lease fence, rows."""

    dialect: sql.Dialect

    def __init__(self) -> None:
        self._sql = sql.statements(self.dialect)
        #: The ledger's breaker (up or down, logged once each way, on /metrics). The ledger is up when
        #: it takes a write: the database unreachable or locked, or its disk full (SQLite in DATA_DIR),
        #: counts; a read that answers proves nothing about writes. While it is open no write is sent
        #: but one probe at a time (a claim, a heartbeat, a final write): the others fail at once
        #: with LedgerHeld, so the loop claims nothing new (issue #29) and a task in flight keeps its
        #: lease by the runner's clock. Reads (the status page) still go.
        self.breaker = Breaker(f"ledger:{self.dialect.name}", service="the ledger database",
                               is_outage=lambda exc: isinstance(exc, LedgerUnavailable | DiskFull)
                               and not isinstance(exc, LedgerHeld))

    def _watched(self, run: Callable[[str, Params], list[Row]], statement: str, params: Params) -> list[Row]:
        with self._breaker_watch(write=run == self._write):
            return run(statement, params)

    @contextmanager
    def _breaker_watch(self, *, write: bool) -> Iterator[None]:
        """One call to the database through its breaker: a write is held (LedgerHeld) while it is open,
        unless it is the probe; a read goes, and only its outage counts."""
        breaker = self.breaker
        if write and not breaker.admit():
            raise LedgerHeld(f"The ledger database has been unavailable for {breaker.open_seconds():.0f} s; "
                             "the runner did not send the write (one probe at a time checks it).")
        try:
            yield
        except BaseException as exc:
            if write or breaker._is_outage(exc):
                breaker.settle(exc)
            raise
        if write:
            breaker.settle(None)

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

    # -- shared machinery -------------------------------------------------------

    def get(self, key: TaskKey) -> TaskRecord | None:
        rows = self._watched(self._read, self._sql.get, self._key(key))
        return self._record(rows[0]) if rows else None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
