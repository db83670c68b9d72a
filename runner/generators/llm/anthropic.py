"""Make the change with a Claude model through Anthropic's Messages API and its tool use.

Only translation lives here: the neutral conversation into Messages content
blocks (``tool_use`` in assistant turns, ``tool_result`` in user turns, with
consecutive same-role turns merged as the API requires) and the reply back.
The loop, budgets and tools are shared (:mod:`runner.generators.llm.loop`).
"""

from __future__ import annotations

import json
from typing import Any

import anthropic

from runner.config import Settings
from runner.generators.base import Changes, GenerationContext
from runner.generators.llm.conversation import (
    AssistantTurn,
    Call,
    LoopOptions,
    Message,
    ModelReply,
    ModelRequest,
    ToolResults,
    UserText,
)
from runner.generators.llm.loop import run_agent
from runner.generators.llm.sdk import (
    check_cost_limit,
    check_credentials,
    limit_retry_after,
    resolve_api_key,
    sdk_errors,
    upstream_of,
)
from runner.generators.llm.tools import ToolSpec


class AnthropicGenerator:
    """The ``anthropic`` generator: a tool-using agent over the Messages API."""

    name = "anthropic"

    def __init__(self, settings: Settings, *, max_retries: int = 2) -> None:
        key = resolve_api_key(settings.anthropic_api_key, settings.anthropic_base_url, generator="anthropic", prefix="ANTHROPIC")
        self._settings = settings
        self._key = key
        self._max_retries = max_retries
        self._options = LoopOptions.from_settings(
            settings, self.name, max_retries=max_retries, service="the Anthropic API",
            upstream=upstream_of("anthropic", settings.anthropic_base_url, "https://api.anthropic.com"))
        check_cost_limit(settings, settings.anthropic_model)

    def check(self) -> str:
        """What `agent-runner doctor` asks: do the key and the base URL work? (one cheap call)"""
        with anthropic.Anthropic(api_key=self._key, base_url=self._settings.anthropic_base_url, max_retries=0,
                          timeout=15.0) as client:
            return check_credentials(anthropic, client, "Anthropic", "ANTHROPIC_API_KEY")

    def generate(self, ctx: GenerationContext) -> Changes:
        # One client per task, closed when it ends. An explicit api_key keeps the
        # SDK from reading profiles or other credentials from disk.
        with anthropic.Anthropic(
            api_key=self._key, base_url=self._settings.anthropic_base_url, max_retries=self._max_retries,
            http_client=anthropic.DefaultHttpxClient(event_hooks={"response": [limit_retry_after]}),
        ) as client:
            backend = AnthropicBackend(client, ctx.model or self._settings.anthropic_model)
            return run_agent(ctx, backend, self._options)


def build(settings: Settings) -> AnthropicGenerator:
    """Registry factory for ``anthropic``."""
    return AnthropicGenerator(settings)


class AnthropicBackend:
    """Translate between the loop's neutral messages and the Messages API."""

    def __init__(self, client: anthropic.Anthropic, model: str) -> None:
        self._client = client
        self.model = model

    def complete(self, request: ModelRequest) -> ModelReply:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_output_tokens,
            "system": request.system,
            "messages": to_anthropic_messages(request.messages),
        }
        if request.tools:
            kwargs["tools"] = [to_anthropic_tool(spec) for spec in request.tools]
        client = self._client.with_options(timeout=request.timeout, max_retries=request.max_retries)
        with sdk_errors(anthropic, "Anthropic", "ANTHROPIC_API_KEY", request):
            message = client.messages.create(**kwargs)
        texts = [block.text for block in message.content if block.type == "text"]
        calls = tuple(
            Call(id=block.id, name=block.name, arguments=block.input if isinstance(block.input, dict) else {})
            for block in message.content
            if block.type == "tool_use"
        )
        usage = message.usage
        cached = (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
        return ModelReply(
            text="\n".join(texts),
            calls=calls,
            input_tokens=usage.input_tokens + cached,
            output_tokens=usage.output_tokens,
            truncated=message.stop_reason == "max_tokens",
        )


def to_anthropic_tool(spec: ToolSpec) -> dict[str, Any]:
    return {"name": spec.name, "description": spec.description, "input_schema": dict(spec.parameters)}


def to_anthropic_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        role, blocks = _blocks(message)
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)  # the API wants user/assistant to alternate
        else:
            out.append({"role": role, "content": blocks})
    return out


def _blocks(message: Message) -> tuple[str, list[dict[str, Any]]]:
    if isinstance(message, UserText):
        return "user", [{"type": "text", "text": message.text}]
    if isinstance(message, AssistantTurn):
        blocks: list[dict[str, Any]] = [{"type": "text", "text": message.text}] if message.text else []
        blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": _input(c.arguments)}
                   for c in message.calls]
        return "assistant", blocks or [{"type": "text", "text": "(no reply)"}]
    assert isinstance(message, ToolResults)
    return "user", [{"type": "tool_result", "tool_use_id": o.call.id, "content": o.content, "is_error": o.is_error}
                    for o in message.outcomes]


def _input(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments)
    except (TypeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
