"""Emulate a repository's CI: check suites and runs, statuses and Actions runs, made per pushed commit.

GitHub runs a repository's workflows on every push and an app reports check runs;
here :class:`~.records_ci.CiRule` values stand in for both. After every push
(:meth:`CiEngine.after_push`, called before git's answer ends, so a client sees
the checks once its push returns) each rule becomes a check run (an Actions job
with a log, or another app's run with an output) or a commit status on the new
head, completed at once with ``success`` or ``failure``, or left in progress
(``hold``) until :meth:`CiEngine.release`. The matching webhooks go out
(``workflow_run``, ``check_run``, ``check_suite``, ``status``).

The state is its own JSON file (``ci.json``) behind its own lock: the rest of the
emulator knows nothing of it.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field

from .errors import ResourceNotFound
from .gitrepo import BareRepo
from .records import Repo
from .records_ci import (
    CheckRunRecord,
    CheckSuiteRecord,
    CiRule,
    CiState,
    StatusRecord,
    WorkflowRunRecord,
)
from .store import Store

ACTIONS_SLUG = "github-actions"
ACTIONS_APP_ID = 15368  # GitHub Actions' app id on github.com
CI_APP_SLUG, CI_APP_ID = "emulated-ci", 15369
FIRST_ID = 50_000_000  # CI ids never collide with the store's issues, comments and reviews
LOG_PREFIX = "/_emulator/job-logs/"


class CiHost(Protocol):
    """What the engine uses of the emulator (:class:`~.backend.Backend` is the one implementation)."""

    state_dir: Path
    store: Store
    hookshot: Any  # broadcast(repo, event, payload)

    def git(self, repo: Repo) -> BareRepo: ...


#: Renders a webhook payload for (repo, event, what, actor), or None (:func:`~.shapes_ci.webhook_payload`).
Render = Any


class _CiWorld(BaseModel):
    repos: dict[str, CiState] = Field(default_factory=dict)
    next_id: int = FIRST_ID


class CiEngine:
    """The CI of every repository: rules, the records they make, and their webhooks."""

    def __init__(self, backend: CiHost, render: Render) -> None:
        self._backend = backend
        self._render = render
        self._path = backend.state_dir / "ci.json"
        self._lock = threading.RLock()
        self._world = _CiWorld.model_validate_json(self._path.read_bytes()) if self._path.exists() else _CiWorld()

    # -- state -------------------------------------------------------------

    @contextmanager
    def _mutating(self) -> Iterator[_CiWorld]:
        with self._lock:
            try:
                yield self._world
            except BaseException:
                self._world = (_CiWorld.model_validate_json(self._path.read_bytes())
                               if self._path.exists() else _CiWorld())
                raise
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".ci-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self._world.model_dump_json())
            os.replace(tmp, self._path)

    def state(self, full_name: str) -> CiState:
        """A copy of the repository's CI state (empty when it has none)."""
        with self._lock:
            found = self._world.repos.get(full_name.lower())
            return found.model_copy(deep=True) if found else CiState()

    def _repo_state(self, world: _CiWorld, full_name: str) -> CiState:
        return world.repos.setdefault(full_name.lower(), CiState())

    @staticmethod
    def _new_id(world: _CiWorld) -> int:
        world.next_id += 1
        return world.next_id - 1

    def _now(self) -> str:
        return self._backend.store.now()

    # -- rules and pushes ----------------------------------------------------

    def set_rules(self, full_name: str, rules: Iterable[CiRule | dict[str, Any]]) -> list[CiRule]:
        parsed = [r if isinstance(r, CiRule) else CiRule.model_validate(r) for r in rules]
        self._backend.store.repo(full_name)
        with self._mutating() as world:
            self._repo_state(world, full_name).rules = parsed
        return parsed

    def after_push(self, full_name: str, before: dict[str, str], actor: str) -> None:
        """Run the rules on every branch head the push moved (deleted branches run nothing)."""
        if not self.state(full_name).rules:
            return
        after = self._backend.git(self._backend.store.repo(full_name)).branches()
        for branch, sha in sorted(after.items()):
            if before.get(branch) != sha:
                self.run(full_name, branch, actor=actor, before=before.get(branch))

    def run(self, full_name: str, ref: str, *, actor: str = "octocat", before: str | None = None) -> str:
        """Run every rule on the head of ``ref`` (a branch, or a sha); return the sha."""
        repo = self._backend.store.repo(full_name)
        git = self._backend.git(repo)
        sha = git.branch_sha(ref) or git.rev_parse(ref)
        if sha is None:
            raise ResourceNotFound()
        branch = ref if git.branch_sha(ref) else None
        rules = self.state(full_name).rules
        workflows = sorted({r.workflow for r in rules if r.kind == "actions"})
        events: list[tuple[str, dict[str, Any]]] = []
        with self._mutating() as world:
            state = self._repo_state(world, full_name)
            suites: dict[str, int] = {}
            for workflow in workflows:
                suite = self._suite(world, state, sha, branch, ACTIONS_SLUG, None, before)
                state.run_numbers += 1
                run = WorkflowRunRecord(
                    id=self._new_id(world), name=workflow, path=f".github/workflows/{_slug(workflow)}.yml",
                    workflow_id=abs(hash(workflow)) % 10_000_000 + 1, head_sha=sha, head_branch=branch,
                    run_number=state.run_numbers, suite_id=suite.id, actor=actor, status="in_progress",
                    created_at=self._now(), updated_at=self._now())
                state.workflow_runs[run.id] = run
                suites[workflow] = suite.id
                events.append(("workflow_run", {"action": "requested", "run": run.id}))
            app_suite = None
            for rule in rules:
                passed = _passes(rule, git, sha)
                if rule.kind == "status":
                    state.statuses.append(StatusRecord(
                        id=self._new_id(world), sha=sha, state="pending" if rule.hold else
                        ("success" if passed else "failure"), context=rule.name,
                        description=rule.summary or (None if passed else f"{rule.name} failed"),
                        target_url=rule.target_url or None, creator=actor, created_at=self._now(),
                        updated_at=self._now(), rule=rule.name))
                    events.append(("status", {"status": state.statuses[-1].id}))
                    continue
                if rule.kind == "actions":
                    suite_id = suites[rule.workflow]
                else:
                    app_suite = app_suite or self._suite(world, state, sha, branch, CI_APP_SLUG, None, before).id
                    suite_id = app_suite
                check = CheckRunRecord(
                    id=self._new_id(world), suite_id=suite_id, name=rule.name, head_sha=sha,
                    status="in_progress", started_at=self._now(), rule=rule.name,
                    workflow_run_id=next((r.id for r in state.workflow_runs.values()
                                          if r.suite_id == suite_id), None),
                    log_token=secrets.token_hex(12))
                state.runs[check.id] = check
                events.append(("check_run", {"action": "created", "run": check.id}))
                if not rule.hold:
                    self._complete(state, check, rule, passed)
                    events.append(("check_run", {"action": "completed", "run": check.id}))
            events += self._settle(state)
        self._announce(full_name, events, actor)
        return sha

    def release(self, full_name: str, *, fail: bool | None = None) -> int:
        """Complete every held check (by its rule, or ``fail``); the number completed."""
        repo = self._backend.store.repo(full_name)
        git = self._backend.git(repo)
        events: list[tuple[str, dict[str, Any]]] = []
        with self._mutating() as world:
            state = self._repo_state(world, full_name)
            rules = {r.name: r for r in state.rules}
            count = 0
            for check in state.runs.values():
                rule = rules.get(check.rule or "")
                if check.status != "completed" and rule is not None:
                    passed = _passes(rule, git, check.head_sha) if fail is None else not fail
                    self._complete(state, check, rule, passed)
                    events.append(("check_run", {"action": "completed", "run": check.id}))
                    count += 1
            for status in state.statuses:
                rule = rules.get(status.rule or "")
                if status.state == "pending" and rule is not None:
                    passed = _passes(rule, git, status.sha) if fail is None else not fail
                    status.state = "success" if passed else "failure"
                    status.updated_at = self._now()
                    events.append(("status", {"status": status.id}))
                    count += 1
            events += self._settle(state)
        self._announce(full_name, events, "octocat")
        return count

    # -- the REST side (apps create and update their own runs; anyone posts statuses) ----

    def create_check_run(self, full_name: str, *, app_slug: str, app_id: int | None, name: str, head_sha: str,
                         fields: dict[str, Any]) -> CheckRunRecord:
        events: list[tuple[str, dict[str, Any]]] = []
        with self._mutating() as world:
            state = self._repo_state(world, full_name)
            suite = self._suite(world, state, head_sha, None, app_slug, app_id, None)
            check = CheckRunRecord(id=self._new_id(world), suite_id=suite.id, name=name, head_sha=head_sha,
                                   started_at=self._now())
            state.runs[check.id] = check
            _apply(check, fields, self._now())
            events.append(("check_run", {"action": "created", "run": check.id}))
            if check.status == "completed":
                events.append(("check_run", {"action": "completed", "run": check.id}))
            events += self._settle(state)
        self._announce(full_name, events, app_slug + "[bot]")
        return check

    def update_check_run(self, full_name: str, run_id: int, fields: dict[str, Any], actor: str) -> CheckRunRecord:
        events: list[tuple[str, dict[str, Any]]] = []
        with self._mutating() as world:
            state = self._repo_state(world, full_name)
            check = state.runs.get(run_id)
            if check is None:
                raise ResourceNotFound()
            was = check.status
            _apply(check, fields, self._now())
            if check.status == "completed" and was != "completed":
                events.append(("check_run", {"action": "completed", "run": check.id}))
            events += self._settle(state)
            found = check.model_copy(deep=True)
        self._announce(full_name, events, actor)
        return found

    def add_status(self, full_name: str, sha: str, *, state_: str, context: str, description: str | None,
                   target_url: str | None, actor: str) -> StatusRecord:
        with self._mutating() as world:
            state = self._repo_state(world, full_name)
            status = StatusRecord(id=self._new_id(world), sha=sha, state=state_, context=context,  # type: ignore[arg-type]
                                  description=description, target_url=target_url, creator=actor,
                                  created_at=self._now(), updated_at=self._now())
            state.statuses.append(status)
        self._announce(full_name, [("status", {"status": status.id})], actor)
        return status

    def ensure_suite(self, full_name: str, head_sha: str, slug: str, app_id: int) -> tuple[CheckSuiteRecord, bool]:
        with self._mutating() as world:
            state = self._repo_state(world, full_name)
            before = len(state.suites)
            suite = self._suite(world, state, head_sha, None, slug, app_id, None)
            return suite.model_copy(), len(state.suites) > before

    # -- helpers -------------------------------------------------------------

    def _suite(self, world: _CiWorld, state: CiState, sha: str, branch: str | None, slug: str,
               app_id: int | None, before: str | None) -> CheckSuiteRecord:
        if slug != ACTIONS_SLUG:  # one suite per app and commit; Actions makes one per workflow run
            for suite in state.suites.values():
                if suite.head_sha == sha and suite.app_slug == slug:
                    return suite
        suite = CheckSuiteRecord(id=self._new_id(world), head_sha=sha, head_branch=branch, app_slug=slug,
                                 app_id=app_id, before=before, created_at=self._now(), updated_at=self._now())
        state.suites[suite.id] = suite
        return suite

    def _complete(self, state: CiState, check: CheckRunRecord, rule: CiRule, passed: bool) -> None:
        check.status, check.conclusion, check.completed_at = "completed", "success" if passed else "failure", \
            self._now()
        check.log = rule.pass_log if passed else rule.fail_log
        if rule.kind == "app":
            check.title = rule.title or ("Passed" if passed else "Failed")
            check.summary = rule.summary or check.log
            check.text = None if passed else rule.fail_log
            check.annotations = [] if passed else list(rule.annotations)
        elif not passed:
            check.annotations = list(rule.annotations)
            check.title = rule.title or None

    def _settle(self, state: CiState) -> list[tuple[str, dict[str, Any]]]:
        """Complete every suite (and its workflow run) whose check runs have all completed."""
        events: list[tuple[str, dict[str, Any]]] = []
        for suite in state.suites.values():
            runs = [r for r in state.runs.values() if r.suite_id == suite.id]
            if suite.status == "completed" or not runs or any(r.status != "completed" for r in runs):
                if runs and suite.status != "completed":
                    suite.status = "in_progress"
                continue
            suite.status, suite.updated_at = "completed", self._now()
            suite.conclusion = "failure" if any(r.conclusion == "failure" for r in runs) else "success"
            events.append(("check_suite", {"action": "completed", "suite": suite.id}))
            for run in state.workflow_runs.values():
                if run.suite_id == suite.id:
                    run.status, run.conclusion, run.updated_at = "completed", suite.conclusion, self._now()
                    events.append(("workflow_run", {"action": "completed", "run": run.id}))
        return events

    def _announce(self, full_name: str, events: list[tuple[str, dict[str, Any]]], actor: str) -> None:
        for event, what in events:  # rendered after the change: a payload shows the state it led to
            payload = self._render(full_name, event, what, actor)
            if payload is not None:
                self._backend.hookshot.broadcast(full_name, event, payload)


def _passes(rule: CiRule, git: Any, sha: str) -> bool:
    if rule.fail:
        return False
    if not rule.path:
        return True
    data = git.read_file(sha, rule.path)
    if data is None:
        return False
    return not rule.line or rule.line in data.decode(errors="replace").splitlines()


def _apply(check: CheckRunRecord, fields: dict[str, Any], now: str) -> None:
    """An app's create or update body onto its check run (GitHub's fields, loosely checked by the route)."""
    for name in ("details_url", "external_id"):
        if name in fields:
            setattr(check, name, fields[name])
    output = fields.get("output") or {}
    for name in ("title", "summary", "text"):
        if name in output:
            setattr(check, name, output[name])
    check.annotations += list(output.get("annotations") or [])
    if fields.get("status"):
        check.status = fields["status"]
    if fields.get("conclusion"):
        check.status, check.conclusion = "completed", fields["conclusion"]
    if check.status == "completed" and check.completed_at is None:
        check.completed_at = fields.get("completed_at") or now
    if fields.get("started_at"):
        check.started_at = fields["started_at"]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "ci"


def log_path(full_name: str, check: CheckRunRecord) -> str:
    return f"{LOG_PREFIX}{full_name}/{check.id}/{check.log_token}"


def find_log(engine: CiEngine, full_name: str, run_id: int, token: str) -> str | None:
    check = engine.state(full_name).runs.get(run_id)
    if check is None or not check.log_token or not secrets.compare_digest(check.log_token, token):
        return None
    return check.log


__all__ = ["CiEngine", "CiRule"]
