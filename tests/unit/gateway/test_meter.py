"""The gateway's budget arithmetic: refuse the call that would cross the cap, before it is sent."""

from __future__ import annotations

from runner.gateway.meter import Meter, Refusal, Ticket
from runner.gateway.wire import TokenCount


def meter(**kwargs: object) -> Meter:
    values: dict = {"max_tokens": None, "max_cost_usd": None, "default_output": 1000}
    values.update(kwargs)
    return Meter(**values)


def test_a_call_that_would_cross_the_token_cap_is_refused_and_remembered() -> None:
    m = meter(max_tokens=1000)
    first = m.admit("gpt-4o", 300, 200)  # 100 input estimated at 3 bytes a token, 200 output at most
    assert isinstance(first, Ticket) and first.tokens == 300
    m.settle(first, TokenCount(300, 150), 300)  # the answer says 1 byte a token
    second = m.admit("gpt-4o", 300, 200)  # now 300 input estimated: 450 + 500 <= 1000
    assert isinstance(second, Ticket)
    m.settle(second, TokenCount(300, 150), 300)
    third = m.admit("gpt-4o", 300, 200)  # 900 + 500 > 1000
    assert isinstance(third, Refusal) and third.kind == "tokens"
    assert "900 tokens used" in third.message and "MAX_TOKENS_PER_TASK" in third.message
    assert m.refused == third
    assert m.spend.calls == 2 and m.spend.tokens == 900
    assert not m.over_budget()


def test_reservations_of_calls_in_flight_count() -> None:
    m = meter(max_tokens=1000)
    assert isinstance(m.admit("m", 900, 100), Ticket)  # 300 + 100 reserved
    assert isinstance(m.admit("m", 900, 100), Ticket)  # 800
    assert isinstance(m.admit("m", 900, 100), Refusal)  # 1200 > 1000


def test_a_missing_max_tokens_is_charged_the_default_output() -> None:
    m = meter(max_tokens=1000, default_output=999)
    assert isinstance(m.admit("m", 3, None), Ticket)
    assert isinstance(m.admit("m", 3, None), Refusal)


def test_the_cost_cap_uses_model_prices_and_refuses_unknown_prices() -> None:
    m = meter(max_cost_usd=0.01)  # gpt-4o: $2.50 / $10 per million
    ticket = m.admit("gpt-4o", 3000, 500)  # 1000 in, 500 out: $0.0075
    assert isinstance(ticket, Ticket)
    m.settle(ticket, TokenCount(1000, 500), 3000)
    refused = m.admit("gpt-4o", 3000, 500)
    assert isinstance(refused, Refusal) and refused.kind == "cost"
    assert "$0.0075 used" in refused.message
    assert m.spend.cost_usd == 0.0075
    unknown = meter(max_cost_usd=1.0).admit("my-local-model", 10, 10)
    assert isinstance(unknown, Refusal) and unknown.kind == "price"
    priced = meter(max_cost_usd=1.0, prices={"my-local-model": [0, 0]}).admit("my-local-model", 10, 10)
    assert isinstance(priced, Ticket)


def test_a_call_without_usage_is_charged_its_estimate_and_a_failed_one_nothing() -> None:
    m = meter()
    ticket = m.admit("gpt-4o-mini", 30, 50)
    spend = m.settle(ticket, None, 30)
    assert (spend.input_tokens, spend.output_tokens, spend.estimated_calls) == (10, 50, 1)
    m.release(m.admit("gpt-4o-mini", 30, 50))  # type: ignore[arg-type]
    assert m.spend.calls == 1


def test_usage_past_the_cap_marks_the_task_over_budget() -> None:
    m = meter(max_tokens=100)
    ticket = m.admit("m", 30, 50)
    assert isinstance(ticket, Ticket)
    m.settle(ticket, TokenCount(90, 50), 30)
    assert m.over_budget()
    assert m.spend.describe() == "140 tokens (90 input, 50 output), $ unknown"
