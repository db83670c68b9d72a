"""Record every task as a file in the target repository: the audit trail of what was asked.

The trace is deterministic (no clock, no randomness) so that re-running a task
produces byte-identical content and therefore no new commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from runner.core.task import DispatchTask, render_metadata
from runner.generators.base import Changes, GenerationContext
from runner.steps.guard import safe_write


def render_trace(task: DispatchTask, *, branch: str) -> str:
    """The trace file's content; its metadata comment names the task that owns the branch."""
    return (
        f"{render_metadata(task.metadata)}\n"
        f"# Agent task `{task.task_id}`\n\n"
        f"- Dispatch issue: {task.dispatch_repo}#{task.issue_number}\n"
        f"- Target repository: {task.target_repo}\n"
        f"- Branch: `{branch}`\n\n"
        "## Instruction\n\n"
        f"{task.instruction}\n"
    )


def write_trace(ctx: GenerationContext, *, branch: str, max_bytes: int = 1_000_000,
                clean: Callable[[str], str] | None = None) -> str:
    """Write the trace file; ``clean`` removes what the secret scan flags from the copied instruction."""
    task = replace(ctx.task, instruction=clean(ctx.task.instruction)) if clean else ctx.task
    return safe_write(ctx.worktree, ctx.trace_path, render_trace(task, branch=branch),
                      max_bytes=max(max_bytes, 1_000_000), allow_workflows=False)


class TraceGenerator:
    """Change nothing but the trace file (which the pipeline always writes)."""

    name = "trace"

    def generate(self, ctx: GenerationContext) -> Changes:
        return Changes(summary="Recorded the task in the trace file.", generator=self.name,
                       no_change="The `trace` generator records the task in the trace file and changes nothing else.")


def build(settings: Any) -> TraceGenerator:
    return TraceGenerator()
