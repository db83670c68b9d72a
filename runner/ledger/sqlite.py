"""Keep the ledger in one SQLite file, the embedded default for a single replica.

Several worker threads, and even several processes on one machine, may share
the file safely:

- WAL mode, so readers (``agent-runner status``) never block the writer;
- every write is one statement inside ``BEGIN IMMEDIATE``, which takes the
  single writer lock up front, so the claim's sub-select and its update see
  the same state. (A lone UPDATE would take the lock at once too, but a
  deferred transaction that reads first can fail to upgrade with
  SQLITE_BUSY_SNAPSHOT instead of waiting; IMMEDIATE keeps the migration and
  any future multi-statement write safe);
- ``busy_timeout`` makes a writer wait for the lock instead of failing;
- one connection per thread (:class:`runner.ledger.database.PerThread`).

Times are stored as fixed-width ISO-8601 UTC text (``2024-05-01T12:00:00.000000Z``)
so that SQL compares them correctly as strings, and a person can read them
in the ``sqlite3`` shell. ``UPDATE ... RETURNING`` needs SQLite 3.35 or newer.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runner.errors import ConfigError, DiskFull, LedgerUnavailable
from runner.ledger import sql
from runner.ledger.database import URL_FORMATS, Executor, Params, PerThread, Row
from runner.ledger.store import SqlLedger

MIN_VERSION = (3, 35, 0)
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def path_from_url(url: str) -> Path:
    """``sqlite:///rel/ledger.db`` is relative to the working directory,
    ``sqlite:////abs/ledger.db`` absolute (the SQLAlchemy convention)."""
    rest = url.split("://", 1)[1]
    if not rest.startswith("/") or len(rest) < 2 or "?" in rest or "#" in rest:
        raise ConfigError(f"LEDGER_URL `{url}` is not a SQLite file URL. {URL_FORMATS}")
    path = rest[1:]
    if path == ":memory:":
        raise ConfigError(
            "LEDGER_URL `sqlite:///:memory:` would give every worker thread its own empty "
            f"ledger. Use a file. {URL_FORMATS}"
        )
    return Path(path)


class SqliteLedger(SqlLedger):
    """The ledger in one SQLite file; see the module docstring for the locking."""

    dialect = sql.SQLITE

    def __init__(self, path: Path, *, busy_timeout: float = 30.0, read_only: bool = False) -> None:
        if sqlite3.sqlite_version_info < MIN_VERSION:
            raise ConfigError(
                f"This Python links SQLite {sqlite3.sqlite_version}; the ledger needs 3.35 or "
                "newer. Use the agent-runner container image, or set LEDGER_URL to a "
                "`postgresql://` database."
            )
        super().__init__()
        self.path = path
        self._busy_timeout = busy_timeout
        self._read_only = read_only
        self._conns: PerThread[sqlite3.Connection] = PerThread(
            self._connect, sqlite3.Connection.close, lambda conn: True
        )
        if read_only:
            return
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_url(cls, url: str) -> SqliteLedger:
        """Open (creating the file and its directory if needed) and migrate."""
        path = path_from_url(url)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return cls(path)
        except (OSError, sqlite3.Error, LedgerUnavailable) as exc:
            raise ConfigError(
                f"Cannot open the SQLite ledger at `{path}` (LEDGER_URL `{url}`): {exc}. "
                f"Check that the directory exists and is writable. {URL_FORMATS}"
            ) from exc

    @classmethod
    def open_existing(cls, url: str) -> SqliteLedger | None:
        """Open read-only, creating nothing; None when there is no ledger file (or table) yet."""
        path = path_from_url(url)
        if not path.is_file():
            return None
        try:
            ledger = cls(path, read_only=True)
            found = ledger._read(f"SELECT name FROM sqlite_master WHERE type = 'table' AND name = '{sql.TABLE}'", {})
        except (OSError, sqlite3.Error, LedgerUnavailable) as exc:
            raise ConfigError(f"Cannot read the SQLite ledger at `{path}` (LEDGER_URL `{url}`): {exc}.") from exc
        if not found:
            ledger.close()
            return None
        return ledger

    def close(self) -> None:
        self._conns.close_all()

    # -- backend hooks --------------------------------------------------------------

    def _write(self, statement: str, params: Params) -> list[Row]:
        with self._transaction() as execute:
            return execute(statement, params)

    def _read(self, statement: str, params: Params) -> list[Row]:
        with _translated():
            return self._conns.get().execute(statement, params).fetchall()

    def _migration_transaction(self) -> AbstractContextManager[Executor]:
        return self._transaction()

    def _time_in(self, value: datetime) -> Any:
        return value.astimezone(UTC).strftime(_TIME_FORMAT)

    def _time_out(self, value: Any) -> datetime:
        return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=UTC)

    # -- connections ------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[Executor]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
        conn = self._conns.get()

        def execute(statement: str, params: Params) -> list[Row]:
            return conn.execute(statement, params).fetchall()

        with _translated():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield execute
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _connect(self) -> sqlite3.Connection:
        if self._read_only:
            with _translated():
                return sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                       timeout=self._busy_timeout, isolation_level=None,
                                       check_same_thread=False)
        with _translated():
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # PerThread.close_all closes from another thread
            )
            try:
                self._set_wal(conn)
                # In WAL mode NORMAL loses no committed transaction when the process
                # crashes, only on power loss, which also stops every local worker.
                conn.execute("PRAGMA synchronous=NORMAL")
            except BaseException:
                conn.close()
                raise
        return conn

    def _set_wal(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL; the first switch needs a moment alone with the file."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
                continue
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"could not switch the journal to WAL (got {mode})")
            return


@contextmanager
def _translated() -> Iterator[None]:
    """A locked or unreadable database is an outage the loop retries, not a bug; a full disk is the disk's."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:  # the transaction rolled back whole
            raise DiskFull(f"The disk that holds the SQLite ledger (DATA_DIR) is full ({exc}); the runner "
                           "waits for space.") from exc
        raise LedgerUnavailable(f"The SQLite ledger is unavailable: {exc}.") from exc
