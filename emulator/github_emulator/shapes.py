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
from urllib.parse import quote, urlsplit

from .gitrepo import CommitInfo, DiffStats, TreeEntry
from .records import (
    Comment,
    Event,
    Issue,
    Label,
    Permission,
    Reaction,
    Repo,
    Review,
    ReviewComment,
    User,
    permits,
)
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
        """A ``simple-user``; logins ending in ``[bot]`` are GitHub App identities (type ``Bot``)."""
        if login is None:
            return None
        known = self.users.get(login.lower())
        login = known.login if known else login
        number = known.id if known else 0
        bot = bool(known and known.bot) or login.endswith("[bot]")
        url = f"{self.base}/users/{quote(login)}"
        return {
            "login": login, "id": number,
            "node_id": node_id("Bot" if bot else "User", number),
            "avatar_url": f"{self.base}/avatars/u/{number}?v=4", "gravatar_id": "",
            "url": url, "html_url": f"{self.base}/{quote(login)}",
            "followers_url": f"{url}/followers", "following_url": f"{url}/following{{/other_user}}",
            "gists_url": f"{url}/gists{{/gist_id}}", "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{url}/subscriptions", "organizations_url": f"{url}/orgs",
            "repos_url": f"{url}/repos", "events_url": f"{url}/events{{/privacy}}",
            "received_events_url": f"{url}/received_events",
            "type": "Bot" if bot else "User",
            "user_view_type": "public", "site_admin": bool(known and known.site_admin),
        }

    def public_user(self, login: str) -> JSON:
        """A ``public-user``: what ``GET /users/{username}`` shows anyone."""
        known = self.users[login.lower()]
        return {
            **(self.user(login) or {}),
            "name": known.login, "company": None, "blog": "", "location": None, "email": None,
            "hireable": None, "bio": None, "twitter_username": None,
            "public_repos": 0, "public_gists": 0, "followers": 0, "following": 0,
            "created_at": known.created_at, "updated_at": known.created_at,
        }

    def authenticated_user(self, login: str) -> JSON:
        """A ``private-user``: what ``GET /user`` shows the account itself."""
        return {
            **self.public_user(login), "user_view_type": "private", "notification_email": None,
            "private_gists": 0, "total_private_repos": 0, "owned_private_repos": 0,
            "disk_usage": 0, "collaborators": 0, "two_factor_authentication": False,
            "plan": {"name": "free", "space": 976562499, "collaborators": 0, "private_repos": 10000},
        }

    def repo(self, repo: Repo, *, permission: Permission | None = None) -> JSON:
        """A ``repository``, as embedded in pull requests; ``permission`` adds the caller's flags."""
        api, web = self._api(repo), self._web(repo)
        host = urlsplit(self.base).netloc
        templates = {
            "archive_url": "{archive_format}{/ref}", "assignees_url": "assignees{/user}",
            "blobs_url": "git/blobs{/sha}", "branches_url": "branches{/branch}",
            "collaborators_url": "collaborators{/collaborator}", "comments_url": "comments{/number}",
            "commits_url": "commits{/sha}", "compare_url": "compare/{base}...{head}",
            "contents_url": "contents/{+path}", "contributors_url": "contributors",
            "deployments_url": "deployments", "downloads_url": "downloads", "events_url": "events",
            "forks_url": "forks", "git_commits_url": "git/commits{/sha}", "git_refs_url": "git/refs{/sha}",
            "git_tags_url": "git/tags{/sha}", "hooks_url": "hooks",
            "issue_comment_url": "issues/comments{/number}", "issue_events_url": "issues/events{/number}",
            "issues_url": "issues{/number}", "keys_url": "keys{/key_id}", "labels_url": "labels{/name}",
            "languages_url": "languages", "merges_url": "merges", "milestones_url": "milestones{/number}",
            "notifications_url": "notifications{?since,all,participating}", "pulls_url": "pulls{/number}",
            "releases_url": "releases{/id}", "stargazers_url": "stargazers", "statuses_url": "statuses/{sha}",
            "subscribers_url": "subscribers", "subscription_url": "subscription", "tags_url": "tags",
            "teams_url": "teams", "trees_url": "git/trees{/sha}",
        }
        body: JSON = {
            "id": repo.id, "node_id": node_id("Repository", repo.id), "name": repo.name,
            "full_name": repo.full_name, "private": repo.private, "owner": self.user(repo.owner),
            "html_url": web, "description": repo.description, "fork": False, "url": api,
            **{key: f"{api}/{tail}" for key, tail in templates.items()},
            # GitHub's git_url is the git:// protocol and ssh_url scp-like; clients clone clone_url.
            "git_url": f"git://{host}/{repo.full_name}.git", "ssh_url": f"git@{host}:{repo.full_name}.git",
            "clone_url": self.git_url(repo), "svn_url": web, "mirror_url": None, "homepage": None,
            "language": None, "forks_count": 0, "stargazers_count": 0, "watchers_count": 0, "size": 0,
            "default_branch": repo.default_branch, "open_issues_count": 0, "is_template": False,
            "topics": [], "has_issues": True, "has_projects": False, "has_wiki": False,
            "has_pages": False, "has_downloads": True, "has_discussions": False,
            "archived": False, "disabled": False, "visibility": "private" if repo.private else "public",
            "pushed_at": repo.updated_at, "created_at": repo.created_at, "updated_at": repo.updated_at,
            "allow_forking": True, "web_commit_signoff_required": False,
            "license": None, "forks": 0, "open_issues": 0, "watchers": 0,
        }
        if permission is not None:
            body["permissions"] = {flag: permits(permission, need) for flag, need in _REPO_FLAGS}
        return body

    def full_repo(self, repo: Repo, *, permission: Permission | None = None,
                  open_issues: int = 0) -> JSON:
        """A ``full-repository``: what ``GET /repos/{owner}/{repo}`` and repo creation answer."""
        body = self.repo(repo, permission=permission)
        body.update({
            "open_issues_count": open_issues, "open_issues": open_issues,
            "subscribers_count": 0, "network_count": 0, "temp_clone_token": None,
            "allow_squash_merge": True, "allow_merge_commit": True, "allow_rebase_merge": True,
            "allow_auto_merge": False, "delete_branch_on_merge": False, "allow_update_branch": False,
            "use_squash_pr_title_as_default": False, "squash_merge_commit_title": "COMMIT_OR_PR_TITLE",
            "squash_merge_commit_message": "COMMIT_MESSAGES", "merge_commit_title": "MERGE_MESSAGE",
            "merge_commit_message": "PR_TITLE",
        })
        return body

    def label(self, repo: Repo, label: Label, *, embedded: bool = False) -> JSON:
        """A Label; ``embedded`` is the copy inside an issue or pull request.

        GitHub's own description (API version 2026-03-10, newer than npm's; the contract
        tests' github-rest-newer.json) requires
        ``archived_at`` and ``archived_by`` on a Label and ``archived_by`` on an embedded
        one; githubkit 0.16 rejects a Label without them. The emulator never archives."""
        body: JSON = {
            "id": label.id, "node_id": node_id("Label", label.id),
            "url": self._api(repo, "labels", quote(label.name, safe="")),
            "name": label.name, "color": label.color,
            "description": label.description, "default": label.default,
        }
        if not embedded:
            body["archived_at"] = None
        body["archived_by"] = None
        return body

    def _issue_labels(self, repo: Repo, issue: Issue, *, embedded: bool = True) -> list[JSON]:
        known = [repo.labels.get(name.lower()) for name in issue.labels]
        return [self.label(repo, label, embedded=embedded) for label in known if label is not None]

    def issue_labels(self, repo: Repo, issue: Issue) -> list[JSON]:
        """An issue's labels as the label routes answer them: whole Labels."""
        return self._issue_labels(repo, issue, embedded=False)

    @staticmethod
    def _association(repo: Repo, login: str) -> str:
        if login.lower() == repo.owner.lower():
            return "OWNER"
        return "COLLABORATOR" if permits(repo.collaborators.get(login.lower(), "none"), "read") else "NONE"

    def _reactions(self, url: str) -> JSON:
        """An empty ``reaction-rollup``; the emulator keeps no reactions yet."""
        return {"url": f"{url}/reactions", "total_count": 0, "+1": 0, "-1": 0, "laugh": 0,
                "hooray": 0, "confused": 0, "heart": 0, "rocket": 0, "eyes": 0}

    def issue(self, repo: Repo, issue: Issue) -> JSON:
        url = self._api(repo, "issues", issue.number)
        body: JSON = {
            "url": url, "repository_url": self._api(repo), "labels_url": f"{url}/labels{{/name}}",
            "comments_url": f"{url}/comments", "events_url": f"{url}/events",
            "html_url": self._web(repo, "issues", issue.number),
            "id": issue.id, "node_id": node_id("Issue", issue.id), "number": issue.number,
            "title": issue.title, "user": self.user(issue.user),
            "labels": self._issue_labels(repo, issue), "state": issue.state, "locked": False,
            "assignee": None, "assignees": [], "milestone": None, "comments": issue.comment_count,
            "created_at": issue.created_at, "updated_at": issue.updated_at,
            "closed_at": issue.closed_at, "author_association": self._association(repo, issue.user),
            "active_lock_reason": None, "body": issue.body, "closed_by": self.user(issue.closed_by),
            "reactions": self._reactions(url), "timeline_url": f"{url}/timeline",
            "performed_via_github_app": None, "state_reason": issue.state_reason,
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
        url = self._api(repo, "issues", "comments", comment.id)
        return {
            "url": url, "html_url": self._web(repo, "issues", comment.issue_number) + f"#issuecomment-{comment.id}",
            "issue_url": self._api(repo, "issues", comment.issue_number),
            "id": comment.id, "node_id": node_id("IssueComment", comment.id),
            "user": self.user(comment.user), "created_at": comment.created_at,
            "updated_at": comment.updated_at, "author_association": self._association(repo, comment.user),
            "body": comment.body, "reactions": self._reactions(url), "performed_via_github_app": None,
        }

    def review(self, repo: Repo, review: Review) -> JSON:
        # https://docs.github.com/rest/pulls/reviews#get-a-review-for-a-pull-request
        pull_url = self._api(repo, "pulls", review.pull_number)
        html = self._web(repo, "pull", review.pull_number) + f"#pullrequestreview-{review.id}"
        return {
            "id": review.id, "node_id": node_id("PullRequestReview", review.id), "user": self.user(review.user),
            "body": review.body, "state": review.state, "html_url": html, "pull_request_url": pull_url,
            "_links": {"html": {"href": html}, "pull_request": {"href": pull_url}},
            "submitted_at": review.submitted_at, "commit_id": review.commit_id,
            "author_association": self._association(repo, review.user),
        }

    def review_comment(self, repo: Repo, comment: ReviewComment) -> JSON:
        # https://docs.github.com/rest/pulls/comments#get-a-review-comment-for-a-pull-request
        pull_url = self._api(repo, "pulls", comment.pull_number)
        url = self._api(repo, "pulls", "comments", comment.id)
        html = self._web(repo, "pull", comment.pull_number) + f"#discussion_r{comment.id}"
        body: JSON = {
            "url": url, "pull_request_review_id": comment.review_id, "id": comment.id,
            "node_id": node_id("PullRequestReviewComment", comment.id), "diff_hunk": comment.diff_hunk,
            "path": comment.path, "position": comment.line, "original_position": comment.line,
            "commit_id": comment.commit_id or "", "original_commit_id": comment.commit_id or "",
            "user": self.user(comment.user), "body": comment.body, "created_at": comment.created_at,
            "updated_at": comment.updated_at, "html_url": html, "pull_request_url": pull_url,
            "author_association": self._association(repo, comment.user),
            "_links": {"self": {"href": url}, "html": {"href": html}, "pull_request": {"href": pull_url}},
            "start_line": None, "original_start_line": None, "start_side": None,
            "line": comment.line, "original_line": comment.line, "side": comment.side,
            "subject_type": "line", "reactions": self._reactions(url),
        }
        if comment.in_reply_to_id is not None:
            body["in_reply_to_id"] = comment.in_reply_to_id
        return body

    def reaction(self, reaction: Reaction) -> JSON:
        # https://docs.github.com/rest/reactions/reactions
        return {"id": reaction.id, "node_id": node_id("Reaction", reaction.id), "user": self.user(reaction.user),
                "content": reaction.content, "created_at": reaction.created_at}

    def event(self, repo: Repo, event: Event) -> JSON:
        body: JSON = {
            "id": event.id, "node_id": node_id("IssueEvent", event.id),
            "url": self._api(repo, "issues", "events", event.id), "actor": self.user(event.actor),
            "event": event.event, "commit_id": None, "commit_url": None,
            "created_at": event.created_at, "performed_via_github_app": None,
        }
        if event.label is not None:
            body["label"] = {"name": event.label.get("name", ""), "color": event.label.get("color", "ededed")}
        return body

    def pull(self, repo: Repo, issue: Issue, head_sha: str | None, base_sha: str | None,
             *, stats: DiffStats | None = None) -> JSON:
        """A ``pull-request``; without ``stats`` the ``pull-request-simple`` that lists carry."""
        assert issue.pull is not None
        pull, issue_json = issue.pull, self.issue(repo, issue)
        url = self._api(repo, "pulls", issue.number)
        # A deleted head branch still has a head sha on GitHub; the emulator keeps
        # the merge commit (or base) as the best stand-in it has.
        head_sha = head_sha or pull.merge_commit_sha or base_sha or ""

        def side(ref: str, sha: str | None) -> JSON:
            return {"label": f"{repo.owner}:{ref}", "ref": ref, "sha": sha or "",
                    "user": self.user(repo.owner), "repo": self.repo(repo)}

        links = {
            "self": url, "html": issue_json["html_url"], "issue": issue_json["url"],
            "comments": issue_json["comments_url"], "review_comments": f"{url}/comments",
            "review_comment": self._api(repo, "pulls", "comments{/number}"),
            "commits": f"{url}/commits", "statuses": self._api(repo, "statuses", head_sha),
        }
        body: JSON = {
            "url": url, "id": pull.id, "node_id": node_id("PullRequest", pull.id),
            "html_url": issue_json["html_url"], "diff_url": issue_json["pull_request"]["diff_url"],
            "patch_url": issue_json["pull_request"]["patch_url"], "issue_url": issue_json["url"],
            "commits_url": links["commits"], "review_comments_url": links["review_comments"],
            "review_comment_url": links["review_comment"], "comments_url": issue_json["comments_url"],
            "statuses_url": links["statuses"],
            **{k: issue_json[k] for k in (
                "number", "state", "locked", "title", "user", "body", "labels", "milestone",
                "active_lock_reason", "created_at", "updated_at", "closed_at", "assignee",
                "assignees", "author_association")},
            "merged_at": pull.merged_at, "merge_commit_sha": pull.merge_commit_sha,
            "requested_reviewers": [], "requested_teams": [],
            "head": side(pull.head, head_sha), "base": side(pull.base, base_sha),
            "_links": {name: {"href": href} for name, href in links.items()},
            "auto_merge": None, "draft": pull.draft,
        }
        if stats is not None:
            body.update({
                "merged": pull.merged_at is not None, "mergeable": None, "rebaseable": None,
                "mergeable_state": "unknown", "merged_by": self.user(pull.merged_by),
                "comments": issue_json["comments"], "review_comments": 0,
                "maintainer_can_modify": False, "commits": stats.commits,
                "additions": stats.additions, "deletions": stats.deletions,
                "changed_files": stats.changed_files,
            })
        return body

    def _git_user(self, email: str) -> JSON | None:
        """The account behind a commit email, as GitHub maps ``login@users.noreply.github.com``."""
        login = email.split("@", 1)[0].split("+")[-1] if email.endswith("@users.noreply.github.com") else ""
        return self.user(login) if login.lower() in self.users else None

    def commit(self, repo: Repo, commit: CommitInfo) -> JSON:
        def person(name: str, email: str, date: str) -> JSON:
            return {"name": name, "email": email, "date": _git_date(date)}

        url = self._api(repo, "commits", commit.sha)
        return {
            "sha": commit.sha, "node_id": node_id("Commit", int(commit.sha[:7], 16)),
            "url": url, "html_url": self._web(repo, "commit", commit.sha),
            "comments_url": f"{url}/comments",
            "commit": {
                "author": person(commit.author_name, commit.author_email, commit.author_date),
                "committer": person(commit.committer_name, commit.committer_email, commit.committer_date),
                "message": commit.message,
                "tree": {"sha": commit.tree, "url": self._api(repo, "git", "trees", commit.tree)},
                "url": self._api(repo, "git", "commits", commit.sha), "comment_count": 0,
                "verification": {"verified": False, "reason": "unsigned", "signature": None,
                                 "payload": None, "verified_at": None},
            },
            "author": self._git_user(commit.author_email),
            "committer": self._git_user(commit.committer_email),
            "parents": [{"sha": p, "url": self._api(repo, "commits", p),
                         "html_url": self._web(repo, "commit", p)} for p in commit.parents],
        }

    def branch(self, repo: Repo, name: str, commit: CommitInfo) -> JSON:
        """A ``branch-with-protection`` for an unprotected branch."""
        url = self._api(repo, "branches", quote(name, safe=""))
        return {
            "name": name, "commit": self.commit(repo, commit),
            "_links": {"self": url, "html": self._web(repo, "tree", name)},
            "protected": False,
            "protection": {"enabled": False, "required_status_checks": {
                "enforcement_level": "off", "contexts": [], "checks": []}},
            "protection_url": f"{url}/protection",
        }

    def short_branch(self, repo: Repo, name: str, sha: str) -> JSON:
        """A ``short-branch`` row of ``GET /repos/{owner}/{repo}/branches``."""
        return {"name": name, "commit": {"sha": sha, "url": self._api(repo, "commits", sha)},
                "protected": False}

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
        flags = {flag: permits(role, need) for flag, need in _REPO_FLAGS}
        return {
            "permission": _LEGACY_PERMISSION[role], "role_name": role,
            "user": {**(self.user(login) or {}), "permissions": flags, "role_name": role},
        }
