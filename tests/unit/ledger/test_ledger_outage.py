"""A ledger outage is a LedgerUnavailable the loop can retry, and the ledger recovers."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from runner.ledger import LedgerUnavailable, TaskKey, open_ledger
from runner.ledger.sqlite import SqliteLedger
from runner.ledger.store import PerThread
from tests.unit.ledger.fixtures import fresh_url

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KEY = TaskKey("octo/dispatch", 1)


def test_a_sqlite_file_locked_too_long_is_unavailable(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.db", busy_timeout=0.05)
    other = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(LedgerUnavailable, match="locked") as raised:
            ledger.enqueue(KEY, task_id=None, body_hash=None, now=NOW)
        assert raised.value.transient
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert ledger.enqueue(KEY, task_id=None, body_hash=None, now=NOW)
    ledger.close()


@pytest.mark.postgres
def test_a_dropped_postgres_connection_is_unavailable_once_then_replaced(tmp_path: Path) -> None:
    with fresh_url("postgres", tmp_path) as url:
        name = f"ledger-outage-{uuid.uuid4().hex[:8]}"
        ledger = open_ledger(f"{url}&application_name={name}")
        ledger.enqueue(KEY, task_id=None, body_hash=None, now=NOW)
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                (name,),
            )
        with pytest.raises(LedgerUnavailable):
            ledger.get(KEY)
        record = ledger.get(KEY)
        assert record is not None and record.status == "queued"
        ledger.close()


def test_connections_of_finished_threads_are_closed() -> None:
    opened: list[int] = []
    closed: list[int] = []

    def connect() -> int:
        opened.append(len(opened))
        return opened[-1]

    conns: PerThread[int] = PerThread(connect, closed.append, lambda conn: True)
    for _ in range(3):
        thread = threading.Thread(target=conns.get)
        thread.start()
        thread.join()
    assert conns.get() == 3 and closed == [0, 1, 2]
    assert conns.get() == 3 and len(opened) == 4  # one per thread, reused
    conns.close_all()
    assert closed == [0, 1, 2, 3]
    with pytest.raises(RuntimeError, match="closed"):
        conns.get()
