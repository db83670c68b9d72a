"""Let an external coding-agent CLI (aider, claude, cline, ...) make the change in the worktree.

The operator sets ``COMMAND_TEMPLATE``, for example::

    COMMAND_TEMPLATE='aider --yes --no-auto-commits --model {model} --message-file {instruction_file}'
    COMMAND_TEMPLATE='claude -p {instruction} --permission-mode acceptEdits'

The template is split like a shell would split it, but **no shell runs**: each
placeholder fills part of one argv element, so an instruction full of quotes
and semicolons is still one argument. Placeholders:

- ``{instruction}``: the instruction, plus the repository's guidance and the
  last validation feedback, as one argument;
- ``{instruction_file}``: the same text in a file outside the worktree (use it
  for long instructions: one argument is limited to 128 KiB);
- ``{worktree}``: the worktree's absolute path (also the working directory);
- ``{model}``: the task's model, else DEFAULT_MODEL, else OPENAI_MODEL;
- ``{task_id}``: the task id from the issue metadata;
- ``{repo}``: the target repository, ``owner/name``.

The CLI runs in the sandbox (:mod:`runner.sandbox.bwrap`): only the worktree is
writable, the instruction file is mounted read-only, there is no network unless
``SANDBOX_NETWORK=allow``, and at the deadline everything it started is killed.
It gets a minimal environment: ``COMMAND_ENV_ALLOWLIST`` (credential-like
names are never copied), ``AGENT_RUNNER_*`` variables describing the task, and
``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` from the settings only when the
allowlist names them and no gateway runs. The GitHub token is never passed. If
the CLI commits (aider does by default), it commits into a throw-away git
directory: the runner's HEAD does not move, the files stay changed, and the
runner makes the one commit itself.

A CLI that needs a model reaches it through the task's model gateway, never with
the real key: ``COMMAND_GATEWAY`` for a plain template, a ``GatewaySpec`` for an
agent preset (:mod:`runner.generators.metered` says how).
"""

from __future__ import annotations

import errno
import string
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from runner.config import Settings
from runner.errors import (
    ConfigError,
    GeneratorError,
    GeneratorTimeout,
    GeneratorUnavailable,
    WorkspaceError,
)
from runner.gateway import Endpoint, GatewayReport, GatewaySession, GatewaySpec
from runner.generators.base import Changes, GenerationContext, Generator, Usage
from runner.generators.metered import (
    check_gateway,
    gateway_from_settings,
    gateway_notes,
    open_gateway,
    raise_for_budget,
)
from runner.log import Redactor
from runner.sandbox.bwrap import Sandbox
from runner.sandbox.procs import (
    ProcResult,
    fenced,
    format_seconds,
    minimal_env,
    split_command,
    strip_ansi,
    tail_text,
)
from runner.steps.git import run_git

PLACEHOLDERS = ("instruction", "instruction_file", "worktree", "model", "task_id", "repo")
EXAMPLE = "COMMAND_TEMPLATE='aider --yes --no-auto-commits --message-file {instruction_file}'"
TRANSCRIPT_NAME = "command.log"
MAX_SUMMARY_CHARS = 1500
_GIT_TIMEOUT_S = 60.0
#: Secrets an operator may hand to the CLI by naming them in COMMAND_ENV_ALLOWLIST.
_PASSABLE_SECRETS = {"OPENAI_API_KEY": "openai_api_key", "ANTHROPIC_API_KEY": "anthropic_api_key"}
_PASSABLE_URLS = {
    "OPENAI_BASE_URL": "openai_base_url",
    "OPENAI_API_BASE": "openai_base_url",
    "ANTHROPIC_BASE_URL": "anthropic_base_url",
}


class CommandGenerator:
    """Run the configured agent CLI once per generation and report what it changed."""

    name = "command"

    def __init__(self, settings: Settings, sandbox: Sandbox | None = None, *,
                 gateway: GatewaySpec | None = None, template: str | None = None) -> None:
        self.settings = settings
        self.sandbox = sandbox or Sandbox.from_settings(settings)
        self.template = template if template is not None else (settings.command_template or "")
        self.tokens, self.used = parse_template(self.template)
        self.program = Path(self.tokens[0]).name
        self.gateway = gateway if gateway is not None else gateway_from_settings(settings)
        if self.gateway is not None:
            check_gateway(settings, self.gateway)
        self._redact = Redactor(settings.secrets())

    def prepare(self, ctx: GenerationContext, endpoint: Endpoint | None, scratch: Path) -> Mapping[str, str]:
        """Presets override: write what the run needs into ``scratch``, return more environment."""
        return {}

    def generate(self, ctx: GenerationContext) -> Changes:
        timeout = min(ctx.seconds_left(), self.settings.generator_timeout_seconds)
        if timeout <= 0:
            raise GeneratorTimeout(f"No time was left to run `{self.program}` for this task.")
        ctx.report_progress(f"Running `{self.program}` (up to {format_seconds(timeout)} s).")
        ctx.log.info("command_started", program=self.program, timeout_s=round(timeout, 1))
        with tempfile.TemporaryDirectory(prefix="agent-runner-cmd-") as scratch:
            instruction_file = Path(scratch) / "instruction.md"
            prompt = compose_prompt(ctx)
            instruction_file.write_text(prompt, encoding="utf-8")
            feedback_file = Path(scratch) / "feedback.md"
            if ctx.round is not None:  # a feedback round: the same text on its own, for agents that want it
                feedback_file.write_text(ctx.round.text, encoding="utf-8")
                _write_logs(Path(scratch) / "ci-logs", ctx.round.logs)
            values = {
                "instruction": prompt,
                "instruction_file": str(instruction_file),
                "worktree": str(ctx.worktree),
                "model": ctx.model or self.settings.default_model or self.settings.openai_model,
                "task_id": ctx.task.task_id,
                "repo": ctx.task.target_repo,
            }
            argv = expand_template(self.tokens, values)
            session = self._open_gateway(ctx)
            try:
                endpoint = session.endpoint if session is not None else None
                env = self._env(ctx, values, session)
                env.update(self.prepare(ctx, endpoint, Path(scratch)))
                result = self._run(argv, ctx, env, timeout, Path(scratch), session)
            finally:
                report = session.close() if session is not None else None
        # The transcript matters most when the command failed.
        transcript = self._write_transcript(ctx, result, report)
        notes: tuple[str, ...] = ()
        self._raise_for_budget(ctx, report)
        self._raise_for_failure(ctx, result, report)
        model = values["model"] if "model" in self.used else ctx.model
        files = changed_files(ctx.worktree, exclude=(ctx.trace_path,), git_dir=ctx.git_dir)
        ctx.log.info(
            "command_finished",
            program=self.program,
            exit_code=result.exit_code,
            duration_s=round(result.duration_s, 2),
            files=len(files),
        )
        ctx.report_progress(
            f"`{self.program}` finished in {format_seconds(result.duration_s)} s; "
            f"{len(files)} file(s) changed."
        )
        if not files:
            notes += (f"`{self.program}` finished without changing any file.",)
        if result.truncated:
            notes += ("The command's output was long; only its end was kept.",)
        usage = Usage(duration_s=result.duration_s, model=model)
        if report is not None:
            notes += gateway_notes(report)
            spend = report.spend
            usage = Usage(input_tokens=spend.input_tokens, output_tokens=spend.output_tokens,
                          cost_usd=spend.cost_usd if spend.calls else None, duration_s=result.duration_s,
                          model=model or spend.model)
        return Changes(
            summary=self._summary(result.output),
            files=files,
            usage=usage,
            transcript=transcript,
            generator=self.name,
            notes=notes,
        )

    def _open_gateway(self, ctx: GenerationContext) -> GatewaySession | None:
        """Start this run's model gateway (None without a spec); its placeholder is redacted from then on."""
        if self.gateway is None:
            return None
        session = open_gateway(self.settings, self.gateway, self.sandbox, ctx)
        self._redact = Redactor([*self.settings.secrets(), session.token])
        return session

    def _run(
        self, argv: list[str], ctx: GenerationContext, env: dict[str, str], timeout: float,
        scratch: Path, session: GatewaySession | None = None,
    ) -> ProcResult:
        """Start the command in the sandbox, turning every way it cannot start into a GeneratorError."""
        allowed = set(_PASSABLE_SECRETS) | (set(session.spec.env) if session is not None else set())
        wiring = session.wiring if session is not None else None
        try:
            return self.sandbox.run(argv, worktree=ctx.worktree, env=env, deadline_s=timeout,
                                    extra_ro=(scratch,), git_dir=ctx.git_dir,
                                    secrets_allowed=allowed,
                                    binds=wiring.binds if wiring else (), wrap=wiring.wrap if wiring else ())
        except FileNotFoundError as exc:
            where = f" ({exc.strerror})" if exc.strerror and "sandbox" in exc.strerror else ""
            raise GeneratorError(
                f"`{self.program}` was not found on PATH{where}. Install it in the runner image "
                "(add it to the Dockerfile), or fix COMMAND_TEMPLATE.",
                hint="Ask the runner's operator to install the command, then remove the `agent-failed` label.",
            ) from exc
        except PermissionError as exc:
            raise GeneratorError(
                f"`{self.program}` is not executable. Fix its permissions in the runner image."
            ) from exc
        except OSError as exc:
            if exc.errno == errno.E2BIG:
                raise GeneratorError(
                    "The instruction is too long to pass as a command-line argument. Use "
                    "`{instruction_file}` instead of `{instruction}` in COMMAND_TEMPLATE."
                ) from exc
            raise GeneratorError(f"`{self.program}` could not start: {exc.strerror}.") from exc
        except ValueError as exc:  # an argument holds a NUL byte
            raise GeneratorError(
                f"`{self.program}` could not start: the instruction holds a character that "
                "cannot be passed to a command (NUL). Remove it from the issue body."
            ) from exc

    def _raise_for_budget(self, ctx: GenerationContext, report: GatewayReport | None) -> None:
        """A call refused over the budget (or usage past it) ends the task as over budget, exit status aside."""
        raise_for_budget(f"`{self.program}`", ctx, report)

    def _raise_for_failure(self, ctx: GenerationContext, result: ProcResult,
                           report: GatewayReport | None = None) -> None:
        if result.timed_out:
            ctx.log.warning("command_timed_out", program=self.program, timeout_s=result.deadline_s)
            raise GeneratorTimeout(f"`{self.program}` {result.describe_exit()}.")
        if result.exit_code != 0:
            tail = self._redact(tail_text(result.output, max_lines=20, max_chars=2000))
            message = (f"`{self.program}` {result.describe_exit()}. The last lines of its output:\n\n"
                       + fenced(tail or "(no output)"))
            if report is not None and report.upstream_failures:
                raise GeneratorUnavailable(
                    message + "\n\nThe model server failed while it ran: "
                    + self._redact(report.upstream_failures[-1]))
            raise GeneratorError(message)

    def _env(self, ctx: GenerationContext, values: Mapping[str, str],
             session: GatewaySession | None = None) -> dict[str, str]:
        """The allowlisted environment plus task facts; secrets only where the operator named them.

        With a gateway, the real keys and base URLs are never passed: the gateway's endpoint is.
        """
        allowed = set(self.settings.command_env_allowlist)
        extra = {
            "AGENT_RUNNER_TASK_ID": ctx.task.task_id,
            "AGENT_RUNNER_TARGET_REPO": ctx.task.target_repo,
            "AGENT_RUNNER_DISPATCH_ISSUE": f"{ctx.task.dispatch_repo}#{ctx.task.issue_number}",
            "AGENT_RUNNER_WORKTREE": values["worktree"],
            "AGENT_RUNNER_INSTRUCTION_FILE": values["instruction_file"],
            "AGENT_RUNNER_TRACE_PATH": ctx.trace_path,
            "GIT_TERMINAL_PROMPT": "0",
        }
        if ctx.round is not None:
            extra["AGENT_RUNNER_FEEDBACK_FILE"] = str(Path(values["instruction_file"]).with_name("feedback.md"))
            extra["AGENT_RUNNER_FEEDBACK_ROUND"] = str(ctx.round.number)
            if ctx.round.logs:  # a CI round: the failing jobs' whole logs, outside the repository
                extra["AGENT_RUNNER_CI_LOGS_DIR"] = str(Path(values["instruction_file"]).with_name("ci-logs"))
        if ctx.model:
            extra["AGENT_RUNNER_MODEL"] = ctx.model
        for env_name, attr in {**_PASSABLE_SECRETS, **_PASSABLE_URLS}.items():
            value = _plain(getattr(self.settings, attr, None))
            if env_name in allowed and value and session is None:
                extra[env_name] = value
        if session is not None:
            extra.update(session.env())
        return minimal_env(self.settings.command_env_allowlist, extra)

    def _write_transcript(self, ctx: GenerationContext, result: ProcResult,
                          report: GatewayReport | None = None) -> Path | None:
        """Keep the template (not the expanded argv) and the output; never the environment."""
        if ctx.transcript_dir is None:
            return None
        ctx.transcript_dir.mkdir(parents=True, exist_ok=True)
        path = ctx.transcript_dir / TRANSCRIPT_NAME  # appended to: one section per round
        text = (
            f"$ {self.template}\n\n{strip_ansi(result.output).rstrip()}\n\n"
            f"[{self.program} {result.describe_exit()} after {format_seconds(result.duration_s)} s]\n"
        )
        if report is not None:
            text += "".join(f"[{note}]\n" for note in gateway_notes(report) or ("No model calls.",))
            if report.transcript is not None:
                text += f"[The model exchanges are in {report.transcript.name}.]\n"
        with path.open("a", encoding="utf-8") as handle:
            handle.write(self._redact(text) + "\n")
        return path

    def _summary(self, output: str) -> str:
        """The CLI's last paragraph is usually its own account of what it did."""
        paragraphs = [p.strip() for p in strip_ansi(output).replace("\r\n", "\n").split("\n\n")]
        last = next((p for p in reversed(paragraphs) if p), "")
        if not last:
            return f"Ran `{self.program}`."
        if len(last) > MAX_SUMMARY_CHARS:
            last = "…" + last[-(MAX_SUMMARY_CHARS - 1) :]
        return self._redact(last)


def build(settings: Settings) -> Generator:
    """The registry's factory: fail at start-up, not mid-task, when the template is wrong."""
    return CommandGenerator(settings)


def parse_template(template: str) -> tuple[list[str], frozenset[str]]:
    """Split COMMAND_TEMPLATE into argv tokens and check its placeholders, or raise ConfigError."""
    if not template.strip():
        raise ConfigError(
            "COMMAND_TEMPLATE is not set, so the `command` generator has nothing to run. "
            f"Set it to your agent's command line, for example {EXAMPLE}."
        )
    try:
        tokens = split_command(template)
    except ValueError as exc:
        raise ConfigError(f"COMMAND_TEMPLATE cannot be read ({exc}). Example: {EXAMPLE}.") from None
    valid = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    used: set[str] = set()
    for token in tokens:
        try:
            fields = list(string.Formatter().parse(token))
        except ValueError as exc:
            raise ConfigError(
                f"COMMAND_TEMPLATE has a stray brace in `{token}` ({exc}); write `{{{{` or `}}}}` "
                f"for a literal brace. Placeholders: {valid}."
            ) from None
        for _, name, spec, conversion in fields:
            if name is None:
                continue
            if name not in PLACEHOLDERS or spec or conversion:
                raise ConfigError(
                    f"COMMAND_TEMPLATE uses an unknown placeholder `{{{name}}}`. "
                    f"The valid ones are {valid}."
                )
            used.add(name)
    if "{" in tokens[0]:
        raise ConfigError("COMMAND_TEMPLATE must start with the program to run, not a placeholder.")
    if not used & {"instruction", "instruction_file"}:
        raise ConfigError(
            "COMMAND_TEMPLATE never passes the task to the command. Add `{instruction_file}` "
            f"or `{{instruction}}`, for example {EXAMPLE}."
        )
    return tokens, frozenset(used)


def expand_template(tokens: list[str], values: Mapping[str, str]) -> list[str]:
    """Fill the placeholders; each token stays exactly one argument.

    A value that fills a whole argument and starts with ``-`` would be read as
    an option, so the instruction gets a leading space and anything else is refused.
    """
    argv = [tokens[0]]
    for token in tokens[1:]:
        name = _whole_placeholder(token)
        if name is not None and values[name].startswith("-"):
            if name != "instruction":
                raise GeneratorError(
                    f"The {name} `{values[name][:60]}` starts with `-`, so the command would "
                    "read it as an option. Choose a value that does not."
                )
            argv.append(" " + values[name])
            continue
        argv.append(token.format_map(values))
    return argv


def _whole_placeholder(token: str) -> str | None:
    """The placeholder's name when the token is nothing but one placeholder."""
    fields = list(string.Formatter().parse(token))
    if len(fields) == 1 and fields[0][0] == "" and fields[0][1]:
        return fields[0][1]
    return None


def compose_prompt(ctx: GenerationContext) -> str:
    """The instruction, then the repository's guidance, then feedback from the last round."""
    parts = [ctx.instruction.strip()]
    if ctx.repo_instructions.strip():
        parts.append("## Repository instructions\n\n" + ctx.repo_instructions.strip())
    if ctx.round is not None:
        parts.append(ctx.round.text.strip())
    if ctx.feedback and ctx.feedback.strip():
        parts.append("## Feedback from the previous attempt\n\n" + ctx.feedback.strip())
    return "\n\n".join(parts) + "\n"


def changed_files(
    worktree: Path, *, exclude: tuple[str, ...] = (), git_dir: Path | None = None
) -> tuple[str, ...]:
    """Every path that differs from HEAD (added, modified, deleted, renamed, untracked)."""
    env = {"GIT_DIR": str(git_dir), "GIT_WORK_TREE": str(worktree)} if git_dir else {}
    try:
        out = run_git(worktree, "status", "--porcelain", "-z", "--untracked-files=all", env=env,
                      what="list the changed files", timeout_s=_GIT_TIMEOUT_S)
    except WorkspaceError as exc:
        raise GeneratorError(str(exc)) from None
    entries = out.split("\0")
    files: set[str] = set()
    index = 0
    while index < len(entries):
        entry = entries[index]
        index += 1
        if len(entry) < 4:
            continue
        status, path = entry[:2], entry[3:]
        files.add(path)
        if "R" in status or "C" in status:  # -z puts the source path in the next entry
            if "R" in status and index < len(entries):
                files.add(entries[index])
            index += 1
    return tuple(sorted(files - set(exclude)))


def _plain(value: Any) -> str | None:
    if value is None:
        return None
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if getter else value) or None


def _write_logs(folder: Path, logs: Sequence[tuple[str, str]]) -> None:
    """A CI round's full check logs, one file each (names made safe by runner.core.ci.log_file_name)."""
    if not logs:
        return
    folder.mkdir()
    for name, text in logs:
        (folder / Path(name).name).write_text(text, encoding="utf-8")
