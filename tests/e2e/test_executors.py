"""The same dispatch flow under all three executors: SQLite, PostgreSQL and Temporal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DISPATCH, README_PATCH, TARGET, World, dispatch_body
from tests.temporal_server import temporal_dev_server
from tests.unit.ledger.fixtures import fresh_url

EXECUTORS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("temporal", id="temporal"),
]


@pytest.fixture(params=EXECUTORS)
def executor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Settings overrides that select one executor, with a fresh store for it."""
    if request.param == "temporal":
        with temporal_dev_server() as address:
            yield {"executor": "temporal", "temporal_address": address, "lease_seconds": 5}
        return
    with fresh_url(request.param, tmp_path, prefix="executor_test") as url:
        yield {"ledger_url": url}


def result_comments(world: World, number: int) -> list[str]:
    return [c["body"] for c in world.comments(number) if "agent-runner:result" in c["body"]]


def test_documented_issue_becomes_one_pull_request(world: World, executor: dict[str, Any]) -> None:
    number = world.file_issue(dispatch_body(instruction=f"Add a line.\n\n{README_PATCH}"))

    outcomes = world.run_once(**executor)

    assert [o.status for o in outcomes] == ["succeeded"]
    pulls = world.pulls()
    assert len(pulls) == 1 and f"Fixes {DISPATCH}#{number}" in pulls[0]["body"]
    readme = world.emu.file_at(TARGET, "agent-task-test-tas", "README.md")
    assert readme is not None and readme.endswith("Patched by the runner.\n")
    comments = result_comments(world, number)
    assert len(comments) == 1 and "finished task" in comments[0]
    assert world.labels(number) == {"copilot-agent", "processed"}


def test_second_pass_changes_nothing_and_a_removed_label_reruns(world: World, executor: dict[str, Any]) -> None:
    number = world.file_issue(dispatch_body(instruction=f"Add a line.\n\n{README_PATCH}"))
    world.run_once(**executor)
    sha = world.emu.branch_sha(TARGET, "agent-task-test-tas")
    comments = world.comments(number)

    assert world.run_once(**executor) == []
    assert world.comments(number) == comments

    world.emu.remove_label(DISPATCH, number, "processed")
    outcomes = world.run_once(**executor)

    assert [o.status for o in outcomes] == ["succeeded"]
    assert world.emu.branch_sha(TARGET, "agent-task-test-tas") == sha
    assert len(world.pulls()) == 1
    assert len(result_comments(world, number)) == 1
    assert "processed" in world.labels(number)


def test_a_bad_body_is_reported_once_and_not_retried(world: World, executor: dict[str, Any]) -> None:
    number = world.file_issue("## Instruction\n\nNo metadata here.\n\nTarget Repository: octocat/target\n")

    outcomes = world.run_once(**executor)

    assert [o.status for o in outcomes] == ["failed"]
    assert world.pulls() == []
    comments = result_comments(world, number)
    assert len(comments) == 1 and "agent_task_metadata" in comments[0]
    assert "agent-failed" in world.labels(number)
