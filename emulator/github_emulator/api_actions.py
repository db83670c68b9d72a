"""REST routes for GitHub Actions: workflow runs and jobs of a commit, and a job's log (a 302, as GitHub answers).

https://docs.github.com/rest/actions/workflow-runs and
https://docs.github.com/rest/actions/workflow-jobs. A job's log is served at a
short-lived URL that needs no token (:data:`~.ci.LOG_PREFIX`), as GitHub's blob
storage does; the control route lets a person set a repository's CI rules.
"""

from __future__ import annotations

from .ci import LOG_PREFIX, find_log
from .errors import ResourceNotFound, UnprocessableEntity
from .routing import Context, Request, Response, Router, paginate
from .shapes_ci import CiShapes

router = Router()


@router.route("GET", "/repos/{owner}/{repo}/actions/runs")
def list_workflow_runs(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/actions/workflow-runs#list-workflow-runs-for-a-repository
    repo = app.repo(req)
    shapes = CiShapes(app.backend, repo)
    runs = sorted(shapes.state.workflow_runs.values(), key=lambda r: -r.id)
    for name, value in (("head_sha", req.arg("head_sha")), ("head_branch", req.arg("branch")),
                        ("status", req.arg("status")), ("event", req.arg("event"))):
        if value:
            runs = [r for r in runs if value in (getattr(r, name), r.conclusion if name == "status" else None)]
    page = paginate(app, req, runs, shapes.workflow_run)
    return Response(200, {"total_count": len(runs), "workflow_runs": page.body}, page.headers)


@router.route("GET", "/repos/{owner}/{repo}/actions/runs/{id:int}")
def get_workflow_run(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    shapes = CiShapes(app.backend, repo)
    run = shapes.state.workflow_runs.get(int(req.params["id"]))
    if run is None:
        raise ResourceNotFound()
    return Response(200, shapes.workflow_run(run))


@router.route("GET", "/repos/{owner}/{repo}/actions/runs/{id:int}/jobs")
def list_jobs(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/actions/workflow-jobs#list-jobs-for-a-workflow-run
    repo = app.repo(req)
    shapes = CiShapes(app.backend, repo)
    run_id = int(req.params["id"])
    if run_id not in shapes.state.workflow_runs:
        raise ResourceNotFound()
    jobs = sorted((c for c in shapes.state.runs.values() if c.workflow_run_id == run_id), key=lambda c: c.id)
    page = paginate(app, req, jobs, shapes.job)
    return Response(200, {"total_count": len(jobs), "jobs": page.body}, page.headers)


def _job(app: Context, req: Request) -> tuple[CiShapes, int]:
    repo = app.repo(req)
    shapes = CiShapes(app.backend, repo)
    job_id = int(req.params["id"])
    check = shapes.state.runs.get(job_id)
    if check is None or check.workflow_run_id is None:
        raise ResourceNotFound()
    return shapes, job_id


@router.route("GET", "/repos/{owner}/{repo}/actions/jobs/{id:int}")
def get_job(app: Context, req: Request) -> Response:
    shapes, job_id = _job(app, req)
    return Response(200, shapes.job(shapes.state.runs[job_id]))


@router.route("GET", "/repos/{owner}/{repo}/actions/jobs/{id:int}/logs")
def download_job_logs(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/actions/workflow-jobs#download-job-logs-for-a-workflow-run
    shapes, job_id = _job(app, req)
    return Response(302, None, {"Location": shapes.log_url(shapes.state.runs[job_id])})


def serve_log(app: Context, req: Request) -> Response:
    """The log behind the redirect: no token needed, only the URL's secret part (``LOG_PREFIX``)."""
    rest = req.path[len(LOG_PREFIX):].split("/")
    if len(rest) != 4 or not rest[2].isdigit():
        raise ResourceNotFound()
    try:
        log = find_log(app.backend.ci, f"{rest[0]}/{rest[1]}", int(rest[2]), rest[3])
    except Exception:  # noqa: BLE001 - an unknown repository is the same 404
        log = None
    if log is None:
        raise ResourceNotFound()
    return Response(200, log.encode(), {"Content-Type": "text/plain; charset=utf-8"})


@router.route("PUT", "/_emulator/repos/{owner}/{repo}/ci")
def set_ci_rules(app: Context, req: Request) -> Response:
    """Control: a site admin sets a repository's CI rules (see :class:`~.records_ci.CiRule`)."""
    users = app.backend.store.users()
    user = users.get((req.user or "").lower())
    if user is None or not user.site_admin:
        raise ResourceNotFound()
    data = req.json()
    if not isinstance(data, list):
        raise UnprocessableEntity([{"resource": "CiRule", "code": "invalid", "field": "rules"}])
    try:
        rules = app.backend.ci.set_rules(f"{req.params['owner']}/{req.params['repo']}", data)
    except ValueError as exc:
        raise UnprocessableEntity([str(exc)]) from exc
    return Response(200, [r.model_dump() for r in rules])
