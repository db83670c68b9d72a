"""Read and write issues on GitHub: the dispatch poll, comments, labels, reactions, permissions, history.

Part of :class:`runner.forge.github.GitHubForge`, over its session's pacer,
error translation and ETag cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from github import GithubException

from runner.errors import NotFound
from runner.forge import wire
from runner.forge.base import Comment, FeedbackItem, Issue, IssueTrail
from runner.forge.github.session import GitHubSession


class IssueCalls(GitHubSession):
    """Issues and their comments, labels and events; the feedback poll's reads."""

    def list_dispatch_issues(self, repo: str, label: str) -> Sequence[Issue]:
        """List open issues with the label, re-using the last answer when GitHub says 304.

        A conditional request answered with 304 does not count against the rate
        limit, so polling every minute stays cheap:
        https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#use-conditional-requests-if-appropriate
        """
        params = {"labels": label, "state": "open", "per_page": 100, "sort": "created", "direction": "asc"}
        return self._conditional_pages(
            repo, f"/repos/{repo}/issues", params, "list issues", (repo, label), keep=True,
            convert=lambda rows: [i for i in (wire.issue_from_json(repo, r) for r in rows) if not i.is_pull_request])

    def get_issue(self, repo: str, number: int) -> Issue:
        def read() -> Issue:
            with self._request(f"read issue {repo}#{number}", repo) as gh:
                return wire.issue_value(repo, gh.get_repo(repo).get_issue(number))
        return self._read(repo, read)

    def edit_issue_body(self, repo: str, number: int, body: str) -> Issue:
        with self._request(f"edit issue {repo}#{number}", repo, write=True) as gh:
            _, data = gh.requester.requestJsonAndCheck("PATCH", f"/repos/{repo}/issues/{number}",
                                                       input={"body": body})
            return wire.issue_from_json(repo, data)

    # -- feedback (runner.core.feedback) -------------------------------------------------

    def comments_since(self, repo: str, since: str) -> Sequence[FeedbackItem]:
        # https://docs.github.com/rest/issues/comments#list-issue-comments-for-a-repository
        rows = self._changed_since(repo, f"/repos/{repo}/issues/comments", since, "list comments")
        return [wire.feedback_item(repo, "issue_comment", row) for row in rows]

    def review_comments_since(self, repo: str, since: str) -> Sequence[FeedbackItem]:
        # https://docs.github.com/rest/pulls/comments#list-review-comments-in-a-repository
        rows = self._changed_since(repo, f"/repos/{repo}/pulls/comments", since, "list review comments")
        return [wire.feedback_item(repo, "review_comment", row) for row in rows]

    def review_thread(self, review: FeedbackItem) -> Sequence[FeedbackItem]:
        # https://docs.github.com/rest/pulls/reviews#list-comments-for-a-pull-request-review
        url = f"/repos/{review.repo}/pulls/{review.number}/reviews/{review.id}/comments"
        def read() -> list[Any]:
            with self._request(f"list the comments of review {review.id} in {review.repo}", review.repo) as gh:
                _, rows = gh.requester.requestJsonAndCheck("GET", url, parameters={"per_page": 100})
                return list(rows or [])
        rows = self._read(review.repo, read)
        return [wire.feedback_item(review.repo, "review_comment", row) for row in rows]

    def add_reaction(self, item: FeedbackItem, content: str) -> None:
        # https://docs.github.com/rest/reactions/reactions (200 when it already exists)
        where = "pulls" if item.kind == "review_comment" else "issues"
        with self._request(f"react to comment {item.id} in {item.repo}", item.repo, write=True) as gh:
            gh.requester.requestJsonAndCheck(
                "POST", f"/repos/{item.repo}/{where}/comments/{item.id}/reactions", input={"content": content})

    def _changed_since(self, repo: str, url: str, since: str, what: str) -> list[dict[str, Any]]:
        """Every row updated since ``since``, or ``[]`` when GitHub answers 304 to the cached ETag."""
        params = {"since": since, "sort": "updated", "direction": "asc", "per_page": 100}
        return self._conditional_pages(repo, url, params, what, (repo, f"{url}?since={since}"),
                                       convert=lambda rows: rows, keep=False)

    # -- comments, labels and who did what ------------------------------------------------

    def list_comments(self, repo: str, number: int) -> Sequence[Comment]:
        def read() -> list[Comment]:
            with self._request(f"list comments on {repo}#{number}", repo) as gh:
                issue = gh.get_repo(repo).get_issue(number)
                return [wire.comment_value(c) for c in issue.get_comments()]
        return self._read(repo, read)

    def create_comment(self, repo: str, number: int, body: str) -> Comment:
        with self._request(f"comment on {repo}#{number}", repo, write=True, notify=True) as gh:
            issue = gh.get_repo(repo).get_issue(number)
            return wire.comment_value(issue.create_comment(body))

    def edit_comment(self, repo: str, comment_id: int, body: str) -> Comment:
        with self._request(f"edit comment {comment_id} in {repo}", repo, write=True) as gh:
            _, data = gh.requester.requestJsonAndCheck(
                "PATCH", f"/repos/{repo}/issues/comments/{comment_id}", input={"body": body}
            )
            return wire.comment_from_json(data)

    def add_labels(self, repo: str, number: int, labels: Sequence[str]) -> None:
        with self._request(f"label {repo}#{number}", repo, write=True) as gh:
            gh.get_repo(repo).get_issue(number).add_to_labels(*labels)

    def remove_label(self, repo: str, number: int, label: str) -> None:
        try:
            with self._request(f"unlabel {repo}#{number}", repo, write=True) as gh:
                gh.get_repo(repo).get_issue(number).remove_from_labels(label)
        except NotFound:
            return  # Already gone: the outcome we wanted.

    def label_actor(self, repo: str, number: int, label: str) -> str | None:
        def read() -> str | None:
            with self._request(f"read events of {repo}#{number}", repo) as gh:
                actor: str | None = None
                for event in gh.get_repo(repo).get_issue(number).get_events():
                    if event.event == "labeled" and event.label is not None and event.label.name == label:
                        actor = event.actor.login if event.actor else None
                return actor
        return self._read(repo, read)

    def permission(self, repo: str, user: str) -> str:
        """Cached for GITHUB_CACHE_SECONDS: a revoked permission counts again within that time."""
        return self._permissions.get_or_load((repo.lower(), user.lower()), lambda: self._permission(repo, user))

    def _permission(self, repo: str, user: str) -> str:
        def read() -> str:
            with self._request(f"read {user}'s permission on {repo}", repo) as gh:
                try:
                    return str(gh.get_repo(repo).get_collaborator_permission(user))
                except GithubException as exc:
                    if exc.status == 404:
                        return "none"
                    raise
        return self._read(repo, read)

    def issue_trail(self, repo: str, number: int) -> IssueTrail:
        """Label events and body edits in one GraphQL request.

        The REST timeline records no body edits (a body change is only in
        GraphQL's ``Issue.userContentEdits``; a title change is a ``renamed``
        event), so this is the one reliable source:
        https://docs.github.com/en/graphql/reference/objects#issue
        """
        owner, name = repo.split("/", 1)
        # A GraphQL query is a POST, but this one only reads: safe to send again.
        data = self._read(repo, lambda: self.graphql(f"read the history of {repo}#{number}", repo,
                                                     wire.TRAIL_QUERY, {"owner": owner, "name": name,
                                                                        "number": number}))
        trail = wire.trail_from_json(data)
        if trail is None:
            raise NotFound(f"GitHub found no issue {repo}#{number} when reading its history.")
        return trail

    def list_labels(self, repo: str) -> list[str]:
        with self._request(f"list labels of {repo}", repo) as gh:
            return [label.name for label in gh.get_repo(repo).get_labels()]

    def create_label(self, repo: str, name: str, color: str, description: str) -> None:
        with self._request(f"create the label `{name}` in {repo}", repo, write=True) as gh:
            gh.get_repo(repo).create_label(name, color, description)

    # -- what `agent-runner smoke-test` does -----------------------------------------

    def create_issue(self, repo: str, title: str, body: str, labels: Sequence[str]) -> int:
        with self._request(f"open an issue in {repo}", repo, write=True, notify=True) as gh:
            return int(gh.get_repo(repo).create_issue(title=title, body=body, labels=list(labels)).number)

    def close_issue(self, repo: str, number: int) -> None:
        with self._request(f"close {repo}#{number}", repo, write=True) as gh:
            gh.get_repo(repo).get_issue(number).edit(state="closed")
