"""Take one claimed dispatch issue to one pull request, in one straight line: the conductor.

    issue ─► intake ─► Plan ─► first_run.make_change ─► Pushed ─► first_run.publish ─► Outcome
                    └► Rounds ─► rounds.intake ─► Round ─► rounds.make_change ─► RoundPushed
                                                         ─► rounds.publish ─► … ─► rounds.done ─► Outcome

A processed task with feedback waiting takes the second entry (:mod:`.rounds`).
The stages are the same functions under every executor: :meth:`Pipeline.run`
calls them in a line; Temporal runs each as an activity through
:meth:`Pipeline.run_stage` and the one table :data:`STAGE_TABLE`.

Every dependency is passed in (forge, workspace, generator chain, ledger, hooks,
clock), so tests drive the real pipeline against the emulators. Failures are
reported on the issue, recorded in the ledger, and never stop the loop.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from runner.config import Settings
from runner.core import feedback, policy
from runner.core.render import ResultView
from runner.errors import CrashLoop, DiskFull, InternalError, LeaseLost, RunnerError, ShuttingDown
from runner.forge.base import Forge
from runner.generators.base import Generator
from runner.hooks.commands import HookCommands
from runner.hooks.plugins import CombinedHooks
from runner.ledger.base import FeedbackInbox, Job, JobLedger, TaskKey, WorkloadSource
from runner.ledger.lease import LeaseKeeper
from runner.log import Redactor
from runner.metrics import Metrics
from runner.pipeline import first_run, outcome, rounds
from runner.pipeline.job import Deps, JobRun, check_trust, parse, plan_of
from runner.pipeline.values import (
    Outcome,
    Plan,
    Pushed,
    Round,
    RoundPushed,
    Rounds,
    Stage,
    StageValue,
)
from runner.sandbox import Sandbox
from runner.steps import retry
from runner.steps.report import Reporter
from runner.steps.workspace import Workspace

_T = TypeVar("_T")


def intake(d: Deps, run: JobRun, *, note_comments: bool = True) -> Plan | Rounds | Outcome:
    """Read the issue, decide whether it is work (or has feedback waiting), parse it, check who approved it."""
    key = run.job.key
    issue = d.forge.get_issue(key.dispatch_repo, key.issue_number)
    run.issue = issue
    d.hooks.call("on_issue", issue=issue)  # observers (the status page) learn its title; no gate here
    if note_comments:
        d.reporter.note_issue(issue, attempt=run.job.attempt)
    pending = d.inbox.pending_feedback(key) if d.inbox is not None else []
    if pending and d.labels.processed in issue.labels and issue.state == "open":
        return rounds.plan(d, run, issue, pending)
    eligible, why = policy.should_process(issue, d.labels)
    if not eligible:
        run.log.info("skipping issue", reason=why)
        for item_key, _ in pending:  # nothing to iterate on; drop them, or the task never settles
            rounds.finish_item(d, run, item_key, "refused", None, {"reason": why})
        return outcome.record_as_found(d, run, issue, why)

    task = parse(run, issue)
    check_trust(d, task, issue)
    d.hooks.call("on_claimed", task=task, attempt=run.job.attempt)
    if d.hook_commands.has("pre_task"):
        with run.stage("pre_task"):
            d.hook_commands.pre_task(task, attempt=run.job.attempt)  # HookVetoed: refused
    outcome.show(d, run, task_id=task.task_id, stages_done=("claimed",))
    return plan_of(d, task, issue)


def process(d: Deps, run: JobRun) -> Outcome:
    """The straight line: intake, then the first run's change and publish, or the rounds."""
    plan = intake(d, run)
    if isinstance(plan, Outcome):
        return plan
    if isinstance(plan, Rounds):
        return rounds.run_all(d, run, plan)
    pushed = first_run.make_change(d, run, plan)
    if isinstance(pushed, Outcome):
        return pushed
    return first_run.publish(d, run, plan, pushed)


def round_entry(d: Deps, run: JobRun) -> Plan | Round | Outcome:
    """A round's intake as a step of its own: the task's intake, with the item in hand its one pending."""
    found = intake(d, run, note_comments=False)
    if not isinstance(found, Rounds):  # the task is work again (a Plan), or nothing to do
        return found
    [(item_key, raw)] = found.pending
    step = rounds.intake(d, run, found, item_key, raw)
    return step if isinstance(step, Round) else rounds.done(d, run, step)


def round_exit(d: Deps, run: JobRun, round_: Round, pushed: RoundPushed) -> Outcome:
    """A round's publish as a step of its own: it ends the round."""
    return rounds.done(d, run, rounds.publish(d, run, round_, pushed))


@dataclass(frozen=True)
class StageSpec:
    """One stage an executor may run on its own: what it takes from the stages before, and its body."""

    takes: tuple[type, ...]
    body: Callable[..., Any]


#: The one map from stage names to stage functions. Only the straight line of
#: :meth:`Pipeline.run` may skip listing comments on a fresh issue: there one
#: process posts every update of the result comment.
STAGE_TABLE: dict[Stage, StageSpec] = {
    "intake": StageSpec((), partial(intake, note_comments=False)),
    "change": StageSpec((Plan,), first_run.make_change),
    "publish": StageSpec((Plan, Pushed), first_run.publish),
    "round_intake": StageSpec((), round_entry),
    "round_change": StageSpec((Round,), rounds.make_change),
    "round_publish": StageSpec((Round, RoundPushed), round_exit),
}


class Pipeline:
    """Runs jobs; one instance is shared by all worker threads of a process."""

    def __init__(
        self,
        *,
        settings: Settings,
        forge: Forge,
        workspace: Workspace,
        chain: Sequence[Generator],
        ledger: JobLedger,
        hooks: CombinedHooks,
        redactor: Redactor,
        log: Any,
        clock: Callable[[], datetime],
        sandbox: Sandbox | None = None,
        retry_policy: retry.RetryPolicy = retry.RetryPolicy(),  # noqa: B008 (a frozen value)
        inbox: FeedbackInbox | None = None,
        hook_commands: HookCommands | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        sandbox = sandbox or Sandbox.from_settings(settings)
        labels = policy.Labels(settings.trigger_label, settings.processed_label, settings.failed_label)

        def posted(repo: str, number: int, comment_id: int) -> None:
            if inbox is None:  # the runner's comment is known from the start: never a feedback item
                return
            try:
                inbox.add_own_comment(TaskKey(repo, number), feedback.own_comment_key(repo, comment_id),
                                      now=clock())
            except RunnerError as exc:  # best effort: the comment's hidden marker still tells it apart
                log.warning("could not record the result comment's id", error=str(exc), comment=comment_id)

        self.deps = Deps(
            settings=settings, forge=forge, workspace=workspace, chain=list(chain), ledger=ledger, hooks=hooks,
            redact=redactor, log=log, clock=clock, sandbox=sandbox,
            hook_commands=hook_commands or HookCommands.from_settings(settings, sandbox=sandbox, redact=redactor,
                                                                      log=log),
            labels=labels, retry=retry_policy, reporter=Reporter(forge, labels, redactor, log, retry_policy, posted),
            inbox=inbox, workload=ledger if isinstance(ledger, WorkloadSource) else None, metrics=metrics)

    @property
    def hook_commands(self) -> HookCommands:
        return self.deps.hook_commands

    def run(self, job: Job) -> Outcome:
        """Process one claimed job to a final or retryable state; never raises RunnerError."""
        result, _ = self._guarded(job, partial(process, self.deps))
        assert isinstance(result, Outcome)
        return result

    def run_stage(self, job: Job, stage: Stage, *values: Any) -> tuple[StageValue | Outcome, dict[str, float]]:
        """One stage of the same line, for an executor that runs each as its own step (Temporal).

        ``values`` are what the stages before it handed on (a round's intake
        takes none: its item is the inbox's one pending item). Returns the
        stage's value for the next one, or the Outcome when the task (or the
        round) ended in it, with the stage's timings. A round's intake may hand
        on a ``Plan`` instead: the task is work again, and its own stages follow.
        """
        spec = STAGE_TABLE[stage]
        if len(values) != len(spec.takes) or not all(map(isinstance, values, spec.takes)):
            raise AssertionError(f"stage {stage!r} lacks the values of the stages before it")
        return self._guarded(job, lambda run: spec.body(self.deps, run, *values))

    def _guarded(self, job: Job, body: Callable[[JobRun], _T]) -> tuple[_T | Outcome, dict[str, float]]:
        """Run a part of the line under the job's lease; a failure is reported, recorded and returned."""
        d = self.deps
        log = d.log.bind(repo=job.key.dispatch_repo, issue=job.key.issue_number, attempt=job.attempt)
        view = ResultView(status="running", task_id=job.task_id or "?", agent_name=d.settings.agent_name,
                          attempt=job.attempt, notes=outcome.warnings(d))
        with LeaseKeeper(d.ledger, job, lease_seconds=d.settings.lease_seconds, clock=d.clock, log=log,
                         final_hold_s=d.settings.transient_retry_hours * 3600) as lease:
            run = JobRun(job=job, lease=lease, log=log, view=view)
            run.on_stage = lambda name: self._observe(run, "on_stage", stage=name)
            run.on_progress = lambda message, usage: self._observe(run, "on_progress", message=message,
                                                                   usage=usage)
            result = self._settle(run, body)
        if isinstance(result, Outcome):
            self._observe(run, "on_outcome", outcome=result)
        return result, dict(run.stages)

    def _settle(self, run: JobRun, body: Callable[[JobRun], _T]) -> _T | Outcome:
        """The loop boundary: every way a job can end becomes an Outcome."""
        d = self.deps
        try:
            if run.job.failures >= d.settings.max_attempts:
                # Its workers keep dying (each takeover counts a failure): stop feeding it to them.
                # The true reason: the last real error of an attempt when there was one (a failure
                # that could not be reported), else its workers dying each time.
                raise CrashLoop(policy.repeated_failure_sentence(run.job.failures, run.job.task_error))
            return body(run)
        except LeaseLost as exc:
            run.log.warning("stopping: lease lost", error=str(exc))
            return Outcome("lost", error=str(exc))
        except ShuttingDown as exc:
            return outcome.release(d, run, exc)
        except RunnerError as exc:
            return outcome.fail(d, run, exc)
        except OSError as exc:  # the loop boundary: a full disk is an outage, not the task's fault
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                run.log.exception("internal error")
                return outcome.fail(d, run, InternalError(f"Internal error ({type(exc).__name__}: {exc})."))
            return outcome.fail(d, run, DiskFull(f"The disk is full ({exc.strerror}: {exc.filename or 'a write'}); "
                                                 "the task waits for space."))
        except Exception as exc:  # the loop boundary: a bug must not kill the runner
            run.log.exception("internal error")
            return outcome.fail(d, run, InternalError(f"Internal error ({type(exc).__name__}: {exc})."))

    def _observe(self, run: JobRun, name: str, **kwargs: Any) -> None:
        """Observers only (the status line, plugins' on_stage/on_outcome): a gate cannot refuse here."""
        try:
            self.deps.hooks.call(name, issue=run.job.key.issue_number, task=run.task, **kwargs)
        except RunnerError as exc:
            run.log.warning("hook failed", stage=name, error=str(exc))
