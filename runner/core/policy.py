"""Decide, purely, whether and how the runner may act: one `should_*` before each side effect."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from runner.errors import (
    ForgeError,
    LabelerNotTrusted,
    RateLimited,
    RerunNotTrusted,
    RunnerError,
    TargetNotAllowed,
    TextNotApproved,
    WorkspaceError,
)
from runner.forge.base import Issue, IssueTrail, PullRequest

TRUSTED_PERMISSIONS = frozenset({"admin", "maintain", "write"})


def is_writer(permission: str | None) -> bool:
    """Whether a role may approve work: write, maintain or admin."""
    return permission in TRUSTED_PERMISSIONS


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


@dataclass(frozen=True)
class Approval:
    """Who approved an issue's text and who touched it since, read from its history.

    ``labeler`` added the trigger label most recently (None when the label is
    gone); ``rerun_by`` last removed a result label after that, asking for a
    re-run; ``editors`` changed the body at or after the labeling moment (a
    tie counts as after: GitHub's timestamps have one-second resolution).
    """

    labeler: str | None
    labeled_at: str | None
    rerun_by: str | None
    rerun_label: str | None
    editors: tuple[str | None, ...]
    complete: bool

    def people(self) -> frozenset[str]:
        """Every login whose permission the checks need."""
        names = [self.labeler, self.rerun_by, *self.editors]
        return frozenset(n for n in names if n)


def approval(trail: IssueTrail, labels: Labels) -> Approval:
    """Read the labeling, re-run and edit facts from an issue's history (pure)."""
    events = sorted(enumerate(trail.label_events), key=lambda item: (item[1].at, item[0]))
    labeler = labeled_at = rerun_by = rerun_label = None
    results = {labels.processed.lower(), labels.failed.lower()}
    for _, event in events:
        name = event.label.lower()
        if name == labels.trigger.lower():
            if event.action == "labeled":
                labeler, labeled_at, rerun_by, rerun_label = event.actor, event.at, None, None
            else:
                labeler = labeled_at = rerun_by = rerun_label = None
        elif name in results and event.action == "unlabeled" and labeled_at is not None:
            rerun_by, rerun_label = event.actor, event.label
    editors = tuple(e.editor for e in trail.edits if labeled_at is not None and e.at >= labeled_at)
    # An incomplete history only matters when the body was edited after the label.
    after_label = trail.last_edited_at is not None and labeled_at is not None and trail.last_edited_at >= labeled_at
    return Approval(labeler, labeled_at, rerun_by, rerun_label, editors,
                    complete=trail.complete or not after_label)


def check_approval(
    facts: Approval,
    permissions: Mapping[str, str],
    labels: Labels,
    repo: str,
    *,
    while_running: bool = False,
) -> None:
    """Refuse unless writers approved the text: labeled it, asked for the re-run, and made every edit since.

    ``permissions`` maps logins (lower-case) to roles; a missing login counts
    as no access. ``while_running`` words the refusal for the check right
    before the push.
    """
    def role(login: str | None) -> str | None:
        return permissions.get(login.lower()) if login else None

    stopped = " The runner stopped before pushing anything." if while_running else ""
    if facts.labeler is None:
        if while_running:
            raise LabelerNotTrusted(f"The `{labels.trigger}` label was removed while the task ran.{stopped}")
        raise LabelerNotTrusted(
            f"The runner could not find who added the `{labels.trigger}` label, so it cannot check their access."
        )
    check_labeler(facts.labeler, role(facts.labeler), labels.trigger, repo)
    if facts.rerun_by is not None or facts.rerun_label is not None:
        if not is_writer(role(facts.rerun_by)):
            who = f"@{facts.rerun_by}" if facts.rerun_by else "A deleted account"
            raise RerunNotTrusted(
                f"{who} removed the `{facts.rerun_label}` label to run the task again, but has "
                f"`{role(facts.rerun_by) or 'no'}` permission on {repo}; a re-run needs write access."
            )
    if not facts.complete:
        raise TextNotApproved(
            "The issue body was edited more often than the runner can check, after the "
            f"`{labels.trigger}` label was added, so it cannot tell who wrote the text.{stopped}"
        )
    for editor in facts.editors:
        if is_writer(role(editor)):
            continue
        who = f"@{editor} (`{role(editor) or 'no'}` permission)" if editor else "A deleted account"
        if while_running:
            raise TextNotApproved(
                f"{who} edited the issue body while the task ran, after @{facts.labeler} approved "
                f"it by adding the `{labels.trigger}` label.{stopped}"
            )
        raise TextNotApproved(
            f"{who} edited the issue body after @{facts.labeler} added the `{labels.trigger}` "
            "label, so the text is not the text a writer approved."
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


RetryDecision = Literal["retry", "wait", "dead"]


# -- THE retry decision: one policy for every executor and every stage -------------------------
#
# Two kinds of failure. A *task failure* says something about the task (a patch that does not
# apply, no change, validation, a crashed agent, the cost cap, a bug): it spends one of
# MAX_ATTEMPTS. An *outage* (``error.outage``: a transient error that names the service that is
# down) says nothing about the task: the task waits for the service, with capped backoff, for up
# to TRANSIENT_RETRY_HOURS, and never spends an attempt or labels `agent-failed` meanwhile.


def retry_decision(error: RunnerError, failures: int, max_attempts: int, *,
                   waited_s: float = 0.0, wait_limit_s: float = float("inf")) -> RetryDecision:
    """``wait`` for an outage (until ``wait_limit_s``), ``retry`` a transient task failure
    until the attempt budget is spent, ``dead`` otherwise.

    ``failures`` counts this one (``job.failures + 1``) when the error is a task failure;
    ``waited_s`` is how long the task has been waiting for the service so far. Whether an
    error is transient, and which service it names, are properties of its class
    (:mod:`runner.errors`), never a string match."""
    if error.outage:
        return "wait" if waited_s < wait_limit_s else "dead"
    if error.transient and failures < max_attempts:
        return "retry"
    return "dead"


def retry_in_place(error: RunnerError) -> bool:
    """Whether ``error`` is a blip of GitHub or of git transport that a retry inside its stage may cure."""
    return isinstance(error, ForgeError | WorkspaceError) and error.transient


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": uniform(c/2, c), c = min(cap, base * 2**(attempt-1)).

    Half of the delay is guaranteed so a flapping dependency gets real rest;
    the other half spreads replicas apart."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(ceiling / 2, ceiling)


#: The longest a waiting task sleeps between two looks: a task is back within about this
#: (plus one poll) of the service's return, the way a breaker's probes are capped at 60 s.
WAIT_CAP_S = 60.0


def retry_delay(error: RunnerError, failures: int, *, base: float, cap: float,
                rng: random.Random | None = None) -> float:
    """How long a task waits before its next attempt: the backoff, or longer when GitHub says so.

    For an outage ``failures`` is the number of waits so far, and the backoff is
    capped at :data:`WAIT_CAP_S` (or ``cap``, if smaller)."""
    if error.outage:
        cap = min(cap, WAIT_CAP_S)
    delay = backoff_delay(failures, base=base, cap=cap, rng=rng)
    if isinstance(error, RateLimited):
        delay = max(delay, error.retry_after)
    return delay


def describe_wait(seconds: float) -> str:
    """A duration a person reads at a glance: 45 s, 12 min, 3 h 5 min."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def outage_sentence(error: RunnerError, waited_s: float, limit_hours: float) -> str:
    """The true reason a task stopped waiting: which service, for how long, and what to do."""
    service = error.service or "A service"
    return (f"{service[0].upper()}{service[1:]} has been unavailable for {describe_wait(waited_s)}, longer than "
            f"the runner waits (TRANSIENT_RETRY_HOURS={limit_hours:g}). The last error: {error.message}")


def repeated_failure_sentence(failures: int, last_error: str | None) -> str:
    """Why a task that keeps failing stops: its last real error, or its worker dying each time."""
    if last_error:
        return (f"The task failed {failures} times (MAX_ATTEMPTS); the last failure: {last_error}")
    return (f"The task was attempted {failures} times and its worker stopped each time without "
            "finishing (killed, out of memory, or timed out).")
