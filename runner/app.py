"""Wire the real pieces together from Settings: the one place that builds the object graph."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runner.config import Settings
from runner.forge.base import Forge
from runner.forge.github import GitHubForge
from runner.generators import build_chain
from runner.health import Metrics
from runner.hooks import CombinedHooks, load_hooks
from runner.intake import Runner
from runner.ledger import open_ledger
from runner.ledger.base import Ledger
from runner.log import REDACTOR, get_logger
from runner.pipeline import Pipeline
from runner.workspace import Identity, Workspace


def utc_now() -> datetime:
    return datetime.now(UTC)


def worker_id() -> str:
    """A lease owner that names the machine and process, unique across restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class App:
    settings: Settings
    forge: Forge
    ledger: Ledger
    workspace: Workspace
    pipeline: Pipeline
    runner: Runner
    metrics: Metrics

    def close(self) -> None:
        self.ledger.close()


def build_app(settings: Settings, *, clock: Callable[[], datetime] = utc_now, log: Any = None) -> App:
    """Build everything a command needs; raises ConfigError on bad settings."""
    token = settings.token()
    dispatch_repo = settings.require_dispatch_repo()
    REDACTOR.add(settings.secrets())
    log = log or get_logger(agent=settings.agent_name)
    chain = build_chain(settings.generators, settings)
    hooks = CombinedHooks(load_hooks(settings.hooks), log)
    forge = GitHubForge(token, base_url=settings.github_api_url, timeout=settings.github_timeout_seconds,
                        max_retries=settings.github_max_retries, throttle=settings.github_throttle)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ledger = open_ledger(settings.ledger_location)
    workspace = Workspace(settings.workspace_dir, token=token,
                          identity=Identity(settings.author_name, settings.git_author_email))
    metrics = Metrics(stale_after_s=max(300.0, settings.poll_interval_seconds * 3))
    pipeline = Pipeline(settings=settings, forge=forge, workspace=workspace, chain=chain, ledger=ledger,
                        hooks=hooks, redactor=REDACTOR, log=log, clock=clock)
    runner = Runner(settings=settings, forge=forge, ledger=ledger, pipeline=pipeline, clock=clock,
                    owner=worker_id(), log=log.bind(dispatch=dispatch_repo), metrics=metrics)
    return App(settings, forge, ledger, workspace, pipeline, runner, metrics)
