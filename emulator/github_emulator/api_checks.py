"""REST routes for checks (runs, suites, annotations) and commit statuses, as GitHub serves them.

Only a GitHub App (an installation token) creates and updates check runs, and only
its own: https://docs.github.com/rest/checks/runs. Anyone with write access posts
commit statuses. Lists are for a ref: a sha, a branch or a tag.
"""

from __future__ import annotations

from typing import Any

from .errors import Forbidden, ResourceNotFound, UnprocessableEntity
from .records import Repo
from .routing import Context, Request, Response, Router, body_field, paginate
from .shapes_ci import CiShapes

router = Router()

_STATUSES = ("queued", "in_progress", "completed", "waiting", "requested", "pending")
_CONCLUSIONS = ("action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out")
_STATES = ("error", "failure", "pending", "success")


def resolve_ref(app: Context, repo: Repo, ref: str, *, missing: int = 422) -> str:
    """A sha, branch or tag as a commit sha; GitHub answers 422 (statuses: 404) for a ref that names nothing."""
    git = app.backend.git(repo)
    sha = git.branch_sha(ref) or git.rev_parse(ref)
    if sha is None and missing == 404:
        raise ResourceNotFound()
    if sha is None:
        raise UnprocessableEntity([{"resource": "Commit", "code": "invalid", "field": "ref"}],
                                  f"No commit found for SHA: {ref}")
    return sha


def _calling_app(app: Context, req: Request) -> tuple[str, int]:
    if req.installation_id is None:
        raise Forbidden("You must authenticate via a GitHub App.")
    record = app.backend.store.app(app.backend.store.installation(req.installation_id).app_id)
    return record.slug, record.id


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    status = body_field(data, "status", str, resource="CheckRun")
    conclusion = body_field(data, "conclusion", str, resource="CheckRun")
    if status is not None and status not in _STATUSES:
        raise UnprocessableEntity([{"resource": "CheckRun", "code": "invalid", "field": "status"}])
    if conclusion is not None and conclusion not in _CONCLUSIONS:
        raise UnprocessableEntity([{"resource": "CheckRun", "code": "invalid", "field": "conclusion"}])
    if status == "completed" and conclusion is None:
        raise UnprocessableEntity([{"resource": "CheckRun", "code": "missing_field", "field": "conclusion"}])
    output = data.get("output")
    if output is not None and (not isinstance(output, dict) or not isinstance(output.get("summary"), str)):
        raise UnprocessableEntity([{"resource": "CheckRun", "code": "missing_field", "field": "output.summary"}])
    return data


@router.route("POST", "/repos/{owner}/{repo}/check-runs")
def create_check_run(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/checks/runs#create-a-check-run
    repo = app.repo(req, "read")
    slug, app_id = _calling_app(app, req)
    data = req.json_object()
    name = body_field(data, "name", str, resource="CheckRun", required=True)
    head_sha = body_field(data, "head_sha", str, resource="CheckRun", required=True)
    if app.backend.git(repo).rev_parse(head_sha) != head_sha:
        raise UnprocessableEntity([{"resource": "CheckRun", "code": "invalid", "field": "head_sha"}],
                                  "No commit found for SHA: " + head_sha)
    check = app.backend.ci.create_check_run(repo.full_name, app_slug=slug, app_id=app_id, name=name,
                                            head_sha=head_sha, fields=_fields(data))
    return Response(201, CiShapes(app.backend, repo).check_run(check))


def _own_run(app: Context, req: Request, repo: Repo) -> int:
    run_id = int(req.params["id"])
    shapes = CiShapes(app.backend, repo)
    check = shapes.state.runs.get(run_id)
    if check is None:
        raise ResourceNotFound()
    return run_id


@router.route("PATCH", "/repos/{owner}/{repo}/check-runs/{id:int}")
def update_check_run(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/checks/runs#update-a-check-run
    repo = app.repo(req, "read")
    slug, app_id = _calling_app(app, req)
    run_id = _own_run(app, req, repo)
    state = app.backend.ci.state(repo.full_name)
    suite = state.suites[state.runs[run_id].suite_id]
    if suite.app_id != app_id:
        raise Forbidden(f"Invalid app_id `{app_id}` - check run can only be modified by the GitHub App that "
                        "created it.")
    check = app.backend.ci.update_check_run(repo.full_name, run_id, _fields(req.json_object()), slug + "[bot]")
    return Response(200, CiShapes(app.backend, repo).check_run(check))


@router.route("GET", "/repos/{owner}/{repo}/check-runs/{id:int}")
def get_check_run(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    run_id = _own_run(app, req, repo)
    shapes = CiShapes(app.backend, repo)
    return Response(200, shapes.check_run(shapes.state.runs[run_id]))


@router.route("GET", "/repos/{owner}/{repo}/check-runs/{id:int}/annotations")
def list_annotations(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    run_id = _own_run(app, req, repo)
    shapes = CiShapes(app.backend, repo)
    check = shapes.state.runs[run_id]
    return paginate(app, req, check.annotations, lambda a: shapes.annotation(check, a))


@router.route("GET", "/repos/{owner}/{repo}/commits/{ref:path}/check-runs")
def list_check_runs_for_ref(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/checks/runs#list-check-runs-for-a-git-reference
    repo = app.repo(req)
    sha = resolve_ref(app, repo, req.params["ref"])
    shapes = CiShapes(app.backend, repo)
    runs = sorted((r for r in shapes.state.runs.values() if r.head_sha == sha), key=lambda r: -r.id)
    if req.arg("check_name"):
        runs = [r for r in runs if r.name == req.arg("check_name")]
    if req.arg("status"):
        runs = [r for r in runs if r.status == req.arg("status")]
    if req.arg("filter", "latest") == "latest":  # the newest run of each name
        seen: set[str] = set()
        runs = [r for r in runs if not (r.name in seen or seen.add(r.name))]  # type: ignore[func-returns-value]
    page = paginate(app, req, runs, shapes.check_run)
    return Response(200, {"total_count": len(runs), "check_runs": page.body}, page.headers)


@router.route("GET", "/repos/{owner}/{repo}/commits/{ref:path}/check-suites")
def list_suites_for_ref(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/checks/suites#list-check-suites-for-a-git-reference
    repo = app.repo(req)
    sha = resolve_ref(app, repo, req.params["ref"])
    shapes = CiShapes(app.backend, repo)
    suites = [s for s in shapes.state.suites.values() if s.head_sha == sha]
    page = paginate(app, req, suites, shapes.suite)
    return Response(200, {"total_count": len(suites), "check_suites": page.body}, page.headers)


@router.route("POST", "/repos/{owner}/{repo}/check-suites")
def create_check_suite(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/checks/suites#create-a-check-suite (200 when it exists, 201 when made)
    repo = app.repo(req, "read")
    slug, app_id = _calling_app(app, req)
    head_sha = body_field(req.json_object(), "head_sha", str, resource="CheckSuite", required=True)
    if app.backend.git(repo).rev_parse(head_sha) != head_sha:
        raise UnprocessableEntity([{"resource": "CheckSuite", "code": "invalid", "field": "head_sha"}])
    suite, created = app.backend.ci.ensure_suite(repo.full_name, head_sha, slug, app_id)
    return Response(201 if created else 200, CiShapes(app.backend, repo).suite(suite))


@router.route("GET", "/repos/{owner}/{repo}/check-suites/{id:int}")
def get_check_suite(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    shapes = CiShapes(app.backend, repo)
    suite = shapes.state.suites.get(int(req.params["id"]))
    if suite is None:
        raise ResourceNotFound()
    return Response(200, shapes.suite(suite))


@router.route("GET", "/repos/{owner}/{repo}/check-suites/{id:int}/check-runs")
def list_check_runs_in_suite(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    shapes = CiShapes(app.backend, repo)
    suite_id = int(req.params["id"])
    if suite_id not in shapes.state.suites:
        raise ResourceNotFound()
    runs = sorted((r for r in shapes.state.runs.values() if r.suite_id == suite_id), key=lambda r: -r.id)
    page = paginate(app, req, runs, shapes.check_run)
    return Response(200, {"total_count": len(runs), "check_runs": page.body}, page.headers)


# -- commit statuses -----------------------------------------------------------------


@router.route("POST", "/repos/{owner}/{repo}/statuses/{sha}")
def create_status(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/commits/statuses#create-a-commit-status
    repo = app.repo(req, "write")
    assert req.user is not None
    sha = req.params["sha"]
    if app.backend.git(repo).rev_parse(sha) != sha:
        raise UnprocessableEntity([{"resource": "Status", "code": "custom", "field": "sha"}],
                                  f"No commit found for SHA: {sha}")
    data = req.json_object()
    state = body_field(data, "state", str, resource="Status", required=True)
    if state not in _STATES:
        raise UnprocessableEntity([{"resource": "Status", "code": "custom", "field": "state",
                                    "message": "state is not included in the list"}])
    status = app.backend.ci.add_status(
        repo.full_name, sha, state_=state, context=body_field(data, "context", str, resource="Status") or "default",
        description=body_field(data, "description", str, resource="Status"),
        target_url=body_field(data, "target_url", str, resource="Status"), actor=req.user)
    return Response(201, CiShapes(app.backend, repo).status(status))


@router.route("GET", "/repos/{owner}/{repo}/commits/{ref:path}/status")
def combined_status(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/commits/statuses#get-the-combined-status-for-a-specific-reference
    repo = app.repo(req)
    sha = resolve_ref(app, repo, req.params["ref"], missing=404)
    return Response(200, CiShapes(app.backend, repo).combined(sha))


@router.route("GET", "/repos/{owner}/{repo}/commits/{ref:path}/statuses")
def list_statuses(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    sha = resolve_ref(app, repo, req.params["ref"])
    shapes = CiShapes(app.backend, repo)
    statuses = sorted((s for s in shapes.state.statuses if s.sha == sha), key=lambda s: -s.id)
    return paginate(app, req, statuses, shapes.status)
