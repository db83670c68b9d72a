"""Keep the ledger in PostgreSQL, shared by many replicas on many machines.

Each thread gets its own autocommit connection (psycopg 3), so every
statement is its own transaction and the claim is one
``UPDATE ... WHERE key = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING``.
A connection that broke (server restart, network) is replaced on the next
call; the call that saw it break raises
:class:`runner.ledger.base.LedgerUnavailable`, which the loop retries.

Migrations run in one transaction under ``pg_advisory_xact_lock``, keyed by
the current schema, so replicas starting together migrate exactly once. To
keep several ledgers in one database, put each in its own schema with
``?options=-csearch_path%3Dmy_schema`` in LEDGER_URL.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from runner.errors import ConfigError, LedgerUnavailable
from runner.ledger import sql
from runner.ledger.database import URL_FORMATS, Executor, Params, PerThread, Row, redact_url
from runner.ledger.store import SqlLedger

CONNECT_TIMEOUT_SECONDS = 10
APPLICATION_NAME = "agent-runner"  # what operators see in pg_stat_activity
_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('agent-runner-ledger:' || current_schema()))"
#: GitHub write slots shared by replicas (runner.forge.pacer). Created on first use, outside the
#: task migrations: it holds only the last hour of timestamps and may be dropped at any time.
_SLOTS_TABLE = """CREATE TABLE IF NOT EXISTS github_write_slots (
    bucket TEXT NOT NULL, at DOUBLE PRECISION NOT NULL)"""
_SLOTS_INDEX = "CREATE INDEX IF NOT EXISTS github_write_slots_by_bucket ON github_write_slots (bucket, at)"
_SLOTS_LOCK = "SELECT pg_advisory_xact_lock(hashtext('agent-runner-pacer:' || current_schema() || %s))"


@functools.lru_cache(maxsize=64)
def _pg(statement: str) -> str:
    return sql.to_pyformat(statement)


class PostgresLedger(SqlLedger):
    """The ledger in a PostgreSQL database; see the module docstring."""

    dialect = sql.POSTGRES

    def __init__(self, conninfo: str, *, read_only: bool = False) -> None:
        super().__init__()
        self._conninfo = conninfo
        given = conninfo_to_dict(conninfo)
        defaults = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, "application_name": APPLICATION_NAME}
        self._extra: dict[str, Any] = {k: v for k, v in defaults.items() if k not in given}
        self._slots_ready = threading.Event()
        self._conns: PerThread[psycopg.Connection[Any]] = PerThread(
            self._connect, psycopg.Connection.close, lambda conn: not (conn.closed or conn.broken)
        )
        if read_only:
            return
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_url(cls, url: str) -> PostgresLedger:
        """Connect and migrate, or say in a ConfigError why the database is unusable."""
        try:
            return cls(url)
        except (psycopg.Error, LedgerUnavailable) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"Cannot use the PostgreSQL ledger at LEDGER_URL `{redact_url(url)}`: {reason}. "
                f"Check that the server is up and the user may create tables. {URL_FORMATS}"
            ) from exc

    @classmethod
    def open_existing(cls, url: str) -> PostgresLedger | None:
        """Connect without migrating; None when the database holds no ledger yet."""
        try:
            ledger = cls(url, read_only=True)
            found = ledger._read(f"SELECT to_regclass('{sql.TABLE}') IS NOT NULL", {})
        except (psycopg.Error, LedgerUnavailable) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"Cannot read the PostgreSQL ledger at LEDGER_URL `{redact_url(url)}`: {reason}."
            ) from exc
        if not found or not found[0][0]:
            ledger.close()
            return None
        return ledger

    def close(self) -> None:
        self._conns.close_all()

    def reserve_slot(self, bucket: str, choose: Callable[[list[float], float], float]) -> float:
        """Reserve a GitHub write slot for all replicas; returns the seconds to wait for it.

        One short transaction under an advisory lock per bucket: read the last
        hour's slots, let ``choose`` (runner.forge.pacer.next_slot) pick the next
        one, store it. Times are the database's clock, the one every replica shares.
        """
        with self._breaker_watch(write=True):  # while the database is down, the pacer paces locally
            return self._reserve_slot(bucket, choose)

    def _reserve_slot(self, bucket: str, choose: Callable[[list[float], float], float]) -> float:
        self._ensure_slots()
        conn = self._conns.get()
        with _translated(), conn.transaction():
            conn.execute(_SLOTS_LOCK, (bucket,))
            row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
            now = float(row[0]) if row else 0.0
            conn.execute("DELETE FROM github_write_slots WHERE bucket = %s AND at < %s", (bucket, now - 3600.0))
            history = [float(r[0]) for r in conn.execute(
                "SELECT at FROM github_write_slots WHERE bucket = %s ORDER BY at", (bucket,)).fetchall()]
            slot = choose(history, now)
            conn.execute("INSERT INTO github_write_slots (bucket, at) VALUES (%s, %s)", (bucket, slot))
        return slot - now

    def slots_used(self, bucket: str, window_s: float) -> int:
        """How many write slots every replica took (or reserved) for ``bucket`` in the last ``window_s``."""
        with self._breaker_watch(write=False):
            return self._slots_used(bucket, window_s)

    def _slots_used(self, bucket: str, window_s: float) -> int:
        self._ensure_slots()
        conn = self._conns.get()
        with _translated(), conn.transaction():
            row = conn.execute(
                "SELECT count(*) FROM github_write_slots WHERE bucket = %s"
                " AND at > extract(epoch FROM clock_timestamp())::float8 - %s", (bucket, window_s)).fetchone()
        return int(row[0]) if row else 0

    def _ensure_slots(self) -> None:
        if not self._slots_ready.is_set():
            with self._locked_transaction() as execute:
                execute(_SLOTS_TABLE, {})
                execute(_SLOTS_INDEX, {})
            self._slots_ready.set()

    # -- backend hooks --------------------------------------------------------------

    def _write(self, statement: str, params: Params) -> list[Row]:
        with _translated():
            return _run(self._conns.get(), statement, params)

    def _read(self, statement: str, params: Params) -> list[Row]:
        return self._write(statement, params)

    def _migration_transaction(self) -> AbstractContextManager[Executor]:
        return self._locked_transaction()

    def _json_in(self, value: Mapping[str, Any]) -> Any:
        return Jsonb(dict(value))

    # -- connections ------------------------------------------------------------------

    @contextmanager
    def _locked_transaction(self) -> Iterator[Executor]:
        conn = self._conns.get()
        with _translated(), conn.transaction():
            conn.execute(_MIGRATION_LOCK)
            yield lambda statement, params: _run(conn, statement, params)

    def _connect(self) -> psycopg.Connection[Any]:
        with _translated():
            return psycopg.connect(self._conninfo, autocommit=True, **self._extra)


def _run(conn: psycopg.Connection[Any], statement: str, params: Params) -> list[Row]:
    cursor = conn.execute(_pg(statement), params or None)
    return cursor.fetchall() if cursor.description is not None else []


@contextmanager
def _translated() -> Iterator[None]:
    """A lost connection is an outage the loop retries; SQL errors stay bugs."""
    try:
        yield
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise LedgerUnavailable(f"The PostgreSQL ledger is unavailable: {exc}.") from exc
