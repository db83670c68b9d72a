"""Load every setting once, validate it at start-up, and say which one is wrong.

Settings come from the environment and from `.env` (pydantic-settings). The
object is frozen and is passed down explicitly; nothing reads the environment
at import time. Secrets are ``SecretStr`` so that they never print by accident.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import shlex
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from runner.errors import ConfigError, TaskSpecError

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
#: The executable hooks HOOK_COMMANDS may name (runner/hooks/commands.py).
HOOK_EVENTS = ("pre_task", "post_task", "health_check")
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
        env_ignore_empty=True,  # `NAME=` in .env.example means "unset", not "empty string"
        use_attribute_docstrings=True,  # the docstring under a field is its documentation
    )

    # GitHub
    github_token: SecretStr | None = None
    """Token for the dispatch and target repositories; set it, or run as a GitHub App (GITHUB_APP_ID). Classic tokens need `repo`; fine-grained tokens need Contents, Issues and Pull requests (read/write) and Metadata (read)."""
    # ... or a GitHub App (docs/github-app.md): its id and private key (PEM text or a file)
    github_app_id: int | None = Field(default=None, ge=1)
    """Run as this GitHub App instead of with GITHUB_TOKEN (see docs/github-app.md). Comments and commits are then by the app's `<slug>[bot]`."""
    github_app_private_key: SecretStr | None = None
    """The GitHub App's private key as PEM text; or use GITHUB_APP_PRIVATE_KEY_FILE."""
    github_app_private_key_file: Path | None = None
    """A file holding the GitHub App's private key (PEM), for example a mounted secret."""
    github_api_url: str = "https://api.github.com"
    """API root. Use `https://HOST/api/v3` for GitHub Enterprise Server."""
    dispatch_repo: str | None = None
    """The repository whose issues carry the tasks, as `owner/name` (this or DISPATCH_REPOS is required)."""
    dispatch_repos: CsvList = ()
    """Several dispatch repositories, comma-separated, for a fleet: each may be in its own GitHub App installation with its own write budget (docs/scaling.md). DISPATCH_REPO is the one-repository form; both may be set."""
    trigger_label: str = "copilot-agent"
    """The label that asks the runner to act on an issue."""
    processed_label: str = "processed"
    """The label set when a task is done. Remove it to run the task again."""
    failed_label: str = "agent-failed"
    """The label set when a task failed for good, with the reason in the result comment. Remove it to retry."""
    ci_failed_label: str = "agent-ci-failed"
    """The label set when CI rounds stopped with checks still failing on the task's PR (docs/feedback.md)."""
    allowed_target_repos: CsvList = ()
    """Repositories the runner may change, comma-separated globs such as `org/*,other/repo`. Empty: only those owned by DISPATCH_REPO's owner."""
    require_labeler_permission: bool = True
    """Only act when whoever added the trigger label has write, maintain or admin permission on DISPATCH_REPO."""
    github_timeout_seconds: float = Field(default=30.0, gt=0)
    """Timeout of one GitHub API request."""
    github_max_retries: int = Field(default=5, ge=0, le=20)
    """Retries of one GitHub API request on 5xx, timeouts and rate limits, with backoff."""
    github_throttle: bool = True  # the write pacer (runner/forge/pacer.py), against secondary limits
    """The write pacer: all workers (and, with a PostgreSQL LEDGER_URL, all replicas) share GitHub's write limits for the token (see docs/performance.md)."""
    github_write_interval_seconds: float = Field(default=1.0, ge=0)
    """Least time between two writes; GitHub asks for at least 1 s."""
    github_writes_per_minute: int = Field(default=80, ge=1)
    """Most writes per minute (GitHub allows about 80)."""
    github_writes_per_hour: int = Field(default=500, ge=1)
    """Most writes per hour (GitHub allows about 500)."""
    github_notify_interval_seconds: float = Field(default=1.0, ge=0)
    """Least time between two writes that notify people (comments, PRs, reviews), a lane of their own as in octokit's throttling plugin; they take a write slot too."""
    github_write_reserve: int = Field(default=25, ge=0)
    """Writes per hour kept back from progress edits: a progress edit goes only when the writes used in the trailing hour, 3 per queued or running task, the pending feedback rounds and this reserve stay under GITHUB_WRITES_PER_HOUR (docs/performance.md)."""
    github_limit_time_scale: float = Field(default=1.0, ge=1.0)
    """Benchmarks and tests only: run GitHub's limit windows (the write spacing, the minute, the hour) this many times faster, to match an emulator started with the same scale."""
    github_cache_seconds: float = Field(default=60.0, ge=0)
    """Re-use repository facts and labelers' permissions for this long (0: read them for every task)."""

    # Webhook intake (`agent-runner serve`, or `run` with WEBHOOK_SECRET set)
    webhook_secret: SecretStr | None = None
    """The secret set on the app's (or repository's) webhook, which turns webhook intake on. Empty: polling only."""
    webhook_host: str = "0.0.0.0"
    """Address the webhook server binds."""
    webhook_port: int = Field(default=8081, ge=0, le=65535)
    """Port of the webhook server."""
    webhook_max_age_seconds: float = Field(default=3600.0, gt=0)
    """Deliveries about events older than this are refused as replays."""
    webhook_poll_interval_seconds: float = Field(default=900.0, gt=0)
    """With webhooks on, the poll is only a safety net and runs this often."""

    # Identity
    agent_name: str = "agent-runner"
    """The name shown in comments, and the commit author name unless GIT_AUTHOR_NAME is set."""
    git_author_name: str | None = None
    """Commit author name. Empty: AGENT_NAME."""
    git_author_email: str = "agent-runner@users.noreply.github.com"
    """Commit author email. Commits by any other author on a task branch count as a human's, and the runner does not overwrite them."""

    # Loop and storage
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

    hooks: CsvList = ()
    """Python hooks called at each stage, comma-separated `package.module:Class` (see `runner/hooks/plugins.py`)."""
    hook_commands: dict[str, str] = Field(default_factory=dict)
    """Executable hooks, a JSON object with any of `pre_task`, `post_task` and `health_check`, for example
    `{"pre_task": "/etc/agent-runner/quota.sh", "health_check": "/etc/agent-runner/ready.sh"}`. Each gets the task
    as JSON on stdin and runs in the sandbox; a non-zero `pre_task` refuses the task with its stderr on the issue,
    `post_task` gets the outcome, a failing `health_check` makes `/readyz` fail (see docs/hooks.md)."""
    hook_timeout_seconds: float = Field(default=30.0, gt=0)
    """Time limit of each hook command; one that runs longer is stopped and counts as failed."""

    # Executor: our own lease ledger (SQLite or PostgreSQL, by LEDGER_URL), or Temporal
    executor: Literal["ledger", "temporal"] = "ledger"
    """`ledger`: SQLite, or PostgreSQL when LEDGER_URL says so. `temporal`: one Temporal workflow per dispatch issue (see docs/scaling.md); LEASE_SECONDS is then the activity heartbeat timeout."""
    temporal_address: str = "localhost:7233"
    """The Temporal frontend, `host:port`."""
    temporal_namespace: str = "default"
    """The Temporal namespace."""
    temporal_task_queue: str = "agent-runner"
    """The Temporal task queue the workers listen on."""
    temporal_tls: bool = False
    """Connect to Temporal over TLS (implied by TEMPORAL_API_KEY)."""
    temporal_tls_client_cert_file: Path | None = None
    """mTLS client certificate for Temporal (PEM file)."""
    temporal_tls_client_key_file: Path | None = None
    """mTLS client key for Temporal (PEM file)."""
    temporal_tls_server_ca_file: Path | None = None
    """CA that signed the Temporal server's certificate (PEM file). Empty: the system's."""
    temporal_api_key: SecretStr | None = None
    """Temporal Cloud API key (implies TLS)."""

    # Generators
    generators: CsvList = ("patch",)
    """The generator fallback chain, tried in order: `patch`, `trace`, `openai`, `anthropic`, `command`, an agent preset (`claude-code`, `codex`, `aider`, `mini-swe-agent`) or a plugin's name. `agent-runner generators` lists what is installed."""
    generator_timeout_seconds: float = Field(default=900.0, gt=0)
    """Wall-clock limit for generation."""
    openai_api_key: SecretStr | None = None
    """OpenAI API key. A local OPENAI_BASE_URL needs none."""
    openai_base_url: str | None = None
    """Any OpenAI-compatible server (vLLM, Ollama, llama.cpp, LiteLLM). Empty: OpenAI."""
    openai_model: str = "gpt-4o-mini"
    """Model for the `openai` generator when the task names none."""
    openai_compat: Literal["auto", "openai", "llamacpp", "vllm", "ollama"] = "auto"
    """The OpenAI-compatible server's kind: `openai`, `llamacpp`, `vllm`, `ollama`, or `auto` (OpenAI without OPENAI_BASE_URL, otherwise detected). See docs/generators.md."""
    anthropic_api_key: SecretStr | None = None
    """Anthropic API key."""
    anthropic_base_url: str | None = None
    """An Anthropic-compatible server. Empty: Anthropic."""
    anthropic_model: str = "claude-sonnet-4-6"
    """Model for the `anthropic` generator when the task names none."""
    default_model: str | None = None
    """Model used when a task names none, before OPENAI_MODEL / ANTHROPIC_MODEL."""
    seniority_models: dict[str, str] = Field(default_factory=dict)
    """JSON object mapping a task's `seniority` to a model, for example `{"junior": "gpt-4o-mini", "senior": "gpt-4o"}`."""
    model_prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    """JSON object of USD prices per million input and output tokens, for example `{"my-model": [0.5, 1.5]}`, added to the built-in table."""
    max_turns: int = Field(default=30, ge=1, le=500)
    """Model turns per task for the LLM generators."""
    max_output_tokens: int = Field(default=4096, ge=1)
    """Output tokens per model turn."""
    max_tokens_per_task: int | None = Field(default=None, ge=1)
    """Token budget per task, enforced between model turns. Empty: no limit."""
    max_cost_usd_per_task: float | None = Field(default=None, gt=0)
    """Cost budget per task in USD, enforced between model turns. Empty: no limit."""
    command_template: str | None = None
    """External coding-agent CLI for the `command` generator, for example `aider --message-file {instruction_file} --yes`."""
    command_env_allowlist: CsvList = ("PATH", "HOME", "LANG", "LC_ALL", "TERM", "TMPDIR")
    """Environment variables the `command` generator's CLI receives. It never gets the GitHub token."""
    command_gateway: CsvList = ()
    """Serve the model gateway to the `command` generator's CLI for these wire dialects, comma-separated: `anthropic`, `openai`. The CLI then gets `ANTHROPIC_BASE_URL` / `OPENAI_BASE_URL` (and `OPENAI_API_BASE`) on 127.0.0.1 and a per-task placeholder in `ANTHROPIC_API_KEY` / `OPENAI_API_KEY`; the real keys stay in the runner (see docs/security.md, "Model gateway"). Empty: no gateway (the agent presets turn it on themselves)."""
    gateway_models: CsvList = ()
    """Models the gateway forwards calls for, comma-separated. Empty: any model."""
    gateway_timeout_seconds: float = Field(default=300.0, gt=0)
    """How long the gateway waits for the model server between two bytes of an answer before it answers the CLI 504."""
    # Agent presets (`claude-code`, `codex`, `aider`, `mini-swe-agent`; docs/generators.md)
    claude_code_bin: Path | None = None
    """The `claude` program of Claude Code for the `claude-code` preset (an npm install's `node_modules/.bin/claude`). Empty: `claude` on PATH."""
    codex_bin: Path | None = None
    """The `codex` program of Codex CLI for the `codex` preset (an npm install's `node_modules/.bin/codex`). Empty: `codex` on PATH."""
    aider_bin: Path | None = None
    """The `aider` program for the `aider` preset, best in its own venv (`/opt/aider/bin/aider`). Empty: `aider` on PATH."""
    mini_swe_agent_bin: Path | None = None
    """The `mini` program of mini-swe-agent for the `mini-swe-agent` preset, best in its own venv. Empty: `mini` on PATH."""
    max_file_bytes: int = Field(default=1_000_000, ge=1)
    """Largest file a generator may write."""
    max_change_bytes: int = Field(default=5_000_000, ge=1)  # the whole change, every file together
    """Largest change a task may push, every file together."""
    max_changed_files: int = Field(default=500, ge=1)
    """Most files one change may touch."""
    allow_workflow_changes: bool = False
    """Allow changes under `.github/workflows/`."""

    # Feedback rounds (docs/feedback.md): `/agent` comments and reviews push to the same PR
    feedback_command: str = Field(default="/agent", min_length=1, max_length=40, pattern=r"^\S+$")
    """A comment whose first visible line starts with this (on the dispatch issue or the task's PR) asks for a
    feedback round: one more commit to the same PR. Only authors with write access count (docs/feedback.md)."""
    max_feedback_rounds: int = Field(default=5, ge=0, le=100)
    """Feedback rounds per task; at the limit the runner says so instead of running. `MAX_TOKENS_PER_TASK` and
    `MAX_COST_USD_PER_TASK` cover the first run and every round together."""
    fix_failed_checks: bool = True
    """When every check on a task PR's head commit has completed and one failed, run a CI round with the failing
    checks' summaries, annotations and logs (docs/feedback.md, "CI rounds"). `fix_failed_checks: false` in a target
    repository's `.agent-runner.yml` turns it off there."""
    max_ci_rounds: int = Field(default=2, ge=0, le=20)
    """CI rounds per PR; at the limit the runner stops, says what is still red and labels the issue `agent-ci-failed`."""
    ci_log_max_bytes: int = Field(default=8000, ge=500, le=200_000)
    """How much of each failing check's log (its `##[error]` neighbourhood, or its tail) the model is shown."""

    # Validation
    validate_commands: CsvList = ()
    """Commands run in the worktree after generation, comma-separated, for example `pytest -q,ruff check .`."""
    validation_timeout_seconds: float = Field(default=600.0, gt=0)
    """Time limit of each validation command."""
    validation_rounds: int = Field(default=2, ge=0, le=10)
    """How many times a failed validation is fed back to the generator."""
    on_validation_failure: Literal["draft", "fail"] = "draft"
    """`draft`: open the PR as a draft with the failure report; `fail`: mark the task failed."""

    # Sandbox (docs/security.md)
    sandbox: Literal["bwrap", "off"] = "bwrap"
    """Every untrusted command (agent CLI, setup/validate commands, the tests they run) runs in bubblewrap. `off` runs them without isolation and says so on every issue (see docs/security.md)."""
    sandbox_network: Literal["off", "allow"] = "off"
    """`off`: no network inside the sandbox (agent CLIs reach their model through the model gateway); `allow`: the whole network, GitHub's API host included. `doctor` warns about `allow`."""
    sandbox_memory_mb: int = Field(default=4096, ge=64)
    """Per-process data size (MiB) inside one sandbox."""
    sandbox_pids: int = Field(default=512, ge=16)
    """Process count inside one sandbox."""
    sandbox_ro_paths: CsvList = ()
    """Extra read-only paths the sandboxed commands see (tools installed outside /usr and /opt), comma-separated absolute paths."""
    sandbox_egress_allow: CsvList = ()
    """Hosts that agent CLIs and the setup and validation commands may reach through the sandbox's HTTP(S) CONNECT proxy (ports 443 and 80), comma-separated, for example `pypi.org,*.pythonhosted.org`. Every attempt is logged; blocked ones are reported on the issue. Empty: nothing but the model gateway."""
    repo_commands: CsvList = ()
    """Run the setup/validate commands of a target's `.agent-runner.yml`: empty (never), `allow` (every target), or patterns such as `octo-org/*,octo-org/tools`."""

    _split = field_validator(
        "dispatch_repos", "allowed_target_repos", "generators", "command_env_allowlist", "validate_commands", "hooks",
        "sandbox_ro_paths", "repo_commands", "command_gateway", "gateway_models", "sandbox_egress_allow",
        mode="before",
    )(_split_csv)

    @field_validator("temporal_tls_client_cert_file", "temporal_tls_client_key_file",
                     "temporal_tls_server_ca_file", "temporal_api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("command_gateway")
    @classmethod
    def _check_gateway_dialects(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if item not in ("anthropic", "openai"):
                raise ValueError(f"`{item}` is not a dialect the gateway speaks; use `anthropic` and/or `openai`")
        return value

    @field_validator("claude_code_bin", "codex_bin", "aider_bin", "mini_swe_agent_bin", mode="before")
    @classmethod
    def _check_bin(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip() and not value.strip().startswith(("/", "~")):
            raise ValueError(f"`{value}` must be an absolute path")
        return value

    @field_validator("sandbox_egress_allow")
    @classmethod
    def _check_egress_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for host in value:
            if "/" in host or ":" in host or " " in host:
                raise ValueError(f"`{host}` must be a host name such as `pypi.org` or `*.pythonhosted.org` "
                                 "(no scheme, path or port: ports 443 and 80 are allowed)")
        return tuple(host.lower() for host in value)

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

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _fold_case(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        return value.strip().upper() if info.field_name == "log_level" else value.strip().lower()

    @field_validator("dispatch_repo")
    @classmethod
    def _check_dispatch_repo(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            return normalize_repo(value)
        except TaskSpecError as exc:
            raise ValueError(f"must be `owner/name`, got `{value}`") from exc

    @field_validator("dispatch_repos")
    @classmethod
    def _check_dispatch_repos(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        found: list[str] = []
        for item in value:
            try:
                repo = normalize_repo(item)
            except TaskSpecError as exc:
                raise ValueError(f"each must be `owner/name`, got `{item}`") from exc
            if repo.lower() not in {r.lower() for r in found}:
                found.append(repo)
        return tuple(found)

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

    @field_validator("seniority_models", "model_prices", "hook_commands", mode="before")
    @classmethod
    def _parse_json_map(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"must be a JSON object ({exc.msg})") from exc
        return value

    @field_validator("hook_commands")
    @classmethod
    def _check_hook_commands(cls, value: dict[str, str]) -> dict[str, str]:
        for event, command in value.items():
            if event not in HOOK_EVENTS:
                raise ValueError(f"`{event}` is not a hook; the hooks are {', '.join(HOOK_EVENTS)}")
            if not isinstance(command, str) or not command.strip():
                raise ValueError(f"`{event}` must be a command line, for example \"/etc/agent-runner/{event}.sh\"")
            try:
                shlex.split(command)
            except ValueError as exc:
                raise ValueError(f"the `{event}` command cannot be split into arguments ({exc})") from exc
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
                  self.temporal_api_key, self.status_token]
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
        """The (first) dispatch repository: DISPATCH_REPO, else the first of DISPATCH_REPOS."""
        return self.require_dispatch_repos()[0]

    def require_dispatch_repos(self) -> tuple[str, ...]:
        """Every dispatch repository, DISPATCH_REPO first; raises ConfigError when there is none."""
        repos = [self.dispatch_repo] if self.dispatch_repo else []
        repos += [r for r in self.dispatch_repos if r.lower() not in {x.lower() for x in repos}]
        if not repos:
            raise ConfigError(
                "DISPATCH_REPO is not set. Set it to the repository that holds dispatch "
                "issues, for example `DISPATCH_REPO=octo-org/dispatch` (or several, "
                "comma-separated, in DISPATCH_REPOS)."
            )
        return tuple(repos)

    def repo_commands_allowed(self, target_repo: str) -> bool:
        """Whether `.agent-runner.yml` setup and validate commands may run for this repository."""
        items = [item.lower() for item in self.repo_commands]
        if "allow" in items:
            return True
        target = target_repo.lower()
        return any(fnmatch.fnmatchcase(target, p) for p in items if "/" in p)

    def target_allowed(self, target_repo: str, dispatch_repo: str | None = None) -> bool:
        """Whether the runner may act on this repository (case-insensitive, `org/*` globs).

        Without ALLOWED_TARGET_REPOS, only repositories of the task's dispatch repository's
        owner (``dispatch_repo``; by default the first dispatch repository): in a fleet a
        task filed in one organisation's dispatch repository never reaches another's."""
        patterns = self.allowed_target_repos
        if not patterns:
            dispatch = dispatch_repo or self.dispatch_repo or next(iter(self.dispatch_repos), "")
            owner = dispatch.split("/")[0]
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


# -- repository names (settings and task bodies both name repositories) -------------------------

_OWNER_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_REPO_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_GITHUB_URL_RE = re.compile(r"^(?:https?://[^/\s]+/|git@[^:\s]+:)(?P<path>[^\s]+?)(?:\.git)?/?$")


def normalize_repo(value: str) -> str:
    """Accept `owner/name`, a GitHub URL or an SSH remote; return `owner/name` or raise."""
    text = value.strip().strip("`'\"<>").strip()
    url = _GITHUB_URL_RE.match(text)
    if url:
        text = url.group("path")
    text = text.removesuffix(".git").strip("/")
    parts = text.split("/")
    if len(parts) != 2:
        raise TaskSpecError(
            f"`{shorten(value)}` is not a repository. Write it as `owner/name`, "
            "for example `Target Repository: octo-org/website`."
        )
    owner, name = parts
    if not _OWNER_RE.match(owner) or not _REPO_NAME_RE.match(name) or name in {".", ".."}:
        raise TaskSpecError(
            f"`{shorten(value)}` is not a valid GitHub repository name. Use letters, "
            "digits, `-`, `_` and `.` only, as `owner/name`."
        )
    return f"{owner}/{name}"


def shorten(text: str, limit: int = 80) -> str:
    """Quote user text in an error message: one line, no backticks, at most ``limit`` characters."""
    text = text.replace("`", "'").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
