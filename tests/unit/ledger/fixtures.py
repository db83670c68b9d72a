"""Give each ledger test a fresh database on both backends, and the race workers.

PostgreSQL comes from ``AGENT_RUNNER_TEST_POSTGRES_DSN``. Each test gets its
own schema (through ``search_path`` in the URL), so `pytest -n 2` workers
never see each other's rows. Without the DSN the PostgreSQL cases skip
locally and fail in CI (``CI=true``), where `.ci/run` starts the server.

The race workers live here, not in the test module, so that processes
started with ``spawn`` import a module that has no tests in it.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from runner.errors import LeaseLost
from runner.ledger import TERMINAL, Job, Ledger, open_ledger
from tests.chaos import postgres_schema

DSN_ENV = "AGENT_RUNNER_TEST_POSTGRES_DSN"
BACKENDS = ("sqlite", "postgres")
BACKEND_PARAMS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def postgres_dsn() -> str:
    """The test server's DSN; skip without it, but fail in CI where it must exist."""
    dsn = os.environ.get(DSN_ENV, "").strip()
    if dsn:
        return dsn
    message = (
        f"{DSN_ENV} is not set. Start PostgreSQL (`pg_ctlcluster 15 main start`), create a "
        f"database, and export {DSN_ENV}=postgresql://runner:runner@127.0.0.1:5432/agent_runner_test "
        "(`.ci/run` does all of this)."
    )
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@contextmanager
def fresh_url(backend: str, tmp_path: Path, file_name: str = "ledger.db", prefix: str = "ledger_test") -> Iterator[str]:
    """A LEDGER_URL nobody has used yet; the PostgreSQL schema is dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / file_name}"
        return
    with postgres_schema(postgres_dsn(), prefix=prefix) as url:
        yield url


def raw_query(url: str, statement: str) -> list[tuple[Any, ...]]:
    """Run SQL behind the ledger's back (to inspect or corrupt the schema)."""
    if url.startswith("sqlite:"):
        lite = sqlite3.connect(url.split("://", 1)[1][1:], isolation_level=None)
        try:
            return lite.execute(statement).fetchall()
        finally:
            lite.close()
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


# -- the race ------------------------------------------------------------------------

LEASE_SECONDS = 0.4
Event = tuple[Any, ...]


def utcnow() -> datetime:
    return datetime.now(UTC)


def all_finished(ledger: Ledger, tasks: int) -> bool:
    records = ledger.list(limit=tasks * 2)
    return len(records) == tasks and all(r.status in TERMINAL for r in records)


def work(ledger: Ledger, name: str, *, tasks: int, crashes: int, releases: int, seconds: float) -> list[Event]:
    """Claim and complete until every task is finished; record what happened, with times.

    A crashing worker abandons its first ``crashes`` jobs (no heartbeat, no
    completion) and comes back to them as a zombie at the end, when someone
    else must have taken them over. A releasing worker gives back its first
    ``releases`` jobs, as on shutdown."""
    rng = random.Random(name)
    events: list[Event] = []
    zombies: list[Job] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = utcnow()
        job = ledger.claim(name, now=now, lease_seconds=LEASE_SECONDS)
        if job is None:
            if all_finished(ledger, tasks):
                break
            time.sleep(0.01)
            continue
        issue = job.key.issue_number
        events.append(("claim", issue, job.attempt, name, now, job.lease_expires_at))
        if len(zombies) < crashes:
            zombies.append(job)
            continue
        try:
            if releases:
                releases -= 1
                ledger.release(job, now=utcnow())
                events.append(("released", issue, job.attempt))
                continue
            time.sleep(rng.uniform(0, 0.004))
            job = ledger.heartbeat(job, now=utcnow(), lease_seconds=LEASE_SECONDS)
            events.append(("beat", issue, job.attempt, job.lease_expires_at))
            time.sleep(rng.uniform(0, 0.004))
            ledger.complete(job, now=utcnow(), pr_url=f"https://example.test/pull/{issue}",
                            stage_seconds={"work": 0.004})
            events.append(("done", issue, job.attempt, name))
        except LeaseLost:
            events.append(("lost", issue, job.attempt))
    for job in zombies:
        try:
            ledger.complete(job, now=utcnow(), pr_url=None, stage_seconds={})
            events.append(("zombie-done", job.key.issue_number, job.attempt))
        except LeaseLost:
            events.append(("zombie-lost", job.key.issue_number, job.attempt))
    return events


def process_worker(
    url: str, name: str, options: dict[str, int], ready: Any, start: Any, results: Any
) -> None:
    """Entry point of one racing process: its own ledger, then :func:`work` once all are ready."""
    ledger = open_ledger(url)
    try:
        ready.put(name)
        start.wait(30)
        results.put((name, work(ledger, name, seconds=12.0, **options)))
    except BaseException as exc:  # report, or the parent waits for nothing
        results.put((name, exc))
        raise
    finally:
        ledger.close()


def open_and_count(url: str, start: Any, results: Any) -> None:
    """Entry point of a process that races to open (and migrate) a fresh ledger."""
    start.wait(30)
    try:
        open_ledger(url).close()
        results.put("ok")
    except BaseException as exc:
        results.put(repr(exc))
