"""Run the pipeline's stages as Temporal activities: heartbeats go to Temporal, outcomes become results.

The pipeline records a job through four ledger calls (heartbeat, complete,
fail, release). :class:`ActivityLedger` implements those on top of the
running activity, so the pipeline is the same straight line under every
executor:

- ``heartbeat`` is an activity heartbeat; a cancelled activity (its heartbeat
  timed out, or the worker is shutting down) is a lost lease;
- ``complete`` and ``fail`` record what the activity returns: a failure with a
  ``retry_at`` becomes a retryable ``ApplicationError`` carrying that delay,
  so Temporal's retry policy, not our ledger, schedules the next attempt.

The activity attempt is the fencing token, as the ledger's ``attempt`` is.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from runner.core.feedback import FeedbackItem
from runner.errors import LeaseLost
from runner.executors.temporal.branches import BranchClaims
from runner.executors.temporal.types import (
    ROUND_ACTIVITIES,
    STAGE_ACTIVITIES,
    StageResult,
    TaskRequest,
    TaskResult,
)
from runner.ledger.base import DeliveryRecord, Job, TaskKey, lease_expiry
from runner.metrics import Metrics
from runner.pipeline import (
    Outcome,
    Pipeline,
    Plan,
    Pushed,
    Round,
    RoundPushed,
    Stage,
    StageValue,
)

#: The error type of an attempt that failed transiently; Temporal retries it.
RETRYING = "TaskRetrying"
#: The error type of an attempt stopped by an outage: Temporal retries it, and it spends no attempt.
WAITING = "TaskWaiting"


def tally_of(attempt: int, details: Sequence[Any]) -> dict[str, Any]:
    """What the attempts before this one left: task failures and waits, counted apart (issue #29).

    An attempt that did not settle (its worker died, its heartbeat timed out) counts one
    failure, as a ledger takeover does."""
    last = dict(details[0]) if details and isinstance(details[0], dict) else {}
    tally: dict[str, Any] = {"failures": int(last.get("failures", 0)), "waits": int(last.get("waits", 0)),
                             "waiting_on": last.get("waiting_on"), "waiting_since": last.get("waiting_since"),
                             "task_error": last.get("task_error")}
    if attempt > 1 and not last.get("settled", False):
        tally["failures"] += 1 if last else attempt - 1
    return tally


def settled_tally(job: Job, slot: _Slot, now: datetime) -> dict[str, Any]:
    """The tally after this attempt ended in a wait (no failure) or a retried failure (one more)."""
    if slot.status == "waiting":
        since = job.waiting_since or now
        return {"failures": job.failures, "waits": job.waits + 1, "waiting_on": slot.service,
                "waiting_since": since.isoformat(), "task_error": job.task_error, "settled": True}
    return {"failures": job.failures + 1, "waits": job.waits, "waiting_on": None, "waiting_since": None,
            "task_error": slot.error, "settled": True}
#: How many webhook delivery ids one process remembers.
DELIVERY_MEMORY = 10_000


@dataclass
class _Slot:
    """What one running activity has recorded so far."""

    heartbeat: Callable[[], None]
    cancelled: Callable[[], bool]
    status: str | None = None
    pr_url: str | None = None
    error: str | None = None
    retry_at: datetime | None = None
    service: str | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    #: What the next attempt needs to know (see :func:`tally_of`), sent with every heartbeat.
    tally: dict[str, Any] = field(default_factory=dict)
    #: Feedback rounds: the item the workflow's signal brought, and what earlier runs used.
    pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    first_usage: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)


class ActivityLedger:
    """The ledger calls of the pipeline, answered by the activity that runs it (one per process)."""

    def __init__(self) -> None:
        self._slots: dict[tuple[TaskKey, int], _Slot] = {}
        self._deliveries: dict[str, None] = {}
        self._lock = threading.Lock()
        #: The branch claims, through the worker's Temporal client (set while a worker runs).
        self.claims: BranchClaims | None = None

    @contextmanager
    def bind(self, job: Job) -> Iterator[_Slot]:
        """Route this job's ledger calls to the current activity while the pipeline runs it."""
        # The lease keeper heartbeats from its own thread; the activity context lives in a
        # context variable, so it runs the heartbeat inside a copy of this thread's context.
        ctx = contextvars.copy_context()
        slot = _Slot(heartbeat=lambda: None, cancelled=lambda: ctx.run(activity.is_cancelled))
        # Every heartbeat carries the attempt's tally (failures, waits), which Temporal hands to the
        # next attempt: so waits and task failures are counted apart, as the ledger does.
        slot.heartbeat = lambda: ctx.run(activity.heartbeat, dict(slot.tally))
        with self._lock:
            self._slots[(job.key, job.attempt)] = slot
        try:
            yield slot
        finally:
            with self._lock:
                self._slots.pop((job.key, job.attempt), None)

    def _slot_of(self, key: TaskKey) -> _Slot | None:
        """The running attempt of a task (the workflow runs one activity of a task at a time)."""
        with self._lock:
            found = [(attempt, slot) for (k, attempt), slot in self._slots.items() if k == key]
        return max(found, key=lambda pair: pair[0])[1] if found else None

    def _slot(self, job: Job) -> _Slot:
        with self._lock:
            slot = self._slots.get((job.key, job.attempt))
        if slot is None:
            raise LeaseLost(f"Attempt {job.attempt} of {job.key} is no longer running here.")
        return slot

    def heartbeat(self, job: Job, *, now: datetime, lease_seconds: float) -> Job:
        slot = self._slot(job)
        if slot.cancelled():
            raise LeaseLost("Temporal cancelled this attempt (its heartbeat timed out, or the worker "
                            "is shutting down); another worker takes the task over.")
        slot.heartbeat()
        return replace(job, lease_expires_at=lease_expiry(now, lease_seconds))

    def complete(self, job: Job, *, now: datetime, pr_url: str | None, stage_seconds: Mapping[str, float],
                 transcript: str | None = None) -> None:
        slot = self._slot(job)
        slot.status, slot.pr_url, slot.stage_seconds = "succeeded", pr_url, dict(stage_seconds)

    def own_branch(self, job: Job, branch: str, *, now: datetime) -> bool:
        """Record ``branch`` as the task's for good, in Temporal (a claim workflow whose id is the name).

        Without a worker's client (a stage run bare, in a unit test) every name is free."""
        claims = self.claims
        if claims is None:
            return True
        return claims.claim(branch, f"{job.key.dispatch_repo.lower()}#{job.key.issue_number}")

    def wait(self, job: Job, *, now: datetime, error: str, service: str, retry_at: datetime,
             stage_seconds: Mapping[str, float] | None = None) -> None:
        slot = self._slot(job)
        slot.status, slot.error, slot.retry_at, slot.service = "waiting", error, retry_at, service
        slot.stage_seconds = dict(stage_seconds or {})

    def fail(self, job: Job, *, now: datetime, error: str, retry_at: datetime | None,
             stage_seconds: Mapping[str, float] | None = None, transcript: str | None = None) -> None:
        slot = self._slot(job)
        slot.status = "failed" if retry_at is not None else "dead"
        slot.error, slot.retry_at, slot.stage_seconds = error, retry_at, dict(stage_seconds or {})

    def release(self, job: Job, *, now: datetime) -> None:
        self._slot(job).status = "queued"

    # -- the feedback inbox: the item in hand comes from the workflow's signal queue ------------

    def pending_feedback(self, key: TaskKey) -> Sequence[tuple[str, dict[str, Any]]]:
        slot = self._slot_of(key)
        return list(slot.pending) if slot is not None else []

    def handled_feedback(self, key: TaskKey) -> Sequence[tuple[str, str, int | None, dict[str, Any]]]:
        """None here: the PR body's rounds record is the durable history (runner.core.feedback.recorded)."""
        return []

    def finish_feedback(self, job: Job, item_key: str, *, status: str, round_no: int | None,
                        outcome: Mapping[str, Any], now: datetime) -> None:
        slot = self._slot(job)
        slot.pending = [(k, item) for k, item in slot.pending if k != item_key]

    def record_usage(self, job: Job, usage: Mapping[str, Any], *, now: datetime) -> None:
        self._slot(job).usage = dict(usage)

    def usage_of(self, key: TaskKey) -> dict[str, Any]:
        slot = self._slot_of(key)
        return dict(slot.first_usage) if slot is not None else {}

    def add_feedback(self, key: TaskKey, item_key: str, item: Mapping[str, Any], *, now: datetime) -> bool:
        raise AssertionError("under Temporal, feedback items are signals to the workflow (TemporalExecutor)")

    def add_own_comment(self, key: TaskKey, item_key: str, *, now: datetime) -> bool:
        return False  # under Temporal the hidden marker alone tells the runner's comments apart

    def wake_for_feedback(self, *, now: datetime, key: TaskKey | None = None) -> Sequence[TaskKey]:
        return []

    def pull_tasks(self) -> Sequence[tuple[TaskKey, str]]:
        return []  # TemporalExecutor reads the task PRs from the visibility API

    def record_delivery(self, delivery: DeliveryRecord) -> bool:
        """Webhook deliveries under Temporal: remembered per process, deduplicated for good by workflow id.

        A redelivery that reaches another replica, or this one after a restart,
        offers an issue whose workflow runs already (Temporal rejects the start)
        or closed after the issue last changed (the runner skips it)."""
        with self._lock:
            if delivery.delivery_id in self._deliveries:
                return False
            self._deliveries[delivery.delivery_id] = None
            while len(self._deliveries) > DELIVERY_MEMORY:
                self._deliveries.pop(next(iter(self._deliveries)))
        return True

    def close(self) -> None:
        """Nothing to close: Temporal holds the durable state."""


class TaskActivities:
    """The stage activities a worker hosts; one instance per process, shared by its activity threads."""

    def __init__(self, *, pipeline: Pipeline, ledger: ActivityLedger, owner: str,
                 clock: Callable[[], datetime], metrics: Metrics, log: Any) -> None:
        self.pipeline = pipeline
        self.ledger = ledger
        self.owner = owner
        self.clock = clock
        self.metrics = metrics
        self.log = log
        self.running = 0
        self._running_lock = threading.Lock()

    def all(self) -> list[Callable[..., StageResult]]:
        """The activities to register, one per pipeline stage and one per stage of a feedback round."""
        return [self.intake, self.change, self.publish, self.round_intake, self.round_change, self.round_publish]

    @activity.defn(name=STAGE_ACTIVITIES[0])
    def intake(self, request: TaskRequest) -> StageResult:
        """Read, parse and check the issue."""
        return self._stage(request, "intake")

    @activity.defn(name=STAGE_ACTIVITIES[1])
    def change(self, request: TaskRequest, plan: Plan) -> StageResult:
        """Generate, validate and push the change: its result is the commit on GitHub."""
        return self._stage(request, "change", plan)

    @activity.defn(name=STAGE_ACTIVITIES[2])
    def publish(self, request: TaskRequest, plan: Plan, pushed: Pushed) -> StageResult:
        """Open or update the PR, report on the issue and label it."""
        return self._stage(request, "publish", plan, pushed)

    @activity.defn(name=ROUND_ACTIVITIES[0])
    def round_intake(self, request: TaskRequest, item: dict[str, Any], usage: dict[str, Any]) -> StageResult:
        """A feedback round's intake: the issue read and re-checked, the item's author, limits and budgets."""
        key = FeedbackItem.from_json(item).key
        return self._stage(request, "round_intake", pending=[(key, item)], usage=usage)

    @activity.defn(name=ROUND_ACTIVITIES[1])
    def round_change(self, request: TaskRequest, round_: Round) -> StageResult:
        """Generate, validate and push the round's commit (once, by its trailer): its result is that commit."""
        return self._stage(request, "round_change", round_)

    @activity.defn(name=ROUND_ACTIVITIES[2])
    def round_publish(self, request: TaskRequest, round_: Round, pushed: RoundPushed) -> StageResult:
        """Record the round in the PR body and edit the one result comment."""
        return self._stage(request, "round_publish", round_, pushed)

    def _stage(self, request: TaskRequest, stage: Stage, *values: StageValue,
               pending: list[tuple[str, dict[str, Any]]] | None = None,
               usage: dict[str, Any] | None = None) -> StageResult:
        """Run one stage once; raise to let Temporal retry. ``pending``: a round's item, for its intake."""
        info = activity.info()
        attempt = info.attempt
        tally = tally_of(attempt, info.heartbeat_details)
        job = Job(key=TaskKey(request.dispatch_repo, request.issue_number), attempt=attempt, owner=self.owner,
                  lease_expires_at=lease_expiry(self.clock(), request.heartbeat_timeout_s),
                  task_id=request.task_id, failures=int(tally["failures"]), waits=int(tally["waits"]),
                  waiting_on=tally.get("waiting_on"),
                  waiting_since=datetime.fromisoformat(tally["waiting_since"]) if tally.get("waiting_since")
                  else None, task_error=tally.get("task_error"))
        self.metrics.job_started()
        with self._running_lock:
            self.running += 1
        try:
            with self.ledger.bind(job) as slot:
                slot.pending, slot.first_usage = list(pending or []), dict(usage or {})
                slot.tally = {**tally, "settled": False}  # a worker that dies now counts one failure
                slot.heartbeat()
                value, stages = self.pipeline.run_stage(job, stage, *values)
                if slot.status in ("waiting", "failed"):
                    slot.tally = settled_tally(job, slot, self.clock())
                    slot.heartbeat()
        finally:
            with self._running_lock:
                self.running -= 1
            self.metrics.job_finished()
        if not isinstance(value, Outcome):  # the task goes on in the next stage
            self.metrics.stages_done(stages)
            # A round's intake that found the task to be work again: the task's own stages follow.
            then = STAGE_ACTIVITIES[1:] if stage == "round_intake" and isinstance(value, Plan) else None
            return StageResult(value=value, stage_seconds=stages, attempt=attempt, then=then)
        self.metrics.job_done(value.status, 0.0, stages)
        if value.status == "lost" or slot.status == "queued":
            raise ApplicationError(f"Attempt {attempt} stopped before finishing: {value.error or 'released'}.",
                                   type="LeaseLost")
        if slot.status in ("failed", "waiting"):
            delay = max(0.0, ((slot.retry_at or self.clock()) - self.clock()).total_seconds())
            raise ApplicationError(slot.error or "The attempt failed; it will be retried.",
                                   type=WAITING if slot.status == "waiting" else RETRYING,
                                   next_retry_delay=timedelta(seconds=delay))
        return StageResult(result=TaskResult(status=slot.status or "succeeded", pr_url=slot.pr_url or value.pr_url,
                                             error=slot.error, attempt=attempt, owner=self.owner,
                                             stage_seconds=dict(slot.stage_seconds or stages),
                                             outcome=value.status, usage=dict(slot.usage)),
                           stage_seconds=stages, attempt=attempt)
