"""Feedback rounds under EXECUTOR=temporal: signals to the issue's workflow, one round at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DISPATCH, README_PATCH, TARGET, World, dispatch_body
from tests.e2e import test_feedback
from tests.e2e.test_feedback import (
    APP_PATCH,
    APP_PATCH_2,
    commits,
    first_run,
    one_agent_round,
    push_a_persons_commit,
    result_comments,
    two_items_together,
)
from tests.temporal_server import temporal_dev_server

#: Events in one run before the server suggests continuing as new (its default is 4 Ki); one round
#: (three activities) passes it, a fresh run does not.
SUGGEST_CONTINUE_AS_NEW_AFTER = 10

users = test_feedback.users  # the same writers and readers
ROUND = ["dispatch_round_intake", "dispatch_round_change", "dispatch_round_publish"]
FIRST_RUN = ["dispatch_intake", "dispatch_change", "dispatch_publish"]


def activities(address: str, number: int) -> list[str]:
    """The activities the issue's latest workflow run scheduled, in order (retries not repeated)."""
    return runs(address, number)[0][1]


def attempts(address: str, number: int) -> dict[str, int]:
    """How many attempts each activity of the issue's latest workflow run took."""
    from temporalio.client import Client

    from runner.executors.temporal.types import workflow_id

    async def go() -> dict[str, int]:
        handle = (await Client.connect(address)).get_workflow_handle(workflow_id(DISPATCH, number))
        names: dict[int, str] = {}
        taken: dict[str, int] = {}
        async for e in handle.fetch_history_events():
            if e.HasField("activity_task_scheduled_event_attributes"):
                names[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
            elif e.HasField("activity_task_started_event_attributes"):
                started = e.activity_task_started_event_attributes
                taken[names[started.scheduled_event_id]] = started.attempt
        return taken
    return asyncio.run(go())


def runs(address: str, number: int) -> list[tuple[str, list[str]]]:
    """Every run of the issue's workflow, newest first: its status and the activities it scheduled."""
    from temporalio.client import Client

    from runner.executors.temporal.types import workflow_id

    async def go() -> list[tuple[str, list[str]]]:
        client = await Client.connect(address)
        wid = workflow_id(DISPATCH, number)
        found = []
        async for execution in client.list_workflows(f'WorkflowId = "{wid}"'):
            handle = client.get_workflow_handle(wid, run_id=execution.run_id)
            names = [e.activity_task_scheduled_event_attributes.activity_type.name
                     async for e in handle.fetch_history_events()
                     if e.HasField("activity_task_scheduled_event_attributes")]
            found.append((execution.status.name if execution.status else "?", names))
        return found
    return asyncio.run(go())


def history(address: str, number: int) -> tuple[bool, list[str]]:
    """Whether every run of the issue's workflow has completed, and the activities of all its runs in order."""
    found = runs(address, number)
    return all(status == "COMPLETED" for status, _ in found), [name for _, names in reversed(found) for name in names]


@pytest.fixture()
def temporal(users: World) -> Iterator[dict[str, Any]]:
    with temporal_dev_server() as address:
        yield {"executor": "temporal", "temporal_address": address, "lease_seconds": 2}


def test_agent_comment_pushes_a_second_commit_and_a_repeated_poll_is_a_no_op(
        users: World, temporal: dict[str, Any]) -> None:
    world = users
    number, branch = one_agent_round(world, **temporal)
    assert activities(temporal["temporal_address"], number) == ROUND  # a round is split like the first run
    [after] = result_comments(world, number)

    # A new process polls the same item again (its workflow has closed): no round, no commit.
    world.run_once(**temporal)

    assert len(commits(world, branch)) == 2
    [again] = result_comments(world, number)
    assert again["body"] == after["body"]
    assert world.pulls()[0]["body"].count("Round 1") == 1


def test_two_items_posted_together_give_two_sequential_rounds(users: World, temporal: dict[str, Any]) -> None:
    number = two_items_together(users, **temporal)
    assert activities(temporal["temporal_address"], number) == ROUND * 2


def test_a_worker_killed_mid_round_gives_exactly_one_new_commit(users: World, tmp_path: Path,
                                                                temporal: dict[str, Any]) -> None:
    number, branch = test_feedback.kill_after_the_rounds_push(
        users, tmp_path, temporal, EXECUTOR="temporal", TEMPORAL_ADDRESS=temporal["temporal_address"],
        WORKSPACE_DIR=str(tmp_path / "victim-ws"))

    users.run_once(**temporal)  # re-signals the item (dropped as seen) and hosts the worker that retries the round

    test_feedback.assert_exactly_one_round(users, number, branch)
    assert activities(temporal["temporal_address"], number) == ROUND  # only the publish was retried


def test_a_worker_killed_in_the_rounds_push_is_replaced_and_pushes_once(users: World, tmp_path: Path,
                                                                      temporal: dict[str, Any]) -> None:
    """Killed -9 inside the round's change activity, its push hanging: another worker retries the change."""
    number, branch = test_feedback.kill_after_the_rounds_push(
        users, tmp_path, temporal, during_push=True, EXECUTOR="temporal",
        TEMPORAL_ADDRESS=temporal["temporal_address"], WORKSPACE_DIR=str(tmp_path / "victim-ws"))
    assert len(commits(users, branch)) == 1  # nothing landed before the kill

    users.run_once(**temporal)

    test_feedback.assert_exactly_one_round(users, number, branch)
    assert activities(temporal["temporal_address"], number) == ROUND


def test_a_rounds_stages_retry_a_transient_error_and_report_the_others_once(
        users: World, tmp_path: Path, temporal: dict[str, Any]) -> None:
    """The round's activities have the first run's retry policy and error classes."""
    world, address = users, temporal["temporal_address"]
    number, branch = first_run(world, **temporal)
    world.emu.add_comment(DISPATCH, number, f"/agent\n\n{APP_PATCH}", as_user="wendy")
    fault = world.emu.inject(status=500, count=1, method="GET", path_regex=r"/info/refs$", include_git=True)

    world.run_once(**temporal)  # the round's intake fetches the mirror: GitHub's git fails once

    # Issue #29: a fetch is retried in place (git transport's breaker), so the blip costs the
    # activity no attempt.
    assert fault.fired == 1 and len(commits(world, branch)) == 2
    assert attempts(address, number) == {"dispatch_round_intake": 1, "dispatch_round_change": 1,
                                         "dispatch_round_publish": 1}

    # A person pushed to the branch: the round must say so, once, and not retry it.
    push_a_persons_commit(world, tmp_path, branch)
    world.emu.add_comment(DISPATCH, number, f"/agent\n\n{APP_PATCH_2}", as_user="wendy")

    world.run_once(**temporal)

    assert commits(world, branch)[0] == "human work"
    [comment] = result_comments(world, number)
    assert "does not overwrite a person's work" in comment["body"] and "Round 2" in comment["body"]
    assert attempts(address, number) == {"dispatch_round_intake": 1, "dispatch_round_change": 1,
                                         "dispatch_round_publish": 1}
    assert "agent-failed" not in world.labels(number)  # the round failed, not the task


def test_queued_items_survive_continue_as_new_and_each_runs_once(users: World) -> None:
    """The server itself suggests continuing as new (a low history limit): the queue goes to the next run."""
    world = users
    limit = {"limit.historyCount.suggestContinueAsNew": str(SUGGEST_CONTINUE_AS_NEW_AFTER)}
    with temporal_dev_server(dynamic_config=limit) as address:
        settings = {"executor": "temporal", "temporal_address": address, "lease_seconds": 2}
        number, branch = first_run(world, **settings)
        world.emu.add_comment(DISPATCH, number, f"/agent first\n\n{APP_PATCH}", as_user="wendy")
        world.emu.add_comment(DISPATCH, number, f"/agent second\n\n{APP_PATCH_2}", as_user="ada")

        world.run_once(**settings)

        history = runs(address, number)
    assert [status for status, _ in history] == ["COMPLETED", "CONTINUED_AS_NEW", "COMPLETED"]
    # The rounds' run ran one round, then went on as new with the other item queued: each ran once.
    assert [names for _, names in history[:2]] == [ROUND, ROUND]
    subjects = commits(world, branch)
    assert len(subjects) == 3
    assert "feedback round 2" in subjects[0] and "feedback round 1" in subjects[1]
    [pull] = world.pulls()
    assert pull["body"].count("Round 1") == 1 and pull["body"].count("Round 2") == 1
    [comment] = result_comments(world, number)
    assert "Round 1" in comment["body"] and "Round 2" in comment["body"] and "Round 3" not in comment["body"]


# -- by webhook (the runner as a GitHub App, serving its webhook and a worker) ----------------


@pytest.fixture()
def hooked_temporal(tmp_path: Path) -> Iterator[tuple[Any, str]]:
    from github_emulator import GitHubEmulator

    from tests.app_world import make_app_world
    from tests.e2e.test_webhooks import Hooked

    with temporal_dev_server() as address, GitHubEmulator(tmp_path / "github") as emu:
        aw = make_app_world(emu, tmp_path)
        for login, role in (("wendy", "write"), ("tina", "triage")):
            emu.add_user(login, f"{login}-token")
            emu.set_permission(DISPATCH, login, role)
            emu.set_permission(TARGET, login, role)
        h = Hooked(aw, executor="temporal", temporal_address=address, lease_seconds=2)
        h.serve()
        yield h, address
        h.close()
        for built in aw.world.apps:
            built.close()


def test_an_agent_comment_by_webhook_is_one_round_a_redelivery_nothing_and_a_triager_is_ignored(
        hooked_temporal: tuple[Any, str]) -> None:
    from tests.e2e.test_webhooks import wait_until

    hooked, address = hooked_temporal
    world: World = hooked.aw.world
    number = world.file_issue(dispatch_body(instruction=f"Patch the README.\n\n{README_PATCH}"))
    wait_until(lambda: "processed" in world.labels(number))
    [pull] = world.pulls()
    branch = pull["head"]["ref"]
    [before] = result_comments(world, number)

    world.emu.add_comment(DISPATCH, number, f"/agent please also log a line\n\n{APP_PATCH}", as_user="wendy")
    [delivery] = [d for d in world.emu.wait_for_deliveries()
                  if d.event == "issue_comment" and d.payload()["comment"]["user"]["login"] == "wendy"]
    assert delivery.status_code == 202
    # The comment may reach the task's first run before it closes (its publish labelled the issue, the
    # workflow had not ended yet): then the round runs in that run, else in a run of its own. Either
    # way the history reads the same: the first run's stages, then one round.
    wait_until(lambda: history(address, number) == (True, FIRST_RUN + ROUND))
    subjects = commits(world, branch)
    assert len(subjects) == 2 and "feedback round 1" in subjects[0]
    assert world.emu.file_at(TARGET, branch, "src/app.py") == "print('hello')\nprint('round one')\n"
    [after] = result_comments(world, number)
    assert after["id"] == before["id"] and "Round 1" in after["body"]

    # GitHub redelivers the same delivery: recognised, nothing signalled, nothing run.
    again = world.emu.redeliver(delivery.id)
    world.emu.wait_for_deliveries()
    assert again.guid == delivery.guid and again.status_code == 200
    assert hooked.metric("issue_comment", "duplicate") == 1
    assert history(address, number) == (True, FIRST_RUN + ROUND) and len(commits(world, branch)) == 2

    # A triager may not ask for a round: its intake reads who they are and stops there.
    world.emu.add_comment(DISPATCH, number, f"/agent\n\n{APP_PATCH_2}", as_user="tina")
    wait_until(lambda: history(address, number) == (True, FIRST_RUN + ROUND + ROUND[:1]))
    assert len(commits(world, branch)) == 2
    assert world.emu.file_at(TARGET, branch, "src/app.py") == "print('hello')\nprint('round one')\n"
    [last] = result_comments(world, number)
    assert last["body"] == after["body"]
    assert world.pulls()[0]["body"].count("Round 1") == 1 and "@tina" not in world.pulls()[0]["body"]
