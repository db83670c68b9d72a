"""Drive Cline's CLI (``cline`` on npm, 3.x) headless: ``GENERATORS=cline``, the old runner's first choice.

``cat TASK | cline --json --data-dir HOME/.cline/data PROMPT_HEAD``: Cline
appends what a piped stdin holds to the prompt argument (a regular file on
stdin reads as empty, hence the pipe from the read-only instruction file), and
``--json`` needs that argument, so a fixed head goes in argv and the
instruction never does. It runs in act mode with auto-approve, headless
because stdout is not a terminal. The hidden ``-y`` is never passed: the run
would then end only on a ``submit_and_exit`` call, and a model answering in
text loops. Its data directory, in the throw-away home, holds:

- ``settings/providers.json``: the ``openai-compatible`` provider at the
  gateway's Chat Completions route. ``updatedAt`` is required: without it the
  file is silently replaced by a default that calls Cline's account service.
  The placeholder key is not in the file: Cline reads ``OPENAI_API_KEY``.
- ``settings/global-settings.json``: telemetry opted out, no auto-update;
- ``cache/feature-flags.json``: a fresh cache, so no flag poll is made.

``CLINE_SESSION_BACKEND_MODE=local`` keeps it from leaving a hub daemon behind.

Stdout is JSONL: ``agent_event`` events (tool calls ``content_end`` with
``toolName``, ``input`` and ``output``; text), then one ``run_result``
(``finishReason``, ``iterations``, ``usage``, ``text``). An error is a
``{"type": "error", "message"}`` line on stderr.
"""

from __future__ import annotations

import json
import time
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
from runner.sandbox.procs import ProcResult, strip_ansi, tail_text

VERSION_TESTED = "3.0.65"
PROVIDER = "openai-compatible"
DATA_DIR = ".cline/data"
#: What the prompt argument says; the instruction read from stdin follows it.
PROMPT_HEAD = "Carry out the task below in the current directory."
PROMPT_FILE = "task.md"
#: ``$0`` is the program, ``$1`` the instruction file, ``$2`` the data directory, ``$3`` the prompt's head.
PIPE = 'cat -- "$1" | "$0" --json --data-dir "$2" "$3"'
_CLIP = 300


class ClinePreset(AgentPreset):
    """Cline's CLI, over OpenAI Chat Completions through its openai-compatible provider."""

    label = "Cline"
    setting = "cline_bin"
    dialect = "openai"
    install_hint = ("Install it (`npm install -g cline@3.0.65`, about 421 MB; a native binary) or set CLINE_BIN "
                    "(or the old runner's CLINE_CMD) to its `cline` program; see docs/generators.md.")

    name = "cline"
    program = "cline"

    def argv(self, run: AgentRun) -> list[str]:
        # Cline reads stdin only from a pipe (a regular file reads as empty): a fixed shell line pipes the
        # read-only instruction file into it; no text of the task is ever parsed by the shell.
        return ["/bin/sh", "-c", PIPE, str(self.install.program), str(run.scratch_file(PROMPT_FILE)),
                f"{run.home}/{DATA_DIR}", PROMPT_HEAD]

    def scratch_files(self, run: AgentRun) -> Mapping[str, str]:
        return {PROMPT_FILE: run.prompt}

    def env(self, run: AgentRun) -> dict[str, str]:
        return {"OPENAI_API_KEY": run.token, "CLINE_SESSION_BACKEND_MODE": "local", "CLINE_NO_AUTO_UPDATE": "1"}

    def home_files(self, run: AgentRun) -> Mapping[str, str]:
        return {
            f"{DATA_DIR}/settings/providers.json": providers_json(run.model, f"{run.base_url}/v1"),
            f"{DATA_DIR}/settings/global-settings.json": json.dumps({"telemetryOptOut": True,
                                                                      "autoUpdateEnabled": False}),
            f"{DATA_DIR}/cache/feature-flags.json": feature_flags_json(time.time()),
        }

    def parse(self, result: ProcResult, run: AgentRun) -> Outcome:
        events = json_objects(result.output)
        errors = [str(e.get("message") or "")[:_CLIP] for e in json_objects(result.stderr) if e.get("type") == "error"]
        final = next((e for e in reversed(events) if e.get("type") == "run_result"), None)
        lines = [line for e in events if e.get("type") == "agent_event" for line in _describe(mapping(e.get("event")))]
        if final is None:
            said = "; ".join(errors) or tail_text(strip_ansi(result.stderr or result.output), max_lines=8,
                                                  max_chars=800)
            return Outcome(summary=f"{self.label} printed no result.", ok=False, problem=said or "it printed nothing",
                           transcript="\n".join(lines + ([f"! {said}"] if said else [])))
        reason = str(final.get("finishReason") or "unknown")
        text = final["text"] if isinstance(final.get("text"), str) else ""
        usage = mapping(final.get("usage"))
        ok = reason == "completed" and not errors
        lines.insert(0, f"{self.label}: {reason} after {number(final.get('iterations'))} iteration(s)")
        lines += [f"! {e}" for e in errors]
        problem = "" if ok else "; ".join(errors) or (text if reason == "error" else f"it ended with `{reason}`")
        return Outcome(
            summary=summary_text(text if ok else "", f"{self.label} ended with `{reason}`."),
            ok=ok,
            problem=problem[:600],
            usage=Usage(input_tokens=number(usage.get("inputTokens")) + number(usage.get("cacheReadTokens")),
                        output_tokens=number(usage.get("outputTokens")), model=run.model),
            transcript="\n".join(lines),
        )


def providers_json(model: str, base_url: str) -> str:
    """Cline's provider file as ``cline auth`` writes it, without the key (read from OPENAI_API_KEY)."""
    return json.dumps({
        "version": 1,
        "lastUsedProvider": PROVIDER,
        "modes": {},
        "providers": {PROVIDER: {
            "settings": {"provider": PROVIDER, "model": model, "baseUrl": base_url},
            "updatedAt": "2026-01-01T00:00:00.000Z",  # without it the file is replaced by one that calls home
            "tokenSource": "manual",
        }},
    }, indent=2)


def feature_flags_json(now: float) -> str:
    """A feature-flag cache that is fresh (under an hour old), so Cline does not poll for flags."""
    return json.dumps({"version": 2, "updatedAt": int(now * 1000), "userId": None,
                       "flagsPayload": {"featureFlags": {}, "featureFlagPayloads": {}}})


def _describe(event: Mapping[str, Any]) -> list[str]:
    """One finished tool call or text as a transcript line or two."""
    if event.get("type") != "content_end":
        return []
    if event.get("contentType") == "text":
        return [f"assistant: {str(event.get('text') or '')[:_CLIP]}"]
    if event.get("contentType") != "tool":
        return []
    tool, given = str(event.get("toolName") or "tool"), mapping(event.get("input"))
    outputs = event["output"] if isinstance(event.get("output"), list) else []
    if tool == "run_commands":
        commands = given["commands"] if isinstance(given.get("commands"), list) else []
        lines = [f"$ {command}" for command in commands]
    else:
        lines = [f"{tool}: {given.get('path') or given.get('paths') or ''}"]
    for out in outputs:
        if isinstance(out, dict):
            status = "ok" if out.get("success") else "failed"
            lines.append(f"  [{status}] {str(out.get('result') or out.get('error') or '').strip()[:_CLIP]}")
    return lines


def build(settings: Any) -> Generator:
    return ClinePreset(settings)
