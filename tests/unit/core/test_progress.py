"""The progress decision: a progress edit spends a write only for a lone task, from spare budget."""

from __future__ import annotations

from runner.core.progress import ProgressDecision, WriteBudget, progress_decision
from runner.ledger.base import Workload


def decide(used: int = 0, queued: int = 0, running: int = 1, rounds: int = 0, per_hour: int = 500,
           reserve: int = 25) -> ProgressDecision:
    return progress_decision(WriteBudget(used_last_hour=used, per_hour=per_hour, reserve=reserve,
                                         workload=Workload(queued, running, rounds)))


def test_a_lone_task_on_an_idle_runner_shows_progress() -> None:
    decision = decide(used=10)
    assert decision.post and decision.reason == "spare budget"
    assert decision.needed == 10 + 3 + 25 + 1
    assert decision.explanation == "post: spare budget (39 of 500 writes an hour needed)"


def test_no_progress_edit_while_other_work_waits() -> None:
    assert not decide(queued=1).post  # a task queued behind this one
    assert not decide(running=2).post  # another worker, or another replica, is busy
    assert decide(rounds=1).reason == "other work waiting"  # a feedback round is pending


def test_a_lone_task_spends_only_what_the_hour_does_not_need() -> None:
    # 3 for this task, 25 in reserve and the edit itself: 29 on top of what was used.
    assert decide(used=500 - 29).post
    refused = decide(used=500 - 28)
    assert not refused.post and refused.reason == "budget needed" and refused.needed == 501


def test_an_unknown_workload_is_judged_on_the_budget_alone() -> None:
    unknown = progress_decision(WriteBudget(used_last_hour=0, per_hour=500, reserve=25, workload=None))
    assert unknown.post
    assert not progress_decision(WriteBudget(used_last_hour=480, per_hour=500, reserve=25, workload=None)).post
