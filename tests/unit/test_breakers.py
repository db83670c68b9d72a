"""The circuit breaker on plain values: when it opens, who probes, how often, and that it says so once."""

from __future__ import annotations

import threading

import pytest
from structlog.testing import capture_logs

from runner.breakers import Breaker, Breakers, retrying
from runner.errors import DependencyDown, ForgeError, NotFound, RateLimited, ShuttingDown


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, **kw: object) -> Breaker:
    return Breaker("github-api:test", service="GitHub", threshold=3, probe_cap_s=4.0, hold_s=0.0, clock=clock,
                   **kw)  # type: ignore[arg-type]


def test_it_opens_after_three_outages_in_a_row_and_a_real_answer_resets_the_count() -> None:
    clock = Clock()
    b = breaker(clock)
    b.failure()
    b.failure()
    b.settle(NotFound("404"))  # GitHub answered: it is up
    b.failure()
    b.failure()
    assert b.up
    with capture_logs() as logs:
        b.failure()
    assert not b.up
    assert [e["event"] for e in logs] == [f"GitHub unavailable since {b.state().since}"]


def test_while_open_one_probe_at_a_time_at_growing_intervals_capped() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.failure()
    assert not b.admit()  # the first probe is due 1 s after opening
    intervals = []
    for _ in range(5):
        due = b._next_probe
        intervals.append(round(due - clock.now, 3))
        clock.now = due
        assert b.admit() and not b.admit()  # one probe, nobody else
        b.failure()
    assert intervals == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert b.probes == 5
    with capture_logs() as logs:
        clock.now += 4
        assert b.admit()
        b.success()
    assert b.up and b.admit() and b.admit()
    assert [e["event"] for e in logs] == ["GitHub back after 19 s"]


def test_a_held_caller_raises_dependency_down_after_its_hold_and_shutdown_stops_it() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.failure()
    with pytest.raises(DependencyDown, match="GitHub has been unavailable"):
        b.enter(hold_s=0.0)
    registry = Breakers(hold_s=60.0)
    held = registry.get("x", service="GitHub")
    for _ in range(3):
        held.failure()
    caught: list[BaseException] = []

    def wait() -> None:
        try:
            held.enter()
        except BaseException as exc:  # noqa: BLE001 (the test inspects it)
            caught.append(exc)
    thread = threading.Thread(target=wait)
    thread.start()
    registry.interrupt()
    thread.join(5)
    assert caught and isinstance(caught[0], ShuttingDown | DependencyDown)


def test_the_breakers_own_probe_goes_first_and_the_request_only_once_it_answered() -> None:
    """Real time (about 3 s: the first probe after 1 s, the next 2 s later)."""
    sent: list[str] = []
    answers = iter([ForgeError("503"), None])

    def probe() -> None:
        sent.append("probe")
        answer = next(answers)
        if answer is not None:
            raise answer
    b = Breaker("g", service="GitHub", threshold=1, probe_cap_s=4.0, hold_s=30.0, probe=probe)
    b.failure()
    def request() -> str:
        sent.append("request")
        return "done"
    assert b.call(request, retry=False) == "done"
    assert sent == ["probe", "probe", "request"] and b.up


def test_a_read_is_retried_in_place_until_it_answers_through_a_rate_limit() -> None:
    b = Breaker("g", service="GitHub", threshold=3, probe_cap_s=4.0, hold_s=30.0)
    answers: list[BaseException | str] = [ForgeError("502"), RateLimited("slow", retry_after=0.2), "ok"]
    tries: list[int] = []

    def read() -> str:
        tries.append(1)
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer
    assert retrying(read, breaker=b, wait_for=lambda e: getattr(e, "retry_after", 0.0)) == "ok"
    assert len(tries) == 3 and b.up
