"""Make the change with an OpenAI model, or any server that speaks OpenAI's chat completions.

Only translation lives here: the neutral conversation into chat-completion
messages (``tool_calls`` with JSON-string arguments, ``role: tool`` results)
and the reply back. The loop, budgets and tools are shared
(:mod:`runner.generators.llm.loop`); how servers differ is in
:mod:`runner.generators.llm.openai_compat`.

What every server we know accepts, and what it may send back:

- ``tool_choice`` is always sent (llama.cpp ignores tools without it);
- ``content`` is always a string, ``""`` beside ``tool_calls`` (llama-cpp-python
  answers ``null`` with a 500);
- a reply may carry a legacy ``function_call`` beside (or instead of)
  ``tool_calls``, tool-call ids of any shape or none, ``type`` missing, and
  arguments as an object, HTML-escaped JSON or invalid JSON (which the model is
  told about, through the tool result).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import openai

from runner.config import Settings
from runner.errors import GeneratorError
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
from runner.generators.llm.openai_compat import (
    CompatProfile,
    decode_arguments,
    detect_profile,
    profile_for,
)
from runner.generators.llm.sdk import (
    check_cost_limit,
    check_credentials,
    limit_retry_after,
    resolve_api_key,
    sdk_errors,
    upstream_of,
)
from runner.generators.llm.tools import ToolSpec

DETECT_TIMEOUT_S = 5.0


class OpenAIGenerator:
    """The ``openai`` generator: a tool-calling agent over the chat completions API."""

    name = "openai"

    def __init__(self, settings: Settings, *, max_retries: int = 2) -> None:
        key = resolve_api_key(settings.openai_api_key, settings.openai_base_url, generator="openai", prefix="OPENAI")
        self._settings = settings
        self._key = key
        self._max_retries = max_retries
        self._options = LoopOptions.from_settings(
            settings, self.name, max_retries=max_retries, service="the OpenAI API",
            upstream=upstream_of("openai", settings.openai_base_url, "https://api.openai.com/v1"))
        self._profile = profile_for(settings.openai_compat, settings.openai_base_url)
        self._detect_lock = threading.Lock()
        check_cost_limit(settings, settings.openai_model)

    def check(self) -> str:
        """What `agent-runner doctor` asks: do the key and the base URL work? (one cheap call)"""
        with openai.OpenAI(api_key=self._key, base_url=self._settings.openai_base_url, max_retries=0,
                          timeout=15.0) as client:
            return check_credentials(openai, client, "OpenAI", "OPENAI_API_KEY")

    def generate(self, ctx: GenerationContext) -> Changes:
        # One client per task: its connections are closed when the task ends, and
        # worker threads never share one.
        with openai.OpenAI(
            api_key=self._key, base_url=self._settings.openai_base_url, max_retries=self._max_retries,
            http_client=openai.DefaultHttpxClient(event_hooks={"response": [limit_retry_after]}),
        ) as client:
            profile = self._profile_for(client, ctx)
            backend = OpenAIBackend(client, ctx.model or self._settings.openai_model, profile=profile)
            return run_agent(ctx, backend, self._options)

    def _profile_for(self, client: openai.OpenAI, ctx: GenerationContext) -> CompatProfile:
        """The server's profile: from OPENAI_COMPAT, or asked of the server once (``GET /models``)."""
        with self._detect_lock:
            if self._profile is None:
                try:
                    listing = client.with_options(timeout=DETECT_TIMEOUT_S, max_retries=0).models.list()
                    self._profile = detect_profile({"data": [m.model_dump() for m in listing.data]})
                except openai.OpenAIError as exc:  # an answer we cannot read is "unknown", not a failure
                    ctx.log.info("could not detect the server kind; using the generic profile", error=str(exc))
                    return detect_profile(None)
                ctx.log.info("detected the OpenAI-compatible server kind", compat=self._profile.name)
            return self._profile


def build(settings: Settings) -> OpenAIGenerator:
    """Registry factory for ``openai``."""
    return OpenAIGenerator(settings)


class OpenAIBackend:
    """Translate between the loop's neutral messages and chat completions."""

    def __init__(self, client: openai.OpenAI, model: str, *, profile: CompatProfile) -> None:
        self._client = client
        self.model = model
        self.profile = profile

    def complete(self, request: ModelRequest) -> ModelReply:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(request.system, request.messages),
            self.profile.max_tokens_field: request.max_output_tokens,
        }
        if request.tools:
            kwargs["tools"] = [to_openai_tool(spec) for spec in request.tools]
            kwargs["tool_choice"] = self.profile.tool_choice(request.tool_choice)
        client = self._client.with_options(timeout=request.timeout, max_retries=request.max_retries)
        with sdk_errors(openai, "OpenAI", "OPENAI_API_KEY", request):
            response = client.chat.completions.create(**kwargs)
        if not response.choices:
            raise GeneratorError("The OpenAI API answered without any choice; try again or pick another model.")
        choice = response.choices[0]
        usage = response.usage
        return ModelReply(
            text=_text(choice.message.content),
            calls=reply_calls(choice.message),
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
            # Always a string: llama-cpp-python refuses `null` beside tool_calls with a 500.
            item: dict[str, Any] = {"role": "assistant", "content": message.text or ""}
            if message.calls:
                item["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": _json(c.arguments)}}
                    for c in message.calls
                ]
            out.append(item)
        elif isinstance(message, ToolResults):
            out += [{"role": "tool", "tool_call_id": o.call.id, "content": o.content} for o in message.outcomes]
    return out


def reply_calls(message: Any) -> tuple[Call, ...]:
    """The tool calls of a reply, whatever shape the server gave them.

    ``tool_calls`` wins; a legacy ``function_call`` counts only when there is no
    ``tool_calls`` (llama-cpp-python sends both for the same call). An id that
    is missing, repeated or not a string is replaced, since it is only ever
    echoed back to the same server.
    """
    raw = list(getattr(message, "tool_calls", None) or [])
    found: list[tuple[Any, Any]] = [
        (getattr(tc, "id", None), getattr(tc, "function", None))
        for tc in raw if getattr(tc, "type", None) in (None, "function")
    ]
    legacy = getattr(message, "function_call", None)
    if not found and legacy is not None:
        found = [(None, legacy)]
    calls: list[Call] = []
    seen: set[str] = set()
    for index, (call_id, function) in enumerate(found):
        name = getattr(function, "name", None)
        if not isinstance(name, str) or not name:
            continue
        ident = str(call_id) if isinstance(call_id, str | int) and str(call_id) else ""
        if not ident or ident in seen:
            ident = f"call_{index}_{len(seen)}"
        seen.add(ident)
        calls.append(Call(id=ident, name=name, arguments=decode_arguments(getattr(function, "arguments", None))))
    return tuple(calls)


def _text(content: Any) -> str:
    """The reply's text; some servers send a list of parts instead of a string."""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return content if isinstance(content, str) else ""


def _json(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
