"""A dispatch issue becomes exactly one PR, one comment and one label, whatever happens."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.conftest import DISPATCH, README_PATCH, TARGET, World, dispatch_body


def result_comments(world: World, number: int) -> list[str]:
    return [c["body"] for c in world.comments(number) if "agent-runner:result" in c["body"]]


def test_documented_issue_becomes_one_pull_request(world: World) -> None:
    number = world.file_issue(dispatch_body(), title="Verify the runner")

    outcomes = world.run_once()

    assert [o.status for o in outcomes] == ["succeeded"]
    pulls = world.pulls()
    assert len(pulls) == 1
    pull = pulls[0]
    assert pull["head"]["ref"] == "agent-task-test-tas"
    assert pull["base"]["ref"] == "main"
    assert f"Fixes {DISPATCH}#{number}" in pull["body"]
    assert '"task_id": "test-task-12345678"' in pull["body"]
    trace = world.emu.file_at(TARGET, "agent-task-test-tas", "agent-tasks/test-tas.md")
    assert trace is not None and "Create a simple test file" in trace
    comments = result_comments(world, number)
    assert len(comments) == 1
    assert "finished task" in comments[0] and pull["html_url"] in comments[0]
    assert world.labels(number) == {"copilot-agent", "processed"}


def test_patch_blocks_are_applied(world: World) -> None:
    world.file_issue(dispatch_body(instruction=f"Add a line.\n\n{README_PATCH}"))
    world.run_once()
    readme = world.emu.file_at(TARGET, "agent-task-test-tas", "README.md")
    assert readme is not None and readme.endswith("Patched by the runner.\n")


def test_second_pass_changes_nothing(world: World) -> None:
    number = world.file_issue(dispatch_body(instruction=f"Add a line.\n\n{README_PATCH}"))
    world.run_once()
    sha = world.emu.branch_sha(TARGET, "agent-task-test-tas")
    comments_before = world.comments(number)

    outcomes = world.run_once()

    assert outcomes == []
    assert world.emu.branch_sha(TARGET, "agent-task-test-tas") == sha
    assert world.comments(number) == comments_before
    assert len(world.pulls()) == 1


def test_rerun_after_removing_processed_converges(world: World) -> None:
    number = world.file_issue(dispatch_body(instruction=f"Add a line.\n\n{README_PATCH}"))
    world.run_once()
    sha = world.emu.branch_sha(TARGET, "agent-task-test-tas")
    world.emu.remove_label(DISPATCH, number, "processed")

    outcomes = world.run_once()

    assert [o.status for o in outcomes] == ["succeeded"]
    assert world.emu.branch_sha(TARGET, "agent-task-test-tas") == sha  # already applied: no new commit
    assert len(world.pulls()) == 1
    assert len(result_comments(world, number)) == 1
    assert "processed" in world.labels(number)


@pytest.mark.parametrize("crash_at", ["on_pushed", "on_pull_request"])
def test_crash_windows_converge_to_one_of_everything(world: World, crash_at: str) -> None:
    """Kill the process between two side effects; the next pass completes with one of each."""
    number = world.file_issue(dispatch_body(instruction=f"Add a line.\n\n{README_PATCH}"))
    env = world.env(HOOKS="crash_hook:CrashAt", CRASH_AT=crash_at, LEASE_SECONDS="1")

    crashed = world.cli("once", env=env)

    assert crashed.returncode == 137, crashed.stderr[-2000:]
    assert world.emu.branch_sha(TARGET, "agent-task-test-tas") is not None
    assert "processed" not in world.labels(number)
    assert len(world.pulls()) == (1 if crash_at == "on_pull_request" else 0)
    time.sleep(1.2)  # the dead process's lease expires

    done = world.cli("once", env=world.env(LEASE_SECONDS="1"))

    assert done.returncode == 0, done.stderr[-2000:]
    assert len(world.pulls()) == 1
    assert len(result_comments(world, number)) == 1
    assert world.labels(number) == {"copilot-agent", "processed"}
    readme = world.emu.file_at(TARGET, "agent-task-test-tas", "README.md")
    assert readme is not None and readme.count("Patched by the runner.") == 1



def test_an_agent_whose_push_outlived_its_attempt_is_published_not_failed(world: World, tmp_path) -> None:
    """An agent CLI writes the same file on every run: after a crash right after the push (or a lease
    lost in a ledger outage), the next attempt finds the change on the branch and publishes it."""
    number = world.file_issue(dispatch_body(instruction="Write hello.txt."))
    agent = tmp_path / "agent.py"
    agent.write_text("from pathlib import Path\nPath('hello.txt').write_text('hello\\n')\n")
    command = {"GENERATORS": "command", "COMMAND_TEMPLATE": f"python3 {agent} {{instruction_file}}", "SANDBOX_RO_PATHS": str(tmp_path)}
    crashed = world.cli("once", env=world.env(HOOKS="crash_hook:CrashAt", CRASH_AT="on_pushed", LEASE_SECONDS="1",
                                              **command))
    assert crashed.returncode == 137, crashed.stderr[-2000:]
    pushed = world.emu.branch_sha(TARGET, "agent-task-test-tas")
    assert pushed is not None and world.pulls() == []
    time.sleep(1.2)  # the dead process's lease expires

    done = world.cli("once", env=world.env(LEASE_SECONDS="1", **command))

    assert done.returncode == 0, done.stderr[-2000:]
    assert world.labels(number) == {"copilot-agent", "processed"}
    assert world.emu.branch_sha(TARGET, "agent-task-test-tas") == pushed  # nothing pushed twice
    [pull] = world.pulls()
    assert "earlier attempt of this task pushed its change" in pull["body"]
    assert world.emu.file_at(TARGET, "agent-task-test-tas", "hello.txt") == "hello\n"
    assert len(result_comments(world, number)) == 1

BAD_BODIES = {
    "no metadata": ("## Instruction\nDo it.\nTarget Repository: octocat/target", "no `agent_task_metadata`"),
    "broken json": ("<!-- agent_task_metadata {task_id: 1} -->\n## Instruction\nDo.\nTarget Repository: octocat/target",
                    "not valid JSON"),
    "no instruction": ('<!-- agent_task_metadata {"task_id": "t-1"} -->\nTarget Repository: octocat/target',
                       "no `## Instruction` section"),
    "no target": ('<!-- agent_task_metadata {"task_id": "t-2"} -->\n## Instruction\nDo.', "which repository"),
    "missing repo": (dispatch_body("t-3", target="octocat/does-not-exist"), "found nothing"),
    "bad patch": (dispatch_body("t-4", instruction="```diff\n--- a/nope.txt\n+++ b/nope.txt\n@@ -1 +1 @@\n-x\n+y\n```"),
                  "does not apply"),
}


def test_bad_input_fails_clearly_and_the_loop_goes_on(world: World) -> None:
    numbers = {name: world.file_issue(body, title=name) for name, (body, _) in BAD_BODIES.items()}
    good = world.file_issue(dispatch_body("good-task-1"))

    world.run_once()

    for name, number in numbers.items():
        fragment = BAD_BODIES[name][1]
        comments = result_comments(world, number)
        assert len(comments) == 1, name
        assert fragment in comments[0], (name, comments[0])
        assert "How to retry" in comments[0]
        assert world.labels(number) == {"copilot-agent", "agent-failed"}, name
    assert world.labels(good) == {"copilot-agent", "processed"}
    assert [p["head"]["ref"] for p in world.pulls()] == ["agent-task-good-tas"]


def test_unauthorized_labeler_is_refused(world: World) -> None:
    world.emu.add_user("mallory", "mallory-token")
    world.emu.set_permission(DISPATCH, "mallory", "triage")
    number = world.file_issue(dispatch_body(), labels=())
    world.emu.add_label(DISPATCH, number, "copilot-agent", as_user="mallory")

    world.run_once()

    comments = result_comments(world, number)
    assert len(comments) == 1 and "@mallory" in comments[0] and "write access" in comments[0]
    assert "agent-failed" in world.labels(number)
    assert world.pulls() == []


def test_target_outside_the_allowlist_is_refused(world: World) -> None:
    world.emu.create_repo("other-org/secret")
    number = world.file_issue(dispatch_body(target="other-org/secret"))

    world.run_once()

    comments = result_comments(world, number)
    assert len(comments) == 1 and "not in the runner's allowlist" in comments[0]
    assert "agent-failed" in world.labels(number)
    assert world.pulls("other-org/secret") == []


def test_allowlist_lets_a_listed_target_through(world: World) -> None:
    world.emu.create_repo("other-org/public")
    number = world.file_issue(dispatch_body(target="other-org/public"))

    world.run_once(allowed_target_repos="octocat/*,other-org/pub*")

    assert "processed" in world.labels(number)
    assert len(world.pulls("other-org/public")) == 1


def test_a_humans_commit_on_the_branch_is_not_overwritten(world: World, tmp_path) -> None:
    clone = tmp_path / "human"
    bare = world.emu.bare_repo_path(TARGET)
    subprocess.run(["git", "clone", "-q", str(bare), str(clone)], check=True)
    (clone / "notes.txt").write_text("my own work\n")
    env = {"GIT_AUTHOR_NAME": "Hu Man", "GIT_AUTHOR_EMAIL": "human@example.com",
           "GIT_COMMITTER_NAME": "Hu Man", "GIT_COMMITTER_EMAIL": "human@example.com", "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", "-C", str(clone), "add", "."], check=True, env=env)
    subprocess.run(["git", "-C", str(clone), "commit", "-qm", "human work"], check=True, env=env)
    subprocess.run(["git", "-C", str(clone), "push", "-q", "origin", "HEAD:refs/heads/agent-task-test-tas"],
                   check=True, env=env)
    human_sha = world.emu.branch_sha(TARGET, "agent-task-test-tas")
    number = world.file_issue(dispatch_body())

    world.run_once()

    assert world.emu.branch_sha(TARGET, "agent-task-test-tas") == human_sha
    comments = result_comments(world, number)
    assert len(comments) == 1 and "Hu Man" in comments[0] and "does not overwrite" in comments[0]
    assert world.pulls() == []


def test_task_ids_sharing_a_prefix_never_share_a_branch(world: World) -> None:
    first = world.file_issue(dispatch_body("test-task-1"))
    world.run_once()
    second = world.file_issue(dispatch_body("test-task-2"))
    world.run_once()

    heads = sorted(p["head"]["ref"] for p in world.pulls())
    assert len(heads) == 2 and heads[0] == "agent-task-test-tas" and heads[1].startswith("agent-task-test-tas-")
    assert "processed" in world.labels(first) and "processed" in world.labels(second)
    bodies = {p["head"]["ref"]: p["body"] for p in world.pulls()}
    assert '"test-task-1"' in bodies["agent-task-test-tas"]
    assert '"test-task-2"' in bodies[heads[1]]
    # Re-running the second task finds its own hashed branch again.
    world.emu.remove_label(DISPATCH, second, "processed")
    world.run_once()
    assert len(world.pulls()) == 2


def test_closed_pull_request_is_reopened_and_merged_one_is_left(world: World) -> None:
    number = world.file_issue(dispatch_body())
    world.run_once()
    pull = world.pulls()[0]
    world.emu.close_pull(TARGET, pull["number"])
    world.emu.remove_label(DISPATCH, number, "processed")

    world.run_once()

    assert [p["state"] for p in world.pulls()] == ["open"]
    world.emu.merge_pull(TARGET, pull["number"])
    world.emu.remove_label(DISPATCH, number, "processed")
    world.run_once()
    pulls = world.pulls()
    assert len(pulls) == 1 and pulls[0]["merged"]
    assert "processed" in world.labels(number)


def test_github_errors_are_retried_and_the_task_completes(world: World) -> None:
    number = world.file_issue(dispatch_body())
    world.emu.inject(status=502, count=2)
    world.emu.inject(status=429, count=1, retry_after=1)

    world.run_once()

    assert "processed" in world.labels(number)
    statuses = [r.status for r in world.emu.request_log]
    assert 502 in statuses and 429 in statuses


def test_a_mirror_left_half_made_by_a_killed_runner_heals(world: World) -> None:
    """A runner killed between `git init` and `git config` of a new mirror left it without its fetch
    refspec, so every fetch brought no branch and each task failed with "the base branch `main` does
    not exist" (seen once in 30 chaos runs, a replica killed -9 and restarted with its workspace).
    Mirrors are now made whole beside their place and renamed into it, and a process sets the refspec
    again on its first fetch, so such a mirror heals: the task succeeds."""
    mirror = world.root / "workspace" / "mirrors" / f"{TARGET}.git"
    mirror.parent.mkdir(parents=True)
    subprocess.run(["git", "init", "--quiet", "--bare", str(mirror)], check=True)  # no config after it
    number = world.file_issue(dispatch_body())

    outcomes = world.run_once()

    assert [o.status for o in outcomes] == ["succeeded"], outcomes
    assert world.labels(number) == {"copilot-agent", "processed"}
