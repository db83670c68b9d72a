"""Speak the OpenAI chat completions wire format, so the official SDK talks to a script.

Shapes follow https://platform.openai.com/docs/api-reference/chat: tool call
arguments are a JSON *string*, streamed as fragments keyed by ``index``; usage
arrives in a last chunk with empty ``choices`` when
``stream_options.include_usage`` is set; the stream ends with ``data: [DONE]``.

A *profile* makes the emulator as strict, or as odd, as a real server kind
(``OpenAIEmulator(profile="llamacpp")``); each :class:`Quirks` flag reproduces
one behaviour seen in the field, so a generator can be tested against all of
them without the real servers.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from github_emulator.llm.responses_wire import render_response, render_response_stream
from github_emulator.llm.script import Reply, ToolCall, next_id, pieces
from github_emulator.llm.server import LLMEmulator, sse

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_exceeded"}


@dataclass(frozen=True)
class Quirks:
    """How one server kind departs from OpenAI's own API."""

    #: ``owned_by`` in ``GET /v1/models``, which tells the server kind apart.
    owned_by: str = "agent-runner"
    #: Tools are ignored unless ``tool_choice`` is sent: the model answers in text (llama.cpp).
    tools_need_choice: bool = False
    #: An assistant message with ``content: null`` is refused with HTTP 500 (llama-cpp-python).
    null_content_500: bool = False
    #: Tool-call arguments come back as HTML-escaped JSON (``{&quot;path&quot;: ...}``).
    escape_arguments: bool = False
    #: A legacy ``function_call`` comes beside ``tool_calls`` (llama-cpp-python).
    legacy_function_call: bool = False
    #: Tool-call ids: OpenAI's ``call_…``, vLLM's ``chatcmpl-tool-…``, bare indexes, or none at all.
    ids: Literal["call", "vllm", "index", "none"] = "call"
    #: ``tool_choice="required"`` fails with a bare HTTP 500 (llama-cpp-python asserts "auto").
    required_500: bool = False
    #: The model never calls a tool, whatever it is sent: every reply is text.
    text_only: bool = False


PROFILES: Mapping[str, Quirks] = {
    "openai": Quirks(owned_by="system"),
    "llamacpp": Quirks(owned_by="me", tools_need_choice=True, null_content_500=True, escape_arguments=True,
                       legacy_function_call=True, required_500=True),
    "vllm": Quirks(owned_by="vllm", ids="vllm"),
    "ollama": Quirks(owned_by="library", ids="index"),
    "text-only": Quirks(text_only=True),
    "strict": Quirks(tools_need_choice=True, null_content_500=True, escape_arguments=True,
                     legacy_function_call=True, ids="none"),
}


class OpenAIEmulator(LLMEmulator):
    """An OpenAI-compatible server: chat completions, Responses (Codex) and ``GET /v1/models``.

    Point the SDK at ``OpenAI(base_url=emu.base_url + "/v1", api_key="test")``.
    ``profile`` (a name in :data:`PROFILES`, or :class:`Quirks`) picks how strict
    or odd it is; the default behaves like OpenAI's own API.
    """

    provider = "openai"
    auth_headers = ("authorization",)
    completion_path = "/v1/chat/completions"
    completion_paths = ("/v1/chat/completions", "/v1/responses")
    default_model = "gpt-4o-mini"

    def __init__(self, *, profile: str | Quirks | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.quirks = PROFILES[profile] if isinstance(profile, str) else (profile or Quirks())

    def refuse(self, body: Mapping[str, Any]) -> tuple[int, str] | None:
        if self.quirks.required_500 and body.get("tools") and body.get("tool_choice") == "required":
            return 500, "Internal Server Error"
        if self.quirks.null_content_500:
            for index, message in enumerate(body.get("messages") or []):
                if isinstance(message, Mapping) and message.get("role") == "assistant" and message.get("content") is None:
                    # What llama-cpp-python's pydantic validation answers, with a 500.
                    return 500, (f"[{{'type': 'string_type', 'loc': ('body', 'messages', {index}, 'content'), "
                                 "'msg': 'Input should be a valid string', 'input': None}]")
        return None

    def shape(self, reply: Reply, body: Mapping[str, Any]) -> Reply:
        """The scripted reply as this server kind would send it."""
        quirks = self.quirks
        ignored = quirks.text_only or (quirks.tools_need_choice and body.get("tools") and not body.get("tool_choice"))
        if reply.calls and ignored:
            said = "; ".join(f"I would call {c.name} with {c.arguments_json()}" for c in reply.calls)
            return replace(reply, content=reply.content or said, calls=())
        if quirks.escape_arguments:
            reply = replace(reply, calls=tuple(replace(c, arguments=html.escape(c.arguments_json())) for c in reply.calls))
        return reply

    def _calls(self, reply: Reply) -> tuple[ToolCall, ...]:
        style = self.quirks.ids
        calls = reply.with_ids("chatcmpl-tool-" if style == "vllm" else "call_")
        if style == "index":
            return tuple(replace(c, id=str(i)) for i, c in enumerate(calls))
        if style == "none":
            return tuple(replace(c, id="") for c in calls)
        return calls

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = _ERROR_TYPES.get(status, "server_error")
        code = "invalid_api_key" if status == 401 else None
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [
            {"id": self.default_model, "object": "model", "created": 0, "owned_by": self.quirks.owned_by}
        ]}

    def render_at(self, path: str, reply: Reply, body: Mapping[str, Any]) -> Mapping[str, Any] | Iterator[bytes]:
        if path == "/v1/responses":
            if body.get("stream"):
                return render_response_stream(reply, body, self.default_model)
            return render_response(reply, body, self.default_model)
        return super().render_at(path, reply, body)

    def render(self, reply: Reply, body: Mapping[str, Any]) -> dict[str, Any]:
        calls = self._calls(reply)
        message: dict[str, Any] = {"role": "assistant", "content": reply.content or None, "refusal": None}
        if calls:
            message["tool_calls"] = [
                {"id": c.id or None, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json()}}
                for c in calls
            ]
            if self.quirks.legacy_function_call:
                message["function_call"] = {"name": calls[0].name, "arguments": calls[0].arguments_json()}
        return {
            **self._envelope(body, "chat.completion"),
            "choices": [{"index": 0, "message": message, "finish_reason": _finish(reply), "logprobs": None}],
            "usage": _usage(reply),
        }

    def render_stream(self, reply: Reply, body: Mapping[str, Any]) -> Iterator[bytes]:
        envelope = self._envelope(body, "chat.completion.chunk")

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return sse({**envelope, "choices": [choice]})

        yield chunk({"role": "assistant", "content": ""})
        for piece in pieces(reply.content):
            yield chunk({"content": piece})
        for index, call in enumerate(self._calls(reply)):
            yield chunk({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                         "function": {"name": call.name, "arguments": ""}}]})
            for fragment in pieces(call.arguments_json(), 16):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
        yield chunk({}, _finish(reply))
        options = body.get("stream_options") or {}
        if isinstance(options, Mapping) and options.get("include_usage"):
            yield sse({**envelope, "choices": [], "usage": _usage(reply)})
        yield sse("[DONE]")

    def _envelope(self, body: Mapping[str, Any], kind: str) -> dict[str, Any]:
        return {"id": next_id("chatcmpl-"), "object": kind, "created": int(time.time()),
                "model": str(body.get("model") or self.default_model), "system_fingerprint": None}


def _finish(reply: Reply) -> str:
    if reply.calls:
        return "tool_calls"
    return "length" if reply.truncated else "stop"


def _usage(reply: Reply) -> dict[str, int]:
    return {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens}
