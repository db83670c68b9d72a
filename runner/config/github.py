"""Say how the runner reaches GitHub and who it is there: the API, the App, the repositories, webhooks, identity."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from runner.config.base import CsvList, Group, check_url
from runner.config.repos import normalize_repo
from runner.errors import ConfigError, TaskSpecError


class GitHubSettings(Group):
    """The GitHub API and its limits, the credentials, and which repositories are work."""

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

    _api_url = field_validator("github_api_url")(check_url)

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

    @model_validator(mode="after")
    def _check_credentials(self) -> Self:
        has_token = self.github_token is not None and bool(self.github_token.get_secret_value())
        if has_token and self.github_app_id is not None:
            raise ValueError("set GITHUB_TOKEN or GITHUB_APP_ID (a GitHub App), not both")
        if self.github_app_id is None and (self.github_app_private_key or self.github_app_private_key_file):
            raise ValueError("GITHUB_APP_PRIVATE_KEY(_FILE) is set but GITHUB_APP_ID is not; set the app's id "
                             "(the number on the app's settings page)")
        return self

    @property
    def auth_mode(self) -> Literal["token", "app"]:
        """How the runner authenticates: a personal token, or as a GitHub App."""
        return "app" if self.github_app_id is not None else "token"

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


class WebhookSettings(Group):
    """Webhook intake (`agent-runner serve`, or `run` with WEBHOOK_SECRET set)."""

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

    @model_validator(mode="after")
    def _check_secret_length(self) -> Self:
        if self.webhook_secret is not None and len(self.webhook_secret.get_secret_value()) < 16:
            raise ValueError("WEBHOOK_SECRET must be at least 16 characters; generate one with "
                             "`python -c 'import secrets; print(secrets.token_hex(32))'`")
        return self

    @property
    def webhooks_enabled(self) -> bool:
        return self.webhook_secret is not None


class IdentitySettings(Group):
    """Who the runner is in comments and commits."""

    agent_name: str = "agent-runner"
    """The name shown in comments, and the commit author name unless GIT_AUTHOR_NAME is set."""
    git_author_name: str | None = None
    """Commit author name. Empty: AGENT_NAME."""
    git_author_email: str = "agent-runner@users.noreply.github.com"
    """Commit author email. Commits by any other author on a task branch count as a human's, and the runner does not overwrite them."""

    @property
    def author_name(self) -> str:
        return self.git_author_name or self.agent_name
