"""Drive Claude Code (``@anthropic-ai/claude-code``) headless: ``GENERATORS=claude-code``.

``claude -p --output-format json --model MODEL --dangerously-skip-permissions``
with the instruction on stdin. Our sandbox is the only one: Claude Code's
permission prompts are off, which it allows as root only with ``IS_SANDBOX=1``
exactly. ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` stops the bootstrap,
feature-flag, MCP-registry and title calls; ``CLAUDE_CODE_MAX_RETRIES=1``
makes a failing model fail in about a second instead of retrying for minutes.
Stdout is one ``result`` object: ``subtype``, ``is_error``, ``result`` (the
final answer, our summary), ``num_turns``, ``permission_denials`` and usage.
"""

from __future__ import annotations

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

VERSION_TESTED = "2.1.337"


class ClaudeCodePreset(AgentPreset):
    """Claude Code, over the Anthropic Messages API."""

    label = "Claude Code"
    setting = "claude_code_bin"
    dialect = "anthropic"
    install_hint = ("Install it (`npm install -g @anthropic-ai/claude-code`, about 235 MB) or set CLAUDE_CODE_BIN "
                    "to its `claude` program; see docs/generators.md.")

    def default_model(self) -> str:
        return self.settings.default_model or self.settings.anthropic_model

    name = "claude-code"
    program = "claude"

    def argv(self, run: AgentRun) -> list[str]:
        return [str(self.install.program), "-p", "--output-format", "json", "--model", run.model,
                "--dangerously-skip-permissions", "--max-turns", str(run.max_turns)]

    def stdin(self, run: AgentRun) -> bytes:
        return run.prompt.encode("utf-8")

    def env(self, run: AgentRun) -> dict[str, str]:
        return {
            "ANTHROPIC_BASE_URL": run.base_url,
            "ANTHROPIC_API_KEY": run.token,
            "IS_SANDBOX": "1",  # exactly "1": "yes" does not count
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
        }

    def parse(self, result: ProcResult, run: AgentRun) -> Outcome:
        found = result_object(result.output)
        if found is None:
            return self.printed_nothing(result)
        text = found["result"] if isinstance(found.get("result"), str) else ""
        subtype = str(found.get("subtype") or "")
        failed = bool(found.get("is_error")) or subtype != "success"
        turns = number(found.get("num_turns"))
        denials = found.get("permission_denials") if isinstance(found.get("permission_denials"), list) else []
        usage = mapping(found.get("usage"))
        tokens_in = sum(number(usage.get(k)) for k in
                        ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
        cost = found.get("total_cost_usd")
        lines = [f"{self.label}: {subtype or 'no subtype'} after {turns} turn(s)"
                 + (f", {len(denials)} permission denial(s)" if denials else "")]
        if text:
            lines += ["", text]
        problem = ""
        if failed:
            problem = text or subtype.replace("_", " ") or "it reported an error"
        return Outcome(
            summary=summary_text(text, f"{self.label} finished after {turns} turn(s)."),
            ok=not failed,
            problem=problem,
            usage=Usage(input_tokens=tokens_in, output_tokens=number(usage.get("output_tokens")),
                        cost_usd=float(cost) if isinstance(cost, int | float) else None, model=run.model),
            transcript="\n".join(lines),
        )


def result_object(stdout: str) -> dict[str, Any] | None:
    """The last ``{"type": "result", ...}`` object Claude Code printed."""
    return next((v for v in reversed(json_objects(stdout)) if v.get("type") == "result"), None)


def build(settings: Any) -> Generator:
    return ClaudeCodePreset(settings)
