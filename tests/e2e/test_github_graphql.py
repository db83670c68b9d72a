"""The emulator's GraphQL endpoint answers like GitHub's: the shapes, errors and edit history the trust checks read."""

from __future__ import annotations

from typing import Any

import httpx
from github_emulator import GitHubEmulator

from runner.forge.github import GitHubForge
from runner.forge.wire import TRAIL_QUERY
from tests.conftest import DISPATCH, TOKEN


def post(emu: GitHubEmulator, query: str, variables: dict[str, Any] | None = None, token: str = TOKEN) -> httpx.Response:
    return httpx.post(f"{emu.base_url}/graphql", json={"query": query, "variables": variables or {}},
                      headers={"Authorization": f"bearer {token}"})


def test_edit_history_and_label_events_in_githubs_shapes(emulator: GitHubEmulator) -> None:
    emulator.create_repo(DISPATCH)
    emulator.add_user("reader", "reader-token")
    emulator.set_permission(DISPATCH, "reader", "read")
    number = emulator.create_issue(DISPATCH, "t", "first", as_user="reader")
    emulator.add_label(DISPATCH, number, "copilot-agent")
    emulator.update_issue(DISPATCH, number, body="second", as_user="reader")

    reply = post(emulator, TRAIL_QUERY, {"owner": "octocat", "name": "dispatch", "number": number})

    assert reply.status_code == 200 and "errors" not in reply.json()
    issue = reply.json()["data"]["repository"]["issue"]
    assert issue["body"] == "second" and issue["includesCreatedEdit"] is True
    assert issue["author"] == {"__typename": "User", "login": "reader"}
    edits = issue["userContentEdits"]
    assert edits["totalCount"] == 2  # the original text and the edit, newest first
    assert [e["editor"]["login"] for e in edits["nodes"]] == ["reader", "reader"]
    assert issue["lastEditedAt"] == edits["nodes"][0]["editedAt"]
    [labeled] = issue["timelineItems"]["nodes"]
    assert labeled["__typename"] == "LabeledEvent" and labeled["label"] == {"name": "copilot-agent"}

    trail = GitHubForge(TOKEN, base_url=emulator.base_url, throttle=False).issue_trail(DISPATCH, number)
    assert [(e.editor, e.at) for e in trail.edits] == [("reader", issue["lastEditedAt"])]  # the original dropped


def test_errors_follow_githubs_format(emulator: GitHubEmulator) -> None:
    emulator.create_repo(DISPATCH)
    missing = post(emulator, '{ repository(owner: "octocat", name: "nope") { nameWithOwner } }').json()
    assert missing["data"] == {"repository": None}
    assert missing["errors"][0]["type"] == "NOT_FOUND" and missing["errors"][0]["path"] == ["repository"]
    unpaged = post(emulator, '{ repository(owner: "octocat", name: "dispatch") { issue(number: 1) { id } } }').json()
    assert unpaged["errors"][0]["type"] == "NOT_FOUND"
    number = emulator.create_issue(DISPATCH, "t", "b")
    no_bounds = post(emulator, 'query($n: Int!) { repository(owner: "octocat", name: "dispatch") '
                               "{ issue(number: $n) { userContentEdits { totalCount } } } }", {"n": number}).json()
    assert no_bounds["errors"][0]["type"] == "MISSING_PAGINATION_BOUNDARIES"
    invalid = post(emulator, "{ nope }").json()
    assert invalid["errors"] and "data" not in invalid
    assert post(emulator, "{ viewer { login } }", token="wrong").status_code == 401
