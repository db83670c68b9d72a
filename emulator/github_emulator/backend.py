"""Join the JSON state and the bare repositories into GitHub's domain operations.

Operations that touch both (create a repository with its first commit, open
a pull request from a pushed branch, merge one) live here once, and both the
REST handlers and :class:`GitHubEmulator` call them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .ci import CiEngine
from .errors import Forbidden, ResourceNotFound, UnprocessableEntity
from .gitrepo import BareRepo, DiffStats, Identity
from .hookshot import Hookshot
from .records import Issue, Permission, Repo, Review, ReviewComment, permits
from .shapes import Renderer
from .shapes_ci import webhook_payload
from .store import Clock, Store

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def split_full_name(full_name: str) -> tuple[str, str]:
    """Check and split ``owner/name``; both parts end up in paths and URLs."""
    owner, _, name = full_name.partition("/")
    if not (_NAME.match(owner) and _NAME.match(name)) or name in (".", "..") or name.endswith(".git"):
        raise UnprocessableEntity(
            [{"resource": "Repository", "code": "invalid", "field": "name"}],
            f"Invalid repository name: {full_name!r}",
        )
    return owner, name


def identity(login: str) -> Identity:
    return Identity(login, f"{login}@users.noreply.github.com")


class Backend:
    """The emulated GitHub, minus HTTP: state, git and rendering for one state directory."""

    def __init__(self, state_dir: Path, *, clock: Clock | None = None) -> None:
        self.state_dir = state_dir
        self.git_root = state_dir / "git"
        self.store = Store(state_dir / "state.json", clock)
        self.base_url = ""  # known once the server has bound its port
        self.hookshot = Hookshot(self)
        self.store.listeners.append(self.hookshot.on_notice)
        # checks, statuses and Actions (api_checks, api_actions)
        self.ci = CiEngine(self, lambda *args: webhook_payload(self, *args))

    def renderer(self) -> Renderer:
        return Renderer(self.base_url, self.store.users())

    def git(self, repo: Repo) -> BareRepo:
        return BareRepo(self.bare_path(repo.full_name))

    def bare_path(self, full_name: str) -> Path:
        owner, name = split_full_name(full_name)
        if self.store.has_repo(full_name):  # use the canonical spelling on disk
            owner, name = self.store.repo(full_name).full_name.split("/")
        return self.git_root / owner / f"{name}.git"

    def authorize(self, full_name: str, login: str | None, need: Permission, *,
                  installation_id: int | None = None) -> Repo:
        """Return the repository if ``login`` may act on it with role ``need``.

        Without read access GitHub hides a repository's existence (404);
        with read but not enough access it answers 403. An installation token
        reaches only the repositories of its own installation, even when the
        same app is installed elsewhere too.
        """
        if installation_id is not None and not self.store.installation(installation_id).covers(
                self.store.repo(full_name).full_name):
            raise ResourceNotFound()
        role = self.store.permission(full_name, login)
        if not permits(role, "read"):
            raise ResourceNotFound()
        if not permits(role, need):
            kind = "integration" if installation_id is not None else "personal access token"
            raise Forbidden(f"Resource not accessible by {kind}")
        return self.store.repo(full_name)

    def create_repo(
        self,
        full_name: str,
        *,
        private: bool = True,
        default_branch: str = "main",
        description: str | None = None,
        files: Mapping[str, str | bytes] | None = None,
    ) -> Repo:
        """Create the record and the bare repository; ``files=None`` leaves it empty (no commit)."""
        owner, name = split_full_name(full_name)
        repo = self.store.create_repo(  # first: it refuses duplicates atomically
            owner, name, private=private, default_branch=default_branch, description=description
        )
        BareRepo.create(self.bare_path(repo.full_name), default_branch=default_branch,
                        files=files, author=identity(repo.owner))
        return repo

    def pull_json(self, repo: Repo, issue: Issue, *, full: bool = True,
                  read: tuple[str, str, DiffStats] | None = None) -> dict[str, Any]:
        """A ``pull-request``, or with ``full=False`` the ``pull-request-simple`` of a list.

        ``read`` is the head, base and stats the caller has just read (a new PR's)."""
        assert issue.pull is not None
        git = self.git(repo)
        if read is not None:
            return self.renderer().pull(repo, issue, read[0], read[1], stats=read[2] if full else None)
        shas = git.branch_shas(issue.pull.head, issue.pull.base)
        head, base = shas[issue.pull.head], shas[issue.pull.base]
        stats = git.diff_stats(base, head) if full and head and base else None
        if full and stats is None:
            stats = DiffStats(0, 0, 0, 0)
        return self.renderer().pull(repo, issue, head, base, stats=stats)

    def create_pull(
        self, repo: Repo, *, title: str, body: str | None, head: str, base: str | None,
        draft: bool, actor: str,
    ) -> tuple[Issue, tuple[str, str, DiffStats]]:
        """Open a PR from a branch of the same repository, validated like GitHub does; also the
        head, base and stats read on the way (for :meth:`pull_json`)."""
        head_owner, _, head_ref = head.rpartition(":")
        base = base or repo.default_branch
        git = self.git(repo)
        if head_owner and head_owner.lower() != repo.owner.lower():
            raise UnprocessableEntity([{"resource": "PullRequest", "field": "head", "code": "invalid"}])
        shas = git.branch_shas(head_ref, base)
        head_sha, base_sha = shas[head_ref], shas[base]
        for field, sha in (("base", base_sha), ("head", head_sha)):
            if sha is None:
                raise UnprocessableEntity([{"resource": "PullRequest", "field": field, "code": "invalid"}])
        assert head_sha and base_sha
        stats = git.diff_stats(base_sha, head_sha)
        if stats.commits == 0:  # the head is already in the base
            raise UnprocessableEntity([{
                "resource": "PullRequest", "code": "custom",
                "message": f"No commits between {base} and {head_ref}",
            }])
        issue = self.store.create_issue(
            repo.full_name, title=title, body=body, actor=actor, pull=(head_ref, base, draft)
        )
        return issue, (head_sha, base_sha, stats)

    def merge_pull(self, full_name: str, number: int, *, actor: str, update_base: bool = True) -> Issue:
        """Mark a PR merged; with ``update_base``, really merge its head into the base branch."""
        repo = self.store.repo(full_name)
        issue = self.store.issue(full_name, number)
        if issue.pull is None:
            raise ResourceNotFound()
        merge_sha = None
        if update_base and issue.state == "open":
            git = self.git(repo)
            head_sha = git.branch_sha(issue.pull.head)
            if head_sha is None:
                raise UnprocessableEntity([{"resource": "PullRequest", "field": "head", "code": "invalid"}])
            merge_sha = git.merge(
                issue.pull.base, head_sha, author=identity(actor),
                message=f"Merge pull request #{number} from {repo.owner}/{issue.pull.head}",
            )
        return self.store.merge_pull(full_name, number, actor=actor, merge_commit_sha=merge_sha)

    # -- reviews -----------------------------------------------------------

    def submit_review(self, repo: Repo, number: int, *, body: str, state: str, actor: str,
                      comments: list[Any] | None = None) -> Review:
        """Store a review, then its inline comments (each one a ``pull_request_review_comment``)."""
        issue = self.store.issue(repo.full_name, number)
        assert issue.pull is not None
        head = self.git(repo).branch_sha(issue.pull.head)
        review = self.store.add_review(repo.full_name, number, body=body, state=state, actor=actor, commit_id=head)
        for item in comments or []:
            if not isinstance(item, dict) or not isinstance(item.get("path"), str) or not item.get("body"):
                raise UnprocessableEntity([{"resource": "PullRequestReviewComment", "code": "invalid",
                                         "field": "comments"}])
            self.comment_on_diff(repo, number, body=str(item["body"]), path=item["path"],
                                 line=item.get("line") if isinstance(item.get("line"), int) else None,
                                 actor=actor, review_id=review.id)
        return review

    def comment_on_diff(self, repo: Repo, number: int, *, body: str, path: str, line: int | None, actor: str,
                        review_id: int | None = None) -> ReviewComment:
        """A review comment on ``path`` at ``line`` of the PR's diff, with GitHub's ``diff_hunk``."""
        issue = self.store.issue(repo.full_name, number)
        assert issue.pull is not None
        git = self.git(repo)
        head, base = git.branch_sha(issue.pull.head), git.branch_sha(issue.pull.base)
        hunk = diff_hunk(git.diff(base, head, path), line) if head and base else None
        if hunk is None:
            # GitHub: "pull_request_review_thread.line must be part of the diff"
            raise UnprocessableEntity([{"resource": "PullRequestReviewComment", "code": "custom",
                                     "field": "line", "message": "line must be part of the diff"}])
        return self.store.add_review_comment(repo.full_name, number, body=body, path=path, line=line,
                                             actor=actor, diff_hunk=hunk, commit_id=head, review_id=review_id)


_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(?P<start>\d+)(?:,(?P<count>\d+))? @@")


def diff_hunk(diff: str, line: int | None) -> str | None:
    """The hunk of a one-file diff up to ``line`` of the new side (the whole last hunk for None)."""
    hunks: list[tuple[int, list[str]]] = []
    for text in diff.splitlines():
        match = _HUNK.match(text)
        if match:
            hunks.append((int(match.group("start")), [text]))
        elif hunks:
            hunks[-1][1].append(text)
    if not hunks:
        return None
    if line is None:
        return "\n".join(hunks[-1][1])
    for start, lines in hunks:
        current = start - 1
        for index, text in enumerate(lines[1:], start=1):
            if not text.startswith("-"):
                current += 1
            if current == line and not text.startswith("-"):
                return "\n".join(lines[: index + 1])
    return None
