"""Drive aider (``aider-chat`` on PyPI) headless: ``GENERATORS=aider``.

aider has no tools: the model answers with edit blocks, here the ``whole``
format (each file's path, then its whole new content, fenced), and aider
writes them. The instruction is a ``--message-file`` in the read-only scratch
directory. ``--yes-always`` approves edits and new files; ``--no-auto-commits``
and ``--no-dirty-commits`` leave the commit to the runner. The update check
and analytics are off by flag, and a ``--model-metadata-file`` naming the
model (with ``LITELLM_LOCAL_MODEL_COST_MAP=True``) keeps litellm from fetching
its price list. Its model is any name behind ``openai/`` on the gateway's
Chat Completions route; aider sends it without the prefix.

aider exits 0 even when the model failed, so its stdout is read: ``Applied
edit to PATH`` lines, ``Tokens: N sent, M received``, and the model's prose.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from runner.generators.agents.base import AgentPreset, AgentRun, Outcome, summary_text
from runner.generators.base import Generator, Usage
from runner.sandbox.procs import ProcResult, strip_ansi, tail_text

VERSION_TESTED = "0.86.2"
MESSAGE_FILE = "message.md"
METADATA_FILE = "model-metadata.json"
_APPLIED_RE = re.compile(r"^Applied edit to (.+)$", re.M)
_TOKENS_RE = re.compile(r"^Tokens: ([\d.,]+)(k?) sent.*?, ([\d.,]+)(k?) received", re.M)
_ERROR_RE = re.compile(r"^(litellm\.\w+|.*Error: .*|.*error.*retrying.*|The API provider .*)$", re.M | re.I)
_BANNER = ("Aider v", "Model:", "Git repo:", "Repo-map:", "Added ", "Tokens:", "Applied edit", "Cost:",
           "Update git ", "You can skip", "Creating empty file", "Analytics ", "Main model:", "Weak model:",
           "Detected dumb terminal", "Warning: ", "Aider respects your privacy")


class AiderPreset(AgentPreset):
    """aider, over OpenAI Chat Completions, with whole-file edits."""

    label = "aider"
    setting = "aider_bin"
    dialect = "openai"
    install_hint = ("Install it in its own venv (`python -m venv /opt/aider && /opt/aider/bin/pip install "
                    "aider-chat`, about 690 MB) and set AIDER_BIN=/opt/aider/bin/aider; see docs/generators.md.")
    litter = (".aider.tags.cache.v4", ".aider.chat.history.md", ".aider.input.history", ".aider.llm.history")

    name = "aider"
    program = "aider"

    def argv(self, run: AgentRun) -> list[str]:
        return [
            str(self.install.program), "--model", f"openai/{run.model}", "--edit-format", "whole",
            "--yes-always", "--no-pretty", "--no-fancy-input", "--stream",
            "--no-check-update", "--analytics-disable", "--no-show-release-notes", "--no-show-model-warnings",
            "--model-metadata-file", str(run.scratch_file(METADATA_FILE)),
            "--no-auto-commits", "--no-dirty-commits", "--no-gitignore", "--no-restore-chat-history",
            "--input-history-file", f"{run.home}/.aider.input.history",
            "--chat-history-file", f"{run.home}/.aider.chat.history.md",
            "--encoding", "utf-8", "--message-file", str(run.scratch_file(MESSAGE_FILE)),
        ]

    def env(self, run: AgentRun) -> dict[str, str]:
        return {"OPENAI_API_BASE": f"{run.base_url}/v1", "OPENAI_API_KEY": run.token,
                "LITELLM_LOCAL_MODEL_COST_MAP": "True", "AIDER_ANALYTICS": "false", "AIDER_CHECK_UPDATE": "false"}

    def scratch_files(self, run: AgentRun) -> Mapping[str, str]:
        return {MESSAGE_FILE: run.prompt, METADATA_FILE: model_metadata(run.model)}

    def parse(self, result: ProcResult, run: AgentRun) -> Outcome:
        out = strip_ansi(result.output).replace("\r\n", "\n")
        applied = [m.strip() for m in _APPLIED_RE.findall(out)]
        tokens = _TOKENS_RE.findall(out)
        tokens_in = sum(_count(n, k) for n, k, _, _ in tokens)
        tokens_out = sum(_count(n, k) for _, _, n, k in tokens)
        errors = [m.strip() for m in _ERROR_RE.findall(out)]
        prose = _prose(out, set(applied))
        if applied:
            fallback = f"{self.label} applied edits to {', '.join(applied[:10])}."
        else:
            fallback = f"{self.label} applied no edit."
        problem = ""
        if not applied:
            problem = errors[-1] if errors else (prose or tail_text(out, max_lines=6, max_chars=600) or "no output")
        return Outcome(
            summary=summary_text(prose, fallback) if applied else fallback,
            ok=bool(applied),
            problem=problem[:600],
            usage=Usage(input_tokens=tokens_in, output_tokens=tokens_out, model=run.model),
            transcript="\n".join([*(f"edited {p}" for p in applied), *(f"! {e}" for e in errors)]),
        )


def model_metadata(model: str) -> str:
    """litellm's entry for the model, so it never fetches its price list (prices come from the gateway)."""
    entry = {"max_tokens": 8192, "max_input_tokens": 128000, "max_output_tokens": 8192,
             "input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "litellm_provider": "openai",
             "mode": "chat", "supports_function_calling": False}
    return json.dumps({f"openai/{model}": entry, model: entry}, indent=2)


def _count(value: str, thousands: str) -> int:
    try:
        number = float(value.replace(",", ""))
    except ValueError:
        return 0
    return int(number * 1000) if thousands else int(number)


def _prose(out: str, paths: set[str]) -> str:
    """The model's words: the text outside fenced blocks, without aider's own status lines and file paths."""
    kept: list[str] = []
    fenced = False
    lines = out.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if fenced or line.startswith(_BANNER) or following.startswith("```") or line.strip() in paths:
            continue
        kept.append(line)
    paragraphs = [p.strip() for p in "\n".join(kept).split("\n\n") if p.strip()]
    return "\n\n".join(paragraphs[-3:])


def build(settings: Any) -> Generator:
    return AiderPreset(settings)
