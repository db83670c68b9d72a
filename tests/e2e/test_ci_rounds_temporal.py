"""CI rounds under EXECUTOR=temporal: the same scenarios as test_ci_rounds.py, as signals to the issue's workflow."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests import chaos
from tests.conftest import World
from tests.e2e import test_ci_rounds as scenarios
from tests.e2e.test_feedback_temporal import ROUND, runs
from tests.temporal_server import temporal_dev_server

llm = scenarios.llm


@pytest.fixture()
def temporal(world: World) -> Iterator[dict[str, Any]]:
    with temporal_dev_server() as address:
        yield {"executor": "temporal", "temporal_address": address, "lease_seconds": 2}


def test_a_failing_check_gets_one_round_that_fixes_it(world: World, llm: Any, temporal: dict[str, Any]) -> None:
    number, _ = scenarios.one_round_fixes_the_check(world, llm, **temporal)
    # The CI round ran as the pipeline's second entry: the same three round activities as feedback.
    assert ROUND in [names for _, names in runs(temporal["temporal_address"], number)]


def test_a_check_failing_on_the_base_too_gets_no_round_and_one_comment(world: World,
                                                                       temporal: dict[str, Any]) -> None:
    scenarios.red_on_the_base_too(world, **temporal)


def test_an_unchanged_failure_stops_with_the_give_up_comment(world: World, llm: Any,
                                                             temporal: dict[str, Any]) -> None:
    scenarios.no_progress_gives_up(world, llm, **temporal)


def test_max_ci_rounds_stops_the_same_way(world: World, llm: Any, temporal: dict[str, Any]) -> None:
    scenarios.the_cap_stops_it(world, llm, **temporal)


def test_a_pending_check_gets_no_round_until_it_completes(world: World, llm: Any, temporal: dict[str, Any]) -> None:
    scenarios.pending_waits(world, llm, **temporal)


def test_a_persons_push_stops_ci_rounds(world: World, tmp_path: Any, temporal: dict[str, Any]) -> None:
    scenarios.a_persons_push_stops_it(world, tmp_path, **temporal)


def test_a_hostile_log_changes_nothing_but_the_fenced_text(world: World, llm: Any, temporal: dict[str, Any]) -> None:
    scenarios.a_hostile_log_is_only_data(world, llm, **temporal)


def test_a_worker_killed_mid_ci_round_gives_exactly_one_new_commit(world: World, llm: Any, tmp_path: Any,
                                                                   temporal: dict[str, Any]) -> None:
    number, branch = scenarios.kill_after_the_ci_rounds_push(
        world, llm, tmp_path, temporal, EXECUTOR="temporal", TEMPORAL_ADDRESS=temporal["temporal_address"],
        WORKSPACE_DIR=str(tmp_path / "victim-ws"))
    world.emu.clear_request_log()

    # A serving worker takes the round's publish over when the dead one's heartbeat times out (no poll: the
    # head is green now, so nothing new is found; the workflow is still running on the server).
    app = world.app(**scenarios.model(llm), **temporal)
    stop = threading.Event()
    worker = threading.Thread(target=app.executor.serve, args=(stop,), kwargs={"poll": False}, daemon=True)
    worker.start()
    try:
        assert chaos.wait_until(lambda: "Round 1" in world.pulls()[0]["body"], time.monotonic() + 60, 0.2)
        time.sleep(1.0)  # the publish's comment edit follows the PR body
    finally:
        stop.set()
        worker.join(30)

    scenarios.assert_one_ci_round_after_the_crash(world, number, branch)
