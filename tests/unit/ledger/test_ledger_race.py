"""Many workers, one ledger: no task is held twice, none is lost, stale writes are refused.

Eight threads (sharing one ledger, as the runner's worker pool does) and
eight processes (one ledger each, as replicas do) race over 50 tasks with
short real leases. Two workers crash on their first job and come back as
zombies at the end; one releases its first job. Every event carries the
``now`` the worker passed, so the history can be checked afterwards.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.ledger import Ledger, TaskKey, open_ledger
from runner.ledger.sql import MIGRATIONS
from tests.unit.ledger.fixtures import (
    BACKEND_PARAMS,
    Event,
    fresh_url,
    open_and_count,
    process_worker,
    raw_query,
    utcnow,
    work,
)

TASKS = 50
WORKERS = 8
REPO = "octo/dispatch"


def options(index: int) -> dict[str, int]:
    """Workers 0 and 1 crash once, worker 2 releases once, the rest just work."""
    return {"tasks": TASKS, "crashes": 1 if index < 2 else 0, "releases": 1 if index == 2 else 0}


@pytest.fixture(params=BACKEND_PARAMS)
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_url(request.param, tmp_path) as url:
        seeded = open_ledger(url)
        now = utcnow()
        for n in range(1, TASKS + 1):
            seeded.enqueue(TaskKey(REPO, n), task_id=f"task-{n}", body_hash=None, now=now)
        seeded.close()
        yield url


def check_history(events: list[Event], ledger: Ledger) -> None:
    """Every claim came after the previous holder's lease ended; one success per task."""
    claims: dict[int, dict[int, Event]] = defaultdict(dict)
    held_until: dict[tuple[int, int], Any] = {}
    ended: dict[tuple[int, int], str] = {}
    successes: dict[int, list[int]] = defaultdict(list)
    zombies = []
    for event in events:
        kind, issue, attempt = event[:3]
        if kind == "claim":
            assert attempt not in claims[issue], f"attempt {attempt} of #{issue} handed out twice"
            claims[issue][attempt] = event
            held_until[issue, attempt] = max(held_until.get((issue, attempt), event[5]), event[5])
        elif kind == "beat":
            held_until[issue, attempt] = max(held_until.get((issue, attempt), event[3]), event[3])
        elif kind in ("done", "released"):
            ended[issue, attempt] = kind
            if kind == "done":
                successes[issue].append(attempt)
        elif kind.startswith("zombie"):
            zombies.append(kind)

    records = {r.key.issue_number: r for r in ledger.list(limit=TASKS * 2)}
    assert sorted(records) == list(range(1, TASKS + 1)), "a task was lost or invented"
    for issue, record in records.items():
        attempts = sorted(claims[issue])
        assert record.status == "succeeded", f"#{issue} ended {record.status}"
        assert attempts == list(range(1, record.attempt + 1)), f"#{issue}: claims {attempts}"
        assert successes[issue] == [record.attempt], f"#{issue}: successes {successes[issue]}"
        for previous, attempt in zip(attempts, attempts[1:], strict=False):
            how = ended.get((issue, previous))
            assert how != "done", f"#{issue} was claimed again after it succeeded"
            if how != "released":  # a release ends the hold at once
                taken_at = claims[issue][attempt][4]
                assert taken_at >= held_until[issue, previous], (
                    f"#{issue}: attempt {attempt} taken at {taken_at} while attempt "
                    f"{previous} held it until {held_until[issue, previous]}"
                )
    assert zombies and set(zombies) == {"zombie-lost"}, zombies
    assert any(len(c) > 1 for c in claims.values()), "no lease was ever taken over"


@pytest.mark.timeout(240)  # spawned processes start slowly on a busy 2-core machine
def test_threads_never_share_a_task(ledger_url: str) -> None:
    ledger = open_ledger(ledger_url)
    start = threading.Barrier(WORKERS)
    results: list[list[Event] | BaseException | None] = [None] * WORKERS

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = work(ledger, f"thread-{index}", seconds=12.0, **options(index))
        except BaseException as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        events: list[Event] = []
        for index, outcome in enumerate(results):
            assert isinstance(outcome, list), f"thread-{index} ended with {outcome!r}"
            events.extend(outcome)
        check_history(events, ledger)
    finally:
        ledger.close()


@pytest.mark.timeout(240)  # spawned processes start slowly on a busy 2-core machine
def test_processes_never_share_a_task(ledger_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    ready, start, results = context.Queue(), context.Event(), context.Queue()
    processes = [
        context.Process(
            target=process_worker, args=(ledger_url, f"proc-{i}", options(i), ready, start, results)
        )
        for i in range(WORKERS)
    ]
    for process in processes:
        process.start()
    events: list[Event] = []
    try:
        for _ in processes:  # spawning is slow: let nobody drain the queue before all are up
            ready.get(timeout=120)
        start.set()
        for _ in processes:
            name, outcome = results.get(timeout=120)
            assert not isinstance(outcome, BaseException), f"{name} raised {outcome!r}"
            events.extend(outcome)
    except queue.Empty:
        pytest.fail("a racing process never reported back")
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
    ledger = open_ledger(ledger_url)
    try:
        check_history(events, ledger)
    finally:
        ledger.close()


@pytest.mark.timeout(240)  # spawned processes start slowly on a busy 2-core machine
@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_processes_opening_a_fresh_ledger_together_migrate_once(backend: str, tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    with fresh_url(backend, tmp_path) as url:
        processes = [context.Process(target=open_and_count, args=(url, start, results)) for _ in range(4)]
        for process in processes:
            process.start()
        start.set()
        outcomes = [results.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(10)
        assert outcomes == ["ok"] * 4
        versions = raw_query(url, "SELECT version FROM schema_version ORDER BY version")
        assert [v for (v,) in versions] == [m.version for m in MIGRATIONS]
