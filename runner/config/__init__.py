"""Load every setting once, validate it at start-up, and say which one is wrong.

Settings come from the environment and from `.env` (pydantic-settings). The
object is frozen and is passed down explicitly; nothing reads the environment
at import time. Secrets are ``SecretStr`` so that they never print by accident.

:class:`Settings` is composed of one group per concern, each a module here
with its fields, their docstrings (the reference `agent-runner config-docs`
writes) and their validators side by side:

- ``github``: the API and its limits, credentials, repositories, webhooks, identity;
- ``loop``: polling, storage, workers, leases, retries, breakers; health, status, logs;
- ``hooks``: plugin hooks and hook commands;
- ``executor``: the ledger or Temporal;
- ``generators``: the chain, model APIs and budgets, agent presets, change limits;
- ``feedback``: validation, feedback rounds and CI rounds;
- ``sandbox``: bubblewrap, its network and limits, repository commands.

``base`` holds what the groups share; ``repos`` the one rule for repository names.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from runner.config.base import CsvList
from runner.config.executor import ExecutorSettings
from runner.config.feedback import FeedbackSettings, ValidationSettings
from runner.config.generators import AgentPresetSettings, ChangeLimitSettings, GeneratorSettings
from runner.config.github import GitHubSettings, IdentitySettings, WebhookSettings
from runner.config.hooks import HOOK_EVENTS, HookSettings
from runner.config.loop import LogLevel, LoopSettings, StatusSettings
from runner.config.repos import normalize_repo, shorten
from runner.config.sandbox import SandboxSettings
from runner.errors import ConfigError

__all__ = ["HOOK_EVENTS", "CsvList", "LogLevel", "Settings", "load_settings", "normalize_repo", "shorten"]


# pydantic orders the fields from the last base to the first, so the groups are listed bottom-up:
# the model, `.env.example` and docs/configuration.md read GitHub first and the sandbox last.
class Settings(
    SandboxSettings,
    ValidationSettings,
    FeedbackSettings,
    ChangeLimitSettings,
    AgentPresetSettings,
    GeneratorSettings,
    ExecutorSettings,
    HookSettings,
    StatusSettings,
    LoopSettings,
    IdentitySettings,
    WebhookSettings,
    GitHubSettings,
    BaseSettings,
):
    """All runner settings; see `.env.example` and the README for what each one does."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        case_sensitive=False,
        env_ignore_empty=True,  # `NAME=` in .env.example means "unset", not "empty string"
        use_attribute_docstrings=True,  # the docstring under a field is its documentation
    )

    @property
    def effective_poll_interval(self) -> float:
        """With webhooks on, polling is only the safety net and runs at the long interval."""
        return self.webhook_poll_interval_seconds if self.webhooks_enabled else self.poll_interval_seconds

    def secrets(self) -> list[str]:
        """Every configured secret value (and the git auth header made from the token)."""
        values = [self.github_token, self.openai_api_key, self.anthropic_api_key, self.gemini_api_key,
                  self.github_app_private_key, self.webhook_secret,
                  self.temporal_api_key, self.status_token]
        found = [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]
        if self.github_token is not None and self.github_token.get_secret_value():
            token = self.github_token.get_secret_value()
            found.append(base64.b64encode(f"x-access-token:{token}".encode()).decode())
        return found


def load_settings(env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Build Settings from the environment, `.env` and overrides, or raise ConfigError."""
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "_".join(str(p) for p in error["loc"]).upper() or "settings"
            problems.append(f"{name}: {error['msg']}")
        raise ConfigError("Invalid configuration: " + "; ".join(problems)) from None
