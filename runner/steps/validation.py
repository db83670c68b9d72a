"""Check a change by running the configured commands in its worktree, and decide what follows.

The commands come from the operator (``VALIDATE_COMMANDS``) or from the target
repository's ``.agent-runner.yml``, so they are only semi-trusted. Each one:

- is split with :func:`shlex.split` and run **without a shell**. Pipes, ``&&``
  and globs need a shell the author asks for by name:
  ``sh -c 'ruff check . && pytest -q'``;
- runs in the worktree, in the sandbox (:mod:`runner.sandbox.bwrap`): the tests a
  generated diff adds run here too, so only the worktree is writable, there is
  no network by default, and a timeout kills everything the command started.
  It gets the minimal environment the caller built, minus any variable named
  like a credential (so never the GitHub token);
- shares one deadline (``timeout_s``) with the others, so a validation round
  can never take longer than configured.

Every command runs even after one fails, so feedback to the generator covers
all problems at once; :func:`validation_outcome` then says whether to retry,
publish a draft, or fail.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from runner.sandbox.bwrap import Sandbox
from runner.sandbox.procs import (
    fenced,
    format_seconds,
    is_secret_name,
    split_command,
    tail_text,
)

Outcome = Literal["pass", "retry", "draft", "fail"]
OnFailure = Literal["draft", "fail"]

#: How much output each command keeps (for the PR body, feedback and logs).
OUTPUT_TAIL_CHARS = 8000
_NOT_FOUND_EXIT = 127


@dataclass(frozen=True)
class CommandResult:
    """How one command went; ``exit_code`` is None when it never ran to an end."""

    command: str
    exit_code: int | None
    duration_s: float
    output_tail: str
    timed_out: bool = False
    skipped: bool = False

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.skipped

    @property
    def status(self) -> str:
        """A few words for tables and messages: `passed`, `exit 1`, `timed out`."""
        if self.skipped:
            return "not run"
        if self.timed_out:
            return "timed out"
        if self.exit_code is None:
            return "could not start"
        if self.exit_code == 0:
            return "passed"
        if self.exit_code < 0:
            return f"killed by signal {-self.exit_code}"
        return f"exit {self.exit_code}"

    @property
    def environment_problem(self) -> bool:
        """A failure no code change can fix: the tool is missing or the command is malformed."""
        return self.exit_code is None or self.exit_code == _NOT_FOUND_EXIT or self.skipped


@dataclass(frozen=True)
class ValidationReport:
    """Every command's result, in the order they ran."""

    results: tuple[CommandResult, ...] = ()

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    @property
    def failures(self) -> tuple[CommandResult, ...]:
        return tuple(result for result in self.results if not result.passed)

    def failure_feedback(self, max_chars: int = 6000) -> str:
        """The failed commands and the tail of their output, written for a model to act on."""
        failures = self.failures
        if not failures:
            return ""
        intro = (
            "The validation commands failed after your change. Fix the code so that they pass; "
            "do not change the commands.\n"
        )
        share = max((max_chars - len(intro)) // len(failures) - 120, 200)
        parts = [intro]
        for result in failures:
            heading = f"\n### {_inline_code(result.command)}: {result.status}\n"
            body = tail_text(result.output_tail, max_lines=60, max_chars=share) or "(no output)"
            parts.append(heading + fenced(body) + "\n")
        text = "".join(parts)
        return text if len(text) <= max_chars else text[: max_chars - 1] + "…"

    def render_markdown(self, *, details_chars: int = 2000) -> str:
        """A short table for the PR body, with the output of failed commands folded away."""
        if not self.results:
            return "No validation commands are configured."
        rows = ["| | Command | Result | Time |", "|---|---|---|---|"]
        for result in self.results:
            mark = "✅" if result.passed else "❌"
            rows.append(
                f"| {mark} | {_inline_code(result.command, table=True)} | {result.status} | "
                f"{result.duration_s:.1f} s |"
            )
        lines = ["\n".join(rows)]
        for result in self.failures:
            if not result.output_tail.strip():
                continue
            body = tail_text(result.output_tail, max_lines=40, max_chars=details_chars)
            lines.append(
                f"<details><summary>Output of <code>{_html(result.command)}</code></summary>\n\n"
                f"{fenced(body)}\n\n</details>"
            )
        return "\n\n".join(lines)


def run_validation(
    commands: Sequence[str],
    *,
    worktree: Path,
    env: Mapping[str, str],
    timeout_s: float,
    stop_at_first_failure: bool = False,
    sandbox: Sandbox | None = None,
    git_dir: Path | None = None,
) -> ValidationReport:
    """Run each command in the worktree within one shared deadline and report every result.

    Commands left when the deadline has passed are reported as not run.
    ``stop_at_first_failure`` reports the rest as not run as soon as one fails
    (for setup steps, where later ones depend on earlier ones). ``sandbox``
    defaults to the bubblewrap one; ``git_dir`` is the worktree's real git
    directory. Raise SandboxUnavailable when no sandbox can run the commands.
    """
    sandbox = sandbox or Sandbox()
    deadline = time.monotonic() + timeout_s
    # Defence in depth: whatever the caller built, no credential reaches these commands.
    safe_env = {name: value for name, value in env.items() if not is_secret_name(name)}
    results: list[CommandResult] = []
    stop_reason: str | None = None
    for command in commands:
        if stop_reason is None and deadline - time.monotonic() <= 0:
            stop_reason = f"Not run: the {format_seconds(timeout_s)} s validation time was used up."
        if stop_reason is not None:
            results.append(CommandResult(command, None, 0.0, stop_reason, skipped=True))
            continue
        result = _run_one(
            command, worktree=worktree, env=safe_env, deadline=deadline, timeout_s=timeout_s,
            sandbox=sandbox, git_dir=git_dir,
        )
        results.append(result)
        if stop_at_first_failure and not result.passed:
            stop_reason = f"Not run: `{command}` failed before it."
    return ValidationReport(tuple(results))


def validation_outcome(
    report: ValidationReport, rounds_used: int, rounds_allowed: int, on_failure: OnFailure
) -> Outcome:
    """Decide what follows a validation run: pass, retry the generator, a draft PR, or fail.

    ``rounds_used`` counts the fix-up rounds already spent (0 after the first
    generation); ``rounds_allowed`` is VALIDATION_ROUNDS. A retry is skipped
    when every failure is an environment problem (a missing tool), because no
    code change can fix that.
    """
    if on_failure not in ("draft", "fail"):
        raise ValueError(f"on_failure must be 'draft' or 'fail', not {on_failure!r}")
    if report.passed:
        return "pass"
    fixable = any(not result.environment_problem for result in report.failures)
    if fixable and rounds_used < rounds_allowed:
        return "retry"
    return on_failure


def _run_one(
    command: str, *, worktree: Path, env: Mapping[str, str], deadline: float, timeout_s: float,
    sandbox: Sandbox, git_dir: Path | None,
) -> CommandResult:
    started = time.monotonic()
    try:
        argv = split_command(command)
    except ValueError as exc:
        message = f"Could not read the command ({exc}); quote it the way a POSIX shell would."
        return CommandResult(command, None, 0.0, message)
    try:
        proc = sandbox.run(argv, worktree=worktree, env=env, deadline_s=max(deadline - started, 0.0),
                           git_dir=git_dir)
    except FileNotFoundError as exc:
        where = f" ({exc.strerror})" if exc.strerror and "sandbox" in exc.strerror else ""
        message = (f"`{argv[0]}` was not found{where}. Install it in the runner image, or fix "
                   "the command.")
        return CommandResult(command, _NOT_FOUND_EXIT, time.monotonic() - started, message)
    except PermissionError:
        message = f"`{argv[0]}` is not executable. Fix its permissions, or fix the command."
        return CommandResult(command, _NOT_FOUND_EXIT, time.monotonic() - started, message)
    output = tail_text(proc.output, max_lines=400, max_chars=OUTPUT_TAIL_CHARS)
    if proc.timed_out:
        note = f"[stopped: the {format_seconds(timeout_s)} s validation time ran out]"
        output = f"{output}\n{note}".lstrip()
    return CommandResult(command, proc.exit_code, proc.duration_s, output, timed_out=proc.timed_out)


def _inline_code(text: str, *, table: bool = False) -> str:
    """Inline code that no backtick in the text can close; pipes escaped inside GFM tables."""
    text = text.replace("\n", " ")
    if table:
        text = text.replace("|", "\\|")
    runs = [len(run) for run in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if runs else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
