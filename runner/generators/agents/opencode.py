"""Drive opencode (``opencode-ai`` on npm) headless: ``GENERATORS=opencode``.

``opencode run --format json --title TITLE -m gateway/MODEL`` with the
instruction on stdin (it reads piped stdin as the message), so the instruction
never meets argv's size limit or ``/proc/PID/cmdline``; a fixed ``--title``
saves the title call on ``small_model``. Its model is a provider ``gateway``
in ``~/.config/opencode/opencode.json`` (``@ai-sdk/openai-compatible``, the
gateway's Chat Completions route, the placeholder key read from
``GATEWAY_API_KEY``), with edits and shell commands allowed: our sandbox is
the only one. Every call home is off: the models catalogue, auto-update,
sharing, the default plugins and LSP downloads by ``OPENCODE_DISABLE_*``; the
background ``npm install`` of ``@opencode-ai/plugin`` into the config
directory is skipped because that directory already has ``node_modules`` and a
lock that names the package. A repository's own ``opencode.json`` is not read
(``OPENCODE_DISABLE_PROJECT_CONFIG``), so it cannot change the provider or the
permissions.

Stdout is JSONL events: ``text`` parts (the model's words), ``tool_use`` parts
(``tool``, ``state.input``, ``state.output``, ``state.metadata.exit``),
``step_finish`` with ``reason`` and ``tokens``, and ``error`` with
``error.data.message``.
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

VERSION_TESTED = "1.18.33"
PROVIDER = "gateway"
KEY_VARIABLE = "GATEWAY_API_KEY"
TITLE = "agent-runner task"
CONFIG_DIR = ".config/opencode"
_CLIP = 300


class OpencodePreset(AgentPreset):
    """opencode, over OpenAI Chat Completions through an openai-compatible provider."""

    label = "opencode"
    setting = "opencode_bin"
    dialect = "openai"
    install_hint = ("Install it (`npm install -g opencode-ai@1.18.33`, about 354 MB, a Bun binary) or set "
                    "OPENCODE_BIN to its `opencode` program; see docs/generators.md.")

    name = "opencode"
    program = "opencode"

    def argv(self, run: AgentRun) -> list[str]:
        return [str(self.install.program), "run", "--format", "json", "--title", TITLE,
                "-m", f"{PROVIDER}/{run.model}"]

    def stdin(self, run: AgentRun) -> bytes:
        return run.prompt.encode("utf-8")

    def env(self, run: AgentRun) -> dict[str, str]:
        return {
            KEY_VARIABLE: run.token,
            "OPENCODE_DISABLE_MODELS_FETCH": "1",
            "OPENCODE_DISABLE_AUTOUPDATE": "1",
            "OPENCODE_DISABLE_SHARE": "1",
            "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
            "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
            "OPENCODE_DISABLE_PROJECT_CONFIG": "1",
        }

    def home_files(self, run: AgentRun) -> Mapping[str, str]:
        return {
            f"{CONFIG_DIR}/opencode.json": config_json(run.model, f"{run.base_url}/v1"),
            # A config directory with node_modules and a lock naming the plugin package is not installed into.
            f"{CONFIG_DIR}/package.json": json.dumps({"private": True}),
            f"{CONFIG_DIR}/package-lock.json": json.dumps(
                {"lockfileVersion": 3, "packages": {"": {"dependencies": {"@opencode-ai/plugin": "*"}}}}),
            f"{CONFIG_DIR}/node_modules/.agent-runner": "",
        }

    def parse(self, result: ProcResult, run: AgentRun) -> Outcome:
        events = json_objects(result.output)
        if not events:
            return self.printed_nothing(result, "no events")
        texts: list[str] = []
        problems: list[str] = []
        lines: list[str] = []
        tokens_in = tokens_out = steps = 0
        reason = ""
        for event in events:
            kind = event.get("type")
            part = mapping(event.get("part"))
            if kind == "text" and isinstance(part.get("text"), str) and part["text"].strip():
                texts.append(part["text"])
                lines.append(f"assistant: {part['text'][:_CLIP]}")
            elif kind == "tool_use":
                lines += _describe_tool(part)
            elif kind == "step_finish":
                steps += 1
                reason = str(part.get("reason") or "")
                tokens = mapping(part.get("tokens"))
                tokens_in += number(tokens.get("input")) + number(mapping(tokens.get("cache")).get("read"))
                tokens_out += number(tokens.get("output"))
            elif kind == "error":
                error = mapping(event.get("error"))
                message = mapping(error.get("data")).get("message") or error.get("name") or "an error"
                problems.append(str(message)[:_CLIP])
                lines.append(f"! {problems[-1]}")
        finished = reason == "stop"
        lines.insert(0, f"{self.label}: {steps} step(s), the last ended with `{reason or 'nothing'}`")
        problem = "; ".join(problems) if problems else ("" if finished else f"its last step ended with `{reason}`")
        return Outcome(
            summary=summary_text(texts[-1] if texts else "", f"{self.label} finished after {steps} step(s)."),
            ok=finished and not problems,
            problem=problem,
            usage=Usage(input_tokens=tokens_in, output_tokens=tokens_out, model=run.model),
            transcript="\n".join(lines),
        )


def config_json(model: str, base_url: str) -> str:
    """opencode's config: one openai-compatible provider at the gateway, its key from the environment."""
    qualified = f"{PROVIDER}/{model}"
    return json.dumps({
        "$schema": "https://opencode.ai/config.json",
        "provider": {PROVIDER: {
            "npm": "@ai-sdk/openai-compatible",
            "name": "agent-runner gateway",
            "options": {"baseURL": base_url, "apiKey": f"{{env:{KEY_VARIABLE}}}"},
            "models": {model: {"name": model}},
        }},
        "model": qualified,
        "small_model": qualified,
        "permission": {"edit": "allow", "bash": "allow"},
        "autoupdate": False,
        "share": "disabled",
    }, indent=2)


def _describe_tool(part: Mapping[str, Any]) -> list[str]:
    """One tool call as a transcript line or two."""
    state = mapping(part.get("state"))
    tool = str(part.get("tool") or "tool")
    given = mapping(state.get("input"))
    if tool == "bash":
        head = f"$ {given.get('command', '')}  [exit {mapping(state.get('metadata')).get('exit')}]"
    else:
        target = given.get("filePath") or given.get("path") or state.get("title") or ""
        head = f"{tool}: {target}"
    if state.get("status") not in (None, "completed"):
        head += f"  ({state.get('status')})"
    out = str(state.get("output") or state.get("error") or "").strip()
    return [head] + ([f"  {out[:_CLIP]}"] if out and out != "(no output)" else [])


def build(settings: Any) -> Generator:
    return OpencodePreset(settings)
