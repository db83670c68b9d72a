"""Nothing of the runner's stays under TMPDIR: after `once`, after `run` stopped by SIGTERM, after a
task killed by its deadline; and a dead runner's directory is removed at the next start-up."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import World, dispatch_body


@pytest.fixture()
def tmpdir_env(world: World, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    fresh = tmp_path / "tmp"
    fresh.mkdir()
    return fresh, world.env(TMPDIR=str(fresh))


def leftovers(tmp: Path) -> list[str]:
    return sorted(os.listdir(tmp))


def test_once_leaves_nothing_under_tmpdir(world: World, tmpdir_env: tuple[Path, dict[str, str]]) -> None:
    tmp, env = tmpdir_env
    number = world.file_issue(dispatch_body())

    result = world.cli("once", env=env)

    assert result.returncode == 0, result.stderr[-2000:]
    assert "processed" in world.labels(number)
    assert leftovers(tmp) == []


def test_run_stopped_by_sigterm_leaves_nothing_under_tmpdir(world: World,
                                                            tmpdir_env: tuple[Path, dict[str, str]]) -> None:
    tmp, env = tmpdir_env
    number = world.file_issue(dispatch_body())
    proc = subprocess.Popen([sys.executable, "-m", "runner", "--env-file", "/dev/null", "run"],
                            env={**env, "POLL_INTERVAL_SECONDS": "0.5", "HEALTH_PORT": "0"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=world.root)
    try:
        deadline = time.monotonic() + 60
        while "processed" not in world.labels(number) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "processed" in world.labels(number)
        assert [n for n in leftovers(tmp) if n.startswith("agent-runner-")], "the runner works under TMPDIR"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert leftovers(tmp) == []


def test_a_task_killed_by_its_deadline_leaves_nothing_under_tmpdir(
        world: World, tmpdir_env: tuple[Path, dict[str, str]]) -> None:
    tmp, env = tmpdir_env
    number = world.file_issue(dispatch_body())

    result = world.cli("once", env={**env, "GENERATORS": "command", "COMMAND_TEMPLATE": "sh -c 'sleep 60' sh {instruction_file}",
                                    "GENERATOR_TIMEOUT_SECONDS": "2"})

    assert result.returncode == 0, result.stderr[-2000:]
    assert "agent-failed" in world.labels(number)
    assert "did not finish within" in world.comments(number)[-1]["body"]
    assert leftovers(tmp) == []


def test_a_dead_runners_directory_is_removed_at_start_up_and_nothing_else(
        world: World, tmpdir_env: tuple[Path, dict[str, str]]) -> None:
    tmp, env = tmpdir_env
    stale = tmp / "agent-runner-999999-crashed"  # its process is gone: the lock file is free
    (stale / "home" / "cache").mkdir(parents=True)
    (stale / "home" / "cache" / "file").write_text("x")
    (stale / ".lock").touch()
    (stale / "home" / "cache").chmod(0o555)  # read-only, as the sandbox leaves some
    (stale / "home").chmod(0o555)
    live = tmp / "agent-runner-1-live"  # held by a live process (this test)
    live.mkdir()
    (live / ".lock").touch()
    other = tmp / "agent-runner-notes"  # no lock file: not made by a runner, never touched
    other.mkdir()
    held = os.open(live / ".lock", os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        result = world.cli("check-config", env=env)
    finally:
        os.close(held)

    assert result.returncode == 0, result.stderr[-2000:]
    assert leftovers(tmp) == ["agent-runner-1-live", "agent-runner-notes"]
