"""`once` and `process` show each task's progress: live on a terminal, log lines elsewhere."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

from runner.ops.status_line import stage_words
from tests.conftest import World, dispatch_body


def test_without_a_terminal_progress_is_log_lines_and_json_stays_json(world: World) -> None:
    number = world.file_issue(dispatch_body())
    done = world.cli("once")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "\r" not in done.stderr and "\x1b" not in done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]  # every line
    stages = [r["stage"] for r in records if r["event"] == "task stage"]
    assert stages[:2] == ["clone", "generate"] and "pull_request" in stages
    [finished] = [r for r in records if r["event"] == "task done"]
    [pull] = world.pulls()
    assert finished["issue"] == number and finished["status"] == "succeeded" and finished["pr"] == pull["html_url"]
    assert "one pass done: 1 succeeded" in done.stdout


def test_on_a_terminal_each_task_has_a_live_line_then_a_result_line(world: World) -> None:
    ok = world.file_issue(dispatch_body())
    bad = world.file_issue("no metadata here")
    env = world.env(LOG_FORMAT="auto", HOOK_COMMANDS=json.dumps({"pre_task": "sleep 1"}))
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "runner", "--env-file", "/dev/null", "once"], env=env,
                            cwd=world.root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    out, _ = proc.communicate(timeout=120)
    screen = seen.decode(errors="replace")
    assert proc.returncode == 0, screen[-2000:]
    assert f"\r\x1b[K#{ok} octocat/target: pre_task hook… " in screen  # redrawn in place while it sleeps
    assert f"#{ok} octocat/target: generating… " in screen
    [pull] = world.pulls()
    assert f"✓ #{ok} octocat/target: succeeded {pull['html_url']} (" in screen
    assert f"✗ #{bad}: failed: " in screen
    assert b"one pass done" in out


def test_stage_words() -> None:
    assert stage_words("generate") == "generating"
    assert stage_words("generate_try_2") == "generating (try 2)"
    assert stage_words("push_round_3") == "pushing (round 3)"
    assert stage_words("something_new") == "something new"
