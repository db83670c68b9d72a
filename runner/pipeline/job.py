"""Hold one job in flight, and what every stage asks of the task: its dependencies, trust, names.

:class:`Deps` is built once per process (the pipeline's object graph);
:class:`JobRun` is the mutable state of one job while a stage runs: its
lease, its bound logger and what the result comment shows so far.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from runner.config import Settings
from runner.core import policy
from runner.core.render import ResultView
from runner.core.task import (
    DispatchTask,
    TaskNames,
    choose_names,
    parse_task,
    task_id_of,
    task_names,
)
from runner.forge.base import Forge, Issue, PullRequest
from runner.generators.base import Generator
from runner.hooks.commands import HookCommands
from runner.hooks.plugins import CombinedHooks
from runner.ledger.base import FeedbackInbox, Job, JobLedger, WorkloadSource
from runner.ledger.lease import LeaseKeeper
from runner.log import Redactor
from runner.metrics import Metrics
from runner.pipeline.values import Plan
from runner.sandbox import Sandbox
from runner.steps import retry
from runner.steps.report import Reporter
from runner.steps.workspace import Mirror, Workspace


@dataclass(frozen=True)
class Deps:
    """Everything the stages use, passed in (tests pass the emulators); shared by all worker threads."""

    settings: Settings
    forge: Forge
    workspace: Workspace
    chain: Sequence[Generator]
    ledger: JobLedger
    hooks: CombinedHooks
    redact: Redactor
    log: Any
    clock: Callable[[], datetime]
    sandbox: Sandbox
    hook_commands: HookCommands
    labels: policy.Labels
    retry: retry.RetryPolicy
    reporter: Reporter
    #: Feedback rounds: the ledger, or the items a Temporal signal brought.
    inbox: FeedbackInbox | None = None
    #: How much work waits in the deployment (the ledger), for the progress decision; None: unknown.
    workload: WorkloadSource | None = None
    metrics: Metrics | None = None


@dataclass
class JobRun:
    """The mutable bits of one job in flight: what the result comment shows so far."""

    job: Job
    lease: LeaseKeeper
    log: Any
    view: ResultView
    stages: dict[str, float] = field(default_factory=dict)
    task: DispatchTask | None = None
    issue: Issue | None = None
    started: float = field(default_factory=time.monotonic)
    last_shown: float | None = None  # when progress was last posted, or decided against (monotonic)
    on_stage: Callable[[str], None] = lambda _name: None  # noqa: E731 (the hooks' on_stage, set by the pipeline)
    #: The hooks' on_progress (a message and/or the usage so far), set by the pipeline.
    on_progress: Callable[[str | None, Any], None] = lambda _message, _usage: None  # noqa: E731

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.on_stage(name)
        started = time.monotonic()
        try:
            yield
        finally:  # a stage that failed took time too, and `status` shows it
            self.stages[name] = round(time.monotonic() - started, 3)

    def adopt(self, task: DispatchTask) -> DispatchTask:
        """Bind the parsed task to the job's logger."""
        self.task = task
        self.log = self.log.bind(task_id=task.task_id, target=task.target_repo)
        return task


def parse(run: JobRun, issue: Issue) -> DispatchTask:
    """The issue's task, bound to the job."""
    key = run.job.key
    return run.adopt(parse_task(issue.body, dispatch_repo=key.dispatch_repo, issue_number=issue.number,
                                labels=issue.labels))


def resume(run: JobRun, plan: Plan, names: TaskNames | None = None) -> DispatchTask:
    """The plan's task; a stage run on its own (Temporal) rebuilds what the stages before it set."""
    if run.task is None:
        run.issue = plan.issue
        parse(run, plan.issue)
        assert run.task is not None
        run.view = replace(run.view, task_id=run.task.task_id)
    if names is not None and run.view.branch is None:
        run.log = run.log.bind(branch=names.branch)
        run.view = replace(run.view, branch=names.branch)
    return run.task


def check_trust(d: Deps, task: DispatchTask, issue: Issue, *, while_running: bool = False) -> None:
    """Writers must have approved the text: one history read plus cached permission lookups."""
    policy.check_target(task.target_repo, d.settings.target_allowed(task.target_repo, task.dispatch_repo),
                        d.settings.allowed_target_repos, task.dispatch_repo.split("/")[0])
    if not d.settings.require_labeler_permission:
        return
    facts = policy.approval(d.forge.issue_trail(issue.repo, issue.number), d.labels)
    me = d.forge.authenticated_login(issue.repo).lower()
    permissions = {login.lower(): "admin" if login.lower() == me else d.forge.permission(issue.repo, login)
                   for login in facts.people()}
    policy.check_approval(facts, permissions, d.labels, issue.repo, while_running=while_running)


def names_for(d: Deps, run: JobRun, task: DispatchTask, mirror: Mirror) -> tuple[TaskNames, PullRequest | None]:
    """The task's branch, decided once and for good (issue #29).

    The first time, pick it (moving aside when another task id already owns the
    primary name on GitHub) and record it in the ledger before anything is pushed;
    the ledger refuses a name another task recorded, so two tasks whose ids share
    their first 8 characters never share a branch, whatever the timing. Every later
    attempt, round and replica reuses what the ledger recorded."""
    primary, aside = task_names(task), task_names(task, disambiguate=True)
    owned = run.job.branch
    if owned is not None and owned in (branch_key(task, primary), branch_key(task, aside)):
        names = aside if owned == branch_key(task, aside) else primary
        return names, d.forge.find_pull(task.target_repo, names.branch)
    pull = d.forge.find_pull(task.target_repo, primary.branch)
    text = pull.body if pull is not None else mirror.read_file(primary.branch, primary.trace_path)
    names = choose_names(task, task_id_of(text))
    if not names.disambiguated and not d.ledger.own_branch(run.lease.job, branch_key(task, names), now=d.clock()):
        names, pull = aside, None  # another task recorded the primary name first
    if names.disambiguated:
        d.ledger.own_branch(run.lease.job, branch_key(task, names), now=d.clock())
        pull = d.forge.find_pull(task.target_repo, names.branch)
    run.log.info("branch owned", branch=names.branch)
    return names, pull


def branch_key(task: DispatchTask, names: TaskNames) -> str:
    """How the ledger records a task's branch: unique across tasks, per target repository."""
    return f"{task.target_repo.lower()}:{names.branch}"


def plan_of(d: Deps, task: DispatchTask, issue: Issue) -> Plan:
    """Where the task's target lives: its clone URL and the base branch."""
    info = d.forge.repo_info(task.target_repo)
    return Plan(issue=issue, clone_url=info.clone_url, base=task.base_branch or info.default_branch)
