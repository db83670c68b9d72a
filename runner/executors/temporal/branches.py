"""Keep a task's branch its own for good under Temporal: a claim is a workflow id only one task can start.

The ledger executor records a task's branch in its table (unique per target)
before the first push (issue #29). Temporal has no table of ours, but it
refuses a second workflow with an id it already holds: so taking the name
``owner/repo:agent-task-xyz`` is starting a tiny workflow with that id
(:data:`CLAIM_TYPE`, reuse policy REJECT_DUPLICATE) whose memo names the task.
A later attempt, round or replica of the same task finds its own key there and
reuses the name; any other task is refused, whatever the timing (an outage
between the choice and the push included), and moves to its hashed name.

A closed claim keeps its id until the namespace's retention period ends; by
then the task has pushed, and the branch's trace file and PR name its owner
(``pipeline.job.names_for`` reads them first).
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from runner.errors import LedgerUnavailable
from runner.executors.temporal.types import CLAIM_TYPE, claim_id

#: How long one claim may take before the stage treats Temporal as unavailable.
CLAIM_TIMEOUT_S = 30.0


class BranchClaims:
    """Claim branch names through Temporal from the activity threads (the client lives on the worker's loop)."""

    def __init__(self, client: Client, loop: asyncio.AbstractEventLoop, *, task_queue: str) -> None:
        self.client = client
        self.loop = loop
        self.task_queue = task_queue

    def claim(self, branch: str, owner: str) -> bool:
        """True when ``branch`` (``owner/repo:name``) is ``owner``'s now or already was; False when another's.

        Raises LedgerUnavailable (an outage: the task waits) when Temporal does not answer."""
        future = asyncio.run_coroutine_threadsafe(self._claim(branch, owner), self.loop)
        try:
            return future.result(timeout=CLAIM_TIMEOUT_S)
        except TimeoutError:
            future.cancel()
            raise LedgerUnavailable(f"Temporal did not answer within {CLAIM_TIMEOUT_S:g} s while the task "
                                    f"claimed its branch `{branch}`.") from None

    async def _claim(self, branch: str, owner: str) -> bool:
        wid = claim_id(branch)
        try:
            await self.client.start_workflow(
                CLAIM_TYPE, owner, id=wid, task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                memo={"owner": owner, "branch": branch})
            return True
        except WorkflowAlreadyStartedError:
            return await self._owner(wid) == owner
        except RPCError as exc:
            raise LedgerUnavailable(f"Temporal could not record the branch `{branch}`: {exc}") from None

    async def _owner(self, wid: str) -> Any:
        try:
            memo = await (await self.client.get_workflow_handle(wid).describe()).memo()
        except RPCError as exc:
            raise LedgerUnavailable(f"Temporal could not read who owns `{wid}`: {exc}") from None
        return memo.get("owner")
