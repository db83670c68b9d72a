"""The workflow of one dispatch issue: run the pipeline activity with retries, record the result.

Workflow code must be deterministic and runs in Temporal's sandbox, so this
module imports nothing but the pure values in :mod:`runner.temporal.types`.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from runner.temporal.types import ACTIVITY_NAME, WORKFLOW_TYPE, TaskRequest, TaskResult


@workflow.defn(name=WORKFLOW_TYPE)
class DispatchTaskWorkflow:
    @workflow.run
    async def run(self, request: TaskRequest) -> TaskResult:
        policy = RetryPolicy(
            initial_interval=timedelta(seconds=request.retry_base_s),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=request.retry_max_s),
            # The pipeline stops a task at MAX_ATTEMPTS itself (and reports it); the one
            # extra attempt lets it report a task whose workers died every time.
            maximum_attempts=request.max_attempts + 1,
            non_retryable_error_types=list(request.non_retryable),
        )
        try:
            result: TaskResult = await workflow.execute_activity(
                ACTIVITY_NAME,
                request,
                result_type=TaskResult,
                start_to_close_timeout=timedelta(seconds=request.start_to_close_s),
                heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout_s),
                retry_policy=policy,
            )
        except ActivityError as exc:
            cause = exc.cause
            result = TaskResult(status="dead", error=str(cause or exc))
        workflow.upsert_memo({"status": result.status, "pr_url": result.pr_url or request.previous_pr_url,
                              "error": result.error,
                              "attempt": result.attempt, "owner": result.owner,
                              "task_id": request.task_id})
        return result
