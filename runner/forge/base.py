"""Describe what the runner needs from a forge, in our own values.

PyGithub objects never cross this boundary: the adapter converts them into
these frozen values, so that the pipeline, the tests and any future forge
(GitLab, Gitea) share one small surface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

FeedbackKind = Literal["issue_comment", "pr_comment", "review", "review_comment", "ci"]
KINDS: tuple[str, ...] = ("issue_comment", "pr_comment", "review", "review_comment", "ci")


@dataclass(frozen=True)
class FeedbackItem:
    """One comment or review, as posted; ``repo`` and ``number`` say where.

    Kind ``ci`` is the failing checks of a task PR's head commit ``sha`` (one item per
    commit, its ``id`` drawn from the sha): the CI round's trigger."""

    kind: FeedbackKind
    id: int
    repo: str
    number: int
    author: str
    body: str
    html_url: str = ""
    updated_at: str = ""  # GitHub's updated_at (submitted_at for reviews): the poll's watermark
    state: str | None = None  # a review's state, lower case ("changes_requested")
    path: str | None = None  # review comments: the file, line and hunk they point at
    line: int | None = None
    diff_hunk: str | None = None
    sha: str | None = None  # kind "ci": the head commit whose checks failed

    @property
    def key(self) -> str:
        """Unique in the ledger: comment and review ids are separate sequences on GitHub."""
        return f"{self.repo.lower()}:{self.kind}:{self.id}"

    @property
    def reactable(self) -> bool:
        """GitHub has reactions for comments and review comments, not for reviews."""
        return self.kind not in ("review", "ci")

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeedbackItem:
        kind = str(data.get("kind"))
        if kind not in KINDS:
            raise ValueError(f"unknown feedback kind {kind!r}")
        line = data.get("line")
        return cls(
            kind=kind,  # type: ignore[arg-type]
            id=int(data["id"]), repo=str(data["repo"]), number=int(data["number"]),
            author=str(data.get("author") or ""), body=str(data.get("body") or ""),
            html_url=str(data.get("html_url") or ""), updated_at=str(data.get("updated_at") or ""),
            state=_opt_str(data.get("state")), path=_opt_str(data.get("path")),
            line=int(line) if isinstance(line, int) else None, diff_hunk=_opt_str(data.get("diff_hunk")),
            sha=_opt_str(data.get("sha")),
        )


def _opt_str(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Issue:
    repo: str
    number: int
    title: str
    body: str
    labels: frozenset[str]
    author: str
    state: str
    updated_at: str
    html_url: str
    is_pull_request: bool = False
    comment_count: int | None = None  # None: the forge did not say


@dataclass(frozen=True)
class Comment:
    id: int
    body: str
    author: str
    html_url: str


@dataclass(frozen=True)
class PullRequest:
    number: int
    html_url: str
    state: str  # "open" or "closed"
    merged: bool
    head: str
    base: str
    title: str
    body: str
    draft: bool = False
    head_sha: str = ""  # the head commit (its checks are the CI round's trigger)


@dataclass(frozen=True)
class Annotation:
    """A check run's annotation: a line of a file and what the check said about it."""

    path: str
    start_line: int
    level: str  # "notice", "warning", "failure"
    message: str
    title: str = ""


@dataclass(frozen=True)
class Check:
    """One check on a commit: a check run (an Actions job or another app's run) or a commit status.

    Statuses map onto check runs: ``pending`` is ``in_progress``; ``success``,
    ``failure`` and ``error`` are completed with that conclusion."""

    name: str
    source: Literal["check_run", "status"]
    status: str  # "queued", "in_progress", "completed" (and GitHub's "waiting", "requested", "pending")
    conclusion: str | None = None  # "success", "failure", "neutral", "cancelled", "timed_out", ... ; statuses: "error"
    id: int = 0
    app: str = ""  # the app's slug: "github-actions" runs are Actions jobs (job id == check run id)
    title: str = ""
    summary: str = ""
    text: str = ""
    details_url: str = ""  # a check run's details, or a status's target URL
    description: str = ""  # a status's description

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def failed(self) -> bool:
        return self.completed and self.conclusion in ("failure", "timed_out", "cancelled", "action_required",
                                                      "error", "startup_failure")

    @property
    def actions_job(self) -> int | None:
        return self.id if self.source == "check_run" and self.app == "github-actions" and self.id else None


@dataclass(frozen=True)
class CommitChecks:
    """Every check on one commit (check runs and statuses, the latest of each name)."""

    sha: str
    checks: tuple[Check, ...] = ()


@dataclass(frozen=True)
class LabelEvent:
    """A label added to or removed from an issue, by whom and when (ISO 8601, UTC)."""

    action: str  # "labeled" or "unlabeled"
    label: str
    actor: str | None
    at: str


@dataclass(frozen=True)
class ContentEdit:
    """One revision of an issue body; ``editor`` is None when GitHub no longer knows the account."""

    editor: str | None
    at: str


@dataclass(frozen=True)
class IssueTrail:
    """Who approved and who changed an issue's text: what the trust rules need, in one read.

    ``edits`` lists body revisions (GitHub's ``userContentEdits``, which include
    the original text once the body has been edited); ``complete`` is False when
    GitHub returned only part of the history, so the rules must not assume the
    rest is harmless.
    """

    author: str | None
    body: str
    created_at: str
    last_edited_at: str | None
    edits: tuple[ContentEdit, ...]
    label_events: tuple[LabelEvent, ...]
    complete: bool = True


@dataclass(frozen=True)
class RepoInfo:
    full_name: str
    default_branch: str
    clone_url: str
    private: bool


@dataclass(frozen=True)
class TokenInfo:
    """Who the token is, what it may do (classic scopes; None for fine-grained or app tokens),
    and GitHub's clock (its `Date` header)."""

    login: str
    scopes: tuple[str, ...] | None
    server_time: datetime | None


@dataclass(frozen=True)
class RepoAccess:
    """A repository the token can see and the token's permissions on it (`push`, `triage`, ...)."""

    full_name: str
    permissions: frozenset[str]
    private: bool


class Forge(Protocol):
    """The GitHub operations the pipeline uses; every failure is a ForgeError."""

    def list_dispatch_issues(self, repo: str, label: str) -> Sequence[Issue]:
        """Open issues carrying ``label``, pull requests excluded."""

    def get_issue(self, repo: str, number: int) -> Issue: ...

    def create_issue(self, repo: str, title: str, body: str, labels: Sequence[str]) -> int:
        """Open an issue and return its number (the smoke test's, the dashboard); not retried."""

    def edit_issue_body(self, repo: str, number: int, body: str) -> Issue:
        """Replace an issue's body (the dashboard's, which the runner wrote)."""

    def authenticated_login(self, repo: str) -> str:
        """Who the runner is: the token's user (``GET /user``), or a GitHub App's ``<slug>[bot]``."""
        ...

    def list_comments(self, repo: str, number: int) -> Sequence[Comment]: ...

    def create_comment(self, repo: str, number: int, body: str) -> Comment: ...

    def edit_comment(self, repo: str, comment_id: int, body: str) -> Comment: ...

    def add_labels(self, repo: str, number: int, labels: Sequence[str]) -> None: ...

    def remove_label(self, repo: str, number: int, label: str) -> None:
        """Remove a label; a label that is not there is not an error."""

    def label_actor(self, repo: str, number: int, label: str) -> str | None:
        """Login of whoever most recently added ``label`` to the issue."""

    def permission(self, repo: str, user: str) -> str:
        """'admin', 'maintain', 'write', 'triage', 'read' or 'none'."""

    def issue_trail(self, repo: str, number: int) -> IssueTrail:
        """Label events and body edits of an issue, for the trust rules (one request)."""

    def repo_info(self, repo: str) -> RepoInfo: ...

    def find_pull(self, repo: str, head_branch: str) -> PullRequest | None:
        """The newest PR from ``head_branch`` in any state (open, closed or merged)."""

    def create_pull(
        self, repo: str, *, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequest:
        """Open a PR; if one already exists for ``head``, return that one instead."""

    def write_wait(self, repo: str | None = None) -> float:
        """Seconds a write (of ``repo``'s token; None: the busiest) would now wait for the pacer."""

    def writes_used(self, repo: str) -> int:
        """Writes of ``repo``'s token (installation) in the trailing hour, every replica's with a shared ledger."""

    def update_pull(
        self,
        repo: str,
        number: int,
        *,
        title: str | None = None,
        body: str | None = None,
        state: str | None = None,
    ) -> PullRequest: ...

    def comments_since(self, repo: str, since: str) -> Sequence[FeedbackItem]:
        """Issue and PR conversation comments of the whole repository updated at or after ``since``.

        One conditional request while nothing changed (``[]`` on 304), however many
        issues and PRs are open; items come with kind ``issue_comment``."""
        ...

    def review_comments_since(self, repo: str, since: str) -> Sequence[FeedbackItem]:
        """Review comments on every PR of the repository updated at or after ``since``; conditional too."""
        ...

    def add_reaction(self, item: FeedbackItem, content: str) -> None:
        """React to a comment or review comment; an existing identical reaction is success."""

    def review_thread(self, review: FeedbackItem) -> Sequence[FeedbackItem]:
        """The inline comments of a review (path, line, diff hunk), as ``review_comment`` items."""
        ...

    def get_pull(self, repo: str, number: int) -> PullRequest:
        """One PR with its head commit; a conditional read (a 304 re-uses the last answer)."""
        ...

    def commit_checks(self, repo: str, ref: str) -> CommitChecks:
        """The check runs and statuses of a commit or branch head; conditional reads, no writes."""
        ...

    def check_annotations(self, repo: str, check_run_id: int) -> Sequence[Annotation]:
        """A check run's annotations (path, line, message)."""
        ...

    def job_log(self, repo: str, job_id: int, max_bytes: int) -> str:
        """An Actions job's log (GitHub answers 302 to a short-lived URL), at most its last ``max_bytes``."""
        ...
