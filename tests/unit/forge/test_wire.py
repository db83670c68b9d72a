"""What GitHub's statuses, headers and JSON mean to us: runner.forge.wire over plain values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runner.errors import (
    BadCredentials,
    ForgeError,
    NotFound,
    PermissionDenied,
    RateLimited,
    Rejected,
)
from runner.forge import wire
from runner.forge.base import ContentEdit, LabelEvent
from tests.samples import load

ACTION = "comment on o/r#1"


@pytest.mark.parametrize(("status", "headers", "kind", "transient", "says"), [
    (401, {}, BadCredentials, False, "Check GITHUB_TOKEN"),
    (403, {}, PermissionDenied, False, "The token may not comment on o/r#1 (403: nope)"),
    (403, {"Retry-After": "30"}, RateLimited, True, "rate-limited"),
    (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1000"}, RateLimited, True, "rate-limited"),
    (429, {}, RateLimited, True, "rate-limited the request to comment on o/r#1"),
    (404, {}, NotFound, False, "found nothing when trying to comment on o/r#1 (404)"),
    (422, {}, Rejected, False, "refused to comment on o/r#1 (422: nope)"),
    (500, {}, ForgeError, True, "failed to comment on o/r#1 (500: nope)"),
    (502, {}, ForgeError, True, "(502: nope)"),
])
def test_each_status_is_one_error_class_with_a_sentence(
        status: int, headers: dict[str, str], kind: type[ForgeError], transient: bool, says: str) -> None:
    error = wire.error_for_status(status, headers, {"message": "nope"}, ACTION, now=900.0)
    assert type(error) is kind
    assert error.transient is transient
    assert says in str(error)


def test_a_422_names_what_github_objected_to() -> None:
    error = wire.error_for_status(422, {}, load("rest_422_pull_exists"), "open a pull request")
    assert isinstance(error, Rejected)
    assert error.detail == "A pull request already exists for octo-org:agent-task-41."
    assert str(error) == ("GitHub refused to open a pull request "
                          "(422: A pull request already exists for octo-org:agent-task-41.).")


def test_a_body_that_is_not_json_still_makes_a_sentence() -> None:
    assert str(wire.error_for_status(503, {}, None, ACTION)) == "GitHub failed to comment on o/r#1 (503: no message)."
    assert str(wire.error_for_status(502, {}, "<html>Bad gateway</html>", ACTION)).endswith(
        "(502: <html>Bad gateway</html>).")


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"retry-after": "30"}, 30.0),
    ({"retry-after": "0"}, 1.0),  # never less than a second
    ({"x-ratelimit-reset": "1060"}, 60.0),  # until the reset, from now=1000
    ({"x-ratelimit-reset": "900"}, 1.0),  # a reset in the past
    ({"retry-after": "soon"}, 60.0),  # unreadable: a minute
    ({}, 60.0),
])
def test_how_long_to_wait(headers: dict[str, str], seconds: float) -> None:
    assert wire.retry_after(headers, now=1000.0) == seconds


def test_the_rate_limited_error_carries_the_wait() -> None:
    error = wire.error_for_status(403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1090"}, {}, ACTION,
                                  now=1000.0)
    assert isinstance(error, RateLimited) and error.retry_after == 90.0


@pytest.mark.parametrize(("link", "expected"), [
    ('<https://api.github.com/repositories/1/issues?page=2>; rel="next", '
     '<https://api.github.com/repositories/1/issues?page=5>; rel="last"',
     "https://api.github.com/repositories/1/issues?page=2"),
    ('<https://api.github.com/repositories/1/issues?page=4>; rel="prev", '
     '<https://api.github.com/repositories/1/issues?page=1>; rel="first"', None),
    ("", None),
])
def test_the_next_page_comes_from_the_link_header(link: str, expected: str | None) -> None:
    assert wire.next_link({"Link": link}) == expected
    assert wire.next_link({}) is None


def test_a_classic_token_lists_its_scopes_and_github_its_clock() -> None:
    info = wire.token_info({"X-OAuth-Scopes": "repo, workflow", "Date": "Mon, 07 Dec 2026 22:30:00 GMT"},
                           {"login": "octocat"})
    assert info.login == "octocat"
    assert info.scopes == ("repo", "workflow")
    assert info.server_time == datetime(2026, 12, 7, 22, 30, tzinfo=UTC)


def test_a_fine_grained_token_has_no_scopes_and_a_bad_date_no_clock() -> None:
    info = wire.token_info({"date": "yesterday"}, {"login": "octocat"})
    assert info.scopes is None and info.server_time is None
    assert wire.token_info(None, {}).login == ""


def test_listed_issues_keep_what_we_read_and_mark_pull_requests() -> None:
    issue, pull = (wire.issue_from_json("octo-org/service", item) for item in load("rest_issues_list"))
    assert issue.number == 41 and issue.author == "monalisa"
    assert issue.labels == frozenset({"agent-task", "bug"})
    assert issue.body.startswith("```yaml\nrepo: octo-org/service")
    assert issue.comment_count == 2 and not issue.is_pull_request
    assert issue.html_url == "https://github.com/octo-org/service/issues/41"
    assert pull.is_pull_request and pull.author == "agent-runner[bot]"


def test_a_webhook_issue_may_lack_most_fields() -> None:
    issue = wire.issue_from_json("o/r", {"number": 7, "body": None, "user": None, "pull_request": None})
    assert (issue.title, issue.body, issue.author, issue.state) == ("", "", "", "open")
    assert issue.comment_count is None and not issue.is_pull_request


def test_a_review_comment_is_a_feedback_item_on_its_pull_request() -> None:
    item = wire.feedback_item("octo-org/service", "review_comment", load("rest_review_comments")[0])
    assert (item.kind, item.id, item.number) == ("review_comment", 1874000123, 42)
    assert item.author == "monalisa" and item.body.startswith("/agent ")
    assert (item.path, item.line) == ("service/upload.py", 14)
    assert item.diff_hunk and item.diff_hunk.startswith("@@ -12,7 +12,9 @@")
    assert item.updated_at == "2026-12-01T17:21:40Z"


def test_an_issue_comment_takes_its_number_from_the_issue_url() -> None:
    row = {"id": 5, "issue_url": "https://api.github.com/repos/o/r/issues/12", "user": {"login": "a"},
           "body": "/agent go", "created_at": "2026-01-01T00:00:00Z", "line": "not a number"}
    item = wire.feedback_item("o/r", "issue_comment", row)
    assert (item.number, item.updated_at, item.line) == (12, "2026-01-01T00:00:00Z", None)
    assert wire.feedback_item("o/r", "issue_comment", {"id": 6}).number == 0


def test_repository_access_lists_the_granted_permissions() -> None:
    access = wire.access_from_json({"full_name": "o/r", "private": True,
                                    "permissions": {"admin": False, "push": True, "pull": True}})
    assert access.permissions == frozenset({"push", "pull"}) and access.private
    assert wire.access_from_json({}).permissions == frozenset()


def test_an_issue_trail_drops_the_original_text_and_names_bots_as_rest_does() -> None:
    trail = wire.trail_from_json(load("graphql_issue_trail"))
    assert trail is not None and trail.complete
    assert trail.author == "monalisa"
    assert trail.edits == (ContentEdit(editor="hubot", at="2026-11-30T10:02:13Z"),)
    assert trail.label_events == (
        LabelEvent(action="labeled", label="agent-task", actor="monalisa", at="2026-11-30T09:15:00Z"),
        LabelEvent(action="unlabeled", label="agent-task", actor="agent-runner[bot]", at="2026-11-30T11:40:31Z"),
    )


def test_a_partial_edit_history_is_marked_incomplete_and_kept_whole() -> None:
    answer = load("graphql_issue_trail")
    answer["data"]["repository"]["issue"]["userContentEdits"]["totalCount"] = 150
    trail = wire.trail_from_json(answer)
    assert trail is not None and not trail.complete
    assert len(trail.edits) == 2  # the original text is not dropped: it may not be on this page


def test_no_issue_is_no_trail() -> None:
    assert wire.trail_from_json({"data": {"repository": {"issue": None}}}) is None
    assert wire.trail_from_json({"data": None, "errors": [{"message": "Could not resolve"}]}) is None


def test_a_deleted_account_is_no_actor() -> None:
    assert wire.actor_login(None) is None
    assert wire.actor_login({"__typename": "Bot", "login": "dependabot[bot]"}) == "dependabot[bot]"


def test_the_pacer_bucket_hides_the_token_and_tells_githubs_apart() -> None:
    bucket = wire.pacer_bucket("ghp_secret", "https://api.github.com")
    assert "ghp_secret" not in bucket and len(bucket) == 20
    assert bucket != wire.pacer_bucket("ghp_secret", "https://ghe.example/api/v3")
    assert bucket == wire.pacer_bucket("ghp_secret", "https://api.github.com")
