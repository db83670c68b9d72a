"""Pace the long-running service: the poll loop, storage, retries, and what it shows and logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from runner.config.base import Group

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class LoopSettings(Group):
    """The loop and its storage: polling, workers, leases, retries, breakers, progress."""

    poll_interval_seconds: float = Field(default=60.0, gt=0)
    """How often to poll DISPATCH_REPO. The poll is a conditional request; a 304 does not count against the rate limit."""
    workspace_dir: Path = Path("/workspace")
    """Bare mirrors (one per target) and per-job worktrees. Give each process its own."""
    data_dir: Path = Path("/data")
    """The SQLite ledger and the transcripts."""
    ledger_url: str | None = None
    """The ledger: `sqlite:///relative.db`, `sqlite:////absolute.db` or `postgresql://user:pass@host/db` to share work between replicas (under EXECUTOR=temporal, only their GitHub write budget). Empty: `sqlite:///$DATA_DIR/ledger.db`."""
    workers: int = Field(default=1, ge=1, le=64)
    """Jobs run in parallel, each in its own worktree."""
    max_attempts: int = Field(default=5, ge=1, le=100)
    """Attempts a task gets for failures that say something about it (a patch that does not apply, no change, validation, a crashed agent, the cost cap); an outage of GitHub, a model API, the ledger or the disk spends none (see TRANSIENT_RETRY_HOURS)."""
    lease_seconds: float = Field(default=120.0, ge=1)
    """How long a claimed task stays reserved without a heartbeat."""
    retry_base_seconds: float = Field(default=10.0, gt=0)
    """First delay before retrying a transient failure; it doubles with each attempt."""
    retry_max_seconds: float = Field(default=900.0, gt=0)
    """Longest delay between retries."""
    transient_retry_hours: float = Field(default=24.0, gt=0)
    """How long a task waits for a dependency that is down (GitHub, git transport, a model API, the ledger, disk space) before it fails with a sentence naming it; waiting spends none of MAX_ATTEMPTS."""
    model_turn_retry_seconds: float = Field(default=300.0, ge=0)
    """How long the API generators retry one model turn in place while its upstream is down (the conversation is kept); then the next generator in GENERATORS takes over, or the task waits for the upstream."""
    breaker_threshold: int = Field(default=3, ge=1, le=100)
    """Transient failures in a row that open a dependency's circuit breaker: then only one probe at a time goes out."""
    breaker_probe_max_seconds: float = Field(default=60.0, gt=0)
    """The longest interval between two probes of a dependency that is down (they start at 1 s and double)."""
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    """On SIGTERM, how long running jobs may finish before their leases are released."""
    progress_after_seconds: float = Field(default=5.0, ge=0)  # no progress comment before this
    """The result comment shows progress only once a task has run this long."""
    progress_every_seconds: float = Field(default=15.0, ge=0)  # then at most one edit per this
    """Then it is edited at most this often."""

    @model_validator(mode="after")
    def _check_retry_delays(self) -> Self:
        if self.retry_max_seconds < self.retry_base_seconds:
            raise ValueError("RETRY_MAX_SECONDS must be at least RETRY_BASE_SECONDS")
        return self

    @property
    def ledger_location(self) -> str:
        """The ledger URL, defaulting to a SQLite file in the data directory."""
        return self.ledger_url or f"sqlite:///{self.data_dir / 'ledger.db'}"


class StatusSettings(Group):
    """The health server, the status page, the dashboard issue, and the logs."""

    health_host: str = "127.0.0.1"
    """Address the health server and the status page bind. The image sets `0.0.0.0`, so that the container's published port and its HEALTHCHECK reach it."""
    health_port: int = Field(default=8080, ge=0, le=65535)
    """Port of `/healthz`, `/readyz`, `/metrics` (Prometheus) and the status page (`/`, `/api/status`; docs/operations.md)."""
    status_token: SecretStr | None = None
    """When set, the status page and `/api/status` need it, as `Authorization: Bearer <token>` or through the page's login form (a cookie). `/healthz`, `/readyz` and `/metrics` stay open. Empty: anyone who reaches HEALTH_HOST sees the page."""
    status_recent: int = Field(default=50, ge=1, le=1000)
    """Finished tasks the status page lists."""
    status_refresh_seconds: float = Field(default=2.0, gt=0, le=300)
    """The status page's live stream sends a fresh view on every change, and at least this often."""
    dashboard_issue: bool = False
    """Keep one dashboard issue in DISPATCH_REPO (running, failed and recent tasks; a writer ticks a failed task's box to retry it), edited only from spare write budget (docs/operations.md)."""
    dashboard_every_seconds: float = Field(default=300.0, ge=60)
    """The dashboard issue is edited at most this often (never more than once a minute), and only when it changed."""
    log_level: LogLevel = "INFO"
    """DEBUG, INFO, WARNING or ERROR (any case)."""
    log_format: Literal["auto", "json", "console"] = "auto"
    """`json`, `console`, or `auto`: JSON unless on a terminal. Secrets are redacted from every line."""

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _fold_case(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        return value.strip().upper() if info.field_name == "log_level" else value.strip().lower()
