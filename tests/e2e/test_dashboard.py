"""The dashboard issue (DASHBOARD_ISSUE=true): one issue, edited within its budget; a writer's tick retries.

The real app runs tasks against the emulator; the dashboard is driven tick by
tick (what the runner does at each poll) on a clock the test moves, and what
GitHub saw is read from the emulator: its issues and its request log.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any, cast

import pytest

from runner.app import App, dashboard, status_page
from runner.core.dashboard import MARKER
from runner.ledger.base import Ledger, TaskKey
from runner.ops.dashboard import LABEL, Dashboard
from tests.conftest import DISPATCH, README_PATCH, TOKEN, World, dispatch_body

HOSTILE = "octo/<img src=x onerror=alert(1)>"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def setup(world: World) -> Iterator[tuple[App, Dashboard, Clock, dict[str, int]]]:
    ok = world.file_issue(dispatch_body("dash-ok-1", instruction=f"Patch it.\n\n{README_PATCH}"),
                          title="Add a line @everyone")
    bad = world.file_issue(dispatch_body("dash-bad-1", target=HOSTILE), title="Broken <b>task</b>")
    app = world.app(dashboard_issue=True, dashboard_every_seconds=60)
    assert sorted(o.status for o in app.executor.run_once()) == ["failed", "succeeded"]
    board, clock = make_board(app)
    yield app, board, clock, {"ok": ok, "bad": bad}


def make_board(app: App) -> tuple[Dashboard, Clock]:
    board = dashboard(app, status_page(app))
    clock = Clock()
    board.clock = clock
    return board, clock


def dashboards(world: World) -> list[dict[str, Any]]:
    """The dashboard issues, as GitHub's REST API lists them (open and closed)."""
    request = urllib.request.Request(f"{world.emu.base_url}/repos/{DISPATCH}/issues?state=all&per_page=100",
                                     headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 (the local emulator)
        return [i for i in json.load(resp) if MARKER in (i.get("body") or "")]


def writes(world: World, number: int) -> tuple[int, int]:
    """Issue creations and edits of the dashboard issue, from the request log."""
    created = sum(1 for r in world.emu.request_log
                  if r.method == "POST" and r.path.rstrip("/").endswith(f"/repos/{DISPATCH}/issues"))
    edited = sum(1 for r in world.emu.request_log
                 if r.method == "PATCH" and re.search(rf"/repos/{DISPATCH}/issues/{number}$", r.path.split("?")[0]))
    return created, edited


def test_one_issue_edited_only_when_changed_and_due(world: World, setup: Any) -> None:
    app, board, clock, n = setup
    assert board.tick() == "created"
    [issue] = dashboards(world)
    assert LABEL in {label["name"] if isinstance(label, dict) else label for label in issue["labels"]}
    body = issue["body"]
    assert f"<!-- agent-runner:retry:{n['bad']} -->" in body and "- [ ]" in body
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" in body and "<img" not in body  # neutralised
    assert "@everyone" not in body  # no mention
    assert board.tick() == "unchanged"

    world.file_issue(dispatch_body("dash-ok-2", instruction=f"Patch it.\n\n{README_PATCH}"), title="Another")
    app.executor.run_once()
    clock.now += 30
    assert board.tick() == "not due"  # changed, but the last write was 30 s ago
    clock.now += 31
    assert board.tick() == "edited"
    assert board.tick() == "unchanged"

    restarted, _ = make_board(app)  # a restart finds the same issue by its marker
    assert restarted.tick() == "unchanged"
    [again] = dashboards(world)
    assert again["number"] == issue["number"]
    assert writes(world, issue["number"]) == (1, 1)


def test_a_writers_tick_retries_the_task_and_a_readers_does_not(world: World, setup: Any) -> None:
    app, board, clock, n = setup
    ledger = cast(Ledger, app.ledger)
    assert board.tick() == "created"
    [issue] = dashboards(world)
    ticked = issue["body"].replace(f"- [ ] <!-- agent-runner:retry:{n['bad']} -->",
                                   f"- [x] <!-- agent-runner:retry:{n['bad']} -->")

    world.emu.set_permission(DISPATCH, "mallory", "read")
    world.emu.update_issue(DISPATCH, issue["number"], as_user="mallory", body=ticked)
    clock.now += 61
    board.tick()
    record = ledger.get(TaskKey(DISPATCH, n["bad"]))
    assert record is not None and record.status == "dead"  # a reader's tick does nothing
    assert "agent-failed" in world.labels(n["bad"])
    [issue] = dashboards(world)
    assert "- [x]" not in issue["body"]  # the next edit cleared it

    world.emu.set_permission(DISPATCH, "hubot", "write")
    ticked = issue["body"].replace(f"- [ ] <!-- agent-runner:retry:{n['bad']} -->",
                                   f"- [x] <!-- agent-runner:retry:{n['bad']} -->")
    world.emu.update_issue(DISPATCH, issue["number"], as_user="hubot", body=ticked)
    clock.now += 61
    assert board.tick() == "edited"
    record = ledger.get(TaskKey(DISPATCH, n["bad"]))
    assert record is not None and record.status == "queued"  # a writer's tick retries it
    assert "agent-failed" not in world.labels(n["bad"])
    [issue] = dashboards(world)
    assert f"retry:{n['bad']}" not in issue["body"]  # no longer failed
    assert board.tick() in ("unchanged", "not due")
    assert ledger.get(TaskKey(DISPATCH, n["bad"])).status == "queued"  # type: ignore[union-attr]
