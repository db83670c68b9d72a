"""Render the emulated CI the way GitHub's REST API and webhooks show it (``@octokit/openapi``)."""

from __future__ import annotations

from typing import Any, Protocol

from .ci import ACTIONS_APP_ID, ACTIONS_SLUG, CI_APP_ID, CI_APP_SLUG, CiEngine, log_path
from .gitrepo import BareRepo
from .records import Repo
from .records_ci import CheckRunRecord, CheckSuiteRecord, StatusRecord, WorkflowRunRecord
from .shapes import Renderer, node_id
from .store import Store


class Backend(Protocol):
    """What rendering reads (:class:`~.backend.Backend` is the one implementation)."""

    store: Store
    ci: CiEngine
    base_url: str

    def renderer(self) -> Renderer: ...

    def git(self, repo: Repo) -> BareRepo: ...

JSON = dict[str, Any]
_MINIMAL_REPO = frozenset((
    "archive_url assignees_url blobs_url branches_url collaborators_url comments_url commits_url compare_url "
    "contents_url contributors_url deployments_url description downloads_url events_url fork forks_url full_name "
    "git_commits_url git_refs_url git_tags_url hooks_url html_url id issue_comment_url issue_events_url issues_url "
    "keys_url labels_url languages_url merges_url milestones_url name node_id notifications_url owner private "
    "pulls_url releases_url stargazers_url statuses_url subscribers_url subscription_url tags_url teams_url "
    "trees_url url").split())
_BUILT_IN = {ACTIONS_SLUG: (ACTIONS_APP_ID, "GitHub Actions"), CI_APP_SLUG: (CI_APP_ID, "Emulated CI")}


class CiShapes:
    """One repository's CI records as REST JSON."""

    def __init__(self, backend: Backend, repo: Repo) -> None:
        self.backend, self.repo = backend, repo
        self.renderer = backend.renderer()
        self.base = backend.base_url
        self.api = f"{self.base}/repos/{repo.full_name}"
        self.web = f"{self.base.replace('/api/v3', '')}/{repo.full_name}"
        self.state = backend.ci.state(repo.full_name)

    def app(self, slug: str, app_id: int | None) -> JSON:
        if app_id is not None:
            record = self.backend.store.app(app_id)
            number, name, owner, created = record.id, record.name, record.owner, record.created_at
        else:
            number, name = _BUILT_IN.get(slug, (CI_APP_ID, slug))
            owner, created = "github", "2018-07-30T09:30:17Z"
        return {"id": number, "slug": slug, "node_id": node_id("Integration", number), "name": name,
                "owner": self.renderer.user(owner), "description": None,
                "external_url": f"{self.base}/apps/{slug}", "html_url": f"{self.base}/apps/{slug}",
                "created_at": created, "updated_at": created, "permissions": {"checks": "write"},
                "events": []}

    def pulls_for(self, sha: str) -> list[JSON]:
        """The open PRs whose head is ``sha`` (``pull-request-minimal``)."""
        git = self.backend.git(self.repo)
        found = []
        for issue in self.backend.store.issues(self.repo.full_name):
            if issue.pull is None or issue.state != "open":
                continue
            shas = git.branch_shas(issue.pull.head, issue.pull.base)
            if shas.get(issue.pull.head) != sha:
                continue
            side = lambda ref, at: {"ref": ref, "sha": at or "",  # noqa: E731
                                    "repo": {"id": self.repo.id, "url": self.api, "name": self.repo.name}}
            found.append({"id": issue.id, "number": issue.number, "url": f"{self.api}/pulls/{issue.number}",
                          "head": side(issue.pull.head, sha), "base": side(issue.pull.base, shas.get(issue.pull.base))})
        return found

    def suite(self, suite: CheckSuiteRecord) -> JSON:
        runs = [r for r in self.state.runs.values() if r.suite_id == suite.id]
        return {
            "id": suite.id, "node_id": node_id("CheckSuite", suite.id), "head_branch": suite.head_branch,
            "head_sha": suite.head_sha, "status": suite.status, "conclusion": suite.conclusion,
            "url": f"{self.api}/check-suites/{suite.id}", "before": suite.before, "after": suite.head_sha,
            "pull_requests": self.pulls_for(suite.head_sha), "app": self.app(suite.app_slug, suite.app_id),
            "repository": self.renderer.repo(self.repo), "created_at": suite.created_at,
            "updated_at": suite.updated_at, "head_commit": self.simple_commit(suite.head_sha),
            "latest_check_runs_count": len(runs), "check_runs_url": f"{self.api}/check-suites/{suite.id}/check-runs",
            "rerequestable": True, "runs_rerequestable": True,
        }

    def simple_commit(self, sha: str) -> JSON:
        info = self.backend.git(self.repo).commit(sha)
        return {"id": sha, "tree_id": info.tree, "message": info.message, "timestamp": info.author_date,
                "author": {"name": info.author_name, "email": info.author_email},
                "committer": {"name": info.committer_name, "email": info.committer_email}}

    def check_run(self, check: CheckRunRecord) -> JSON:
        suite = self.state.suites[check.suite_id]
        html = f"{self.web}/runs/{check.id}"
        return {
            "id": check.id, "head_sha": check.head_sha, "node_id": node_id("CheckRun", check.id),
            "external_id": check.external_id or "", "url": f"{self.api}/check-runs/{check.id}",
            "html_url": html, "details_url": check.details_url or html, "status": check.status,
            "conclusion": check.conclusion, "started_at": check.started_at, "completed_at": check.completed_at,
            "output": {"title": check.title, "summary": check.summary, "text": check.text,
                       "annotations_count": len(check.annotations),
                       "annotations_url": f"{self.api}/check-runs/{check.id}/annotations"},
            "name": check.name, "check_suite": {"id": suite.id},
            "app": self.app(suite.app_slug, suite.app_id), "pull_requests": self.pulls_for(check.head_sha),
        }

    def annotation(self, check: CheckRunRecord, raw: dict[str, object]) -> JSON:
        start = int(str(raw.get("start_line") or 1))
        return {"path": str(raw.get("path") or ""), "blob_href": f"{self.web}/blob/{check.head_sha}/{raw.get('path')}",
                "start_line": start, "end_line": int(str(raw.get("end_line") or start)),
                "start_column": raw.get("start_column"), "end_column": raw.get("end_column"),
                "annotation_level": raw.get("annotation_level") or "failure", "title": raw.get("title"),
                "message": raw.get("message"), "raw_details": raw.get("raw_details")}

    def status(self, status: StatusRecord, *, simple: bool = False) -> JSON:
        user = self.renderer.user(status.creator) or {}
        shown: JSON = {"url": f"{self.api}/statuses/{status.sha}", "avatar_url": user.get("avatar_url"),
                       "id": status.id, "node_id": node_id("StatusContext", status.id), "state": status.state,
                       "description": status.description, "target_url": status.target_url,
                       "context": status.context, "created_at": status.created_at, "updated_at": status.updated_at}
        if not simple:
            shown["creator"] = user or None
        return shown

    def latest_statuses(self, sha: str) -> list[StatusRecord]:
        """The newest status of each context on ``sha``, newest first."""
        seen: dict[str, StatusRecord] = {}
        for status in sorted((s for s in self.state.statuses if s.sha == sha), key=lambda s: -s.id):
            seen.setdefault(status.context, status)
        return list(seen.values())

    def combined(self, sha: str) -> JSON:
        latest = self.latest_statuses(sha)
        states = {s.state for s in latest}
        state = ("failure" if states & {"failure", "error"} else "pending" if "pending" in states or not latest
                 else "success")
        return {"state": state, "statuses": [self.status(s, simple=True) for s in latest], "sha": sha,
                "total_count": len(latest), "repository": self.renderer.repo(self.repo),
                "commit_url": f"{self.api}/commits/{sha}", "url": f"{self.api}/commits/{sha}/status"}

    def workflow_run(self, run: WorkflowRunRecord) -> JSON:
        api = f"{self.api}/actions/runs/{run.id}"
        actor = self.renderer.user(run.actor)
        return {
            "id": run.id, "name": run.name, "node_id": node_id("WorkflowRun", run.id),
            "check_suite_id": run.suite_id, "check_suite_node_id": node_id("CheckSuite", run.suite_id),
            "head_branch": run.head_branch, "head_sha": run.head_sha, "path": run.path,
            "run_number": run.run_number, "run_attempt": 1, "referenced_workflows": [], "event": run.event,
            "status": run.status, "conclusion": run.conclusion, "workflow_id": run.workflow_id, "url": api,
            "html_url": f"{self.web}/actions/runs/{run.id}", "pull_requests": self.pulls_for(run.head_sha),
            "created_at": run.created_at, "updated_at": run.updated_at, "actor": actor,
            "triggering_actor": actor, "run_started_at": run.created_at, "jobs_url": f"{api}/jobs",
            "logs_url": f"{api}/logs", "check_suite_url": f"{self.api}/check-suites/{run.suite_id}",
            "artifacts_url": f"{api}/artifacts", "cancel_url": f"{api}/cancel", "rerun_url": f"{api}/rerun",
            "previous_attempt_url": None, "workflow_url": f"{self.api}/actions/workflows/{run.workflow_id}",
            "head_commit": self.simple_commit(run.head_sha), "repository": self.renderer.repo(self.repo),
            "head_repository": self.renderer.repo(self.repo), "head_repository_id": self.repo.id,
            "display_title": self.simple_commit(run.head_sha)["message"].split("\n")[0],
        }

    def job(self, check: CheckRunRecord) -> JSON:
        run = self.state.workflow_runs[check.workflow_run_id or 0]
        return {
            "id": check.id, "run_id": run.id, "run_url": f"{self.api}/actions/runs/{run.id}", "run_attempt": 1,
            "node_id": node_id("CheckRun", check.id), "head_sha": check.head_sha,
            "url": f"{self.api}/actions/jobs/{check.id}", "html_url": f"{self.web}/actions/runs/{run.id}/job/{check.id}",
            "status": check.status, "conclusion": check.conclusion, "created_at": check.started_at,
            "started_at": check.started_at, "completed_at": check.completed_at, "name": check.name,
            "steps": [{"name": "Run", "status": check.status, "conclusion": check.conclusion, "number": 1,
                       "started_at": check.started_at, "completed_at": check.completed_at}],
            "check_run_url": f"{self.api}/check-runs/{check.id}", "labels": ["ubuntu-latest"],
            "runner_id": 1, "runner_name": "GitHub Actions 1", "runner_group_id": 1,
            "runner_group_name": "GitHub Actions", "workflow_name": run.name, "head_branch": run.head_branch,
        }

    def log_url(self, check: CheckRunRecord) -> str:
        return f"{self.base}{log_path(self.repo.full_name, check)}"


def webhook_payload(backend: Backend, full_name: str, event: str, what: dict[str, Any], actor: str) -> JSON | None:
    """The payload GitHub sends for a CI change (``installation`` is added by Hookshot)."""
    repo = backend.store.repo(full_name)
    shapes = CiShapes(backend, repo)
    state = shapes.state
    payload: JSON = {"action": what["action"]} if "action" in what else {}
    if event == "check_run":
        check = state.runs[what["run"]]
        payload["check_run"] = shapes.check_run(check)
        suite = state.suites[check.suite_id]
        payload["check_run"]["check_suite"] = {
            k: v for k, v in shapes.suite(suite).items()
            if k in ("id", "node_id", "head_branch", "head_sha", "status", "conclusion", "url", "before", "after",
                     "pull_requests", "app", "created_at", "updated_at")}
        if payload["check_run"]["started_at"] is None:
            payload["check_run"]["started_at"] = check.started_at
    elif event == "check_suite":
        payload["check_suite"] = shapes.suite(state.suites[what["suite"]])
        payload["check_suite"].pop("repository", None)
    elif event == "workflow_run":
        run = state.workflow_runs[what["run"]]
        payload["workflow_run"] = shapes.workflow_run(run)
        payload["workflow_run"].pop("head_repository_id", None)
        for side in ("repository", "head_repository"):  # a webhook's run carries the minimal repository
            payload["workflow_run"][side] = {k: v for k, v in payload["workflow_run"][side].items()
                                             if k in _MINIMAL_REPO}
        payload["workflow"] = {"badge_url": f"{shapes.web}/workflows/{run.name}/badge.svg",
                               "created_at": run.created_at, "html_url": f"{shapes.web}/blob/main/{run.path}",
                               "id": run.workflow_id, "name": run.name, "node_id": node_id("Workflow", run.workflow_id),
                               "path": run.path, "state": "active", "updated_at": run.created_at,
                               "url": f"{shapes.api}/actions/workflows/{run.workflow_id}"}
    elif event == "status":
        status = next(s for s in state.statuses if s.id == what["status"])
        git = backend.git(repo)
        branches = [{"name": name, "commit": {"sha": sha, "url": f"{shapes.api}/commits/{sha}"}, "protected": False}
                    for name, sha in sorted(git.branches().items()) if sha == status.sha]
        payload.update({"id": status.id, "sha": status.sha, "name": repo.full_name,
                        "target_url": status.target_url, "context": status.context,
                        "description": status.description, "state": status.state,
                        "commit": _webhook_commit(shapes, status.sha), "branches": branches,
                        "created_at": status.created_at, "updated_at": status.updated_at,
                        "avatar_url": (backend.renderer().user(status.creator) or {}).get("avatar_url")})
    else:
        return None
    payload["repository"] = backend.renderer().repo(repo)
    payload["sender"] = backend.renderer().user(actor)
    return payload


def _webhook_commit(shapes: CiShapes, sha: str) -> JSON:
    info = shapes.backend.git(shapes.repo).commit(sha)
    person = {"name": info.author_name, "email": info.author_email, "date": info.author_date}
    return {"sha": sha, "node_id": node_id("Commit", int(sha[:7], 16)),
            "commit": {"author": person, "committer": {**person, "name": info.committer_name,
                                                       "email": info.committer_email},
                       "message": info.message, "tree": {"sha": info.tree, "url": f"{shapes.api}/git/trees/{info.tree}"},
                       "url": f"{shapes.api}/git/commits/{sha}", "comment_count": 0,
                       "verification": {"verified": False, "reason": "unsigned", "signature": None,
                                        "payload": None, "verified_at": None}},
            "url": f"{shapes.api}/commits/{sha}", "html_url": f"{shapes.web}/commit/{sha}",
            "comments_url": f"{shapes.api}/commits/{sha}/comments", "author": None, "committer": None,
            "parents": [{"sha": p, "url": f"{shapes.api}/commits/{p}", "html_url": f"{shapes.web}/commit/{p}"}
                        for p in info.parents]}
