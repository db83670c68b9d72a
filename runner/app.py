"""Wire the real pieces together from Settings: the one composition root.

It builds the object graph once (token source, forge, workspace, generator
chain, hooks, sandbox, ledger, pipeline) and picks the executor from
:data:`EXECUTORS` by ``EXECUTOR``. Only the CLI calls it; tests call it with
settings that point at the emulators.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from runner.breakers import Breakers
from runner.config import Settings
from runner.errors import AppNotInstalled, ConfigError, SandboxUnavailable
from runner.executors.base import Executor
from runner.forge.auth import AppInstallations, TokenSource
from runner.forge.base import Forge
from runner.forge.connect import forge_from_settings, token_source, utc_now
from runner.forge.github import GitHubForge
from runner.generators import build_chain
from runner.generators.llm.sdk import UPSTREAMS
from runner.hooks.plugins import CombinedHooks, load_hooks
from runner.ledger import ledger_scheme, open_ledger
from runner.ledger.base import FeedbackInbox, JobLedger, Ledger
from runner.log import REDACTOR, get_logger
from runner.metrics import Metrics
from runner.ops.dashboard import Dashboard
from runner.ops.live_tasks import LiveTasks
from runner.ops.preflight import prepare, shared_ledger
from runner.ops.status_model import StatusSources, web_url
from runner.ops.status_page import StatusPage
from runner.pipeline import Pipeline
from runner.sandbox import Sandbox
from runner.steps.workspace import Identity, Workspace

__all__ = ["EXECUTORS", "App", "ExecutorKind", "build_app", "dashboard", "status_page", "utc_now", "worker_id"]


def worker_id() -> str:
    """A lease owner that names the machine and process, unique across restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class App:
    settings: Settings
    forge: Forge
    ledger: JobLedger
    workspace: Workspace
    pipeline: Pipeline
    executor: Executor
    metrics: Metrics
    tokens: TokenSource | None = None
    #: Under Temporal, the PostgreSQL ledger that holds only the shared write slots.
    slots: Ledger | None = None
    #: What this process's tasks are doing now (a hook), for the status page.
    live: LiveTasks | None = None

    def close(self) -> None:
        self.ledger.close()
        if self.slots is not None:
            self.slots.close()


@dataclass(frozen=True)
class Built:
    """What every executor is built from: the one object graph."""

    settings: Settings
    forge: GitHubForge
    ledger: JobLedger
    pipeline: Pipeline
    clock: Callable[[], datetime]
    owner: str
    log: Any
    metrics: Metrics


@dataclass(frozen=True)
class ExecutorKind:
    """How one ``EXECUTOR`` gets its job ledger, its shared write slots and its executor."""

    ledger: Callable[[Settings], JobLedger]
    slots: Callable[[Settings], Ledger | None]
    make: Callable[[Built], Executor]


def _threads(built: Built) -> Executor:
    from runner.executors.threads import ThreadExecutor

    # The SQLite or PostgreSQL ledger: it queues and leases too, not only records.
    ledger = cast(Ledger, built.ledger)
    return ThreadExecutor(settings=built.settings, forge=built.forge, ledger=ledger, pipeline=built.pipeline,
                          clock=built.clock, owner=built.owner, log=built.log, metrics=built.metrics,
                          interrupt=built.forge.interrupt)


def _activity_ledger(_settings: Settings) -> JobLedger:
    from runner.executors.temporal.activities import ActivityLedger

    return ActivityLedger()


def _temporal(built: Built) -> Executor:
    """The same pipeline, each stage an activity; Temporal holds the durable state."""
    from runner.executors.temporal.activities import ActivityLedger, TaskActivities
    from runner.executors.temporal.executor import TemporalExecutor

    assert isinstance(built.ledger, ActivityLedger)
    if len(built.settings.require_dispatch_repos()) > 1:
        raise ConfigError("EXECUTOR=temporal serves one dispatch repository; for several (DISPATCH_REPOS) "
                          "use EXECUTOR=ledger, or run one Temporal deployment per dispatch repository.")
    activities = TaskActivities(pipeline=built.pipeline, ledger=built.ledger, owner=built.owner, clock=built.clock,
                                metrics=built.metrics, log=built.log)
    return TemporalExecutor(settings=built.settings, forge=built.forge, activities=activities, clock=built.clock,
                            owner=built.owner, log=built.log, metrics=built.metrics)


def _shared_slots(settings: Settings) -> Ledger | None:
    """Under Temporal, a PostgreSQL LEDGER_URL keeps the write slots every replica draws on.

    Temporal holds the tasks' state, so nothing else lives there; without one,
    each replica paces its own writes (:func:`runner.ops.preflight.write_pacing` says so)."""
    if not settings.github_throttle or not shared_ledger(settings):
        return None
    return open_ledger(settings.ledger_location)


#: ``EXECUTOR`` → how to build it. The ledger executor keeps its write slots in its own ledger.
EXECUTORS: dict[str, ExecutorKind] = {
    "ledger": ExecutorKind(ledger=lambda s: open_ledger(s.ledger_location), slots=lambda _s: None, make=_threads),
    "temporal": ExecutorKind(ledger=_activity_ledger, slots=_shared_slots, make=_temporal),
}


def bot_identity(settings: Settings, tokens: TokenSource, forge: GitHubForge) -> Identity:
    """Commit as the app's bot (``<id>+<slug>[bot]@users.noreply.github.com``), or as configured."""
    if not isinstance(tokens, AppInstallations):
        return Identity(settings.author_name, settings.git_author_email)
    for dispatch_repo in settings.require_dispatch_repos():
        try:
            tokens.installation_id(dispatch_repo)
        except AppNotInstalled as exc:
            raise ConfigError(
                f"The GitHub App is not installed on the dispatch repository {dispatch_repo}. "
                f"Install it there first: {exc.install_url}"
            ) from None
    bot = tokens.identity(settings.require_dispatch_repo(), forge.user_id)
    return Identity(bot.name, bot.email)


def describe_sandbox(sandbox: Sandbox, log: Any) -> str:
    """Say at start-up which backend isolates untrusted commands, or why none can."""
    try:
        backend = sandbox.backend()
    except SandboxUnavailable as exc:
        log.error("sandbox unavailable: untrusted commands will be refused", reason=str(exc))
        return f"unavailable ({exc})"
    if not backend.isolated:
        log.warning("sandbox off: untrusted commands run without isolation", backend=backend.name)
        return "off (SANDBOX=off: untrusted commands run without isolation)"
    log.info("sandbox ready", backend=backend.name, version=backend.detail, network=sandbox.network)
    return f"{backend.name} ({backend.detail}; network {'allowed' if sandbox.network else 'off'})"


def build_app(settings: Settings, *, clock: Callable[[], datetime] = utc_now, log: Any = None) -> App:
    """Build everything a command needs, once; raises ConfigError on bad settings."""
    dispatch_repos = settings.require_dispatch_repos()
    kind = EXECUTORS[settings.executor]
    REDACTOR.add(settings.secrets())
    tokens = token_source(settings, clock=clock)
    log = log or get_logger(agent=settings.agent_name)
    # One breaker per dependency, shared by every worker. Under Temporal a stage holds at most
    # TEMPORAL_STAGE_HOLD_SECONDS (within the start-to-close timeout of the GitHub-only stages);
    # then it waits as a retried activity (issue #29).
    hold_s = None if settings.executor == "ledger" else settings.temporal_stage_hold_seconds
    breakers = Breakers.from_settings(settings, hold_s=hold_s, log=log)
    UPSTREAMS.configure(settings)  # the model upstreams' breakers (API generators and the gateway)
    chain = build_chain(settings.generators, settings)
    # The status page's registry hears every event first, before any plugin hook can hold it up.
    live = LiveTasks(default_generator=",".join(settings.generators), default_model=settings.default_model)
    hooks = CombinedHooks([live, *load_hooks(settings.hooks)], log)
    prepare(settings)  # directories made and writable, command programs on PATH
    ledger = kind.ledger(settings)
    slots = kind.slots(settings)
    forge = forge_from_settings(settings, tokens, ledger=slots or ledger, log=log, breakers=breakers)
    workspace = Workspace(settings.workspace_dir, token=tokens.token_for,
                          identity=bot_identity(settings, tokens, forge), breakers=breakers)
    metrics = Metrics(stale_after_s=max(300.0, settings.effective_poll_interval * 3))
    ledger_breaker = getattr(ledger, "breaker", None)  # the SQL ledgers watch their database
    metrics.dependencies = lambda: [(s.name, s.up, s.open_seconds) for s in (
        *breakers.snapshot(), *UPSTREAMS.snapshot(), *([ledger_breaker.state()] if ledger_breaker else []))]
    sandbox = Sandbox.from_settings(settings)
    metrics.sandbox = describe_sandbox(sandbox, log)
    pipeline = Pipeline(settings=settings, forge=forge, workspace=workspace, chain=chain, ledger=ledger,
                        hooks=hooks, redactor=REDACTOR, log=log, clock=clock, sandbox=sandbox,
                        inbox=cast(FeedbackInbox, ledger), metrics=metrics)  # both kinds record feedback rounds too
    metrics.readiness_check = pipeline.hook_commands.health_problem  # the health_check hook feeds /readyz
    executor = kind.make(Built(settings=settings, forge=forge, ledger=ledger, pipeline=pipeline, clock=clock,
                               owner=worker_id(), log=log.bind(dispatch=",".join(dispatch_repos)),
                               metrics=metrics))
    return App(settings, forge, ledger, workspace, pipeline, executor, metrics, tokens, slots=slots, live=live)


def status_sources(settings: Settings, *, records: Callable[[int], Any], ledger: Any = None,
                   live: LiveTasks | None = None, forge: Forge | None = None, owner: str | None = None,
                   dependencies: Callable[[], Any] | None = None) -> StatusSources:
    """What the status document is built from; the same for the page and for `agent-runner status --json`."""
    temporal = settings.executor == "temporal"
    workflow = None
    if temporal:
        from runner.executors.temporal.types import workflow_id

        repo = settings.require_dispatch_repo()

        def workflow(number: int) -> str:
            return workflow_id(repo, number)

    def rounds_of(key: Any) -> list[dict[str, Any]]:
        return [dict(outcome) for _, _, round_no, outcome in ledger.handled_feedback(key) if round_no is not None]

    return StatusSources(
        dispatch_repo=settings.require_dispatch_repo(), web_url=web_url(settings.github_api_url),
        executor=settings.executor, store="temporal" if temporal else (ledger_scheme(settings.ledger_location) or "?"),
        workers=settings.workers, records=records, recent_limit=settings.status_recent, owner=owner,
        usage_of=ledger.usage_of if ledger is not None and not temporal else None,
        rounds_of=rounds_of if ledger is not None and not temporal else None,
        live=live, budgets=getattr(forge, "write_budgets", None), pacing=settings.github_throttle,
        workflow_id=workflow, redact=REDACTOR, dependencies=dependencies)


def dashboard(app: App, page: StatusPage) -> Dashboard:
    """The dashboard issue (DASHBOARD_ISSUE=true), drawn from the same document as the page."""
    ledger = cast(Ledger, app.ledger) if app.settings.executor == "ledger" else None
    return Dashboard(settings=app.settings, forge=app.forge, ledger=ledger,
                     document=lambda: page.document(fresh=True), now=utc_now, log=get_logger())


def status_page(app: App) -> StatusPage:
    """The page the health server serves at `/`: this process's memory, and its ledger (or Temporal)."""
    settings = app.settings
    executor: Any = app.executor
    records = executor.records if settings.executor == "temporal" else (
        lambda limit: cast(Ledger, app.ledger).list(limit=limit))
    sources = status_sources(settings, records=records, ledger=app.ledger, live=app.live, forge=app.forge,
                             owner=executor.owner, dependencies=app.metrics.dependencies)
    token = settings.status_token.get_secret_value() if settings.status_token is not None else None
    return StatusPage(sources, clock=utc_now, token=token, refresh_s=settings.status_refresh_seconds)
