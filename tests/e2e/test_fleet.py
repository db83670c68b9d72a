"""A fleet: several dispatch repositories (DISPATCH_REPOS), each in its own GitHub App installation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from github_emulator import GitHubEmulator

from runner.ledger import TaskKey, open_ledger
from tests.app_world import SLUG
from tests.conftest import README, World, dispatch_body

ORGS = ("north", "south")


@pytest.fixture()
def fleet(tmp_path: Path) -> Iterator[tuple[World, dict[str, Any]]]:
    with GitHubEmulator(tmp_path / "github") as emu:
        app = emu.create_app(SLUG)
        for org in ORGS:
            emu.add_user(org)
            emu.create_repo(f"{org}/dispatch")
            emu.create_repo(f"{org}/target", files={"README.md": README})
            emu.install_app(app.id, org)
        world = World(emu=emu, root=tmp_path)
        settings = {"github_token": None, "github_app_id": app.id, "github_app_private_key": app.private_key_pem,
                    "dispatch_repo": None, "dispatch_repos": ",".join(f"{org}/dispatch" for org in ORGS),
                    "progress_after_seconds": 60}
        yield world, settings
        for built in world.apps:
            built.close()


def file(world: World, org: str, task_id: str, target: str | None = None) -> int:
    return world.emu.create_issue(f"{org}/dispatch", "Task", dispatch_body(task_id, target=target or f"{org}/target"),
                                  labels=["copilot-agent"], as_user=org)


def test_each_dispatch_repository_runs_its_own_tasks(fleet: tuple[World, dict[str, Any]]) -> None:
    world, settings = fleet
    numbers = {org: file(world, org, f"{org}0001-task") for org in ORGS}

    outcomes = world.run_once(**settings)

    assert sorted(o.status for o in outcomes) == ["succeeded", "succeeded"]
    for org, number in numbers.items():
        assert "processed" in world.emu.labels(f"{org}/dispatch", number)
        [pull] = world.emu.pulls(f"{org}/target")
        assert pull["user"]["login"] == f"{SLUG}[bot]"
    # The ledger keys every task by its dispatch repository.
    ledger = open_ledger(f"sqlite:///{world.root / 'data' / 'ledger.db'}")
    try:
        for org, number in numbers.items():
            record = ledger.get(TaskKey(f"{org}/dispatch", number))
            assert record is not None and record.status == "succeeded"
    finally:
        ledger.close()


def test_a_task_never_reaches_another_dispatch_repositorys_organisation(
        fleet: tuple[World, dict[str, Any]]) -> None:
    world, settings = fleet
    number = file(world, "north", "cross001-task", target="south/target")

    assert [o.status for o in world.run_once(**settings)] == ["failed"]

    assert world.emu.pulls("south/target") == []
    assert "agent-failed" in world.emu.labels("north/dispatch", number)


def test_one_repositorys_outage_does_not_stall_the_others(fleet: tuple[World, dict[str, Any]]) -> None:
    world, settings = fleet
    file(world, "north", "north002-task")
    number = file(world, "south", "south002-task")
    world.emu.faults.inject(status=503, method="GET", path_regex=r"^/repos/north/dispatch/issues$", count=100)

    outcomes = world.run_once(**settings, github_max_retries=1)

    assert [o.status for o in outcomes] == ["succeeded"]
    assert "processed" in world.emu.labels("south/dispatch", number)
    assert world.emu.pulls("north/target") == []
