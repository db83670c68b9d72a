"""The write pacer keeps GitHub's limits, on a fake clock: spacing, per minute, per hour, headers, shutdown."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from runner.errors import ShuttingDown
from runner.forge.pacer import (
    GITHUB_LIMITS,
    SHARED_MARGIN_S,
    WINDOW_MARGIN_S,
    LedgerSlots,
    LocalSlots,
    Pacer,
    SlotLedger,
    WriteLimits,
    next_slot,
)
from runner.ledger import open_ledger
from tests.unit.ledger.fixtures import fresh_url, raw_query


class FakeClock:
    """Monotonic and wall time that move only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall_offset = 1_700_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self.wall_offset

    def sleep(self, seconds: float) -> bool:
        self.slept.append(seconds)
        self.now += seconds
        return False


def paced(limits: WriteLimits | None = GITHUB_LIMITS) -> tuple[Pacer, FakeClock, list[float]]:
    clock = FakeClock()
    pacer = Pacer(limits, clock=clock, wall=clock.wall, sleep=clock.sleep)
    writes: list[float] = []
    return pacer, clock, writes


def write(pacer: Pacer, clock: FakeClock, writes: list[float], count: int) -> None:
    for _ in range(count):
        pacer.before(write=True)
        writes.append(clock.now)


def test_writes_are_at_least_a_second_apart() -> None:
    pacer, clock, writes = paced()
    write(pacer, clock, writes, 10)
    gaps = [b - a for a, b in zip(writes, writes[1:], strict=False)]
    assert min(gaps) >= 1.0
    assert writes[-1] - writes[0] == pytest.approx(9.0)


def test_no_more_than_80_a_minute_nor_500_an_hour() -> None:
    pacer, clock, writes = paced(WriteLimits(min_interval_s=0.0, per_minute=80, per_hour=500))
    write(pacer, clock, writes, 600)
    for i, t in enumerate(writes):
        in_minute = sum(1 for u in writes[: i + 1] if u > t - 60)
        in_hour = sum(1 for u in writes[: i + 1] if u > t - 3600)
        assert in_minute <= 80 and in_hour <= 500
    assert writes[79] == writes[0]  # a burst of 80 may go at once...
    assert writes[80] >= writes[0] + 60  # ...the 81st waits for the minute
    assert writes[500] >= writes[0] + 3600  # the 501st waits for the hour


def test_reads_are_not_paced() -> None:
    pacer, clock, _ = paced()
    for _ in range(50):
        pacer.before(write=False)
    assert clock.slept == []


def test_pacing_off_sends_writes_at_once() -> None:
    pacer, clock, writes = paced(None)
    write(pacer, clock, writes, 20)
    assert clock.slept == []


def test_threads_share_one_bucket() -> None:
    slots = LocalSlots(clock=lambda: 5.0)
    limits = WriteLimits()
    delays: list[float] = []
    lock = threading.Lock()

    def reserve() -> None:
        for _ in range(25):
            delay = slots.reserve("token", limits)
            with lock:
                delays.append(delay)

    threads = [threading.Thread(target=reserve) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(delays) == [float(i) for i in range(16 * 25)]  # one slot a second, none shared


def test_a_thread_woken_late_does_not_bunch_up_with_the_next_write() -> None:
    """Real threads and a real clock, with a scheduler that wakes sleepers late (as a loaded machine does)."""
    interval = 0.1
    stop = threading.Event()
    late = iter([0.0, 0.09, 0.0, 0.07, 0.0, 0.08, 0.0, 0.06] * 4)
    late_lock = threading.Lock()

    def oversleep(seconds: float) -> bool:
        with late_lock:
            extra = next(late, 0.0)
        return stop.wait(seconds + extra)

    pacer = Pacer(WriteLimits(min_interval_s=interval, per_minute=0, per_hour=0), sleep=oversleep, stop=stop)
    sent: list[float] = []
    lock = threading.Lock()

    def writer() -> None:
        for _ in range(3):
            pacer.before(write=True)
            with lock:
                sent.append(time.monotonic())

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent.sort()
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    assert len(sent) == 24
    assert min(gaps) >= interval - 0.03, gaps  # scheduling noise, not a late thread's 60-90 ms


def test_retry_after_holds_every_request() -> None:
    pacer, clock, _ = paced()
    pacer.observe({"Retry-After": "30"})
    pacer.before(write=False)
    assert clock.now == pytest.approx(1030.0)


def test_backs_off_before_the_primary_limit() -> None:
    pacer, clock, _ = paced()
    reset = clock.wall() + 100
    pacer.observe({"X-RateLimit-Remaining": "4000", "X-RateLimit-Limit": "5000", "X-RateLimit-Reset": str(reset)})
    pacer.before(write=False)
    pacer.before(write=False)
    assert clock.slept == []  # plenty left: no pacing
    pacer.observe({"X-RateLimit-Remaining": "10", "X-RateLimit-Limit": "5000", "X-RateLimit-Reset": str(reset)})
    started = clock.now
    for _ in range(5):
        pacer.before(write=False)
    assert clock.now - started == pytest.approx(4 * 10.0)  # 100 s / 10 left: one every 10 s
    pacer.observe({"X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "5000", "X-RateLimit-Reset": str(reset)})
    pacer.before(write=False)
    assert clock.wall() >= reset


def test_interrupt_cuts_a_wait_short_and_refuses_later_requests() -> None:
    pacer = Pacer(WriteLimits(min_interval_s=3600.0))
    pacer.before(write=True)
    timer = threading.Timer(0.2, pacer.interrupt)
    timer.start()
    with pytest.raises(ShuttingDown):
        pacer.before(write=True)  # would wait an hour
    with pytest.raises(ShuttingDown):
        pacer.before(write=False)
    timer.join()


def test_next_slot_is_pure() -> None:
    limits = WriteLimits(min_interval_s=1.0, per_minute=2, per_hour=3)
    assert next_slot([], 10.0, limits) == 10.0
    assert next_slot([10.0], 10.0, limits) == 11.0
    # The windows keep a margin (WINDOW_MARGIN_S) for a write that reaches GitHub late.
    assert next_slot([10.0, 11.0], 11.0, limits) == 70.0 + WINDOW_MARGIN_S
    assert next_slot([10.0, 11.0, 71.0], 71.0, limits) == 3610.0 + WINDOW_MARGIN_S


@pytest.mark.postgres
def test_replicas_share_one_budget_through_the_postgresql_ledger(tmp_path: Path) -> None:
    """Two processes' ledgers on one database hand out one slot a second between them."""
    with fresh_url("postgres", tmp_path, prefix="pacer_test") as url:
        ledgers = [open_ledger(url), open_ledger(url)]
        try:
            stores = [LedgerSlots(ledger) for ledger in ledgers if isinstance(ledger, SlotLedger)]
            assert len(stores) == 2
            limits = WriteLimits(min_interval_s=1.0, per_minute=80, per_hour=500)
            for i in range(10):
                stores[i % 2].reserve("token-hash", limits)
            other = stores[0].reserve("another-token", limits)
            # Either replica sees every replica's writes of the token in the trailing hour.
            used = [store.used("token-hash", 3600.0) for store in stores]
            slots = [row[0] for row in raw_query(
                url, "SELECT at FROM github_write_slots WHERE bucket = 'token-hash' ORDER BY at")]
        finally:
            for ledger in ledgers:
                ledger.close()
    # Whichever replica asked, each slot lands at least a second (and the margin for wake-up
    # jitter across processes) after the one before; another token has a budget of its own.
    assert len(slots) == 10
    assert all(b - a >= 1.0 + SHARED_MARGIN_S - 1e-6 for a, b in zip(slots, slots[1:], strict=False)), slots
    assert other < 0.5
    assert used == [10, 10]


def test_notifying_writes_have_a_lane_of_their_own() -> None:
    """As in octokit's throttling plugin: a notifying write waits in its lane, other writes do not."""
    pacer, clock, _ = paced(WriteLimits(min_interval_s=1.0, notify_interval_s=3.0))
    sent: list[tuple[str, float]] = []
    for kind in ("notify", "notify", "write", "notify"):
        pacer.before(write=True, notify=kind == "notify")
        sent.append((kind, clock.now))
    notify_times = [t for kind, t in sent if kind == "notify"]
    assert [b - a for a, b in zip(notify_times, notify_times[1:], strict=False)] == [3.0, 3.0]
    assert sent[2] == ("write", 1004.0)  # one second after the second comment, not three
    assert pacer.writes == 4


def test_a_read_is_never_queued_behind_writes() -> None:
    pacer, clock, _ = paced()
    for _ in range(5):
        pacer.before(write=True)
    before = clock.now
    pacer.before(write=False)
    assert clock.now == before


def test_a_graphql_request_with_mutations_takes_one_slot_per_mutation() -> None:
    pacer, clock, _ = paced()
    pacer.before(write=True, cost=3)
    assert pacer.writes == 3 and pacer.writes_used() == 3
    assert clock.now == 1002.0  # three slots a second apart


def test_compressed_windows_keep_the_same_limits_on_a_faster_clock() -> None:
    limits = WriteLimits(min_interval_s=1.0, per_minute=80, per_hour=500).compressed(60)
    assert (limits.min_interval_s, limits.minute_s, limits.hour_s) == (1 / 60, 1.0, 60.0)
    pacer, clock, writes = paced(limits)
    write(pacer, clock, writes, 501)
    for i, t in enumerate(writes):
        assert sum(1 for u in writes[: i + 1] if u > t - 1.0) <= 80
    assert writes[500] >= writes[0] + 60.0  # the 501st waits for the compressed hour
    assert pacer.writes_used() <= 500
