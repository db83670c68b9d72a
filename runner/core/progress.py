"""Decide whether a progress edit on the result comment may spend a GitHub write.

Writes are the scarce resource: one token (one App installation) may make
about 500 content-creating requests an hour, and a task needs 3 (the PR, the
result comment, the ``processed`` label). A progress edit is *optional
spending*: it is made only from budget that the hour's necessary writes do
not need, and never while other work waits, so that a task makes at most 3
writes whenever anything else is queued or running (issue #23):

- other work waits (another task queued or running anywhere in the
  deployment, or a feedback round pending): no progress edit; the progress is
  shown on the status page, in the logs and the metrics, and the issue gets
  only the final result;
- otherwise the writes used in the trailing hour, plus 3 for every queued or
  running task (this one too), plus the pending feedback rounds, plus a
  reserve, plus this edit, must stay within ``GITHUB_WRITES_PER_HOUR``.

So a lone task on an idle runner shows its progress as before. Pure: the
numbers come from the pacer (writes used) and the ledger (the workload).
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.ledger.base import Workload

#: The writes every task needs: its PR, its result comment, its label.
WRITES_PER_TASK = 3


@dataclass(frozen=True)
class WriteBudget:
    """What the decision weighs; ``workload`` is None when the ledger cannot say (Temporal alone)."""

    used_last_hour: int
    per_hour: int
    reserve: int
    workload: Workload | None


@dataclass(frozen=True)
class ProgressDecision:
    """Whether to post, the reason (a metric label) and the arithmetic behind it (for the debug log)."""

    post: bool
    reason: str
    needed: int  # writes the hour needs, this edit included
    per_hour: int

    @property
    def explanation(self) -> str:
        verdict = "post" if self.post else "skip"
        return f"{verdict}: {self.reason} ({self.needed} of {self.per_hour} writes an hour needed)"


def progress_decision(budget: WriteBudget) -> ProgressDecision:
    """Post a progress edit only for a lone task, and only from spare budget; see the module docstring."""
    work = budget.workload
    active = max(1, work.queued + work.running) if work is not None else 1
    rounds = work.pending_rounds if work is not None else 0
    needed = budget.used_last_hour + WRITES_PER_TASK * active + rounds + budget.reserve + 1
    if work is not None and (active > 1 or rounds > 0):
        reason = "other work waiting"
        return ProgressDecision(False, reason, needed, budget.per_hour)
    if needed > budget.per_hour:
        return ProgressDecision(False, "budget needed", needed, budget.per_hour)
    return ProgressDecision(True, "spare budget", needed, budget.per_hour)
