"""Every webhook payload the emulator delivers validates against ``@octokit/openapi-webhooks``."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
from github_emulator import ADMIN_TOKEN, GitHubEmulator

from github_contract.schema import SchemaMismatch, validate_webhook
from github_contract.test_rest import REPO, _git


def _closed_port() -> int:
    """A local port nobody listens on: deliveries fail at once and are still recorded."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_every_delivery_matches_githubs_webhook_description(tmp_path: Path) -> None:
    with GitHubEmulator(tmp_path / "state") as emu:
        emu.create_repo(REPO)
        app = emu.create_app("contract-hooks", webhook_url=f"http://127.0.0.1:{_closed_port()}/hook",
                             webhook_secret="s3cret",
                             events=("issues", "issue_comment", "pull_request", "pull_request_review",
                                     "pull_request_review_comment"))
        emu.install_app(app.id, "octocat")
        number = emu.create_issue(REPO, "Do the thing", "Body", ["copilot-agent"])
        emu.add_label(REPO, number, "bug")
        emu.remove_label(REPO, number, "bug")
        emu.update_issue(REPO, number, title="Do the other thing", body="New body")
        comment = emu.add_comment(REPO, number, "On it")
        with httpx.Client(base_url=emu.base_url, headers={"Authorization": f"token {ADMIN_TOKEN}"}) as http:
            http.patch(f"/repos/{REPO}/issues/comments/{comment}", json={"body": "Done"}).raise_for_status()
            emu.update_issue(REPO, number, state="closed")
            emu.update_issue(REPO, number, state="open")
            clone = tmp_path / "clone"
            _git("clone", "-q", emu.git_url(REPO), str(clone))
            _git("checkout", "-q", "-b", "feature", cwd=clone)
            (clone / "feature.txt").write_text("feature\n")
            _git("add", ".", cwd=clone)
            _git("commit", "-qm", "Add feature", cwd=clone)
            _git("push", "-q", "origin", "feature", cwd=clone)
            pull = http.post(f"/repos/{REPO}/pulls", json={"title": "Feature", "head": "feature",
                                                           "base": "main"}).json()["number"]
        emu.add_label(REPO, pull, "copilot-agent")
        emu.submit_review(REPO, pull, "Please rename.", state="changes_requested",
                          comments=[{"path": "feature.txt", "line": 1, "body": "This line."}])
        emu.merge_pull(REPO, pull)
        deliveries = emu.wait_for_deliveries()

    seen, problems = set(), []
    for delivery in deliveries:
        try:
            seen.add(validate_webhook(delivery.event, delivery.action, delivery.payload()))
        except SchemaMismatch as exc:
            problems.append(str(exc))
    assert not problems, "\n".join(problems)
    assert {"issues-opened", "issues-labeled", "issues-unlabeled", "issues-edited", "issues-closed",
            "issues-reopened", "issue-comment-created", "issue-comment-edited",
            "pull-request-opened", "pull-request-labeled", "pull-request-closed",
            "pull-request-review-submitted", "pull-request-review-comment-created"} <= seen, seen


def test_every_ci_delivery_matches_githubs_webhook_description(tmp_path: Path) -> None:
    """A push runs the emulated CI: workflow_run, check_run, check_suite and status deliveries."""
    with GitHubEmulator(tmp_path / "state") as emu:
        emu.create_repo(REPO, files={"app.py": "print('hi')\n"})
        app = emu.create_app("contract-ci", webhook_url=f"http://127.0.0.1:{_closed_port()}/hook",
                             webhook_secret="s3cret", events=("check_run", "check_suite", "status", "workflow_run"))
        emu.install_app(app.id, "octocat")
        emu.set_ci(REPO, [{"name": "tests", "path": "app.py", "line": "print('ok')"},
                          {"name": "lint", "kind": "app", "hold": True},
                          {"name": "deploy", "kind": "status"}])
        clone = tmp_path / "clone"
        _git("clone", "-q", emu.git_url(REPO), str(clone))
        _git("checkout", "-q", "-b", "feature", cwd=clone)
        (clone / "app.py").write_text("print('ok')\n")
        _git("commit", "-qam", "Say ok", cwd=clone)
        _git("push", "-q", "origin", "feature", cwd=clone)
        assert emu.release_ci(REPO) == 1
        deliveries = emu.wait_for_deliveries()

    seen, problems = set(), []
    for delivery in deliveries:
        try:
            seen.add(validate_webhook(delivery.event, delivery.action, delivery.payload()))
        except SchemaMismatch as exc:
            problems.append(str(exc))
    assert not problems, "\n".join(problems)
    assert {(d.event, d.action) for d in deliveries} >= {
        ("workflow_run", "requested"), ("workflow_run", "completed"), ("check_run", "created"),
        ("check_run", "completed"), ("check_suite", "completed"), ("status", None)}
