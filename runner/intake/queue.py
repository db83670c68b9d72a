"""Queue GitHub's news in the ledger: the dispatch poll, and the one intake for issues and feedback.

The poll (a conditional request, cheap on the rate limit) and webhook deliveries
(:mod:`runner.intake.webhooks`) both go through :meth:`LedgerIntake.offer`, which only records
tasks in the ledger; the thread executor's workers claim them from there
(:class:`runner.executors.threads.ThreadExecutor`). The ledger's enqueue and requeue are atomic,
so the poll, a webhook and another replica seeing the same issue at once queue it once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from runner.config import Settings
from runner.core import policy
from runner.core.feedback import FeedbackItem
from runner.core.task import body_hash, task_id_of
from runner.errors import LedgerUnavailable, RunnerError
from runner.forge.base import Forge, Issue
from runner.intake.feedback_poll import FeedbackPoll
from runner.ledger.base import TERMINAL, Ledger, TaskKey
from runner.metrics import Metrics


class LedgerIntake:
    """What the poll and webhooks offer, queued in the ledger once; ``wake`` is set when work was queued."""

    def __init__(
        self,
        *,
        settings: Settings,
        forge: Forge,
        ledger: Ledger,
        clock: Callable[[], datetime],
        log: Any,
        metrics: Metrics,
        wake: threading.Event,
        on_issue: Callable[[Issue], None],
    ) -> None:
        self.forge = forge
        self.ledger = ledger
        self.clock = clock
        self.log = log
        self.metrics = metrics
        self._wake = wake
        self._on_issue = on_issue
        self._paused = False  # intake paused while the ledger is down (logged once each way)
        #: Every dispatch repository (DISPATCH_REPO, DISPATCH_REPOS); ``repo`` is the first.
        self.repos = settings.require_dispatch_repos()
        self.repo = self.repos[0]
        self.labels = policy.Labels(settings.trigger_label, settings.processed_label, settings.failed_label)
        self.feedbacks = {repo: FeedbackPoll(settings=settings, forge=forge, repo=repo, clock=clock, log=log)
                          for repo in self.repos}
        self.feedback = self.feedbacks[self.repo]

    def poll(self) -> int:
        """Queue every eligible issue of every dispatch repository; re-queue finished ones whose
        result label was removed.

        In a fleet (DISPATCH_REPOS) one repository that GitHub refuses (an outage, a rate
        limit, an app uninstalled) is logged and skipped; the others are polled all the same.
        The poll fails only when every repository failed."""
        if self.paused():
            return 0
        started = time.monotonic()
        queued, seen, failed = 0, 0, []
        for repo in self.repos:
            try:
                issues = self.forge.list_dispatch_issues(repo, self.labels.trigger)
            except RunnerError as exc:
                if len(self.repos) == 1:
                    raise
                failed.append(exc)
                self.log.warning("could not poll a dispatch repository; the others go on", repo=repo,
                                 error=str(exc), error_type=type(exc).__name__)
                continue
            seen += len(issues)
            for issue in issues:
                try:
                    queued += self.offer(issue)
                except LedgerUnavailable:
                    raise  # the whole poll is retried; no issue is at fault
                except Exception as exc:  # one issue must never stop the others (DESIGN: trust boundaries)
                    self.log.exception("could not queue issue; the others go on", issue=issue.number,
                                       error_type=type(exc).__name__)
        if failed and len(failed) == len(self.repos):
            raise failed[0]
        queued += self.poll_feedback()
        self.metrics.poll_done(time.monotonic() - started, seen)
        return queued

    def poll_feedback(self) -> int:
        """Find new `/agent` comments and review comments (see :class:`FeedbackPoll`), record them once."""
        pulls = self.ledger.pull_tasks()
        offered = 0
        for repo, feedback in self.feedbacks.items():
            mine = [(key, url) for key, url in pulls if key.dispatch_repo.lower() == repo.lower()]
            offered += sum(self._record_feedback(key, item) for key, item in feedback.poll(mine))
        self.ledger.wake_for_feedback(now=self.clock())  # a crash between recording and queueing
        return offered

    def offer_feedback(self, item: FeedbackItem, *, pulls: Sequence[tuple[TaskKey, str]] | None = None) -> int:
        """The one intake for a comment or review seen by the poll or a webhook.

        Records it once in the ledger when it is a trigger on a task's issue or PR; the
        author's write access is checked when its round runs, so a non-writer's item
        gets no reaction and no run."""
        feedback = self._feedback_for(item)
        routed = feedback.route(item, (lambda: pulls) if pulls is not None else self.ledger.pull_tasks)
        return self._record_feedback(*routed) if routed is not None else 0

    def _feedback_for(self, item: FeedbackItem) -> FeedbackPoll:
        """The feedback intake of the item's dispatch repository (the first one for a PR's comment)."""
        return next((f for repo, f in self.feedbacks.items() if repo.lower() == item.repo.lower()), self.feedback)

    def _record_feedback(self, key: TaskKey, item: FeedbackItem) -> int:
        if not self.ledger.add_feedback(key, item.key, item.to_json(), now=self.clock()):
            return 0
        self.log.info("feedback queued", issue=key.issue_number, feedback=item.key, author=item.author)
        self._wake.set()
        return 1

    def offer(self, issue: Issue) -> int:
        """The one intake for an issue seen by the poll or a webhook: queue it when it is work.

        The ledger's enqueue and requeue are atomic, so the poll and a webhook seeing the
        same issue at once queue it once; a worker claims it under a lease. The listing
        may be stale, so a finished task is re-queued only when a fresh look shows
        that a person removed its result label (see :meth:`_rerun_requested`)."""
        if not policy.should_process(issue, self.labels)[0]:
            return 0
        self._on_issue(issue)  # the status page shows queued tasks' titles
        queued = self._enqueue(issue)
        if queued:
            self._wake.set()
        return queued

    def _enqueue(self, issue: Issue) -> int:
        key = TaskKey(self._dispatch_repo_of(issue), issue.number)
        now = self.clock()
        if self.ledger.enqueue(key, task_id=task_id_of(issue.body), body_hash=body_hash(issue.body), now=now):
            self.log.info("task queued", issue=issue.number)
            return 1
        record = self.ledger.get(key)
        if record is None or record.status not in TERMINAL or not self._rerun_requested(key.dispatch_repo, issue.number):
            return 0
        # Fenced on the attempt we saw finish: another replica may have re-run it meanwhile.
        if self.ledger.requeue(key, now=now, attempt=record.attempt):
            self.log.info("re-run requested", issue=issue.number, previous=record.status)
            return 1
        return 0

    def _dispatch_repo_of(self, issue: Issue) -> str:
        """The configured spelling of the issue's dispatch repository (ledger keys must agree)."""
        return next((r for r in self.repos if r.lower() == issue.repo.lower()), self.repo)

    def _rerun_requested(self, repo: str, number: int) -> bool:
        """Whether a person removed the result label of a finished task, asked after it finished.

        The listing may predate the finish: taken while the job ran, it shows
        the issue without its result label, and re-queueing on it would run a
        finished task again. So look again. The pipeline labels the issue before
        it records the finish, and the record was read before this request, so
        a result label missing now was removed after the task finished.
        """
        issue = self.forge.get_issue(repo, number)
        return policy.should_process(issue, self.labels)[0]

    def paused(self) -> bool:
        """While the ledger's breaker is open, intake pauses: no poll lists GitHub or queues anything
        (issue #29). Claims go on as the breaker's probes (the thread executor's ``_claim_while_free``)."""
        breaker = getattr(self.ledger, "breaker", None)
        paused = breaker is not None and not breaker.up
        if paused != self._paused:
            self._paused = paused
            if paused:
                self.log.warning("intake paused: the ledger database is unavailable; tasks in flight go on")
            else:
                self.log.info("intake resumed: the ledger database is back")
        return paused
