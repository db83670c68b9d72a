"""Run a known coding-agent CLI headless in the sandbox, so an operator need not find its switches.

A preset is the ``command`` generator with the command line written for one
CLI (see ../shared/AGENT-CLIS.md for what each needs):

- the CLI is found at its ``*_BIN`` setting or on PATH when the chain is built,
  so a missing CLI is a ConfigError at start-up, not a failed task;
- its installation is shown read-only in the sandbox (:mod:`.install`);
- it gets a fresh, throw-away HOME for each run, with its config files
  written there (bound read-only at their place in the sandbox's home), and
  every switch that stops calls home and caps retries;
- the instruction reaches it on stdin or as a file, never through a shell;
- it reaches its model only through the task's model gateway, as a base URL on
  127.0.0.1 and a per-task placeholder key (:mod:`runner.gateway`);
- its structured output is parsed into the PR summary and the transcript.

Success is the diff: a run that changed files is a change whatever the CLI's
exit code, and one that changed none is a failure whatever it said.
"""

from __future__ import annotations

import json
import shlex
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from runner.config import Settings
from runner.errors import ConfigError, GeneratorError, GeneratorTimeout, GeneratorUnavailable
from runner.gateway import GatewayReport, GatewaySession, GatewaySpec
from runner.gateway.dialects import TABLE
from runner.generators.agents.install import Installation, locate, version
from runner.generators.base import Changes, GenerationContext, Usage
from runner.generators.command import CommandGenerator, changed_files, compose_prompt, gateway_notes
from runner.sandbox.bwrap import SANDBOX_HOME, Sandbox
from runner.sandbox.procs import ProcResult, fenced, format_seconds, strip_ansi, tail_text

MAX_SUMMARY_CHARS = 1500
#: The environment every preset's CLI starts from; nothing is inherited from the runner.
BASE_ENV = {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TERM": "dumb", "NO_COLOR": "1", "GIT_TERMINAL_PROMPT": "0",
            "PATH": "/usr/local/bin:/usr/bin:/bin"}


@dataclass(frozen=True)
class AgentRun:
    """One run as the CLI sees it from inside the sandbox."""

    worktree: Path
    model: str
    prompt: str
    #: A host directory shown read-only inside at the same path (instruction and metadata files).
    scratch: Path
    base_url: str
    token: str = field(repr=False)
    max_turns: int = 30
    home: str = SANDBOX_HOME

    def scratch_file(self, name: str) -> Path:
        return self.scratch / name


@dataclass(frozen=True)
class Outcome:
    """What the CLI reported, parsed from its structured output; never its raw JSON."""

    summary: str
    #: The CLI's own verdict; success is still judged by the diff.
    ok: bool
    #: Why it did not finish, in its own words, when it says so.
    problem: str = ""
    usage: Usage = field(default_factory=Usage)
    #: A readable account for the transcript: turns, commands, edits.
    transcript: str = ""


class AgentPreset(CommandGenerator):
    """A ``command`` generator for one agent CLI; subclasses say how to drive it."""

    label: ClassVar[str]  # "Claude Code"
    setting: ClassVar[str]  # "claude_code_bin"
    install_hint: ClassVar[str]
    #: The wire dialect its model speaks through the gateway: "anthropic", "openai" or "gemini".
    dialect: ClassVar[str]
    #: Paths the CLI leaves in the worktree, removed after the run unless they were there before.
    litter: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: Settings, sandbox: Sandbox | None = None,
                 install: Installation | None = None) -> None:
        env_name = self.setting.upper()
        self.install = install or locate(self.program, getattr(settings, self.setting, None), env_name,
                                         self.install_hint)
        super().__init__(settings, sandbox, gateway=GatewaySpec.for_dialects(self.dialect),  # type: ignore[arg-type]
                         template=f"{shlex.quote(str(self.install.program))} {{instruction_file}}")

    def generate(self, ctx: GenerationContext) -> Changes:
        """Run the CLI once through the task's gateway; the diff, not the exit code, says whether it worked."""
        timeout = min(ctx.seconds_left(), self.settings.generator_timeout_seconds)
        if timeout <= 0:
            raise GeneratorTimeout(f"No time was left to run {self.label} for this task.")
        model = self.model_for(ctx.model)
        ctx.report_progress(f"Running {self.label} with `{model}` (up to {format_seconds(timeout)} s).")
        ctx.log.info("agent_started", preset=self.name, model=model, timeout_s=round(timeout, 1))
        before = self.litter_present(ctx.worktree)
        with tempfile.TemporaryDirectory(prefix=f"agent-runner-{self.name}-") as tmp:
            scratch, host_home = Path(tmp) / "run", Path(tmp) / "home"
            scratch.mkdir()
            host_home.mkdir()
            session = self._open_gateway(ctx)
            assert session is not None  # a preset always has a gateway spec
            try:
                isolated = self.sandbox.mode != "off"
                run = AgentRun(worktree=ctx.worktree, model=model, prompt=compose_prompt(ctx), scratch=scratch,
                               base_url=session.endpoint.base_url, token=session.endpoint.token,
                               max_turns=ctx.budget.max_turns, home=SANDBOX_HOME if isolated else str(host_home))
                binds = self.prepare_home(run, host_home)
                result = self._run_cli(ctx, run, binds, session, timeout)
            finally:
                report = session.close()
            outcome = self.parse(result, run)
        self.sweep(ctx.worktree, before)
        transcript = self._write_agent_transcript(ctx, run, result, outcome, report)
        self._raise_for_budget(ctx, report)
        if result.timed_out:
            ctx.log.warning("agent_timed_out", preset=self.name, timeout_s=result.deadline_s)
            raise GeneratorTimeout(f"{self.label} {result.describe_exit()}.")
        files = changed_files(ctx.worktree, exclude=(ctx.trace_path,), git_dir=ctx.git_dir)
        ctx.log.info("agent_finished", preset=self.name, exit_code=result.exit_code, ok=outcome.ok,
                     duration_s=round(result.duration_s, 2), files=len(files))
        if not files:
            self._raise_no_change(result, outcome, report)
        ctx.report_progress(f"{self.label} finished in {format_seconds(result.duration_s)} s; "
                            f"{len(files)} file(s) changed.")
        notes = gateway_notes(report)
        if not outcome.ok:
            notes += (f"{self.label} said it did not finish ({self._redact(outcome.problem or 'no reason given')}); "
                      "the change is what it left.",)
        elif result.exit_code != 0:
            notes += (f"{self.label} {result.describe_exit()}; the change is what it left.",)
        return Changes(
            summary=self._redact(outcome.summary),
            files=files,
            usage=self._usage(report, outcome, result, model),
            transcript=transcript,
            generator=self.name,
            notes=notes,
            summary_by=f"{self.label} with the model `{model}`",
        )

    # What each CLI module says.

    def argv(self, run: AgentRun) -> list[str]:
        raise NotImplementedError

    def env(self, run: AgentRun) -> dict[str, str]:
        """Variables beyond BASE_ENV: the endpoint, the placeholder, and the switches."""
        raise NotImplementedError

    def home_files(self, run: AgentRun) -> Mapping[str, str]:
        """Config files by path relative to HOME, written fresh for every run."""
        return {}

    def scratch_files(self, run: AgentRun) -> Mapping[str, str]:
        """Files by name in the read-only scratch directory (the instruction, model metadata)."""
        return {}

    def stdin(self, run: AgentRun) -> bytes | None:
        """What the CLI reads on stdin (the instruction, for the CLIs that take it there)."""
        return None

    def parse(self, result: ProcResult, run: AgentRun) -> Outcome:
        raise NotImplementedError

    def printed_nothing(self, result: ProcResult, missing: str = "no result") -> Outcome:
        """The outcome of a CLI that printed no structured output: its last words, in place of a summary."""
        said = tail_text(strip_ansi(result.stderr or result.output), max_lines=8, max_chars=800)
        return Outcome(summary=f"{self.label} printed {missing}.", ok=False, problem=said or "it printed nothing",
                       transcript=said)

    def default_model(self) -> str:
        return self.settings.default_model or self.settings.openai_model

    # Shared.

    def model_for(self, task_model: str | None) -> str:
        return task_model or self.default_model()

    def check(self) -> str:
        """For doctor: the CLI, its version, and where it sends model calls."""
        upstream = getattr(self.settings, f"{self.dialect}_base_url", None) or TABLE[self.dialect].default_url  # type: ignore[index]
        return (f"{self.install.program} ({version(self.install)}), model {self.default_model()} via the "
                f"gateway to {upstream}")

    def prepare_home(self, run: AgentRun, host_home: Path) -> tuple[tuple[Path, str], ...]:
        """Write the config files on the host and say where each appears in the sandbox's HOME."""
        binds: list[tuple[Path, str]] = []
        for relative, text in self.home_files(run).items():
            if relative.startswith("/") or ".." in Path(relative).parts:
                raise ConfigError(f"The {self.label} preset wants to write outside its home: {relative}.")
            path = host_home / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            binds.append((path, f"{run.home}/{relative}"))
        for name, text in self.scratch_files(run).items():
            run.scratch_file(name).write_text(text, encoding="utf-8")
        return tuple(binds)

    def _run_cli(self, ctx: GenerationContext, run: AgentRun, binds: tuple[tuple[Path, str], ...],
                 session: GatewaySession, timeout: float) -> ProcResult:
        """Start the CLI in the sandbox with only the environment named here; its stdout apart from stderr."""
        named = {**BASE_ENV, **self.env(run), "AGENT_RUNNER_TASK_ID": ctx.task.task_id,
                 "AGENT_RUNNER_TARGET_REPO": ctx.task.target_repo}
        if self.sandbox.mode == "off":
            named["HOME"] = run.home
        wiring = session.wiring
        try:
            return self.sandbox.run(
                self.argv(run), worktree=ctx.worktree, env=named, deadline_s=timeout, stdin=self.stdin(run),
                extra_ro=(run.scratch, *self.install.paths), git_dir=ctx.git_dir,
                secrets_allowed=[name for name, value in named.items() if value == run.token],
                binds=(*wiring.binds, *binds), wrap=wiring.wrap, merge_stderr=False,
            )
        except (FileNotFoundError, PermissionError) as exc:
            raise GeneratorError(
                f"{self.label} (`{self.install.program}`) could not start in the sandbox: {exc.strerror}. "
                f"Check {self.setting.upper()} and that the CLI is installed in the runner image.",
                hint="Ask the runner's operator to fix the installation, then remove the `agent-failed` label.",
            ) from exc

    def _raise_no_change(self, result: ProcResult, outcome: Outcome, report: GatewayReport) -> None:
        said = outcome.problem or tail_text(strip_ansi(result.stderr or result.output), max_lines=10, max_chars=1200)
        message = (f"{self.label} changed no file ({result.describe_exit()}). It said:\n\n"
                   + fenced(self._redact(said or "(nothing)")))
        if report.upstream_failures:
            raise GeneratorUnavailable(message + "\n\nThe model server failed while it ran: "
                                       + self._redact(report.upstream_failures[-1]))
        raise GeneratorError(message)

    def _usage(self, report: GatewayReport, outcome: Outcome, result: ProcResult, model: str) -> Usage:
        """What the gateway metered (the CLI's own count only when nothing went through it)."""
        spend = report.spend
        if spend.calls:
            return Usage(input_tokens=spend.input_tokens, output_tokens=spend.output_tokens,
                         cost_usd=spend.cost_usd, duration_s=result.duration_s, model=model)
        mine = outcome.usage
        return Usage(input_tokens=mine.input_tokens, output_tokens=mine.output_tokens, cost_usd=None,
                     duration_s=result.duration_s, model=model)

    def _write_agent_transcript(self, ctx: GenerationContext, run: AgentRun, result: ProcResult,
                                outcome: Outcome, report: GatewayReport) -> Path | None:
        """The command line, the CLI's own account, its stderr's end, and where the model exchanges are."""
        if ctx.transcript_dir is None:
            return None
        ctx.transcript_dir.mkdir(parents=True, exist_ok=True)
        path = ctx.transcript_dir / f"{self.name}.log"  # appended to: one section per round
        argv = " ".join(self.argv(run))
        where = " (instruction on stdin)" if self.stdin(run) is not None else ""
        parts = [f"$ {argv}{where}", "", outcome.transcript.rstrip() or "(no account of the run)"]
        stderr = tail_text(strip_ansi(result.stderr), max_lines=30, max_chars=4000)
        if stderr:
            parts += ["", "stderr:", stderr]
        parts += ["", f"[{self.label} {result.describe_exit()} after {format_seconds(result.duration_s)} s]"]
        parts += [f"[{note}]" for note in gateway_notes(report) or ("No model calls.",)]
        if report.transcript is not None:
            parts.append(f"[The model exchanges are in {report.transcript.name}.]")
        with path.open("a", encoding="utf-8") as handle:
            handle.write(self._redact("\n".join(parts)) + "\n\n")
        return path

    def litter_present(self, worktree: Path) -> set[str]:
        return {name for name in self.litter if (worktree / name).exists() or (worktree / name).is_symlink()}

    def sweep(self, worktree: Path, before: set[str]) -> None:
        """Remove what the CLI left in the worktree that was not there before it ran."""
        for name in self.litter:
            if name in before:
                continue
            path = worktree / name
            if path.is_symlink() or path.is_file():
                path.unlink(missing_ok=True)
            elif path.is_dir():
                shutil.rmtree(path, ignore_errors=True)


def summary_text(text: str, fallback: str) -> str:
    """A readable summary: ANSI stripped, JSON refused, clipped from the front."""
    text = strip_ansi(text or "").strip()
    if not text or _is_json(text):
        return fallback
    if len(text) > MAX_SUMMARY_CHARS:
        text = text[: MAX_SUMMARY_CHARS - 1].rstrip() + "…"
    return text


def _is_json(text: str) -> bool:
    if text[:1] not in "{[":
        return False
    try:
        return isinstance(json.loads(text), dict | list)
    except json.JSONDecodeError:
        return False


def json_objects(stdout: str) -> list[dict[str, Any]]:
    """The JSON objects a CLI printed, one a line, in order; other lines (logs, banners) are skipped."""
    found = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def json_document(stdout: str) -> dict[str, Any] | None:
    """The last JSON object a CLI printed across lines (pretty-printed), after any log lines before it."""
    decoder = json.JSONDecoder()
    found = None
    starts = [0] + [i + 1 for i, ch in enumerate(stdout) if ch == "\n"]
    for start in starts:
        if stdout[start:start + 1] != "{":
            continue
        try:
            value, _ = decoder.raw_decode(stdout, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            found = value
    return found


def mapping(value: Any) -> dict[str, Any]:
    """A JSON object from a CLI's output, or an empty one when it is anything else."""
    return value if isinstance(value, dict) else {}


def number(value: Any) -> int:
    """A token count from a CLI's JSON (missing or odd values count as 0)."""
    return value if isinstance(value, int) and value >= 0 else 0
