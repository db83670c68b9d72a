"""Describe what a scripted model says next, once, for every provider's wire format.

A test queues :class:`Reply` values on an emulator; the emulator renders each
one as an OpenAI chat completion or Responses object, an Anthropic message or a
Gemini ``GenerateContentResponse``, streamed or not.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

_ids = itertools.count(1)
#: mini-swe-agent ends only when a command's first output line is this.
MINI_SUBMIT_MARKER = "COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"


def next_id(prefix: str) -> str:
    """A process-unique id such as ``call_7`` or ``toolu_7``."""
    return f"{prefix}{next(_ids)}"


@dataclass(frozen=True)
class ToolCall:
    """One tool call the model makes; ``arguments`` may be a raw (even invalid) JSON string."""

    name: str
    arguments: Mapping[str, Any] | str
    id: str | None = None

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments), ensure_ascii=False)

    def arguments_object(self) -> dict[str, Any]:
        """The arguments as an object (Anthropic's ``input`` must be one)."""
        if not isinstance(self.arguments, str):
            return dict(self.arguments)
        try:
            value = json.loads(self.arguments)
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Reply:
    """One scripted turn: text and/or tool calls, or an HTTP error, optionally delayed."""

    content: str = ""
    calls: tuple[ToolCall, ...] = ()
    status: int = 200
    error_message: str | None = None
    retry_after: float | None = None
    delay: float = 0.0
    input_tokens: int = 10
    output_tokens: int = 5
    truncated: bool = False
    #: A body sent as is with HTTP 200 instead of a rendered reply (a malformed answer).
    raw: str | None = None
    #: Why the model refused to answer (Gemini's ``finishReason``, such as ``SAFETY``), or None.
    blocked: str | None = None
    #: A streamed reply sends its first event, then waits for this to be set before the rest.
    gate: threading.Event | None = field(default=None, compare=False)

    @classmethod
    def text(cls, content: str, *, input_tokens: int = 10, output_tokens: int = 5, truncated: bool = False) -> Reply:
        """A plain assistant answer (``truncated`` ends it as if max tokens were hit)."""
        return cls(content=content, input_tokens=input_tokens, output_tokens=output_tokens, truncated=truncated)

    @classmethod
    def tool_call(
        cls,
        name: str,
        arguments: Mapping[str, Any] | str | None = None,
        *,
        text: str = "",
        id: str | None = None,
        input_tokens: int = 10,
        output_tokens: int = 5,
    ) -> Reply:
        """The model calls one tool (optionally saying something first)."""
        call = ToolCall(name, arguments if arguments is not None else {}, id)
        return cls(content=text, calls=(call,), input_tokens=input_tokens, output_tokens=output_tokens)

    @classmethod
    def tool_calls(
        cls, *calls: ToolCall | tuple[str, Mapping[str, Any] | str], text: str = "",
        input_tokens: int = 10, output_tokens: int = 5,
    ) -> Reply:
        """The model calls several tools in one turn (parallel tool calls)."""
        made = tuple(c if isinstance(c, ToolCall) else ToolCall(c[0], c[1]) for c in calls)
        return cls(content=text, calls=made, input_tokens=input_tokens, output_tokens=output_tokens)

    @classmethod
    def error(cls, status: int, message: str | None = None, *, retry_after: float | None = None) -> Reply:
        """The server answers with an HTTP error in the provider's error shape."""
        if status < 400:
            raise ValueError("an error reply needs a status of 400 or more")
        return cls(status=status, error_message=message, retry_after=retry_after)

    @classmethod
    def malformed(cls, raw: str = '{"candidates": [{"content": {"parts": [{"text": "cut sh') -> Reply:
        """HTTP 200 with a body that is not the wire's JSON (cut short, by default); streamed, one bad event."""
        return cls(raw=raw)

    @classmethod
    def refusal(cls, reason: str = "SAFETY", *, input_tokens: int = 10) -> Reply:
        """The model declines to answer: no content, and ``reason`` as why (Gemini's blocked candidate)."""
        return cls(blocked=reason, input_tokens=input_tokens, output_tokens=0)

    @classmethod
    def gated(cls, gate: threading.Event, then: Reply) -> Reply:
        """Stream ``then``'s first event, then hold the rest until ``gate`` is set (a proxy that buffers
        would hold the first event back too: the emulator counts a gate that timed out in ``gate_timeouts``)."""
        return replace(then, gate=gate)

    @classmethod
    def slow(cls, seconds: float, then: Reply | None = None) -> Reply:
        """Wait ``seconds`` before answering with ``then`` (a client may time out first)."""
        return replace(then or cls.text("(slow reply)"), delay=seconds)

    # Each agent CLI's own tool protocol (see ../shared/AGENT-CLIS.md).

    @classmethod
    def claude_write(cls, file_path: str, content: str, *, text: str = "") -> Reply:
        """Claude Code's ``Write`` tool: create or replace a file (an absolute path)."""
        return cls.tool_call("Write", {"file_path": file_path, "content": content}, text=text)

    @classmethod
    def claude_bash(cls, command: str, *, text: str = "", description: str = "Run a command") -> Reply:
        """Claude Code's ``Bash`` tool: run one shell command."""
        return cls.tool_call("Bash", {"command": command, "description": description}, text=text)

    @classmethod
    def codex_exec(cls, cmd: str, *, text: str = "", workdir: str | None = None) -> Reply:
        """Codex's ``exec_command`` function call (sent to a model slug outside Codex's catalog)."""
        arguments: dict[str, Any] = {"cmd": cmd}
        if workdir is not None:
            arguments["workdir"] = workdir
        return cls.tool_call("exec_command", arguments, text=text)

    @classmethod
    def aider_whole(cls, files: Mapping[str, str], *, text: str = "") -> Reply:
        """aider's ``whole`` edit format: each file's path on a line, then its whole new content fenced."""
        blocks = [f"{path}\n```\n{content.rstrip(chr(10))}\n```" for path, content in files.items()]
        return cls.text("\n\n".join(([text] if text else []) + blocks) + "\n")

    @classmethod
    def mini_bash(cls, command: str, *, text: str = "Running a command.") -> Reply:
        """mini-swe-agent's one ``bash`` tool (it wants some reasoning text beside each call)."""
        return cls.tool_call("bash", {"command": command}, text=text)

    @classmethod
    def mini_submit(cls, *, text: str = "The task is done.") -> Reply:
        """mini-swe-agent's end: a command whose first output line is its completion marker."""
        return cls.mini_bash(f"echo {MINI_SUBMIT_MARKER}", text=text)

    @classmethod
    def gemini_write(cls, file_path: str, content: str, *, text: str = "") -> Reply:
        """The Gemini CLI's ``write_file`` tool: create or replace a file."""
        return cls.tool_call("write_file", {"file_path": file_path, "content": content}, text=text)

    @classmethod
    def gemini_shell(cls, command: str, *, text: str = "", description: str = "Run a command") -> Reply:
        """The Gemini CLI's ``run_shell_command`` tool."""
        return cls.tool_call("run_shell_command", {"command": command, "description": description}, text=text)

    @classmethod
    def opencode_bash(cls, command: str, *, text: str = "", description: str = "Run a command") -> Reply:
        """opencode's ``bash`` tool: one shell command, with a short description."""
        return cls.tool_call("bash", {"command": command, "description": description}, text=text)

    @classmethod
    def cline_commands(cls, *commands: str, text: str = "") -> Reply:
        """Cline's ``run_commands`` tool: shell commands run in order in the working directory."""
        return cls.tool_call("run_commands", {"commands": list(commands)}, text=text)

    @property
    def is_error(self) -> bool:
        return self.status >= 400

    def with_ids(self, prefix: str) -> tuple[ToolCall, ...]:
        """The tool calls, each with an id in the provider's style."""
        return tuple(c if c.id else replace(c, id=next_id(prefix)) for c in self.calls)


def pieces(text: str, size: int = 8) -> list[str]:
    """Split text into stream deltas the way a server would send them."""
    return [text[i : i + size] for i in range(0, len(text), size)] if text else []
