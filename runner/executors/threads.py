"""Find work and hand it to workers: poll the dispatch repo, queue tasks, claim and run jobs.

The poll (a conditional request, cheap on the rate limit) and webhook deliveries
(:mod:`runner.intake.webhooks`) both go through :meth:`ThreadExecutor.offer`, which only records
tasks in the ledger; workers claim them from the ledger. So any number of threads and
replicas can share the work, and a task whose worker died is picked up again
once its lease expires.
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
from runner.errors import LedgerHeld, LedgerUnavailable, PermissionDenied, RunnerError
from runner.forge.base import Forge, Issue
from runner.intake.feedback_poll import FeedbackPoll
from runner.ledger.base import TERMINAL, Job, Ledger, TaskKey
from runner.metrics import Metrics
from runner.pipeline import Outcome, Pipeline

#: How often the idle loop claims; a poll that queued work, a finished job or SIGTERM wake it sooner.
IDLE_TICK_S = 1.0
#: Of SHUTDOWN_GRACE_SECONDS, what is kept for releasing leases and exiting.
DRAIN_MARGIN_S = 2.0
#: A fleet does not claim tasks of an installation whose next write would wait longer than this.
FLEET_SKIP_WAIT_S = 30.0


class ThreadExecutor:
    """The poll loop and its worker threads; one per process."""

    def __init__(
        self,
        *,
        settings: Settings,
        forge: Forge,
        ledger: Ledger,
        pipeline: Pipeline,
        clock: Callable[[], datetime],
        owner: str,
        log: Any,
        metrics: Metrics | None = None,
        interrupt: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.forge = forge
        self.ledger = ledger
        self.pipeline = pipeline
        self.clock = clock
        self.owner = owner
        self.log = log
        self.metrics = metrics or Metrics()
        #: Every dispatch repository (DISPATCH_REPO, DISPATCH_REPOS); ``repo`` is the first.
        self.repos = settings.require_dispatch_repos()
        self.repo = self.repos[0]
        self.labels = policy.Labels(settings.trigger_label, settings.processed_label, settings.failed_label)
        self._slots = threading.BoundedSemaphore(settings.workers)
        self._active: dict[TaskKey, Job] = {}
        self._active_lock = threading.Lock()
        self._wake = threading.Event()  # set when work was queued or a job finished: claim now
        self._poller: threading.Thread | None = None
        self._interrupt = interrupt or (lambda: None)  # cuts every wait on GitHub short
        self._turn = 0  # a fleet claims round its dispatch repositories, from this one
        self._paused = False  # intake paused while the ledger is down (logged once each way)
        self.feedbacks = {repo: FeedbackPoll(settings=settings, forge=forge, repo=repo, clock=clock, log=log)
                          for repo in self.repos}
        self.feedback = self.feedbacks[self.repo]

    # -- intake ------------------------------------------------------------------

    def poll(self) -> int:
        """Queue every eligible issue of every dispatch repository; re-queue finished ones whose
        result label was removed.

        In a fleet (DISPATCH_REPOS) one repository that GitHub refuses (an outage, a rate
        limit, an app uninstalled) is logged and skipped; the others are polled all the same.
        The poll fails only when every repository failed."""
        if self._intake_paused():
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
        self.pipeline.deps.hooks.call("on_issue", issue=issue)  # the status page shows queued tasks' titles
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

    # -- running -----------------------------------------------------------------

    def run_once(self) -> list[Outcome]:
        """One pass: poll, then run every job that is due, WORKERS at a time."""
        self.poll()
        outcomes: list[Outcome] = []
        threads: list[threading.Thread] = []
        while True:
            self._slots.acquire()
            job = self.ledger.claim(self.owner, now=self.clock(), lease_seconds=self.settings.lease_seconds)
            if job is None:
                self._slots.release()
                break
            threads.append(self._start(job, outcomes.append))
        for thread in threads:
            thread.join()
        return outcomes

    def process_issue(self, number: int) -> Outcome | None:
        """Run exactly one issue now, re-queueing it if it had finished."""
        key = TaskKey(self.repo, number)
        issue = self.forge.get_issue(self.repo, number)
        now = self.clock()
        if not self.ledger.enqueue(key, task_id=task_id_of(issue.body), body_hash=body_hash(issue.body), now=now):
            self.ledger.requeue(key, now=now)
        job = self.ledger.claim_key(key, self.owner, now=self.clock(), lease_seconds=self.settings.lease_seconds)
        if job is None:
            return None
        return self._run(job)

    def serve(self, stop: threading.Event, *, poll: bool = True) -> None:
        """Poll every POLL_INTERVAL_SECONDS and keep WORKERS jobs running until ``stop`` is set.

        With webhooks on, the poll runs every WEBHOOK_POLL_INTERVAL_SECONDS as the safety
        net. The poll runs in its own thread, so a GitHub that stops answering
        cannot hold up shutdown; a queued delivery, a poll that queued work or a
        finished job wakes the loop at once to claim the next task. Without ``poll``, only
        what webhooks and earlier polls queued is claimed.
        """
        if poll:
            self._poller = threading.Thread(target=self._poll_loop, args=(stop,), name="poll", daemon=True)
            self._poller.start()
        threading.Thread(target=self._wake_on, args=(stop,), name="stop-watch", daemon=True).start()
        while not stop.is_set():
            self.metrics.loop_tick()
            self._wake.clear()  # work queued from here on wakes the wait below at once
            self._claim_while_free(stop)
            self._wake.wait(IDLE_TICK_S)  # retries that fall due are claimed within this
        self._drain()

    def _wake_on(self, stop: threading.Event) -> None:
        stop.wait()
        self._wake.set()

    def _poll_loop(self, stop: threading.Event) -> None:
        """Poll until stopped; a poll stuck on a hung GitHub is simply left behind at shutdown."""
        while not stop.is_set():
            try:
                if self.poll():
                    self._wake.set()
            except PermissionDenied as exc:  # 401/403: waiting does not fix it; /healthz will say so
                self.metrics.poll_failed(auth_error=str(exc))
                self.log.error("GitHub refused the poll; check GITHUB_TOKEN", error=str(exc))
            except RunnerError as exc:
                self.metrics.poll_failed()
                self.log.warning("poll failed; will try again", error=str(exc))
            stop.wait(self.settings.effective_poll_interval)

    def _intake_paused(self) -> bool:
        """While the ledger's breaker is open, intake pauses: no poll lists GitHub or queues anything
        (issue #29). Claims go on as the breaker's probes (see :meth:`_claim_while_free`)."""
        breaker = getattr(self.ledger, "breaker", None)
        paused = breaker is not None and not breaker.up
        if paused != self._paused:
            self._paused = paused
            if paused:
                self.log.warning("intake paused: the ledger database is unavailable; tasks in flight go on")
            else:
                self.log.info("intake resumed: the ledger database is back")
        return paused

    def _claim_while_free(self, stop: threading.Event) -> None:
        while not stop.is_set() and self._slots.acquire(blocking=False):
            try:
                job = self._claim_next()
            except LedgerHeld:  # the ledger is down and this was not the probe's turn: nothing was sent
                self._slots.release()
                self._intake_paused()
                return
            except RunnerError as exc:
                self._slots.release()
                self.log.warning("claim failed; will try again", error=str(exc))
                return
            if job is None:
                self._slots.release()
                return
            self._start(job, lambda _outcome: None)

    def _claim_next(self) -> Job | None:
        """The next job: the oldest due one, or in a fleet the oldest of the next repository in turn.

        A fleet (DISPATCH_REPOS) claims round its dispatch repositories, and skips one whose
        installation cannot write for a while (its hourly write budget spent, or GitHub said
        Retry-After): a worker that took its task would only wait, and one installation out of
        budget must not take every worker from the others.
        """
        lease = self.settings.lease_seconds
        if len(self.repos) == 1:
            return self.ledger.claim(self.owner, now=self.clock(), lease_seconds=lease)
        start = self._turn
        for offset in range(len(self.repos)):
            repo = self.repos[(start + offset) % len(self.repos)]
            try:
                waiting = self.forge.write_wait(repo)
            except RunnerError:
                waiting = 0.0  # the task will say what is wrong with its repository
            if waiting > FLEET_SKIP_WAIT_S:
                continue
            job = self.ledger.claim(self.owner, now=self.clock(), lease_seconds=lease, repo=repo)
            if job is not None:
                self._turn = (start + offset + 1) % len(self.repos)
                return job
        return None

    def _drain(self) -> None:
        """Stop claiming, let running jobs finish for the grace period, then release the rest.

        At the deadline every wait on GitHub (pacer, retry backoff) is cut
        short, and no new request goes out, so a hung GitHub cannot keep the
        process past SHUTDOWN_GRACE_SECONDS.
        """
        deadline = time.monotonic() + max(0.0, self.settings.shutdown_grace_seconds - DRAIN_MARGIN_S)
        while self.active_count() and time.monotonic() < deadline:
            self._wake.wait(0.1)
            self._wake.clear()
        self._interrupt()
        settle = time.monotonic() + min(DRAIN_MARGIN_S / 2, self.settings.shutdown_grace_seconds / 4)
        while self.active_count() and time.monotonic() < settle:  # interrupted jobs release themselves
            time.sleep(0.05)
        with self._active_lock:
            leftovers = list(self._active.values())
        for job in leftovers:
            try:
                self.ledger.release(job, now=self.clock())
                self.log.info("released lease on shutdown", issue=job.key.issue_number)
            except RunnerError as exc:
                self.log.warning("could not release lease", issue=job.key.issue_number, error=str(exc))
        # The poll thread's GitHub calls were cut short above; let it leave before the caller closes
        # the ledger, so it never uses a SQLite connection that another thread is closing (a
        # replica once died of SIGSEGV at exit that way, in the chaos test). A poll stuck on a hung
        # GitHub past this is still left behind.
        poller = self._poller
        if poller is not None:
            poller.join(timeout=DRAIN_MARGIN_S / 2)

    def waiting_on_github(self) -> bool:
        """After serve: whether a job or the poll is still stuck in a call to GitHub."""
        return bool(self.active_count()) or (self._poller is not None and self._poller.is_alive())

    def active_count(self) -> int:
        with self._active_lock:
            return len(self._active)

    def _start(self, job: Job, sink: Callable[[Outcome], None]) -> threading.Thread:
        def work() -> None:
            try:
                sink(self._run(job))
            finally:
                with self._active_lock:
                    self._active.pop(job.key, None)
                self._slots.release()
                self._wake.set()

        with self._active_lock:
            self._active[job.key] = job
        thread = threading.Thread(target=work, name=f"job-{job.key.issue_number}", daemon=True)
        thread.start()
        return thread

    def _run(self, job: Job) -> Outcome:
        self.metrics.job_started()
        started = time.monotonic()
        try:
            outcome = self.pipeline.run(job)
        finally:
            self.metrics.job_finished()
        self.metrics.job_done(outcome.status, time.monotonic() - started, outcome.stage_seconds)
        return outcome


