"""Take one claimed dispatch issue to one pull request, in one straight line.

    issue ─► DispatchTask ─► checks ─► Workspace ─► Changes ─► guard ─► push ─► PR ─► report
    └──────── intake ─► Plan ───────┴─────────── change ─► Change ───────────┴─ publish ─► Outcome

A processed task with feedback waiting takes the second entry: intake hands on
``Rounds`` (its branch, PR and rounds so far), and each item goes through a
round's own three stages:

    round_intake ─► Round ─► round_change ─► RoundChange ─► round_publish ─► Outcome

The stages are the same code under every executor: :meth:`Pipeline.run` calls
them in one line; Temporal runs each as an activity (:meth:`Pipeline.run_stage`).

Every dependency is passed in (forge, workspace, generator chain, ledger, hooks,
clock), so tests drive the real pipeline against the emulators. Failures are
reported on the issue, recorded in the ledger, and never stop the loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

from runner.config import Settings
from runner.core import feedback, policy
from runner.core.feedback import FeedbackItem, RoundContext, RoundRecord, Spent
from runner.core.model_choice import choose_model
from runner.core.pricing import display_model
from runner.core.render import PullView, ResultView, commit_message, pull_title, render_pull_body
from runner.core.task import (
    DispatchTask,
    TaskNames,
    choose_names,
    parse_task,
    task_id_of,
    task_names,
)
from runner.errors import (
    ConfigError,
    CrashLoop,
    InternalError,
    LeaseLost,
    PolicyRefused,
    RateLimited,
    RunnerError,
    ShuttingDown,
    TaskSpecError,
    ValidationFailed,
)
from runner.forge.base import Forge, Issue, PullRequest
from runner.generators import build_chain
from runner.generators.base import Budget, Changes, GenerationContext, Generator, Usage
from runner.generators.chain import run_chain
from runner.generators.trace import write_trace
from runner.hooks.commands import HookCommands
from runner.hooks.plugins import CombinedHooks
from runner.ledger.base import FeedbackInbox, Job, JobLedger, backoff_delay
from runner.ledger.lease import LeaseKeeper
from runner.log import Redactor
from runner.sandbox.bwrap import Sandbox
from runner.sandbox.procs import minimal_env
from runner.steps import guard, retry, secrets
from runner.steps.publish import push_change, upsert_pull
from runner.steps.repo_config import load_repo_config, run_setup
from runner.steps.report import Reporter, progress_due
from runner.steps.transcript import excerpt
from runner.steps.validation import run_validation, validation_outcome
from runner.steps.workspace import Mirror, Workspace, Worktree

OutcomeStatus = Literal["succeeded", "failed", "retrying", "skipped", "lost", "released"]
#: The stages of the line, in order; an executor may run each as its own step.
Stage = Literal["intake", "change", "publish", "round_intake", "round_change", "round_publish"]
STAGES: tuple[Stage, ...] = ("intake", "change", "publish")
#: The stages of one feedback round (the second entry), in order.
ROUND_STAGES: tuple[Stage, ...] = ("round_intake", "round_change", "round_publish")
EXCERPT_CHARS = 3000
_T = TypeVar("_T")


@dataclass(frozen=True)
class Outcome:
    status: OutcomeStatus
    pr_url: str | None = None
    error: str | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """What intake hands on: the issue as it was read and approved, and where its target lives.

    The task is parsed again from ``issue`` where a stage starts on its own:
    parsing is pure, and the issue snapshot is what trust was checked on."""

    issue: Issue
    clone_url: str
    base: str


@dataclass(frozen=True)
class Change:
    """What the change stage hands to publishing: the pushed commit and what the PR body says of it.

    Plain values only (serializable): the transcript stays on the machine that
    generated, so only its path and an excerpt travel."""

    names: TaskNames
    existing: PullRequest | None
    head: str
    changes: Changes  # with transcript=None
    validation_md: str | None = None
    draft: bool = False
    notes: tuple[str, ...] = ()
    excerpt: str | None = None
    transcript: str | None = None


@dataclass(frozen=True)
class Rounds:
    """What intake hands on when a processed task has feedback waiting: where its rounds go.

    The history is the ledger's record of handled items, or (under Temporal)
    the one the PR body carries; ``ran`` says whether an item not handled
    before came through, so a retry of a recorded round still edits the comment."""

    plan: Plan
    names: TaskNames
    pull: PullRequest | None
    history: tuple[RoundRecord, ...] = ()
    first_usage: dict[str, Any] = field(default_factory=dict)
    pending: tuple[tuple[str, dict[str, Any]], ...] = ()
    ran: bool = False


@dataclass(frozen=True)
class Round:
    """What a round's intake hands to its change: a writer's item, numbered, within the task's budgets."""

    rounds: Rounds
    item: FeedbackItem
    text: str
    number: int
    spent: Spent


@dataclass(frozen=True)
class RoundChange:
    """What a round's change hands to its publish: the record of its pushed commit, or why there is none.

    Like :class:`Change`, it ends with the commit on GitHub: publishing needs
    nothing of the workspace that made it."""

    record: RoundRecord
    notes: tuple[str, ...] = ()


#: What a stage hands to the next (see :meth:`Pipeline.run_stage`).
StageValue = Plan | Change | Round | RoundChange


@dataclass
class _Run:
    """The mutable bits of one job in flight: what the result comment shows so far."""

    job: Job
    lease: LeaseKeeper
    log: Any
    view: ResultView
    stages: dict[str, float] = field(default_factory=dict)
    task: DispatchTask | None = None
    issue: Issue | None = None
    started: float = field(default_factory=time.monotonic)
    last_shown: float | None = None  # when progress was last posted (monotonic)
    on_stage: Callable[[str], None] = lambda _name: None  # noqa: E731 (the hooks' on_stage, by Pipeline.run)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.on_stage(name)
        started = time.monotonic()
        try:
            yield
        finally:  # a stage that failed took time too, and `status` shows it
            self.stages[name] = round(time.monotonic() - started, 3)


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
    ) -> None:
        self.settings = settings
        self.sandbox = sandbox or Sandbox.from_settings(settings)
        self.hook_commands = hook_commands or HookCommands.from_settings(settings, sandbox=self.sandbox,
                                                                         redact=redactor, log=log)
        self.inbox = inbox  # feedback rounds: the ledger, or the items a Temporal signal brought
        self.forge = forge
        self.workspace = workspace
        self.chain = list(chain)
        self.ledger = ledger
        self.hooks = hooks
        self.redact = redactor
        self.log = log
        self.clock = clock
        self.labels = policy.Labels(settings.trigger_label, settings.processed_label, settings.failed_label)
        self.retry = retry_policy
        self.reporter = Reporter(forge, self.labels, redactor, log, retry_policy)

    def run(self, job: Job) -> Outcome:
        """Process one claimed job to a final or retryable state; never raises RunnerError."""
        outcome, _ = self._guarded(job, self._process)
        assert isinstance(outcome, Outcome)
        return outcome

    def run_stage(self, job: Job, stage: Stage, *values: Any) -> tuple[StageValue | Outcome, dict[str, float]]:
        """One stage of the same line, for an executor that runs each as its own step (Temporal).

        ``values`` are what the stages before it handed on (a round's intake
        takes none: its item is the inbox's one pending item). Returns the
        stage's value for the next one, or the Outcome when the task (or the
        round) ended in it, with the stage's timings. A round's intake may hand
        on a ``Plan`` instead: the task is work again, and its own stages follow.
        Only the straight line of :meth:`run` may skip listing comments on a
        fresh issue: there one process posts every update of the result comment.
        """
        takes: dict[Stage, tuple[type, ...]] = {
            "intake": (), "change": (Plan,), "publish": (Plan, Change),
            "round_intake": (), "round_change": (Round,), "round_publish": (Round, RoundChange)}
        if len(values) != len(takes[stage]) or not all(map(isinstance, values, takes[stage])):
            raise AssertionError(f"stage {stage!r} lacks the values of the stages before it")
        bodies: dict[Stage, Callable[..., Any]] = {  # first-run intake finds no item pending: never Rounds
            "intake": partial(self._intake, note_comments=False), "change": self._change,
            "publish": self._publish, "round_intake": self._round_entry, "round_change": self._round_change,
            "round_publish": self._round_exit}
        return self._guarded(job, lambda run: bodies[stage](run, *values))

    def _guarded(self, job: Job, body: Callable[[_Run], _T]) -> tuple[_T | Outcome, dict[str, float]]:
        """Run a part of the line under the job's lease; a failure is reported, recorded and returned."""
        log = self.log.bind(repo=job.key.dispatch_repo, issue=job.key.issue_number, attempt=job.attempt)
        view = ResultView(status="running", task_id=job.task_id or "?", agent_name=self.settings.agent_name,
                          attempt=job.attempt, notes=self._warnings())
        with LeaseKeeper(self.ledger, job, lease_seconds=self.settings.lease_seconds,
                         clock=self.clock, log=log) as lease:
            run = _Run(job=job, lease=lease, log=log, view=view)
            run.on_stage = lambda name: self._call_hooks(run, "on_stage", stage=name)
            result = self._run(run, body)
        if isinstance(result, Outcome):
            self._call_hooks(run, "on_outcome", outcome=result)
        return result, dict(run.stages)

    def _run(self, run: _Run, body: Callable[[_Run], _T]) -> _T | Outcome:
        log = run.log
        try:
            if run.job.failures >= self.settings.max_attempts:
                # Its workers keep dying (each takeover counts a failure): stop feeding it to them.
                raise CrashLoop(
                    f"The task was attempted {run.job.failures} times and its worker stopped "
                    "each time without finishing (killed, out of memory, or timed out)."
                )
            return body(run)
        except LeaseLost as exc:
            log.warning("stopping: lease lost", error=str(exc))
            return Outcome("lost", error=str(exc))
        except ShuttingDown as exc:
            return self._release(run, exc)
        except RunnerError as exc:
            return self._fail(run, exc)
        except Exception as exc:  # the loop boundary: a bug must not kill the runner
            log.exception("internal error")
            return self._fail(run, InternalError(f"Internal error ({type(exc).__name__}: {exc})."))

    def _call_hooks(self, run: _Run, name: str, **kwargs: Any) -> None:
        """Observers only (the status line, plugins' on_stage/on_outcome): a gate cannot refuse here."""
        try:
            self.hooks.call(name, issue=run.job.key.issue_number, task=run.task, **kwargs)
        except RunnerError as exc:
            run.log.warning("hook failed", stage=name, error=str(exc))

    # -- the straight line -------------------------------------------------------

    def _process(self, run: _Run) -> Outcome:
        plan = self._intake(run)
        if isinstance(plan, Outcome):
            return plan
        if isinstance(plan, Rounds):
            return self._rounds(run, plan)
        change = self._change(run, plan)
        if isinstance(change, Outcome):
            return change
        return self._publish(run, plan, change)

    def _intake(self, run: _Run, *, note_comments: bool = True) -> Plan | Rounds | Outcome:
        """Read the issue, decide whether it is work (or has feedback waiting), parse it, check who approved it."""
        key = run.job.key
        issue = self.forge.get_issue(key.dispatch_repo, key.issue_number)
        run.issue = issue
        if note_comments:
            self.reporter.note_issue(issue, attempt=run.job.attempt)
        pending = self.inbox.pending_feedback(key) if self.inbox is not None else []
        if pending and self.labels.processed in issue.labels and issue.state == "open":
            return self._rounds_plan(run, issue, pending)
        eligible, why = policy.should_process(issue, self.labels)
        if not eligible:
            run.log.info("skipping issue", reason=why)
            for item_key, _ in pending:  # nothing to iterate on; drop them, or the task never settles
                self._finish_item(run, item_key, "refused", None, {"reason": why})
            return self._record_as_found(run, issue, why)

        task = parse_task(issue.body, dispatch_repo=key.dispatch_repo, issue_number=issue.number,
                          labels=issue.labels)
        run.task = task
        run.log = run.log.bind(task_id=task.task_id, target=task.target_repo)
        self._check_trust(task, issue)
        self.hooks.call("on_claimed", task=task, attempt=run.job.attempt)
        if self.hook_commands.has("pre_task"):
            with run.stage("pre_task"):
                self.hook_commands.pre_task(task, attempt=run.job.attempt)  # HookVetoed: refused
        self._show(run, task_id=task.task_id, stages_done=("claimed",))
        info = self.forge.repo_info(task.target_repo)
        return Plan(issue=issue, clone_url=info.clone_url, base=task.base_branch or info.default_branch)

    def _change(self, run: _Run, plan: Plan) -> Change | Outcome:
        """Make the change on the task branch and push it: clone, generate, validate, re-check, scan, push.

        The stage ends with the commit on GitHub, so the next stage needs
        nothing of this machine's workspace and may run on any worker."""
        task = self._resume(run, plan)
        with run.stage("clone"):
            mirror = retry.call(lambda: self.workspace.sync(task.target_repo, plan.clone_url),
                                what=f"fetch {task.target_repo}", log=run.log, policy=self.retry)
        names, existing = self._names(task, mirror)
        run.log = run.log.bind(branch=names.branch)
        if policy.pull_action(existing) == "merged" and existing is not None:
            return self._succeed(run, existing, Changes(summary="The pull request was already merged."))
        self._show(run, stages_done=("claimed", "cloned"), branch=names.branch)

        job_tag = f"{run.job.key.issue_number}-a{run.job.attempt}"
        with self.workspace.checkout(mirror, branch=names.branch, base_branch=plan.base, job=job_tag) as tree:
            result = self._make_change(run, task, tree, names)
            self.hooks.call("on_generated", task=task, changes=result.changes)

            run.lease.check()
            self._check_trust(task, plan.issue, while_running=True)  # an edit while we worked stops the push
            with run.stage("secret_scan"):
                self._scan_for_secrets(tree, names)
            with run.stage("push"):
                run.lease.renew()  # only the holder of a fresh lease pushes and opens the PR
                head, _ = push_change(self.workspace, tree, clone_url=plan.clone_url,
                                      message=commit_message(task, result.changes.summary),
                                      log=run.log, policy=self.retry)
            self.hooks.call("on_pushed", task=task, branch=names.branch, sha=head)
            self._show(run, stages_done=("claimed", "cloned", "generated", "validated", "pushed"))
        changes = result.changes
        return Change(names=names, existing=existing, head=head, changes=replace(changes, transcript=None),
                      validation_md=result.validation_md, draft=result.draft, notes=result.notes,
                      excerpt=self._excerpt(changes),
                      transcript=str(changes.transcript) if changes.transcript else None)

    def _publish(self, run: _Run, plan: Plan, change: Change) -> Outcome:
        """Open or update the one pull request, then report on the issue and label it."""
        task = self._resume(run, plan, change.names)
        run.lease.renew()
        changes = replace(change.changes, transcript=Path(change.transcript) if change.transcript else None)
        with run.stage("pull_request"):
            body = self.redact(render_pull_body(PullView(
                task=task, summary=changes.summary, files=changes.files, generator=changes.generator,
                usage_line=_usage_line(changes), validation_md=change.validation_md, summary_by=changes.summary_by,
                transcript_excerpt=change.excerpt,
                notes=changes.notes + change.notes + tuple(self.hooks.failures),
            )))
            pull, action = upsert_pull(self.forge, repo=task.target_repo, branch=change.names.branch,
                                       base=plan.base, title=pull_title(task, plan.issue.title), body=body,
                                       existing=change.existing, draft=change.draft, log=run.log,
                                       policy=self.retry)
        run.log.info("pull request ready", pr=pull.html_url, action=action, head=change.head, draft=change.draft)
        self.hooks.call("on_pull_request", task=task, pull=pull)
        return self._succeed(run, pull, changes, notes=changes.notes + change.notes)

    def _resume(self, run: _Run, plan: Plan, names: TaskNames | None = None) -> DispatchTask:
        """The plan's task; a stage run on its own (Temporal) rebuilds what the stages before it set."""
        if run.task is None:
            key = run.job.key
            run.issue = plan.issue
            run.task = parse_task(plan.issue.body, dispatch_repo=key.dispatch_repo, issue_number=key.issue_number,
                                  labels=plan.issue.labels)
            run.log = run.log.bind(task_id=run.task.task_id, target=run.task.target_repo)
            run.view = replace(run.view, task_id=run.task.task_id)
        if names is not None and run.view.branch is None:
            run.log = run.log.bind(branch=names.branch)
            run.view = replace(run.view, branch=names.branch)
        return run.task

    def _rounds(self, run: _Run, rounds: Rounds) -> Outcome:
        """The second entry: each pending item through a round's three stages, in order, each its own commit."""
        for item_key, raw in rounds.pending:
            step = self._round_intake(run, rounds, item_key, raw)
            if isinstance(step, Round):
                step = self._round_publish(run, step, self._round_change(run, step))
            rounds = step
        return self._rounds_done(run, rounds)

    def _rounds_plan(self, run: _Run, issue: Issue, pending: Sequence[tuple[str, dict[str, Any]]]) -> Rounds:
        """Where the rounds go: the approved task's branch and PR, and the rounds it has had so far."""
        assert self.inbox is not None
        key = run.job.key
        task = parse_task(issue.body, dispatch_repo=key.dispatch_repo, issue_number=issue.number,
                          labels=issue.labels)
        run.task = task
        run.log = run.log.bind(task_id=task.task_id, target=task.target_repo)
        self._check_trust(task, issue)
        info = self.forge.repo_info(task.target_repo)
        mirror = self.workspace.sync(task.target_repo, info.clone_url)
        names, pull = self._names(task, mirror)
        run.log = run.log.bind(branch=names.branch)
        history = [RoundRecord.from_json(outcome) for _, status, _, outcome in self.inbox.handled_feedback(key)
                   if outcome.get("number")]
        if not history and pull is not None:  # an executor without a ledger (Temporal): the PR body records them
            history = feedback.recorded(pull.body)
        run.view = replace(run.view, task_id=task.task_id, branch=names.branch)
        return Rounds(plan=Plan(issue=issue, clone_url=info.clone_url, base=task.base_branch or info.default_branch),
                      names=names, pull=pull, history=tuple(history), first_usage=self.inbox.usage_of(key),
                      pending=tuple(pending))

    def _round_intake(self, run: _Run, rounds: Rounds, item_key: str, raw: dict[str, Any]) -> Round | Rounds:
        """A round's intake: a handled item, a non-writer's or a refused round ends here; else the Round to run."""
        assert run.task is not None
        s, task = self.settings, run.task
        if any(r.item_key == item_key for r in rounds.history):  # a redelivery, or a retry after the report
            run.log.info("feedback already handled", feedback=item_key)
            self._finish_item(run, item_key, "done", None, {})
            return rounds
        item = FeedbackItem.from_json(raw)
        log = run.log.bind(feedback=item.key, author=item.author)
        text = feedback.trigger_text(item, command=s.feedback_command,
                                     bot_login=self.forge.authenticated_login(task.dispatch_repo))
        permission = self.forge.permission(item.repo, item.author) if text is not None else None
        if text is None or permission not in policy.TRUSTED_PERMISSIONS:
            log.warning("feedback ignored: its author may not write to the repository it was posted in",
                        permission=permission, repo=item.repo)
            self._finish_item(run, item_key, "refused", None, {})
            return replace(rounds, ran=True)
        spent = feedback.spent_from(rounds.first_usage, rounds.history)
        round_ = Round(rounds=rounds, item=item, text=text, number=spent.rounds + 1, spent=spent)
        why = feedback.refusal(item, text, spent, feedback.Limits(
            max_rounds=s.max_feedback_rounds, max_tokens=s.max_tokens_per_task,
            max_cost_usd=s.max_cost_usd_per_task))
        if why is None and (rounds.pull is None or rounds.pull.state != "open"):
            why = ("The task's pull request is merged or closed, so there is nothing to iterate on. "
                   "Open a new dispatch issue for further changes.")
        if why is not None:
            log.info("feedback round refused", reason=why)
            return self._round_publish(run, round_, RoundChange(self._record(round_, "refused", summary=why),
                                                                notes=(why,)))
        if item.reactable:
            self.forge.add_reaction(item, "eyes")
        log.info("feedback round", round=round_.number)
        return round_

    def _round_change(self, run: _Run, round_: Round) -> RoundChange:
        """A round's change: its commit pushed, or the failure the round reports; transient ones retry."""
        task = self._resume(run, round_.rounds.plan, round_.rounds.names)
        try:
            return RoundChange(self._round_commit(run, task, round_))
        except (LeaseLost, CrashLoop, ShuttingDown):
            raise
        except RunnerError as exc:
            if exc.transient and run.job.failures + 1 < self.settings.max_attempts:
                raise  # retried with backoff; the item stays pending
            message = self.redact(str(exc))
            run.log.warning("feedback round failed", feedback=round_.item.key, error=message,
                            error_type=type(exc).__name__)
            return RoundChange(self._record(round_, "failed", summary=message),
                               notes=(f"Round {round_.number} failed: {message}",))

    def _round_commit(self, run: _Run, task: DispatchTask, round_: Round) -> RoundRecord:
        """Generate, guard, validate and push the round's commit, once even across a crash."""
        plan, names, item, number = round_.rounds.plan, round_.rounds.names, round_.item, round_.number
        mirror = self.workspace.sync(task.target_repo, plan.clone_url)
        record = self._record(round_, "pushed")
        done = self.workspace.commit_with_line(mirror, names.branch, plan.base, feedback.trailer(item.key))
        if done is not None:  # a worker pushed this round, then died before recording it
            return replace(record, sha=done, summary="Pushed before the runner restarted.")
        job_tag = f"{run.job.key.issue_number}-a{run.job.attempt}-r{number}"
        with self.workspace.checkout(mirror, branch=names.branch, base_branch=plan.base, job=job_tag) as tree:
            # A review's inline comments travel with it: each with its file, line and hunk.
            thread = list(self.forge.review_thread(item)) if item.kind == "review" else []
            round_ctx = feedback.round_context(number, [item, *thread],
                                               [round_.text, *(feedback.visible_text(c.body).strip() for c in thread)],
                                               task.instruction, self.workspace.diff(tree))
            result = self._make_change(run, task, tree, names, round_ctx=round_ctx, spent=round_.spent)
            run.lease.check()
            changes = result.changes
            message = feedback.commit_message(commit_message(task, changes.summary), number, item)
            with run.stage(f"secret_scan_round_{number}"):
                self._scan_for_secrets(tree, names)
            with run.stage(f"push_round_{number}"):
                run.lease.renew()
                head, committed = push_change(self.workspace, tree, clone_url=plan.clone_url, message=message,
                                              log=run.log, policy=self.retry)
        usage = changes.usage
        return replace(record, outcome="pushed" if committed else "unchanged", sha=head if committed else None,
                       summary=changes.summary, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                       cost_usd=usage.cost_usd)

    def _round_publish(self, run: _Run, round_: Round, change: RoundChange) -> Rounds:
        """A round's publish: the PR body's rounds record and the one result comment say what it did."""
        rounds, record = round_.rounds, change.record
        self._resume(run, rounds.plan, rounds.names)
        history = (*rounds.history, record)
        pull = self._report_round(run, rounds.pull, list(history), notes=change.notes)
        status = record.outcome if record.outcome in ("failed", "refused") else "done"
        self._finish_item(run, round_.item.key, status, record.number, record.to_json())
        return replace(rounds, pull=pull, history=history, ran=True)

    def _round_entry(self, run: _Run) -> Plan | Round | Outcome:
        """A round's intake as a step of its own: the task's intake, with the item in hand its one pending."""
        rounds = self._intake(run, note_comments=False)
        if not isinstance(rounds, Rounds):  # the task is work again (a Plan), or nothing to do
            return rounds
        [(item_key, raw)] = rounds.pending
        step = self._round_intake(run, rounds, item_key, raw)
        return step if isinstance(step, Round) else self._rounds_done(run, step)

    def _round_exit(self, run: _Run, round_: Round, change: RoundChange) -> Outcome:
        """A round's publish as a step of its own: it ends the round."""
        return self._rounds_done(run, self._round_publish(run, round_, change))

    def _rounds_done(self, run: _Run, rounds: Rounds) -> Outcome:
        """Record the rounds' end; a retry that finds its round recorded shows it on the comment too."""
        pull = rounds.pull
        if not rounds.ran and rounds.history:
            pull = self._report_round(run, pull, list(rounds.history))
        self._complete(run, pr_url=pull.html_url if pull else None)
        return Outcome("succeeded", pr_url=pull.html_url if pull else None, stage_seconds=dict(run.stages))

    @staticmethod
    def _record(round_: Round, outcome: feedback.RoundOutcome, summary: str = "") -> RoundRecord:
        item = round_.item
        return RoundRecord(number=round_.number, item_key=item.key, kind=item.kind, author=item.author,
                           outcome=outcome, html_url=item.html_url, summary=summary)

    def _report_round(self, run: _Run, pull: PullRequest | None, records: list[RoundRecord],
                      notes: tuple[str, ...] = ()) -> PullRequest | None:
        """The same PR's body gets the rounds section; the same result comment is edited."""
        assert run.task is not None
        run.lease.check()
        if pull is not None and pull.state == "open":
            # The rounds record is encoded in the body: redact its text before, not after.
            clean = [replace(r, summary=self.redact(r.summary)) for r in records]
            body = self.redact(feedback.with_rounds(pull.body, clean))
            if body.strip() != pull.body.strip():
                pull = self.forge.update_pull(run.task.target_repo, pull.number, body=body)
        self._show(run, final=True, status="succeeded", pr_url=pull.html_url if pull else None,
                   pr_number=pull.number if pull else None, summary=None, stages_done=(), progress=None,
                   rounds=tuple(feedback.round_line(r) for r in records), notes=notes)
        return pull

    def _finish_item(self, run: _Run, item_key: str, status: str, round_no: int | None,
                     outcome: dict[str, Any]) -> None:
        if self.inbox is not None:
            self.inbox.finish_feedback(run.lease.job, item_key, status=status, round_no=round_no,
                                       outcome=outcome, now=self.clock())

    def _make_change(self, run: _Run, task: DispatchTask, tree: Worktree, names: TaskNames, *,
                     round_ctx: RoundContext | None = None, spent: Spent | None = None) -> _Change:
        """Generate, guard and validate; a failed validation feeds its output back for another round."""
        s = self.settings
        # From the base commit only: what a change or an earlier run put on the branch never counts.
        repo_config = load_repo_config(self.workspace.files_at(tree, tree.base_sha))
        repo_notes: tuple[str, ...] = ()
        if (repo_config.setup or repo_config.validate) and not s.repo_commands_allowed(task.target_repo):
            repo_notes = (f"`.agent-runner.yml` lists setup or validate commands; they were not run "
                          f"because `REPO_COMMANDS` does not allow them for {task.target_repo}.",)
            repo_config = replace(repo_config, setup=(), validate=())
        env = minimal_env(s.command_env_allowlist)
        if repo_config.setup:
            self._show(run, progress="running the repository's setup commands")
            with run.stage("setup"):
                run_setup(repo_config, tree.path, env, s.validation_timeout_seconds,
                          sandbox=self.sandbox, git_dir=tree.git_dir)
        commands = s.validate_commands or repo_config.validate
        chain = self._chain_for(task)
        model = choose_model(task, s)
        notes = tuple(repo_config.warnings) + repo_notes + ((model.note,) if model.note else ())
        validation_feedback: str | None = None
        usage = Usage()
        for round_no in range(s.validation_rounds + 1):
            # Only validation needs the snapshot (to tell whether a round changed anything).
            before = self.workspace.snapshot(tree) if commands else None
            with run.stage("generate" if round_no == 0 else f"generate_round_{round_no + 1}"):
                ctx = replace(self._context(run, task, tree.path, names, model.model, repo_config.instructions,
                                            validation_feedback, round_ctx, spent), git_dir=tree.git_dir)
                changes = run_chain(chain, ctx, reset=lambda: self.workspace.reset(tree),
                                    changed=partial(self._changed, tree, before=before, trace_path=names.trace_path))
                write_trace(ctx, branch=names.branch, max_bytes=s.max_file_bytes,
                            clean=lambda text: self.redact(secrets.mask(text, s.secrets())))
                files = self.workspace.changed_files(tree)
                guard.check_tree(tree.path, files, allow_workflows=s.allow_workflow_changes,
                                 max_bytes=s.max_file_bytes, max_change_bytes=s.max_change_bytes,
                                 max_changed_files=s.max_changed_files)
            usage = usage + changes.usage
            changes = replace(changes, files=tuple(files), usage=usage)
            self._show(run, stages_done=("claimed", "cloned", "generated"))
            if not commands:
                return _Change(changes, notes=notes)
            progressed = round_no == 0 or self.workspace.snapshot(tree) != before
            with run.stage("validate"):
                self._show(run, progress=f"validating (round {round_no + 1})")
                report = run_validation(commands, worktree=tree.path, env=env, timeout_s=s.validation_timeout_seconds,
                                        sandbox=self.sandbox, git_dir=tree.git_dir)
                self.workspace.restore_snapshot(tree)
            decision = validation_outcome(report, round_no, s.validation_rounds, s.on_validation_failure)
            run.log.info("validation", passed=report.passed, round=round_no + 1, decision=decision)
            if decision == "pass":
                return _Change(changes, report.render_markdown(), notes=notes)
            if decision == "retry" and progressed:
                validation_feedback = report.failure_feedback()
                continue
            break
        if s.on_validation_failure == "draft":
            return _Change(changes, report.render_markdown(), draft=True,
                           notes=notes + (f"Validation failed after {round_no + 1} round(s); opened as a draft.",))
        failed = ", ".join(f"`{r.command}` ({r.status})" for r in report.failures)
        raise ValidationFailed(f"Validation failed after {round_no + 1} round(s): {failed}.\n\n"
                               f"{report.failure_feedback(1500)}")

    # -- stages ------------------------------------------------------------------

    def _check_trust(self, task: DispatchTask, issue: Issue, *, while_running: bool = False) -> None:
        """Writers must have approved the text: one history read plus cached permission lookups."""
        policy.check_target(task.target_repo, self.settings.target_allowed(task.target_repo),
                            self.settings.allowed_target_repos, task.dispatch_repo.split("/")[0])
        if not self.settings.require_labeler_permission:
            return
        facts = policy.approval(self.forge.issue_trail(issue.repo, issue.number), self.labels)
        me = self.forge.authenticated_login(issue.repo).lower()
        permissions = {login.lower(): "admin" if login.lower() == me else self.forge.permission(issue.repo, login)
                       for login in facts.people()}
        policy.check_approval(facts, permissions, self.labels, issue.repo, while_running=while_running)

    def _scan_for_secrets(self, tree: Worktree, names: TaskNames) -> None:
        """Scan the added lines of the whole change, and the whole trace file, before any push."""
        own = self.settings.secrets()
        findings = secrets.scan_diff(self.workspace.staged_diff(tree), own)
        trace = tree.path / names.trace_path
        if trace.is_file():
            text = trace.read_text(encoding="utf-8", errors="replace")
            findings += secrets.scan_lines(names.trace_path, enumerate(text.split("\n"), start=1), own)
        secrets.check(sorted(set(findings), key=lambda f: (f.path, f.line, f.rule)))

    def _names(self, task: DispatchTask, mirror: Mirror) -> tuple[TaskNames, PullRequest | None]:
        """Pick the branch, moving aside when another task id already owns the primary one."""
        primary = task_names(task)
        pull = self.forge.find_pull(task.target_repo, primary.branch)
        text = pull.body if pull is not None else mirror.read_file(primary.branch, primary.trace_path)
        names = choose_names(task, task_id_of(text))
        if not names.disambiguated:
            return names, pull
        return names, self.forge.find_pull(task.target_repo, names.branch)

    def _changed(self, tree: Worktree, changes: Changes, *, before: str | None, trace_path: str) -> bool:
        """Whether a generator left a change outside the trace file.

        A re-run may rewrite exactly what the branch already holds: that counts
        when the generator says it wrote those files. A reply with no edit does not.
        """
        if not set(self.workspace.changed_files(tree)) - {trace_path}:
            return False
        if set(changes.files) - {trace_path} or tree.remote_sha is None:  # a new branch: all of it is new
            return True
        # An existing branch, and the generator names no file: did it change the tree it started from?
        return self.workspace.snapshot(tree) != (before or self.workspace.head_tree(tree))

    def _chain_for(self, task: DispatchTask) -> Sequence[Generator]:
        """The task's own `generator` metadata picks from the installed generators."""
        if not task.generator:
            return self.chain
        try:
            return build_chain([n.strip() for n in task.generator.split(",")], self.settings)
        except ConfigError as exc:
            raise TaskSpecError(f"The task asks for generator `{task.generator}`: {exc}") from exc

    def _context(self, run: _Run, task: DispatchTask, worktree: Path, names: TaskNames, model: str | None,
                 repo_instructions: str, validation_feedback: str | None,
                 round_ctx: RoundContext | None = None, spent: Spent | None = None) -> GenerationContext:
        s = self.settings
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
            report_progress=lambda message: self._progress(run, message),
        )

    def _succeed(self, run: _Run, pull: PullRequest, changes: Changes, notes: tuple[str, ...] = ()) -> Outcome:
        assert run.task is not None
        run.lease.check()
        hook_notes = self._post_task(run, "succeeded", pr_url=pull.html_url)
        self._show(run, final=True, status="succeeded", pr_url=pull.html_url, pr_number=pull.number,
                   summary=changes.summary, files=changes.files, stages_done=(), progress=None,
                   summary_by=changes.summary_by, no_change=changes.no_change, generator=changes.generator,
                   fell_back=changes.fell_back,
                   notes=self._warnings() + notes + tuple(self.hooks.failures) + hook_notes)
        self.reporter.mark_processed(run.task.dispatch_repo, run.task.issue_number,
                                     carried=run.issue.labels if run.issue is not None else None)
        self.hooks.call("on_finished", task=run.task, pull=pull)
        if self.inbox is not None and changes.usage.total_tokens:
            u = changes.usage
            self.inbox.record_usage(run.lease.job, {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
                                                    "cost_usd": u.cost_usd}, now=self.clock())
        self._complete(run, pr_url=pull.html_url, transcript=changes.transcript)
        return Outcome("succeeded", pr_url=pull.html_url, stage_seconds=dict(run.stages))

    def _fail(self, run: _Run, error: RunnerError) -> Outcome:
        """Report, label and record a failure; transient ones are retried with backoff."""
        key, job = run.job.key, run.job
        message = self.redact(str(error))
        failures = job.failures + 1
        decision = policy.retry_decision(error, failures, self.settings.max_attempts)
        run.log.warning("task failed", error=message, error_type=type(error).__name__, decision=decision,
                        failures=failures)
        retry_at: datetime | None = None
        try:
            if run.lease.lost:
                raise LeaseLost("lease lost while failing")
            if decision == "retry":
                retry_at = self.clock() + timedelta(seconds=self._retry_delay(error, failures))
                self._show(run, force=True, status="retrying", error=message)
            else:
                status = "refused" if isinstance(error, PolicyRefused) else "failed"
                hook_notes = self._post_task(run, status, error=message)
                self._show(run, final=True, status=status, error=message, hint=error.hint, progress=None,
                           notes=run.view.notes + hook_notes)
                self.reporter.mark_failed(key.dispatch_repo, key.issue_number)
                if run.task is not None:
                    self.hooks.call("on_failed", task=run.task, error=error)
        except LeaseLost:
            return Outcome("lost", error=message)
        except RunnerError as report_error:
            # Could not even report: keep the task alive so the report happens later, even past
            # the attempt budget (`dead` without `agent-failed` would be a lie about GitHub).
            run.log.warning("could not report failure", error=self.redact(str(report_error)))
            if failures < self.settings.max_attempts or retry.retryable(report_error):
                decision = "retry"
                retry_at = self.clock() + timedelta(seconds=self._retry_delay(report_error, failures))
        try:
            with run.lease.finishing() as current:
                self.ledger.fail(current, now=self.clock(), error=message, retry_at=retry_at,
                                 stage_seconds=run.stages)
        except LeaseLost:
            return Outcome("lost", error=message)
        return Outcome("retrying" if decision == "retry" else "failed", error=message,
                       stage_seconds=dict(run.stages))

    def _release(self, run: _Run, stop: ShuttingDown) -> Outcome:
        """Shutdown cut a wait on GitHub short: hand the task back as it is, counting no failure."""
        run.log.info("stopping: shutting down", error=str(stop))
        try:
            with run.lease.finishing() as job:
                self.ledger.release(job, now=self.clock())
        except RunnerError as exc:  # already released by the drain, or the ledger is away: its lease expires
            run.log.info("lease not released by the job", error=str(exc))
        return Outcome("released", error=str(stop), stage_seconds=dict(run.stages))

    def _record_as_found(self, run: _Run, issue: Issue, why: str) -> Outcome:
        """Record what GitHub already says about an issue we may not work on, so `status` agrees.

        A takeover of a task whose worker died after labeling finds `processed`
        (then the PR is looked up by its head branch and recorded) or
        `agent-failed` (then the task is `dead`, pointing at the result comment).
        """
        if self.labels.failed in issue.labels and self.labels.processed not in issue.labels:
            error = (f"The issue is labeled `{self.labels.failed}`: an earlier attempt failed, and the "
                     "result comment on the issue says why.")
            with run.lease.finishing() as job:
                self.ledger.fail(job, now=self.clock(), error=error, retry_at=None, stage_seconds=run.stages)
            return Outcome("skipped", error=why)
        pull = self._find_task_pull(issue) if self.labels.processed in issue.labels else None
        self._complete(run, pr_url=pull.html_url if pull else None)
        return Outcome("skipped", pr_url=pull.html_url if pull else None, error=why)

    def _find_task_pull(self, issue: Issue) -> PullRequest | None:
        """The PR of a processed issue, by head branch: the primary one, else the disambiguated one."""
        try:
            task = parse_task(issue.body, dispatch_repo=issue.repo, issue_number=issue.number,
                              labels=issue.labels)
        except TaskSpecError:
            return None
        primary = task_names(task)
        pull = self.forge.find_pull(task.target_repo, primary.branch)
        if pull is not None and task_id_of(pull.body) in (None, task.task_id):
            return pull
        return self.forge.find_pull(task.target_repo, task_names(task, disambiguate=True).branch)

    # -- helpers -----------------------------------------------------------------

    def _warnings(self) -> tuple[str, ...]:
        """What every result comment says while the sandbox is off."""
        return (self.sandbox.warning,) if self.sandbox.warning else ()

    def _excerpt(self, changes: Changes) -> str | None:
        if changes.transcript is None or not changes.transcript.is_file():
            return None
        text = changes.transcript.read_text(encoding="utf-8", errors="replace")
        return excerpt(text, (), limit=EXCERPT_CHARS, collapse=False) or None

    def _complete(self, run: _Run, *, pr_url: str | None, transcript: Path | None = None) -> None:
        with run.lease.finishing() as job:
            self.ledger.complete(job, now=self.clock(), pr_url=pr_url, stage_seconds=run.stages,
                                 transcript=str(transcript) if transcript else None)

    def _retry_delay(self, error: RunnerError, failures: int) -> float:
        delay = backoff_delay(failures, base=self.settings.retry_base_seconds, cap=self.settings.retry_max_seconds)
        if isinstance(error, RateLimited):
            delay = max(delay, error.retry_after)
        return delay

    def _show(self, run: _Run, *, final: bool = False, force: bool = False, **changes: Any) -> None:
        """Update the result comment; progress is paced and best effort, final updates are not."""
        run.view = replace(run.view, **changes)
        if not final:
            run.lease.check()
        key = run.job.key
        if final:
            self.reporter.post(key.dispatch_repo, key.issue_number, run.view, run.lease.renew)
            return
        now = time.monotonic()
        since = None if run.last_shown is None else now - run.last_shown
        if not force and not progress_due(now - run.started, since, after_s=self.settings.progress_after_seconds,
                                          every_s=self.settings.progress_every_seconds):
            return
        if self.reporter.progress(key.dispatch_repo, key.issue_number, run.view, run.lease.renew):
            run.last_shown = now

    def _post_task(self, run: _Run, status: str, *, pr_url: str | None = None,
                   error: str | None = None) -> tuple[str, ...]:
        """Tell the post_task hook the final outcome; its failure becomes a note on the result comment."""
        if run.task is None or not self.hook_commands.has("post_task"):
            return ()
        with run.stage("post_task"):
            note = self.hook_commands.post_task(run.task, attempt=run.job.attempt, status=status, pr_url=pr_url,
                                                error=error)
        return (note,) if note else ()

    def _progress(self, run: _Run, message: str) -> None:
        run.log.info("progress", message=message)
        self._show(run, progress=message)


@dataclass(frozen=True)
class _Change:
    """What the generate-and-validate stage hands to publishing."""

    changes: Changes
    validation_md: str | None = None
    draft: bool = False
    notes: tuple[str, ...] = ()



def _usage_line(changes: Changes) -> str | None:
    usage = changes.usage
    if not usage.total_tokens and not usage.duration_s:
        return None
    parts = [f"model {display_model(usage.model)}" if usage.model else None,
             f"{usage.input_tokens} in / {usage.output_tokens} out tokens" if usage.total_tokens else None,
             f"${usage.cost_usd:.4f}" if usage.cost_usd is not None else None,
             f"{usage.duration_s:.1f} s" if usage.duration_s else None]
    return "Usage: " + ", ".join(p for p in parts if p)
