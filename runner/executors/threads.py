"""Find work and hand it to workers: poll the dispatch repo, queue tasks, claim and run jobs.

The poll (a conditional request, cheap on the rate limit) and webhook deliveries
(:mod:`runner.intake.webhooks`) both go through :meth:`ThreadExecutor.offer`, which only records
tasks in the ledger (:class:`runner.intake.queue.LedgerIntake`); workers claim them from the
ledger. So any number of threads and replicas can share the work, and a task whose worker died
is picked up again once its lease expires.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from runner.config import Settings
from runner.core.feedback import FeedbackItem
from runner.core.task import body_hash, task_id_of
from runner.errors import LedgerHeld, PermissionDenied, RunnerError
from runner.forge.base import Forge, Issue
from runner.intake.queue import LedgerIntake
from runner.ledger.base import Job, Ledger, TaskKey
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
        self._slots = threading.BoundedSemaphore(settings.workers)
        self._active: dict[TaskKey, Job] = {}
        self._active_lock = threading.Lock()
        self._wake = threading.Event()  # set when work was queued or a job finished: claim now
        self._poller: threading.Thread | None = None
        self._interrupt = interrupt or (lambda: None)  # cuts every wait on GitHub short
        self._turn = 0  # a fleet claims round its dispatch repositories, from this one
        self.intake = LedgerIntake(
            settings=settings, forge=forge, ledger=ledger, clock=clock, log=log, metrics=self.metrics,
            wake=self._wake, on_issue=lambda issue: self.pipeline.deps.hooks.call("on_issue", issue=issue))
        #: Every dispatch repository (DISPATCH_REPO, DISPATCH_REPOS); ``repo`` is the first.
        self.repos, self.repo, self.labels = self.intake.repos, self.intake.repo, self.intake.labels
        self.feedbacks, self.feedback = self.intake.feedbacks, self.intake.feedback

    # -- intake (runner.intake.queue) ------------------------------------------------

    def poll(self) -> int:
        """Queue every eligible issue of every dispatch repository, and new feedback."""
        return self.intake.poll()

    def poll_feedback(self) -> int:
        return self.intake.poll_feedback()

    def offer(self, issue: Issue) -> int:
        return self.intake.offer(issue)

    def offer_feedback(self, item: FeedbackItem, *, pulls: Sequence[tuple[TaskKey, str]] | None = None) -> int:
        return self.intake.offer_feedback(item, pulls=pulls)

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

    def _claim_while_free(self, stop: threading.Event) -> None:
        while not stop.is_set() and self._slots.acquire(blocking=False):
            try:
                job = self._claim_next()
            except LedgerHeld:  # the ledger is down and this was not the probe's turn: nothing was sent
                self._slots.release()
                self.intake.paused()
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


