"""GitHub's secondary limits, enforced per token and per App installation, answered as GitHub answers them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from github_emulator import ADMIN_TOKEN, GitHubEmulator, LimitConfig

REPO = "octocat/hello"
ALICE_TOKEN = "alice-token"


@pytest.fixture()
def emu(tmp_path: Path) -> Iterator[GitHubEmulator]:
    with GitHubEmulator(tmp_path / "state") as emulator:
        emulator.create_repo(REPO, files={"README.md": "# hello\n"})
        emulator.add_user("alice", ALICE_TOKEN)
        emulator.set_permission(REPO, "alice", "write")
        yield emulator


def call(emu: GitHubEmulator, method: str, path: str, token: str = ADMIN_TOKEN, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"token {token}", **kwargs.pop("headers", {})}
    return requests.request(method, emu.base_url + path, headers=headers, timeout=10, **kwargs)


def comment(emu: GitHubEmulator, number: int, token: str = ADMIN_TOKEN) -> requests.Response:
    return call(emu, "POST", f"/repos/{REPO}/issues/{number}/comments", token, json={"body": "hi"})


def test_the_81st_content_creating_request_in_a_minute_is_refused_as_github_refuses_it(emu: GitHubEmulator) -> None:
    number = emu.create_issue(REPO, "t", "b")
    answers = [comment(emu, number).status_code for _ in range(80)]
    refused = comment(emu, number)

    assert answers == [201] * 80
    assert refused.status_code == 403
    body = refused.json()
    assert body["message"].startswith("You have exceeded a secondary rate limit.")
    assert body["documentation_url"].endswith("#about-secondary-rate-limits")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Reads still go, and another token has a budget of its own.
    assert call(emu, "GET", f"/repos/{REPO}/issues/{number}").status_code == 200
    assert comment(emu, number, ALICE_TOKEN).status_code == 201
    # The request log and the control route report the hit.
    [hit] = emu.limit_hits
    assert (hit.limit, hit.bucket, hit.method, hit.status) == ("content_per_minute", "user:octocat", "POST", 403)
    assert [r.limit for r in emu.request_log if r.limit] == ["content_per_minute"]
    report = call(emu, "GET", "/_emulator/limits").json()
    assert report["enabled"] and [h["limit"] for h in report["hits"]] == ["content_per_minute"]
    assert call(emu, "DELETE", "/_emulator/limits").status_code == 204
    assert emu.limit_hits == []


def test_compressed_windows_cover_an_hour_in_seconds(tmp_path: Path) -> None:
    """time_scale=360: a minute lasts 1/6 s and an hour 10 s; 500 writes, then the hour is spent."""
    with GitHubEmulator(tmp_path / "state", time_scale=360) as emu:
        emu.create_repo(REPO)
        number = emu.create_issue(REPO, "t", "b")
        statuses = []
        for _ in range(501):
            statuses.append(comment(emu, number).status_code)
            if statuses[-1] == 403:
                break
            time.sleep(1 / 360 * 60 / 80)  # within the per-minute pace, so the hour decides
        hits = [h.limit for h in emu.limit_hits]
        assert "content_per_hour" in hits, hits
        assert statuses.count(201) <= 500


def test_a_graphql_request_counts_once_per_mutation(tmp_path: Path) -> None:
    with GitHubEmulator(tmp_path / "state", limits=LimitConfig(content_per_minute=3)) as emu:
        mutation = "mutation { a: addComment(input: {}) { x } b: addComment(input: {}) { x } }"
        first = call(emu, "POST", "/graphql", json={"query": mutation})
        second = call(emu, "POST", "/graphql", json={"query": mutation})
        query = call(emu, "POST", "/graphql", json={"query": "query { viewer { login } }"})
    assert first.status_code == 200  # counted (2 of 3), then refused by the schema, which has no mutations
    assert second.status_code == 403 and "secondary rate limit" in second.json()["message"]
    assert query.status_code == 200  # a query creates no content
    assert [h.limit for h in emu.limit_hits] == ["content_per_minute"]


def test_rest_points_a_minute(tmp_path: Path) -> None:
    with GitHubEmulator(tmp_path / "state", limits=LimitConfig(rest_points_per_minute=12)) as emu:
        emu.create_repo(REPO)
        number = emu.create_issue(REPO, "t", "b")
        assert comment(emu, number).status_code == 201  # 5 points
        assert comment(emu, number).status_code == 201  # 10
        assert call(emu, "GET", f"/repos/{REPO}").status_code == 200  # 11
        assert call(emu, "GET", f"/repos/{REPO}").status_code == 200  # 12
        refused = call(emu, "GET", f"/repos/{REPO}")
    assert refused.status_code == 403 and int(refused.headers["Retry-After"]) >= 1
    assert [h.limit for h in emu.limit_hits] == ["rest_points_per_minute"]


def test_no_more_than_the_concurrent_requests(tmp_path: Path) -> None:
    with GitHubEmulator(tmp_path / "state", limits=LimitConfig(concurrent=2)) as emu:
        emu.create_repo(REPO)
        emu.faults.inject(path_regex=r"^/repos/octocat/hello$", delay=1.0, count=2)
        slow = [threading.Thread(target=call, args=(emu, "GET", f"/repos/{REPO}")) for _ in range(2)]
        for thread in slow:
            thread.start()
        time.sleep(0.3)
        refused = call(emu, "GET", "/user")
        for thread in slow:
            thread.join()
        after = call(emu, "GET", "/user")
    assert refused.status_code == 403 and after.status_code == 200
    assert [h.limit for h in emu.limit_hits] == ["concurrent"]


def test_each_app_installation_has_a_budget_of_its_own(tmp_path: Path) -> None:
    with GitHubEmulator(tmp_path / "state", limits=LimitConfig(content_per_minute=2)) as emu:
        for owner in ("one", "two"):
            emu.add_user(owner)
            emu.create_repo(f"{owner}/dispatch")
        app = emu.create_app("fleet-bot")
        tokens = {}
        for owner in ("one", "two"):
            installation = emu.install_app(app.id, owner)
            now = int(time.time())
            signed = jwt.encode({"iat": now - 30, "exp": now + 540, "iss": str(app.id)}, app.private_key_pem,
                                algorithm="RS256")
            reply = requests.post(f"{emu.base_url}/app/installations/{installation}/access_tokens",
                                  headers={"Authorization": f"Bearer {signed}"}, timeout=10)
            tokens[owner] = reply.json()["token"]
        numbers = {owner: emu.create_issue(f"{owner}/dispatch", "t", "b") for owner in ("one", "two")}

        def post(owner: str) -> int:
            return call(emu, "POST", f"/repos/{owner}/dispatch/issues/{numbers[owner]}/comments", tokens[owner],
                        json={"body": "hi"}).status_code

        assert [post("one"), post("one"), post("one")] == [201, 201, 403]
        assert [post("two"), post("two")] == [201, 201]
        [hit] = emu.limit_hits
    assert hit.bucket.startswith("installation:")


def test_limits_can_be_turned_off(tmp_path: Path) -> None:
    with GitHubEmulator(tmp_path / "state", limits=False) as emu:
        emu.create_repo(REPO)
        number = emu.create_issue(REPO, "t", "b")
        assert all(comment(emu, number).status_code == 201 for _ in range(85))
        assert call(emu, "GET", "/_emulator/limits").json() == {"enabled": False, "config": None, "hits": []}
