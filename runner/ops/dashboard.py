"""Keep the dashboard issue up to date, Renovate-style, and retry the failed tasks a writer ticks.

With DASHBOARD_ISSUE=true the runner keeps one issue in the dispatch
repository (found by its marker and label, so a restart edits the same one)
that lists running, failed and recent tasks (:mod:`runner.core.dashboard`).
Its edits are optional writes: at most one every DASHBOARD_EVERY_SECONDS
(never more than one a minute), only when the text changed, and only from
write budget that no task needs. Right before an edit it reads the issue
again, so that a box ticked in the meantime is acted on, not lost. A ticked
box retries its task only when everyone who edited the issue since the
runner last did has write access; otherwise the ticks are ignored and the
next edit clears them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from runner.config import Settings
from runner.core.dashboard import MARKER, TITLE, render_dashboard, ticked
from runner.core.progress import WRITES_PER_TASK
from runner.errors import RunnerError
from runner.forge.base import Forge, Issue
from runner.ledger.base import Ledger, TaskKey

LABEL = "agent-runner-dashboard"
WRITERS = frozenset({"admin", "maintain", "write"})
MIN_EVERY_S = 60.0


class Dashboard:
    """One dispatch repository's dashboard issue; :meth:`tick` is called at every poll."""

    def __init__(self, *, settings: Settings, forge: Forge, ledger: Ledger | None,
                 document: Callable[[], Mapping[str, Any]], now: Callable[[], datetime], log: Any,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.forge = forge
        self.ledger = ledger
        self.document = document
        self.now = now
        self.log = log
        self.clock = clock
        self.repo = settings.require_dispatch_repo()
        self.every_s = max(MIN_EVERY_S, settings.dashboard_every_seconds)
        self.number: int | None = None
        self._last_write: float | None = None

    def run(self, stop: threading.Event, interval_s: float) -> None:
        """Tick every ``interval_s`` until stopped; a failure is logged and tried again next time."""
        while not stop.wait(interval_s):
            try:
                self.tick()
            except RunnerError as exc:
                self.log.warning("dashboard not updated; will try again", error=str(exc))

    def tick(self) -> str:
        """Act on ticked boxes, then edit the issue if it is due, changed and affordable; say what happened."""
        doc = self.document()
        issue = self._find()
        if issue is not None:
            self._retry_ticked(issue)
            doc = self.document()  # the retried tasks are queued now
        body = render_dashboard(doc)
        if issue is not None and issue.body == body:  # a box left ticked (ignored) is a change: it is cleared
            return "unchanged"
        if self._last_write is not None and self.clock() - self._last_write < self.every_s:
            return "not due"
        if not self._spare(doc):
            return "no spare budget"
        if issue is None:
            self.number = self.forge.create_issue(self.repo, TITLE, body, [LABEL])
            self._last_write = self.clock()
            self.log.info("dashboard issue opened", issue=self.number)
            return "created"
        fresh = self.forge.get_issue(self.repo, issue.number)  # Renovate's rule: a box ticked meanwhile counts
        if ticked(fresh.body) - ticked(issue.body):
            self._retry_ticked(fresh)
            body = render_dashboard(self.document())
        self.forge.edit_issue_body(self.repo, issue.number, body)
        self._last_write = self.clock()
        return "edited"

    # -- internals -------------------------------------------------------------------

    def _find(self) -> Issue | None:
        if self.number is not None:
            return self.forge.get_issue(self.repo, self.number)
        for issue in self.forge.list_dispatch_issues(self.repo, LABEL):
            if MARKER in issue.body:
                self.number = issue.number
                return issue
        return None

    def _spare(self, doc: Mapping[str, Any]) -> bool:
        """Whether one more write fits in the hour besides what every waiting and running task needs."""
        s = self.settings
        if self.forge.write_wait(self.repo) > 0:
            return False
        needed = (self.forge.writes_used(self.repo) + WRITES_PER_TASK * (len(doc["queued"]) + len(doc["running"]))
                  + s.github_write_reserve + 1)
        return needed <= s.github_writes_per_hour

    def _retry_ticked(self, issue: Issue) -> list[int]:
        boxes = ticked(issue.body)
        if not boxes:
            return []
        who = self._editors_since_mine(issue.number)
        if who is None:
            self.log.warning("dashboard boxes ticked by someone without write access; ignored",
                             issues=sorted(boxes))
            return []
        retried = [n for n in sorted(boxes) if self._retry(n)]
        if retried:
            self.log.info("retry requested on the dashboard", issues=retried, by=sorted(who))
        return retried

    def _editors_since_mine(self, number: int) -> set[str] | None:
        """Who edited the issue since the runner last did; None unless every one has write access."""
        trail = self.forge.issue_trail(self.repo, number)
        if not trail.complete:
            return None
        me = self.forge.authenticated_login(self.repo).lower()
        people: set[str | None] = set()
        for edit in trail.edits:  # newest first, as GitHub lists userContentEdits (timestamps tie within a second)
            if (edit.editor or "").lower() == me:
                break
            people.add(edit.editor)
        if not people or None in people:
            return None
        logins = {p for p in people if p is not None}
        if any(self.forge.permission(self.repo, login) not in WRITERS for login in logins):
            return None
        return logins

    def _retry(self, number: int) -> bool:
        """Re-queue a failed task and clear its result label, as `agent-runner retry` does."""
        if self.ledger is None:
            return False
        key = TaskKey(self.repo, number)
        record = self.ledger.get(key)
        if record is None or record.status != "dead":
            return False
        for label in (self.settings.failed_label, self.settings.processed_label):
            self.forge.remove_label(self.repo, number, label)
        return self.ledger.requeue(key, now=self.now(), attempt=record.attempt)
