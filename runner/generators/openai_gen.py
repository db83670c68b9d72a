"""Make the change with an OpenAI model, or any server that speaks OpenAI's chat completions.

Only translation lives here: the neutral conversation into chat-completion
messages (``tool_calls`` with JSON-string arguments, ``role: tool`` results)
and the reply back. The loop, budgets and tools are shared
(:mod:`runner.generators.llm_loop`).
"""

from __future__ import annotations

import json
from typing import Any

import openai

from runner.config import Settings
from runner.errors import GeneratorError
from runner.generators.base import Changes, GenerationContext
from runner.generators.llm_loop import (
    AssistantTurn,
    Call,
    LoopOptions,
    Message,
    ModelReply,
    ModelRequest,
    ToolResults,
    UserText,
    limit_retry_after,
    resolve_api_key,
    run_agent,
    sdk_errors,
)
from runner.generators.tools import ToolSpec


class OpenAIGenerator:
    """The ``openai`` generator: a tool-calling agent over the chat completions API."""

    name = "openai"

    def __init__(self, settings: Settings, *, max_retries: int = 2) -> None:
        key = resolve_api_key(settings.openai_api_key, settings.openai_base_url, generator="openai", prefix="OPENAI")
        self._settings = settings
        self._key = key
        self._max_retries = max_retries
        self._options = LoopOptions.from_settings(settings, self.name, max_retries=max_retries)

    def generate(self, ctx: GenerationContext) -> Changes:
        # One client per task: its connections are closed when the task ends, and
        # worker threads never share one.
        with openai.OpenAI(
            api_key=self._key, base_url=self._settings.openai_base_url, max_retries=self._max_retries,
            http_client=openai.DefaultHttpxClient(event_hooks={"response": [limit_retry_after]}),
        ) as client:
            backend = OpenAIBackend(
                client,
                ctx.model or self._settings.openai_model,
                # OpenAI's own API wants max_completion_tokens (o-series and gpt-5 reject max_tokens);
                # most compatible servers (vLLM, llama.cpp, Ollama) only know max_tokens.
                legacy_max_tokens=bool(self._settings.openai_base_url),
            )
            return run_agent(ctx, backend, self._options)


def build(settings: Settings) -> OpenAIGenerator:
    """Registry factory for ``openai``."""
    return OpenAIGenerator(settings)


class OpenAIBackend:
    """Translate between the loop's neutral messages and chat completions."""

    def __init__(self, client: openai.OpenAI, model: str, *, legacy_max_tokens: bool = False) -> None:
        self._client = client
        self.model = model
        self._legacy_max_tokens = legacy_max_tokens

    def complete(self, request: ModelRequest) -> ModelReply:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(request.system, request.messages),
            ("max_tokens" if self._legacy_max_tokens else "max_completion_tokens"): request.max_output_tokens,
        }
        if request.tools:
            kwargs["tools"] = [to_openai_tool(spec) for spec in request.tools]
        client = self._client.with_options(timeout=request.timeout, max_retries=request.max_retries)
        with sdk_errors(openai, "OpenAI", "OPENAI_API_KEY", request):
            response = client.chat.completions.create(**kwargs)
        if not response.choices:
            raise GeneratorError("The OpenAI API answered without any choice; try again or pick another model.")
        choice = response.choices[0]
        calls = tuple(
            Call(id=tc.id, name=tc.function.name, arguments=_arguments(tc.function.arguments))
            for tc in choice.message.tool_calls or []
            if tc.type == "function"
        )
        usage = response.usage
        return ModelReply(
            text=choice.message.content or "",
            calls=calls,
            input_tokens=(usage.prompt_tokens or 0) if usage else 0,
            output_tokens=(usage.completion_tokens or 0) if usage else 0,
            truncated=choice.finish_reason == "length",
        )


def to_openai_tool(spec: ToolSpec) -> dict[str, Any]:
    return {"type": "function",
            "function": {"name": spec.name, "description": spec.description, "parameters": dict(spec.parameters)}}


def to_openai_messages(system: str, messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for message in messages:
        if isinstance(message, UserText):
            out.append({"role": "user", "content": message.text})
        elif isinstance(message, AssistantTurn):
            item: dict[str, Any] = {"role": "assistant", "content": message.text or (None if message.calls else "")}
            if message.calls:
                item["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": _json(c.arguments)}}
                    for c in message.calls
                ]
            out.append(item)
        elif isinstance(message, ToolResults):
            out += [{"role": "tool", "tool_call_id": o.call.id, "content": o.content} for o in message.outcomes]
    return out


def _arguments(raw: str | None) -> dict[str, Any] | str:
    """Decode the JSON-string arguments; keep the raw text when it is not an object, for the error."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    return value if isinstance(value, dict) else raw


def _json(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
