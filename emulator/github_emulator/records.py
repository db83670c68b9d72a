"""The emulator's persisted data model: plain pydantic records, no behaviour.

Everything GitHub would keep server-side lives here so that one JSON file
round-trips the whole world across restarts. Git objects are not here: the
bare repositories on disk are the source of truth for branches and files.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, Field

Permission = Literal["none", "read", "triage", "write", "maintain", "admin"]
PERMISSION_ORDER: tuple[Permission, ...] = ("none", "read", "triage", "write", "maintain", "admin")


def permits(have: Permission, need: Permission) -> bool:
    """Tell whether role ``have`` includes everything role ``need`` grants."""
    return PERMISSION_ORDER.index(have) >= PERMISSION_ORDER.index(need)


def token_digest(token: str) -> str:
    """Hash a token so that the state file never holds one in clear."""
    return hashlib.sha256(token.encode()).hexdigest()


class User(BaseModel):
    login: str
    id: int
    site_admin: bool = False
    created_at: str
    bot: bool = False  # a GitHub App's ``<slug>[bot]`` user


class Label(BaseModel):
    id: int
    name: str
    color: str = "ededed"
    description: str | None = None
    default: bool = False


class Event(BaseModel):
    """One entry of an issue's timeline (``labeled``, ``closed``, ...)."""

    id: int
    event: str
    actor: str
    created_at: str
    label: dict[str, str] | None = None


class ContentEdit(BaseModel):
    """One revision of an issue body (GraphQL ``UserContentEdit``); the first holds the original."""

    id: int
    editor: str
    edited_at: str
    diff: str | None = None


class Comment(BaseModel):
    id: int
    issue_number: int
    user: str
    body: str
    created_at: str
    updated_at: str


class Review(BaseModel):
    """A submitted pull request review; ``state`` as the REST API spells it (``CHANGES_REQUESTED``)."""

    id: int
    pull_number: int
    user: str
    body: str
    state: Literal["APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING"]
    commit_id: str | None = None
    submitted_at: str


class ReviewComment(BaseModel):
    """A comment on a line of a pull request's diff."""

    id: int
    pull_number: int
    review_id: int | None = None
    user: str
    body: str
    path: str
    line: int | None = None
    side: str = "RIGHT"
    diff_hunk: str = ""
    commit_id: str | None = None
    in_reply_to_id: int | None = None
    created_at: str
    updated_at: str


class Reaction(BaseModel):
    id: int
    user: str
    content: Literal["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"]
    created_at: str


class PullInfo(BaseModel):
    """The pull-request half of an issue; GitHub numbers both from one sequence."""

    id: int
    head: str
    base: str
    draft: bool = False
    merged_at: str | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None


class Issue(BaseModel):
    number: int
    id: int
    title: str
    body: str | None = None
    user: str
    state: Literal["open", "closed"] = "open"
    state_reason: str | None = None
    labels: list[str] = Field(default_factory=list)
    created_at: str
    updated_at: str
    closed_at: str | None = None
    closed_by: str | None = None
    comment_count: int = 0
    events: list[Event] = Field(default_factory=list)
    last_edited_at: str | None = None
    editor: str | None = None
    edits: list[ContentEdit] = Field(default_factory=list)
    pull: PullInfo | None = None


class Repo(BaseModel):
    """Repository metadata; issues and comments are kept beside it in :class:`World`."""

    id: int
    owner: str
    name: str
    private: bool = True
    description: str | None = None
    default_branch: str = "main"
    created_at: str
    updated_at: str
    labels: dict[str, Label] = Field(default_factory=dict)
    collaborators: dict[str, Permission] = Field(default_factory=dict)
    next_number: int = 1

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


class GitHubAppRecord(BaseModel):
    """A registered GitHub App: who signs its JWTs, and where its webhooks go."""

    id: int
    slug: str
    name: str
    owner: str
    public_key_pem: str
    created_at: str
    webhook_url: str | None = None
    webhook_secret: str | None = None  # kept in clear: the emulator must sign with it
    events: list[str] = Field(default_factory=list)

    @property
    def bot_login(self) -> str:
        return f"{self.slug}[bot]"


class Installation(BaseModel):
    """An app installed on an account; ``repositories`` None means all of its repositories."""

    id: int
    app_id: int
    account: str
    repositories: list[str] | None = None  # lower-cased full names
    created_at: str

    def covers(self, full_name: str) -> bool:
        owner = full_name.split("/")[0].lower()
        if owner != self.account.lower():
            return False
        return self.repositories is None or full_name.lower() in self.repositories


class InstallationToken(BaseModel):
    installation_id: int
    expires_at: str


class World(BaseModel):
    """The whole persisted state. Dict keys are lower-cased: GitHub names are case-insensitive."""

    users: dict[str, User] = Field(default_factory=dict)
    tokens: dict[str, str] = Field(default_factory=dict)  # sha256(token) -> user key
    repos: dict[str, Repo] = Field(default_factory=dict)
    issues: dict[str, dict[int, Issue]] = Field(default_factory=dict)
    comments: dict[str, dict[int, Comment]] = Field(default_factory=dict)
    apps: dict[int, GitHubAppRecord] = Field(default_factory=dict)
    installations: dict[int, Installation] = Field(default_factory=dict)
    installation_tokens: dict[str, InstallationToken] = Field(default_factory=dict)  # sha256(token) ->
    reviews: dict[str, dict[int, Review]] = Field(default_factory=dict)  # repo -> id -> review
    review_comments: dict[str, dict[int, ReviewComment]] = Field(default_factory=dict)
    reactions: dict[str, list[Reaction]] = Field(default_factory=dict)  # "repo|kind|id" -> reactions
    next_id: int = 1
