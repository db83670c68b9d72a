"""What each agent preset costs per task: start-up, wall time, and the CLI's peak memory.

Per preset (claude-code, codex, aider, mini-swe-agent, gemini-cli, opencode,
cline), N runs of the same
one-file task against the scripted model emulator, through the real sandbox
and the task's gateway, as the runner runs them (the preset's ``generate``,
without GitHub). For each run:

- start-up: from ``generate()`` to the first model request reaching the
  emulator (the gateway, the sandbox, and the CLI's own start-up);
- wall time: the whole ``generate()``, the CLI's exit and the diff included;
- peak RSS: the largest sum of the resident memory of the CLI's processes
  (the CLI and what it started, not bwrap or the relay), sampled every 10 ms.

Prints the median of N runs (and the spread). The CLIs come from
CLAUDE_CODE_BIN, CODEX_BIN, AIDER_BIN, MINI_SWE_AGENT_BIN, GEMINI_CLI_BIN,
OPENCODE_BIN and CLINE_BIN, else PATH.

    .venv/bin/python bench/agents.py [N] [preset ...]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import structlog
from github_emulator.llm import (
    AnthropicEmulator,
    GeminiEmulator,
    LLMEmulator,
    OpenAIEmulator,
    Reply,
)

from runner.config import load_settings
from runner.core.task import parse_task, task_names
from runner.errors import ConfigError
from runner.generators import build_chain
from runner.generators.agents.base import AgentPreset
from runner.generators.base import Budget, GenerationContext

KEY = "sk-bench-upstream-key-0123456789"
MODEL = "emulated-coder"
BODY = """<!-- agent_task_metadata {"task_id": "bench-agent-0001"} -->

## Instruction

Create hello.txt with a greeting.

Target Repository: octo/target
"""
WRITE = "printf 'hello\\n' > hello.txt"
DONE = "Created hello.txt with a greeting."
SCRIPTS = {
    "claude-code": (AnthropicEmulator, lambda: [Reply.claude_bash(WRITE), Reply.text(DONE)]),
    "codex": (OpenAIEmulator, lambda: [Reply.codex_exec(WRITE), Reply.text(DONE)]),
    "aider": (OpenAIEmulator, lambda: [Reply.aider_whole({"hello.txt": "hello\n"}, text=DONE)]),
    "mini-swe-agent": (OpenAIEmulator, lambda: [Reply.mini_bash(WRITE), Reply.mini_submit(text=DONE)]),
    "gemini-cli": (GeminiEmulator, lambda: [Reply.gemini_shell(WRITE), Reply.text(DONE)]),
    "opencode": (OpenAIEmulator, lambda: [Reply.opencode_bash(WRITE), Reply.text(DONE)]),
    "cline": (OpenAIEmulator, lambda: [Reply.cline_commands(WRITE), Reply.text(DONE)]),
}


class Sampler:
    """Sample the resident memory of this process's descendants that run the CLI."""

    def __init__(self, markers: tuple[str, ...], emulator: LLMEmulator) -> None:
        self.markers = tuple(m.encode() for m in markers)
        self.emulator = emulator
        self.peak_kb = 0
        self.first_request: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.01):
            if self.first_request is None and self.emulator.completions:
                self.first_request = time.perf_counter()
            parents, total = _processes(), 0
            for pid, (_, cmdline, rss) in parents.items():
                if _is_cli(cmdline, self.markers) and _descends(pid, me, parents):
                    total += rss
                elif _descends(pid, me, parents) and _has_cli_ancestor(pid, parents, self.markers):
                    total += rss  # what the CLI started (its shell commands)
            self.peak_kb = max(self.peak_kb, total)


def _processes() -> dict[int, tuple[int, bytes, int]]:
    found: dict[int, tuple[int, bytes, int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss = int(fields.get("VmRSS", "0 kB").split()[0])
        found[int(proc.name)] = (int(fields.get("PPid", "0").strip()), cmdline, rss)
    return found


def _descends(pid: int, ancestor: int, procs: dict[int, tuple[int, bytes, int]]) -> bool:
    for _ in range(64):
        pid = procs.get(pid, (0, b"", 0))[0]
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
    return False


def _has_cli_ancestor(pid: int, procs: dict[int, tuple[int, bytes, int]], markers: tuple[bytes, ...]) -> bool:
    for _ in range(64):
        pid = procs.get(pid, (0, b"", 0))[0]
        if pid <= 1:
            return False
        cmdline = procs.get(pid, (0, b"", 0))[1]
        if _is_cli(cmdline, markers):
            return True
    return False


def _is_cli(cmdline: bytes, markers: tuple[bytes, ...]) -> bool:
    """A process of the CLI itself: its command line names the installation, and it is not bwrap or the relay."""
    if not any(m in cmdline for m in markers):
        return False
    return os.path.basename(cmdline.split(b"\0", 1)[0]) != b"bwrap" and b"relay.py" not in cmdline


def one_run(name: str, root: Path) -> tuple[float, float, int]:
    server, script = SCRIPTS[name]
    repo = root / "repo"
    repo.mkdir()
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "init"]):
        if args[0] == "add":
            (repo / "README.md").write_text("# target\n")
        subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@x", *args], cwd=repo, check=True)
    with server(api_key=KEY) as emu:
        emu.script(script())
        endpoint = {"anthropic_base_url": emu.base_url} if server is AnthropicEmulator \
            else {"gemini_base_url": emu.base_url} if server is GeminiEmulator \
            else {"openai_base_url": f"{emu.base_url}/v1"}
        settings = load_settings(env_file=None, generators=name, anthropic_api_key=KEY, openai_api_key=KEY,
                                 gemini_api_key=KEY,
                                 default_model=MODEL, workspace_dir=str(root / "ws"), data_dir=str(root / "data"),
                                 **endpoint)
        preset = build_chain([name], settings)[0]
        assert isinstance(preset, AgentPreset)
        task = parse_task(BODY, dispatch_repo="o/d", issue_number=1)
        ctx = GenerationContext(task=task, worktree=repo, instruction=task.instruction,
                                trace_path=task_names(task).trace_path, log=structlog.get_logger(),
                                deadline=time.monotonic() + 300, budget=Budget(), transcript_dir=root / "transcript")
        markers = tuple(str(p) for p in preset.install.paths if "python" not in p.name and "pyenv" not in str(p))
        with Sampler(markers or (str(preset.install.program),), emu) as sampler:
            started = time.perf_counter()
            changes = preset.generate(ctx)
            wall = time.perf_counter() - started
        if changes.files != ("hello.txt",):
            raise SystemExit(f"{name}: the run changed {changes.files}, not hello.txt")
        first = (sampler.first_request or started) - started
        return first, wall, sampler.peak_kb


def main() -> int:
    args = sys.argv[1:]
    n = int(args.pop(0)) if args and args[0].isdigit() else 3
    names = args or list(SCRIPTS)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    print(f"{'preset':16} {'start-up s':>11} {'wall s':>8} {'peak RSS MB':>12}   (median of {n} runs; min-max)")
    for name in names:
        samples = []
        try:
            for _ in range(n):
                with tempfile.TemporaryDirectory(prefix=f"agent-runner-bench-{name}-") as root:
                    samples.append(one_run(name, Path(root)))
        except ConfigError as exc:
            print(f"{name:16} skipped: {exc}")
            continue
        starts, walls, peaks = zip(*samples, strict=True)
        print(f"{name:16} {statistics.median(starts):11.2f} {statistics.median(walls):8.2f} "
              f"{statistics.median(peaks) / 1024:12.0f}   "
              f"({min(starts):.2f}-{max(starts):.2f}, {min(walls):.2f}-{max(walls):.2f}, "
              f"{min(peaks) / 1024:.0f}-{max(peaks) / 1024:.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
