"""The meter tells an observer (the status page's live registry) the spend after every settled call."""

from __future__ import annotations

from runner.gateway.meter import Meter, Spend, Ticket
from runner.gateway.wire import TokenCount


def test_every_settled_call_reports_the_spend_so_far() -> None:
    seen: list[Spend] = []
    m = Meter(max_tokens=None, max_cost_usd=None, default_output=100, prices={"m": [1.0, 2.0]})
    m.on_spend = seen.append
    for _ in range(2):
        ticket = m.admit("m", 30, 10)
        assert isinstance(ticket, Ticket)
        m.settle(ticket, TokenCount(100, 20), 30)
    assert [(s.calls, s.tokens) for s in seen] == [(1, 120), (2, 240)]
    assert seen[-1].cost_usd is not None and seen[-1].model == "m"
