"""The GitHub emulator behaves like GitHub for real clients: PyGithub, gidgethub, requests and git."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gidgethub
import gidgethub.httpx
import httpx
import pytest
import requests
from github import Auth, Github, GithubException
from github_emulator import ADMIN_TOKEN, GitHubEmulator, Permission

REPO = "octocat/hello"
ALICE, ALICE_TOKEN = "alice", "alice-token"  # write access
BOB, BOB_TOKEN = "bob", "bob-token"  # read access
EVE, EVE_TOKEN = "eve", "eve-token"  # no access


@pytest.fixture()
def emu(tmp_path: Path) -> Iterator[GitHubEmulator]:
    with GitHubEmulator(tmp_path / "state") as emulator:
        emulator.create_repo(REPO, files={"README.md": "# hello\n", "src/app.py": "print('hi')\n"})
        roles: list[tuple[str, str, Permission]] = [
            (ALICE, ALICE_TOKEN, "write"), (BOB, BOB_TOKEN, "read"), (EVE, EVE_TOKEN, "none")]
        for login, token, role in roles:
            emulator.add_user(login, token)
            emulator.set_permission(REPO, login, role)
        yield emulator


def pygithub(emu: GitHubEmulator, token: str = ADMIN_TOKEN) -> Github:
    return Github(auth=Auth.Token(token), base_url=emu.base_url, per_page=100, retry=None,
                  seconds_between_requests=None, seconds_between_writes=None)


def api(emu: GitHubEmulator, method: str, path: str, token: str | None = ADMIN_TOKEN,
        **kwargs: Any) -> requests.Response:
    headers = kwargs.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"token {token}"
    return requests.request(method, emu.base_url + path, headers=headers, timeout=10, **kwargs)


def git(*args: str, cwd: Path | None = None, token: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run git with the token in the environment only, as the runner does."""
    env = {
        "PATH": os.environ["PATH"], "HOME": str(cwd or Path.cwd()), "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false",
        "GIT_AUTHOR_NAME": "Tester", "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "Tester", "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    if token is not None:
        env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                    "GIT_CONFIG_VALUE_0": f"Authorization: Bearer {token}"})
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30)


def push_branch(emu: GitHubEmulator, tmp_path: Path, branch: str, files: dict[str, str]) -> Path:
    clone = tmp_path / f"clone-{branch}"
    assert git("clone", "-q", emu.git_url(REPO), str(clone), token=ADMIN_TOKEN).returncode == 0
    git("checkout", "-q", "-b", branch, cwd=clone)
    for name, text in files.items():
        (clone / name).write_text(text)
    git("add", ".", cwd=clone)
    git("commit", "-qm", f"work on {branch}", cwd=clone)
    pushed = git("push", "-q", "origin", branch, cwd=clone, token=ADMIN_TOKEN)
    assert pushed.returncode == 0, pushed.stderr
    return clone


# -- PyGithub --------------------------------------------------------------------------------


def test_pygithub_issue_lifecycle(emu: GitHubEmulator) -> None:
    gh = pygithub(emu)
    assert gh.get_user().login == "octocat"
    created = gh.get_user().create_repo("made-by-api", private=True, auto_init=True)
    assert created.full_name == "octocat/made-by-api" and created.default_branch == "main"
    assert emu.branch_sha("octocat/made-by-api", "main") is not None
    gh.get_user().create_repo("empty", auto_init=False)
    assert emu.branch_sha("octocat/empty", "main") is None

    repo = gh.get_repo(REPO)
    assert repo.private and repo.clone_url == emu.git_url(REPO)
    issue = repo.create_issue("Do a thing", body="please", labels=["copilot-agent"])
    other = repo.create_issue("Unrelated")
    comment = issue.create_comment("on it")
    comment.edit("done")
    issue.add_to_labels("processed")

    assert [i.number for i in repo.get_issues(labels=["copilot-agent", "processed"])] == [issue.number]
    assert {i.number for i in repo.get_issues()} == {issue.number, other.number}
    assert issue.get_comment(comment.id).body == "done"
    assert [c.body for c in issue.get_comments()] == ["done"]
    assert emu.labels(REPO, issue.number) == ["copilot-agent", "processed"]

    issue.remove_from_labels("processed")
    with pytest.raises(GithubException) as missing:
        issue.remove_from_labels("processed")
    assert missing.value.status == 404
    events = [(e.event, e.actor.login, e.label.name) for e in issue.get_events()]
    assert events == [("labeled", "octocat", "copilot-agent"), ("labeled", "octocat", "processed"),
                      ("unlabeled", "octocat", "processed")]

    issue.edit(state="closed")
    assert repo.get_issue(issue.number).state == "closed"
    assert [i.number for i in repo.get_issues(state="closed")] == [issue.number]


def test_events_name_the_user_who_labeled(emu: GitHubEmulator) -> None:
    number = emu.create_issue(REPO, "Task", "body", labels=("copilot-agent",), as_user=ALICE)
    pygithub(emu, ALICE_TOKEN).get_repo(REPO).get_issue(number).add_to_labels("urgent")
    actors = {e["label"]["name"]: e["actor"]["login"] for e in emu.events(REPO, number)}
    assert actors == {"copilot-agent": ALICE, "urgent": ALICE}
    assert emu.issue(REPO, number)["user"]["login"] == ALICE


@pytest.mark.parametrize(("role", "permission"), [
    ("admin", "admin"), ("maintain", "write"), ("write", "write"), ("triage", "read"), ("read", "read"),
    ("none", "none"),
])
def test_collaborator_permission_maps_roles_like_github(
    emu: GitHubEmulator, role: Permission, permission: str
) -> None:
    emu.add_user("carol")
    emu.set_permission(REPO, "carol", role)
    body = api(emu, "GET", f"/repos/{REPO}/collaborators/carol/permission").json()
    assert (body["permission"], body["role_name"], body["user"]["login"]) == (permission, role, "carol")
    assert pygithub(emu).get_repo(REPO).get_collaborator_permission("carol") == permission


def test_pull_requests_from_a_pushed_branch(emu: GitHubEmulator, tmp_path: Path) -> None:
    push_branch(emu, tmp_path, "feature", {"new.txt": "new\n"})
    repo = pygithub(emu).get_repo(REPO)

    pull = repo.create_pull(base="main", head="feature", title="Add new.txt", body="Fixes #1")
    assert (pull.state, pull.merged, pull.head.ref, pull.base.ref) == ("open", False, "feature", "main")
    assert pull.head.sha == emu.branch_sha(REPO, "feature")
    with pytest.raises(GithubException) as duplicate:
        repo.create_pull(base="main", head="octocat:feature", title="again", body="")
    assert duplicate.value.status == 422
    assert duplicate.value.data["errors"][0]["message"] == "A pull request already exists for octocat:feature."
    with pytest.raises(GithubException) as no_branch:
        repo.create_pull(base="main", head="nope", title="ghost", body="")
    assert no_branch.value.status == 422
    assert (pull.commits, pull.additions, pull.deletions, pull.changed_files) == (1, 1, 0, 1)
    clone = push_branch(emu, tmp_path, "later", {"later.txt": "x\n"})
    git("push", "-q", "origin", "HEAD~1:refs/heads/level", cwd=clone, token=ADMIN_TOKEN)  # at main
    with pytest.raises(GithubException) as level:
        repo.create_pull(base="main", head="level", title="nothing", body="")
    assert level.value.status == 422
    assert level.value.data["errors"][0]["message"] == "No commits between main and level"

    pull.edit(state="closed")
    found = list(repo.get_pulls(state="all", head="octocat:feature"))
    assert [(p.number, p.state) for p in found] == [(pull.number, "closed")]
    assert list(repo.get_pulls(state="open", head="octocat:feature")) == []
    pull.edit(state="open", title="Add new.txt (reopened)")
    issue_view = repo.get_issue(pull.number)
    assert issue_view.pull_request is not None and issue_view.title == "Add new.txt (reopened)"
    assert repo.get_issue(pull.number).html_url == pull.html_url

    assert repo.get_branch("feature").commit.sha == emu.branch_sha(REPO, "feature")
    assert repo.get_git_ref("heads/feature").object.sha == emu.branch_sha(REPO, "feature")
    content = repo.get_contents("new.txt", ref="feature")
    assert not isinstance(content, list) and content.decoded_content == b"new\n"
    with pytest.raises(GithubException) as absent:
        repo.get_contents("new.txt", ref="main")
    assert absent.value.status == 404
    listing = repo.get_contents("", ref="feature")
    assert isinstance(listing, list) and {c.name for c in listing} == {"README.md", "src", "new.txt"}

    merged = emu.merge_pull(REPO, pull.number)
    assert merged["merged"] and merged["state"] == "closed"
    assert emu.file_at(REPO, "main", "new.txt") == "new\n"
    with pytest.raises(GithubException) as reopen:
        repo.get_pull(pull.number).edit(state="open")
    assert reopen.value.status == 422 and repo.get_pull(pull.number).merged


# -- a second, independent client ----------------------------------------------------------


def test_gidgethub_paginates_and_uses_etags(emu: GitHubEmulator) -> None:
    for n in range(5):
        emu.create_issue(REPO, f"issue {n}", None, labels=("batch",))

    async def drive() -> tuple[list[str], str, int]:
        cache: dict[Any, Any] = {}
        async with httpx.AsyncClient() as client:
            # gidgethub 6 annotates its client as httpx2's; httpx's has the same interface.
            gh = gidgethub.httpx.GitHubAPI(client, "emulator-tests", oauth_token=ADMIN_TOKEN,  # type: ignore[arg-type]
                                           base_url=emu.base_url, cache=cache)
            titles = [i["title"] async for i in gh.getiter(f"/repos/{REPO}/issues?per_page=2&labels=batch")]
            await gh.getitem(f"/repos/{REPO}")
            repo = await gh.getitem(f"/repos/{REPO}")  # answered from the cache after a 304
            posted = await gh.post(f"/repos/{REPO}/issues/1/comments", data={"body": "from gidgethub"})
            return titles, repo["full_name"], posted["id"]

    titles, full_name, comment_id = asyncio.run(drive())
    assert titles == [f"issue {n}" for n in reversed(range(5))]
    assert full_name == REPO
    assert [c["id"] for c in emu.comments(REPO, 1)] == [comment_id]
    assert [r.status for r in emu.request_log if r.path == f"/repos/{REPO}"] == [200, 304]


def test_link_headers_paginate_like_github(emu: GitHubEmulator) -> None:
    for n in range(5):
        emu.create_issue(REPO, f"issue {n}", None)

    def rels(page: int) -> dict[str, str]:
        resp = api(emu, "GET", f"/repos/{REPO}/issues", params={"per_page": 2, "page": page})
        assert len(resp.json()) == (1 if page == 3 else 2)
        return {rel: url for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', resp.headers.get("Link", ""))}

    first, middle, last = rels(1), rels(2), rels(3)
    assert set(first) == {"next", "last"} and set(middle) == {"prev", "next", "last", "first"}
    assert set(last) == {"prev", "first"}
    assert middle["next"].startswith(emu.base_url + f"/repos/{REPO}/issues?")
    assert "page=3" in middle["next"] and "per_page=2" in middle["next"] and "page=1" in middle["first"]
    assert "Link" not in api(emu, "GET", f"/repos/{REPO}/issues").headers


def test_issue_filters_since_state_and_direction(emu: GitHubEmulator) -> None:
    old = emu.create_issue(REPO, "old", None)
    newer = emu.create_issue(REPO, "newer", None)
    emu.update_issue(REPO, old, state="closed")
    listed = api(emu, "GET", f"/repos/{REPO}/issues", params={"state": "all", "direction": "asc"}).json()
    assert [i["number"] for i in listed] == [old, newer]
    future = api(emu, "GET", f"/repos/{REPO}/issues", params={"since": "2999-01-01T00:00:00Z"}).json()
    assert future == []
    assert api(emu, "GET", f"/repos/{REPO}/issues", params={"since": "yesterday"}).status_code == 422


def test_etag_304_and_rate_limit_headers(emu: GitHubEmulator) -> None:
    first = api(emu, "GET", f"/repos/{REPO}")
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    again = api(emu, "GET", f"/repos/{REPO}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["X-RateLimit-Used"] == first.headers["X-RateLimit-Used"]
    for resp in (first, again, api(emu, "GET", "/user", token=None)):
        for name in ("Limit", "Remaining", "Reset", "Used", "Resource"):
            assert f"X-RateLimit-{name}" in resp.headers


# -- authentication and authorisation --------------------------------------------------------


def test_api_enforces_tokens_and_permissions(emu: GitHubEmulator) -> None:
    assert api(emu, "GET", "/user", token=None).status_code == 401
    bad = api(emu, "GET", "/user", token="wrong")
    assert bad.status_code == 401 and bad.json()["message"] == "Bad credentials"
    assert "documentation_url" in bad.json()
    for scheme in ("Bearer", "token"):
        resp = requests.get(emu.base_url + "/user", headers={"Authorization": f"{scheme} {BOB_TOKEN}"})
        assert resp.json()["login"] == BOB

    assert api(emu, "GET", f"/repos/{REPO}", token=EVE_TOKEN).status_code == 404
    number = emu.create_issue(REPO, "x", None)
    assert api(emu, "POST", f"/repos/{REPO}/issues/{number}/comments", token=BOB_TOKEN,
               json={"body": "a reader may comment"}).status_code == 201
    denied = api(emu, "POST", f"/repos/{REPO}/issues/{number}/labels", token=BOB_TOKEN, json=["x"])
    assert denied.status_code == 403 and "message" in denied.json()
    assert api(emu, "POST", f"/repos/{REPO}/pulls", token=BOB_TOKEN,
               json={"title": "t", "head": "main", "base": "main"}).status_code == 403
    assert api(emu, "POST", f"/repos/{REPO}/issues/{number}/labels", token=ALICE_TOKEN,
               json={"labels": ["ok"]}).status_code == 200
    assert all(r.headers.get("authorization") is None for r in emu.request_log)
    assert {r.user for r in emu.request_log} >= {None, BOB, ALICE, EVE}


def test_git_clone_and_push_enforce_the_token(emu: GitHubEmulator, tmp_path: Path) -> None:
    url = emu.git_url(REPO)
    anonymous = git("clone", "-q", url, str(tmp_path / "anon"))
    assert anonymous.returncode != 0
    assert git("clone", "-q", url, str(tmp_path / "eve"), token=EVE_TOKEN).returncode != 0

    clone = tmp_path / "bob"
    assert git("clone", "-q", url, str(clone), token=BOB_TOKEN).returncode == 0
    assert (clone / "src" / "app.py").read_text() == "print('hi')\n"
    (clone / "README.md").write_text("# changed\n")
    git("commit", "-qam", "change", cwd=clone)
    rejected = git("push", "origin", "HEAD:refs/heads/bob", cwd=clone, token=BOB_TOKEN)
    assert rejected.returncode != 0 and "403" in rejected.stderr
    assert git("push", "origin", "HEAD:refs/heads/bob", cwd=clone).returncode != 0
    assert emu.branch_sha(REPO, "bob") is None

    pushed = git("push", "-q", "origin", "HEAD:refs/heads/bob", cwd=clone, token=ALICE_TOKEN)
    assert pushed.returncode == 0, pushed.stderr
    assert emu.file_at(REPO, "bob", "README.md") == "# changed\n"


def test_force_with_lease_and_large_gzip_pushes(emu: GitHubEmulator, tmp_path: Path) -> None:
    clone = push_branch(emu, tmp_path, "task", {"a.txt": "1\n"})
    first = emu.branch_sha(REPO, "task")
    # A big, incompressible file makes git send a chunked request body.
    (clone / "blob.bin").write_bytes(os.urandom(2_500_000))
    git("add", ".", cwd=clone)
    git("commit", "-q", "--amend", "-m", "rewritten", cwd=clone)
    stale = git("push", "--force-with-lease=task:" + "0" * 40, "origin", "task", cwd=clone, token=ADMIN_TOKEN)
    assert stale.returncode != 0 and emu.branch_sha(REPO, "task") == first
    ok = git("push", f"--force-with-lease=task:{first}", "origin", "task", cwd=clone, token=ADMIN_TOKEN)
    assert ok.returncode == 0, ok.stderr
    assert emu.branch_sha(REPO, "task") != first

    # Many wanted refs make git gzip its upload-pack request.
    many = [f"HEAD:refs/heads/topic-{n}" for n in range(40)]
    assert git("push", "-q", "origin", *many, cwd=clone, token=ADMIN_TOKEN).returncode == 0
    fresh = git("clone", "-q", "--mirror", emu.git_url(REPO), str(tmp_path / "mirror"), token=ADMIN_TOKEN)
    assert fresh.returncode == 0, fresh.stderr
    assert git("rev-parse", "topic-39", cwd=tmp_path / "mirror").stdout.strip() == emu.branch_sha(REPO, "task")
    encodings = {r.headers.get("content-encoding")
                 for r in emu.request_log if r.path.endswith("git-upload-pack")}
    chunked = {r.headers.get("transfer-encoding")
               for r in emu.request_log if r.path.endswith("git-receive-pack")}
    assert "gzip" in encodings and "chunked" in chunked


# -- fault injection -------------------------------------------------------------------------


def test_injected_errors_then_success(emu: GitHubEmulator) -> None:
    emu.inject(status=500, count=2, path_regex=r"/issues$", method="GET")
    emu.inject(status=429, retry_after=7, path_regex=r"/issues$")
    statuses = [api(emu, "GET", f"/repos/{REPO}/issues").status_code for _ in range(4)]
    assert statuses == [500, 500, 429, 200]
    limited = [r for r in emu.request_log if r.status == 429]
    assert len(limited) == 1 and limited[0].fault

    emu.inject(status=403, retry_after=30)
    forbidden = api(emu, "GET", "/user")
    assert forbidden.status_code == 403 and forbidden.headers["Retry-After"] == "30"
    assert forbidden.headers["X-RateLimit-Remaining"] == "0"
    assert int(forbidden.headers["X-RateLimit-Reset"]) >= int(time.time()) + 25

    emu.inject(status=None, delay=1.0, count=1)
    with pytest.raises(requests.Timeout):
        requests.get(emu.base_url + "/user", headers={"Authorization": f"token {ADMIN_TOKEN}"}, timeout=0.2)


def test_pygithub_retries_through_a_server_error(emu: GitHubEmulator) -> None:
    from github import GithubRetry

    gh = Github(auth=Auth.Token(ADMIN_TOKEN), base_url=emu.base_url, seconds_between_requests=None,
                retry=GithubRetry(total=3, backoff_factor=0.01))
    emu.inject(status=502, count=1, path_regex="^/repos/")
    assert gh.get_repo(REPO).full_name == REPO
    assert [r.status for r in emu.request_log] == [502, 200]


def test_probability_faults_are_reproducible(emu: GitHubEmulator) -> None:
    def run() -> list[int]:
        emu.clear_faults()
        emu.inject(status=503, probability=0.5, seed=42, count=None)
        return [api(emu, "GET", "/user").status_code for _ in range(12)]

    first = run()
    assert first == run() and {503, 200} == set(first)


def test_faults_and_log_over_http(emu: GitHubEmulator) -> None:
    assert api(emu, "POST", "/_emulator/faults", token=ALICE_TOKEN, json={"status": 500}).status_code == 404
    assert api(emu, "POST", "/_emulator/faults", json={"status": 418, "bogus": 1}).status_code == 422
    assert api(emu, "POST", "/_emulator/faults", json={"status": 503, "count": 1}).status_code == 201
    assert api(emu, "GET", "/user").status_code == 503
    assert api(emu, "GET", "/user").status_code == 200
    assert api(emu, "POST", "/_emulator/faults", json={"status": 500, "count": None}).status_code == 201
    assert api(emu, "DELETE", "/_emulator/faults").status_code == 204
    assert api(emu, "GET", "/user").status_code == 200
    log = api(emu, "GET", "/_emulator/requests").json()
    assert [(e["path"], e["status"], e["fault"]) for e in log if e["path"] == "/user"] == [
        ("/user", 503, True), ("/user", 200, False), ("/user", 200, False)]


def test_git_faults_only_when_asked(emu: GitHubEmulator, tmp_path: Path) -> None:
    emu.inject(status=500, count=None)
    assert git("clone", "-q", emu.git_url(REPO), str(tmp_path / "a"), token=ADMIN_TOKEN).returncode == 0
    emu.clear_faults()
    emu.inject(status=503, count=None, include_git=True)
    assert git("clone", "-q", emu.git_url(REPO), str(tmp_path / "b"), token=ADMIN_TOKEN).returncode != 0


def test_concurrent_writers_get_distinct_numbers(emu: GitHubEmulator) -> None:
    def open_issues(worker: int) -> list[int]:
        with requests.Session() as session:
            session.headers["Authorization"] = f"token {ADMIN_TOKEN}"
            return [session.post(f"{emu.base_url}/repos/{REPO}/issues", timeout=10,
                                 json={"title": f"w{worker}-{n}", "labels": ["load"]}).json()["number"]
                    for n in range(5)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        numbers = [n for batch in pool.map(open_issues, range(8)) for n in batch]
    assert sorted(numbers) == list(range(1, 41))
    assert len({e["id"] for n in numbers for e in emu.events(REPO, n)}) == 40


# -- persistence and the command line ---------------------------------------------------------


def test_state_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with GitHubEmulator(state) as emu:
        emu.create_repo(REPO, owner_token="octo-owner-token")
        emu.add_user(ALICE, ALICE_TOKEN)
        emu.set_permission(REPO, ALICE, "write")
        number = emu.create_issue(REPO, "persist me", "body", labels=("copilot-agent",))
        comment = pygithub(emu, ALICE_TOKEN).get_repo(REPO).get_issue(number).create_comment("hi")
        push_branch(emu, tmp_path, "feature", {"f.txt": "f\n"})
        pull = pygithub(emu).get_repo(REPO).create_pull(base="main", head="feature", title="PR", body="")
    assert "token" not in (state / "state.json").read_text().replace("tokens", "")
    assert ALICE_TOKEN not in (state / "state.json").read_text()

    with GitHubEmulator(state) as emu:
        repo = pygithub(emu, ALICE_TOKEN).get_repo(REPO)
        issue = repo.get_issue(number)
        assert issue.title == "persist me" and [lb.name for lb in issue.labels] == ["copilot-agent"]
        assert [c.id for c in issue.get_comments()] == [comment.id]
        assert [e.event for e in issue.get_events()] == ["labeled"]
        assert repo.get_pull(pull.number).head.ref == "feature"
        assert emu.branch_sha(REPO, "feature") is not None
        assert api(emu, "GET", "/user", token="octo-owner-token").json()["login"] == "octocat"
        assert emu.create_issue(REPO, "next", None) == pull.number + 1


def test_command_line_prints_url_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "github_emulator", "--port", "0", "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        url = re.search(r"http://\S+", line)
        assert url, line
        assert requests.get(url.group(0) + "/user", headers={"Authorization": f"token {ADMIN_TOKEN}"},
                            timeout=10).json()["login"] == "octocat"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert proc.returncode == 0
