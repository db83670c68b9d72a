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

from .errors import Forbidden, NotFound, ValidationFailed
from .gitrepo import BareRepo, DiffStats, Identity
from .hookshot import Hookshot
from .models import Issue, Permission, Repo, permits
from .shapes import Renderer
from .store import Clock, Store

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def split_full_name(full_name: str) -> tuple[str, str]:
    """Check and split ``owner/name``; both parts end up in paths and URLs."""
    owner, _, name = full_name.partition("/")
    if not (_NAME.match(owner) and _NAME.match(name)) or name in (".", "..") or name.endswith(".git"):
        raise ValidationFailed(
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
            raise NotFound()
        role = self.store.permission(full_name, login)
        if not permits(role, "read"):
            raise NotFound()
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

    def pull_json(self, repo: Repo, issue: Issue, *, full: bool = True) -> dict[str, Any]:
        """A ``pull-request``, or with ``full=False`` the ``pull-request-simple`` of a list."""
        assert issue.pull is not None
        git = self.git(repo)
        head, base = git.branch_sha(issue.pull.head), git.branch_sha(issue.pull.base)
        stats = git.diff_stats(base, head) if full and head and base else None
        if full and stats is None:
            stats = DiffStats(0, 0, 0, 0)
        return self.renderer().pull(repo, issue, head, base, stats=stats)

    def create_pull(
        self, repo: Repo, *, title: str, body: str | None, head: str, base: str | None,
        draft: bool, actor: str,
    ) -> Issue:
        """Open a PR from a branch of the same repository, validated like GitHub does."""
        head_owner, _, head_ref = head.rpartition(":")
        base = base or repo.default_branch
        git = self.git(repo)
        if head_owner and head_owner.lower() != repo.owner.lower():
            raise ValidationFailed([{"resource": "PullRequest", "field": "head", "code": "invalid"}])
        head_sha, base_sha = git.branch_sha(head_ref), git.branch_sha(base)
        for field, sha in (("base", base_sha), ("head", head_sha)):
            if sha is None:
                raise ValidationFailed([{"resource": "PullRequest", "field": field, "code": "invalid"}])
        assert head_sha and base_sha
        if git.is_ancestor(head_sha, base_sha):
            raise ValidationFailed([{
                "resource": "PullRequest", "code": "custom",
                "message": f"No commits between {base} and {head_ref}",
            }])
        return self.store.create_issue(
            repo.full_name, title=title, body=body, actor=actor, pull=(head_ref, base, draft)
        )

    def merge_pull(self, full_name: str, number: int, *, actor: str, update_base: bool = True) -> Issue:
        """Mark a PR merged; with ``update_base``, really merge its head into the base branch."""
        repo = self.store.repo(full_name)
        issue = self.store.issue(full_name, number)
        if issue.pull is None:
            raise NotFound()
        merge_sha = None
        if update_base and issue.state == "open":
            git = self.git(repo)
            head_sha = git.branch_sha(issue.pull.head)
            if head_sha is None:
                raise ValidationFailed([{"resource": "PullRequest", "field": "head", "code": "invalid"}])
            merge_sha = git.merge(
                issue.pull.base, head_sha, author=identity(actor),
                message=f"Merge pull request #{number} from {repo.owner}/{issue.pull.head}",
            )
        return self.store.merge_pull(full_name, number, actor=actor, merge_commit_sha=merge_sha)
