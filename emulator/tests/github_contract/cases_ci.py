"""Contract cases for checks, statuses and Actions (``test_rest.CASES`` takes them in)."""

from __future__ import annotations

from typing import Any

import httpx

RULES = [
    {"name": "tests", "workflow": "CI", "path": "src/app.py", "line": "print('ok')",
     "fail_log": "2026-01-01T00:00:00.0000000Z ##[error]AssertionError: app.py does not say ok\n",
     "annotations": [{"path": "src/app.py", "start_line": 1, "annotation_level": "failure", "message": "no ok"}]},
    {"name": "lint", "kind": "app", "summary": "lint ran"},
    {"name": "deploy", "kind": "status", "target_url": "https://ci.example.com/1"},
]


def seeded(w: Any) -> dict[str, Any]:
    """Run the CI once on main (a failing Actions job, a passing app run, a status): the ids the cases use."""
    found = getattr(w, "_ci", None)
    if found is None:
        w.emu.set_ci("octocat/hello", RULES)
        sha = w.emu.run_ci("octocat/hello", "main")
        runs = w.get(f"/repos/{{repo}}/actions/runs?head_sha={sha}").json()["workflow_runs"]
        jobs = w.get(f"/repos/{{repo}}/actions/runs/{runs[0]['id']}/jobs").json()["jobs"]
        suites = w.get(f"/repos/{{repo}}/commits/{sha}/check-suites").json()["check_suites"]
        token = w.as_app("POST", "/app/installations/{installation}/access_tokens").json()["token"]
        created = w.call("POST", "/repos/{repo}/check-runs", token=None,
                         headers={"Authorization": f"token {token}"},
                         json={"name": "app-check", "head_sha": sha, "status": "in_progress"}).json()
        found = w._ci = {"sha": sha, "run": runs[0]["id"], "job": jobs[0]["id"], "suite": suites[0]["id"],
                         "token": token, "app_run": created["id"]}
    return found


def as_installation(w: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    token = seeded(w)["token"]
    return w.call(method, path, token=None, headers={"Authorization": f"token {token}"}, **kwargs)


def ci_cases(Case: Any) -> tuple[Any, ...]:  # noqa: N803 - the case class of test_rest
    s = seeded
    return (
        Case("checks/create", 201, lambda w: as_installation(w, "POST", "/repos/{repo}/check-runs", json={
            "name": "more", "head_sha": s(w)["sha"], "status": "completed", "conclusion": "failure",
            "output": {"title": "1 failed", "summary": "it broke", "annotations": [
                {"path": "README.md", "start_line": 1, "end_line": 1, "annotation_level": "failure",
                 "message": "bad"}]}})),
        Case("checks/update", 200, lambda w: as_installation(
            w, "PATCH", f"/repos/{{repo}}/check-runs/{s(w)['app_run']}",
            json={"status": "completed", "conclusion": "success", "output": {"title": "ok", "summary": "fine"}})),
        Case("checks/get", 200, lambda w: w.get(f"/repos/{{repo}}/check-runs/{s(w)['job']}")),
        Case("checks/list-annotations", 200, lambda w: w.get(f"/repos/{{repo}}/check-runs/{s(w)['job']}/annotations")),
        Case("checks/list-for-ref", 200, lambda w: w.get(f"/repos/{{repo}}/commits/{s(w)['sha']}/check-runs")),
        Case("checks/list-for-ref", 200, lambda w: (s(w), w.get("/repos/{repo}/commits/main/check-runs"))[1],
             "branch"),
        Case("checks/list-suites-for-ref", 200,
             lambda w: w.get(f"/repos/{{repo}}/commits/{s(w)['sha']}/check-suites")),
        Case("checks/create-suite", 201, lambda w: as_installation(w, "POST", "/repos/{repo}/check-suites",
                                                                   json={"head_sha": w.emu.branch_sha(
                                                                       "octocat/hello", w.pushed_branch())})),
        Case("checks/create-suite", 200, lambda w: as_installation(w, "POST", "/repos/{repo}/check-suites",
                                                                   json={"head_sha": s(w)["sha"]}), "exists"),
        Case("checks/get-suite", 200, lambda w: w.get(f"/repos/{{repo}}/check-suites/{s(w)['suite']}")),
        Case("checks/list-for-suite", 200, lambda w: w.get(f"/repos/{{repo}}/check-suites/{s(w)['suite']}/check-runs")),
        Case("repos/create-commit-status", 201, lambda w: w.call(
            "POST", f"/repos/{{repo}}/statuses/{s(w)['sha']}",
            json={"state": "failure", "context": "ci/other", "description": "2 failed", "target_url": None})),
        Case("repos/get-combined-status-for-ref", 200, lambda w: (s(w), w.get("/repos/{repo}/commits/main/status"))[1]),
        Case("repos/get-combined-status-for-ref", 404, lambda w: w.get("/repos/{repo}/commits/nope/status")),
        Case("repos/list-commit-statuses-for-ref", 200,
             lambda w: w.get(f"/repos/{{repo}}/commits/{s(w)['sha']}/statuses")),
        Case("actions/list-workflow-runs-for-repo", 200,
             lambda w: w.get(f"/repos/{{repo}}/actions/runs?head_sha={s(w)['sha']}")),
        Case("actions/get-workflow-run", 200, lambda w: w.get(f"/repos/{{repo}}/actions/runs/{s(w)['run']}")),
        Case("actions/list-jobs-for-workflow-run", 200,
             lambda w: w.get(f"/repos/{{repo}}/actions/runs/{s(w)['run']}/jobs")),
        Case("actions/get-job-for-workflow-run", 200, lambda w: w.get(f"/repos/{{repo}}/actions/jobs/{s(w)['job']}")),
        Case("actions/download-job-logs-for-workflow-run", 302,
             lambda w: w.get(f"/repos/{{repo}}/actions/jobs/{s(w)['job']}/logs")),
    )
