"""Drive Google's Gemini CLI (``@google/gemini-cli``) headless: ``GENERATORS=gemini-cli``.

``gemini -p TAIL --yolo --skip-trust -m MODEL --output-format json`` with
the instruction on stdin: the CLI puts what it reads there before ``-p``'s
text (one process: ``GEMINI_CLI_NO_RELAUNCH`` keeps it from re-spawning
itself with stdin moved into argv), so the instruction never meets argv's
size limit or ``/proc/PID/cmdline``. Without ``--skip-trust`` ``--yolo`` is silently downgraded and no tool call is
approved; without ``-m`` it first asks a router model. Its throw-away HOME
holds ``~/.gemini/settings.json``: the auth type ``gemini-api-key`` (else it
exits 41), folder trust off, usage statistics, telemetry and auto-update off
(every call home), and one attempt per model call (it would retry a failing
model for minutes). The gateway is ``GOOGLE_GEMINI_BASE_URL`` and the
placeholder key ``GEMINI_API_KEY``, sent as ``x-goog-api-key`` on the Gemini
wire (``:streamGenerateContent?alt=sse``, the model in the path).

Stdout is one pretty-printed JSON object: ``response`` (the final answer, our
summary), ``stats`` (per model ``api`` and ``tokens``, ``tools.byName``,
``files``) and, when it failed, ``error`` (``type``, ``message``, ``code``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from runner.generators.agents.base import (
    AgentPreset,
    AgentRun,
    Outcome,
    json_document,
    mapping,
    number,
    summary_text,
)
from runner.generators.base import Generator, Usage
from runner.sandbox.procs import ProcResult

VERSION_TESTED = "0.61.0"
#: What ``-p`` says after the instruction read from stdin.
PROMPT_TAIL = "Carry out the task above in the current directory."


class GeminiCliPreset(AgentPreset):
    """The Gemini CLI, over the Gemini API's streamGenerateContent."""

    label = "Gemini CLI"
    setting = "gemini_cli_bin"
    dialect = "gemini"
    install_hint = ("Install it (`npm install -g @google/gemini-cli@0.61.0`, about 100 MB, run by Node 20) or set "
                    "GEMINI_CLI_BIN to its `gemini` program; see docs/generators.md.")
    litter = (".gemini",)

    name = "gemini-cli"
    program = "gemini"

    def default_model(self) -> str:
        return self.settings.default_model or self.settings.gemini_model

    def argv(self, run: AgentRun) -> list[str]:
        return [str(self.install.program), "-p", PROMPT_TAIL, "--yolo", "--skip-trust", "-m", run.model,
                "--output-format", "json"]

    def stdin(self, run: AgentRun) -> bytes:
        return run.prompt.encode("utf-8")

    def env(self, run: AgentRun) -> dict[str, str]:
        return {
            "GOOGLE_GEMINI_BASE_URL": run.base_url,
            "GEMINI_API_KEY": run.token,
            "GEMINI_DEFAULT_AUTH_TYPE": "gemini-api-key",
            "GEMINI_CLI_TRUST_WORKSPACE": "true",
            "GEMINI_TELEMETRY_ENABLED": "false",
            "GEMINI_CLI_NO_RELAUNCH": "true",  # one Node process, not a re-spawned child with more memory
        }

    def home_files(self, run: AgentRun) -> Mapping[str, str]:
        return {".gemini/settings.json": settings_json(run.max_turns)}

    def parse(self, result: ProcResult, run: AgentRun) -> Outcome:
        found = json_document(result.output)
        if found is None:
            return self.printed_nothing(result)
        text = found["response"] if isinstance(found.get("response"), str) else ""
        error = mapping(found.get("error"))
        stats = mapping(found.get("stats"))
        tokens_in = tokens_out = requests = 0
        for model in mapping(stats.get("models")).values():
            tokens = mapping(mapping(model).get("tokens"))
            tokens_in += number(tokens.get("prompt"))
            tokens_out += number(tokens.get("candidates"))
            requests += number(mapping(mapping(model).get("api")).get("totalRequests"))
        tools = mapping(mapping(stats.get("tools")).get("byName"))
        lines = [f"{self.label}: {requests} model request(s), {len(tools)} tool(s) used"]
        for tool, counts in tools.items():
            counts = mapping(counts)
            lines.append(f"tool {tool}: {number(counts.get('count'))} call(s), {number(counts.get('success'))} ok, "
                         f"{number(counts.get('fail'))} failed")
        if text:
            lines += ["", text]
        problem = ""
        if error:
            problem = str(error.get("message") or error.get("type") or "it reported an error")[:600]
            lines.append(f"! {problem}")
        return Outcome(
            summary=summary_text(text, f"{self.label} finished."),
            ok=not error and result.exit_code == 0,
            problem=problem or ("" if result.exit_code == 0 else f"it exited with status {result.exit_code}"),
            usage=Usage(input_tokens=tokens_in, output_tokens=tokens_out, model=run.model),
            transcript="\n".join(lines),
        )


def settings_json(max_turns: int) -> str:
    """``~/.gemini/settings.json``: API-key auth, the workspace trusted, every call home off, no retries."""
    return json.dumps({
        "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": False}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True, "maxAttempts": 1},
        "model": {"maxSessionTurns": max_turns},
        "ui": {"hideTips": True, "hideBanner": True},
    }, indent=2)


def build(settings: Any) -> Generator:
    return GeminiCliPreset(settings)
