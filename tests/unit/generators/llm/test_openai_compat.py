"""Server profiles, argument decoding, error classes and the no-change rule, on plain values."""

from __future__ import annotations

from typing import Any

import pytest
from openai._models import construct_type
from openai.types.chat import ChatCompletionMessage

from runner.core.pricing import display_model
from runner.errors import (
    GeneratorUnavailable,
    ModelRequestRefused,
    NoChangeMade,
    ToolCallingUnsupported,
)
from runner.generators.base import Changes
from runner.generators.chain import check_changed
from runner.generators.llm.conversation import AssistantTurn, Call
from runner.generators.llm.openai import reply_calls, to_openai_messages
from runner.generators.llm.openai_compat import (
    PROFILES,
    decode_arguments,
    detect_profile,
    profile_for,
)
from runner.generators.llm.sdk import status_error


def models(*owners: str) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": f"m{i}", "owned_by": o} for i, o in enumerate(owners)]}


@pytest.mark.parametrize(("answer", "kind"), [
    (models("me"), "llamacpp"),            # llama-cpp-python
    (models("llamacpp"), "llamacpp"),      # llama.cpp's own server
    (models("vllm"), "vllm"),
    (models("library", "library"), "ollama"),
    (models("openai"), "generic"),         # a LiteLLM proxy says "openai" for everything it fronts
    (models("vllm", "library"), "generic"),
    (models("someone"), "generic"),
    ({"data": "nonsense"}, "generic"),
    (None, "generic"),
])
def test_the_server_kind_is_told_by_its_model_listing(answer: Any, kind: str) -> None:
    assert detect_profile(answer).name == kind


def test_the_setting_wins_and_no_base_url_means_openai() -> None:
    assert profile_for("vllm", "http://127.0.0.1:8000/v1") is PROFILES["vllm"]
    assert profile_for("auto", None) is PROFILES["openai"]
    assert profile_for("auto", "http://127.0.0.1:8000/v1") is None  # detected at the first task
    assert PROFILES["openai"].max_tokens_field == "max_completion_tokens"
    assert PROFILES["llamacpp"].tool_choice("required") == "auto"
    assert PROFILES["vllm"].tool_choice("required") == "required"


@pytest.mark.parametrize(("raw", "decoded"), [
    ('{"path": "a.txt"}', {"path": "a.txt"}),
    ({"path": "a.txt"}, {"path": "a.txt"}),
    ("{&quot;path&quot;: &quot;a&amp;b &lt;c&gt;.txt&quot;}", {"path": "a&b <c>.txt"}),
    ('{"content": "a &amp; b"}', {"content": "a &amp; b"}),  # valid JSON is never unescaped
    ("", {}),
    (None, {}),
    ("{not json", "{not json"),  # kept, so the model is told what was wrong
    ('["a"]', '["a"]'),
])
def test_arguments_are_decoded_whatever_the_server_sent(raw: Any, decoded: Any) -> None:
    assert decode_arguments(raw) == decoded


def message(**fields: Any) -> ChatCompletionMessage:
    """Build the message the way the SDK builds it from a response: leniently, without validation."""
    value = {"role": "assistant", "content": None, **fields}
    return construct_type(type_=ChatCompletionMessage, value=value)  # type: ignore[no-any-return]


def test_tool_calls_of_any_shape_are_read_once() -> None:
    both = message(tool_calls=[{"id": "call__0_write_file_cmpl-1", "type": "function",
                                "function": {"name": "write_file", "arguments": '{"path": "a"}'}}],
                   function_call={"name": "write_file", "arguments": '{"path": "a"}'})
    assert [(c.id, c.name) for c in reply_calls(both)] == [("call__0_write_file_cmpl-1", "write_file")]
    legacy = message(function_call={"name": "list_files", "arguments": "{}"})
    [only] = reply_calls(legacy)
    assert only.name == "list_files" and only.id
    odd = message(tool_calls=[{"id": "", "function": {"name": "a", "arguments": {"path": "x"}}},
                              {"id": "0", "type": "function", "function": {"name": "b", "arguments": "{}"}},
                              {"id": "0", "type": "function", "function": {"name": "c", "arguments": "{}"}},
                              {"id": "x", "type": "function", "function": {"name": "", "arguments": "{}"}}])
    calls = reply_calls(odd)
    assert [c.name for c in calls] == ["a", "b", "c"] and calls[0].arguments == {"path": "x"}
    assert len({c.id for c in calls}) == 3 and all(c.id for c in calls)


def test_assistant_content_is_always_a_string() -> None:
    turn = AssistantTurn("", (Call("call_1", "list_files", {}),))
    [_, sent] = to_openai_messages("system", (turn,))
    assert sent["content"] == "" and sent["tool_calls"][0]["function"]["arguments"] == "{}"


@pytest.mark.parametrize(("status", "body", "tools", "kind"), [
    (500, "Input should be a valid string", False, ModelRequestRefused),
    (500, "1 validation error for ChatCompletionRequest", False, ModelRequestRefused),
    (500, "Internal Server Error", False, GeneratorUnavailable),
    (503, "model is loading", False, GeneratorUnavailable),
    (400, "tools is not supported by this model", True, ToolCallingUnsupported),
    (404, "model `x` not found", True, ModelRequestRefused),
    (429, "slow down", False, GeneratorUnavailable),
])
def test_each_status_gets_the_error_class_that_fits(status: int, body: str, tools: bool, kind: type) -> None:
    error = status_error("OpenAI", "OPENAI_API_KEY", status, body, tools)
    assert type(error) is kind
    assert error.transient is (kind is GeneratorUnavailable)


@pytest.mark.parametrize(("model", "shown"), [
    ("gemma-3-270m", "gemma-3-270m"),
    ("openrouter/anthropic/claude-sonnet-4-5", "openrouter/anthropic/claude-sonnet-4-5"),
    ("llama3.2:3b", "llama3.2:3b"),
    ("/home/op/models/gemma-3-270m-Q4_K_M.gguf", "gemma-3-270m-Q4_K_M"),
    ("models/qwen2.5-coder-7b-instruct-q4_k_m.gguf", "qwen2.5-coder-7b-instruct-q4_k_m"),
    ("~/w/m.safetensors", "m"),
    ("C:\\models\\phi.gguf", "phi"),
    ("./weights/", "weights"),
    (None, None),
])
def test_a_model_path_is_shown_as_its_file_name(model: str | None, shown: str | None) -> None:
    assert display_model(model) == shown


def test_a_result_without_a_change_fails_unless_it_says_why() -> None:
    with pytest.raises(NoChangeMade, match="`plugin` finished without changing any file"):
        check_changed("plugin", Changes(summary="All done!"), lambda _: False)
    check_changed("trace", Changes(summary="Recorded.", no_change="Only the trace."), lambda _: False)
    check_changed("patch", Changes(summary="Applied.", files=("a",)), lambda _: True)
