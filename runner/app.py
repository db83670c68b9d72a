"""Wire the real pieces together from Settings: the one place that builds the object graph."""

from __future__ import annotations

import base64
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runner.config import Settings
from runner.errors import AppNotInstalled, ConfigError, SandboxUnavailable
from runner.executors.threads import Runner
from runner.forge.auth import AppInstallations, PersonalToken, TokenSource, read_private_key
from runner.forge.base import Forge
from runner.forge.github import GitHubForge
from runner.forge.pacer import LedgerSlots, SlotLedger, WriteLimits
from runner.generators import build_chain
from runner.hooks.plugins import CombinedHooks, load_hooks
from runner.ledger import ledger_scheme, open_ledger
from runner.ledger.base import JobLedger, Ledger
from runner.log import REDACTOR, get_logger
from runner.ops.health import Metrics
from runner.ops.preflight import prepare
from runner.pipeline import Pipeline
from runner.sandbox.bwrap import Sandbox
from runner.steps.workspace import Identity, Workspace

if TYPE_CHECKING:
    from runner.executors.temporal.executor import TemporalRunner


def utc_now() -> datetime:
    return datetime.now(UTC)


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
    runner: Runner | TemporalRunner
    metrics: Metrics
    tokens: TokenSource | None = None
    #: Under Temporal, the PostgreSQL ledger that holds only the shared write slots.
    slots: Ledger | None = None

    def close(self) -> None:
        self.ledger.close()
        if self.slots is not None:
            self.slots.close()


def token_source(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> TokenSource:
    """The PAT, or the GitHub App's installation tokens; every minted token joins the redactor."""
    if settings.auth_mode == "token":
        return PersonalToken(settings.token())
    assert settings.github_app_id is not None
    key = read_private_key(
        settings.github_app_private_key.get_secret_value() if settings.github_app_private_key else None,
        str(settings.github_app_private_key_file) if settings.github_app_private_key_file else None,
    )
    REDACTOR.add([key])
    return AppInstallations(
        settings.github_app_id, key, base_url=settings.github_api_url,
        timeout=settings.github_timeout_seconds, max_retries=settings.github_max_retries, clock=clock,
        on_token=lambda token: REDACTOR.add([token, _basic(token)]),
    )


def forge_from_settings(settings: Settings, tokens: TokenSource | None = None, *, ledger: Ledger | None = None,
                        log: Any = None) -> GitHubForge:
    """The forge with one write pacer per token; its write slots live in the ledger when replicas
    share a PostgreSQL one, so that they all draw on one budget."""
    limits = WriteLimits(settings.github_write_interval_seconds, settings.github_writes_per_minute,
                         settings.github_writes_per_hour)
    slots = LedgerSlots(ledger) if isinstance(ledger, SlotLedger) else None
    return GitHubForge(tokens or token_source(settings), base_url=settings.github_api_url,
                       timeout=settings.github_timeout_seconds, max_retries=settings.github_max_retries,
                       throttle=settings.github_throttle, limits=limits, slots=slots,
                       cache_ttl=settings.github_cache_seconds, log=log)


def bot_identity(settings: Settings, tokens: TokenSource, forge: GitHubForge) -> Identity:
    """Commit as the app's bot (``<id>+<slug>[bot]@users.noreply.github.com``), or as configured."""
    if not isinstance(tokens, AppInstallations):
        return Identity(settings.author_name, settings.git_author_email)
    dispatch_repo = settings.require_dispatch_repo()
    try:
        tokens.installation_id(dispatch_repo)
    except AppNotInstalled as exc:
        raise ConfigError(
            f"The GitHub App is not installed on the dispatch repository {dispatch_repo}. "
            f"Install it there first: {exc.install_url}"
        ) from None
    bot = tokens.identity(dispatch_repo, forge.user_id)
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
    log.info("sandbox ready", backend=backend.name, version=backend.detail,
             network=sandbox.network)
    return f"{backend.name} ({backend.detail}; network {'allowed' if sandbox.network else 'off'})"


def build_app(settings: Settings, *, clock: Callable[[], datetime] = utc_now, log: Any = None) -> App:
    """Build everything a command needs; raises ConfigError on bad settings."""
    dispatch_repo = settings.require_dispatch_repo()
    REDACTOR.add(settings.secrets())
    tokens = token_source(settings, clock=clock)
    log = log or get_logger(agent=settings.agent_name)
    chain = build_chain(settings.generators, settings)
    hooks = CombinedHooks(load_hooks(settings.hooks), log)
    prepare(settings)  # directories made and writable, command programs on PATH
    ledger = open_ledger(settings.ledger_location) if settings.executor != "temporal" else None
    slots = shared_slots_ledger(settings) if settings.executor == "temporal" else None
    forge = forge_from_settings(settings, tokens, ledger=ledger or slots, log=log)
    identity = bot_identity(settings, tokens, forge)
    workspace = Workspace(settings.workspace_dir, token=tokens.token_for, identity=identity)
    metrics = Metrics(stale_after_s=max(300.0, settings.effective_poll_interval * 3))
    sandbox = Sandbox.from_settings(settings)
    metrics.sandbox = describe_sandbox(sandbox, log)
    owner, runner_log = worker_id(), log.bind(dispatch=dispatch_repo)
    if settings.executor == "temporal":
        return _temporal_app(settings, forge=forge, workspace=workspace, chain=chain, hooks=hooks, log=log,
                             clock=clock, metrics=metrics, owner=owner, runner_log=runner_log, tokens=tokens,
                             sandbox=sandbox, slots=slots)
    assert ledger is not None
    pipeline = Pipeline(settings=settings, forge=forge, workspace=workspace, chain=chain, ledger=ledger,
                        hooks=hooks, redactor=REDACTOR, log=log, clock=clock, sandbox=sandbox, inbox=ledger)
    metrics.readiness_check = pipeline.hook_commands.health_problem  # the health_check hook feeds /readyz
    runner = Runner(settings=settings, forge=forge, ledger=ledger, pipeline=pipeline, clock=clock,
                    owner=owner, log=runner_log, metrics=metrics, interrupt=forge.interrupt)
    return App(settings, forge, ledger, workspace, pipeline, runner, metrics, tokens)


def _temporal_app(settings: Settings, *, forge: Forge, workspace: Workspace, chain: Any, hooks: CombinedHooks,
                  log: Any, clock: Callable[[], datetime], metrics: Metrics, owner: str, runner_log: Any,
                  tokens: TokenSource, sandbox: Sandbox, slots: Ledger | None) -> App:
    """The same pipeline, run as a Temporal activity; Temporal holds the durable state."""
    from runner.executors.temporal.activities import ActivityLedger, TaskActivities
    from runner.executors.temporal.executor import TemporalRunner

    ledger = ActivityLedger()
    pipeline = Pipeline(settings=settings, forge=forge, workspace=workspace, chain=chain, ledger=ledger,
                        hooks=hooks, redactor=REDACTOR, log=log, clock=clock, sandbox=sandbox, inbox=ledger)
    metrics.readiness_check = pipeline.hook_commands.health_problem
    activities = TaskActivities(pipeline=pipeline, ledger=ledger, owner=owner, clock=clock, metrics=metrics,
                                log=runner_log)
    runner = TemporalRunner(settings=settings, forge=forge, activities=activities, clock=clock, owner=owner,
                            log=runner_log, metrics=metrics)
    return App(settings, forge, ledger, workspace, pipeline, runner, metrics, tokens, slots=slots)


def shared_slots_ledger(settings: Settings) -> Ledger | None:
    """Under Temporal, a PostgreSQL LEDGER_URL keeps the write slots every replica draws on.

    Temporal holds the tasks' state, so nothing else lives there; without one,
    each replica paces its own writes (:func:`write_pacing` says so)."""
    if not settings.github_throttle or not _shared_ledger(settings):
        return None
    return open_ledger(settings.ledger_location)


def write_pacing(settings: Settings) -> str:
    """How this deployment keeps GitHub's write limits, in a line for `check-config` and the start-up log."""
    limits = (f"{settings.github_write_interval_seconds:g} s apart, {settings.github_writes_per_minute}/min, "
              f"{settings.github_writes_per_hour}/h per token")
    if not settings.github_throttle:
        return "off (GITHUB_THROTTLE=false): GitHub's write limits are not kept"
    if _shared_ledger(settings):
        return f"shared by every replica through the PostgreSQL ledger ({limits})"
    if settings.executor == "temporal":
        return (f"per process ({limits}): Temporal replicas on one token do not share it; "
                "set LEDGER_URL=postgresql://… to give them one budget")
    return f"per process, shared by its {settings.workers} workers ({limits})"


def _shared_ledger(settings: Settings) -> bool:
    return ledger_scheme(settings.ledger_location) == "postgresql"


def _basic(token: str) -> str:
    """The form the token takes in git's Basic auth header, redacted too."""
    return base64.b64encode(f"x-access-token:{token}".encode()).decode()
