"""The emulator's reviews, review comments and reactions, over real HTTP in GitHub's shapes."""

from __future__ import annotations

import requests

from tests.conftest import README_PATCH, TARGET, World, dispatch_body


def api(world: World, method: str, path: str, token: str = "emulator-token", *,
        headers: dict[str, str] | None = None, **kwargs: object) -> requests.Response:
    return requests.request(method, f"{world.emu.base_url}{path}", timeout=10,  # type: ignore[arg-type]
                            headers={"Authorization": f"token {token}", **(headers or {})}, **kwargs)


def test_reviews_review_comments_and_reactions(world: World) -> None:
    world.file_issue(dispatch_body(instruction=f"Patch.\n\n{README_PATCH}"))
    world.run_once()
    [pull] = world.pulls()
    n = pull["number"]
    world.emu.add_user("wendy", "wendy-token")
    world.emu.set_permission(TARGET, "wendy", "write")

    made = api(world, "POST", f"/repos/{TARGET}/pulls/{n}/reviews", "wendy-token",
               json={"event": "REQUEST_CHANGES", "body": "Please rename.",
                     "comments": [{"path": "README.md", "line": 4, "body": "This line."}]})
    assert made.status_code == 200 and made.json()["state"] == "CHANGES_REQUESTED"
    [listed] = api(world, "GET", f"/repos/{TARGET}/pulls/{n}/reviews").json()
    assert listed["id"] == made.json()["id"] and listed["user"]["login"] == "wendy"

    [comment] = api(world, "GET", f"/repos/{TARGET}/pulls/comments", params={"since": "2000-01-01T00:00:00Z"}).json()
    assert (comment["path"], comment["line"], comment["pull_request_review_id"]) == ("README.md", 4, listed["id"])
    assert comment["diff_hunk"].startswith("@@ ") and comment["diff_hunk"].endswith("+Patched by the runner.")
    assert api(world, "GET", f"/repos/{TARGET}/pulls/comments", params={"since": "2999-01-01T00:00:00Z"}).json() == []
    off_diff = api(world, "POST", f"/repos/{TARGET}/pulls/{n}/comments", json={"path": "README.md", "line": 99,
                                                                               "body": "x"})
    assert off_diff.status_code == 422

    first = api(world, "POST", f"/repos/{TARGET}/pulls/comments/{comment['id']}/reactions", json={"content": "eyes"})
    again = api(world, "POST", f"/repos/{TARGET}/pulls/comments/{comment['id']}/reactions", json={"content": "eyes"})
    assert (first.status_code, again.status_code) == (201, 200) and first.json()["id"] == again.json()["id"]
    assert api(world, "POST", f"/repos/{TARGET}/pulls/comments/{comment['id']}/reactions",
               json={"content": "shrug"}).status_code == 422
    etag = api(world, "GET", f"/repos/{TARGET}/pulls/comments").headers["ETag"]
    assert api(world, "GET", f"/repos/{TARGET}/pulls/comments", headers={"If-None-Match": etag}).status_code == 304
