"""A fast task spends at most 3 GitHub writes and 7 requests; an idle poll is all 304s; SIGTERM beats a hung GitHub.

Counts come from the emulator's request log, which is what GitHub would see.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest
from github_emulator import GitHubEmulator, LimitConfig, RequestRecord

from runner.ledger import TaskKey, open_ledger
from tests import chaos
from tests.conftest import DISPATCH, README, TARGET, World, dispatch_body

#: What a task may cost at most once the short caches are warm. The trust re-check before
#: the push (issue #8) is inside this budget.
MAX_WRITES = 3
MAX_REQUESTS = 7


def rest(world: World) -> list[RequestRecord]:
    return [r for r in world.emu.request_log if not r.git]


def routes(records: list[RequestRecord]) -> Counter[str]:
    return Counter(f"{r.method} {r.path}" for r in records)


#: What one poll asks: the dispatch issues, then the feedback listings (docs/feedback.md): the
#: dispatch repository's comments, and the PR and review comments of each target with a task PR.
POLL_PATHS = (f"/repos/{DISPATCH}/issues", f"/repos/{DISPATCH}/issues/comments",
              f"/repos/{TARGET}/issues/comments", f"/repos/{TARGET}/pulls/comments")


#: And for each open task PR (CI rounds, docs/feedback.md): the PR, its head's check runs and combined status.
CI_POLL = re.compile(rf"^/repos/{TARGET}/(pulls/\d+|commits/[0-9a-f]{{40}}/(check-runs|status))$")


def is_poll(record: RequestRecord) -> bool:
    return record.method == "GET" and (record.path in POLL_PATHS or bool(CI_POLL.match(record.path)))


def test_a_fast_task_makes_three_writes_and_few_requests(world: World) -> None:
    # "Fast" is within PROGRESS_AFTER_SECONDS; a minute keeps a loaded test machine from counting
    # a progress comment that a quicker run would not have posted.
    app = world.app(progress_after_seconds=60)
    world.file_issue(dispatch_body("warm0001-task"))
    assert [o.status for o in app.executor.run_once()] == ["succeeded"]  # warms the caches
    number = world.file_issue(dispatch_body("fast0002-task"))
    world.emu.clear_request_log()

    assert [o.status for o in app.executor.run_once()] == ["succeeded"]

    task = [r for r in rest(world) if not is_poll(r)]
    writes = [r for r in task if r.is_write]
    assert sorted(f"{r.method} {r.path}" for r in writes) == sorted([
        "POST /repos/octocat/target/pulls",
        f"POST /repos/{DISPATCH}/issues/{number}/comments",
        f"POST /repos/{DISPATCH}/issues/{number}/labels",
    ]), routes(task)
    assert len(writes) <= MAX_WRITES
    assert len(task) <= MAX_REQUESTS, routes(task)  # the trust check and its re-check before the push included
    assert routes(task)["POST /graphql"] == 2, "one history read when the task starts, one before the push"
    assert not any(r.method == "DELETE" for r in task), "never delete a label the issue does not carry"
    assert not any(r.path.endswith("/comments") and r.method == "GET" for r in task), \
        "a first attempt on an issue without comments need not list them"
    assert world.labels(number) == {"copilot-agent", "processed"}
    [comment] = world.comments(number)
    assert "finished task" in comment["body"]


def test_an_idle_poll_is_conditional_requests_answered_304(world: World) -> None:
    app = world.app()
    world.file_issue(dispatch_body("idle0001-task"))
    app.executor.run_once()
    app.executor.poll()  # learns the ETag of the list as it is now
    app.executor.poll()  # and of the feedback listings past the result comment (their `since` moved)
    world.emu.clear_request_log()

    for _ in range(5):
        assert app.executor.poll() == 0

    log = rest(world)
    # One request per listing, and per open task PR its head's checks (the PR, check runs, status).
    [pull] = world.pulls()
    head = pull["head"]["sha"]
    per_pr = (f"/repos/{TARGET}/pulls/{pull['number']}", f"/repos/{TARGET}/commits/{head}/check-runs",
              f"/repos/{TARGET}/commits/{head}/status")
    assert [(r.method, r.path, r.status) for r in log] == [("GET", path, 304) for path in POLL_PATHS + per_pr] * 5
    assert all("if-none-match" in r.headers for r in log)


def test_a_retry_lists_comments_again_rather_than_trusting_its_memory(world: World) -> None:
    """A later attempt may follow a worker that commented and died: it looks for the marker."""
    number = world.file_issue(dispatch_body("retry001-task"))
    world.emu.inject(status=422, count=1, path_regex=r"/target/pulls$", method="POST")
    world.run_once()  # fails after commenting, in a process that then ends
    assert len(world.comments(number)) == 1
    world.emu.faults.clear()
    world.emu.remove_label(DISPATCH, number, "agent-failed")
    world.emu.clear_request_log()

    world.run_once()  # a new process: attempt 2 knows nothing of the comment but what GitHub lists

    assert any(r.method == "GET" and r.path.endswith(f"/issues/{number}/comments") for r in rest(world))
    assert len([c for c in world.comments(number) if chaos.RESULT_MARKER in c["body"]]) == 1


def test_sigterm_while_github_hangs_exits_0_and_releases_the_lease(world: World, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    number = world.file_issue(dispatch_body("hang0001-task"))
    # GitHub stops answering the moment the task opens its pull request.
    hang = world.emu.faults.inject(status=None, count=None, hang=True, path_regex=r"/pulls$", method="POST")
    env = world.env(LEDGER_URL=url, POLL_INTERVAL_SECONDS="0.5", SHUTDOWN_GRACE_SECONDS="3",
                    GITHUB_TIMEOUT_SECONDS="60", HEALTH_HOST="127.0.0.1", HEALTH_PORT=str(chaos.free_port()))
    runner = chaos.Replica("hung", env, tmp_path / "runner.log", cwd=world.root)
    runner.start()
    try:
        hung = chaos.wait_until(lambda: hang.fired > 0 or not runner.alive, time.monotonic() + 60, 0.05)
        assert hung and runner.alive, runner.log_tail(30)
        runner.terminate()
        code = runner.wait(30)  # generous; the grace is 3 s and GitHub would hang for 60 s per try
    finally:
        runner.kill()
    assert code == 0, runner.log_tail(30)
    ledger = open_ledger(url)
    try:
        record = ledger.get(TaskKey(DISPATCH, number))
    finally:
        ledger.close()
    assert record is not None
    assert (record.status, record.lease_expires_at, record.failures) == ("queued", None, 0)


def test_a_slow_task_shows_progress_in_the_same_one_comment(world: World) -> None:
    """Past PROGRESS_AFTER_SECONDS progress is shown, by editing the one result comment."""
    app = world.app(progress_after_seconds=0, progress_every_seconds=0)
    number = world.file_issue(dispatch_body("slow0001-task"))

    app.executor.run_once()

    edits = [r for r in rest(world) if r.method == "PATCH" and "/issues/comments/" in r.path]
    assert len(edits) >= 2  # progress, then the final result
    [comment] = world.comments(number)
    assert "finished task" in comment["body"]


def test_a_task_makes_three_writes_while_other_work_waits(world: World) -> None:
    """Progress is optional spending: with another task queued the issue gets only the final result."""
    app = world.app(progress_after_seconds=0, progress_every_seconds=0)
    first = world.file_issue(dispatch_body("busy0001-task"))
    second = world.file_issue(dispatch_body("lone0002-task"))

    assert [o.status for o in app.executor.run_once()] == ["succeeded", "succeeded"]

    def writes_on(number: int) -> list[str]:
        return [f"{r.method} {r.path}" for r in rest(world) if r.is_write
                and (f"/issues/{number}/" in r.path or r.path.startswith(f"/repos/{DISPATCH}/issues/comments/"))]

    # The first ran with the second queued: its comment was created once, with the result, never edited.
    first_writes = [w for w in writes_on(first) if "/comments/" not in w]
    assert sorted(first_writes) == [f"POST /repos/{DISPATCH}/issues/{first}/comments",
                                    f"POST /repos/{DISPATCH}/issues/{first}/labels"]
    [first_comment] = world.comments(first)
    edits = [r for r in rest(world) if r.method == "PATCH" and r.path.endswith(f"/comments/{first_comment['id']}")]
    assert edits == []
    # The second ran alone on an idle runner: it showed its progress, then its result, in one comment.
    [second_comment] = world.comments(second)
    assert [r for r in rest(world) if r.method == "PATCH" and r.path.endswith(f"/comments/{second_comment['id']}")]
    skipped = app.metrics.registry.get_sample_value(
        "agent_runner_progress_decisions_total", {"decision": "skipped", "reason": "other work waiting"})
    posted = app.metrics.registry.get_sample_value(
        "agent_runner_progress_decisions_total", {"decision": "posted", "reason": "spare budget"})
    assert skipped and skipped >= 1 and posted and posted >= 1


@pytest.mark.rate_limits
def test_a_secondary_limit_is_waited_out_and_the_task_finishes(tmp_path: Path) -> None:
    """GitHub refuses the third write a "minute" (a 403 with Retry-After): the runner waits, then succeeds."""
    with GitHubEmulator(tmp_path / "github", limits=LimitConfig(content_per_minute=2), time_scale=30) as emu:
        emu.create_repo(DISPATCH)
        emu.create_repo(TARGET, files={"README.md": README})
        world = World(emu=emu, root=tmp_path)
        number = world.file_issue(dispatch_body("limit001-task"))
        app = world.app(progress_after_seconds=60)
        try:
            assert [o.status for o in app.executor.run_once()] == ["succeeded"]
        finally:
            app.close()
            world.apps.remove(app)
        assert {"processed"} <= world.labels(number)
        hits = emu.limit_hits
        assert hits and {h.limit for h in hits} == {"content_per_minute"}
        refused = [r for r in emu.request_log if r.limit]
        assert all(r.status == 403 for r in refused)
        assert len(world.pulls()) == 1 and len(world.comments(number)) == 1
