"""Count what a task's model calls cost and refuse the call that would cross its budget.

:class:`Meter` is the gateway's ledger for one task: every admitted call
reserves a conservative estimate (tokens already spent and reserved, plus the
request's input estimated from its size, plus its ``max_tokens``) and settles
it with the usage the response reported. A call whose estimate would cross
``Budget.max_tokens`` or ``Budget.max_cost_usd`` (what is left of
``MAX_TOKENS_PER_TASK`` / ``MAX_COST_USD_PER_TASK`` after the task's earlier
rounds) is refused before it is forwarded, and the refusal is remembered so
that the task ends as over budget. No I/O here; it is thread-safe.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from runner.core.pricing import cost_usd, format_cost, price_for
from runner.gateway.wire import TokenCount

#: Bytes of request per input token, before any response told us better: low, so estimates run high.
DEFAULT_BYTES_PER_TOKEN = 3.0


@dataclass(frozen=True)
class Refusal:
    """Why a call was not forwarded: ``kind`` is ``tokens``, ``cost`` or ``price``."""

    kind: str
    message: str
    model: str | None


@dataclass(frozen=True)
class Ticket:
    """An admitted call's reservation, settled by :meth:`Meter.settle`."""

    model: str | None
    input_estimate: int
    output_limit: int

    @property
    def tokens(self) -> int:
        return self.input_estimate + self.output_limit


@dataclass(frozen=True)
class Spend:
    """What the task's calls used so far, through this gateway."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    model: str | None = None
    estimated_calls: int = 0  # calls whose response reported no usage: charged at their estimate

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def describe(self) -> str:
        """``1234 tokens (1000 input, 234 output), $0.0012`` as the API generators say it."""
        return (f"{self.tokens} tokens ({self.input_tokens} input, {self.output_tokens} output), "
                f"{format_cost(self.cost_usd)}")


class Meter:
    """Admit, settle and refuse one task's model calls against its budget."""

    def __init__(
        self,
        *,
        max_tokens: int | None,
        max_cost_usd: float | None,
        default_output: int,
        prices: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self.max_tokens = max_tokens
        self.max_cost_usd = max_cost_usd
        self.default_output = default_output
        self.prices = prices or {}
        self.refusals: list[Refusal] = []
        self._lock = threading.Lock()
        self._spend = Spend()
        self._reserved_tokens = 0
        self._reserved_cost = 0.0
        self._bytes_per_token = DEFAULT_BYTES_PER_TOKEN
        #: Told the spend so far after every settled call (the status page's live tokens and cost).
        self.on_spend: Callable[[Spend], None] | None = None

    @property
    def spend(self) -> Spend:
        with self._lock:
            return self._spend

    @property
    def refused(self) -> Refusal | None:
        with self._lock:
            return self.refusals[0] if self.refusals else None

    def estimate_input(self, request_bytes: int) -> int:
        with self._lock:
            return math.ceil(request_bytes / self._bytes_per_token)

    def admit(self, model: str | None, request_bytes: int, max_output: int | None) -> Ticket | Refusal:
        """Reserve the call's estimate, or return (and remember) why it would cross the budget."""
        output = max_output or self.default_output
        with self._lock:
            ticket = Ticket(model, math.ceil(request_bytes / self._bytes_per_token), output)
            refusal = self._check(ticket)
            if refusal is not None:
                self.refusals.append(refusal)
                return refusal
            self._reserved_tokens += ticket.tokens
            self._reserved_cost += self._cost(model, ticket.input_estimate, output) or 0.0
            return ticket

    def settle(self, ticket: Ticket, usage: TokenCount | None, request_bytes: int) -> Spend:
        """Replace the call's reservation by what it used (its estimate when the response said nothing)."""
        with self._lock:
            self._reserved_tokens -= ticket.tokens
            self._reserved_cost -= self._cost(ticket.model, ticket.input_estimate, ticket.output_limit) or 0.0
            estimated = usage is None
            if usage is None:
                usage = TokenCount(ticket.input_estimate, ticket.output_limit)
            elif usage.input_tokens > 0 and request_bytes > 0:
                # Learn the request's bytes per token, so the next estimate scales from this one.
                self._bytes_per_token = max(0.1, min(request_bytes / usage.input_tokens, DEFAULT_BYTES_PER_TOKEN))
            cost = self._cost(ticket.model, usage.input_tokens, usage.output_tokens)
            total = None if cost is None or self._spend.cost_usd is None else self._spend.cost_usd + cost
            s = self._spend
            self._spend = Spend(calls=s.calls + 1, input_tokens=s.input_tokens + usage.input_tokens,
                                output_tokens=s.output_tokens + usage.output_tokens, cost_usd=total,
                                model=ticket.model or s.model,
                                estimated_calls=s.estimated_calls + (1 if estimated else 0))
            spend = self._spend
        if self.on_spend is not None:
            self.on_spend(spend)  # outside the lock: an observer never holds up the next call
        return spend

    def release(self, ticket: Ticket) -> None:
        """Drop a reservation whose call never reached the model (the upstream was unreachable)."""
        with self._lock:
            self._reserved_tokens -= ticket.tokens
            self._reserved_cost -= self._cost(ticket.model, ticket.input_estimate, ticket.output_limit) or 0.0

    def over_budget(self) -> bool:
        """Whether the task's calls used more than the budget allows, refused or not."""
        s = self.spend
        if self.max_tokens is not None and s.tokens > self.max_tokens:
            return True
        return self.max_cost_usd is not None and s.cost_usd is not None and s.cost_usd > self.max_cost_usd

    def _cost(self, model: str | None, input_tokens: int, output_tokens: int) -> float | None:
        return cost_usd(model, input_tokens, output_tokens, self.prices)

    def _check(self, ticket: Ticket) -> Refusal | None:
        spent = self._spend
        if self.max_tokens is not None:
            projected = spent.tokens + self._reserved_tokens + ticket.tokens
            if projected > self.max_tokens:
                return Refusal("tokens", (
                    f"The task's token budget would be crossed: {spent.tokens} tokens used, and this call "
                    f"may use up to {ticket.tokens} more ({ticket.input_estimate} input estimated, "
                    f"{ticket.output_limit} output at most), over the {self.max_tokens} tokens left "
                    "for the task (MAX_TOKENS_PER_TASK). The call was not sent to the model."), ticket.model)
        if self.max_cost_usd is not None:
            if price_for(ticket.model, self.prices) is None:
                return Refusal("price", (
                    f"MAX_COST_USD_PER_TASK is set, but no price is known for the model `{ticket.model}`, "
                    "so the limit could not be enforced; the call was not sent to the model. Add the "
                    "model to MODEL_PRICES."), ticket.model)
            cost = self._cost(ticket.model, ticket.input_estimate, ticket.output_limit) or 0.0
            so_far = spent.cost_usd or 0.0
            if so_far + self._reserved_cost + cost > self.max_cost_usd:
                return Refusal("cost", (
                    f"The task's cost budget would be crossed: {format_cost(so_far)} used, and this call "
                    f"may cost up to {format_cost(cost)} more, over the ${self.max_cost_usd:g} left for "
                    "the task (MAX_COST_USD_PER_TASK). The call was not sent to the model."), ticket.model)
        return None
