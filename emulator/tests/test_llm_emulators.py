"""The official SDKs parse every scripted turn from the emulators, streamed or not."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from github_emulator.llm import AnthropicEmulator, OpenAIEmulator, Reply, ToolCall

MODEL_OPENAI = "gpt-4o-mini"
MODEL_ANTHROPIC = "claude-haiku-4-5"
USER: Any = [{"role": "user", "content": "hi"}]  # typed loosely: shared by both SDKs


@pytest.fixture()
def oai() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator() as emu:
        yield emu


@pytest.fixture()
def claude() -> Iterator[AnthropicEmulator]:
    with AnthropicEmulator() as emu:
        yield emu


_CLIENTS: list[openai.OpenAI | anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()


def oai_client(emu: OpenAIEmulator, timeout: float = 10, max_retries: int = 0, key: str = "test-key") -> openai.OpenAI:
    client = openai.OpenAI(base_url=emu.base_url + "/v1", api_key=key, max_retries=max_retries, timeout=timeout)
    _CLIENTS.append(client)
    return client


def claude_client(emu: AnthropicEmulator, key: str = "test-key") -> anthropic.Anthropic:
    client = anthropic.Anthropic(base_url=emu.base_url, api_key=key, max_retries=0, timeout=10)
    _CLIENTS.append(client)
    return client


# OpenAI ---------------------------------------------------------------------


def test_openai_text_tool_calls_and_usage(oai: OpenAIEmulator) -> None:
    oai.script([
        Reply.tool_call("write_file", {"path": "a.txt", "content": "hi"}),
        Reply.tool_calls(("read_file", {"path": "a"}), ToolCall("list_files", "{bad json", id="call_x")),
        Reply.text("done", input_tokens=123, output_tokens=45),
        Reply.text("cut", truncated=True),
    ])
    client = oai_client(oai)
    first = client.chat.completions.create(model=MODEL_OPENAI, messages=USER)
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "write_file"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"path": "a.txt", "content": "hi"}  # type: ignore[union-attr]

    second = client.chat.completions.create(model=MODEL_OPENAI, messages=USER)
    calls = second.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["read_file", "list_files"]  # type: ignore[union-attr]
    assert calls[1].id == "call_x" and calls[1].function.arguments == "{bad json"  # type: ignore[union-attr]

    third = client.chat.completions.create(model=MODEL_OPENAI, messages=USER)
    assert third.choices[0].message.content == "done"
    assert third.choices[0].finish_reason == "stop"
    assert (third.usage.prompt_tokens, third.usage.completion_tokens) == (123, 45)  # type: ignore[union-attr]
    assert third.model == MODEL_OPENAI
    fourth = client.chat.completions.create(model=MODEL_OPENAI, messages=USER)
    assert fourth.choices[0].finish_reason == "length"


def test_openai_streaming_text_and_tool_calls(oai: OpenAIEmulator) -> None:
    oai.script([
        Reply.tool_call("edit_file", {"path": "src/app.py", "search": "a", "replace": "b"},
                        text="Editing the file now.", output_tokens=9),
    ])
    stream = oai_client(oai).chat.completions.create(
        model=MODEL_OPENAI, messages=USER, stream=True, stream_options={"include_usage": True},
    )
    text, args, names, finish, usage = "", "", [], None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for tc in choice.delta.tool_calls or []:
                if tc.function and tc.function.name:
                    names.append(tc.function.name)
                args += (tc.function.arguments or "") if tc.function else ""
            finish = choice.finish_reason or finish
    assert text == "Editing the file now."
    assert names == ["edit_file"]
    assert json.loads(args) == {"path": "src/app.py", "search": "a", "replace": "b"}
    assert finish == "tool_calls"
    assert usage is not None and usage.completion_tokens == 9
    assert oai.requests[-1].stream


def test_openai_models_auth_and_request_log(oai: OpenAIEmulator) -> None:
    client = oai_client(oai)
    assert [m.id for m in client.models.list().data] == [MODEL_OPENAI]
    assert oai.requests[-1].auth_present
    assert "authorization" not in oai.requests[-1].headers
    assert "test-key" not in json.dumps(dict(oai.requests[-1].headers))
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(oai.base_url + "/v1/models", timeout=5)
    assert info.value.code == 401
    with info.value as response:
        assert json.load(response)["error"]["code"] == "invalid_api_key"
    assert not oai.requests[-1].auth_present


def test_openai_errors_retry_after_and_rejected_tools(oai: OpenAIEmulator) -> None:
    client = oai_client(oai)
    oai.script([Reply.error(500, "boom"), Reply.error(429, retry_after=1), Reply.error(400, "bad")])
    with pytest.raises(openai.InternalServerError, match="boom"):
        client.chat.completions.create(model=MODEL_OPENAI, messages=USER)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=MODEL_OPENAI, messages=USER)
    assert info.value.response.headers["retry-after"] == "1"
    assert info.value.response.headers["retry-after-ms"] == "1000"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL_OPENAI, messages=USER)

    oai.reject_tools = True
    oai.script([Reply.text("plain")])
    tools: Any = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with pytest.raises(openai.BadRequestError, match="tool"):
        client.chat.completions.create(model=MODEL_OPENAI, messages=USER, tools=tools)
    assert oai.remaining == 1  # a rejected request does not use up a scripted reply
    assert client.chat.completions.create(model=MODEL_OPENAI, messages=USER).choices[0].message.content == "plain"


def test_exhausted_script_and_sdk_retry_consumes_replies(oai: OpenAIEmulator) -> None:
    oai.script([Reply.error(503, retry_after=0.01), Reply.text("after retry")])
    client = oai_client(oai, max_retries=1)
    assert client.chat.completions.create(model=MODEL_OPENAI, messages=USER).choices[0].message.content == "after retry"
    assert len(oai.completions) == 2
    with pytest.raises(openai.InternalServerError, match="no scripted reply left"):
        client.chat.completions.create(model=MODEL_OPENAI, messages=USER)
    assert len(oai.completions) == 3  # x-should-retry: false stops the SDK from retrying


def test_slow_reply_times_out_the_client(oai: OpenAIEmulator) -> None:
    oai.script([Reply.slow(5, then=Reply.text("late"))])
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        oai_client(oai, timeout=0.3).chat.completions.create(model=MODEL_OPENAI, messages=USER)
    assert time.monotonic() - started < 3


# Anthropic ------------------------------------------------------------------


def test_anthropic_text_tool_use_and_usage(claude: AnthropicEmulator) -> None:
    claude.script([
        Reply.tool_call("write_file", {"path": "a.txt", "content": "hi"}, text="Writing."),
        Reply.text("done", input_tokens=77, output_tokens=8),
        Reply.text("cut", truncated=True),
    ])
    client = claude_client(claude)
    first = client.messages.create(model=MODEL_ANTHROPIC, max_tokens=100, messages=USER)
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["text", "tool_use"]
    tool = first.content[1]
    assert tool.name == "write_file" and tool.input == {"path": "a.txt", "content": "hi"}  # type: ignore[union-attr]
    assert tool.id.startswith("toolu_")  # type: ignore[union-attr]
    second = client.messages.create(model=MODEL_ANTHROPIC, max_tokens=100, messages=USER)
    assert second.stop_reason == "end_turn" and second.content[0].text == "done"  # type: ignore[union-attr]
    assert (second.usage.input_tokens, second.usage.output_tokens) == (77, 8)
    third = client.messages.create(model=MODEL_ANTHROPIC, max_tokens=100, messages=USER)
    assert third.stop_reason == "max_tokens"
    assert claude.requests[0].auth_present and "x-api-key" not in claude.requests[0].headers


def test_anthropic_streaming_events(claude: AnthropicEmulator) -> None:
    claude.script([
        Reply.tool_calls(("read_file", {"path": "README.md"}), ("list_files", {}), text="Looking around first.",
                         output_tokens=12),
    ])
    client = claude_client(claude)
    seen: list[str] = []
    with client.messages.stream(model=MODEL_ANTHROPIC, max_tokens=100, messages=USER) as stream:
        for event in stream:
            seen.append(event.type)
        final = stream.get_final_message()
    for kind in ("message_start", "content_block_start", "content_block_delta", "content_block_stop",
                 "message_delta", "message_stop"):
        assert kind in seen
    assert final.content[0].text == "Looking around first."  # type: ignore[union-attr]
    assert [b.input for b in final.content[1:]] == [{"path": "README.md"}, {}]  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use" and final.usage.output_tokens == 12


def test_anthropic_errors_models_and_rejected_tools(claude: AnthropicEmulator) -> None:
    client = claude_client(claude)
    assert [m.id for m in client.models.list().data] == ["claude-haiku-4-5"]
    claude.script([Reply.error(529, "overloaded"), Reply.error(401)])
    with pytest.raises(anthropic.InternalServerError, match="overloaded"):
        client.messages.create(model=MODEL_ANTHROPIC, max_tokens=10, messages=USER)
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.create(model=MODEL_ANTHROPIC, max_tokens=10, messages=USER)
    claude.reject_tools = True
    with pytest.raises(anthropic.BadRequestError, match="tool"):
        client.messages.create(model=MODEL_ANTHROPIC, max_tokens=10, messages=USER,
                               tools=[{"name": "f", "input_schema": {"type": "object"}}])


def test_expected_api_key_is_enforced() -> None:
    with AnthropicEmulator(api_key="right") as emu:
        emu.script([Reply.text("ok")])
        with pytest.raises(anthropic.AuthenticationError):
            claude_client(emu).messages.create(model=MODEL_ANTHROPIC, max_tokens=10, messages=USER)
        ok = claude_client(emu, key="right")
        assert ok.messages.create(model=MODEL_ANTHROPIC, max_tokens=10, messages=USER).content[0].text == "ok"  # type: ignore[union-attr]
        assert all(r.auth_present for r in emu.requests)
