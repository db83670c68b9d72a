"""One scenario per finding of issue #7, so that none of them can come back."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from runner.errors import SandboxUnavailable
from runner.sandbox.bwrap import Sandbox, SandboxLimits
from runner.steps.git import run_git
from runner.steps.workspace import Identity, Workspace
from tests.conftest import README_PATCH, REPO_ROOT, TARGET, TOKEN, World, dispatch_body

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_runner_environ_and_memory_are_unreadable_by_a_same_uid_process(tmp_path: Path) -> None:
    """Finding: /proc/<parent pid>/environ gave the token to any same-uid child."""
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is needed to run this test as an unprivileged uid")
    runner = subprocess.Popen(
        [*NOBODY, "python3", "-c",
         "import os, sys, time; from runner.sandbox.bwrap import contain_credentials\n"
         "class S:\n  def secrets(self): return [os.environ['GITHUB_TOKEN']]\n"
         "print(sorted(contain_credentials(S())), 'GITHUB_TOKEN' in os.environ, flush=True)\n"
         "time.sleep(30)"],
        env={"PATH": os.defpath, "PYTHONPATH": str(REPO_ROOT), "GITHUB_TOKEN": "ghp_fromtheenv",
             "OPENAI_API_KEY": "sk-fromtheenv", "COPY_OF_IT": "ghp_fromtheenv"},
        stdout=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    try:
        assert runner.stdout is not None
        removed = runner.stdout.readline().strip()
        assert removed == "['COPY_OF_IT', 'GITHUB_TOKEN', 'OPENAI_API_KEY'] False"
        for what in ("environ", "mem"):
            peek = subprocess.run([*NOBODY, "cat", f"/proc/{runner.pid}/{what}"], capture_output=True)
            assert peek.returncode != 0 and b"fromtheenv" not in peek.stdout, what
    finally:
        runner.kill()
        runner.wait()


def test_git_children_get_an_explicit_environment_not_the_runners(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding: GitPython handed os.environ, token included, to every git child."""
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_inheritedtoken")
    monkeypatch.setenv("RUNNER_ONLY_VARIABLE", "leaks-if-inherited")
    run_git(tmp_path, "init", "-q")
    env = run_git(tmp_path, "-c", "alias.envdump=!env", "envdump")
    assert "ghp_inheritedtoken" not in env and "leaks-if-inherited" not in env
    assert "GIT_CONFIG_GLOBAL=/dev/null" in env


def test_hooks_planted_in_the_mirror_and_worktree_never_run(world: World, tmp_path: Path) -> None:
    """Finding: a post-commit / reference-transaction hook in the mirror ran with the token."""
    markers = tmp_path / "markers"
    markers.mkdir()
    hook = f"#!/bin/sh\nenv > {markers}/$(basename \"$0\")-$$\n"
    app = world.app()
    mirror = app.workspace.sync(TARGET, world.emu.git_url(TARGET))
    hooks_dir = tmp_path / "configured-hooks"
    for directory in (mirror.path / "hooks", hooks_dir):
        directory.mkdir(exist_ok=True)
        for name in ("pre-commit", "post-commit", "reference-transaction", "pre-push", "post-checkout"):
            (directory / name).write_text(hook)
            (directory / name).chmod(0o755)
    run_git(mirror.path, "config", "core.hooksPath", str(hooks_dir))
    number = world.file_issue(dispatch_body(instruction=f"Patch it.\n\n{README_PATCH}"))

    outcomes = app.executor.run_once()

    assert [o.status for o in outcomes] == ["succeeded"]
    assert len(world.pulls()) == 1 and "processed" in world.labels(number)
    assert list(markers.iterdir()) == []


def test_repo_commands_are_off_unless_the_operator_allows_them(world: World) -> None:
    world.emu.create_repo("octocat/configured", files={
        "README.md": "# configured\n", ".agent-runner.yml": "setup:\n  - touch setup-ran\n",
    })
    number = world.file_issue(dispatch_body(target="octocat/configured"))

    assert [o.status for o in world.run_once()] == ["succeeded"]

    branch = world.pulls("octocat/configured")[0]["head"]["ref"]
    assert world.emu.file_at("octocat/configured", branch, "setup-ran") is None
    assert "`REPO_COMMANDS` does not allow them for octocat/configured" in world.comments(number)[-1]["body"]


def test_a_diff_that_adds_agent_runner_yml_changes_nothing_that_runs(world: World) -> None:
    """The config is read from the base commit: not from the change, not on a re-run of the branch."""
    config = "setup:\n  - touch setup-ran\nvalidate:\n  - touch validate-ran\n"
    patch = ("```diff\n--- /dev/null\n+++ b/.agent-runner.yml\n@@ -0,0 +1,4 @@\n"
             + "".join(f"+{line}\n" for line in config.splitlines()) + "```")
    number = world.file_issue(dispatch_body(instruction=f"Add a config.\n\n{patch}"))

    assert [o.status for o in world.run_once(repo_commands="allow")] == ["succeeded"]
    world.emu.remove_label("octocat/dispatch", number, "processed")  # ask for a re-run
    assert [o.status for o in world.run_once(repo_commands="allow")] == ["succeeded"]

    branch = world.pulls()[0]["head"]["ref"]
    assert world.emu.file_at(TARGET, branch, ".agent-runner.yml") == config
    assert world.emu.file_at(TARGET, branch, "setup-ran") is None
    assert "validate-ran" not in (world.pulls()[0]["body"] or "")


def test_sandbox_off_is_said_in_every_result_comment(world: World) -> None:
    number = world.file_issue(dispatch_body())
    assert [o.status for o in world.run_once(sandbox="off")] == ["succeeded"]
    assert "The sandbox is off (`SANDBOX=off`)" in world.comments(number)[-1]["body"]


def test_without_a_backend_untrusted_commands_are_refused_and_the_issue_says_why(
    world: World, tmp_path: Path
) -> None:
    with pytest.raises(SandboxUnavailable, match="`/nonexistent/bwrap` is not installed|bwrap"):
        Sandbox(bwrap="/nonexistent/bwrap").run(["true"], worktree=tmp_path, env={}, deadline_s=5)
    app = world.app(validate_commands="true")
    app.pipeline.deps = replace(app.pipeline.deps, sandbox=Sandbox(bwrap="/nonexistent/bwrap"))
    number = world.file_issue(dispatch_body())

    assert [o.status for o in app.executor.run_once()] == ["failed"]

    comment = world.comments(number)[-1]["body"]
    assert "The sandbox is not available" in comment and "SANDBOX=off" in comment
    assert world.pulls() == [] and "agent-failed" in world.labels(number)


def test_workspace_git_calls_name_the_git_dir_so_a_rewritten_dot_git_is_ignored(
    world: World, tmp_path: Path
) -> None:
    workspace = Workspace(tmp_path / "ws", token=TOKEN, identity=Identity("bot", "bot@example.com"))
    mirror = workspace.sync(TARGET, world.emu.git_url(TARGET))
    decoy = tmp_path / "decoy"
    run_git(tmp_path, "init", "-q", str(decoy))
    with workspace.checkout(mirror, branch="b", base_branch="main", job="j") as tree:
        (tree.path / ".git").write_text(f"gitdir: {decoy}/.git\n")
        (tree.path / "new.txt").write_text("x\n")
        assert workspace.changed_files(tree) == ["new.txt"]
        assert workspace.commit(tree, "change")
        assert tree.head() != tree.base_sha
        head = tree.head()
        assert not workspace.commit(tree, "nothing new"), "an index with nothing new is no commit"
        assert tree.head() == head
    assert run_git(decoy, "rev-list", "--all") == ""


def test_sandbox_limits_and_stdin(tmp_path: Path) -> None:
    sandbox = Sandbox(limits=SandboxLimits(memory_mb=64, pids=16))
    big = sandbox.run(["python3", "-c", "b = bytearray(256 * 1024 * 1024)"], worktree=tmp_path,
                      env={"PATH": os.defpath}, deadline_s=20)
    assert big.exit_code != 0 and "MemoryError" in big.output
    echo = sandbox.run(["cat"], worktree=tmp_path, env={"PATH": os.defpath}, deadline_s=20,
                       stdin=b'{"event": "pre_task"}')
    assert echo.ok and echo.output == '{"event": "pre_task"}'
    started = time.monotonic()
    slow = sandbox.run(["sleep", "30"], worktree=tmp_path, env={"PATH": os.defpath}, deadline_s=0.5)
    assert slow.timed_out and time.monotonic() - started < 5
