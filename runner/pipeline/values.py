"""Name what one stage hands to the next: plain frozen values, serializable for Temporal.

One word, one meaning, across the package:

- *changes* (:class:`runner.generators.base.Changes`) is what a generator wrote;
- *pushed* is a commit on GitHub, with what the PR body will say of it
  (:class:`Pushed`, :class:`RoundPushed`);
- a *round* is a feedback round (an ``/agent`` comment, a review, a failing CI run);
  a validation failure fed back to the generator is a *try* (``generate_try_2``);
- a *run* is one job in flight (:class:`runner.pipeline.job.JobRun`); executors run jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from runner.core.feedback import FeedbackItem, RoundRecord, Spent
from runner.core.task import TaskNames
from runner.forge.base import Issue, PullRequest
from runner.generators.base import Changes

OutcomeStatus = Literal["succeeded", "failed", "retrying", "waiting", "skipped", "lost", "released"]
#: The stages of the line, in order; an executor may run each as its own step.
Stage = Literal["intake", "change", "publish", "round_intake", "round_change", "round_publish"]
STAGES: tuple[Stage, ...] = ("intake", "change", "publish")
#: The stages of one feedback round (the second entry), in order.
ROUND_STAGES: tuple[Stage, ...] = ("round_intake", "round_change", "round_publish")


@dataclass(frozen=True)
class Outcome:
    """How a job (or one stage of it) ended, as the executor records it."""

    status: OutcomeStatus
    pr_url: str | None = None
    error: str | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """What intake hands on: the issue as it was read and approved, and where its target lives.

    The task is parsed again from ``issue`` where a stage starts on its own:
    parsing is pure, and the issue snapshot is what trust was checked on."""

    issue: Issue
    clone_url: str
    base: str


@dataclass(frozen=True)
class Validated:
    """What generate-guard-validate hands to the push: the changes, and what validation said."""

    changes: Changes
    validation_md: str | None = None
    draft: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pushed:
    """What the change stage hands to publishing: the pushed commit and what the PR body says of it.

    Plain values only (serializable): the transcript stays on the machine that
    generated, so only its path and an excerpt travel."""

    names: TaskNames
    existing: PullRequest | None
    head: str
    changes: Changes  # with transcript=None
    validation_md: str | None = None
    draft: bool = False
    notes: tuple[str, ...] = ()
    excerpt: str | None = None
    transcript: str | None = None


@dataclass(frozen=True)
class Rounds:
    """What intake hands on when a processed task has feedback waiting: where its rounds go.

    The history is the ledger's record of handled items, or (under Temporal)
    the one the PR body carries; ``ran`` says whether an item not handled
    before came through, so a retry of a recorded round still edits the comment."""

    plan: Plan
    names: TaskNames
    pull: PullRequest | None
    history: tuple[RoundRecord, ...] = ()
    first_usage: dict[str, Any] = field(default_factory=dict)
    pending: tuple[tuple[str, dict[str, Any]], ...] = ()
    ran: bool = False


@dataclass(frozen=True)
class Round:
    """What a round's intake hands to its change: a writer's item, numbered, within the task's budgets."""

    rounds: Rounds
    item: FeedbackItem
    text: str
    number: int
    spent: Spent
    fingerprint: str = ""  # a CI round: the failure it is to fix (runner.core.ci.fingerprint)


@dataclass(frozen=True)
class RoundPushed:
    """What a round's change hands to its publish: the record of its pushed commit, or why there is none.

    Like :class:`Pushed`, it ends with the commit on GitHub: publishing needs
    nothing of the workspace that made it."""

    record: RoundRecord
    notes: tuple[str, ...] = ()


#: What a stage hands to the next (see :meth:`runner.pipeline.Pipeline.run_stage`).
StageValue = Plan | Pushed | Round | RoundPushed
