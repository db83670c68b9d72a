"""`agent-runner status` and `retry` show and steer the ledger the way an operator expects.

Every command runs as a real subprocess, as an operator would type it, on
both ledger backends.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.ledger import TaskKey, TaskRecord, open_ledger
from tests import chaos
from tests.conftest import DISPATCH, README_PATCH, World, dispatch_body
from tests.unit.ledger.fixtures import BACKEND_PARAMS, fresh_url

BAD_PATCH = "```diff\n--- a/nope.txt\n+++ b/nope.txt\n@@ -1 +1 @@\n-x\n+y\n```"


@pytest.fixture(params=BACKEND_PARAMS)
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A ledger every runner process of the test shares: one SQLite file, or a PostgreSQL schema."""
    with fresh_url(request.param, tmp_path, "ledger.db", "ledger_cli_test") as url:
        yield url


@pytest.fixture()
def env(world: World, ledger_url: str) -> dict[str, str]:
    return world.env(LEDGER_URL=ledger_url)


def record(url: str, number: int) -> TaskRecord:
    ledger = open_ledger(url)
    try:
        found = ledger.get(TaskKey(DISPATCH, number))
    finally:
        ledger.close()
    assert found is not None
    return found


def result_comments(world: World, number: int) -> list[str]:
    return [c["body"] for c in world.comments(number) if chaos.RESULT_MARKER in c["body"]]


def run(world: World, env: dict[str, str], *args: str) -> str:
    done = world.cli(*args, env=env)
    assert done.returncode == 0, (args, done.stdout, done.stderr[-3000:])
    return done.stdout


@pytest.fixture()
def one_good_one_bad(world: World, env: dict[str, str]) -> tuple[int, int]:
    """One pass over two issues: one succeeds, one fails for good (its patch does not apply)."""
    good = world.file_issue(dispatch_body("status-good-1"), title="Works")
    bad = world.file_issue(dispatch_body("status-bad-01", instruction=f"Change nope.txt.\n\n{BAD_PATCH}"),
                           title="Broken patch")
    out = run(world, env, "once")
    assert "1 failed" in out and "1 succeeded" in out, out
    return good, bad


def test_status_on_an_empty_ledger_says_so(world: World, env: dict[str, str]) -> None:
    assert run(world, env, "status").strip() == "No tasks in the ledger yet."
    assert json.loads(run(world, env, "status", "--json"))["tasks"] == []


def test_status_creates_nothing_and_reports_a_missing_ledger_as_empty(
    world: World, ledger_url: str, tmp_path: Path
) -> None:
    """A read-only command never writes: not the SQLite file, not its directory, not a schema."""
    data_dir = tmp_path / "never-made"
    url = f"sqlite:///{data_dir / 'ledger.db'}" if ledger_url.startswith("sqlite") else ledger_url
    env = world.env(LEDGER_URL=url, DATA_DIR=str(data_dir))
    assert run(world, env, "status").strip() == "No tasks in the ledger yet."
    assert json.loads(run(world, env, "status", "--json"))["tasks"] == []
    assert not data_dir.exists()
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url) as conn:
            found = conn.execute("SELECT to_regclass('tasks') IS NOT NULL").fetchone()
        assert found is not None and found[0] is False  # status made no table


def test_status_table_shows_status_attempt_owner_age_pr_and_error(
        world: World, env: dict[str, str], ledger_url: str, one_good_one_bad: tuple[int, int]) -> None:
    good, bad = one_good_one_bad
    pull_url = world.pulls()[0]["html_url"]

    lines = run(world, env, "status").splitlines()

    assert lines[0].split() == ["TASK", "ISSUE", "STATUS", "ATTEMPT", "OWNER", "AGE", "PR", "LAST", "ERROR"]
    rows = {line.split()[1]: line for line in lines[1:]}
    assert set(rows) == {f"{DISPATCH}#{good}", f"{DISPATCH}#{bad}"}
    good_row, bad_row = rows[f"{DISPATCH}#{good}"], rows[f"{DISPATCH}#{bad}"]
    owner = record(ledger_url, good).lease_owner
    assert owner and owner in good_row and owner in bad_row  # one process ran both
    assert good_row.split()[:4] == ["status-good-1", f"{DISPATCH}#{good}", "succeeded", "1"]
    assert pull_url in good_row and good_row.rstrip().endswith("-")  # no error
    assert bad_row.split()[:4] == ["status-bad-01", f"{DISPATCH}#{bad}", "dead", "1"]
    assert "(1 failed)" in bad_row and "does not apply" in bad_row


def test_status_json_has_every_field_for_machines(
        world: World, env: dict[str, str], one_good_one_bad: tuple[int, int]) -> None:
    good, bad = one_good_one_bad

    rows = {row["issue_number"]: row for row in json.loads(run(world, env, "status", "--json"))["tasks"]}

    assert set(rows) == {good, bad}
    ok, dead = rows[good], rows[bad]
    assert (ok["status"], ok["attempt"], ok["failures"], ok["task_id"]) == ("succeeded", 1, 0, "status-good-1")
    assert ok["pr_url"] == world.pulls()[0]["html_url"] and ok["last_error"] is None
    assert ok["lease_owner"] and ok["lease_expires_at"] is None and ok["created_at"] and ok["updated_at"]
    assert set(ok["stage_seconds"]) >= {"clone", "generate", "push", "pull_request"}
    assert (dead["status"], dead["attempt"], dead["failures"]) == ("dead", 1, 1)
    assert dead["pr_url"] is None and "does not apply" in dead["last_error"]
    assert dead["issue"] == f"{DISPATCH}#{bad}"


def test_retry_requeues_a_dead_task_and_clears_its_label(
        world: World, env: dict[str, str], ledger_url: str, one_good_one_bad: tuple[int, int]) -> None:
    _, bad = one_good_one_bad
    assert world.labels(bad) == {"copilot-agent", "agent-failed"}
    world.emu.update_issue(DISPATCH, bad, body=dispatch_body("status-bad-01",
                                                             instruction=f"Add a line.\n\n{README_PATCH}"))

    out = run(world, env, "retry", str(bad))

    assert f"issue #{bad} re-queued (was dead)" in out
    assert world.labels(bad) == {"copilot-agent"}
    requeued = record(ledger_url, bad)
    assert (requeued.status, requeued.failures, requeued.last_error) == ("queued", 0, None)

    out = run(world, env, "once")

    assert "1 succeeded" in out
    assert world.labels(bad) == {"copilot-agent", "processed"}
    comments = result_comments(world, bad)
    assert len(comments) == 1 and "finished task" in comments[0]  # the failure comment, edited
    assert len(world.comments(bad)) == 1
    heads = [p["head"]["ref"] for p in world.pulls()]
    assert heads.count("agent-task-status-b") == 1
    done = record(ledger_url, bad)
    assert (done.status, done.attempt, done.failures) == ("succeeded", 2, 0)


def test_retry_of_a_task_that_is_queued_changes_nothing(
        world: World, env: dict[str, str], one_good_one_bad: tuple[int, int]) -> None:
    _, bad = one_good_one_bad
    run(world, env, "retry", str(bad))

    out = run(world, env, "retry", str(bad))

    assert "is already queued; nothing to do" in out


def test_removing_agent_failed_by_hand_requeues_at_the_next_poll(
        world: World, env: dict[str, str], ledger_url: str, one_good_one_bad: tuple[int, int]) -> None:
    good, bad = one_good_one_bad
    world.emu.update_issue(DISPATCH, bad, body=dispatch_body("status-bad-01",
                                                             instruction=f"Add a line.\n\n{README_PATCH}"))
    out = run(world, env, "once")
    assert "nothing to do" in out  # still labeled `agent-failed`: an edit alone changes nothing
    assert record(ledger_url, bad).status == "dead"

    world.emu.remove_label(DISPATCH, bad, "agent-failed")
    out = run(world, env, "once")

    assert "1 succeeded" in out, out
    assert world.labels(bad) == {"copilot-agent", "processed"}
    assert len(result_comments(world, bad)) == 1
    done = record(ledger_url, bad)
    assert (done.status, done.attempt) == ("succeeded", 2)
    assert record(ledger_url, good).attempt == 1  # the finished one was left alone
