"""REST routes for pull requests, which share their number sequence with issues.

Only same-repository heads are supported (``branch`` or ``owner:branch``);
the head must exist in the bare repository, as on GitHub.
"""

from __future__ import annotations

from .errors import ResourceNotFound, UnprocessableEntity
from .records import Issue, PullInfo, Repo
from .routing import Context, Request, Response, Router, body_field, paginate

router = Router()


def _pull(app: Context, repo: Repo, number: int) -> tuple[Issue, PullInfo]:
    """The issue behind PR ``number``; a plain issue's number is a 404 here."""
    issue = app.backend.store.issue(repo.full_name, number)
    if issue.pull is None:
        raise ResourceNotFound()
    return issue, issue.pull


@router.route("GET", "/repos/{owner}/{repo}/pulls")
def list_pulls(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/pulls/pulls#list-pull-requests
    repo = app.repo(req)
    state = req.arg("state", "open")
    head_owner, _, head_ref = (req.arg("head") or "").rpartition(":")
    base = req.arg("base")
    pulls = [
        issue for issue in app.backend.store.issues(repo.full_name)
        if issue.pull is not None
        and state in ("all", issue.state)
        and (not head_ref or (issue.pull.head == head_ref and head_owner.lower() in ("", repo.owner.lower())))
        and (not base or issue.pull.base == base)
    ]
    sort = req.arg("sort") or "created"
    pulls.sort(key=lambda i: (i.updated_at if sort == "updated" else i.created_at, i.number),
               reverse=req.arg("direction", "desc") != "asc")
    return paginate(app, req, pulls, lambda issue: app.backend.pull_json(repo, issue, full=False))


@router.route("POST", "/repos/{owner}/{repo}/pulls")
def create_pull(app: Context, req: Request) -> Response:
    repo = app.repo(req, "write")
    assert req.user is not None
    data = req.json_object()
    issue, read = app.backend.create_pull(
        repo,
        title=body_field(data, "title", str, resource="PullRequest", required=True),
        body=body_field(data, "body", str, resource="PullRequest"),
        head=body_field(data, "head", str, resource="PullRequest", required=True),
        base=body_field(data, "base", str, resource="PullRequest", required=True),
        draft=bool(data.get("draft", False)), actor=req.user,
    )
    return Response(201, app.backend.pull_json(repo, issue, read=read))


@router.route("GET", "/repos/{owner}/{repo}/pulls/{number:int}")
def get_pull(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    issue, _ = _pull(app, repo, int(req.params["number"]))
    return Response(200, app.backend.pull_json(repo, issue))


@router.route("PATCH", "/repos/{owner}/{repo}/pulls/{number:int}")
def update_pull(app: Context, req: Request) -> Response:
    repo = app.repo(req, "write")
    assert req.user is not None
    number = int(req.params["number"])
    _pull(app, repo, number)
    data = req.json_object()
    base = body_field(data, "base", str, resource="PullRequest")
    if base is not None and app.backend.git(repo).branch_sha(base) is None:
        raise UnprocessableEntity([{"resource": "PullRequest", "field": "base", "code": "invalid"}])
    issue = app.backend.store.update_issue(
        repo.full_name, number, actor=req.user,
        title=body_field(data, "title", str, resource="PullRequest"),
        body=body_field(data, "body", str, resource="PullRequest"),
        state=body_field(data, "state", str, resource="PullRequest"),
        base=base,
    )
    return Response(200, app.backend.pull_json(repo, issue))


@router.route("GET", "/repos/{owner}/{repo}/pulls/{number:int}/merge")
def check_merged(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    _, pull = _pull(app, repo, int(req.params["number"]))
    if pull.merged_at is None:
        raise ResourceNotFound()
    return Response(204)


@router.route("PUT", "/repos/{owner}/{repo}/pulls/{number:int}/merge")
def merge_pull(app: Context, req: Request) -> Response:
    repo = app.repo(req, "write")
    assert req.user is not None
    number = int(req.params["number"])
    _pull(app, repo, number)
    issue = app.backend.merge_pull(repo.full_name, number, actor=req.user)
    assert issue.pull is not None
    return Response(200, {"sha": issue.pull.merge_commit_sha, "merged": True,
                          "message": "Pull Request successfully merged"})
