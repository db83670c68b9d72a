"""Decide, purely, whether and how the runner may act: one `should_*` before each side effect."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from runner.errors import LabelerNotTrusted, RunnerError, TargetNotAllowed
from runner.forge.base import Issue, PullRequest

TRUSTED_PERMISSIONS = frozenset({"admin", "maintain", "write"})


@dataclass(frozen=True)
class Labels:
    """The three labels that drive the runner (names are configurable)."""

    trigger: str = "copilot-agent"
    processed: str = "processed"
    failed: str = "agent-failed"


def should_process(issue: Issue, labels: Labels) -> tuple[bool, str]:
    """Whether an issue is work for us, with the reason when it is not."""
    if issue.is_pull_request:
        return False, "it is a pull request"
    if issue.state != "open":
        return False, "it is closed"
    if labels.trigger not in issue.labels:
        return False, f"it is not labeled `{labels.trigger}`"
    if labels.processed in issue.labels:
        return False, f"it is labeled `{labels.processed}`"
    if labels.failed in issue.labels:
        return False, f"it is labeled `{labels.failed}`"
    return True, "eligible"


def check_target(target_repo: str, allowed: bool, patterns: tuple[str, ...], dispatch_owner: str) -> None:
    if not allowed:
        scope = ", ".join(f"`{p}`" for p in patterns) if patterns else f"`{dispatch_owner}/*` (the default)"
        raise TargetNotAllowed(
            f"The target repository `{target_repo}` is not in the runner's allowlist ({scope})."
        )


def check_labeler(actor: str | None, permission: str | None, trigger: str, repo: str) -> None:
    if actor is None:
        raise LabelerNotTrusted(
            f"The runner could not find who added the `{trigger}` label, so it cannot check their access."
        )
    if permission not in TRUSTED_PERMISSIONS:
        raise LabelerNotTrusted(
            f"@{actor} added the `{trigger}` label but has `{permission or 'no'}` permission on "
            f"{repo}; dispatching work needs write access."
        )


PullAction = Literal["create", "update", "reopen", "merged"]


def pull_action(existing: PullRequest | None) -> PullAction:
    """What to do with the task branch's PR: a merged PR means the task is done."""
    if existing is None:
        return "create"
    if existing.merged:
        return "merged"
    if existing.state == "closed":
        return "reopen"
    return "update"


RetryDecision = Literal["retry", "dead"]


def retry_decision(error: RunnerError, failures: int, max_attempts: int) -> RetryDecision:
    """Transient errors retry until the attempt budget is spent; permanent ones stop now."""
    if error.transient and failures < max_attempts:
        return "retry"
    return "dead"
