"""HOOK_COMMANDS end to end: real emulator, real git, real bubblewrap, what the issue shows."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from runner.errors import ConfigError
from runner.ops.health import HealthServer
from runner.ops.preflight import offline_checks
from tests.conftest import TARGET, TOKEN, World, dispatch_body


def hook(bin_dir: Path, name: str, script: str) -> str:
    """Write an executable hook script; the directory is shown to the sandbox via SANDBOX_RO_PATHS."""
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return str(path)


@pytest.fixture()
def bin_dir(tmp_path: Path) -> Path:
    return tmp_path / "hookbin"


def result_comments(world: World, number: int) -> list[str]:
    return [c["body"] for c in world.comments(number) if "agent-runner:result" in c["body"]]


def test_a_vetoing_pre_task_refuses_the_task_with_its_stderr_tail_and_opens_no_pr(
    world: World, bin_dir: Path
) -> None:
    pre = hook(bin_dir, "quota.sh", 'cat > pre_task.json\necho "checking quota" \n'
                                    'echo "quota exhausted for this month" >&2\nexit 3\n')
    number = world.file_issue(dispatch_body())
    [outcome] = world.run_once(hook_commands=json.dumps({"pre_task": pre}), sandbox_ro_paths=str(bin_dir))

    assert outcome.status == "failed"
    [comment] = result_comments(world, number)
    assert "refused" in comment and "quota exhausted for this month" in comment
    assert "`quota.sh` exited with status 3" in comment and "checking quota" not in comment  # stderr only
    assert str(bin_dir) not in comment  # the operator's paths and arguments stay off the issue
    assert world.pulls() == [] and world.labels(number) >= {"agent-failed"}
    assert "processed" not in world.labels(number)
    assert world.emu.branch_sha(TARGET, "agent-task-test-tas") is None  # nothing pushed
    assert not (world.root / "workspace").exists() or not any((world.root / "workspace").rglob("*.git"))
    sent = json.loads((world.root / "data" / "hooks" / "pre_task.json").read_text())
    assert sent["event"] == "pre_task" and sent["attempt"] == 1
    assert sent["task"]["task_id"] == "test-task-12345678" and sent["task"]["target_repo"] == TARGET
    assert TOKEN not in json.dumps(sent)


def test_post_task_gets_the_outcome_and_a_failing_one_is_a_note_not_a_failure(
    world: World, bin_dir: Path
) -> None:
    post = hook(bin_dir, "notify.sh", 'cat > "post_task-$(date +%s%N).json"\necho "chat is down" >&2\nexit 1\n')
    number = world.file_issue(dispatch_body())
    [outcome] = world.run_once(hook_commands=json.dumps({"post_task": post}), sandbox_ro_paths=str(bin_dir))

    assert outcome.status == "succeeded"
    [pull] = world.pulls()
    [sent_file] = (world.root / "data" / "hooks").glob("post_task-*.json")
    sent = json.loads(sent_file.read_text())
    assert sent["outcome"] == {"status": "succeeded", "pr_url": pull["html_url"], "error": None}
    assert sent["task"]["issue_number"] == number
    [comment] = result_comments(world, number)
    assert pull["html_url"] in comment and "post_task hook" in comment and "chat is down" in comment
    assert "processed" in world.labels(number)


def test_a_hanging_pre_task_is_stopped_at_its_timeout_and_the_task_says_so(world: World, bin_dir: Path) -> None:
    pre = hook(bin_dir, "hang.sh", "sleep 600 &\nsleep 600\n")  # a child of its own, too
    number = world.file_issue(dispatch_body())
    started = time.monotonic()
    [outcome] = world.run_once(hook_commands=json.dumps({"pre_task": pre}), sandbox_ro_paths=str(bin_dir),
                               hook_timeout_seconds=1)
    assert time.monotonic() - started < 60
    assert outcome.status == "failed"
    [comment] = result_comments(world, number)
    assert "did not finish within 1 s and was stopped" in comment and "not started" in comment
    assert world.pulls() == []


def test_a_hook_finds_no_token_in_env_proc_git_config_or_the_runners_files(world: World, bin_dir: Path) -> None:
    loot = hook(bin_dir, "loot.sh", """
{
  echo "== stdin"; cat
  echo "== env"; env
  echo "== argv"; cat /proc/*/cmdline | tr '\\0' ' '
  echo "== environ"; cat /proc/*/environ 2>&1 | tr '\\0' '\\n'
  echo "== git config"; git config --global --list 2>&1; git config --system --list 2>&1
  echo "== workspace"; cat "$WS"/*/config "$WS"/*/*/config 2>&1; ls -la "$WS" 2>&1
  echo "== data"; ls -la "$DATA" 2>&1; cat "$DATA"/ledger.db 2>&1 | head -c 2000
  echo "== home"; ls -la ~ /root 2>&1
} > loot.txt 2>&1
exit 0
""")
    number = world.file_issue(dispatch_body())
    ws, data = world.root / "workspace", world.root / "data"
    env = world.env(HOOK_COMMANDS=json.dumps({"pre_task": f"env WS={ws} DATA={data} {loot}",
                                              "post_task": f"env WS={ws} DATA={data} {loot}"}),
                    SANDBOX_RO_PATHS=str(bin_dir))
    done = world.cli("process", str(number), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    text = (data / "hooks" / "loot.txt").read_text()
    assert "== stdin" in text and '"outcome"' in text  # the post_task run wrote it last
    assert TOKEN not in text
    assert "GITHUB_TOKEN" not in text and "extraheader" not in text.lower()
    assert (data / "ledger.db").is_file() and "SQLite format" not in text  # the ledger stays out of sight
    assert "mirrors" not in text and ".git" not in text.split("== workspace")[1]
    assert TOKEN not in done.stderr and TOKEN not in done.stdout
    assert len(world.pulls()) == 1


def test_a_failing_health_check_makes_readyz_503_with_its_reason_and_is_cached(
    world: World, bin_dir: Path
) -> None:
    check = hook(bin_dir, "ready.sh", 'echo run >> runs.log\n'
                                      'if [ -e maintenance ]; then echo "maintenance window" >&2; exit 1; fi\n')
    app = world.app(hook_commands=json.dumps({"health_check": check}), sandbox_ro_paths=str(bin_dir))
    app.executor.poll()
    server = HealthServer(app.metrics, "127.0.0.1", 0).start()
    hooks_dir = world.root / "data" / "hooks"

    def readyz() -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/readyz", timeout=30) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    try:
        assert readyz()[0] == 200
        (hooks_dir / "maintenance").touch()
        app.pipeline.hook_commands._health = None  # forget the cached answer instead of waiting it out
        storm: list[tuple[int, str]] = []
        probes = [threading.Thread(target=lambda: storm.append(readyz())) for _ in range(20)]
        for probe in probes:
            probe.start()
        for probe in probes:
            probe.join()
        assert {status for status, _ in storm} == {503}
        assert "health_check hook exited with status 1: maintenance window" in storm[0][1]
        assert (hooks_dir / "runs.log").read_text().count("run") == 2  # one check for the whole storm
    finally:
        server.stop()


def test_check_config_validates_hook_commands(world: World, bin_dir: Path) -> None:
    good = hook(bin_dir, "ok.sh", "exit 0\n")
    lines = {c.name: c for c in offline_checks(world.settings(hook_commands=json.dumps({"pre_task": good})))}
    assert lines["hook commands"].ok and good in lines["hook commands"].detail
    missing = offline_checks(world.settings(hook_commands='{"post_task": "no-such-hook --flag"}'))
    [bad] = [c for c in missing if c.name == "hook commands"]
    assert not bad.ok and "no-such-hook" in bad.detail and "PATH" in bad.detail
    leaky = offline_checks(world.settings(hook_commands=json.dumps({"post_task": f"{good} {TOKEN}"})))
    [secret] = [c for c in leaky if c.name == "hook commands"]
    assert not secret.ok and TOKEN not in secret.line()
    with pytest.raises(ConfigError, match="`pre-task` is not a hook"):
        world.settings(hook_commands='{"pre-task": "true"}')
