"""Build the forge from Settings: the token source (a PAT or a GitHub App) and the paced client.

Every credential minted here joins the log redactor before it is used.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from runner.breakers import Breakers
from runner.config import Settings
from runner.forge.auth import AppInstallations, PersonalToken, TokenSource, read_private_key
from runner.forge.github import GitHubForge
from runner.forge.pacer import LedgerSlots, SlotLedger, WriteLimits
from runner.log import REDACTOR


def utc_now() -> datetime:
    return datetime.now(UTC)


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


def forge_from_settings(settings: Settings, tokens: TokenSource | None = None, *, ledger: Any = None,
                        log: Any = None, breakers: Breakers | None = None) -> GitHubForge:
    """The forge with one write pacer per token; its write slots live in the ledger when replicas
    share a PostgreSQL one, so that they all draw on one budget."""
    limits = WriteLimits(settings.github_write_interval_seconds, settings.github_writes_per_minute,
                         settings.github_writes_per_hour,
                         notify_interval_s=settings.github_notify_interval_seconds,
                         ).compressed(settings.github_limit_time_scale)
    slots = LedgerSlots(ledger) if isinstance(ledger, SlotLedger) else None
    return GitHubForge(tokens or token_source(settings), base_url=settings.github_api_url,
                       timeout=settings.github_timeout_seconds, max_retries=settings.github_max_retries,
                       throttle=settings.github_throttle, limits=limits, slots=slots,
                       cache_ttl=settings.github_cache_seconds, log=log,
                       breakers=breakers or Breakers.from_settings(settings, log=log))


def _basic(token: str) -> str:
    """The form the token takes in git's Basic auth header, redacted too."""
    return base64.b64encode(f"x-access-token:{token}".encode()).decode()
