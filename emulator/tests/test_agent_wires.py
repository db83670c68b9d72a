"""The official SDKs read what the emulators send to agent CLIs: OpenAI Responses, and Anthropic as Claude Code calls it."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from github_emulator.llm import AnthropicEmulator, OpenAIEmulator, Reply
from github_emulator.llm.script import MINI_SUBMIT_MARKER


@pytest.fixture()
def oai() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator() as emu:
        yield emu


@pytest.fixture()
def claude() -> Iterator[AnthropicEmulator]:
    with AnthropicEmulator() as emu:
        yield emu


def test_responses_non_streamed_text_and_function_call(oai: OpenAIEmulator) -> None:
    oai.script([Reply.codex_exec("ls -la", text="Looking."), Reply.text("done", input_tokens=40, output_tokens=3)])
    with openai.OpenAI(base_url=oai.base_url + "/v1", api_key="k", max_retries=0) as client:
        first = client.responses.create(model="emulated-coder", input="list the files")
        kinds = [item.type for item in first.output]
        assert kinds == ["message", "function_call"] and first.status == "completed"
        call = first.output[1]
        assert call.type == "function_call" and call.name == "exec_command"
        assert json.loads(call.arguments) == {"cmd": "ls -la"} and call.call_id.startswith("call_")
        second = client.responses.create(model="emulated-coder", input=[
            {"type": "function_call", "call_id": call.call_id, "name": "exec_command", "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "a.txt\nb.txt"},
        ])
        assert second.output_text == "done"
        assert second.usage is not None and (second.usage.input_tokens, second.usage.output_tokens) == (40, 3)
    assert [r.path for r in oai.completions] == ["/v1/responses", "/v1/responses"]
    assert oai.completions[1].tool_results == ["a.txt\nb.txt"]


def test_responses_stream_is_the_sequence_codex_accepts(oai: OpenAIEmulator) -> None:
    oai.script([Reply.tool_calls(("exec_command", {"cmd": "make test"}), text="Running the tests.",
                                 input_tokens=1200, output_tokens=30)])
    with openai.OpenAI(base_url=oai.base_url + "/v1", api_key="k", max_retries=0) as client:
        events = list(client.responses.create(model="emulated-coder", input="go", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    message = ["response.output_item.added", "response.content_part.added", "response.output_text.delta",
               "response.output_text.done", "response.content_part.done", "response.output_item.done"]
    assert [k for k in kinds if k in message][:2] == message[:2] and kinds.count("response.output_item.done") == 2
    assert "response.function_call_arguments.done" in kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    created, completed = events[0].response, events[-1].response  # type: ignore[union-attr]
    assert created.id == completed.id and completed.status == "completed"
    assert completed.usage is not None and completed.usage.total_tokens == 1230
    assert completed.output_text == "Running the tests."
    assert [item.type for item in completed.output] == ["message", "function_call"]


def test_responses_truncated_ends_incomplete(oai: OpenAIEmulator) -> None:
    oai.script([Reply.text("cut", truncated=True)])
    with openai.OpenAI(base_url=oai.base_url + "/v1", api_key="k", max_retries=0) as client:
        events = list(client.responses.create(model="m", input="go", stream=True))
    assert events[-1].type == "response.incomplete"


def test_anthropic_takes_what_claude_code_sends(claude: AnthropicEmulator) -> None:
    """Thinking, context management, a long beta header, ``?beta=true`` and a 130 KB request."""
    claude.script([Reply.claude_write("/work/a.txt", "hi\n", text="Writing.")])
    tools: Any = [{"name": f"Tool{i}", "description": "x" * 5000, "input_schema": {"type": "object"}}
                  for i in range(26)]
    betas = ["claude-code-20250219", "interleaved-thinking-2025-05-14", "context-management-2025-06-27"]
    with anthropic.Anthropic(base_url=claude.base_url, api_key="k", max_retries=0) as client:
        with client.beta.messages.stream(
            model="claude-sonnet-4-5", max_tokens=32000, messages=[{"role": "user", "content": "go"}],
            tools=tools, betas=betas, thinking={"type": "enabled", "budget_tokens": 1024},
            extra_body={"context_management": {"edits": []}}, extra_query={"beta": "true"},
        ) as stream:
            final = stream.get_final_message()
        count = client.messages.count_tokens(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "go"}])
    block = final.content[1]
    assert block.type == "tool_use" and block.name == "Write"
    assert block.input == {"file_path": "/work/a.txt", "content": "hi\n"}
    sent = claude.completions[0]
    assert sent.path == "/v1/messages?beta=true" and len(sent.raw) > 127_000
    assert sent.headers["anthropic-beta"] == ",".join(betas)
    assert sent.body is not None and sent.body["thinking"]["type"] == "enabled" and "context_management" in sent.body
    assert count.input_tokens > 0 and claude.remaining == 0  # counting takes no scripted reply


def test_head_probe_answers_2xx(claude: AnthropicEmulator) -> None:
    with urllib.request.urlopen(urllib.request.Request(claude.base_url + "/", method="HEAD"), timeout=5) as resp:
        assert resp.status == 200
    assert claude.requests[-1].method == "HEAD"


def test_agent_tool_protocol_helpers() -> None:
    write = Reply.claude_write("/w/a.py", "x = 1\n")
    assert (write.calls[0].name, write.calls[0].arguments_object()) == ("Write", {"file_path": "/w/a.py",
                                                                                  "content": "x = 1\n"})
    assert Reply.claude_bash("ls").calls[0].arguments_object()["command"] == "ls"
    assert Reply.codex_exec("ls", workdir="/w").calls[0].arguments_object() == {"cmd": "ls", "workdir": "/w"}
    whole = Reply.aider_whole({"a.py": "x = 1\n", "b/c.txt": "hi"}, text="Both files:")
    assert whole.content == "Both files:\n\na.py\n```\nx = 1\n```\n\nb/c.txt\n```\nhi\n```\n" and not whole.calls
    submit = Reply.mini_submit()
    assert submit.calls[0].name == "bash" and submit.calls[0].arguments_object() == {
        "command": f"echo {MINI_SUBMIT_MARKER}"}
    assert submit.content  # mini-swe-agent wants reasoning text beside the call
