"""What the status page reads from a pacer: writes in the last minute and hour, the next slot, the rate limit."""

from __future__ import annotations

from runner.forge.pacer import Pacer, WriteLimits
from tests.unit.forge.test_pacer import FakeClock


def test_the_view_counts_sent_and_waiting_writes_and_says_what_github_said() -> None:
    clock = FakeClock()
    pacer = Pacer(WriteLimits(min_interval_s=1.0, per_minute=80, per_hour=500), clock=clock, wall=clock.wall,
                  sleep=clock.sleep)
    for _ in range(3):
        pacer.before(write=True)
    clock.now += 120  # two minutes later: out of the minute, still in the hour
    pacer.before(write=True)
    pacer.observe({"X-RateLimit-Remaining": "4321", "X-RateLimit-Limit": "5000",
                   "X-RateLimit-Reset": str(clock.wall() + 600), "Retry-After": "7"})

    view = pacer.view()

    assert (view.writes_last_minute, view.writes_last_hour, view.reserved) == (1, 4, 0)
    assert view.rate_remaining == 4321 and view.rate_limit == 5000
    assert view.hold_s == 7.0 and view.next_write_in_s == 7.0
    assert view.limits is not None and view.limits.per_hour == 500


def test_with_pacing_off_writes_are_still_counted() -> None:
    clock = FakeClock()
    pacer = Pacer(None, clock=clock, wall=clock.wall, sleep=clock.sleep)
    pacer.before(write=True)
    pacer.before(write=False)
    view = pacer.view()
    assert (view.writes_last_minute, view.writes_last_hour, view.limits, view.next_write_in_s) == (1, 1, None, 0.0)
