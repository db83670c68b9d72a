"""Every REST operation the emulator serves answers what GitHub's published description allows.

Driven through real HTTP with ``httpx`` (not PyGithub, whose lenient models hide a
missing field), one case per operation and status. The coverage test at the end
fails when a route is added to the emulator without a case here.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from github_emulator import ADMIN_TOKEN, GitHubEmulator, LimitConfig
from github_emulator.app import CONTROL_PREFIX, build_router
from github_emulator.emulator import EmulatedApp

from github_contract.cases_ci import ci_cases
from github_contract.schema import operation, operations, validate_exchange
from github_contract.vendor import path_shape

REPO = "octocat/hello"
ALICE, ALICE_TOKEN = "alice", "alice-token"  # write
BOB, BOB_TOKEN = "bob", "bob-token"  # read
EVE, EVE_TOKEN = "eve", "eve-token"  # none


class World:
    """One seeded emulator and an independent HTTP client for the cases to share."""

    app: EmulatedApp
    installation: int

    def __init__(self, emu: GitHubEmulator, pull: int, merged: int) -> None:
        self.emu, self.pull, self.merged = emu, pull, merged
        self.client = httpx.Client(base_url=emu.base_url, timeout=10)
        self._names = itertools.count(1)

    def call(self, method: str, path: str, token: str | None = ADMIN_TOKEN, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"token {token}"
        return self.client.request(method, path.replace("{repo}", REPO), headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.call("GET", path, **kwargs)

    def conditional(self, path: str) -> httpx.Response:
        """Ask twice, the second time with the first answer's ETag: GitHub says 304."""
        etag = self.get(path).headers["ETag"]
        return self.get(path, headers={"If-None-Match": etag})

    def jwt(self) -> str:
        """A JWT for the app, as an app's own client signs it (RS256, ten minutes at most)."""
        now = int(time.time())
        return jwt.encode({"iat": now - 30, "exp": now + 540, "iss": str(self.app.id)},
                          self.app.private_key_pem, algorithm="RS256")

    def as_app(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.jwt()}"}
        return self.call(method, path.replace("{installation}", str(self.installation)), token=None,
                         headers=headers, **kwargs)

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{next(self._names)}"

    def issue(self, labels: tuple[str, ...] = ("bug",), *, by: str = "octocat") -> int:
        """A fresh issue with one comment, so a case that changes it changes nothing else."""
        number = self.emu.create_issue(REPO, self.unique("issue"), "Body text", list(labels), as_user=by)
        self.emu.add_comment(REPO, number, "First!")
        return number

    def comment(self) -> int:
        return self.emu.add_comment(REPO, self.issue(), "A comment")

    def pushed_branch(self) -> str:
        """A freshly pushed branch of its own."""
        branch = self.unique("gone")
        _push(self.emu, branch)
        return branch

    def delete_branch(self, branch: str) -> httpx.Response:
        return self.call("DELETE", f"/repos/{{repo}}/git/refs/heads/{branch}")

    def open_pull(self) -> int:
        """An open pull request of its own, from a freshly pushed branch."""
        branch = self.unique("feature")
        _push(self.emu, branch)
        reply = self.call("POST", "/repos/{repo}/pulls",
                          json={"title": branch, "head": branch, "base": "main", "body": None})
        assert reply.status_code == 201, reply.text
        return int(reply.json()["number"])


def _git(*args: str, cwd: Path | None = None) -> None:
    env = {
        "PATH": os.environ["PATH"], "HOME": str(cwd or Path.cwd()), "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Tester", "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "Tester", "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Bearer {ADMIN_TOKEN}",
    }
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, timeout=30)


_CLONES: dict[str, Path] = {}


def _push(emu: GitHubEmulator, branch: str) -> None:
    clone = _CLONES[emu.base_url]
    _git("checkout", "-q", "-B", branch, "origin/main", cwd=clone)
    (clone / f"{branch}.txt").write_text(f"{branch}\n")
    _git("add", ".", cwd=clone)
    _git("commit", "-qm", f"Add {branch}", cwd=clone)
    # Seen failing once in a few hundred runs at load ~10 (exit 1, cause not yet found); the
    # push is set-up for the case, not what it checks, so it gets one more try with its stderr kept.
    try:
        _git("push", "-q", "origin", branch, cwd=clone)
    except subprocess.CalledProcessError as exc:
        print("first push failed:", exc.stderr)
        time.sleep(1)
        _git("push", "-q", "origin", branch, cwd=clone)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("contract")
    with GitHubEmulator(root / "state") as emu:
        emu.create_repo(REPO, files={"README.md": "# hello\n", "src/app.py": "print('hi')\n"})
        for login, token, role in ((ALICE, ALICE_TOKEN, "write"), (BOB, BOB_TOKEN, "read"),
                                   (EVE, EVE_TOKEN, "none")):
            emu.add_user(login, token)
            emu.set_permission(REPO, login, role)  # type: ignore[arg-type]
        _git("clone", "-q", emu.git_url(REPO), str(root / "clone"))
        _CLONES[emu.base_url] = root / "clone"
        first = World(emu, 0, 0)
        pull, merged = first.open_pull(), first.open_pull()
        emu.merge_pull(REPO, merged)
        emu.add_label(REPO, pull, "copilot-agent")
        world = World(emu, pull, merged)
        world._names = first._names  # one sequence of branch names: "feature-1" is taken already
        world.app = emu.create_app("contract-bot")
        world.installation = emu.install_app(world.app.id, "octocat", [REPO])
        emu.create_repo("alice/elsewhere")
        yield world
        world.client.close()
        first.client.close()


@dataclass(frozen=True)
class Case:
    operation: str
    status: int
    call: Callable[[World], httpx.Response]
    what: str = ""

    @property
    def id(self) -> str:
        return f"{self.operation}-{self.status}" + (f"-{self.what}" if self.what else "")


def _pull(w: World, suffix: str = "", **kwargs: Any) -> httpx.Response:
    return w.get(f"/repos/{{repo}}/pulls/{w.pull}{suffix}", **kwargs)


def _review(w: World, **kwargs: Any) -> tuple[int, int]:
    """A fresh PR with a changes-requested review (and one inline comment): (pull, review id)."""
    pull = w.open_pull()
    name = w.get(f"/repos/{{repo}}/pulls/{pull}").json()["head"]["ref"]
    reply = w.call("POST", f"/repos/{{repo}}/pulls/{pull}/reviews", ALICE_TOKEN, json={
        "event": "REQUEST_CHANGES", "body": "Please rename.",
        "comments": [{"path": f"{name}.txt", "line": 1, "body": "This line."}], **kwargs})
    assert reply.status_code == 200, reply.text
    return pull, int(reply.json()["id"])


def _review_comment(w: World) -> int:
    pull, _ = _review(w)
    return int(w.get(f"/repos/{{repo}}/pulls/{pull}/comments").json()[0]["id"])


def _comment_on_diff(w: World, line: int) -> httpx.Response:
    pull = w.open_pull()
    name = w.get(f"/repos/{{repo}}/pulls/{pull}").json()["head"]["ref"]
    return w.call("POST", f"/repos/{{repo}}/pulls/{pull}/comments", ALICE_TOKEN,
                  json={"path": f"{name}.txt", "line": line, "body": "Why?", "commit_id": "x"})


CASES: tuple[Case, ...] = (
    # users, rate limit, repositories
    Case("users/get-authenticated", 200, lambda w: w.get("/user")),
    Case("users/get-authenticated", 304, lambda w: w.conditional("/user")),
    Case("users/get-authenticated", 401, lambda w: w.get("/user", token=None)),
    Case("users/get-authenticated", 401, lambda w: w.get("/user", token="wrong"), "bad-token"),
    Case("users/get-by-username", 200, lambda w: w.get(f"/users/{ALICE}")),
    Case("users/get-by-username", 404, lambda w: w.get("/users/nobody-here")),
    Case("rate-limit/get", 200, lambda w: w.get("/rate_limit")),
    Case("repos/create-for-authenticated-user", 201,
         lambda w: w.call("POST", "/user/repos", json={"name": w.unique("new"), "auto_init": True})),
    Case("repos/create-for-authenticated-user", 422,
         lambda w: w.call("POST", "/user/repos", json={"name": "hello"})),
    Case("repos/create-for-authenticated-user", 401,
         lambda w: w.call("POST", "/user/repos", token=None, json={"name": "x"})),
    Case("repos/get", 200, lambda w: w.get("/repos/{repo}")),
    Case("repos/get", 200, lambda w: w.get("/repos/{repo}", token=BOB_TOKEN), "read-only"),
    Case("repos/get", 404, lambda w: w.get("/repos/{repo}", token=EVE_TOKEN)),
    Case("repos/get-collaborator-permission-level", 200,
         lambda w: w.get(f"/repos/{{repo}}/collaborators/{ALICE}/permission")),
    Case("repos/get-collaborator-permission-level", 404,
         lambda w: w.get("/repos/{repo}/collaborators/nobody/permission")),
    Case("repos/add-collaborator", 204,
         lambda w: w.call("PUT", f"/repos/{{repo}}/collaborators/{BOB}", json={"permission": "read"})),
    Case("repos/add-collaborator", 422,
         lambda w: w.call("PUT", f"/repos/{{repo}}/collaborators/{BOB}", json={"permission": "owner"})),
    Case("repos/add-collaborator", 403,
         lambda w: w.call("PUT", f"/repos/{{repo}}/collaborators/{EVE}", token=ALICE_TOKEN, json={})),
    # GitHub Apps (a JWT authenticates as the app)
    Case("apps/get-authenticated", 200, lambda w: w.as_app("GET", "/app")),
    Case("apps/list-installations", 200, lambda w: w.as_app("GET", "/app/installations")),
    Case("apps/get-installation", 200, lambda w: w.as_app("GET", "/app/installations/{installation}")),
    Case("apps/get-installation", 404, lambda w: w.as_app("GET", "/app/installations/999999")),
    Case("apps/create-installation-access-token", 201,
         lambda w: w.as_app("POST", "/app/installations/{installation}/access_tokens")),
    Case("apps/create-installation-access-token", 404,
         lambda w: w.as_app("POST", "/app/installations/999999/access_tokens")),
    Case("apps/create-installation-access-token", 401, lambda w: w.call(
        "POST", "/app/installations/1/access_tokens", token=None,
        headers={"Authorization": "Bearer eyJhbGciOiJub25lIn0.e30.x"})),
    Case("apps/get-repo-installation", 200, lambda w: w.as_app("GET", "/repos/{repo}/installation")),
    Case("apps/get-repo-installation", 404, lambda w: w.as_app("GET", "/repos/alice/elsewhere/installation")),
    # labels
    Case("issues/list-labels-for-repo", 200, lambda w: w.get("/repos/{repo}/labels")),
    Case("issues/get-label", 200, lambda w: w.get("/repos/{repo}/labels/copilot-agent")),
    Case("issues/get-label", 404, lambda w: w.get("/repos/{repo}/labels/no-such-label")),
    Case("issues/create-label", 201, lambda w: w.call(
        "POST", "/repos/{repo}/labels", json={"name": w.unique("kind"), "color": "f29513",
                                               "description": "Something"})),
    Case("issues/create-label", 422,
         lambda w: w.call("POST", "/repos/{repo}/labels", json={"name": "copilot-agent"})),
    Case("issues/create-label", 404,
         lambda w: w.call("POST", "/repos/{repo}/labels", token=EVE_TOKEN, json={"name": "x"})),
    # branches, commits, refs, contents
    Case("repos/list-branches", 200, lambda w: w.get("/repos/{repo}/branches")),
    Case("repos/get-branch", 200, lambda w: w.get("/repos/{repo}/branches/main")),
    Case("repos/get-branch", 404, lambda w: w.get("/repos/{repo}/branches/no-such-branch")),
    Case("repos/get-commit", 200, lambda w: w.get("/repos/{repo}/commits/main")),
    Case("repos/get-commit", 422, lambda w: w.get("/repos/{repo}/commits/deadbeef")),
    Case("repos/get-commit", 404, lambda w: w.get("/repos/{repo}/commits/main", token=EVE_TOKEN)),
    Case("git/get-ref", 200, lambda w: w.get("/repos/{repo}/git/ref/heads/main")),
    Case("git/get-ref", 200, lambda w: w.get("/repos/{repo}/git/refs/heads/main"), "refs-alias"),
    Case("git/get-ref", 404, lambda w: w.get("/repos/{repo}/git/ref/heads/no-such-branch")),
    Case("git/delete-ref", 204, lambda w: w.delete_branch(w.pushed_branch())),
    Case("git/delete-ref", 422, lambda w: w.delete_branch("no-such-branch")),
    Case("repos/list-for-authenticated-user", 200, lambda w: w.get("/user/repos")),
    Case("repos/get-content", 200, lambda w: w.get("/repos/{repo}/contents/README.md"), "file"),
    Case("repos/get-content", 200, lambda w: w.get("/repos/{repo}/contents/src?ref=main"), "dir"),
    Case("repos/get-content", 200, lambda w: w.get("/repos/{repo}/contents"), "root"),
    Case("repos/get-content", 404, lambda w: w.get("/repos/{repo}/contents/missing.txt")),
    # issues
    Case("issues/list-for-repo", 200, lambda w: w.get("/repos/{repo}/issues?state=all&per_page=5")),
    Case("issues/list-for-repo", 200,
         lambda w: w.get("/repos/{repo}/issues?labels=copilot-agent"), "pull-request-rows"),
    Case("issues/list-for-repo", 404, lambda w: w.get("/repos/{repo}/issues", token=EVE_TOKEN)),
    Case("issues/list-for-repo", 422, lambda w: w.get("/repos/{repo}/issues?since=yesterday")),
    Case("issues/create", 201, lambda w: w.call(
        "POST", "/repos/{repo}/issues", json={"title": "New", "body": "Text", "labels": ["bug"]})),
    Case("issues/create", 201, lambda w: w.call(
        "POST", "/repos/{repo}/issues", token=BOB_TOKEN, json={"title": "From a reader"}), "no-body"),
    Case("issues/create", 422, lambda w: w.call("POST", "/repos/{repo}/issues", json={"body": "x"})),
    Case("issues/create", 404,
         lambda w: w.call("POST", "/repos/{repo}/issues", token=EVE_TOKEN, json={"title": "x"})),
    Case("issues/get", 200, lambda w: w.get(f"/repos/{{repo}}/issues/{w.issue()}")),
    Case("issues/get", 200, lambda w: w.get(f"/repos/{{repo}}/issues/{w.merged}"), "merged-pull"),
    Case("issues/get", 304, lambda w: w.conditional(f"/repos/{{repo}}/issues/{w.issue()}")),
    Case("issues/get", 404, lambda w: w.get("/repos/{repo}/issues/9999")),
    Case("issues/update", 200, lambda w: w.call(
        "PATCH", f"/repos/{{repo}}/issues/{w.issue()}",
        json={"state": "closed", "state_reason": "completed", "labels": ["processed"]})),
    Case("issues/update", 403, lambda w: w.call(
        "PATCH", f"/repos/{{repo}}/issues/{w.issue()}", token=BOB_TOKEN, json={"title": "Mine now"})),
    Case("issues/update", 422,
         lambda w: w.call("PATCH", f"/repos/{{repo}}/issues/{w.issue()}", json={"title": 5})),
    Case("issues/update", 422, lambda w: w.call(
        "PATCH", f"/repos/{{repo}}/issues/{w.issue()}", json={"state": "closed", "state_reason": "done"}),
         "state-reason"),
    Case("issues/update", 404, lambda w: w.call("PATCH", "/repos/{repo}/issues/9999", json={})),
    # comments
    Case("issues/list-comments", 200, lambda w: w.get(f"/repos/{{repo}}/issues/{w.issue()}/comments")),
    Case("issues/list-comments", 404, lambda w: w.get("/repos/{repo}/issues/9999/comments")),
    Case("issues/create-comment", 201, lambda w: w.call(
        "POST", f"/repos/{{repo}}/issues/{w.issue()}/comments", json={"body": "Hello"})),
    Case("issues/create-comment", 422, lambda w: w.call(
        "POST", f"/repos/{{repo}}/issues/{w.issue()}/comments", json={})),
    Case("issues/create-comment", 404,
         lambda w: w.call("POST", "/repos/{repo}/issues/9999/comments", json={"body": "x"})),
    Case("issues/create-comment", 403, lambda w: _past_a_secondary_limit(
        "POST", "/repos/{repo}/issues/1/comments", json={"body": "x"}), "secondary-limit"),
    Case("pulls/create", 403, lambda w: _past_a_secondary_limit(
        "POST", "/repos/{repo}/pulls", json={"title": "t", "head": "main", "base": "main"}), "secondary-limit"),
    Case("issues/list-comments-for-repo", 200,
         lambda w: w.get("/repos/{repo}/issues/comments?sort=updated&direction=desc")),
    Case("issues/list-comments-for-repo", 422, lambda w: w.get("/repos/{repo}/issues/comments?since=x")),
    Case("issues/get-comment", 200, lambda w: w.get(f"/repos/{{repo}}/issues/comments/{w.comment()}")),
    Case("issues/get-comment", 404, lambda w: w.get("/repos/{repo}/issues/comments/999999")),
    Case("issues/update-comment", 200, lambda w: w.call(
        "PATCH", f"/repos/{{repo}}/issues/comments/{w.comment()}", json={"body": "Edited"})),
    Case("issues/update-comment", 422, lambda w: w.call(
        "PATCH", f"/repos/{{repo}}/issues/comments/{w.comment()}", json={"body": None})),
    # issue labels and events
    Case("issues/list-labels-on-issue", 200, lambda w: w.get(f"/repos/{{repo}}/issues/{w.issue()}/labels")),
    Case("issues/list-labels-on-issue", 404, lambda w: w.get("/repos/{repo}/issues/9999/labels")),
    Case("issues/add-labels", 200, lambda w: w.call(
        "POST", f"/repos/{{repo}}/issues/{w.issue()}/labels", json={"labels": ["processed", "bug"]})),
    Case("issues/add-labels", 200, lambda w: w.call(
        "POST", f"/repos/{{repo}}/issues/{w.issue()}/labels", json=["processed"]), "bare-list"),
    Case("issues/add-labels", 422, lambda w: w.call(
        "POST", f"/repos/{{repo}}/issues/{w.issue()}/labels", json={"labels": "processed"})),
    Case("issues/add-labels", 404, lambda w: w.call(
        "POST", "/repos/{repo}/issues/9999/labels", json={"labels": ["bug"]})),
    Case("issues/set-labels", 200, lambda w: w.call(
        "PUT", f"/repos/{{repo}}/issues/{w.issue()}/labels", json={"labels": ["done"]})),
    Case("issues/set-labels", 422, lambda w: w.call(
        "PUT", f"/repos/{{repo}}/issues/{w.issue()}/labels", json={"labels": [""]})),
    Case("issues/remove-all-labels", 204,
         lambda w: w.call("DELETE", f"/repos/{{repo}}/issues/{w.issue()}/labels")),
    Case("issues/remove-all-labels", 404, lambda w: w.call("DELETE", "/repos/{repo}/issues/9999/labels")),
    Case("issues/remove-label", 200,
         lambda w: w.call("DELETE", f"/repos/{{repo}}/issues/{w.issue(('bug', 'x'))}/labels/bug")),
    Case("issues/remove-label", 404,
         lambda w: w.call("DELETE", f"/repos/{{repo}}/issues/{w.issue()}/labels/not-there")),
    Case("issues/list-events", 200, lambda w: w.get(f"/repos/{{repo}}/issues/{w.merged}/events")),
    Case("issues/list-events", 200, lambda w: w.get(
        f"/repos/{{repo}}/issues/{w.issue(('bug', 'copilot-agent'))}/events"), "labeled"),
    # pull requests
    Case("pulls/list", 200, lambda w: w.get("/repos/{repo}/pulls?state=all")),
    Case("pulls/list", 200, lambda w: w.get("/repos/{repo}/pulls?head=octocat:no-such&base=main"), "empty"),
    Case("pulls/list", 304, lambda w: w.conditional("/repos/{repo}/pulls")),
    Case("pulls/create", 201, lambda w: _create_pull(w, w.unique("fresh"))),
    Case("pulls/create", 422, lambda w: w.call(
        "POST", "/repos/{repo}/pulls", json={"title": "Nothing", "head": "main", "base": "main"})),
    Case("pulls/create", 422, lambda w: _create_pull(w, w.emu.pulls(REPO)[0]["head"]["ref"], push=False),
         "duplicate"),
    Case("pulls/create", 403, lambda w: w.call(
        "POST", "/repos/{repo}/pulls", token=BOB_TOKEN, json={"title": "x", "head": "a", "base": "main"})),
    Case("pulls/get", 200, lambda w: _pull(w)),
    Case("pulls/get", 200, lambda w: w.get(f"/repos/{{repo}}/pulls/{w.merged}"), "merged"),
    Case("pulls/get", 304, lambda w: w.conditional(f"/repos/{{repo}}/pulls/{w.pull}")),
    Case("pulls/get", 404, lambda w: w.get(f"/repos/{{repo}}/pulls/{w.issue()}"), "plain-issue"),
    Case("pulls/update", 200, lambda w: w.call(
        "PATCH", f"/repos/{{repo}}/pulls/{w.open_pull()}", json={"title": "Renamed", "body": "New body"})),
    Case("pulls/update", 422, lambda w: w.call(
        "PATCH", f"/repos/{{repo}}/pulls/{w.pull}", json={"base": "no-such-branch"})),
    Case("pulls/update", 403, lambda w: w.call(
        "PATCH", f"/repos/{{repo}}/pulls/{w.pull}", token=BOB_TOKEN, json={"title": "x"})),
    Case("pulls/check-if-merged", 204, lambda w: w.get(f"/repos/{{repo}}/pulls/{w.merged}/merge")),
    Case("pulls/check-if-merged", 404, lambda w: _pull(w, "/merge")),
    Case("pulls/merge", 200, lambda w: w.call("PUT", f"/repos/{{repo}}/pulls/{w.open_pull()}/merge", json={})),
    Case("pulls/merge", 405, lambda w: w.call("PUT", f"/repos/{{repo}}/pulls/{w.merged}/merge", json={})),
    Case("pulls/merge", 404, lambda w: w.call("PUT", "/repos/{repo}/pulls/9999/merge", json={})),
    Case("pulls/merge", 403, lambda w: w.call(
        "PUT", f"/repos/{{repo}}/pulls/{w.pull}/merge", token=BOB_TOKEN, json={})),
    # reviews, review comments, reactions (feedback rounds)
    Case("pulls/create-review", 200, lambda w: w.call(
        "POST", f"/repos/{{repo}}/pulls/{w.open_pull()}/reviews", ALICE_TOKEN, json={"event": "APPROVE"})),
    Case("pulls/create-review", 422, lambda w: w.call(
        "POST", f"/repos/{{repo}}/pulls/{w.open_pull()}/reviews", ALICE_TOKEN, json={"event": "REQUEST_CHANGES"})),
    Case("pulls/list-reviews", 200, lambda w: w.get(f"/repos/{{repo}}/pulls/{_review(w)[0]}/reviews")),
    Case("pulls/get-review", 200, lambda w: w.get("/repos/{{repo}}/pulls/{}/reviews/{}".format(*_review(w)))),
    Case("pulls/get-review", 404, lambda w: w.get(f"/repos/{{repo}}/pulls/{w.pull}/reviews/999999")),
    Case("pulls/list-comments-for-review", 200,
         lambda w: w.get("/repos/{{repo}}/pulls/{}/reviews/{}/comments".format(*_review(w)))),
    Case("pulls/list-comments-for-review", 404, lambda w: w.get(f"/repos/{{repo}}/pulls/{w.pull}/reviews/9/comments")),
    Case("pulls/list-review-comments", 200, lambda w: w.get(f"/repos/{{repo}}/pulls/{_review(w)[0]}/comments")),
    Case("pulls/list-review-comments-for-repo", 200,
         lambda w: (_review(w), w.get("/repos/{repo}/pulls/comments?since=2000-01-01T00:00:00Z"))[1]),
    Case("pulls/get-review-comment", 200, lambda w: w.get(f"/repos/{{repo}}/pulls/comments/{_review_comment(w)}")),
    Case("pulls/get-review-comment", 404, lambda w: w.get("/repos/{repo}/pulls/comments/999999")),
    Case("pulls/create-review-comment", 201, lambda w: _comment_on_diff(w, 1)),
    Case("pulls/create-review-comment", 422, lambda w: _comment_on_diff(w, 99), "off-the-diff"),
    Case("reactions/create-for-issue-comment", 201, lambda w: w.call(
        "POST", f"/repos/{{repo}}/issues/comments/{w.comment()}/reactions", json={"content": "eyes"})),
    Case("reactions/create-for-issue-comment", 200, lambda w: (lambda c: (w.call(
        "POST", f"/repos/{{repo}}/issues/comments/{c}/reactions", json={"content": "eyes"}), w.call(
        "POST", f"/repos/{{repo}}/issues/comments/{c}/reactions", json={"content": "eyes"}))[1])(w.comment()),
        "again"),
    Case("reactions/create-for-issue-comment", 422, lambda w: w.call(
        "POST", f"/repos/{{repo}}/issues/comments/{w.comment()}/reactions", json={"content": "shrug"})),
    Case("reactions/list-for-issue-comment", 200,
         lambda w: w.get(f"/repos/{{repo}}/issues/comments/{w.comment()}/reactions")),
    Case("reactions/list-for-issue-comment", 404, lambda w: w.get("/repos/{repo}/issues/comments/999999/reactions")),
    Case("reactions/create-for-pull-request-review-comment", 201, lambda w: w.call(
        "POST", f"/repos/{{repo}}/pulls/comments/{_review_comment(w)}/reactions", json={"content": "eyes"})),
)
CASES += ci_cases(Case)  # checks, statuses and Actions (cases_ci.py)


def _past_a_secondary_limit(method: str, path: str, **kwargs: Any) -> httpx.Response:
    """The answer to a content-creating request past GitHub's per-minute limit (one, on an emulator of its own)."""
    with tempfile.TemporaryDirectory() as state, \
            GitHubEmulator(Path(state), limits=LimitConfig(content_per_minute=1)) as emu, \
            httpx.Client(base_url=emu.base_url, timeout=10) as client:
        emu.create_repo(REPO)
        emu.create_issue(REPO, "t", "b")
        headers = {"Authorization": f"token {ADMIN_TOKEN}"}
        client.post(f"/repos/{REPO}/issues/1/comments", headers=headers, json={"body": "first"})
        reply = client.request(method, path.replace("{repo}", REPO), headers=headers, **kwargs)
    assert reply.json()["message"].startswith("You have exceeded a secondary rate limit")
    assert int(reply.headers["Retry-After"]) >= 1
    return reply


def _create_pull(w: World, branch: str, *, push: bool = True) -> httpx.Response:
    if push:
        _push(w.emu, branch)
    return w.call("POST", "/repos/{repo}/pulls", json={"title": branch, "head": branch, "base": "main",
                                                       "body": "Closes #1", "draft": True})


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_operation_matches_githubs_description(world: World, case: Case) -> None:
    reply = case.call(world)
    assert reply.status_code == case.status, reply.text
    validate_exchange(reply, case.operation)


# Routes the emulator serves that GitHub's description files under another path.
ALIASES = {
    ("GET", "/repos/{}/{}/git/refs/{}"): "git/get-ref",  # undocumented but served; PyGithub's older form
    ("GET", "/repos/{}/{}/contents"): "repos/get-content",  # the root directory, path ""
}


def served_operations() -> dict[tuple[str, str], str]:
    """Map each GitHub route of the emulator to the description's operationId."""
    by_shape = {(op.method, path_shape(op.path)): op.operation_id for op in operations()}
    found = {}
    for method, pattern in build_router().routes():
        if pattern.startswith(CONTROL_PREFIX):
            continue  # the emulator's own control API, not GitHub's
        if pattern == "/graphql":
            continue  # GitHub's GraphQL API, not in the REST description (tests/e2e/test_github_graphql.py)
        key = (method, path_shape(pattern))
        found[(method, pattern)] = ALIASES.get(key) or by_shape.get(key, "")
    return found


def test_every_route_is_a_github_operation_with_a_contract_case() -> None:
    served = served_operations()
    unknown = sorted(f"{m} {p}" for (m, p), op in served.items() if not op)
    assert not unknown, (f"routes not in GitHub's description (or not vendored: run "
                         f"python -m github_contract.vendor): {unknown}")
    covered = {case.operation for case in CASES}
    missing = sorted({op for op in served.values()} - covered)
    assert not missing, f"operations served without a contract case in {__file__}: {missing}"
    assert len(served) >= 36


def test_cases_name_vendored_operations() -> None:
    for case in CASES:
        assert operation(case.operation).operation_id == case.operation
