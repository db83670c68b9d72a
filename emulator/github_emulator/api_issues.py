"""REST routes for issues, their comments, labels and events.

GitHub's permission rules, simplified: anyone who can read a repository can
open issues and comment; changing labels or state needs triage (or being the
author, for state, title and body); editing someone else's comment needs write.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .errors import Forbidden, UnprocessableEntity
from .records import Issue, Repo, permits
from .routing import Context, Request, Response, Router, body_field, paginate
from .store import iso

router = Router()

_SORT_KEYS = {
    "created": lambda i: (i.created_at, i.number),
    "updated": lambda i: (i.updated_at, i.number),
    "comments": lambda i: (i.comment_count, i.number),
}


def since_arg(req: Request, resource: str = "Issue") -> str | None:
    """Normalise the ``since`` filter so that it compares with stored timestamps."""
    raw = req.arg("since")
    if not raw:
        return None
    try:
        return iso(datetime.fromisoformat(raw.replace("Z", "+00:00")))
    except ValueError:
        raise UnprocessableEntity([{"resource": resource, "code": "invalid", "field": "since"}]) from None


def _label_names(data: Any) -> list[str]:
    """Accept ``{"labels": [...]}`` or a bare list, of names or of ``{"name": ...}`` objects."""
    items = data.get("labels", []) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise UnprocessableEntity([{"resource": "Label", "code": "invalid", "field": "labels"}])
    names = [item.get("name") if isinstance(item, dict) else item for item in items]
    if not all(isinstance(n, str) and n for n in names):
        raise UnprocessableEntity([{"resource": "Label", "code": "invalid", "field": "labels"}])
    return [str(n) for n in names]


def _can_triage(app: Context, repo: Repo, user: str | None) -> bool:
    return permits(app.backend.store.permission(repo.full_name, user), "triage")


def _issue_json(app: Context, repo: Repo, issue: Issue) -> Response:
    return Response(200, app.backend.renderer().issue(repo, issue))


@router.route("GET", "/repos/{owner}/{repo}/issues")
def list_issues(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/issues/issues#list-repository-issues
    repo = app.repo(req)
    state = req.arg("state", "open")
    wanted = {name.strip().lower() for name in (req.arg("labels") or "").split(",") if name.strip()}
    since, creator = since_arg(req), (req.arg("creator") or "").lower()
    issues = [
        issue for issue in app.backend.store.issues(repo.full_name)
        if state in ("all", issue.state)
        and wanted <= {name.lower() for name in issue.labels}
        and (since is None or issue.updated_at >= since)
        and (not creator or issue.user.lower() == creator)
    ]
    issues.sort(key=_SORT_KEYS.get(req.arg("sort") or "created", _SORT_KEYS["created"]),
                reverse=req.arg("direction", "desc") != "asc")
    renderer = app.backend.renderer()
    return paginate(app, req, issues, lambda issue: renderer.issue(repo, issue))


@router.route("POST", "/repos/{owner}/{repo}/issues")
def create_issue(app: Context, req: Request) -> Response:
    repo = app.repo(req, "read")
    assert req.user is not None
    data = req.json_object()
    # Labels from users without push access are silently dropped, as on GitHub.
    labels = _label_names(data) if _can_triage(app, repo, req.user) else []
    issue = app.backend.store.create_issue(
        repo.full_name,
        title=body_field(data, "title", str, resource="Issue", required=True),
        body=body_field(data, "body", str, resource="Issue"),
        actor=req.user, labels=labels,
    )
    return Response(201, app.backend.renderer().issue(app.backend.store.repo(repo.full_name), issue))


@router.route("GET", "/repos/{owner}/{repo}/issues/{number:int}")
def get_issue(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    return _issue_json(app, repo, app.backend.store.issue(repo.full_name, int(req.params["number"])))


@router.route("PATCH", "/repos/{owner}/{repo}/issues/{number:int}")
def update_issue(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    assert req.user is not None
    store, number = app.backend.store, int(req.params["number"])
    triage = _can_triage(app, repo, req.user)
    if not triage and store.issue(repo.full_name, number).user.lower() != req.user.lower():
        raise Forbidden("Resource not accessible by personal access token")
    data = req.json_object()
    issue = store.update_issue(
        repo.full_name, number, actor=req.user,
        title=body_field(data, "title", str, resource="Issue"),
        body=body_field(data, "body", str, resource="Issue"),
        state=body_field(data, "state", str, resource="Issue"),
        state_reason=body_field(data, "state_reason", str, resource="Issue"),
        labels=_label_names(data) if triage and "labels" in data else None,
    )
    return _issue_json(app, store.repo(repo.full_name), issue)


@router.route("GET", "/repos/{owner}/{repo}/issues/{number:int}/comments")
def list_comments(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    since = since_arg(req)
    comments = [c for c in app.backend.store.comments(repo.full_name, int(req.params["number"]))
                if since is None or c.updated_at >= since]
    renderer = app.backend.renderer()
    return paginate(app, req, comments, lambda c: renderer.comment(repo, c))


@router.route("POST", "/repos/{owner}/{repo}/issues/{number:int}/comments")
def create_comment(app: Context, req: Request) -> Response:
    repo = app.repo(req, "read")
    assert req.user is not None
    body = body_field(req.json_object(), "body", str, resource="IssueComment", required=True)
    comment = app.backend.store.add_comment(repo.full_name, int(req.params["number"]), body, actor=req.user)
    return Response(201, app.backend.renderer().comment(repo, comment))


@router.route("GET", "/repos/{owner}/{repo}/issues/comments")
def list_repo_comments(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    since = since_arg(req)
    comments = [c for c in app.backend.store.comments(repo.full_name)
                if since is None or c.updated_at >= since]
    comments.sort(key=lambda c: (c.updated_at if req.arg("sort") == "updated" else c.created_at, c.id),
                  reverse=req.arg("direction", "asc") == "desc")
    renderer = app.backend.renderer()
    return paginate(app, req, comments, lambda c: renderer.comment(repo, c))


@router.route("GET", "/repos/{owner}/{repo}/issues/comments/{id:int}")
def get_comment(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    comment = app.backend.store.comment(repo.full_name, int(req.params["id"]))
    return Response(200, app.backend.renderer().comment(repo, comment))


@router.route("PATCH", "/repos/{owner}/{repo}/issues/comments/{id:int}")
def update_comment(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    assert req.user is not None
    store, comment_id = app.backend.store, int(req.params["id"])
    role = store.permission(repo.full_name, req.user)
    if store.comment(repo.full_name, comment_id).user.lower() != req.user.lower() and not permits(role, "write"):
        raise Forbidden("Resource not accessible by personal access token")
    body = body_field(req.json_object(), "body", str, resource="IssueComment", required=True)
    return Response(200, app.backend.renderer().comment(repo, store.edit_comment(repo.full_name, comment_id, body)))


def _labels_reply(app: Context, repo_name: str, issue: Issue) -> Response:
    repo = app.backend.store.repo(repo_name)
    return Response(200, app.backend.renderer().issue_labels(repo, issue))


@router.route("GET", "/repos/{owner}/{repo}/issues/{number:int}/labels")
def list_issue_labels(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    issue = app.backend.store.issue(repo.full_name, int(req.params["number"]))
    renderer = app.backend.renderer()
    labels = [repo.labels[name.lower()] for name in issue.labels if name.lower() in repo.labels]
    return paginate(app, req, labels, lambda label: renderer.label(repo, label))


@router.route("POST", "/repos/{owner}/{repo}/issues/{number:int}/labels")
def add_issue_labels(app: Context, req: Request) -> Response:
    repo = app.repo(req, "triage")
    assert req.user is not None
    issue = app.backend.store.add_labels(
        repo.full_name, int(req.params["number"]), _label_names(req.json()), actor=req.user)
    return _labels_reply(app, repo.full_name, issue)


@router.route("PUT", "/repos/{owner}/{repo}/issues/{number:int}/labels")
def set_issue_labels(app: Context, req: Request) -> Response:
    repo = app.repo(req, "triage")
    assert req.user is not None
    issue = app.backend.store.update_issue(
        repo.full_name, int(req.params["number"]), actor=req.user, labels=_label_names(req.json()))
    return _labels_reply(app, repo.full_name, issue)


@router.route("DELETE", "/repos/{owner}/{repo}/issues/{number:int}/labels")
def clear_issue_labels(app: Context, req: Request) -> Response:
    repo = app.repo(req, "triage")
    assert req.user is not None
    app.backend.store.update_issue(repo.full_name, int(req.params["number"]), actor=req.user, labels=[])
    return Response(204)


@router.route("DELETE", "/repos/{owner}/{repo}/issues/{number:int}/labels/{name}")
def remove_issue_label(app: Context, req: Request) -> Response:
    # Removing a label the issue does not have is a 404 "Label does not exist".
    repo = app.repo(req, "triage")
    assert req.user is not None
    issue = app.backend.store.remove_label(
        repo.full_name, int(req.params["number"]), req.params["name"], actor=req.user)
    return _labels_reply(app, repo.full_name, issue)


@router.route("GET", "/repos/{owner}/{repo}/issues/{number:int}/events")
def list_issue_events(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    issue = app.backend.store.issue(repo.full_name, int(req.params["number"]))
    renderer = app.backend.renderer()
    return paginate(app, req, issue.events, lambda event: renderer.event(repo, event))
