"""The schema helper catches what a validating client would reject, and nothing GitHub sends."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from github_emulator import GitHubEmulator

from github_contract.schema import (
    SchemaMismatch,
    operation,
    rest,
    validate_response,
    validate_webhook,
    webhooks,
)

REPO = "octocat/hello"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Bodies the emulator renders, to damage one field at a time."""
    with GitHubEmulator(tmp_path_factory.mktemp("schema") / "state") as emu:
        emu.create_repo(REPO)
        number = emu.create_issue(REPO, "Title", None, ["bug"])
        backend = emu._backend  # the renderer is the unit here; HTTP is covered by test_rest
        repo, renderer = backend.store.repo(REPO), backend.renderer()
        yield {
            "user": renderer.authenticated_user("octocat"),
            "issue": emu.issue(REPO, number),
            "label": renderer.label(repo, repo.labels["bug"]),
            "repo": renderer.repo(repo),
            "sender": renderer.user("octocat"),
        }


def test_a_user_without_followers_url_is_rejected_by_name(rendered: dict[str, Any]) -> None:
    issue = copy.deepcopy(rendered["issue"])
    del issue["user"]["followers_url"]
    with pytest.raises(SchemaMismatch, match=r"\$\.user: 'followers_url' is a required property"):
        validate_response("issues/create", 201, issue)


def test_an_invented_field_is_caught_in_strict_mode_only(rendered: dict[str, Any]) -> None:
    issue = {**rendered["issue"], "labelz": []}
    with pytest.raises(SchemaMismatch, match=r"\$\.labelz: not in GitHub's schema"):
        validate_response("issues/get", 200, issue)
    validate_response("issues/get", 200, issue, strict=False)


def test_null_where_github_sends_null_and_nowhere_else(rendered: dict[str, Any]) -> None:
    validate_response("issues/get", 200, {**rendered["issue"], "state_reason": None})
    with pytest.raises(SchemaMismatch, match=r"\$\.state_reason: 'finished' is not one of"):
        validate_response("issues/get", 200, {**rendered["issue"], "state_reason": "finished"})
    with pytest.raises(SchemaMismatch, match=r"\$\.title: null, but GitHub's schema is not nullable"):
        validate_response("issues/get", 200, {**rendered["issue"], "title": None})


def test_urls_must_be_absolute_and_dates_iso(rendered: dict[str, Any]) -> None:
    with pytest.raises(SchemaMismatch, match=r"\$\.html_url: '/octocat/hello/issues/1' is not a 'uri'"):
        validate_response("issues/get", 200, {**rendered["issue"], "html_url": "/octocat/hello/issues/1"})
    with pytest.raises(SchemaMismatch, match=r"\$\.created_at: .* is not a 'date-time'"):
        validate_response("issues/get", 200, {**rendered["issue"], "created_at": "yesterday"})


def test_get_user_must_say_which_kind_of_user_it_is(rendered: dict[str, Any]) -> None:
    validate_response("GET /user", 200, rendered["user"])
    anonymous = {k: v for k, v in rendered["user"].items() if k != "user_view_type"}
    with pytest.raises(SchemaMismatch, match="'user_view_type' must be one of"):
        validate_response("GET /user", 200, anonymous)


def test_statuses_github_does_not_document_are_mismatches(rendered: dict[str, Any]) -> None:
    with pytest.raises(SchemaMismatch, match=r"answered 418; GitHub documents only 200, 304, 401, 403"):
        validate_response("users/get-authenticated", 418, rendered["user"])
    with pytest.raises(SchemaMismatch, match="GitHub sends no body"):
        validate_response("issues/remove-all-labels", 204, {"message": "done"})
    with pytest.raises(SchemaMismatch, match="sends a JSON body, the emulator sent none"):
        validate_response("issues/get", 200, None)


def test_operations_are_found_by_id_template_or_concrete_path() -> None:
    assert operation("POST /repos/{owner}/{repo}/issues").operation_id == "issues/create"
    # A literal segment wins over a parameter: comments is not an issue number.
    assert operation("GET /repos/o/r/issues/comments?since=x").operation_id == "issues/list-comments-for-repo"
    assert operation("GET /repos/o/r/issues/12").operation_id == "issues/get"
    assert operation("GET /repos/o/r/contents/docs/a/b.md").operation_id == "repos/get-content"
    with pytest.raises(KeyError, match="EXTRA_OPERATIONS"):
        operation("gists/list")


def test_webhook_payloads_validate_against_the_webhooks_description(rendered: dict[str, Any]) -> None:
    # A webhook's issue is the REST issue minus ``closed_by``, which the payload schema lacks.
    issue = {k: v for k, v in rendered["issue"].items() if k != "closed_by"}
    # Its labels are the webhooks description's (npm's), without the REST Label's archive fields.
    archive = ("archived_at", "archived_by")
    issue["labels"] = [{k: v for k, v in label.items() if k not in archive} for label in issue["labels"]]
    label = {k: v for k, v in rendered["label"].items() if k not in archive}
    payload = {"action": "labeled", "issue": issue, "label": label,
               "repository": rendered["repo"], "sender": rendered["sender"]}
    assert validate_webhook("issues", "labeled", payload) == "issues-labeled"
    with pytest.raises(SchemaMismatch, match=r"\$: 'repository' is a required property"):
        validate_webhook("issues", "labeled", {k: v for k, v in payload.items() if k != "repository"})
    with pytest.raises(SchemaMismatch, match=r"\$\.action: 'opened' is not one of"):
        validate_webhook("issues", "labeled", {**payload, "action": "opened"})
    with pytest.raises(KeyError, match="WEBHOOKS"):
        validate_webhook("star", "created", {})


def test_vendored_files_say_where_they_came_from() -> None:
    for description, package in ((rest(), "@octokit/openapi"), (webhooks(), "@octokit/openapi-webhooks")):
        provenance = description.provenance
        assert provenance["package"] == package
        assert provenance["integrity"].startswith("sha512-")
        assert provenance["refresh"] == "python -m github_contract.vendor"
    assert Path(__file__).with_name("github-rest.json").stat().st_size < 1_000_000
