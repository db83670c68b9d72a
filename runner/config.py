"""Load every setting once, validate it at start-up, and say which one is wrong.

Settings come from the environment and from `.env` (pydantic-settings). The
object is frozen and is passed down explicitly; nothing reads the environment
at import time. Secrets are ``SecretStr`` so that they never print by accident.
"""

from __future__ import annotations

import base64
import fnmatch
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from runner.errors import ConfigError, TaskSpecError
from runner.task import normalize_repo

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
CsvList = Annotated[tuple[str, ...], NoDecode]


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


class Settings(BaseSettings):
    """All runner settings; see `.env.example` and the README for what each one does."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        case_sensitive=False,
    )

    # GitHub
    github_token: SecretStr | None = None
    # ... or a GitHub App (docs/github-app.md): its id and private key (PEM text or a file)
    github_app_id: int | None = Field(default=None, ge=1)
    github_app_private_key: SecretStr | None = None
    github_app_private_key_file: Path | None = None
    github_api_url: str = "https://api.github.com"
    dispatch_repo: str | None = None
    trigger_label: str = "copilot-agent"
    processed_label: str = "processed"
    failed_label: str = "agent-failed"
    allowed_target_repos: CsvList = ()
    require_labeler_permission: bool = True
    github_timeout_seconds: float = Field(default=30.0, gt=0)
    github_max_retries: int = Field(default=5, ge=0, le=20)
    github_throttle: bool = True  # the write pacer (runner/forge/pacer.py), against secondary limits
    github_write_interval_seconds: float = Field(default=1.0, ge=0)
    github_writes_per_minute: int = Field(default=80, ge=1)
    github_writes_per_hour: int = Field(default=500, ge=1)
    github_cache_seconds: float = Field(default=60.0, ge=0)

    # Webhook intake (`agent-runner serve`, or `run` with WEBHOOK_SECRET set)
    webhook_secret: SecretStr | None = None
    webhook_host: str = "0.0.0.0"
    webhook_port: int = Field(default=8081, ge=0, le=65535)
    webhook_max_age_seconds: float = Field(default=3600.0, gt=0)
    webhook_poll_interval_seconds: float = Field(default=900.0, gt=0)

    # Identity
    agent_name: str = "agent-runner"
    git_author_name: str | None = None
    git_author_email: str = "agent-runner@users.noreply.github.com"

    # Loop and storage
    poll_interval_seconds: float = Field(default=60.0, gt=0)
    workspace_dir: Path = Path("/workspace")
    data_dir: Path = Path("/data")
    ledger_url: str | None = None
    workers: int = Field(default=1, ge=1, le=64)
    max_attempts: int = Field(default=5, ge=1, le=100)
    lease_seconds: float = Field(default=120.0, ge=1)
    retry_base_seconds: float = Field(default=10.0, gt=0)
    retry_max_seconds: float = Field(default=900.0, gt=0)
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    progress_after_seconds: float = Field(default=5.0, ge=0)  # no progress comment before this
    progress_every_seconds: float = Field(default=15.0, ge=0)  # then at most one edit per this
    health_host: str = "0.0.0.0"
    health_port: int = Field(default=8080, ge=0, le=65535)
    log_level: LogLevel = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    hooks: CsvList = ()

    # Executor: our own lease ledger (SQLite or PostgreSQL, by LEDGER_URL), or Temporal
    executor: Literal["ledger", "temporal"] = "ledger"
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "agent-runner"
    temporal_tls: bool = False
    temporal_tls_client_cert_file: Path | None = None
    temporal_tls_client_key_file: Path | None = None
    temporal_tls_server_ca_file: Path | None = None
    temporal_api_key: SecretStr | None = None

    # Generators
    generators: CsvList = ("patch",)
    generator_timeout_seconds: float = Field(default=900.0, gt=0)
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_compat: Literal["auto", "openai", "llamacpp", "vllm", "ollama"] = "auto"
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    anthropic_model: str = "claude-sonnet-4-6"
    default_model: str | None = None
    seniority_models: dict[str, str] = Field(default_factory=dict)
    model_prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    max_turns: int = Field(default=30, ge=1, le=500)
    max_output_tokens: int = Field(default=4096, ge=1)
    max_tokens_per_task: int | None = Field(default=None, ge=1)
    max_cost_usd_per_task: float | None = Field(default=None, gt=0)
    command_template: str | None = None
    command_env_allowlist: CsvList = ("PATH", "HOME", "LANG", "LC_ALL", "TERM", "TMPDIR")
    max_file_bytes: int = Field(default=1_000_000, ge=1)
    max_change_bytes: int = Field(default=5_000_000, ge=1)  # the whole change, every file together
    max_changed_files: int = Field(default=500, ge=1)
    allow_workflow_changes: bool = False

    # Validation
    validate_commands: CsvList = ()
    validation_timeout_seconds: float = Field(default=600.0, gt=0)
    validation_rounds: int = Field(default=2, ge=0, le=10)
    on_validation_failure: Literal["draft", "fail"] = "draft"

    # Sandbox (docs/security.md)
    sandbox: Literal["bwrap", "off"] = "bwrap"
    sandbox_network: Literal["off", "allow"] = "off"
    sandbox_memory_mb: int = Field(default=4096, ge=64)
    sandbox_pids: int = Field(default=512, ge=16)
    sandbox_ro_paths: CsvList = ()
    repo_commands: CsvList = ()

    _split = field_validator(
        "allowed_target_repos", "generators", "command_env_allowlist", "validate_commands", "hooks",
        "sandbox_ro_paths", "repo_commands",
        mode="before",
    )(_split_csv)

    @field_validator("temporal_tls_client_cert_file", "temporal_tls_client_key_file",
                     "temporal_tls_server_ca_file", "temporal_api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("sandbox_ro_paths")
    @classmethod
    def _check_ro_paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if not path.startswith("/"):
                raise ValueError(f"`{path}` must be an absolute path")
        return value

    @field_validator("repo_commands")
    @classmethod
    def _check_repo_commands(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if item.lower() not in ("allow", "off") and item.count("/") != 1:
                raise ValueError(f"`{item}` must be `allow`, `off`, or a pattern like `owner/*`")
        return value

    @field_validator("dispatch_repo")
    @classmethod
    def _check_dispatch_repo(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            return normalize_repo(value)
        except TaskSpecError as exc:
            raise ValueError(f"must be `owner/name`, got `{value}`") from exc

    @field_validator("allowed_target_repos")
    @classmethod
    def _check_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if pattern.count("/") != 1:
                raise ValueError(f"`{pattern}` must look like `owner/name` or `owner/*`")
        return value

    @field_validator("generators")
    @classmethod
    def _check_generators(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one generator, for example `patch`")
        return value

    @field_validator("github_api_url", "openai_base_url", "anthropic_base_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got `{value}`")
        return value.rstrip("/")

    @field_validator("seniority_models", "model_prices", mode="before")
    @classmethod
    def _parse_json_map(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"must be a JSON object ({exc.msg})") from exc
        return value

    @model_validator(mode="after")
    def _check_combination(self) -> Settings:
        if self.retry_max_seconds < self.retry_base_seconds:
            raise ValueError("RETRY_MAX_SECONDS must be at least RETRY_BASE_SECONDS")
        has_token = self.github_token is not None and bool(self.github_token.get_secret_value())
        if has_token and self.github_app_id is not None:
            raise ValueError("set GITHUB_TOKEN or GITHUB_APP_ID (a GitHub App), not both")
        if self.github_app_id is None and (self.github_app_private_key or self.github_app_private_key_file):
            raise ValueError("GITHUB_APP_PRIVATE_KEY(_FILE) is set but GITHUB_APP_ID is not; set the app's id "
                             "(the number on the app's settings page)")
        if self.webhook_secret is not None and len(self.webhook_secret.get_secret_value()) < 16:
            raise ValueError("WEBHOOK_SECRET must be at least 16 characters; generate one with "
                             "`python -c 'import secrets; print(secrets.token_hex(32))'`")
        if bool(self.temporal_tls_client_cert_file) != bool(self.temporal_tls_client_key_file):
            raise ValueError("TEMPORAL_TLS_CLIENT_CERT_FILE and TEMPORAL_TLS_CLIENT_KEY_FILE go together "
                             "(mTLS needs both); set both or neither")
        return self

    @property
    def auth_mode(self) -> Literal["token", "app"]:
        """How the runner authenticates: a personal token, or as a GitHub App."""
        return "app" if self.github_app_id is not None else "token"

    @property
    def webhooks_enabled(self) -> bool:
        return self.webhook_secret is not None

    @property
    def effective_poll_interval(self) -> float:
        """With webhooks on, polling is only the safety net and runs at the long interval."""
        return self.webhook_poll_interval_seconds if self.webhooks_enabled else self.poll_interval_seconds

    @property
    def author_name(self) -> str:
        return self.git_author_name or self.agent_name

    @property
    def ledger_location(self) -> str:
        """The ledger URL, defaulting to a SQLite file in the data directory."""
        return self.ledger_url or f"sqlite:///{self.data_dir / 'ledger.db'}"

    def secrets(self) -> list[str]:
        """Every configured secret value (and the git auth header made from the token)."""
        values = [self.github_token, self.openai_api_key, self.anthropic_api_key,
                  self.github_app_private_key, self.webhook_secret,
                  self.temporal_api_key]
        found = [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]
        if self.github_token is not None and self.github_token.get_secret_value():
            token = self.github_token.get_secret_value()
            found.append(base64.b64encode(f"x-access-token:{token}".encode()).decode())
        return found

    def token(self) -> str:
        if self.github_token is None or not self.github_token.get_secret_value():
            raise ConfigError(
                "GITHUB_TOKEN is not set. Create a token with `repo` scope and set it in `.env`, "
                "or set GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY_FILE to run as a GitHub App "
                "(docs/github-app.md)."
            )
        return self.github_token.get_secret_value()

    def require_dispatch_repo(self) -> str:
        if not self.dispatch_repo:
            raise ConfigError(
                "DISPATCH_REPO is not set. Set it to the repository that holds dispatch "
                "issues, for example `DISPATCH_REPO=octo-org/dispatch`."
            )
        return self.dispatch_repo

    def repo_commands_allowed(self, target_repo: str) -> bool:
        """Whether `.agent-runner.yml` setup and validate commands may run for this repository."""
        items = [item.lower() for item in self.repo_commands]
        if "allow" in items:
            return True
        target = target_repo.lower()
        return any(fnmatch.fnmatchcase(target, p) for p in items if "/" in p)

    def target_allowed(self, target_repo: str) -> bool:
        """Whether the runner may act on this repository (case-insensitive, `org/*` globs)."""
        patterns = self.allowed_target_repos
        if not patterns:
            owner = (self.dispatch_repo or "").split("/")[0]
            patterns = (f"{owner}/*",) if owner else ()
        target = target_repo.lower()
        return any(fnmatch.fnmatchcase(target, p.lower()) for p in patterns)


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
