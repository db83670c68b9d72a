"""Drive OpenAI's Codex CLI (``@openai/codex``) headless: ``GENERATORS=codex``.

``codex exec --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox
--json -`` with the instruction on stdin. Codex's own bubblewrap sandbox would
nest inside ours (and fails silently with a home under /tmp), so it is
bypassed. Its model is a custom provider in ``$HOME/.codex/config.toml``
(``OPENAI_BASE_URL`` is ignored), over the Responses API, with the placeholder
key read from ``GATEWAY_API_KEY``; ``[analytics]`` and ``[features] plugins``
off stop every call home, and no retries make a failing model fail in under a
second. A model slug outside Codex's catalog gets plain function tools
(``exec_command``), which is what an OpenAI-compatible server expects.

Stdout is JSONL events: ``item.completed`` items (``agent_message``,
``command_execution``, ``file_change``, ``error``), ``turn.completed`` with
usage, or ``turn.failed`` / ``error`` with a message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from runner.generators.agents.base import (
    AgentPreset,
    AgentRun,
    Outcome,
    json_objects,
    mapping,
    number,
    summary_text,
)
from runner.generators.base import Generator, Usage
from runner.sandbox.procs import ProcResult

VERSION_TESTED = "0.171.0"
PROVIDER = "gateway"
KEY_VARIABLE = "GATEWAY_API_KEY"
_CLIP = 300


class CodexPreset(AgentPreset):
    """Codex CLI, over the OpenAI Responses API."""

    label = "Codex"
    setting = "codex_bin"
    dialect = "openai"
    install_hint = ("Install it (`npm install -g @openai/codex`, about 424 MB) or set CODEX_BIN to its `codex` "
                    "program; see docs/generators.md.")

    name = "codex"
    program = "codex"

    def argv(self, run: AgentRun) -> list[str]:
        return [str(self.install.program), "exec", "--skip-git-repo-check",
                "--dangerously-bypass-approvals-and-sandbox", "--json", "--color", "never", "-"]

    def stdin(self, run: AgentRun) -> bytes:
        return run.prompt.encode("utf-8")

    def env(self, run: AgentRun) -> dict[str, str]:
        return {KEY_VARIABLE: run.token, "CODEX_HOME": f"{run.home}/.codex"}

    def home_files(self, run: AgentRun) -> Mapping[str, str]:
        return {".codex/config.toml": config_toml(run.model, f"{run.base_url}/v1")}

    def parse(self, result: ProcResult, run: AgentRun) -> Outcome:
        events = json_objects(result.output)
        if not events:
            return self.printed_nothing(result, "no events")
        messages: list[str] = []
        problems: list[str] = []
        lines: list[str] = []
        tokens_in = tokens_out = 0
        completed = False
        for event in events:
            kind = event.get("type")
            item = mapping(event.get("item"))
            if kind == "item.completed":
                lines += _describe(item)
                if item.get("type") == "agent_message" and isinstance(item.get("text"), str):
                    messages.append(item["text"])
            elif kind == "turn.completed":
                completed = True
                usage = mapping(event.get("usage"))
                tokens_in += number(usage.get("input_tokens"))
                tokens_out += number(usage.get("output_tokens"))
            elif kind in ("turn.failed", "error"):
                error = mapping(event.get("error")) or event
                problems.append(str(error.get("message") or kind)[:_CLIP])
                lines.append(f"! {problems[-1]}")
        ok = completed and not problems
        return Outcome(
            summary=summary_text(messages[-1] if messages else "", f"{self.label} finished."),
            ok=ok,
            problem="; ".join(problems) if problems else ("" if completed else "the turn never completed"),
            usage=Usage(input_tokens=tokens_in, output_tokens=tokens_out, model=run.model),
            transcript="\n".join(lines),
        )


def config_toml(model: str, base_url: str) -> str:
    """Codex's config: top-level keys first, then the tables (TOML strings written as JSON strings)."""
    q = json.dumps
    return "\n".join([
        f"model = {q(model)}",
        f"model_provider = {q(PROVIDER)}",
        "check_for_update_on_startup = false",
        "",
        "[analytics]",
        "enabled = false",
        "",
        "[features]",
        "plugins = false",
        "",
        "[history]",
        'persistence = "none"',
        "",
        f"[model_providers.{PROVIDER}]",
        f"name = {q(PROVIDER)}",
        f"base_url = {q(base_url)}",
        f"env_key = {q(KEY_VARIABLE)}",
        'wire_api = "responses"',
        "request_max_retries = 0",
        "stream_max_retries = 0",
        "",
    ])


def _describe(item: Mapping[str, Any]) -> list[str]:
    """One item as a transcript line or two."""
    kind = item.get("type")
    if kind == "agent_message":
        return [f"assistant: {item.get('text', '')}"]
    if kind == "command_execution":
        out = str(item.get("aggregated_output") or "").strip()
        head = f"$ {item.get('command', '')}  [exit {item.get('exit_code')}]"
        return [head] + ([f"  {out[:_CLIP]}"] if out else [])
    if kind == "file_change":
        changes = item["changes"] if isinstance(item.get("changes"), list) else []
        paths = ", ".join(f"{c.get('kind', 'edit')} {c.get('path', '?')}" for c in changes if isinstance(c, dict))
        return [f"files: {paths or 'changed'}"]
    if kind == "error":
        return [f"note: {str(item.get('message', ''))[:_CLIP]}"]
    if kind == "reasoning":
        return [f"thinking: {str(item.get('text', ''))[:_CLIP]}"]
    return []


def build(settings: Any) -> Generator:
    return CodexPreset(settings)
