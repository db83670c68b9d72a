"""Validation runs real commands in a real directory, and its outcome policy is a plain table."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from runner.sandbox.procs import minimal_env
from runner.steps.validation import (
    CommandResult,
    ValidationReport,
    run_validation,
    validation_outcome,
)

PY = "python3"  # what the sandbox shows: the system interpreter


@pytest.fixture()
def env() -> dict[str, str]:
    return minimal_env(["PATH", "HOME", "LANG"])


def test_passing_commands(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "check.txt").write_text("ok\n")
    report = run_validation(
        [f"{PY} -c 'print(\"all good\")'", "cat check.txt"],
        worktree=tmp_path,
        env=env,
        timeout_s=20,
    )
    assert report.passed
    assert [r.exit_code for r in report.results] == [0, 0]
    assert report.results[1].output_tail.strip() == "ok"
    assert report.failure_feedback() == ""
    table = report.render_markdown()
    assert table.count("✅") == 2 and "❌" not in table
    assert "| ✅ | `cat check.txt` | passed |" in table


def test_failure_keeps_the_tail_and_feeds_it_back(tmp_path: Path, env: dict[str, str]) -> None:
    failing = f"{PY} -c 'import sys; [print(\"line\", i) for i in range(5000)]; sys.exit(1)'"
    report = run_validation(
        ["true", failing, "sh -c 'echo lint | grep -q x'"], worktree=tmp_path, env=env, timeout_s=20
    )
    assert not report.passed
    assert [r.status for r in report.results] == ["passed", "exit 1", "exit 1"]
    assert "line 4999" in report.results[1].output_tail
    assert "line 0\n" not in report.results[1].output_tail

    feedback = report.failure_feedback(max_chars=1500)
    assert len(feedback) <= 1500
    assert "line 4999" in feedback and "`sh -c 'echo lint | grep -q x'`: exit 1" in feedback
    assert "`true`" not in feedback

    markdown = report.render_markdown()
    assert markdown.count("❌") == 2
    assert "<details><summary>Output of <code>" in markdown
    assert "echo lint \\| grep" in markdown  # a pipe would end the table cell


def test_no_shell_unless_asked_for(tmp_path: Path, env: dict[str, str]) -> None:
    report = run_validation(
        ["echo a && echo b", "sh -c 'echo a && echo b'"], worktree=tmp_path, env=env, timeout_s=20
    )
    assert report.results[0].output_tail.strip() == "a && echo b"
    assert report.results[1].output_tail.strip() == "a\nb"


def test_timeout_stops_the_group_and_skips_the_rest(tmp_path: Path, env: dict[str, str]) -> None:
    # The command ignores SIGTERM, so only the SIGKILL after the grace period stops it; its
    # child left the session, and still dies with the sandbox's PID namespace.
    stubborn = "sh -c \"trap '' TERM; setsid sh -c 'sleep 3; touch survived' & wait\""
    started = time.monotonic()
    report = run_validation([stubborn, "true"], worktree=tmp_path, env=env, timeout_s=0.5)

    assert time.monotonic() - started < 5
    first, second = report.results
    assert first.timed_out and not first.passed and first.status == "timed out"
    assert "validation time ran out" in first.output_tail
    assert second.skipped and second.status == "not run"
    time.sleep(max(0.0, started + 3.5 - time.monotonic()))
    assert not (tmp_path / "survived").exists()


def test_missing_tool_and_bad_quoting_are_reported_not_raised(
    tmp_path: Path, env: dict[str, str]
) -> None:
    report = run_validation(
        ["no-such-tool-xyz --check", "echo 'unbalanced"], worktree=tmp_path, env=env, timeout_s=20
    )
    missing, unbalanced = report.results
    assert missing.exit_code == 127 and "`no-such-tool-xyz` was not found" in missing.output_tail
    assert unbalanced.exit_code is None and "No closing quotation" in unbalanced.output_tail
    # No code change can install a tool, so the policy does not retry.
    assert validation_outcome(report, 0, 3, "draft") == "draft"


def test_credentials_are_dropped_from_the_environment(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "GITHUB_TOKEN": "ghp_secretvalue", "NPM_TOKEN": "npm-secret"}
    report = run_validation(["env"], worktree=tmp_path, env=env, timeout_s=20)
    assert report.passed
    assert "secret" not in report.results[0].output_tail


def result(passed: bool, *, exit_code: int = 1) -> CommandResult:
    return CommandResult("pytest -q", 0 if passed else exit_code, 1.0, "")


@pytest.mark.parametrize(
    ("passed", "rounds_used", "rounds_allowed", "on_failure", "expected"),
    [
        (True, 0, 2, "draft", "pass"),
        (True, 2, 2, "fail", "pass"),
        (False, 0, 2, "draft", "retry"),
        (False, 1, 2, "fail", "retry"),
        (False, 2, 2, "draft", "draft"),
        (False, 2, 2, "fail", "fail"),
        (False, 0, 0, "draft", "draft"),
        (False, 0, 0, "fail", "fail"),
    ],
)
def test_outcome_policy(
    passed: bool, rounds_used: int, rounds_allowed: int, on_failure: str, expected: str
) -> None:
    report = ValidationReport((result(True), result(passed)))
    assert validation_outcome(report, rounds_used, rounds_allowed, on_failure) == expected  # type: ignore[arg-type]


def test_empty_report_passes_and_says_so() -> None:
    report = ValidationReport()
    assert report.passed
    assert validation_outcome(report, 0, 2, "fail") == "pass"
    assert report.render_markdown() == "No validation commands are configured."


def test_outcome_rejects_an_unknown_failure_mode() -> None:
    with pytest.raises(ValueError):
        validation_outcome(ValidationReport((result(False),)), 0, 1, "ignore")  # type: ignore[arg-type]
