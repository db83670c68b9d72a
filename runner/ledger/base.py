"""Describe the durable record of every task, and the lease arithmetic, purely.

The ledger is the source of truth for "who works on what". A claim takes a
runnable task in one atomic statement and bumps ``attempt``. The attempt is
the fencing token: it only ever grows, and a worker that heartbeats, finishes
or releases with a stale attempt gets :class:`runner.errors.LeaseLost`.

The state machine (every arrow is one atomic SQL statement)::

      enqueue
         │
         ▼       claim           complete
      queued ───────────► running ────────► succeeded
       ▲   ◄──────────── │  ▲  │ │
       │      release    │  │  │ └── fail(retry_at=None) ──► dead
       │                 │  │  └──── fail(retry_at=t) ─────► failed
       │                 └──┘                                 │
       │      claim after the lease expired                   │ claim once
       │      (a takeover: failures += 1)                     ▼ t <= now
       │                                                   running
       └──── requeue (failures := 0) ◄── succeeded | failed | dead

Every claim does ``attempt += 1``.

- ``queued``: due, waiting for a worker. Tasks are claimed in the order they
  became due: ``next_attempt_at`` (set by a requeue), else ``created_at``.
- ``running``: a worker holds the lease until ``lease_expires_at``.
- ``failed``: the last attempt failed with ``last_error``, or waited for a
  service that is down (``wait``: ``waiting_on`` names it, ``waits`` counts it,
  ``failures`` does not); it runs again at
  ``next_attempt_at``. Not terminal: it is the "backing off" state, so that
  `agent-runner status` shows which tasks are waiting for a retry.
- ``succeeded`` and ``dead`` are terminal. Only :meth:`Ledger.requeue` (a
  person removed the ``processed``/``agent-failed`` label) leaves them.

``attempt`` counts claims and never goes down, so it stays a valid fencing
token across requeues. ``failures`` counts attempts that ended badly
(``fail`` or an abandoned lease taken over) since the last requeue; the
caller compares it with ``MAX_ATTEMPTS`` (see :func:`runner.core.policy.retry_decision`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, runtime_checkable

Status = Literal["queued", "running", "succeeded", "failed", "dead"]
STATUSES: tuple[Status, ...] = ("queued", "running", "succeeded", "failed", "dead")
TERMINAL: frozenset[str] = frozenset({"succeeded", "dead"})


@dataclass(frozen=True)
class TaskKey:
    """A task is identified by the dispatch issue that carries it."""

    dispatch_repo: str
    issue_number: int

    def __str__(self) -> str:
        return f"{self.dispatch_repo}#{self.issue_number}"


@dataclass(frozen=True)
class Job:
    """A claimed task: valid while ``attempt`` is current (no one has taken it over).

    ``failures`` is how many earlier attempts ended badly since the last
    requeue; an abandoned lease counts, so a task that crashes its worker
    every time still runs out of attempts.
    """

    key: TaskKey
    attempt: int
    owner: str
    lease_expires_at: datetime
    task_id: str | None = None
    failures: int = 0
    #: Outages waited out so far, apart from failures (they spend no attempt).
    waits: int = 0
    #: The service the task has been waiting for since ``waiting_since`` (None: not waiting).
    waiting_on: str | None = None
    waiting_since: datetime | None = None
    #: The last real error of a failed attempt (not a wait, not a lease taken over).
    task_error: str | None = None
    #: The branch the task owns for good (``owner/repo:branch``), once recorded.
    branch: str | None = None


@dataclass(frozen=True)
class TaskRecord:
    """One row of the ledger, as `agent-runner status` shows it.

    ``lease_owner`` is kept after the task leaves ``running``: it names the
    worker that ran it last. ``lease_expires_at`` is only set while running.
    """

    key: TaskKey
    task_id: str | None
    body_hash: str | None
    status: Status
    attempt: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    next_attempt_at: datetime | None
    pr_url: str | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    stage_seconds: Mapping[str, float] = field(default_factory=dict)
    transcript: str | None = None
    failures: int = 0
    waits: int = 0
    waiting_on: str | None = None
    waiting_since: datetime | None = None
    task_error: str | None = None
    branch: str | None = None


@dataclass(frozen=True)
class DeliveryRecord:
    """One webhook delivery the runner accepted, keyed by GitHub's ``X-GitHub-Delivery``.

    ``outcome`` says what intake did with it: ``queued`` (a task was queued or
    re-queued), ``ignored`` (nothing to do), or ``feedback`` (a comment or review
    kept, with ``payload``, for the feedback rounds to pick up)."""

    delivery_id: str
    event: str
    action: str | None
    repo: str | None
    issue_number: int | None
    outcome: str
    received_at: datetime
    payload: Mapping[str, Any] | None = None


class JobLedger(Protocol):
    """What the pipeline records about the one job it runs: the ledger calls an executor must answer.

    Both lease ledgers implement it; under Temporal, the running activity does
    (``runner.executors.temporal.activities.ActivityLedger``), so the pipeline never knows
    which executor runs it."""

    def heartbeat(self, job: Job, *, now: datetime, lease_seconds: float) -> Job: ...

    def complete(self, job: Job, *, now: datetime, pr_url: str | None, stage_seconds: Mapping[str, float],
                 transcript: str | None = None) -> None: ...

    def fail(self, job: Job, *, now: datetime, error: str, retry_at: datetime | None,
             stage_seconds: Mapping[str, float] | None = None, transcript: str | None = None) -> None: ...

    def wait(self, job: Job, *, now: datetime, error: str, service: str, retry_at: datetime,
             stage_seconds: Mapping[str, float] | None = None) -> None: ...

    def own_branch(self, job: Job, branch: str, *, now: datetime) -> bool: ...

    def release(self, job: Job, *, now: datetime) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Workload:
    """What is waiting in the whole deployment (every replica): the writes the next hour needs."""

    queued: int  # queued, or failed with a retry due
    running: int
    pending_rounds: int  # feedback items not yet handled


@runtime_checkable
class WorkloadSource(Protocol):
    """A ledger that can say how much work waits, across replicas (SQLite and PostgreSQL)."""

    def workload(self) -> Workload: ...


class FeedbackInbox(Protocol):
    """The feedback items of each task (runner.core.feedback): recorded once, handled once, under the lease.

    An item is keyed by where it was posted and its GitHub id, so a redelivery, the
    next poll or an edit of a handled comment finds it known and adds nothing.
    Recording an item queues its task if it had finished; completing a job whose
    task has pending items leaves it queued, so the next claim runs their rounds
    one after another, never two at once."""

    def add_feedback(self, key: TaskKey, item_key: str, item: Mapping[str, Any], *, now: datetime) -> bool: ...

    def add_own_comment(self, key: TaskKey, item_key: str, *, now: datetime) -> bool: ...

    def wake_for_feedback(self, *, now: datetime, key: TaskKey | None = None) -> Sequence[TaskKey]: ...

    def pending_feedback(self, key: TaskKey) -> Sequence[tuple[str, dict[str, Any]]]: ...

    def handled_feedback(self, key: TaskKey) -> Sequence[tuple[str, str, int | None, dict[str, Any]]]: ...

    def finish_feedback(self, job: Job, item_key: str, *, status: str, round_no: int | None,
                        outcome: Mapping[str, Any], now: datetime) -> None: ...

    def record_usage(self, job: Job, usage: Mapping[str, Any], *, now: datetime) -> None: ...

    def usage_of(self, key: TaskKey) -> dict[str, Any]: ...

    def pull_tasks(self) -> Sequence[tuple[TaskKey, str]]: ...


class Ledger(FeedbackInbox, Protocol):
    """One interface, two backends (SQLite, PostgreSQL).

    Every ``now`` is a timezone-aware UTC datetime passed by the caller; the
    ledger never reads the database clock, so tests can fake time. Every
    method that takes a :class:`Job` is fenced on (key, attempt, owner,
    status ``running``) and raises :class:`runner.errors.LeaseLost` otherwise.
    A lease that expired but was not yet taken over is still honoured: the
    attempt, not the clock, decides who owns the task.
    """

    def enqueue(self, key: TaskKey, *, task_id: str | None, body_hash: str | None, now: datetime) -> bool:
        """Record a task as ``queued`` if the ledger does not know it yet.

        Returns True when a row was created. A known task is left exactly as it
        is, whatever its body hash: editing a processed issue changes nothing
        until a person asks for a re-run, which the caller turns into
        :meth:`requeue`."""
        ...

    def requeue(
        self,
        key: TaskKey,
        *,
        now: datetime,
        task_id: str | None = None,
        body_hash: str | None = None,
        attempt: int | None = None,
    ) -> bool:
        """Put a ``succeeded``/``failed``/``dead`` task back to ``queued``, due from now.

        Resets ``failures`` (a fresh attempt budget) and ``last_error``; keeps
        ``attempt`` (the fencing token) and ``pr_url``. ``task_id`` and
        ``body_hash`` replace the stored ones when given (the issue may have been
        edited). With ``attempt``, only a record still at that attempt is
        re-queued (the one the caller saw finish, not a newer run). Returns
        False, changing nothing, for unknown, queued or running tasks."""
        ...

    def claim(self, owner: str, *, now: datetime, lease_seconds: float, repo: str | None = None) -> Job | None:
        """Atomically take the runnable task that has been due the longest (of dispatch ``repo``, if given).

        Runnable: ``queued`` or ``failed`` with ``next_attempt_at`` null or
        <= now, or ``running`` with ``lease_expires_at`` <= now (taking over an
        abandoned lease counts one failure). Sets the lease, bumps the attempt.
        Returns None when nothing is runnable."""
        ...

    def claim_key(self, key: TaskKey, owner: str, *, now: datetime, lease_seconds: float) -> Job | None:
        """Claim one specific task, for `agent-runner process N`.

        Like :meth:`claim`, but ignores ``next_attempt_at`` (a person asked to
        run it now). Returns None when the task is unknown, terminal, or held by
        a live lease; requeue a terminal task first."""
        ...

    def heartbeat(self, job: Job, *, now: datetime, lease_seconds: float) -> Job:
        """Extend the lease to now + lease_seconds and return the updated Job."""
        ...

    def complete(
        self,
        job: Job,
        *,
        now: datetime,
        pr_url: str | None,
        stage_seconds: Mapping[str, float],
        transcript: str | None = None,
    ) -> None:
        """Mark ``succeeded``, store the PR URL, the per-stage durations of this
        attempt and the transcript path (None keeps the stored one); clear
        ``last_error``."""
        ...

    def fail(
        self,
        job: Job,
        *,
        now: datetime,
        error: str,
        retry_at: datetime | None,
        stage_seconds: Mapping[str, float] | None = None,
        transcript: str | None = None,
    ) -> None:
        """Record a failed attempt: ``failed`` until ``retry_at``, or ``dead`` when
        it is None. ``error`` must already be redacted. Counts one failure."""
        ...

    def wait(self, job: Job, *, now: datetime, error: str, service: str, retry_at: datetime,
             stage_seconds: Mapping[str, float] | None = None) -> None:
        """Record an attempt stopped by an outage of ``service``: ``failed`` until ``retry_at``,
        counting one wait and no failure; ``waiting_since`` keeps when the waiting began."""
        ...

    def own_branch(self, job: Job, branch: str, *, now: datetime) -> bool:
        """Record ``branch`` (``owner/repo:name``) as the task's for good, before its first push.

        True when it is the task's now (or already was); False, changing nothing, when the
        task owns another branch or another task owns this one."""
        ...

    def release(self, job: Job, *, now: datetime) -> None:
        """Give the task back as ``queued`` and due now (shutdown), counting no failure."""
        ...

    def get(self, key: TaskKey) -> TaskRecord | None:
        """The record of one task, or None when the ledger does not know it."""
        ...

    def list(self, *, limit: int = 100) -> Sequence[TaskRecord]:
        """The most recently updated records first."""
        ...

    def record_delivery(self, delivery: DeliveryRecord) -> bool:
        """Remember a webhook delivery; False (changing nothing) when its id is already known,
        which is how a redelivery becomes a no-op."""
        ...

    def deliveries(self, *, outcome: str | None = None, limit: int = 100) -> Sequence[DeliveryRecord]:
        """Recorded deliveries, oldest first; ``outcome="feedback"`` is the feedback rounds' inbox."""
        ...

    def close(self) -> None:
        """Close every connection; the ledger must not be used afterwards."""
        ...


def lease_expiry(now: datetime, lease_seconds: float) -> datetime:
    """When a lease taken (or renewed) at ``now`` runs out."""
    return now + timedelta(seconds=lease_seconds)


def require_utc(value: datetime, name: str = "now") -> datetime:
    """The same instant in UTC; refuse naive datetimes, since replicas compare times."""
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value!r}")
    return value.astimezone(UTC)
