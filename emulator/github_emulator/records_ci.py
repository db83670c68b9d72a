"""The persisted records of the emulated CI: check suites and runs, commit statuses, Actions runs and rules.

An Actions job *is* a check run on GitHub (the job id is the check run id), so a
job is a :class:`CheckRunRecord` with a ``workflow_run_id`` and a log.
:class:`CiRule` is the emulator's stand-in for a repository's workflows: a test
(or a person) says which checks run on every push and when each fails.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class CiRule(BaseModel):
    """One check that runs on every push: it fails while ``path`` lacks ``line`` (or always, with ``fail``).

    ``kind`` says who reports it: an Actions job (``actions``, with a log), another
    app's check run (``app``, with an ``output``), or a commit status (``status``).
    ``hold`` leaves it in progress until :meth:`~.ci.CiEngine.release` completes it."""

    name: str
    kind: Literal["actions", "app", "status"] = "actions"
    workflow: str = "CI"
    path: str = ""
    line: str = ""
    fail: bool = False  # fails whatever the files say
    fail_log: str = "##[error]Process completed with exit code 1.\n"
    pass_log: str = "All checks passed.\n"
    title: str = ""
    summary: str = ""
    annotations: list[dict[str, object]] = Field(default_factory=list)
    target_url: str = ""
    hold: bool = False


class CheckSuiteRecord(BaseModel):
    id: int
    head_sha: str
    head_branch: str | None = None
    app_slug: str = "github-actions"
    app_id: int | None = None  # an emulated app's id; None for the built-in Actions and CI apps
    status: str = "queued"
    conclusion: str | None = None
    before: str | None = None
    created_at: str
    updated_at: str


class CheckRunRecord(BaseModel):
    id: int
    suite_id: int
    name: str
    head_sha: str
    status: str = "queued"
    conclusion: str | None = None
    started_at: str
    completed_at: str | None = None
    external_id: str | None = None
    details_url: str | None = None
    title: str | None = None
    summary: str | None = None
    text: str | None = None
    annotations: list[dict[str, object]] = Field(default_factory=list)
    # Actions jobs only
    workflow_run_id: int | None = None
    log: str = ""
    log_token: str = ""
    rule: str | None = None  # the rule that made it (a held run completes by it)


class StatusRecord(BaseModel):
    id: int
    sha: str
    state: Literal["error", "failure", "pending", "success"]
    context: str = "default"
    description: str | None = None
    target_url: str | None = None
    creator: str
    created_at: str
    updated_at: str
    rule: str | None = None


class WorkflowRunRecord(BaseModel):
    id: int
    name: str
    path: str
    workflow_id: int
    head_sha: str
    head_branch: str | None = None
    run_number: int
    suite_id: int
    actor: str
    event: str = "push"
    status: str = "queued"
    conclusion: str | None = None
    created_at: str
    updated_at: str


class CiState(BaseModel):
    """Everything CI of one repository; the store keeps one per repository (lower-cased name)."""

    rules: list[CiRule] = Field(default_factory=list)
    suites: dict[int, CheckSuiteRecord] = Field(default_factory=dict)
    runs: dict[int, CheckRunRecord] = Field(default_factory=dict)
    statuses: list[StatusRecord] = Field(default_factory=list)
    workflow_runs: dict[int, WorkflowRunRecord] = Field(default_factory=dict)
    run_numbers: int = 0
