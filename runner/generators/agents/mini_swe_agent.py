"""Drive mini-swe-agent (``mini-swe-agent`` on PyPI) headless: ``GENERATORS=mini-swe-agent``.

``mini -m openai/MODEL -y --exit-immediately -o TRAJECTORY -c mini.yaml -c
TASK.yaml -c agent.step_limit=N``: the task comes in a config file
(``{"run": {"task": ...}}``, JSON being YAML) in the read-only scratch
directory, so it never meets argv's size limit or a shell. The model has one
tool, ``bash``, and the run ends when a command's first output line is
``COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT``. Commands run as plain
subprocesses: our sandbox is the only isolation. ``MSWEA_*`` variables skip
the first-run wizard and the banner, ignore unknown prices and stop retrying
after one attempt; ``LITELLM_LOCAL_MODEL_COST_MAP=True`` keeps litellm from
fetching its price list at import.

The trajectory (written after every step) says how it ended:
``info.exit_status`` is ``Submitted`` on success, else ``LimitsExceeded``,
``RepeatedFormatError``, or the exception's name. The sandbox's home is not
readable afterwards, so the trajectory is written in the worktree under a
hidden name and removed from it after the run.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.generators.agents.base import AgentPreset, AgentRun, Outcome, mapping, summary_text
from runner.generators.base import Generator, Usage
from runner.sandbox.procs import ProcResult, strip_ansi, tail_text

VERSION_TESTED = "2.4.6"
TASK_FILE = "task.yaml"
TRAJECTORY = ".agent-runner-mini.traj.json"
MAX_TRAJECTORY_BYTES = 20_000_000
_CLIP = 300


class MiniSweAgentPreset(AgentPreset):
    """mini-swe-agent, over OpenAI Chat Completions with its one bash tool."""

    label = "mini-swe-agent"
    setting = "mini_swe_agent_bin"
    dialect = "openai"
    install_hint = ("Install it in its own venv (`python -m venv /opt/mini && /opt/mini/bin/pip install "
                    "mini-swe-agent`, about 755 MB) and set MINI_SWE_AGENT_BIN=/opt/mini/bin/mini; see "
                    "docs/generators.md.")
    litter = (TRAJECTORY,)

    name = "mini-swe-agent"
    program = "mini"

    def argv(self, run: AgentRun) -> list[str]:
        return [str(self.install.program), "-m", f"openai/{run.model}", "-y", "--exit-immediately",
                "-o", str(run.worktree / TRAJECTORY), "-l", "0",
                "-c", "mini.yaml", "-c", str(run.scratch_file(TASK_FILE)), "-c", f"agent.step_limit={run.max_turns}"]

    def env(self, run: AgentRun) -> dict[str, str]:
        return {
            "OPENAI_API_BASE": f"{run.base_url}/v1",
            "OPENAI_API_KEY": run.token,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "MSWEA_CONFIGURED": "true",
            "MSWEA_COST_TRACKING": "ignore_errors",
            "MSWEA_SILENT_STARTUP": "1",
            "MSWEA_MODEL_RETRY_STOP_AFTER_ATTEMPT": "1",
            "MSWEA_GLOBAL_CONFIG_DIR": f"{run.home}/.config/mini-swe-agent",
        }

    def scratch_files(self, run: AgentRun) -> Mapping[str, str]:
        return {TASK_FILE: json.dumps({"run": {"task": run.prompt}})}

    def parse(self, result: ProcResult, run: AgentRun) -> Outcome:
        trajectory = read_trajectory(run.worktree / TRAJECTORY)
        if trajectory is None:
            tail = tail_text(strip_ansi(result.output), max_lines=8, max_chars=800)
            return Outcome(summary=f"{self.label} left no trajectory.", ok=False,
                           problem=tail or "it printed nothing", transcript=tail)
        info = mapping(trajectory.get("info"))
        status = str(info.get("exit_status") or "unknown")
        listed = trajectory.get("messages")
        messages = [m for m in listed if isinstance(m, dict)] if isinstance(listed, list) else []
        said = [text for m in messages if m.get("role") == "assistant" and (text := _text(m.get("content"))).strip()]
        stats = mapping(info.get("model_stats"))
        calls = stats.get("api_calls", 0)
        lines = [f"{self.label}: {status} after {calls} model call(s)"] + _describe(messages)
        ok = status == "Submitted"
        last_tool = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "tool"), "")
        problem = "" if ok else f"it ended with `{status}`" + (f": {last_tool[:_CLIP]}" if last_tool else "")
        return Outcome(
            summary=summary_text(said[-1] if said else "", f"{self.label} ended with `{status}`."),
            ok=ok,
            problem=problem,
            usage=Usage(model=run.model),
            transcript="\n".join(lines),
        )


def read_trajectory(path: Path) -> dict[str, Any] | None:
    """The trajectory the CLI wrote in the worktree: a regular file, not followed through a link."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_TRAJECTORY_BYTES:
            return None
        try:
            value = json.loads(handle.read().decode("utf-8", "replace"))
        except json.JSONDecodeError:
            return None
    return value if isinstance(value, dict) else None


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _describe(messages: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            text = _text(message.get("content")).strip()
            if text:
                lines.append(f"assistant: {text[:_CLIP]}")
            for call in message.get("tool_calls") or []:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    try:
                        command = json.loads(function.get("arguments") or "{}").get("command", "")
                    except (json.JSONDecodeError, AttributeError):
                        command = str(function.get("arguments"))
                    lines.append(f"$ {str(command)[:_CLIP]}")
        elif role == "tool":
            lines.append(f"  {_text(message.get('content')).strip()[:_CLIP]}")
    return lines


def build(settings: Any) -> Generator:
    return MiniSweAgentPreset(settings)
