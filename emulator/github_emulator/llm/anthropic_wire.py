"""Speak the Anthropic Messages wire format, so the official SDK talks to a script.

Shapes follow https://docs.anthropic.com/en/api/messages and the streaming
guide: ``message_start``, then per content block ``content_block_start`` /
``content_block_delta`` (``text_delta`` or ``input_json_delta``) /
``content_block_stop``, then ``message_delta`` with the stop reason and output
tokens, then ``message_stop``. Tool inputs are JSON *objects*.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from github_emulator.llm.script import Reply, next_id, pieces
from github_emulator.llm.server import LLMEmulator, sse

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                529: "overloaded_error"}


class AnthropicEmulator(LLMEmulator):
    """An Anthropic-compatible server: ``POST /v1/messages``, token counting, ``GET /v1/models``.

    It takes what Claude Code sends: ``?beta=true``, the ``anthropic-beta`` header,
    ``thinking`` and ``context_management`` fields, requests of over 100 KB, and
    the ``HEAD /`` probe before the first call. Point the SDK at ``Anthropic(base_url=emu.base_url, api_key="test")``.
    """

    provider = "anthropic"
    auth_headers = ("x-api-key", "authorization")
    completion_path = "/v1/messages"
    completion_paths = ("/v1/messages",)
    default_model = "claude-haiku-4-5"

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Mapping[str, Any]] | None:
        """``POST /v1/messages/count_tokens``: about one token per four bytes of the request."""
        if method == "POST" and path == "/v1/messages/count_tokens":
            size = len(json.dumps(body)) if body is not None else 0
            return 200, {"input_tokens": max(1, size // 4)}
        return None

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = _ERROR_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}, "request_id": next_id("req_")}

    def models(self) -> dict[str, Any]:
        model = {"type": "model", "id": self.default_model, "display_name": "Emulated Claude",
                 "created_at": "2025-01-01T00:00:00Z"}
        return {"data": [model], "has_more": False, "first_id": model["id"], "last_id": model["id"]}

    def render(self, reply: Reply, body: Mapping[str, Any]) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reply.content:
            content.append({"type": "text", "text": reply.content})
        for call in reply.with_ids("toolu_"):
            content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments_object()})
        return {**self._message(reply, body, content), "stop_reason": _stop(reply),
                "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens}}

    def render_stream(self, reply: Reply, body: Mapping[str, Any]) -> Iterator[bytes]:
        start = {**self._message(reply, body, []), "stop_reason": None,
                 "usage": {"input_tokens": reply.input_tokens, "output_tokens": 1}}
        yield sse({"type": "message_start", "message": start}, "message_start")
        yield sse({"type": "ping"}, "ping")
        index = 0
        if reply.content:
            yield _block_start(index, {"type": "text", "text": ""})
            for piece in pieces(reply.content):
                yield _block_delta(index, {"type": "text_delta", "text": piece})
            yield sse({"type": "content_block_stop", "index": index}, "content_block_stop")
            index += 1
        for call in reply.with_ids("toolu_"):
            yield _block_start(index, {"type": "tool_use", "id": call.id, "name": call.name, "input": {}})
            for fragment in pieces(call.arguments_json(), 16):
                yield _block_delta(index, {"type": "input_json_delta", "partial_json": fragment})
            yield sse({"type": "content_block_stop", "index": index}, "content_block_stop")
            index += 1
        delta = {"type": "message_delta", "delta": {"stop_reason": _stop(reply), "stop_sequence": None},
                 "usage": {"output_tokens": reply.output_tokens}}
        yield sse(delta, "message_delta")
        yield sse({"type": "message_stop"}, "message_stop")

    def _message(self, reply: Reply, body: Mapping[str, Any], content: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": next_id("msg_"), "type": "message", "role": "assistant", "content": content,
                "model": str(body.get("model") or self.default_model), "stop_sequence": None}


def _stop(reply: Reply) -> str:
    if reply.calls:
        return "tool_use"
    return "max_tokens" if reply.truncated else "end_turn"


def _block_start(index: int, block: dict[str, Any]) -> bytes:
    return sse({"type": "content_block_start", "index": index, "content_block": block}, "content_block_start")


def _block_delta(index: int, delta: dict[str, Any]) -> bytes:
    return sse({"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta")
