"""Run generators as a fallback chain: the first that succeeds wins, and the fallbacks are noted."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from runner.errors import GeneratorError, GeneratorUnavailable
from runner.generators.base import Changes, GenerationContext, Generator


def run_chain(chain: Sequence[Generator], ctx: GenerationContext, *, reset: Callable[[], None]) -> Changes:
    """Try each generator in order; between tries the worktree is reset to where it started."""
    failures: list[tuple[str, GeneratorError]] = []
    for generator in chain:
        ctx.report_progress(f"generating with `{generator.name}`")
        try:
            changes = generator.generate(ctx)
        except GeneratorError as exc:
            ctx.log.warning("generator failed", generator=generator.name, error=str(exc),
                            transient=exc.transient)
            failures.append((generator.name, exc))
            reset()
            continue
        notes = tuple(f"`{name}` failed and was skipped: {err}" for name, err in failures)
        return Changes(
            summary=changes.summary,
            files=changes.files,
            usage=changes.usage,
            transcript=changes.transcript,
            generator=changes.generator or generator.name,
            notes=notes + changes.notes,
        )
    if len(failures) == 1:
        raise failures[0][1]
    detail = "; ".join(f"`{name}`: {err}" for name, err in failures)
    error_type = GeneratorUnavailable if all(err.transient for _, err in failures) else GeneratorError
    raise error_type(f"Every generator in the chain failed. {detail}")
