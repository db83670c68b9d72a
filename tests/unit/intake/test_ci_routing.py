"""CI events route to a ``ci`` item for their commit; the forge's wire reads checks and statuses as one value."""

from __future__ import annotations

from runner.core.policy import Labels
from runner.forge.wire import commit_checks
from runner.intake.webhooks import Delivery, route

SHA = "0123456789abcdef0123456789abcdef01234567"


def _route(event: str, payload: dict[str, object]) -> object:
    payload = {"repository": {"full_name": "o/target"}, "sender": {"login": "runner-bot[bot]"}, **payload}
    return route(Delivery("d1", event, payload), dispatch_repo="o/dispatch", bot_login="runner-bot[bot]",
                 labels=Labels())


def test_a_completed_check_is_a_ci_item_for_its_commit_and_pr_even_when_the_runner_pushed() -> None:
    intent = _route("check_run", {"action": "completed",
                                  "check_run": {"head_sha": SHA, "pull_requests": [{"number": 7}]}})
    assert intent.outcome == "feedback" and intent.issue_number == 7  # type: ignore[attr-defined]
    item = intent.feedback  # type: ignore[attr-defined]
    assert item["kind"] == "ci" and item["sha"] == SHA and item["number"] == 7 and item["repo"] == "o/target"


def test_unfinished_checks_and_payloads_without_a_commit_are_ignored() -> None:
    assert _route("check_suite", {"action": "requested", "check_suite": {"head_sha": SHA}}).outcome == "ignored"  # type: ignore[attr-defined]
    assert _route("status", {"state": "pending", "sha": SHA}).outcome == "ignored"  # type: ignore[attr-defined]
    assert _route("workflow_run", {"action": "completed", "workflow_run": {"head_sha": "x"}}).outcome == "ignored"  # type: ignore[attr-defined]
    status = _route("status", {"state": "failure", "sha": SHA})
    assert status.outcome == "feedback" and status.feedback["number"] == 0  # type: ignore[attr-defined]


def test_check_runs_and_statuses_are_one_list_of_checks() -> None:
    checks = commit_checks(
        {"check_runs": [{"id": 5, "name": "tests", "status": "completed", "conclusion": "failure", "head_sha": SHA,
                         "app": {"slug": "github-actions"}, "output": {"title": "1 failed", "summary": "s"}}]},
        {"sha": SHA, "statuses": [{"id": 9, "context": "deploy", "state": "pending", "target_url": "https://x"}]})
    tests, deploy = checks.checks
    assert checks.sha == SHA and tests.failed and tests.actions_job == 5 and tests.title == "1 failed"
    assert deploy.source == "status" and not deploy.completed and deploy.details_url == "https://x"
