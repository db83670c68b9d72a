"""The workflow of one dispatch issue: the pipeline's stages as activities, then its feedback rounds.

Workflow code must be deterministic and runs in Temporal's sandbox, so this
module imports nothing but the pure values in :mod:`runner.executors.temporal.types`.
The stage values (``Plan``, ``Pushed``) pass through it as JSON, untouched.

Feedback items arrive as signals (signal-with-start, so a closed workflow gets
a new run under the same id, with ``rounds_only``). They queue here and run one
round at a time, each as the round's three stage activities (intake, change,
publish), the way the task's first run is split; an item key seen before in this workflow
is dropped, and the PR body's rounds record makes one handled by an earlier run
a no-op. The workflow ends when its queue is empty, and continues as new when
its history grows long.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from runner.executors.temporal.types import (
        CLAIM_TYPE,
        FEEDBACK_SIGNAL,
        GENERATING,
        ROUND_ACTIVITIES,
        STAGE_ACTIVITIES,
        WORKFLOW_TYPE,
        StageResult,
        TaskRequest,
        TaskResult,
    )


@workflow.defn(name=WORKFLOW_TYPE)
class DispatchTaskWorkflow:
    def __init__(self) -> None:
        self._queue: list[dict[str, Any]] = []
        self._seen: set[str] = set()

    @workflow.signal(name=FEEDBACK_SIGNAL)
    def feedback(self, signal: dict[str, Any]) -> None:
        """Queue a feedback item, once per key: a redelivery or a repeated poll adds nothing."""
        key = str(signal.get("key") or "")
        if key and key not in self._seen:
            self._seen.add(key)
            self._queue.append(signal)

    @workflow.run
    async def run(self, request: TaskRequest) -> TaskResult:
        for signal in request.pending:
            self.feedback(signal)
        self._seen.update(request.seen)
        usage = dict(request.usage)
        result: TaskResult | None = None
        if not request.rounds_only:
            result = await self._stages(request, STAGE_ACTIVITIES, [])
            usage = result.usage or usage
        while self._queue:  # one round at a time, in the order the items arrived
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(dataclasses.replace(
                    request, rounds_only=True, usage=usage, pending=tuple(self._queue), seen=tuple(self._seen),
                    previous_pr_url=(result.pr_url if result else None) or request.previous_pr_url))
            signal = self._queue.pop(0)
            result = await self._stages(request, ROUND_ACTIVITIES, [signal["item"], usage])
        if result is None:  # a rounds-only run whose items were all dropped
            result = TaskResult(status="succeeded", outcome="skipped")
        workflow.upsert_memo({"status": result.status, "pr_url": result.pr_url or request.previous_pr_url,
                              "error": result.error, "attempt": result.attempt, "owner": result.owner,
                              "task_id": request.task_id, "usage": usage,
                              "kind": "rounds" if request.rounds_only else "task"})
        return result

    async def _stages(self, request: TaskRequest, names: tuple[str, ...], first: list[Any]) -> TaskResult:
        """The pipeline's one straight line (or a round's), a stage per activity, until one ends the task.

        The first activity takes ``first`` after the request; each later one takes
        the values of the stages before it. A stage may name the activities that
        follow instead (``StageResult.then``)."""
        values: list[Any] = []
        stages: dict[str, float] = {}
        attempt = 0  # the most attempts any stage took: what `status` shows
        todo = list(names)
        while todo:
            name = todo.pop(0)
            timeout = request.start_to_close_s if name in GENERATING else request.step_s
            done = await self._step(request, name, [request, *(values or first)], timeout, stages)
            if isinstance(done, TaskResult):
                return dataclasses.replace(done, attempt=max(attempt, done.attempt),
                                           stage_seconds={**stages, **done.stage_seconds})
            attempt = max(attempt, done.attempt)
            values.append(done.value)
            if done.then is not None:
                todo = list(done.then)
        return TaskResult(status="dead", error="The last stage returned no result.")  # cannot happen

    async def _step(self, request: TaskRequest, name: str, args: list[Any], timeout: float,
                    stages: dict[str, float]) -> Any:
        """One activity with the retry policy mapped from the settings; a TaskResult when the task ended."""
        policy = RetryPolicy(
            initial_interval=timedelta(seconds=request.retry_base_s),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=request.retry_max_s),
            # No cap on attempts (issue #29): the pipeline counts task failures itself (in the
            # heartbeat's tally, waits apart) and stops at MAX_ATTEMPTS, or after
            # TRANSIENT_RETRY_HOURS of an outage, reporting why; so only task failures end it.
            maximum_attempts=0,
            non_retryable_error_types=list(request.non_retryable),
        )
        try:
            done: StageResult = await workflow.execute_activity(
                name, args=args, result_type=StageResult,
                start_to_close_timeout=timedelta(seconds=timeout),
                heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_s),
                retry_policy=policy,
            )
        except ActivityError as exc:
            return TaskResult(status="dead", error=str(exc.cause or exc))
        stages.update(done.stage_seconds)
        return done.result if done.result is not None else done


@workflow.defn(name=CLAIM_TYPE)
class BranchClaimWorkflow:
    """A branch's claim: its id is the name, its memo the owning task; it ends at once and holds the id."""

    @workflow.run
    async def run(self, owner: str) -> str:
        return owner
