"""Feedback rounds end to end: `/agent` comments and reviews push one more commit to the same PR."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from runner.ledger.base import TaskKey
from tests.conftest import DISPATCH, README_PATCH, TARGET, World, dispatch_body

APP_PATCH = """```diff
--- a/src/app.py
+++ b/src/app.py
@@ -1 +1,2 @@
 print('hello')
+print('round one')
```"""

APP_PATCH_2 = """```diff
--- a/src/app.py
+++ b/src/app.py
@@ -1,2 +1,3 @@
 print('hello')
 print('round one')
+print('round two')
```"""


def commits(world: World, branch: str) -> list[str]:
    """Subjects of the task branch's commits not on main, newest first."""
    out = subprocess.run(["git", "--git-dir", str(world.emu.bare_repo_path(TARGET)), "log", "--format=%s",
                          f"main..{branch}"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def result_comments(world: World, number: int) -> list[dict[str, Any]]:
    return [c for c in world.comments(number) if c["body"].startswith("<!-- agent-runner:result")]


def first_run(world: World, **settings: Any) -> tuple[int, str]:
    number = world.file_issue(dispatch_body(instruction=f"Patch the README.\n\n{README_PATCH}"))
    world.run_once(**settings)
    assert "processed" in world.labels(number)
    [pull] = world.pulls()
    return number, pull["head"]["ref"]


@pytest.fixture()
def users(world: World) -> World:
    for login, role in (("ada", "admin"), ("wendy", "write"), ("rita", "read"), ("tina", "triage")):
        world.emu.add_user(login, f"{login}-token")
        world.emu.set_permission(DISPATCH, login, role)
        world.emu.set_permission(TARGET, login, role)
    return world


def one_agent_round(world: World, **settings: Any) -> tuple[int, str]:
    """The first run, then a writer's `/agent` with a diff: one new commit on the same open PR, the
    rounds section in its body, the one result comment edited, 👀 on the comment. Under any executor."""
    number, branch = first_run(world, **settings)
    [comment_before] = result_comments(world, number)
    comment_id = world.emu.add_comment(DISPATCH, number, f"/agent please also log a line\n\n{APP_PATCH}",
                                       as_user="wendy")

    world.run_once(**settings)

    [pull] = world.pulls()
    assert pull["state"] == "open" and pull["head"]["ref"] == branch
    subjects = commits(world, branch)
    assert len(subjects) == 2 and "feedback round 1" in subjects[0]
    assert world.emu.file_at(TARGET, branch, "src/app.py") == "print('hello')\nprint('round one')\n"
    assert "## Feedback rounds" in pull["body"] and "@wendy" in pull["body"]
    [comment_after] = result_comments(world, number)
    assert comment_after["id"] == comment_before["id"]
    assert "Feedback rounds:" in comment_after["body"] and "Round 1" in comment_after["body"]
    assert [r["content"] for r in world.emu.reactions(DISPATCH, comment_id)] == ["eyes"]
    return number, branch


def two_items_together(world: World, **settings: Any) -> int:
    """Two writers' items posted before the next pass: two rounds in order, one PR. Under any executor."""
    number, branch = first_run(world, **settings)
    world.emu.add_comment(DISPATCH, number, f"/agent first\n\n{APP_PATCH}", as_user="wendy")
    world.emu.add_comment(DISPATCH, number, f"/agent second\n\n{APP_PATCH_2}", as_user="ada")

    world.run_once(**settings)

    subjects = commits(world, branch)
    assert len(subjects) == 3
    assert "feedback round 2" in subjects[0] and "feedback round 1" in subjects[1]
    [comment] = result_comments(world, number)
    assert "Round 1" in comment["body"] and "Round 2" in comment["body"]
    assert len(world.pulls()) == 1
    return number


def test_agent_comment_with_a_diff_pushes_a_second_commit_to_the_same_pr(users: World) -> None:
    world = users
    _, branch = one_agent_round(world)

    # Nothing new: the next pass runs no round and pushes nothing.
    world.run_once()
    assert len(commits(world, branch)) == 2


def test_the_token_owners_own_agent_comment_is_honoured_with_a_personal_access_token(users: World) -> None:
    """With a PAT the token's owner is a person: their `/agent` on their own issue runs a round.

    The world's token is octocat's (an admin, not a bot); the runner's own result comment,
    posted with the same login, is told apart by its marker and by its id in the ledger."""
    world = users
    number, branch = first_run(world)
    [result] = result_comments(world, number)
    assert result["user"]["login"] == "octocat"
    app = world.app()
    own = [k for k, _, _, done in app.ledger.handled_feedback(TaskKey(DISPATCH, number)) if done.get("own")]
    assert own == [f"{DISPATCH}:issue_comment:{result['id']}"]
    comment_id = world.emu.add_comment(DISPATCH, number, f"/agent please also log a line\n\n{APP_PATCH}",
                                       as_user="octocat")

    world.run_once()

    subjects = commits(world, branch)
    assert len(subjects) == 2 and "feedback round 1" in subjects[0]
    assert world.emu.file_at(TARGET, branch, "src/app.py") == "print('hello')\nprint('round one')\n"
    assert [r["content"] for r in world.emu.reactions(DISPATCH, comment_id)] == ["eyes"]
    [after] = result_comments(world, number)
    assert after["id"] == result["id"] and "Round 1" in after["body"] and "@octocat" in after["body"]

    # The runner's edited result comment, by the same login, starts nothing.
    world.run_once()
    assert len(commits(world, branch)) == 2


def test_two_feedback_items_give_two_sequential_rounds(users: World) -> None:
    two_items_together(users)


def test_a_non_writers_agent_comment_is_ignored(users: World) -> None:
    world = users
    number, branch = first_run(world)
    [before] = result_comments(world, number)
    ids = [world.emu.add_comment(DISPATCH, number, f"/agent do it\n\n{APP_PATCH}", as_user=user)
           for user in ("rita", "tina")]

    world.run_once()

    assert len(commits(world, branch)) == 1
    assert all(world.emu.reactions(DISPATCH, i) == [] for i in ids)
    [after] = result_comments(world, number)
    assert after["body"] == before["body"]


@pytest.mark.parametrize("body", [
    f"<!-- /agent -->\n\n{APP_PATCH}",
    f"```\n/agent\n```\n\n{APP_PATCH}",
    f"Please have a look.\n/agent\n\n{APP_PATCH}",
    f"/agents\n\n{APP_PATCH}",
])
def test_a_hidden_or_misplaced_command_is_not_a_trigger(users: World, body: str) -> None:
    world = users
    number, branch = first_run(world)
    world.emu.add_comment(DISPATCH, number, body, as_user="wendy")
    world.run_once()
    assert len(commits(world, branch)) == 1


def test_editing_a_handled_comment_starts_no_second_round(users: World) -> None:
    world = users
    number, branch = first_run(world)
    comment_id = world.emu.add_comment(DISPATCH, number, f"/agent\n\n{APP_PATCH}", as_user="wendy")
    world.run_once()
    assert len(commits(world, branch)) == 2
    world.emu.edit_comment(DISPATCH, comment_id, f"/agent\n\n{APP_PATCH_2}")
    world.run_once()
    assert len(commits(world, branch)) == 2


def test_round_limit_is_reported_instead_of_running(users: World) -> None:
    world = users
    number, branch = first_run(world, max_feedback_rounds=1)
    world.emu.add_comment(DISPATCH, number, f"/agent\n\n{APP_PATCH}", as_user="wendy")
    world.run_once(max_feedback_rounds=1)
    world.emu.add_comment(DISPATCH, number, f"/agent\n\n{APP_PATCH_2}", as_user="wendy")
    world.run_once(max_feedback_rounds=1)

    assert len(commits(world, branch)) == 2
    [comment] = result_comments(world, number)
    assert "MAX_FEEDBACK_ROUNDS" in comment["body"]


def push_a_persons_commit(world: World, tmp_path: Any, branch: str) -> None:
    """A person pushes "human work" to the task branch, as the runner must never overwrite."""
    clone = tmp_path / "human"
    git = ["git", "-c", "user.name=Hu Man", "-c", "user.email=human@example.com"]
    subprocess.run(["git", "clone", "--quiet", "--branch", branch, str(world.emu.bare_repo_path(TARGET)),
                    str(clone)], check=True)
    (clone / "NOTES.md").write_text("mine\n")
    subprocess.run([*git, "-C", str(clone), "add", "NOTES.md"], check=True)
    subprocess.run([*git, "-C", str(clone), "commit", "--quiet", "-m", "human work"], check=True)
    subprocess.run(["git", "-C", str(clone), "push", "--quiet", "origin", branch], check=True)


def test_a_human_commit_on_the_branch_stops_the_round_with_the_reason(users: World, tmp_path: Any) -> None:
    world = users
    number, branch = first_run(world)
    push_a_persons_commit(world, tmp_path, branch)
    world.emu.add_comment(DISPATCH, number, f"/agent\n\n{APP_PATCH}", as_user="wendy")

    world.run_once()

    assert commits(world, branch)[0] == "human work"
    [comment] = result_comments(world, number)
    assert "does not overwrite a person's work" in comment["body"]
    app = world.app()
    assert app.ledger.pending_feedback(TaskKey(DISPATCH, number)) == []  # handled: it failed, once


# -- by webhook (the runner as a GitHub App) ------------------------------------------


@pytest.fixture()
def hooked(tmp_path: Any) -> Any:
    from github_emulator import GitHubEmulator

    from tests.app_world import make_app_world
    from tests.e2e.test_webhooks import Hooked

    with GitHubEmulator(tmp_path / "github") as emu:
        aw = make_app_world(emu, tmp_path)
        for login, role in (("wendy", "write"), ("rita", "read")):
            emu.add_user(login, f"{login}-token")
            emu.set_permission(DISPATCH, login, role)
            emu.set_permission(TARGET, login, role)
        h = Hooked(aw)
        h.serve()
        yield h
        h.close()
        for built in aw.world.apps:
            built.close()


def test_a_changes_requested_review_gets_the_same_round_trip_by_webhook(hooked: Any) -> None:
    from tests.e2e.test_webhooks import wait_until

    world: World = hooked.aw.world
    number = world.file_issue(dispatch_body(instruction=f"Patch the README.\n\n{README_PATCH}"))
    wait_until(lambda: "processed" in world.labels(number))
    [pull] = world.pulls()
    branch = pull["head"]["ref"]
    [before] = result_comments(world, number)

    world.emu.submit_review(TARGET, pull["number"], f"Please log a line too.\n\n{APP_PATCH}",
                            state="changes_requested", as_user="wendy",
                            comments=[{"path": "README.md", "line": 4, "body": "Nice line."}])
    wait_until(lambda: len(commits(world, branch)) == 2)
    wait_until(lambda: "Round 1" in result_comments(world, number)[0]["body"])

    [after] = result_comments(world, number)
    assert after["id"] == before["id"] and "review" in after["body"]
    [pull] = world.pulls()
    assert "## Feedback rounds" in pull["body"]
    assert world.emu.file_at(TARGET, branch, "src/app.py") == "print('hello')\nprint('round one')\n"
    # The review's inline comment (file, line, hunk) was read for the round's context.
    assert any(r.method == "GET" and "/reviews/" in r.path and r.path.endswith("/comments") and r.status == 200
               for r in world.emu.request_log)

    # A reader's review asks for changes too, but gets nothing.
    world.emu.submit_review(TARGET, pull["number"], f"No.\n\n{APP_PATCH_2}", state="changes_requested",
                            as_user="rita")
    world.emu.wait_for_deliveries()
    wait_until(lambda: hooked.app.ledger.get(TaskKey(DISPATCH, number)).status == "succeeded")
    assert len(commits(world, branch)) == 2


# -- crashes and budgets -----------------------------------------------------------------


def kill_after_the_rounds_push(world: World, tmp_path: Any, settings: dict[str, Any] | None = None,
                               *, during_push: bool = False, **env: str) -> tuple[int, str]:
    """A replica runs a `/agent` round, pushes its commit, hangs on the PR body update and is
    killed -9 there; returns (issue number, branch). ``settings`` (the first run's) and ``env``
    (the replica's) pick the executor. With ``during_push`` it hangs in the push itself instead
    (before the commit lands), still in the round's change."""
    import time

    from tests import chaos

    number, branch = first_run(world, **(settings or {}))
    world.emu.add_comment(DISPATCH, number, f"/agent\n\n{APP_PATCH}", as_user="wendy")
    if during_push:
        rule = world.emu.inject(status=None, delay=60, method="POST", path_regex=r"git-receive-pack$",
                                include_git=True)
        reached = lambda: rule.fired >= 1  # noqa: E731
    else:
        world.emu.inject(status=None, delay=60, method="PATCH", path_regex=r"^/repos/octocat/target/pulls/\d+$")
        reached = lambda: len(commits(world, branch)) == 2  # noqa: E731
    replica = chaos.Replica("victim", world.env(POLL_INTERVAL_SECONDS="0.5", LEASE_SECONDS="2",
                                                HEALTH_HOST="127.0.0.1", HEALTH_PORT=str(chaos.free_port()),
                                                **env), tmp_path / "victim.log", cwd=world.root)
    replica.start()
    try:
        assert chaos.wait_until(reached, time.monotonic() + 60, 0.1), replica.log_tail(40)
    finally:
        replica.kill()
    world.emu.clear_faults()
    return number, branch


def assert_exactly_one_round(world: World, number: int, branch: str) -> None:
    assert len(commits(world, branch)) == 2
    [pull] = world.pulls()
    assert pull["body"].count("Round 1") == 1
    [comment] = result_comments(world, number)
    assert "Round 1" in comment["body"] and "Round 2" not in comment["body"]


def test_kill_9_after_the_rounds_push_gives_exactly_one_new_commit(users: World, tmp_path: Any) -> None:
    import time

    number, branch = kill_after_the_rounds_push(users, tmp_path)
    time.sleep(2.5)  # the dead worker's lease runs out

    users.run_once()

    assert_exactly_one_round(users, number, branch)
    app = users.app()
    key = TaskKey(DISPATCH, number)
    assert app.ledger.pending_feedback(key) == []
    rounds = [(status, round_no) for _, status, round_no, done in app.ledger.handled_feedback(key)
              if not done.get("own")]
    assert rounds == [("done", 1)]


def test_the_token_budget_covers_every_round_and_is_reported(users: World) -> None:
    from github_emulator.llm import OpenAIEmulator, Reply

    world = users
    with OpenAIEmulator() as llm:
        llm.script([
            Reply.tool_call("edit_file", {"path": "src/app.py", "search": "print('hello')",
                                          "replace": "print('hello, world')"}, input_tokens=1200, output_tokens=80),
            Reply.tool_call("finish", {"summary": "Greets the world."}, input_tokens=1200, output_tokens=80),
        ])
        number = world.file_issue(dispatch_body(instruction="Greet the world."))
        world.run_once(generators="openai", openai_api_key="sk-emulated-key-0000",
                       openai_base_url=f"{llm.base_url}/v1")
    assert "processed" in world.labels(number)
    [pull] = world.pulls()
    world.emu.add_comment(DISPATCH, number, f"/agent\n\n{APP_PATCH}", as_user="wendy")

    world.run_once(max_tokens_per_task=2000)

    assert len(commits(world, pull["head"]["ref"])) == 1
    [comment] = result_comments(world, number)
    assert "2560 tokens" in comment["body"] and "MAX_TOKENS_PER_TASK" in comment["body"]


def test_a_huge_feedback_body_is_refused_with_a_reason(users: World) -> None:
    world = users
    number, branch = first_run(world)
    world.emu.add_comment(DISPATCH, number, "/agent " + "x" * 70_000, as_user="wendy")
    world.run_once()
    assert len(commits(world, branch)) == 1
    [comment] = result_comments(world, number)
    assert "the limit is 60000" in comment["body"]
