"""Render stored records as GitHub's REST JSON, following the published OpenAPI shapes.

Pure functions over values: no lock, no git, no clock. Clients such as
PyGithub follow the ``url`` fields they are given, so every URL here points
back at the emulator.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from .gitrepo import CommitInfo, TreeEntry
from .models import Comment, Event, Issue, Label, Permission, Repo, User, permits
from .store import iso

JSON = dict[str, Any]

# GitHub reports the legacy permission in ``permission`` and the real role in
# ``role_name``: https://docs.github.com/rest/collaborators/collaborators
_LEGACY_PERMISSION: dict[Permission, str] = {
    "admin": "admin", "maintain": "write", "write": "write",
    "triage": "read", "read": "read", "none": "none",
}

# The ``permissions`` object on a repository: flag -> role it needs.
_REPO_FLAGS: tuple[tuple[str, Permission], ...] = (
    ("admin", "admin"), ("maintain", "maintain"), ("push", "write"), ("triage", "triage"), ("pull", "read"),
)


def node_id(kind: str, number: int) -> str:
    """Mimic GitHub's legacy global node ids, e.g. ``MDU6SXNzdWUx`` for Issue 1."""
    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode()


def _git_date(value: str) -> str:
    return iso(datetime.fromisoformat(value))


class Renderer:
    """Build JSON bodies for one emulator base URL and a snapshot of its users."""

    def __init__(self, base_url: str, users: Mapping[str, User]) -> None:
        self.base = base_url
        self.users = users

    def _api(self, repo: Repo, *parts: object) -> str:
        return "/".join([f"{self.base}/repos/{repo.full_name}", *map(str, parts)])

    def _web(self, repo: Repo, *parts: object) -> str:
        return "/".join([f"{self.base}/{repo.full_name}", *map(str, parts)])

    def git_url(self, repo: Repo) -> str:
        return f"{self.base}/git/{repo.full_name}.git"

    def user(self, login: str | None) -> JSON | None:
        if login is None:
            return None
        known = self.users.get(login.lower())
        login = known.login if known else login
        url = f"{self.base}/users/{login}"
        return {
            "login": login, "id": known.id if known else 0,
            "node_id": node_id("User", known.id if known else 0),
            "avatar_url": f"{self.base}/avatars/{login}", "gravatar_id": "",
            "url": url, "html_url": f"{self.base}/{login}", "repos_url": f"{url}/repos",
            "type": "Bot" if known and known.bot else "User",
            "site_admin": bool(known and known.site_admin),
        }

    def authenticated_user(self, login: str) -> JSON:
        known = self.users[login.lower()]
        return {
            **(self.user(login) or {}), "name": login, "email": None, "company": None,
            "created_at": known.created_at, "updated_at": known.created_at,
        }

    def repo(self, repo: Repo, *, permission: Permission | None = None) -> JSON:
        body: JSON = {
            "id": repo.id, "node_id": node_id("Repository", repo.id), "name": repo.name,
            "full_name": repo.full_name, "owner": self.user(repo.owner), "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "html_url": self._web(repo), "description": repo.description, "fork": False,
            "url": self._api(repo), "clone_url": self.git_url(repo),
            "git_url": self.git_url(repo), "svn_url": self._web(repo),
            "issues_url": self._api(repo, "issues{/number}"),
            "pulls_url": self._api(repo, "pulls{/number}"),
            "default_branch": repo.default_branch, "archived": False, "disabled": False,
            "has_issues": True, "has_projects": False, "has_wiki": False,
            "created_at": repo.created_at, "updated_at": repo.updated_at,
            "pushed_at": repo.updated_at,
        }
        if permission is not None:
            body["permissions"] = {flag: permits(permission, need) for flag, need in _REPO_FLAGS}
        return body

    def label(self, repo: Repo, label: Label) -> JSON:
        return {
            "id": label.id, "node_id": node_id("Label", label.id),
            "url": self._api(repo, "labels", quote(label.name, safe="")),
            "name": label.name, "color": label.color,
            "description": label.description, "default": label.default,
        }

    def _issue_labels(self, repo: Repo, issue: Issue) -> list[JSON]:
        known = [repo.labels.get(name.lower()) for name in issue.labels]
        return [self.label(repo, label) for label in known if label is not None]

    @staticmethod
    def _association(repo: Repo, login: str) -> str:
        if login.lower() == repo.owner.lower():
            return "OWNER"
        return "COLLABORATOR" if permits(repo.collaborators.get(login.lower(), "none"), "read") else "NONE"

    def issue(self, repo: Repo, issue: Issue) -> JSON:
        url = self._api(repo, "issues", issue.number)
        body: JSON = {
            "id": issue.id, "node_id": node_id("Issue", issue.id), "url": url,
            "repository_url": self._api(repo), "labels_url": f"{url}/labels{{/name}}",
            "comments_url": f"{url}/comments", "events_url": f"{url}/events",
            "html_url": self._web(repo, "issues", issue.number), "number": issue.number,
            "state": issue.state, "state_reason": issue.state_reason, "title": issue.title,
            "body": issue.body, "user": self.user(issue.user),
            "labels": self._issue_labels(repo, issue), "assignee": None, "assignees": [],
            "milestone": None, "locked": False, "active_lock_reason": None,
            "comments": issue.comment_count, "created_at": issue.created_at,
            "updated_at": issue.updated_at, "closed_at": issue.closed_at,
            "closed_by": self.user(issue.closed_by),
            "author_association": self._association(repo, issue.user),
        }
        if issue.pull is not None:
            # The issues API returns PRs too, marked by this key:
            # https://docs.github.com/rest/issues/issues#list-repository-issues
            pull_url = self._api(repo, "pulls", issue.number)
            html = self._web(repo, "pull", issue.number)
            body["html_url"] = html
            body["draft"] = issue.pull.draft
            body["pull_request"] = {
                "url": pull_url, "html_url": html, "diff_url": f"{html}.diff",
                "patch_url": f"{html}.patch", "merged_at": issue.pull.merged_at,
            }
        return body

    def comment(self, repo: Repo, comment: Comment) -> JSON:
        return {
            "id": comment.id, "node_id": node_id("IssueComment", comment.id),
            "url": self._api(repo, "issues", "comments", comment.id),
            "html_url": self._web(repo, "issues", comment.issue_number) + f"#issuecomment-{comment.id}",
            "issue_url": self._api(repo, "issues", comment.issue_number),
            "body": comment.body, "user": self.user(comment.user),
            "created_at": comment.created_at, "updated_at": comment.updated_at,
            "author_association": self._association(repo, comment.user),
            "performed_via_github_app": None,
        }

    def event(self, repo: Repo, event: Event) -> JSON:
        body: JSON = {
            "id": event.id, "node_id": node_id("IssueEvent", event.id),
            "url": self._api(repo, "issues", "events", event.id), "actor": self.user(event.actor),
            "event": event.event, "commit_id": None, "commit_url": None,
            "created_at": event.created_at, "performed_via_github_app": None,
        }
        if event.label is not None:
            body["label"] = dict(event.label)
        return body

    def pull(self, repo: Repo, issue: Issue, head_sha: str | None, base_sha: str | None) -> JSON:
        assert issue.pull is not None
        pull, issue_json = issue.pull, self.issue(repo, issue)
        url = self._api(repo, "pulls", issue.number)

        def side(ref: str, sha: str | None) -> JSON:
            return {"label": f"{repo.owner}:{ref}", "ref": ref, "sha": sha,
                    "user": self.user(repo.owner), "repo": self.repo(repo)}

        return {
            "url": url, "id": pull.id, "node_id": node_id("PullRequest", pull.id),
            "html_url": issue_json["html_url"], "diff_url": issue_json["pull_request"]["diff_url"],
            "patch_url": issue_json["pull_request"]["patch_url"], "issue_url": issue_json["url"],
            "commits_url": f"{url}/commits", "comments_url": issue_json["comments_url"],
            "review_comments_url": f"{url}/comments",
            "statuses_url": self._api(repo, "statuses", head_sha or ""),
            **{k: issue_json[k] for k in (
                "number", "state", "locked", "title", "user", "body", "labels", "milestone",
                "active_lock_reason", "created_at", "updated_at", "closed_at", "assignee",
                "assignees", "author_association", "comments")},
            "merged_at": pull.merged_at, "merge_commit_sha": pull.merge_commit_sha,
            "requested_reviewers": [], "requested_teams": [],
            "head": side(pull.head, head_sha), "base": side(pull.base, base_sha),
            "_links": {name: {"href": href} for name, href in (
                ("self", url), ("html", issue_json["html_url"]), ("issue", issue_json["url"]),
                ("comments", issue_json["comments_url"]), ("commits", f"{url}/commits"))},
            "auto_merge": None, "draft": pull.draft, "merged": pull.merged_at is not None,
            "mergeable": None, "mergeable_state": "unknown", "merged_by": self.user(pull.merged_by),
            "review_comments": 0, "maintainer_can_modify": False,
        }

    def commit(self, repo: Repo, commit: CommitInfo) -> JSON:
        def person(name: str, email: str, date: str) -> JSON:
            return {"name": name, "email": email, "date": _git_date(date)}

        return {
            "sha": commit.sha, "node_id": node_id("Commit", int(commit.sha[:7], 16)),
            "url": self._api(repo, "commits", commit.sha),
            "html_url": self._web(repo, "commit", commit.sha),
            "commit": {
                "author": person(commit.author_name, commit.author_email, commit.author_date),
                "committer": person(commit.committer_name, commit.committer_email, commit.committer_date),
                "message": commit.message,
                "tree": {"sha": commit.tree, "url": self._api(repo, "git", "trees", commit.tree)},
                "url": self._api(repo, "git", "commits", commit.sha), "comment_count": 0,
                "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None},
            },
            "author": None, "committer": None,
            "parents": [{"sha": p, "url": self._api(repo, "commits", p)} for p in commit.parents],
        }

    def branch(self, repo: Repo, name: str, commit: CommitInfo) -> JSON:
        url = self._api(repo, "branches", quote(name, safe=""))
        return {
            "name": name, "commit": self.commit(repo, commit),
            "_links": {"self": url, "html": self._web(repo, "tree", name)},
            "protected": False, "protection_url": f"{url}/protection",
        }

    def ref(self, repo: Repo, refname: str, sha: str) -> JSON:
        """A git reference such as ``refs/heads/main``."""
        return {
            "ref": refname, "node_id": node_id("Ref", int(sha[:7], 16)),
            "url": self._api(repo, "git", refname),
            "object": {"sha": sha, "type": "commit", "url": self._api(repo, "git", "commits", sha)},
        }

    def content(self, repo: Repo, entry: TreeEntry, ref: str, data: bytes | None = None) -> JSON:
        """A file (with base64 ``content`` when ``data`` is given) or a directory listing row."""
        kind = {"tree": "dir", "commit": "submodule"}.get(entry.type, "file")
        if entry.mode == "120000":
            kind = "symlink"
        url = f"{self._api(repo, 'contents', quote(entry.path))}?ref={quote(ref, safe='')}"
        git_url = self._api(repo, "git", "trees" if kind == "dir" else "blobs", entry.sha)
        html = self._web(repo, "tree" if kind == "dir" else "blob", ref, entry.path)
        body: JSON = {
            "type": kind, "size": entry.size, "name": entry.name, "path": entry.path,
            "sha": entry.sha, "url": url, "git_url": git_url, "html_url": html,
            "download_url": None if kind == "dir" else self._web(repo, "raw", ref, entry.path),
            "_links": {"self": url, "git": git_url, "html": html},
        }
        if data is not None:
            encoded = base64.b64encode(data).decode()
            # GitHub wraps base64 content at 60 columns.
            body["content"] = "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))
            body["encoding"] = "base64"
        return body

    def permission(self, repo: Repo, login: str, role: Permission) -> JSON:
        return {
            "permission": _LEGACY_PERMISSION[role], "role_name": role,
            "user": {**(self.user(login) or {}), "role_name": role},
        }
