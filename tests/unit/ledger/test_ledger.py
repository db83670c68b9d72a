"""The ledger contract, run the same way against SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from runner.errors import ConfigError, LeaseLost
from runner.ledger import Job, Ledger, TaskKey, TaskRecord, open_ledger
from runner.ledger.sql import MIGRATIONS
from runner.ledger.status import format_status_table, records_to_json, status_text
from tests.unit.ledger.fixtures import BACKEND_PARAMS, fresh_url, raw_query

T0 = datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)
REPO = "octo/dispatch"
LEASE = 30.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def key(n: int) -> TaskKey:
    return TaskKey(REPO, n)


@pytest.fixture(params=BACKEND_PARAMS)
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    opened = open_ledger(ledger_url)
    yield opened
    opened.close()


def enqueue(ledger: Ledger, *numbers: int, now: datetime = T0) -> None:
    for n in numbers:
        assert ledger.enqueue(key(n), task_id=f"task-{n}", body_hash=f"h{n}", now=now)


def record(ledger: Ledger, n: int) -> TaskRecord:
    found = ledger.get(key(n))
    assert found is not None
    return found


def claim(ledger: Ledger, owner: str = "w1", *, now: datetime = T0) -> Job:
    job = ledger.claim(owner, now=now, lease_seconds=LEASE)
    assert job is not None
    return job


# -- enqueue -------------------------------------------------------------------------


def test_enqueue_creates_a_queued_task_once(ledger: Ledger) -> None:
    assert ledger.enqueue(key(1), task_id="t-1", body_hash="abc", now=T0) is True
    assert ledger.enqueue(key(1), task_id="t-1", body_hash="abc", now=at(5)) is False
    got = record(ledger, 1)
    assert (got.status, got.attempt, got.failures, got.task_id, got.body_hash) == (
        "queued", 0, 0, "t-1", "abc"
    )
    assert got.created_at == got.updated_at == T0
    assert got.lease_owner is None and got.next_attempt_at is None and got.stage_seconds == {}
    assert ledger.get(key(2)) is None


def test_an_edited_body_does_not_requeue_a_finished_task(ledger: Ledger) -> None:
    enqueue(ledger, 1)
    ledger.complete(claim(ledger), now=at(1), pr_url="https://x/pull/1", stage_seconds={})
    assert ledger.enqueue(key(1), task_id="task-1", body_hash="edited", now=at(2)) is False
    got = record(ledger, 1)
    assert (got.status, got.body_hash) == ("succeeded", "h1")


# -- claim ---------------------------------------------------------------------------


def test_claim_takes_the_task_due_longest_first(ledger: Ledger) -> None:
    enqueue(ledger, 3, now=at(0))
    enqueue(ledger, 1, now=at(1))
    enqueue(ledger, 2, now=at(2))
    owners = ["a", "b", "c"]
    claimed = [claim(ledger, owner, now=at(10)) for owner in owners]
    assert [job.key.issue_number for job in claimed] == [3, 1, 2]
    first = claimed[0]
    assert (first.attempt, first.owner, first.task_id, first.failures) == (1, "a", "task-3", 0)
    assert first.lease_expires_at == at(10 + LEASE)
    got = record(ledger, 3)
    assert (got.status, got.lease_owner, got.lease_expires_at) == ("running", "a", at(40))


def test_a_retry_that_fell_due_earlier_goes_before_a_newer_task(ledger: Ledger) -> None:
    enqueue(ledger, 1, now=at(0))
    ledger.fail(claim(ledger, now=at(1)), now=at(2), error="flaky", retry_at=at(5))
    enqueue(ledger, 2, now=at(6))
    assert claim(ledger, now=at(10)).key == key(1)


def test_claim_returns_none_when_nothing_is_runnable(ledger: Ledger) -> None:
    assert ledger.claim("w1", now=T0, lease_seconds=LEASE) is None
    enqueue(ledger, 1)
    claim(ledger)
    assert ledger.claim("w2", now=at(LEASE - 1), lease_seconds=LEASE) is None


def test_a_backed_off_task_waits_until_its_retry_time(ledger: Ledger) -> None:
    enqueue(ledger, 1)
    ledger.fail(claim(ledger), now=at(1), error="GitHub said 502", retry_at=at(60))
    got = record(ledger, 1)
    assert (got.status, got.failures, got.next_attempt_at, got.last_error) == (
        "failed", 1, at(60), "GitHub said 502"
    )
    assert got.lease_expires_at is None
    assert ledger.claim("w2", now=at(59.999), lease_seconds=LEASE) is None
    job = claim(ledger, "w2", now=at(60))
    assert (job.attempt, job.failures) == (2, 1)
    assert record(ledger, 1).next_attempt_at is None


def test_an_expired_lease_is_taken_over_with_the_attempt_bumped(ledger: Ledger) -> None:
    enqueue(ledger, 1)
    claim(ledger, "w1")
    assert ledger.claim("w2", now=at(LEASE - 0.001), lease_seconds=LEASE) is None
    job = claim(ledger, "w2", now=at(LEASE))
    assert (job.attempt, job.owner, job.failures) == (2, "w2", 1)
    got = record(ledger, 1)
    assert (got.lease_owner, got.attempt) == ("w2", 2)
    assert got.last_error is not None and "w1" in got.last_error


def test_heartbeat_extends_the_lease(ledger: Ledger) -> None:
    enqueue(ledger, 1)
    job = ledger.heartbeat(claim(ledger), now=at(20), lease_seconds=LEASE)
    assert job.lease_expires_at == at(50) == record(ledger, 1).lease_expires_at
    assert ledger.claim("w2", now=at(49), lease_seconds=LEASE) is None
    assert claim(ledger, "w2", now=at(50)).attempt == 2


def test_an_expired_lease_nobody_took_is_still_honoured(ledger: Ledger) -> None:
    enqueue(ledger, 1)
    job = claim(ledger)
    ledger.complete(job, now=at(LEASE * 3), pr_url=None, stage_seconds={})
    assert record(ledger, 1).status == "succeeded"


STALE_CALLS: dict[str, Callable[[Ledger, Job], object]] = {
    "heartbeat": lambda led, job: led.heartbeat(job, now=at(31), lease_seconds=LEASE),
    "complete": lambda led, job: led.complete(job, now=at(31), pr_url="https://x/pull/9", stage_seconds={"a": 1}),
    "fail": lambda led, job: led.fail(job, now=at(31), error="late", retry_at=None),
    "release": lambda led, job: led.release(job, now=at(31)),
}


@pytest.mark.parametrize("call", STALE_CALLS.values(), ids=STALE_CALLS.keys())
def test_a_stale_attempt_is_refused_and_changes_nothing(
    ledger: Ledger, call: Callable[[Ledger, Job], object]
) -> None:
    enqueue(ledger, 1)
    stale = claim(ledger, "w1")
    current = claim(ledger, "w2", now=at(LEASE))
    before = record(ledger, 1)
    with pytest.raises(LeaseLost, match=r"attempt 1 of w1 .*attempt 2, running, by w2"):
        call(ledger, stale)
    assert record(ledger, 1) == before
    ledger.complete(current, now=at(32), pr_url=None, stage_seconds={})


def test_the_attempt_fences_even_the_same_owner(ledger: Ledger) -> None:
    enqueue(ledger, 1)
    stale = claim(ledger, "host-a")
    current = claim(ledger, "host-a", now=at(LEASE))  # the same worker name took it over
    with pytest.raises(LeaseLost, match="attempt 1 of host-a"):
        ledger.complete(stale, now=at(31), pr_url=None, stage_seconds={})
    ledger.complete(current, now=at(32), pr_url=None, stage_seconds={})


def test_the_owner_is_part_of_the_fence(ledger: Ledger) -> None:
    enqueue(ledger, 1)
    job = claim(ledger, "w1")
    impostor = Job(key=job.key, attempt=job.attempt, owner="w2", lease_expires_at=job.lease_expires_at)
    with pytest.raises(LeaseLost):
        ledger.complete(impostor, now=at(1), pr_url=None, stage_seconds={})


def test_fail_without_retry_is_dead_for_good(ledger: Ledger) -> None:
    enqueue(ledger, 1)
    ledger.fail(claim(ledger), now=at(1), error="Target repo not allowed", retry_at=None,
                stage_seconds={"intake": 0.5}, transcript="/data/transcripts/1.jsonl")
    got = record(ledger, 1)
    assert (got.status, got.failures, got.last_error, got.next_attempt_at) == (
        "dead", 1, "Target repo not allowed", None
    )
    assert (got.stage_seconds, got.transcript) == ({"intake": 0.5}, "/data/transcripts/1.jsonl")
    assert ledger.claim("w2", now=at(10_000), lease_seconds=LEASE) is None


@pytest.mark.parametrize("finish", ["succeeded", "failed", "dead"])
def test_requeue_runs_a_finished_task_again_with_a_fresh_budget(ledger: Ledger, finish: str) -> None:
    enqueue(ledger, 1)
    job = claim(ledger)
    if finish == "succeeded":
        ledger.complete(job, now=at(1), pr_url="https://x/pull/1", stage_seconds={})
    else:
        ledger.fail(job, now=at(1), error="boom", retry_at=at(999) if finish == "failed" else None)
    assert ledger.requeue(key(1), now=at(2), body_hash="edited") is True
    got = record(ledger, 1)
    assert (got.status, got.failures, got.last_error, got.next_attempt_at) == ("queued", 0, None, at(2))
    assert (got.attempt, got.body_hash, got.task_id) == (1, "edited", "task-1")
    again = claim(ledger, "w2", now=at(3))
    assert (again.attempt, again.failures) == (2, 0)  # the fencing token never goes back
    with pytest.raises(LeaseLost):
        ledger.complete(job, now=at(4), pr_url=None, stage_seconds={})


def test_a_requeued_task_waits_behind_tasks_that_were_due_before(ledger: Ledger) -> None:
    enqueue(ledger, 1, now=at(0))
    ledger.complete(claim(ledger, now=at(1)), now=at(2), pr_url=None, stage_seconds={})
    enqueue(ledger, 2, now=at(5))
    assert ledger.requeue(key(1), now=at(10))
    assert [claim(ledger, now=at(11)).key.issue_number for _ in range(2)] == [2, 1]


def test_requeue_leaves_unknown_queued_and_running_tasks_alone(ledger: Ledger) -> None:
    assert ledger.requeue(key(1), now=T0) is False
    enqueue(ledger, 1, 2)
    claim(ledger)
    assert ledger.requeue(key(1), now=at(1)) is False
    assert ledger.requeue(key(2), now=at(1)) is False
    assert record(ledger, 1).status == "running"


def test_release_gives_the_task_back_without_a_failure(ledger: Ledger) -> None:
    enqueue(ledger, 1)
    job = claim(ledger, "w1")
    ledger.release(job, now=at(1))
    got = record(ledger, 1)
    assert (got.status, got.failures, got.lease_expires_at, got.next_attempt_at) == ("queued", 0, None, None)
    again = claim(ledger, "w2", now=at(1))
    assert (again.attempt, again.failures) == (2, 0)


def test_claim_key_takes_one_task_even_before_its_retry_time(ledger: Ledger) -> None:
    enqueue(ledger, 1, 2)
    assert ledger.claim_key(key(9), "cli", now=T0, lease_seconds=LEASE) is None
    ledger.fail(claim(ledger), now=at(1), error="flaky", retry_at=at(3600))
    job = ledger.claim_key(key(1), "cli", now=at(2), lease_seconds=LEASE)
    assert job is not None and (job.key, job.attempt, job.owner) == (key(1), 2, "cli")
    assert ledger.claim_key(key(1), "other", now=at(3), lease_seconds=LEASE) is None  # live lease
    ledger.complete(job, now=at(4), pr_url=None, stage_seconds={})
    assert ledger.claim_key(key(1), "cli", now=at(5), lease_seconds=LEASE) is None  # terminal
    assert record(ledger, 2).status == "queued"


def test_stage_durations_transcript_and_pr_round_trip(ledger: Ledger) -> None:
    enqueue(ledger, 1)
    stages = {"prepare": 0.25, "generate": 12.5, "validate": 3.0, "publish": 1.125}
    ledger.complete(claim(ledger), now=at(20), pr_url="https://github.com/o/t/pull/7",
                    stage_seconds=stages, transcript="transcripts/octo-dispatch-1.jsonl")
    got = record(ledger, 1)
    assert dict(got.stage_seconds) == stages
    assert (got.pr_url, got.transcript, got.updated_at) == (
        "https://github.com/o/t/pull/7", "transcripts/octo-dispatch-1.jsonl", at(20)
    )


def test_times_come_back_as_the_same_instant_in_utc(ledger: Ledger) -> None:
    plus_two = timezone(timedelta(hours=2))
    ledger.enqueue(key(1), task_id=None, body_hash=None, now=T0.astimezone(plus_two))
    got = record(ledger, 1)
    assert got.created_at == T0 and got.created_at.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="timezone-aware"):
        ledger.claim("w1", now=T0.replace(tzinfo=None), lease_seconds=LEASE)


def test_list_shows_the_latest_activity_first(ledger: Ledger) -> None:
    enqueue(ledger, 1, 2, 3)
    ledger.release(claim(ledger, now=at(5)), now=at(6))
    assert [r.key.issue_number for r in ledger.list()][0] == 1
    assert len(ledger.list(limit=2)) == 2


# -- schema ----------------------------------------------------------------------------


def test_migrations_apply_once_and_reopen_keeps_the_data(ledger_url: str) -> None:
    first = open_ledger(ledger_url)
    enqueue(first, 1)
    first.close()
    second = open_ledger(ledger_url)
    assert record(second, 1).status == "queued"
    second.close()
    versions = raw_query(ledger_url, "SELECT version FROM schema_version ORDER BY version")
    assert [v for (v,) in versions] == [m.version for m in MIGRATIONS]


def test_a_newer_schema_is_refused(ledger_url: str) -> None:
    open_ledger(ledger_url).close()
    raw_query(
        ledger_url,
        "INSERT INTO schema_version (version, description, applied_at) "
        "VALUES (999, 'from the future', CURRENT_TIMESTAMP)",
    )
    with pytest.raises(ConfigError, match=r"schema version 999.*Upgrade agent-runner"):
        open_ledger(ledger_url)


# -- open_ledger -------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["mysql://db/ledger", "ledger.db", "sqlite:ledger.db", ""])
def test_an_unknown_url_names_ledger_url_and_the_formats(url: str) -> None:
    with pytest.raises(ConfigError, match=r"LEDGER_URL.*sqlite:///.*postgresql://"):
        open_ledger(url)


def test_an_unreachable_postgres_is_a_config_error_without_the_password() -> None:
    url = "postgresql://runner:s3cret@127.0.0.1:1/nowhere?connect_timeout=2"
    with pytest.raises(ConfigError, match="LEDGER_URL") as raised:
        open_ledger(url)
    assert "s3cret" not in str(raised.value) and "runner:***@127.0.0.1:1" in str(raised.value)


def test_sqlite_urls_take_relative_and_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    open_ledger("sqlite:///data/rel.db").close()
    assert (tmp_path / "data" / "rel.db").is_file()
    open_ledger(f"sqlite:///{tmp_path / 'abs.db'}").close()  # -> sqlite:////tmp/...
    assert (tmp_path / "abs.db").is_file()


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://host/ledger.db"])
def test_sqlite_urls_that_cannot_work_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="LEDGER_URL"):
        open_ledger(url)


def test_an_unwritable_sqlite_location_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ConfigError, match="Cannot open the SQLite ledger"):
        open_ledger(f"sqlite:///{tmp_path / 'file' / 'ledger.db'}")


# -- status --------------------------------------------------------------------------------


def sample(n: int, **fields: object) -> TaskRecord:
    base: dict[str, object] = dict(
        key=key(n), task_id=f"task-{n}", body_hash=None, status="queued", attempt=0,
        lease_owner=None, lease_expires_at=None, next_attempt_at=None, pr_url=None,
        last_error=None, created_at=at(-7200), updated_at=at(-60),
    )
    return TaskRecord(**{**base, **fields})  # type: ignore[arg-type]


def test_the_status_table_shows_what_each_task_is_doing() -> None:
    records = [
        sample(1, status="running", attempt=2, failures=1, lease_owner="host-a/1", lease_expires_at=at(45)),
        sample(2, status="failed", attempt=1, failures=1, lease_owner="host-b/2", next_attempt_at=at(180),
               last_error="GitHub answered 502 Bad Gateway\nwhile pushing " + "x" * 80),
        sample(3, status="succeeded", attempt=1, lease_owner="host-a/1",
               pr_url="https://github.com/o/t/pull/3", created_at=at(-3 * 86400)),
        sample(4, task_id="a-very-long-task-identifier-that-goes-on-and-on"),
    ]
    assert format_status_table(records, T0) == "\n".join([
        "TASK                              ISSUE            STATUS                    ATTEMPT       OWNER     AGE  PR                             LAST ERROR",
        "task-1                            octo/dispatch#1  running (lease 45s left)  2 (1 failed)  host-a/1  2h   -                              -",
        "task-2                            octo/dispatch#2  failed (retry in 3m)      1 (1 failed)  host-b/2  2h   -                              GitHub answered 502 Bad Gateway while pushing xxxxxxxxxxxxx…",
        "task-3                            octo/dispatch#3  succeeded                 1             host-a/1  3d   https://github.com/o/t/pull/3  -",
        "a-very-long-task-identifier-tha…  octo/dispatch#4  queued                    0             -         2h   -                              -",
    ])
    assert format_status_table([], T0) == "No tasks in the ledger yet."


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        ({"status": "running", "lease_expires_at": at(-90)}, "running (lease expired 1m ago)"),
        ({"status": "failed", "next_attempt_at": at(-1)}, "failed (retry due)"),
        ({"status": "failed", "next_attempt_at": at(7200)}, "failed (retry in 2h)"),
        ({"status": "dead", "last_error": "no"}, "dead"),
    ],
)
def test_the_status_column_says_what_is_next(fields: dict[str, object], shown: str) -> None:
    assert status_text(sample(1, **fields), T0) == shown


def test_status_json_keeps_every_field(ledger: Ledger) -> None:
    enqueue(ledger, 1)
    ledger.complete(claim(ledger), now=at(2), pr_url="https://x/pull/1", stage_seconds={"generate": 1.5})
    [row] = records_to_json(ledger.list())
    assert row["issue"] == "octo/dispatch#1" and row["status"] == "succeeded"
    assert (row["attempt"], row["failures"], row["stage_seconds"]) == (1, 0, {"generate": 1.5})
    assert row["created_at"] == "2024-05-01T12:00:00.250000+00:00"


# -- feedback items (runner.core.feedback) -------------------------------------------------


def test_feedback_is_recorded_once_and_only_for_known_tasks(ledger: Ledger) -> None:
    enqueue(ledger, 1)
    item = {"kind": "issue_comment", "id": 7, "body": "/agent"}
    assert ledger.add_feedback(key(1), "r:issue_comment:7", item, now=at(1))
    assert not ledger.add_feedback(key(1), "r:issue_comment:7", {**item, "body": "edited"}, now=at(2))
    assert not ledger.add_feedback(key(2), "r:issue_comment:8", item, now=at(2))
    assert ledger.pending_feedback(key(1)) == [("r:issue_comment:7", item)]


def test_a_comment_the_runner_posted_is_known_from_the_start_and_never_queues_its_task(ledger: Ledger) -> None:
    enqueue(ledger, 1)
    job = claim(ledger)
    ledger.complete(job, now=at(1), pr_url=None, stage_seconds={})
    assert ledger.add_own_comment(key(1), "r:issue_comment:7", now=at(2))
    assert not ledger.add_own_comment(key(1), "r:issue_comment:7", now=at(3))
    assert not ledger.add_feedback(key(1), "r:issue_comment:7", {"id": 7, "body": "/agent"}, now=at(4))
    assert record(ledger, 1).status == "succeeded" and ledger.pending_feedback(key(1)) == []
    assert not ledger.add_own_comment(key(2), "r:issue_comment:8", now=at(2))


def test_feedback_arriving_during_a_run_keeps_the_task_queued_for_its_round(ledger: Ledger) -> None:
    enqueue(ledger, 1)
    job = claim(ledger)
    assert ledger.add_feedback(key(1), "k1", {"id": 1}, now=at(1))
    assert record(ledger, 1).status == "running"  # never two runs of one task at once
    ledger.complete(job, now=at(2), pr_url="http://x/o/r/pull/1", stage_seconds={})
    assert record(ledger, 1).status == "queued"
    round_job = claim(ledger, "w2", now=at(3))
    ledger.finish_feedback(round_job, "k1", status="done", round_no=1, outcome={"number": 1}, now=at(4))
    ledger.complete(round_job, now=at(5), pr_url=None, stage_seconds={})
    assert record(ledger, 1).status == "succeeded"
    assert ledger.handled_feedback(key(1)) == [("k1", "done", 1, {"number": 1})]
    assert ledger.pull_tasks() == [(key(1), "http://x/o/r/pull/1")]


def test_feedback_on_a_finished_task_queues_it_and_finishing_is_fenced(ledger: Ledger) -> None:
    enqueue(ledger, 1)
    job = claim(ledger)
    ledger.record_usage(job, {"input_tokens": 5, "output_tokens": 2}, now=at(1))
    ledger.complete(job, now=at(1), pr_url=None, stage_seconds={})
    assert ledger.add_feedback(key(1), "k1", {"id": 1}, now=at(2))
    assert record(ledger, 1).status == "queued"
    with pytest.raises(LeaseLost):
        ledger.finish_feedback(job, "k1", status="done", round_no=1, outcome={}, now=at(3))
    assert ledger.usage_of(key(1)) == {"input_tokens": 5, "output_tokens": 2}
    assert ledger.wake_for_feedback(now=at(4)) == []  # already queued


def test_the_workload_counts_what_will_need_writes(ledger: Ledger) -> None:
    """Queued tasks and retries due later, running ones and pending rounds (the progress decision's input)."""
    from runner.ledger.base import Workload, WorkloadSource

    assert isinstance(ledger, WorkloadSource)
    assert ledger.workload() == Workload(0, 0, 0)
    enqueue(ledger, 1, 2, 3, 4)
    ledger.fail(claim(ledger), now=at(1), error="GitHub said 502", retry_at=at(60))  # 1: a retry due later
    ledger.complete(claim(ledger), now=at(2), pr_url="https://example/pull/1", stage_seconds={})  # 2: done
    claim(ledger)  # 3: running
    ledger.add_feedback(key(2), "r:issue_comment:7", {"body": "/agent again"}, now=at(3))
    assert ledger.workload() == Workload(queued=2 + 1, running=1, pending_rounds=1)  # 4 queued, 1 retrying, 2 woken


def test_a_claim_within_one_dispatch_repository_takes_only_its_tasks(ledger: Ledger) -> None:
    """A fleet claims round its dispatch repositories (runner/executors/threads.py)."""
    enqueue(ledger, 1, 2)
    assert ledger.enqueue(TaskKey("octo/other", 3), task_id="task-3", body_hash="h3", now=T0)
    job = ledger.claim("w1", now=at(1), lease_seconds=LEASE, repo="octo/other")
    assert job is not None and job.key == TaskKey("octo/other", 3)
    assert ledger.claim("w1", now=at(1), lease_seconds=LEASE, repo="octo/other") is None
    assert claim(ledger, now=at(1)).key == key(1)
