"""Speak the OpenAI chat completions wire format, so the official SDK talks to a script.

Shapes follow https://platform.openai.com/docs/api-reference/chat: tool call
arguments are a JSON *string*, streamed as fragments keyed by ``index``; usage
arrives in a last chunk with empty ``choices`` when
``stream_options.include_usage`` is set; the stream ends with ``data: [DONE]``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from runner.testing.llm.script import Reply, next_id, pieces
from runner.testing.llm.server import LLMEmulator, sse

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_exceeded"}


class OpenAIEmulator(LLMEmulator):
    """An OpenAI-compatible server: ``POST /v1/chat/completions`` and ``GET /v1/models``.

    Point the SDK at ``OpenAI(base_url=emu.base_url + "/v1", api_key="test")``.
    """

    provider = "openai"
    auth_headers = ("authorization",)
    completion_path = "/v1/chat/completions"
    default_model = "gpt-4o-mini"

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = _ERROR_TYPES.get(status, "server_error")
        code = "invalid_api_key" if status == 401 else None
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [
            {"id": self.default_model, "object": "model", "created": 0, "owned_by": "agent-runner"}
        ]}

    def render(self, reply: Reply, body: Mapping[str, Any]) -> dict[str, Any]:
        calls = reply.with_ids("call_")
        message: dict[str, Any] = {"role": "assistant", "content": reply.content or None, "refusal": None}
        if calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json()}}
                for c in calls
            ]
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
        for index, call in enumerate(reply.with_ids("call_")):
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
