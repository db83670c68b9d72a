"""How the PyGithub adapter maps GitHub's error and retry shapes (narrow, with `responses`)."""

from __future__ import annotations

import pytest
import responses

from runner.errors import ForgeError, NotFound, PermissionDenied, RateLimited
from runner.forge.github import GitHubForge

API = "http://127.0.0.1:9"
ISSUE = {"number": 1, "title": "t", "body": "b", "labels": [{"name": "copilot-agent"}], "state": "open",
         "user": {"login": "octocat"}, "updated_at": "2026-01-01T00:00:00Z", "html_url": f"{API}/o/r/issues/1",
         "url": f"{API}/repos/o/r/issues/1"}
PULL = {"number": 2, "html_url": f"{API}/o/r/pull/2", "state": "open", "merged": False, "merged_at": None, "title": "t", "body": "b",
        "draft": False, "head": {"ref": "agent-task-x", "sha": "1" * 40}, "base": {"ref": "main", "sha": "2" * 40},
        "url": f"{API}/repos/o/r/pulls/2"}


def forge(retries: int = 2) -> GitHubForge:
    return GitHubForge("tok", base_url=API, max_retries=retries, throttle=False)


@responses.activate
def test_not_found_is_permanent_and_says_what_was_tried() -> None:
    responses.get(f"{API}/repos/o/r/issues/1", status=404, json={"message": "Not Found"})
    with pytest.raises(NotFound) as info:
        forge().get_issue("o/r", 1)
    assert "read issue o/r#1" in str(info.value) and not info.value.transient


@responses.activate
def test_bad_token_names_the_setting() -> None:
    responses.get(f"{API}/repos/o/r/issues/1", status=401, json={"message": "Bad credentials"})
    with pytest.raises(PermissionDenied, match="GITHUB_TOKEN"):
        forge().get_issue("o/r", 1)


@responses.activate
def test_server_errors_are_retried_then_succeed() -> None:
    url = f"{API}/repos/o/r/issues/1"
    responses.get(url, status=502, json={"message": "Bad gateway"})
    responses.get(url, json=ISSUE)
    assert forge().get_issue("o/r", 1).number == 1
    assert len(responses.calls) == 2


@responses.activate
def test_retry_after_is_honoured() -> None:
    url = f"{API}/repos/o/r/issues/1"
    responses.get(url, status=429, json={"message": "slow down"}, headers={"Retry-After": "1"})
    responses.get(url, json=ISSUE)
    assert forge().get_issue("o/r", 1).title == "t"
    assert [c.response.status_code for c in responses.calls] == [429, 200]


@responses.activate
def test_persistent_5xx_becomes_a_transient_forge_error() -> None:
    responses.get(f"{API}/repos/o/r/issues/1", status=503, json={"message": "down"})
    with pytest.raises(ForgeError) as info:
        forge(retries=1).get_issue("o/r", 1)
    assert info.value.transient


@responses.activate
def test_exhausted_rate_limit_is_rate_limited_with_a_wait() -> None:
    responses.get(f"{API}/repos/o/r/issues/1", status=429, json={"message": "limit"},
                  headers={"Retry-After": "120"})
    with pytest.raises(RateLimited) as info:
        forge(retries=0).get_issue("o/r", 1)
    assert info.value.retry_after == 120 and info.value.transient


@responses.activate
def test_duplicate_pull_request_422_returns_the_existing_one() -> None:
    responses.post(f"{API}/repos/o/r/pulls", status=422, json={
        "message": "Validation Failed",
        "errors": [{"resource": "PullRequest", "code": "custom",
                    "message": "A pull request already exists for o:agent-task-x."}]})
    responses.get(f"{API}/repos/o/r/pulls", json=[PULL])
    pull = forge().create_pull("o/r", head="agent-task-x", base="main", title="t", body="b")
    assert pull.number == 2 and pull.head == "agent-task-x"
    assert "state=all" in responses.calls[1].request.url


@responses.activate
def test_polling_reuses_the_answer_on_304() -> None:
    url = f"{API}/repos/o/d/issues"
    pr_item = {**ISSUE, "number": 3, "pull_request": {"url": "x"}}
    responses.get(url, json=[ISSUE, pr_item], headers={"ETag": 'W/"abc"'})
    responses.get(url, status=304)
    f = forge()
    first = f.list_dispatch_issues("o/d", "copilot-agent")
    second = f.list_dispatch_issues("o/d", "copilot-agent")
    assert [i.number for i in first] == [i.number for i in second] == [1]  # the PR is skipped
    assert responses.calls[1].request.headers["If-None-Match"] == 'W/"abc"'


def test_an_unreachable_api_names_the_url_and_the_setting() -> None:
    """Port 9 on loopback refuses the connection: a real socket error, not a mocked one."""
    with pytest.raises(ForgeError) as info:
        GitHubForge("tok-secret-1234", base_url=API, max_retries=0, throttle=False).get_issue("o/r", 1)
    message = str(info.value)
    assert f"{API}/repos/o/r/issues/1" in message and "GITHUB_API_URL" in message
    assert "tok-secret-1234" not in message and info.value.transient


@responses.activate
def test_a_401_is_bad_credentials() -> None:
    from runner.errors import BadCredentials

    responses.get(f"{API}/repos/o/r/issues/1", status=401, json={"message": "Bad credentials"})
    with pytest.raises(BadCredentials, match="GITHUB_TOKEN"):
        forge().get_issue("o/r", 1)


def test_no_http_retry_once_githubs_breaker_is_open() -> None:
    """A request that began before GitHub went down stops retrying in place when the breaker opens:
    from then on only the breaker's probes reach GitHub (issue #29)."""
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    from runner.breakers import Breaker
    from runner.forge.github.session import PacedRetry

    breaker = Breaker("github-api:test", service="GitHub", threshold=1)
    retry = PacedRetry(total=5, status_forcelist=[503], allowed_methods=["GET"], backoff_factor=0.5)
    retry.breaker = breaker
    assert retry.new().is_retry("GET", 503)  # closed: urllib3 retries a 503 as usual
    breaker.failure()  # GitHub is down
    assert not retry.new().is_retry("GET", 503)
    refused = NewConnectionError(None, "refused")  # type: ignore[arg-type]
    with pytest.raises(MaxRetryError):
        retry.new().increment("GET", "/repos/o/r/issues/1", error=refused)
    with pytest.raises(MaxRetryError):  # it was already waiting to retry when the breaker opened
        retry.new(total=1).sleep()
