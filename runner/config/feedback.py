"""Decide what follows a generation: validation and its tries, then feedback and CI rounds on the PR."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from runner.config.base import CsvList, Group


class FeedbackSettings(Group):
    """Feedback rounds (docs/feedback.md): `/agent` comments, reviews and failed checks push to the same PR."""

    feedback_command: str = Field(default="/agent", min_length=1, max_length=40, pattern=r"^\S+$")
    """A comment whose first visible line starts with this (on the dispatch issue or the task's PR) asks for a
    feedback round: one more commit to the same PR. Only authors with write access count (docs/feedback.md)."""
    max_feedback_rounds: int = Field(default=5, ge=0, le=100)
    """Feedback rounds per task; at the limit the runner says so instead of running. `MAX_TOKENS_PER_TASK` and
    `MAX_COST_USD_PER_TASK` cover the first run and every round together."""
    fix_failed_checks: bool = True
    """When every check on a task PR's head commit has completed and one failed, run a CI round with the failing
    checks' summaries, annotations and logs (docs/feedback.md, "CI rounds"). `fix_failed_checks: false` in a target
    repository's `.agent-runner.yml` turns it off there."""
    max_ci_rounds: int = Field(default=2, ge=0, le=20)
    """CI rounds per PR; at the limit the runner stops, says what is still red and labels the issue `agent-ci-failed`."""
    ci_log_max_bytes: int = Field(default=8000, ge=500, le=200_000)
    """How much of each failing check's log (its `##[error]` neighbourhood, or its tail) the model is shown."""


class ValidationSettings(Group):
    """VALIDATE_COMMANDS, their time limit, and what a failure does."""

    validate_commands: CsvList = ()
    """Commands run in the worktree after generation, comma-separated, for example `pytest -q,ruff check .`."""
    validation_timeout_seconds: float = Field(default=600.0, gt=0)
    """Time limit of each validation command."""
    validation_rounds: int = Field(default=2, ge=0, le=10)
    """How many times a failed validation is fed back to the generator."""
    on_validation_failure: Literal["draft", "fail"] = "draft"
    """`draft`: open the PR as a draft with the failure report; `fail`: mark the task failed."""
