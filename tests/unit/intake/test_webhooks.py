"""The pure half of webhook intake: signature, freshness and routing, on plain values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from github_emulator import sign

from runner.core.policy import Labels
from runner.intake.webhooks import (
    Delivery,
    WebhookRejected,
    metric_event,
    route,
    signature_valid,
    verify,
)

SECRET = b"0123456789abcdef0123"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def headers(body: bytes, **extra: str) -> dict[str, str]:
    return {"X-GitHub-Event": "issues", "X-GitHub-Delivery": "d-1",
            "X-Hub-Signature-256": sign(SECRET.decode(), body), **extra}


def issue_payload(updated: datetime = NOW, *, repo: str = "o/dispatch", sender: str = "octocat",
                  labels: tuple[str, ...] = ("copilot-agent",), action: str = "labeled") -> bytes:
    return json.dumps({
        "action": action, "repository": {"full_name": repo}, "sender": {"login": sender},
        "issue": {"number": 7, "title": "t", "body": "b", "state": "open", "user": {"login": "octocat"},
                  "labels": [{"name": n} for n in labels], "updated_at": updated.strftime("%Y-%m-%dT%H:%M:%SZ")},
    }).encode()


def test_signature_is_compared_over_the_raw_body() -> None:
    body = issue_payload()
    assert signature_valid(SECRET, body, sign(SECRET.decode(), body))
    assert not signature_valid(SECRET, body + b" ", sign(SECRET.decode(), body))
    assert not signature_valid(SECRET, body, "sha1=" + "0" * 40)
    assert not signature_valid(SECRET, body, None)


@pytest.mark.parametrize(("change", "status", "outcome"), [
    ({"X-Hub-Signature-256": ""}, 401, "unsigned"),
    ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, 401, "bad_signature"),
    ({"X-GitHub-Delivery": ""}, 400, "malformed"),
])
def test_bad_requests_are_rejected(change: dict[str, str], status: int, outcome: str) -> None:
    body = issue_payload()
    with pytest.raises(WebhookRejected) as caught:
        verify({**headers(body), **change}, body, secret=SECRET, now=NOW, max_age=timedelta(hours=1))
    assert (caught.value.status, caught.value.outcome) == (status, outcome)


@pytest.mark.parametrize("age", [timedelta(hours=2), -timedelta(hours=1)])
def test_old_or_future_events_are_stale(age: timedelta) -> None:
    body = issue_payload(NOW - age)
    with pytest.raises(WebhookRejected) as caught:
        verify(headers(body), body, secret=SECRET, now=NOW, max_age=timedelta(hours=1))
    assert caught.value.outcome == "stale"


def _route(body: bytes, event: str = "issues", bot: str | None = "runner-bot[bot]") -> str:
    delivery = Delivery("d", event, json.loads(body))
    return route(delivery, dispatch_repo="o/dispatch", bot_login=bot, labels=Labels()).outcome


def test_routing() -> None:
    assert _route(issue_payload()) == "queued"
    assert _route(issue_payload(repo="o/other")) == "ignored"
    assert _route(issue_payload(sender="runner-bot[bot]")) == "ignored"
    assert _route(issue_payload(labels=("copilot-agent", "processed"))) == "ignored"
    assert _route(issue_payload(action="closed")) == "ignored"
    review = json.dumps({"action": "submitted", "repository": {"full_name": "o/target"},
                         "sender": {"login": "octocat"}, "pull_request": {"number": 3, "head": {"ref": "agent-task-x"}},
                         "review": {"id": 1, "body": "fix it", "user": {"login": "octocat"}}}).encode()
    assert _route(review, "pull_request_review") == "feedback"
    assert _route(b'{"zen": "hi"}', "ping") == "ignored"


def _comment(body: str, author: str) -> bytes:
    return json.dumps({"action": "created", "repository": {"full_name": "o/dispatch"}, "sender": {"login": author},
                       "issue": {"number": 7}, "comment": {"id": 9, "body": body, "user": {"login": author}}}).encode()


def test_a_personal_access_tokens_owner_is_a_person_the_runners_comments_carry_its_marker() -> None:
    # With a PAT the runner's login is the token owner's: their comments and labels count.
    assert _route(issue_payload(sender="octocat"), bot="octocat") == "queued"
    assert _route(_comment("/agent also the README", "octocat"), "issue_comment", bot="octocat") == "feedback"
    # The runner's own comment is told apart by its marker, whoever the author is.
    own = "<!-- agent-runner:result -->\n/agent looks like a command"
    assert _route(_comment(own, "octocat"), "issue_comment", bot="octocat") == "ignored"
    assert _route(_comment(own, "wendy"), "issue_comment", bot="runner-bot[bot]") == "ignored"
    # A GitHub App's own events are still skipped by sender: no person has a [bot] login.
    assert _route(_comment("/agent x", "runner-bot[bot]"), "issue_comment", bot="runner-bot[bot]") == "ignored"
    assert metric_event("issues") == "issues" and metric_event("x" * 200) == "other"
