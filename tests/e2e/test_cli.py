"""The command line a user meets: help that teaches, config errors that name the setting, clean exits."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from github import Auth, Github

from tests.conftest import REPO_ROOT, World, dispatch_body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", ["run", "once", "process", "demo", "emulator", "status", "retry",
                                     "generators", "healthcheck", "check-config", "config-docs", "doctor", "smoke-test"])
def test_every_command_has_help(command: str) -> None:
    out = subprocess.run([sys.executable, "-m", "runner", command, "--help"], capture_output=True, text=True,
                         cwd=REPO_ROOT)
    assert out.returncode == 0
    assert "usage: agent-runner" in out.stdout and len(out.stdout) > 150


def test_top_level_help_shows_examples() -> None:
    out = subprocess.run([sys.executable, "-m", "runner", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "agent-runner demo" in out.stdout and "GITHUB_TOKEN" in out.stdout


@pytest.mark.parametrize(("env", "setting"), [
    ({"GITHUB_TOKEN": ""}, "GITHUB_TOKEN"),
    ({"DISPATCH_REPO": "not a repo"}, "DISPATCH_REPO"),
    ({"DISPATCH_REPO": ""}, "DISPATCH_REPO"),
    ({"POLL_INTERVAL_SECONDS": "soon"}, "POLL_INTERVAL_SECONDS"),
    ({"WORKERS": "0"}, "WORKERS"),
    ({"GENERATORS": "patch,nonsense"}, "nonsense"),
    ({"GITHUB_API_URL": "github.example.com"}, "GITHUB_API_URL"),
    ({"ALLOWED_TARGET_REPOS": "everything"}, "ALLOWED_TARGET_REPOS"),
    ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
])
def test_bad_configuration_exits_2_naming_the_setting(world: World, env: dict[str, str], setting: str) -> None:
    result = world.cli("once", env=world.env(**env))
    assert result.returncode == 2, result.stderr
    assert setting in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_generator_lists_the_known_ones(world: World) -> None:
    result = world.cli("once", env=world.env(GENERATORS="nonsense"))
    assert "Known generators:" in result.stderr and "patch" in result.stderr


def test_process_one_issue_and_report_exit_code(world: World) -> None:
    number = world.file_issue(dispatch_body())
    result = world.cli("process", str(number))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "succeeded" in result.stdout and "/pull/" in result.stdout

    bad = world.file_issue("no metadata here")
    failed = world.cli("process", str(bad))
    assert failed.returncode == 1 and "failed" in failed.stdout


def test_run_serves_health_and_stops_cleanly_on_sigterm(world: World) -> None:
    number = world.file_issue(dispatch_body())
    port = free_port()
    env = world.env(HEALTH_PORT=str(port), HEALTH_HOST="127.0.0.1", POLL_INTERVAL_SECONDS="0.5")
    proc = subprocess.Popen([sys.executable, "-m", "runner", "--env-file", "/dev/null", "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=world.root)
    try:
        deadline = time.monotonic() + 30
        while "processed" not in world.labels(number) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "processed" in world.labels(number)
        check = world.cli("healthcheck", env=env)
        assert check.returncode == 0 and "ok" in check.stdout
        ready = subprocess.run([sys.executable, "-c", f"import urllib.request;print(urllib.request.urlopen("
                                f"'http://127.0.0.1:{port}/metrics').read().decode())"], capture_output=True, text=True)
        assert 'agent_runner_tasks_total{outcome="succeeded"} 1.0' in ready.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert "runner stopped" in err
    assert world.cli("healthcheck", env=env).returncode == 1  # nothing listens any more


def test_emulator_command_prints_its_url_and_serves_pygithub(tmp_path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "runner", "emulator", "--port", "0", "--state-dir",
                             str(tmp_path / "state")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url, line
        gh = Github(auth=Auth.Token("emulator-token"), base_url=url.group(0))
        assert gh.get_user().login == "octocat"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    assert proc.returncode == 0


def test_demo_runs_the_whole_flow(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "runner", "demo", "--state-dir", str(tmp_path / "demo")],
                            capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert time.monotonic() - started < 60
    assert re.search(r"Pull request #\d+: http://127\.0\.0\.1:\d+/octocat/hello-world/pull/\d+", result.stdout)
    assert "agent-task-demo-tas" in result.stdout and "README.md" in result.stdout
    assert "finished task" in result.stdout and "processed" in result.stdout


def test_a_rejected_token_at_start_up_exits_2_naming_the_setting(world: World) -> None:
    result = world.cli("run", env=world.env(GITHUB_TOKEN="ghp_" + "q" * 36, HEALTH_PORT="0"))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "GITHUB_TOKEN" in result.stderr and "401" in result.stderr
    assert "q" * 36 not in result.stderr


def test_healthz_fails_while_github_keeps_refusing_the_token_and_readyz_keeps_its_meaning(world: World) -> None:
    port = free_port()
    env = world.env(HEALTH_PORT=str(port), HEALTH_HOST="127.0.0.1", POLL_INTERVAL_SECONDS="0.2",
                    GITHUB_MAX_RETRIES="0")
    proc = subprocess.Popen([sys.executable, "-m", "runner", "--env-file", "/dev/null", "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=world.root)

    def wait_for(path: str, status: int) -> str:
        deadline = time.monotonic() + 60
        seen = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
                    got, seen = resp.status, resp.read().decode()
            except urllib.error.HTTPError as exc:
                got, seen = exc.code, exc.read().decode()
            except OSError:
                got = -1
            if got == status:
                return seen
            time.sleep(0.1)
        raise AssertionError(f"{path} never answered {status}; last: {seen}")

    try:
        wait_for("/healthz", 200)
        wait_for("/readyz", 200)
        world.emu.inject(401, count=None, path_regex=r"^/repos/[^/]+/[^/]+/issues$",
                         message="Bad credentials")
        body = wait_for("/healthz", 503)
        assert "GITHUB_TOKEN" in body
        assert world.cli("healthcheck", env=env).returncode == 1  # the container turns unhealthy
        world.emu.clear_faults()  # the token works again (rotated): healthy again
        wait_for("/healthz", 200)
        wait_for("/readyz", 200)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert "emulator-token" not in err


def test_demo_without_bubblewrap_says_so_in_one_plain_line(tmp_path) -> None:
    """Issue #29: a missing local tool is explained once, in words: what is missing, what it affects,
    how to install it; no raw JSON log line among the demo's output."""
    import shutil

    bin_dir = tmp_path / "bin"  # git, but no bwrap
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env["PATH"] = str(bin_dir)
    result = subprocess.run([sys.executable, "-m", "runner", "demo", "--state-dir", str(tmp_path / "demo")],
                            capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    said = [line for line in (result.stdout + result.stderr).splitlines() if "bubblewrap" in line or "bwrap" in line]
    assert len(said) == 1 and "apt-get install bubblewrap" in said[0] and "agent-runner run" in said[0], said
    assert not [line for line in (result.stdout + result.stderr).splitlines() if line.lstrip().startswith("{")]
