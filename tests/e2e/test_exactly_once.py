"""Exactly once, and the ledger tells the truth: what GitHub shows and what `status` says agree.

Each test breaks one thing on purpose through the emulator (a write that
GitHub carries out but answers 502, a git push that fails, a listing taken
before the result label landed, a worker that died after labeling) and checks
what a user sees: comment and PR creations in the request log, labels, and the
ledger record that `agent-runner status` prints.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from runner.ledger import TaskKey
from tests import chaos
from tests.conftest import DISPATCH, TARGET, World, dispatch_body

COMMENTS = rf"^/repos/{DISPATCH}/issues/\d+/comments$"
PULLS = rf"^/repos/{TARGET}/pulls$"


def comment_creations(world: World, number: int) -> int:
    return chaos.creations(world.emu, COMMENTS)[f"/repos/{DISPATCH}/issues/{number}/comments"]


def pull_creations(world: World) -> int:
    return sum(chaos.creations(world.emu, PULLS).values())


def test_a_comment_github_wrote_but_answered_502_is_found_not_posted_again(world: World) -> None:
    world.emu.inject(status=502, count=1, method="POST", path_regex=COMMENTS, after_action=True)
    number = world.file_issue(dispatch_body())
    app = world.app()

    [outcome] = app.executor.run_once()

    assert outcome.status == "succeeded", outcome
    assert comment_creations(world, number) == 1
    assert len(world.comments(number)) == 1
    assert "✅" in world.comments(number)[0]["body"]
    record = app.ledger.get(TaskKey(DISPATCH, number))
    assert record is not None and (record.status, record.attempt, record.failures) == ("succeeded", 1, 0)


def test_a_pull_request_github_opened_but_answered_502_is_found_by_its_head(world: World) -> None:
    world.emu.inject(status=502, count=1, method="POST", path_regex=PULLS, after_action=True)
    number = world.file_issue(dispatch_body())
    app = world.app()

    [outcome] = app.executor.run_once()

    assert outcome.status == "succeeded", outcome
    assert pull_creations(world) == 1 and len(world.pulls()) == 1
    record = app.ledger.get(TaskKey(DISPATCH, number))
    assert record is not None and record.pr_url == world.pulls()[0]["html_url"]


def test_transient_faults_are_retried_in_their_stage_without_costing_an_attempt(world: World) -> None:
    """Three 500s on git push, a 503 on fetch, two 502s on the comment, a 429 on a label: still attempt 1."""
    world.emu.inject(status=500, count=3, path_regex=r"git-receive-pack", include_git=True)
    world.emu.inject(status=503, count=1, path_regex=r"git-upload-pack", include_git=True)
    world.emu.inject(status=502, count=2, method="POST", path_regex=COMMENTS)
    world.emu.inject(status=429, count=1, method="POST", path_regex=r"/labels$", retry_after=1)
    world.emu.inject(status=403, count=1, method="POST", path_regex=PULLS, retry_after=1)
    number = world.file_issue(dispatch_body())
    app = world.app(max_attempts=1)  # any failure that escaped its stage would end the task

    [outcome] = app.executor.run_once()

    assert outcome.status == "succeeded", outcome
    fired = [(rule.method, rule.path_regex, rule.fired, rule.count) for rule in world.emu.faults.rules]
    assert all(rule.exhausted for rule in world.emu.faults.rules), fired
    assert world.labels(number) == {"copilot-agent", "processed"}
    assert pull_creations(world) == 1 and comment_creations(world, number) == 1
    record = app.ledger.get(TaskKey(DISPATCH, number))
    assert record is not None and (record.status, record.attempt, record.failures) == ("succeeded", 1, 0)


def test_a_listing_taken_before_the_task_finished_does_not_rerun_it(world: World) -> None:
    ok = world.file_issue(dispatch_body("stale-ok-0001"))
    bad = world.file_issue("no metadata here")
    app = world.app()
    stale = {i.number: i for i in app.forge.list_dispatch_issues(DISPATCH, "copilot-agent")}

    app.executor.run_once()  # `ok` succeeds, `bad` fails for good
    assert "processed" in world.labels(ok) and "agent-failed" in world.labels(bad)
    queued = [app.executor.offer(stale[ok]), app.executor.offer(stale[bad])]

    assert queued == [0, 0]
    done, dead = app.ledger.get(TaskKey(DISPATCH, ok)), app.ledger.get(TaskKey(DISPATCH, bad))
    assert done is not None and (done.status, done.attempt) == ("succeeded", 1)
    assert dead is not None and (dead.status, dead.attempt) == ("dead", 1) and dead.last_error

    world.emu.remove_label(DISPATCH, ok, "processed")  # a person asks for a re-run

    assert app.executor.poll() == 1
    requeued = app.ledger.get(TaskKey(DISPATCH, ok))
    assert requeued is not None and requeued.status == "queued"


def test_a_takeover_of_a_processed_issue_records_the_pull_request_it_finds(world: World, tmp_path) -> None:
    """The worker died between labeling and its ledger write: the next owner finds the PR by head."""
    number = world.file_issue(dispatch_body())
    first = world.app()
    first.executor.run_once()
    [pull] = world.pulls()

    # A new ledger knows nothing about the finished run, as after that crash.
    second = world.app(ledger_url=f"sqlite:///{tmp_path / 'other.db'}")
    outcome = second.executor.process_issue(number)

    assert outcome is not None and outcome.status == "skipped"
    record = second.ledger.get(TaskKey(DISPATCH, number))
    assert record is not None and (record.status, record.pr_url) == ("succeeded", pull["html_url"])
    assert comment_creations(world, number) == 1 and pull_creations(world) == 1


def test_a_task_found_labeled_agent_failed_is_recorded_dead_not_succeeded(world: World, tmp_path) -> None:
    number = world.file_issue(dispatch_body(), labels=("copilot-agent", "agent-failed"))
    app = world.app()

    outcome = app.executor.process_issue(number)

    assert outcome is not None and outcome.status == "skipped"
    record = app.ledger.get(TaskKey(DISPATCH, number))
    assert record is not None and record.status == "dead"
    assert record.last_error and "agent-failed" in record.last_error
    assert world.pulls() == []


def catches_sigterm(pid: int) -> bool:
    """Whether the process has a SIGTERM handler installed (Linux: the SigCgt mask in /proc)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            mask = next(line.split()[1] for line in status if line.startswith("SigCgt:"))
    except (FileNotFoundError, StopIteration):
        return False
    return bool(int(mask, 16) & (1 << (signal.SIGTERM - 1)))


@pytest.mark.parametrize("later_s", [0.0, 0.3, 1.0])
def test_sigterm_at_any_moment_of_start_up_exits_0(world: World, tmp_path, later_s: float) -> None:
    """From the handler's installation on (before the heavy imports), SIGTERM means a clean exit 0.

    Earlier than that the interpreter itself is starting and no Python code runs.
    """
    env = world.env(LEDGER_URL=f"sqlite:///{tmp_path / 'ledger.db'}", HEALTH_HOST="127.0.0.1",
                    HEALTH_PORT=str(chaos.free_port()), POLL_INTERVAL_SECONDS="0.5")
    proc = subprocess.Popen([sys.executable, "-m", "runner", "--env-file", "/dev/null", "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=world.root)
    assert chaos.wait_until(lambda: catches_sigterm(proc.pid), time.monotonic() + 30, 0.002)
    time.sleep(later_s)  # importing, reading settings, opening the ledger, serving
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
