"""The values that travel through Temporal, and the naming rules; pure, so workflows can import them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

#: The workflow type and the activity names, fixed so that old histories keep replaying.
WORKFLOW_TYPE = "DispatchTask"
#: The workflow type of a branch claim (see runner.executors.temporal.branches): its id is the claimed name.
CLAIM_TYPE = "BranchClaim"
#: One activity per pipeline stage (runner.pipeline.STAGES), run in this order.
STAGE_ACTIVITIES = ("dispatch_intake", "dispatch_change", "dispatch_publish")
#: One activity per stage of a feedback round (runner.pipeline.ROUND_STAGES), the pipeline's
#: second entry; the first takes the item the signal brought.
ROUND_ACTIVITIES = ("dispatch_round_intake", "dispatch_round_change", "dispatch_round_publish")
#: The stages that generate and validate: they get the long start-to-close timeout, the others step_s.
GENERATING = ("dispatch_change", "dispatch_round_change")
#: The signal that brings a feedback item ({"key": ..., "item": FeedbackItem JSON}) to the issue's workflow.
FEEDBACK_SIGNAL = "feedback"
#: Error types Temporal must not retry: the pipeline reports them and returns normally,
#: so these only appear when the activity could not even start the pipeline.
NON_RETRYABLE = ("ConfigError", "TaskSpecError", "PolicyRefused", "PermissionDenied", "NotFound")

_UNSAFE = re.compile(r"[^A-Za-z0-9._/-]")


def workflow_id(dispatch_repo: str, issue_number: int) -> str:
    """The deterministic workflow id of a dispatch issue: a second start of it is rejected.

    Repository names are case-insensitive on GitHub, so the id is lower-cased;
    a short hash of the exact name keeps it unique should the cleaning ever merge two.
    """
    repo = dispatch_repo.strip().lower()
    digest = hashlib.sha256(repo.encode()).hexdigest()[:8]
    return f"agent-runner/{_UNSAFE.sub('_', repo)}#{issue_number}-{digest}"


def claim_id(branch: str) -> str:
    """The workflow id that holds a branch (``owner/repo:name``, the target lower-cased) for one task."""
    return f"agent-runner-branch/{branch}"


@dataclass(frozen=True)
class TaskRequest:
    """What a workflow is started with: the issue, and the timeouts and retries mapped from settings."""

    dispatch_repo: str
    issue_number: int
    task_id: str | None
    max_attempts: int
    heartbeat_timeout_s: float
    #: The start-to-close timeout of the stages that generate (GENERATING); the others get step_s.
    start_to_close_s: float
    retry_base_s: float
    retry_max_s: float
    non_retryable: tuple[str, ...] = NON_RETRYABLE
    #: The PR an earlier run recorded: a re-run that finds the issue done keeps pointing at it.
    previous_pr_url: str | None = None
    #: The start-to-close timeout of the intake and publish stages (GitHub calls only).
    step_s: float = 600.0
    #: A run started by a feedback signal on a closed workflow: rounds only, not the task again.
    rounds_only: bool = False
    #: What the task's first run used (budgets cover it and every round), from the last run's memo.
    usage: dict[str, Any] = field(default_factory=dict)
    #: Carried over continue-as-new: items still queued, and the keys this workflow has seen.
    pending: tuple[dict[str, Any], ...] = ()
    seen: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskResult:
    """How the task ended, as the workflow returns it and `status` shows it."""

    status: str
    pr_url: str | None = None
    error: str | None = None
    attempt: int = 0
    owner: str | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    #: The pipeline's own word for the last attempt: succeeded, failed or skipped.
    outcome: str | None = None
    #: What the first run's generation used, for the budgets of later rounds.
    usage: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageResult:
    """What a stage activity returns: how the task ended in it, or the value the next stage takes.

    ``value`` is a pipeline value (``Plan``, ``Pushed``, ``Round``, ``RoundPushed``)
    as JSON: the workflow passes it on untouched, and the next activity's
    signature types it again. ``then`` names the activities that follow when
    they are not the usual next ones: a round's intake that finds the task to be
    work again (its result label removed) hands on a ``Plan`` to the task's own
    change and publish."""

    result: TaskResult | None = None
    value: Any = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    attempt: int = 0
    then: tuple[str, ...] | None = None
