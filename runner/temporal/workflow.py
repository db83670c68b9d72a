"""The workflow of one dispatch issue: the pipeline's stages as activities, in order, with retries.

Workflow code must be deterministic and runs in Temporal's sandbox, so this
module imports nothing but the pure values in :mod:`runner.temporal.types`.
The stage values (``Plan``, ``Change``) pass through it as JSON, untouched.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from runner.temporal.types import (
        STAGE_ACTIVITIES,
        WORKFLOW_TYPE,
        StageResult,
        TaskRequest,
        TaskResult,
    )


@workflow.defn(name=WORKFLOW_TYPE)
class DispatchTaskWorkflow:
    @workflow.run
    async def run(self, request: TaskRequest) -> TaskResult:
        policy = RetryPolicy(
            initial_interval=timedelta(seconds=request.retry_base_s),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=request.retry_max_s),
            # The pipeline stops a stage at MAX_ATTEMPTS itself (and reports it); the one
            # extra attempt lets it report a task whose workers died every time.
            maximum_attempts=request.max_attempts + 1,
            non_retryable_error_types=list(request.non_retryable),
        )
        values: list[Any] = []
        stages: dict[str, float] = {}
        result: TaskResult | None = None
        attempt = 0  # the most attempts any stage took: what `status` shows
        for name in STAGE_ACTIVITIES:  # the pipeline's one straight line, a stage per activity
            timeout = request.start_to_close_s if name == "dispatch_change" else request.step_s
            try:
                done: StageResult = await workflow.execute_activity(
                    name, args=[request, *values], result_type=StageResult,
                    start_to_close_timeout=timedelta(seconds=timeout),
                    heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_s),
                    retry_policy=policy,
                )
            except ActivityError as exc:
                result = TaskResult(status="dead", error=str(exc.cause or exc))
                break
            stages.update(done.stage_seconds)
            attempt = max(attempt, done.attempt)
            if done.result is not None:
                result = done.result
                break
            values.append(done.value)
        if result is None:  # cannot happen: the last stage always ends the task
            result = TaskResult(status="dead", error="The last stage returned no result.")
        result = TaskResult(status=result.status, pr_url=result.pr_url, error=result.error,
                            attempt=max(attempt, result.attempt), owner=result.owner, stage_seconds={**stages,
                            **result.stage_seconds}, outcome=result.outcome)
        workflow.upsert_memo({"status": result.status, "pr_url": result.pr_url or request.previous_pr_url,
                              "error": result.error,
                              "attempt": result.attempt, "owner": result.owner,
                              "task_id": request.task_id})
        return result
