"""Make the change in a worktree: generate, guard, validate (with tries), then scan it for secrets.

Shared by the first run and every feedback round: both call :func:`make`,
then :func:`scan_for_secrets` before they push.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

from runner.core.feedback import RoundContext, Spent
from runner.core.model_choice import choose_model
from runner.core.pricing import display_model
from runner.core.task import DispatchTask, TaskNames
from runner.errors import ConfigError, TaskSpecError, ValidationFailed
from runner.gateway import EgressSession, egress_note
from runner.generators import build_chain
from runner.generators.base import Budget, Changes, GenerationContext, Generator, Usage
from runner.generators.chain import run_chain
from runner.generators.trace import write_trace
from runner.pipeline import outcome
from runner.pipeline.job import Deps, JobRun
from runner.pipeline.values import Validated
from runner.sandbox.procs import minimal_env
from runner.steps import guard, secrets
from runner.steps.repo_config import load_repo_config, run_setup
from runner.steps.transcript import excerpt as transcript_excerpt
from runner.steps.validation import run_validation, validation_outcome
from runner.steps.workspace import Worktree

EXCERPT_CHARS = 3000


def make(d: Deps, run: JobRun, task: DispatchTask, tree: Worktree, names: TaskNames, *,
         round_ctx: RoundContext | None = None, spent: Spent | None = None) -> Validated:
    """Generate, guard and validate; setup and validation reach only SANDBOX_EGRESS_ALLOW's hosts.

    The egress proxy, when configured, serves the repository's setup and validation commands
    for this change; the hosts it blocked are named on the issue (and in a validation failure,
    where a blocked download is often the cause).
    """
    egress = EgressSession.open(d.settings, d.sandbox, run.log)
    if egress is None:
        return _make(d, run, task, tree, names, round_ctx=round_ctx, spent=spent)
    try:
        made = _make(replace(d, sandbox=egress.sandbox), run, task, tree, names, round_ctx=round_ctx,
                     spent=spent, extra_env=egress.env)
    except ValidationFailed as exc:
        note = egress_note(egress.close())
        if note is None:
            raise
        raise ValidationFailed(f"{exc.message}\n\n{note}", hint=exc.hint) from exc
    finally:
        blocked = egress.close()
    note = egress_note(blocked)
    return replace(made, notes=made.notes + (note,)) if note else made


def _make(d: Deps, run: JobRun, task: DispatchTask, tree: Worktree, names: TaskNames, *,
          round_ctx: RoundContext | None = None, spent: Spent | None = None,
          extra_env: dict[str, str] | None = None) -> Validated:
    """Generate, guard and validate; a failed validation feeds its output back for another try."""
    s, workspace = d.settings, d.workspace
    # From the base commit only: what a change or an earlier run put on the branch never counts.
    repo_config = load_repo_config(workspace.files_at(tree, tree.base_sha))
    repo_notes: tuple[str, ...] = ()
    if (repo_config.setup or repo_config.validate) and not s.repo_commands_allowed(task.target_repo):
        repo_notes = (f"`.agent-runner.yml` lists setup or validate commands; they were not run "
                      f"because `REPO_COMMANDS` does not allow them for {task.target_repo}.",)
        repo_config = replace(repo_config, setup=(), validate=())
    env = minimal_env(s.command_env_allowlist, extra_env)
    if repo_config.setup:
        outcome.show(d, run, progress="running the repository's setup commands")
        with run.stage("setup"):
            run_setup(repo_config, tree.path, env, s.validation_timeout_seconds, sandbox=d.sandbox,
                      git_dir=tree.git_dir)
    commands = s.validate_commands or repo_config.validate
    chain = _chain_for(d, task)
    model = choose_model(task, s)
    notes = tuple(repo_config.warnings) + repo_notes + ((model.note,) if model.note else ())
    validation_feedback: str | None = None
    usage = Usage()
    for try_no in range(s.validation_rounds + 1):
        # Only validation needs the snapshot (to tell whether a try changed anything).
        before = workspace.snapshot(tree) if commands else None
        # The budget left covers the earlier rounds and this run's earlier tries.
        so_far = spent or Spent()
        so_far = replace(so_far, tokens=so_far.tokens + usage.total_tokens,
                         cost_usd=so_far.cost_usd + (usage.cost_usd or 0.0))
        with run.stage("generate" if try_no == 0 else f"generate_try_{try_no + 1}"):
            ctx = replace(_context(d, run, task, tree.path, names, model.model, repo_config.instructions,
                                   validation_feedback, round_ctx, so_far), git_dir=tree.git_dir)
            changes = run_chain(chain, ctx, reset=lambda: workspace.reset(tree),
                                changed=partial(_changed, d, tree, before=before, trace_path=names.trace_path))
            write_trace(ctx, branch=names.branch, max_bytes=s.max_file_bytes,
                        clean=lambda text: d.redact(secrets.mask(text, s.secrets())))
            files = workspace.changed_files(tree)
            guard.check_tree(tree.path, files, allow_workflows=s.allow_workflow_changes,
                             max_bytes=s.max_file_bytes, max_change_bytes=s.max_change_bytes,
                             max_changed_files=s.max_changed_files)
        usage = usage + changes.usage
        changes = replace(changes, files=tuple(files), usage=usage)
        outcome.show(d, run, stages_done=("claimed", "cloned", "generated"))
        if not commands:
            return Validated(changes, notes=notes)
        progressed = try_no == 0 or workspace.snapshot(tree) != before
        with run.stage("validate"):
            outcome.show(d, run, progress=f"validating (try {try_no + 1})")
            report = run_validation(commands, worktree=tree.path, env=env, timeout_s=s.validation_timeout_seconds,
                                    sandbox=d.sandbox, git_dir=tree.git_dir)
            workspace.restore_snapshot(tree)
        decision = validation_outcome(report, try_no, s.validation_rounds, s.on_validation_failure)
        run.log.info("validation", passed=report.passed, tried=try_no + 1, decision=decision)
        if decision == "pass":
            return Validated(changes, report.render_markdown(), notes=notes)
        if decision == "retry" and progressed:
            validation_feedback = report.failure_feedback()
            continue
        break
    tries = f"{try_no + 1} {'try' if try_no == 0 else 'tries'}"
    if s.on_validation_failure == "draft":
        return Validated(changes, report.render_markdown(), draft=True,
                         notes=notes + (f"Validation failed after {tries}; opened as a draft.",))
    failed = ", ".join(f"`{r.command}` ({r.status})" for r in report.failures)
    raise ValidationFailed(f"Validation failed after {tries}: {failed}.\n\n{report.failure_feedback(1500)}")


def scan_for_secrets(d: Deps, tree: Worktree, names: TaskNames) -> None:
    """Scan the added lines of the whole change, and the whole trace file, before any push."""
    own = d.settings.secrets()
    findings = secrets.scan_diff(d.workspace.staged_diff(tree), own)
    trace = tree.path / names.trace_path
    if trace.is_file():
        text = trace.read_text(encoding="utf-8", errors="replace")
        findings += secrets.scan_lines(names.trace_path, enumerate(text.split("\n"), start=1), own)
    secrets.check(sorted(set(findings), key=lambda f: (f.path, f.line, f.rule)))


def excerpt(changes: Changes) -> str | None:
    """The transcript's excerpt for the PR body."""
    if changes.transcript is None or not changes.transcript.is_file():
        return None
    text = changes.transcript.read_text(encoding="utf-8", errors="replace")
    return transcript_excerpt(text, (), limit=EXCERPT_CHARS, collapse=False) or None


def usage_line(changes: Changes) -> str | None:
    usage = changes.usage
    if not usage.total_tokens and not usage.duration_s:
        return None
    parts = [f"model {display_model(usage.model)}" if usage.model else None,
             f"{usage.input_tokens} in / {usage.output_tokens} out tokens" if usage.total_tokens else None,
             f"${usage.cost_usd:.4f}" if usage.cost_usd is not None else None,
             f"{usage.duration_s:.1f} s" if usage.duration_s else None]
    return "Usage: " + ", ".join(p for p in parts if p)


def _changed(d: Deps, tree: Worktree, changes: Changes, *, before: str | None, trace_path: str) -> bool:
    """Whether a generator left a change outside the trace file.

    A re-run may rewrite exactly what the branch already holds: that counts
    when the generator says it wrote those files. A reply with no edit does not.
    """
    if not set(d.workspace.changed_files(tree)) - {trace_path}:
        return False
    if set(changes.files) - {trace_path} or tree.remote_sha is None:  # a new branch: all of it is new
        return True
    # An existing branch, and the generator names no file: did it change the tree it started from?
    return d.workspace.snapshot(tree) != (before or d.workspace.head_tree(tree))


def _chain_for(d: Deps, task: DispatchTask) -> Sequence[Generator]:
    """The task's own `generator` metadata picks from the installed generators."""
    if not task.generator:
        return d.chain
    try:
        return build_chain([n.strip() for n in task.generator.split(",")], d.settings)
    except ConfigError as exc:
        raise TaskSpecError(f"The task asks for generator `{task.generator}`: {exc}") from exc


def _context(d: Deps, run: JobRun, task: DispatchTask, worktree: Path, names: TaskNames, model: str | None,
             repo_instructions: str, validation_feedback: str | None,
             round_ctx: RoundContext | None = None, spent: Spent | None = None) -> GenerationContext:
    s = d.settings
    spent = spent or Spent()  # budgets cover the task's first run and every round so far
    max_tokens = None if s.max_tokens_per_task is None else max(1, s.max_tokens_per_task - spent.tokens)
    max_cost = None if s.max_cost_usd_per_task is None else max(1e-9, s.max_cost_usd_per_task - spent.cost_usd)
    return GenerationContext(
        task=task,
        worktree=worktree,
        instruction=task.instruction,
        trace_path=names.trace_path,
        log=run.log,
        deadline=time.monotonic() + s.generator_timeout_seconds,
        budget=Budget(max_turns=s.max_turns, max_output_tokens=s.max_output_tokens,
                      max_tokens=max_tokens, max_cost_usd=max_cost),
        model=model,
        metadata=task.metadata,
        repo_instructions=repo_instructions,
        feedback=validation_feedback,
        round=round_ctx,
        transcript_dir=s.data_dir / "transcripts" / task.dispatch_repo / str(task.issue_number),
        report_progress=lambda message: outcome.progress(d, run, message),
        report_usage=lambda usage: run.on_progress(None, usage),
    )
