"""Keep what feedback rounds need in the ledger: each item once, its outcome, and the task's usage so far.

Part of :class:`runner.ledger.store.SqlLedger`. An item is recorded once (a
redelivery, the next poll or an edit of a handled comment changes nothing),
queues its finished task again, and is marked handled under the job's lease
(:mod:`runner.core.feedback` has the rules).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from runner.ledger.base import Job, TaskKey
from runner.ledger.database import SqlDatabase


class FeedbackRecords(SqlDatabase):
    """Feedback items and the runner's own comments, the first run's usage, and the tasks with a PR."""

    def add_feedback(self, key: TaskKey, item_key: str, item: Mapping[str, Any], *, now: datetime) -> bool:
        """Record a feedback item of a known task once, and queue the task if it had finished.

        False, changing nothing, when the item is already known (a redelivery, the next
        poll, an edit of a handled comment) or the ledger has no such task."""
        added = bool(self._watched(self._write, self._sql.add_feedback, {
            **self._key(key), "item_key": item_key, "item": self._json_in(item), "now": self._now(now)}))
        if added:
            self.wake_for_feedback(now=now, key=key)
        return added

    def add_own_comment(self, key: TaskKey, item_key: str, *, now: datetime) -> bool:
        """Record a comment the runner posted on the task's issue: known, so it never becomes feedback."""
        return bool(self._write(self._sql.add_own_comment, {
            **self._key(key), "item_key": item_key, "item": self._json_in({"own": True}),
            "outcome": self._json_in({"own": True}), "now": self._now(now)}))

    def wake_for_feedback(self, *, now: datetime, key: TaskKey | None = None) -> Sequence[TaskKey]:
        """Queue finished tasks that have pending feedback (all of them, or ``key``)."""
        params = self._key(key) if key else {"repo": None, "issue": None}
        rows = self._watched(self._write, self._sql.wake_for_feedback, {**params, "now": self._now(now)})
        return [TaskKey(r, int(n)) for r, n in rows]

    def pending_feedback(self, key: TaskKey) -> Sequence[tuple[str, dict[str, Any]]]:
        """(item key, item) of the task's unhandled feedback, oldest first."""
        return [(k, self._json_out(v)) for k, v in self._watched(self._read, self._sql.pending_feedback, self._key(key))]

    def handled_feedback(self, key: TaskKey) -> Sequence[tuple[str, str, int | None, dict[str, Any]]]:
        """(item key, status, round, outcome) of every handled item, in round order."""
        rows = self._watched(self._read, self._sql.handled_feedback, self._key(key))
        return [(k, st, None if r is None else int(r), self._json_out(o)) for k, st, r, o in rows]

    def finish_feedback(self, job: Job, item_key: str, *, status: str, round_no: int | None,
                        outcome: Mapping[str, Any], now: datetime) -> None:
        """Mark one item handled, fenced on the job's lease (LeaseLost otherwise)."""
        self._fenced(self._sql.finish_feedback, job, now, item_key=item_key, status=status, round=round_no,
                     outcome=self._json_in(outcome))

    def record_usage(self, job: Job, usage: Mapping[str, Any], *, now: datetime) -> None:
        """Store what the task's first run cost, so budgets cover every round."""
        self._fenced(self._sql.record_usage, job, now, usage=self._json_in(usage))

    def usage_of(self, key: TaskKey) -> dict[str, Any]:
        rows = self._watched(self._read, self._sql.usage_of, self._key(key))
        return self._json_out(rows[0][0]) if rows and rows[0][0] is not None else {}

    def pull_tasks(self) -> Sequence[tuple[TaskKey, str]]:
        """(task, PR URL) of every task that has opened a pull request."""
        return [(TaskKey(r, int(n)), url) for r, n, url in self._watched(self._read, self._sql.pull_tasks, {})]
