"""A second validating client: githubkit's models, generated from GitHub's newest description.

The vendored slice (``github-rest.json``) is npm's ``@octokit/openapi``; githubkit follows
``github/rest-api-description`` itself (its ``githubkit-schemas`` packages are regenerated from
it), so a field GitHub added since (Label's ``archived_at``/``archived_by``) fails here first.
Every call goes through real HTTP; ``parsed_data`` runs githubkit's pydantic validation.
The routes are the ones the runner's forge calls (runner/forge/github/).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from github_emulator import ADMIN_TOKEN, GitHubEmulator

from github_contract.test_rest import _git

githubkit = pytest.importorskip("githubkit")

REPO_OWNER, REPO_NAME = "octocat", "hello"
REPO = f"{REPO_OWNER}/{REPO_NAME}"


@pytest.fixture(scope="module")
def gh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, GitHubEmulator]]:
    with GitHubEmulator(tmp_path_factory.mktemp("githubkit") / "state") as emu:
        emu.create_repo(REPO, files={"README.md": "# hello\n"})
        emu.add_user("alice", "alice-token")
        client = githubkit.GitHub(githubkit.TokenAuthStrategy(ADMIN_TOKEN), base_url=emu.base_url,
                                  auto_retry=False, http_cache=False)
        yield client, emu


def test_the_runners_issue_routes_parse_in_githubkits_models(gh: tuple[Any, GitHubEmulator]) -> None:
    client, emu = gh
    rest = client.rest
    number = emu.create_issue(REPO, "Dispatch", "Body", ["copilot-agent"])

    issue = rest.issues.get(REPO_OWNER, REPO_NAME, number).parsed_data
    assert issue.number == number and [label.name for label in issue.labels] == ["copilot-agent"]
    assert [i.number for i in rest.issues.list_for_repo(REPO_OWNER, REPO_NAME, labels="copilot-agent").parsed_data]
    comment = rest.issues.create_comment(REPO_OWNER, REPO_NAME, number, body="hello").parsed_data
    edited = rest.issues.update_comment(REPO_OWNER, REPO_NAME, comment.id, body="edited").parsed_data
    assert edited.body == "edited"
    assert [c.id for c in rest.issues.list_comments(REPO_OWNER, REPO_NAME, number).parsed_data] == [comment.id]
    assert rest.issues.list_comments_for_repo(REPO_OWNER, REPO_NAME, since="2000-01-01T00:00:00Z").parsed_data
    labels = rest.issues.add_labels(REPO_OWNER, REPO_NAME, number, labels=["processed"]).parsed_data
    assert {label.name for label in labels} == {"copilot-agent", "processed"}
    assert all(label.archived_at is None for label in labels)
    assert [label.name for label in rest.issues.remove_label(REPO_OWNER, REPO_NAME, number, "processed").parsed_data] == ["copilot-agent"]
    assert rest.issues.list_labels_for_repo(REPO_OWNER, REPO_NAME).parsed_data
    assert rest.issues.list_events(REPO_OWNER, REPO_NAME, number).parsed_data
    reaction = rest.reactions.create_for_issue_comment(REPO_OWNER, REPO_NAME, comment.id, content="eyes")
    assert reaction.parsed_data.content == "eyes"


def test_the_runners_repository_and_user_routes_parse_in_githubkits_models(gh: tuple[Any, GitHubEmulator]) -> None:
    client, _ = gh
    rest = client.rest
    assert rest.users.get_authenticated().parsed_data.login == "octocat"
    assert rest.users.get_by_username("alice").parsed_data.login == "alice"
    assert rest.repos.get(REPO_OWNER, REPO_NAME).parsed_data.full_name == REPO
    assert REPO in [r.full_name for r in rest.repos.list_for_authenticated_user().parsed_data]


@pytest.mark.parametrize(("asked", "granted"), [
    ("pull", "read"), ("triage", "triage"), ("push", "write"), ("maintain", "maintain"), ("admin", "admin"),
    ("read", "read"), ("write", "write"),
])
def test_every_documented_collaborator_permission_is_accepted(gh: tuple[Any, GitHubEmulator], asked: str,
                                                              granted: str) -> None:
    client, _ = gh
    rest = client.rest
    rest.repos.add_collaborator(REPO_OWNER, REPO_NAME, "alice", permission=asked)
    level = rest.repos.get_collaborator_permission_level(REPO_OWNER, REPO_NAME, "alice").parsed_data
    assert level.role_name == granted


def test_the_runners_pull_request_routes_parse_in_githubkits_models(gh: tuple[Any, GitHubEmulator]) -> None:
    client, emu = gh
    rest = client.rest
    _push(emu)
    pull = rest.pulls.create(REPO_OWNER, REPO_NAME, title="Feature", head="feature", base="main",
                             body="Body").parsed_data
    assert rest.pulls.get(REPO_OWNER, REPO_NAME, pull.number).parsed_data.head.ref == "feature"
    assert [p.number for p in rest.pulls.list(REPO_OWNER, REPO_NAME, head=f"{REPO_OWNER}:feature").parsed_data]
    updated = rest.pulls.update(REPO_OWNER, REPO_NAME, pull.number, body="New body").parsed_data
    assert updated.body == "New body"
    emu.add_review_comment(REPO, pull.number, "@octocat rename", path="feature.txt", line=1, as_user="octocat")
    assert rest.pulls.list_review_comments_for_repo(REPO_OWNER, REPO_NAME).parsed_data
    assert rest.pulls.list_reviews(REPO_OWNER, REPO_NAME, pull.number).parsed_data is not None


def _push(emu: GitHubEmulator) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        _git("clone", "-q", emu.git_url(REPO), str(clone))
        _git("checkout", "-q", "-b", "feature", cwd=clone)
        (clone / "feature.txt").write_text("x\n")
        _git("add", ".", cwd=clone)
        _git("commit", "-qm", "Add feature", cwd=clone)
        _git("push", "-q", "origin", "feature", cwd=clone)
