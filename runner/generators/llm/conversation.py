"""Name the neutral conversation every model backend translates: turns, tool calls, requests, replies.

A :class:`Backend` turns these into its wire format and back; the loop
(:mod:`runner.generators.llm.loop`) never sees an SDK type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from runner.generators.llm.tools import (
    ToolSpec,
)

MAX_TOOL_RESULT_CHARS = 20_000

@dataclass(frozen=True)
class Call:
    """A tool call as the model made it; ``arguments`` stays a string when it was not valid JSON."""

    id: str
    name: str
    arguments: Mapping[str, Any] | str


@dataclass(frozen=True)
class UserText:
    text: str


@dataclass(frozen=True)
class AssistantTurn:
    text: str
    calls: tuple[Call, ...] = ()


@dataclass(frozen=True)
class ToolOutcome:
    call: Call
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class ToolResults:
    outcomes: tuple[ToolOutcome, ...]


Message = UserText | AssistantTurn | ToolResults


@dataclass(frozen=True)
class ModelRequest:
    """One call to a model: the conversation so far plus the limits for this call."""

    system: str
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...]
    max_output_tokens: int
    timeout: float
    max_retries: int
    deadline_bound: bool  # the timeout is the task's deadline, so a timeout means "out of time"
    #: "required" while no file has been edited (a reply without a tool call cannot be the end
    #: yet), "auto" after; each backend sends what its server honours.
    tool_choice: Literal["auto", "required"] = "auto"


@dataclass(frozen=True)
class ModelReply:
    text: str
    calls: tuple[Call, ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    truncated: bool = False


class Backend(Protocol):
    """Translate the neutral conversation to one provider's API and back."""

    model: str

    def complete(self, request: ModelRequest) -> ModelReply: ...


@dataclass(frozen=True)
class LoopOptions:
    """What the loop needs from the settings, gathered once by the generator."""

    generator: str
    max_file_bytes: int = 1_000_000
    allow_workflows: bool = False
    prices: Mapping[str, Sequence[float]] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    max_retries: int = 2
    #: The model upstream (``provider:host``): its breaker holds a turn while it is down (issue #29).
    upstream: str = ""
    #: Who the upstream is, for people: "the Anthropic API".
    service: str = "the model API"
    #: How long one turn is retried in place while the upstream is down (MODEL_TURN_RETRY_SECONDS).
    turn_retry_s: float = 300.0

    @classmethod
    def from_settings(cls, settings: Any, generator: str, *, max_retries: int = 2, upstream: str = "",
                      service: str = "the model API") -> LoopOptions:
        return cls(
            generator=generator,
            max_file_bytes=settings.max_file_bytes,
            allow_workflows=settings.allow_workflow_changes,
            prices=dict(settings.model_prices),
            secrets=tuple(settings.secrets()),
            max_retries=max_retries,
            upstream=upstream,
            service=service,
            turn_retry_s=float(getattr(settings, "model_turn_retry_seconds", 300.0)),
        )
