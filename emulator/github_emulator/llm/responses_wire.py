"""Speak the OpenAI Responses wire format (``POST /v1/responses``), which Codex CLI uses.

Shapes follow https://platform.openai.com/docs/api-reference/responses and its
streaming events. A reply's text is one ``message`` output item holding one
``output_text`` part; each tool call is a ``function_call`` output item whose
``arguments`` is a JSON *string* and whose ``call_id`` the client echoes back
in a ``function_call_output`` input item. A stream is, per item,
``response.output_item.added`` … ``response.output_item.done``, between
``response.created`` / ``response.in_progress`` and ``response.completed``
(with the response id and usage); every event carries a ``sequence_number``.
Codex refuses a stream that closes before ``response.completed``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping
from typing import Any

from github_emulator.llm.script import Reply, ToolCall, next_id, pieces
from github_emulator.llm.server import sse


def render_response(reply: Reply, body: Mapping[str, Any], default_model: str) -> dict[str, Any]:
    """The whole (non-streamed) response object for one scripted turn."""
    return {**_envelope(body, default_model, "completed" if not reply.truncated else "incomplete"),
            "output": [_done_item(item_id, payload) for _, item_id, payload in _items(reply)],
            "usage": _usage(reply),
            "incomplete_details": {"reason": "max_output_tokens"} if reply.truncated else None}


def render_response_stream(reply: Reply, body: Mapping[str, Any], default_model: str) -> Iterator[bytes]:
    """The SSE events a Responses stream sends for one scripted turn, ending in response.completed."""
    seq = itertools.count()
    created = {**_envelope(body, default_model, "in_progress"), "output": [], "usage": None}
    yield _event("response.created", seq, response=created)
    yield _event("response.in_progress", seq, response=created)
    done: list[dict[str, Any]] = []
    for index, (_, item_id, payload) in enumerate(_items(reply)):
        if isinstance(payload, str):
            yield from _stream_message(seq, index, item_id, payload)
        else:
            yield from _stream_call(seq, index, item_id, payload)
        done.append(_done_item(item_id, payload))
    final = {**created, "status": "incomplete" if reply.truncated else "completed", "output": done,
             "usage": _usage(reply)}
    if reply.truncated:
        final["incomplete_details"] = {"reason": "max_output_tokens"}
        yield _event("response.incomplete", seq, response=final)
        return
    yield _event("response.completed", seq, response=final)


def _stream_message(seq: Iterator[int], index: int, item_id: str, text: str) -> Iterator[bytes]:
    yield _event("response.output_item.added", seq, output_index=index,
                 item=_message_item(item_id, "", "in_progress", parts=False))
    part = {"type": "output_text", "text": "", "annotations": []}
    where = {"item_id": item_id, "output_index": index, "content_index": 0}
    yield _event("response.content_part.added", seq, **where, part=part)
    for piece in pieces(text):
        yield _event("response.output_text.delta", seq, **where, delta=piece, logprobs=[])
    yield _event("response.output_text.done", seq, **where, text=text, logprobs=[])
    yield _event("response.content_part.done", seq, **where, part={**part, "text": text})
    yield _event("response.output_item.done", seq, output_index=index,
                 item=_message_item(item_id, text, "completed"))


def _stream_call(seq: Iterator[int], index: int, item_id: str, call: ToolCall) -> Iterator[bytes]:
    started = {**_call_item(item_id, call, "in_progress"), "arguments": ""}
    yield _event("response.output_item.added", seq, output_index=index, item=started)
    arguments = call.arguments_json()
    for fragment in pieces(arguments, 16):
        yield _event("response.function_call_arguments.delta", seq, item_id=item_id, output_index=index,
                     delta=fragment)
    yield _event("response.function_call_arguments.done", seq, item_id=item_id, output_index=index,
                 arguments=arguments)
    yield _event("response.output_item.done", seq, output_index=index, item=_call_item(item_id, call, "completed"))


def _items(reply: Reply) -> list[tuple[str, str, str | ToolCall]]:
    """The output items in order: the text (if any) as one message, then one item per call."""
    items: list[tuple[str, str, str | ToolCall]] = []
    if reply.content:
        items.append(("message", next_id("msg_"), reply.content))
    for call in reply.with_ids("call_"):
        items.append(("function_call", next_id("fc_"), call))
    return items


def _done_item(item_id: str, payload: str | ToolCall) -> dict[str, Any]:
    if isinstance(payload, str):
        return _message_item(item_id, payload, "completed")
    return _call_item(item_id, payload, "completed")


def _message_item(item_id: str, text: str, status: str, *, parts: bool = True) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": []}] if parts else []
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def _call_item(item_id: str, call: ToolCall, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call.id,
            "name": call.name, "arguments": call.arguments_json()}


def _envelope(body: Mapping[str, Any], default_model: str, status: str) -> dict[str, Any]:
    return {"id": next_id("resp_"), "object": "response", "created_at": int(time.time()), "status": status,
            "model": str(body.get("model") or default_model), "error": None, "incomplete_details": None,
            "instructions": body.get("instructions"), "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
            "tool_choice": body.get("tool_choice", "auto"), "tools": list(body.get("tools") or []),
            "store": bool(body.get("store", False)), "previous_response_id": body.get("previous_response_id"),
            "metadata": {}, "temperature": 1.0, "top_p": 1.0, "text": {"format": {"type": "text"}},
            "truncation": "disabled", "reasoning": {"effort": None, "summary": None}}


def _usage(reply: Reply) -> dict[str, Any]:
    return {"input_tokens": reply.input_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": reply.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": reply.input_tokens + reply.output_tokens}


def _event(kind: str, seq: Iterator[int], **fields: Any) -> bytes:
    return sse({"type": kind, "sequence_number": next(seq), **fields}, kind)
