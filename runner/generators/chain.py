"""Run generators as a fallback chain: the first that makes a change wins, and the fallbacks are noted.

A generator that returns without changing any file has not done the task, so it
counts as failed and the next one runs, unless it says in ``Changes.no_change``
why no change is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from runner.errors import (
    BudgetExceeded,
    GeneratorError,
    GeneratorUnavailable,
    NoChangeMade,
    TurnLimitReached,
)
from runner.generators.base import Changes, GenerationContext, Generator


def run_chain(
    chain: Sequence[Generator],
    ctx: GenerationContext,
    *,
    reset: Callable[[], None],
    changed: Callable[[Changes], bool],
) -> Changes:
    """Try each generator in order; between tries the worktree is reset to where it started.

    ``changed(changes)`` tells whether the generator left a change outside the
    trace file in the worktree; the pipeline answers it from git.
    """
    failures: list[tuple[str, GeneratorError]] = []
    for generator in chain:
        ctx.report_progress(f"generating with `{generator.name}`")
        try:
            changes = generator.generate(ctx)
            check_changed(generator.name, changes, changed)
        except GeneratorError as exc:
            if isinstance(exc, BudgetExceeded) and not isinstance(exc, TurnLimitReached):
                raise  # the task's tokens or money are spent: no fallback may spend more (MAX_TURNS is per generator)
            ctx.log.warning("generator failed", generator=generator.name, error=str(exc),
                            transient=exc.transient)
            failures.append((generator.name, exc))
            reset()
            continue
        notes = tuple(f"`{name}` failed and was skipped: {err}" for name, err in failures)
        return replace(changes, generator=changes.generator or generator.name, notes=notes + changes.notes,
                       fell_back=tuple(name for name, _ in failures))
    if len(failures) == 1:
        raise failures[0][1]
    detail = "; ".join(f"`{name}`: {err}" for name, err in failures)
    error_type = GeneratorUnavailable if all(err.transient for _, err in failures) else GeneratorError
    # The first generator is the one the operator wants; its hint says how to get it working.
    raise error_type(f"Every generator in the chain failed. {detail}", hint=failures[0][1].hint)


def check_changed(name: str, changes: Changes, changed: Callable[[Changes], bool]) -> None:
    """Refuse a result that claims work without a change, unless it says why none is needed."""
    if changes.no_change is not None or changed(changes):
        return
    raise NoChangeMade(f"`{name}` finished without changing any file, so there is no change to publish.")
