"""Find work and hand it to Temporal: poll the dispatch repository, start workflows, host workers.

:class:`TemporalExecutor` has the public surface of :class:`runner.executors.threads.ThreadExecutor`
(``poll``, ``run_once``, ``process_issue``, ``serve``), so the CLI and the
tests drive either one the same way. The differences are Temporal's:

- submitting a task is starting its workflow under a deterministic id; a
  second start while one runs is rejected by Temporal and counted as a no-op;
- a closed workflow is run again only when its issue is eligible again and the
  issue changed (``updated_at``) after the run closed: a stale listing or an old
  webhook redelivery never re-runs a task that just finished; a person removing
  the result label does;
- workers take activities from the task queue; a killed worker's activity
  times out on its heartbeat and another worker retries it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client, TLSConfig, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from runner.config import Settings
from runner.core import policy
from runner.core.feedback import FeedbackItem
from runner.core.task import task_id_of
from runner.errors import LedgerUnavailable, RunnerError
from runner.executors.temporal.activities import TaskActivities
from runner.executors.temporal.branches import BranchClaims
from runner.executors.temporal.types import (
    FEEDBACK_SIGNAL,
    WORKFLOW_TYPE,
    TaskRequest,
    TaskResult,
    workflow_id,
)
from runner.executors.temporal.workflow import BranchClaimWorkflow, DispatchTaskWorkflow
from runner.forge.base import Forge, Issue
from runner.intake.feedback_poll import FeedbackPoll
from runner.ledger.base import Status, TaskKey, TaskRecord
from runner.metrics import Metrics
from runner.pipeline import Outcome

#: Extra time an activity may take beyond generation and validation (clone, push, GitHub).
ACTIVITY_SLACK_S = 600.0
#: How many tasks' PRs the feedback poll watches (the newest; visibility lists them).
FEEDBACK_TASKS = 500
#: GitHub's timestamps are whole seconds (see _submit).
STALE_MARGIN = timedelta(seconds=1)
_CLOSED_STATUS: dict[WorkflowExecutionStatus, Status] = {
    WorkflowExecutionStatus.FAILED: "dead",
    WorkflowExecutionStatus.TERMINATED: "dead",
    WorkflowExecutionStatus.TIMED_OUT: "dead",
    WorkflowExecutionStatus.CANCELED: "dead",
}


async def connect(settings: Settings) -> Client:
    """Connect to TEMPORAL_ADDRESS, or raise LedgerUnavailable naming the setting."""
    tls: TLSConfig | bool = False
    if settings.temporal_tls or settings.temporal_api_key is not None or settings.temporal_tls_client_cert_file:
        tls = TLSConfig(
            client_cert=_read(settings.temporal_tls_client_cert_file),
            client_private_key=_read(settings.temporal_tls_client_key_file),
            server_root_ca_cert=_read(settings.temporal_tls_server_ca_file),
        )
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    try:
        return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace,
                                    tls=tls, api_key=api_key)
    except (RuntimeError, RPCError) as exc:
        raise LedgerUnavailable(
            f"Could not reach Temporal at `{settings.temporal_address}` (TEMPORAL_ADDRESS), namespace "
            f"`{settings.temporal_namespace}` (TEMPORAL_NAMESPACE): {exc}. Start the server, or fix the "
            "setting; for Temporal Cloud also set TEMPORAL_API_KEY or the TEMPORAL_TLS_* files."
        ) from None


class TemporalExecutor:
    """The poll loop and the worker of one process, with EXECUTOR=temporal."""

    def __init__(self, *, settings: Settings, forge: Forge, activities: TaskActivities | None,
                 clock: Callable[[], datetime], owner: str, log: Any, metrics: Metrics) -> None:
        self.settings = settings
        self.forge = forge
        self.activities = activities
        self.clock = clock
        self.owner = owner
        self.log = log
        self.metrics = metrics
        self.repo = settings.require_dispatch_repo()
        self.labels = policy.Labels(settings.trigger_label, settings.processed_label, settings.failed_label)
        self.feedback = FeedbackPoll(settings=settings, forge=forge, repo=self.repo, clock=clock, log=log)

    # -- the Executor interface (runner.executors.base) ------------------------------

    def poll(self) -> int:
        """Start a workflow for every eligible issue; return how many were started."""
        async def go() -> int:
            client = await connect(self.settings)
            return sum(started for _, started in await self._poll(client))
        return asyncio.run(go())

    def run_once(self) -> list[Outcome]:
        """Start workflows for what the poll finds, host a worker until they have all finished."""
        async def go() -> list[Outcome]:
            client = await connect(self.settings)
            found = await self._poll(client)
            async with self._worker(client):
                results = [await self._result(handle) for handle, _ in found]
            return [_outcome(r) for r in results]
        return asyncio.run(go())

    def process_issue(self, number: int) -> Outcome | None:
        """Run exactly one issue now (a new run if it had finished); None while another run holds it."""
        async def go() -> Outcome | None:
            client = await connect(self.settings)
            issue = await asyncio.to_thread(self.forge.get_issue, self.repo, number)
            handle, started = await self._submit(client, number, task_id_of(issue.body), listed_at=None)
            if not started:
                return None
            async with self._worker(client):
                return _outcome(await self._result(handle))
        return asyncio.run(go())

    def serve(self, stop: threading.Event, *, poll: bool = True) -> None:
        """Host a worker (and, with ``poll``, poll every POLL_INTERVAL_SECONDS) until ``stop`` is set."""
        async def go() -> None:
            client = await connect(self.settings)
            async with self._worker(client):
                next_poll = 0.0
                while not stop.is_set():
                    self.metrics.loop_tick()
                    if poll and time.monotonic() >= next_poll:
                        next_poll = time.monotonic() + self.settings.poll_interval_seconds
                        try:
                            await self._poll(client)
                        except RunnerError as exc:
                            self.metrics.poll_failed()
                            self.log.warning("poll failed; will try again", error=str(exc))
                    await asyncio.to_thread(stop.wait, 1.0)
        asyncio.run(go())

    def offer(self, issue: Issue) -> int:
        """The intake a webhook feeds: start the issue's workflow when it is work (see :meth:`_submit`)."""
        if not policy.should_process(issue, self.labels)[0]:
            return 0

        async def go() -> int:
            client = await connect(self.settings)
            _, started = await self._submit(client, issue.number, task_id_of(issue.body),
                                            listed_at=_seen_at(issue, self.clock()))
            return int(started)
        return asyncio.run(go())

    def waiting_on_github(self) -> bool:
        """After serve: the worker has shut down and every activity has ended or been cancelled."""
        return False

    def active_count(self) -> int:
        """Activities running in this process (the in-flight gauge is Temporal's view's twin)."""
        return self.activities.running if self.activities is not None else 0

    # -- status and retry (visibility) --------------------------------------------

    def records(self, *, limit: int = 100) -> list[TaskRecord]:
        """Every task of this dispatch repository that Temporal knows, newest first."""
        async def go() -> list[TaskRecord]:
            return await self._records(await connect(self.settings), limit=limit)
        return asyncio.run(go())

    def offer_feedback(self, item: FeedbackItem) -> int:
        """What a webhook feeds: signal a trigger item to its task's workflow (see :meth:`_signal`)."""
        def pulls() -> list[tuple[TaskKey, str]]:
            return asyncio.run(self._pull_tasks_of(None))
        routed = self.feedback.route(item, pulls)
        if routed is None:
            return 0

        async def go() -> int:
            await self._signal(await connect(self.settings), *routed)
            return 1
        return asyncio.run(go())

    async def _pull_tasks_of(self, client: Client | None) -> list[tuple[TaskKey, str]]:
        """The tasks with a PR, from the visibility API: where feedback on a PR belongs."""
        records = await self._records(client or await connect(self.settings), limit=FEEDBACK_TASKS)
        return [(r.key, r.pr_url) for r in records if r.pr_url]

    async def _records(self, client: Client, *, limit: int) -> list[TaskRecord]:
        prefix = workflow_id(self.repo, 0).rsplit("#", 1)[0] + "#"
        query = f'WorkflowType = "{WORKFLOW_TYPE}" AND WorkflowId STARTS_WITH "{prefix}"'
        seen: dict[str, TaskRecord] = {}
        async for execution in client.list_workflows(query, limit=limit * 4):
            if execution.id in seen:
                continue  # older runs of the same task: the newest comes first
            seen[execution.id] = _record(execution.id, execution.status, execution.start_time,
                                         execution.close_time, await execution.memo(), self.repo)
            if len(seen) >= limit:
                break
        return list(seen.values())

    def retry(self, number: int) -> str:
        """Clear the result label and start a new run, as a person removing the label would."""
        async def go() -> str:
            client = await connect(self.settings)
            handle = client.get_workflow_handle(workflow_id(self.repo, number))
            status = await _status(handle)
            if status == WorkflowExecutionStatus.RUNNING:
                return f"issue #{number} is running now; nothing to do"
            for label in (self.labels.failed, self.labels.processed):
                await asyncio.to_thread(self.forge.remove_label, self.repo, number, label)
            issue = await asyncio.to_thread(self.forge.get_issue, self.repo, number)
            if not policy.should_process(issue, self.labels)[0]:
                return (f"issue #{number} is not labeled `{self.labels.trigger}`; it runs once it is")
            _, started = await self._submit(client, number, task_id_of(issue.body), listed_at=None)
            return f"issue #{number} re-queued as a new workflow run" if started else \
                f"issue #{number} is running now; nothing to do"
        return asyncio.run(go())

    # -- helpers -------------------------------------------------------------------

    async def _poll(self, client: Client) -> list[tuple[WorkflowHandle[Any, TaskResult], bool]]:
        started = time.monotonic()
        listed_at = self.clock()
        issues = await asyncio.to_thread(self.forge.list_dispatch_issues, self.repo, self.labels.trigger)
        found = []
        for issue in issues:
            if not policy.should_process(issue, self.labels)[0]:
                continue
            handle, was_started = await self._submit(client, issue.number, task_id_of(issue.body),
                                                     listed_at=_seen_at(issue, listed_at))
            if handle is not None:
                found.append((handle, was_started))
        pulls = await self._pull_tasks_of(client)
        for key, item in await asyncio.to_thread(lambda: list(self.feedback.poll(pulls))):
            found.append((await self._signal(client, key, item), True))
        self.metrics.poll_done(time.monotonic() - started, len(issues))
        return found  # type: ignore[return-value]

    async def _signal(self, client: Client, key: TaskKey, item: FeedbackItem) -> WorkflowHandle[Any, TaskResult]:
        """Signal a feedback item to the issue's workflow; a closed one gets a new run for its rounds.

        Signal-with-start under the same id: a running workflow only queues the
        item (it drops a key it has seen), a closed one starts again with
        ``rounds_only``, carrying the first run's usage and PR from its memo. A
        plain start of the task is still rejected while any run is open."""
        wid = workflow_id(self.repo, key.issue_number)
        description = await self._describe(client, wid)
        memo = await _memo(description) if description is not None else {}
        request = replace(self._request(key.issue_number, memo.get("task_id"), memo.get("pr_url")),
                          rounds_only=True, usage=dict(memo.get("usage") or {}))
        handle = await client.start_workflow(
            DispatchTaskWorkflow.run, request, id=wid, task_queue=self.settings.temporal_task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            start_signal=FEEDBACK_SIGNAL, start_signal_args=[{"key": item.key, "item": item.to_json()}],
            memo={**memo, "status": "queued", "dispatch_repo": self.repo, "issue": key.issue_number,
                  "kind": "rounds"},
        )
        self.metrics.submitted("feedback")
        self.log.info("feedback signalled", issue=key.issue_number, feedback=item.key, author=item.author,
                      workflow_id=wid)
        return handle  # type: ignore[return-value]

    async def _describe(self, client: Client, wid: str) -> Any:
        try:
            return await client.get_workflow_handle(wid).describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise LedgerUnavailable(f"Temporal could not describe workflow `{wid}`: {exc}") from None
            return None

    async def _submit(self, client: Client, number: int, task_id: str | None, *,
                      listed_at: datetime | None) -> tuple[Any, bool]:
        """Start the issue's workflow; (handle, False) when one already runs, (None, False) when stale."""
        wid = workflow_id(self.repo, number)
        handle = client.get_workflow_handle(wid, result_type=TaskResult)
        description = await self._describe(client, wid)
        memo = await _memo(description) if description is not None else {}
        if description is not None:
            if description.status == WorkflowExecutionStatus.RUNNING:
                self.metrics.submitted("duplicate")
                return handle, False
            closed = description.close_time
            # GitHub's timestamps have whole seconds: a label removed in the second the run
            # closed shows an `updated_at` before the close. Only a close a full second after
            # the snapshot proves it stale; the tie re-runs, and a needless re-run just skips.
            # A run of feedback rounds only says nothing about the task: it never makes a listing stale.
            if listed_at is not None and closed is not None and closed - listed_at >= STALE_MARGIN \
                    and memo.get("kind") != "rounds":
                self.metrics.submitted("stale")
                return None, False
        previous = memo.get("pr_url")
        try:
            handle = await client.start_workflow(
                DispatchTaskWorkflow.run, self._request(number, task_id, previous), id=wid,
                task_queue=self.settings.temporal_task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                memo={"status": "queued", "task_id": task_id, "dispatch_repo": self.repo, "issue": number,
                      "usage": memo.get("usage") or {}, "kind": "task"},
            )
        except WorkflowAlreadyStartedError:
            # Another replica (or a webhook) started it between our look and our start.
            self.metrics.submitted("duplicate")
            return client.get_workflow_handle(wid, result_type=TaskResult), False
        self.metrics.submitted("started")
        self.log.info("task queued" if description is None else "re-run requested", issue=number,
                      workflow_id=wid)
        return handle, True

    def _request(self, number: int, task_id: str | None, previous_pr_url: str | None = None) -> TaskRequest:
        s = self.settings
        return TaskRequest(
            dispatch_repo=self.repo, issue_number=number, task_id=task_id, max_attempts=s.max_attempts,
            heartbeat_timeout_s=s.lease_seconds,
            start_to_close_s=s.generator_timeout_seconds
            + s.validation_timeout_seconds * (s.validation_rounds + 1) + ACTIVITY_SLACK_S,
            step_s=ACTIVITY_SLACK_S,
            retry_base_s=s.retry_base_seconds, retry_max_s=s.retry_max_seconds,
            previous_pr_url=previous_pr_url,
        )

    async def _result(self, handle: WorkflowHandle[Any, TaskResult]) -> TaskResult:
        try:
            return await handle.result()
        except Exception as exc:  # noqa: BLE001 - a workflow that failed, was terminated or timed out
            return TaskResult(status="dead", error=f"The workflow ended without a result: {exc}")

    @asynccontextmanager
    async def _worker(self, client: Client) -> AsyncIterator[Worker]:
        """Host the workflow and the pipeline activity until the block ends, then drain."""
        s = self.settings
        if self.activities is None:
            raise AssertionError("this TemporalExecutor was built without activities; it cannot host a worker")
        with ThreadPoolExecutor(max_workers=s.workers, thread_name_prefix="activity") as pool:
            ledger = self.activities.ledger
            ledger.claims = BranchClaims(client, asyncio.get_running_loop(), task_queue=s.temporal_task_queue)
            worker = Worker(client, task_queue=s.temporal_task_queue,
                            workflows=[DispatchTaskWorkflow, BranchClaimWorkflow],
                            activities=self.activities.all(), activity_executor=pool,
                            max_concurrent_activities=s.workers,
                            graceful_shutdown_timeout=timedelta(seconds=s.shutdown_grace_seconds))
            task = asyncio.create_task(worker.run())
            try:
                yield worker
            finally:
                await worker.shutdown()
                await asyncio.gather(task, return_exceptions=True)
                ledger.claims = None


async def _memo(description: Any) -> Mapping[str, Any]:
    try:
        return dict(await description.memo())
    except (RPCError, ValueError, TypeError):
        return {}


def _outcome(result: TaskResult) -> Outcome:
    status = result.outcome or ("succeeded" if result.status == "succeeded" else "failed")
    return Outcome(status, pr_url=result.pr_url, error=result.error,  # type: ignore[arg-type]
                   stage_seconds=dict(result.stage_seconds))


async def _status(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionStatus | None:
    try:
        return (await handle.describe()).status
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise LedgerUnavailable(f"Temporal could not describe workflow `{handle.id}`: {exc}") from None


def _record(wid: str, status: WorkflowExecutionStatus | None, started: datetime, closed: datetime | None,
            memo: Mapping[str, Any], repo: str) -> TaskRecord:
    """One workflow as a ledger row, so `status` prints Temporal's view in the same table."""
    if status == WorkflowExecutionStatus.RUNNING:
        state: Status = "running"
    elif status == WorkflowExecutionStatus.COMPLETED:
        state = "succeeded" if memo.get("status") == "succeeded" else "dead"
    else:
        state = _CLOSED_STATUS.get(status, "dead") if status is not None else "queued"
    number = int(memo.get("issue") or wid.rsplit("#", 1)[1].split("-")[0])
    return TaskRecord(
        key=TaskKey(str(memo.get("dispatch_repo") or repo), number), task_id=memo.get("task_id"),
        body_hash=None, status=state, attempt=int(memo.get("attempt") or 0),
        lease_owner=memo.get("owner"), lease_expires_at=None, next_attempt_at=None,
        pr_url=memo.get("pr_url"), last_error=memo.get("error"),
        created_at=started.astimezone(UTC), updated_at=(closed or started).astimezone(UTC),
    )


def _seen_at(issue: Issue, fallback: datetime) -> datetime:
    """When this snapshot of the issue was true: its ``updated_at`` (a label change updates it).

    A run that closed after that saw everything the snapshot shows, so the
    snapshot asks for nothing new; a person removing the result label later
    moves ``updated_at`` past the close, which is a re-run request."""
    try:
        return datetime.fromisoformat(issue.updated_at.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return fallback


def _read(path: Any) -> bytes | None:
    return path.read_bytes() if path is not None else None
