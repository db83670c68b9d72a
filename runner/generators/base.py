"""The stable contract between the runner and every generator, built-in or plugin.

A generator receives a read-only :class:`GenerationContext` and returns
:class:`Changes`. It edits files in ``ctx.worktree`` only (through
:func:`runner.steps.guard.safe_write` when it writes on behalf of a model), never
commits or pushes, and raises a :class:`runner.errors.GeneratorError` subclass
when it cannot do the job. The runner commits, validates and publishes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from runner.core.feedback import RoundContext
from runner.core.task import DispatchTask


@dataclass(frozen=True)
class Budget:
    """Limits for one task, enforced between turns by every backend."""

    max_turns: int = 30
    max_output_tokens: int = 4096
    max_tokens: int | None = None
    max_cost_usd: float | None = None


@dataclass(frozen=True)
class Usage:
    """What a generation cost; cost is None when the price is unknown."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    duration_s: float = 0.0
    model: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        cost = None
        if self.cost_usd is not None or other.cost_usd is not None:
            cost = (self.cost_usd or 0.0) + (other.cost_usd or 0.0)
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost_usd=cost,
            duration_s=self.duration_s + other.duration_s,
            model=other.model or self.model,
        )


@dataclass(frozen=True)
class Changes:
    """What a generator did: a summary for the PR body, the files it touched, its cost.

    A generator that changed no file has failed, and the chain falls back, unless
    it says why no change is needed in ``no_change`` (``trace``, or ``patch`` with
    no diff block); the result comment then states that reason as it is.
    ``summary_by`` names who wrote ``summary`` when it is not the generator's own
    checked sentence (``"the model gpt-4o-mini"``): it is then shown as a quote.
    """

    summary: str
    files: tuple[str, ...] = ()
    usage: Usage = field(default_factory=Usage)
    transcript: Path | None = None
    generator: str = ""
    notes: tuple[str, ...] = ()
    no_change: str | None = None
    summary_by: str | None = None
    fell_back: tuple[str, ...] = ()  # generators that failed before this one, set by the chain


def _no_progress(message: str) -> None:
    return None


def _no_usage(usage: Usage) -> None:
    return None


@dataclass(frozen=True)
class GenerationContext:
    """Everything a generator may read; it is frozen so a plugin cannot change the task."""

    task: DispatchTask
    worktree: Path
    instruction: str
    trace_path: str
    log: Any
    deadline: float  # time.monotonic() value after which the generator must stop
    budget: Budget = field(default_factory=Budget)
    model: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    repo_instructions: str = ""
    feedback: str | None = None  # validation output from the previous round, if any
    transcript_dir: Path | None = None
    #: In a feedback round (a review, or a ``/agent`` comment): the people's feedback with
    #: file, line and hunk, the branch's current diff and the round number; None on the first run.
    round: RoundContext | None = None
    report_progress: Callable[[str], None] = _no_progress
    #: What the generation has used so far (a :class:`Usage`), for the live status page; optional.
    report_usage: Callable[[Usage], None] = _no_usage
    #: The worktree's real git directory (from the workspace, never from its `.git` file).
    git_dir: Path | None = None

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()


@runtime_checkable
class Generator(Protocol):
    """Make the change described by the context, in its worktree."""

    name: str

    def generate(self, ctx: GenerationContext) -> Changes: ...


#: What the registry and entry points hold: build a generator from the settings.
GeneratorFactory = Callable[[Any], Generator]
