"""A blip is retried where it happened; what creates something is looked for before it is sent again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from runner.core.policy import retry_in_place
from runner.errors import (
    ForgeError,
    GeneratorUnavailable,
    NotFound,
    RateLimited,
    RunnerError,
    WorkspaceError,
)
from runner.steps import retry
from runner.steps.retry import RetryPolicy

LOG = structlog.get_logger("test")


class Clock:
    """Time that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def failing(*errors: RunnerError, then: str = "done") -> tuple[Callable[[], str], list[int]]:
    """An action that raises ``errors`` one per call, then returns ``then``; and its call count."""
    calls = [0]

    def action() -> str:
        calls[0] += 1
        if calls[0] <= len(errors):
            raise errors[calls[0] - 1]
        return then

    return action, calls


def run(action: Callable[[], str], clock: Clock, **kw: Any) -> str:
    return retry.call(action, what="comment on o/r#1", log=LOG, sleep=clock.sleep, clock=clock, **kw)


@pytest.mark.parametrize(("error", "retried"), [
    (ForgeError("GitHub failed (502)."), True),
    (RateLimited("slow down", retry_after=1.0), True),
    (WorkspaceError("git push: connection reset"), True),
    (NotFound("no such issue"), False),  # a ForgeError, but permanent
    (GeneratorUnavailable("the model is overloaded"), False),  # transient, but not GitHub's or git's
])
def test_only_transient_github_and_git_errors_are_retried_in_place(error: RunnerError, retried: bool) -> None:
    assert retry_in_place(error) is retried


def test_a_blip_is_retried_with_growing_jittered_waits() -> None:
    clock = Clock()
    action, calls = failing(ForgeError("502"), ForgeError("502"), ForgeError("502"))
    with capture_logs() as logs:
        assert run(action, clock) == "done"
    assert calls[0] == 4
    # equal jitter: uniform(c/2, c) with c = 0.5, 1, 2
    for wait, ceiling in zip(clock.sleeps, (0.5, 1.0, 2.0), strict=True):
        assert ceiling / 2 <= wait <= ceiling
    assert [entry["tried"] for entry in logs if entry["event"] == "retrying in place"] == [1, 2, 3]


def test_the_last_failure_leaves_the_stage_when_the_tries_run_out() -> None:
    clock = Clock()
    action, calls = failing(*[ForgeError(f"502 #{n}") for n in range(1, 5)])
    with pytest.raises(ForgeError, match="502 #4"):
        run(action, clock)
    assert calls[0] == 4 and len(clock.sleeps) == 3


def test_a_permanent_error_is_not_retried() -> None:
    clock = Clock()
    action, calls = failing(NotFound("gone"))
    with pytest.raises(NotFound):
        run(action, clock)
    assert calls[0] == 1 and clock.sleeps == []


def test_a_rate_limit_waits_its_retry_after_but_not_past_the_budget() -> None:
    clock = Clock()
    action, _ = failing(RateLimited("slow down", retry_after=5.0))
    assert run(action, clock) == "done"
    assert clock.sleeps == [5.0]

    clock = Clock()
    action, calls = failing(RateLimited("slow down", retry_after=600.0))
    with pytest.raises(RateLimited):  # the task backs off for it instead
        run(action, clock, policy=RetryPolicy(budget_s=30.0))
    assert calls[0] == 1 and clock.sleeps == []


def test_what_was_made_by_a_failed_try_is_found_and_not_sent_again() -> None:
    clock = Clock()
    action, calls = failing(ForgeError("502 after the write"))
    looked: list[str] = []

    def recheck() -> str | None:
        looked.append("marker")
        return "the comment the failed POST made"

    with capture_logs() as logs:
        assert run(action, clock, recheck=recheck) == "the comment the failed POST made"
    assert calls[0] == 1  # the POST went out once
    assert looked == ["marker"]
    assert any(entry["event"].startswith("found it on GitHub") for entry in logs)


def test_the_first_try_does_not_look_and_a_fruitless_look_sends_again() -> None:
    clock = Clock()
    action, calls = failing(ForgeError("502 before the write"))
    looked: list[int] = []

    def recheck() -> str | None:
        looked.append(calls[0])
        return None

    assert run(action, clock, recheck=recheck) == "done"
    assert looked == [1]  # only after the failed try, before the second
    assert calls[0] == 2


def test_a_failing_look_is_retried_before_anything_is_sent_again() -> None:
    clock = Clock()
    action, calls = failing(ForgeError("502"))
    answers: list[RunnerError | None] = [ForgeError("listing failed"), None]

    def recheck() -> str | None:
        answer = answers.pop(0)
        if answer is not None:
            raise answer
        assert calls[0] == 1, "the action must not run again before a look has answered"
        return None

    assert run(action, clock, recheck=recheck) == "done"
    assert calls[0] == 2 and answers == []
