"""Scripted OpenAI-, Anthropic- and Gemini-compatible servers, for testing generators end to end.

Like ``moto`` for AWS: a plugin author starts an emulator, queues what the
model says, points the official SDK (or a generator) at ``emu.base_url`` and
asserts on what the model was sent::

    with OpenAIEmulator() as emu:
        emu.script([Reply.tool_call("write_file", {"path": "a.txt", "content": "hi"}),
                    Reply.text("done")])
        client = openai.OpenAI(base_url=emu.base_url + "/v1", api_key="test")
        ...
        assert emu.completions[1].contains("Wrote a.txt")

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

from github_emulator.llm.anthropic_wire import AnthropicEmulator
from github_emulator.llm.gemini_wire import GeminiEmulator
from github_emulator.llm.openai_wire import OpenAIEmulator
from github_emulator.llm.script import Reply, ToolCall
from github_emulator.llm.server import LLMEmulator, RecordedRequest

__all__ = ["AnthropicEmulator", "GeminiEmulator", "LLMEmulator", "OpenAIEmulator", "RecordedRequest", "Reply", "ToolCall"]
