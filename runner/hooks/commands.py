"""Let an operator's own programs gate, observe and health-check the runner (``HOOK_COMMANDS``).

Three commands, each optional, named in one JSON object:

- ``pre_task`` runs once a task is parsed and its text approved, before the
  clone. A non-zero exit (or a timeout, or a program that cannot start) vetoes
  the task: it is refused like a policy refusal, labeled ``agent-failed``, and
  the tail of the hook's stderr is shown in the result comment.
- ``post_task`` runs once the outcome is final (``succeeded``, ``failed`` or
  ``refused``), before the result comment is posted, and gets the outcome
  (status, PR URL, error) in its JSON. Its failure is logged and noted in that
  comment; it never changes the outcome.
- ``health_check`` runs when ``/readyz`` is asked, at most once every
  :data:`HEALTH_CACHE_S` seconds however many probes arrive; a non-zero exit
  makes ``/readyz`` answer 503 with the hook's stderr tail as the reason.

Each gets one JSON object on stdin (:func:`payload`) and runs in the sandbox
(:class:`runner.sandbox.bwrap.Sandbox`) like any other command the runner does not
trust with its credentials: a minimal environment with no token, nothing in
argv but the configured command, ``HOOK_TIMEOUT_SECONDS`` as its deadline, and
``$DATA_DIR/hooks`` as its working directory and only writable path (a hook may
keep state there; the ledger and transcripts next to it stay out of sight).
The Python ``HOOKS`` (:mod:`runner.hooks.plugins`) are a separate, in-process interface
for plugin authors.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.core.task import DispatchTask
from runner.errors import HookVetoed, RunnerError
from runner.sandbox.bwrap import Sandbox
from runner.sandbox.procs import minimal_env, split_command, tail_text

#: How long one health_check result answers /readyz before the command runs again.
HEALTH_CACHE_S = 5.0
#: What a hook's environment carries over from the runner's (never a credential: see minimal_env).
HOOK_ENV = ("PATH", "LANG", "LC_*", "TZ")
_TAIL_LINES, _TAIL_CHARS = 20, 2000


@dataclass(frozen=True)
class HookRun:
    """How one hook command ended, in words for the issue, the log and /readyz."""

    event: str
    command: str
    ok: bool
    detail: str  # "exited with status 3", "did not finish within 5 s and was stopped", ...
    stderr_tail: str = ""

    def sentence(self) -> str:
        """`The pre_task hook `quota.sh` exited with status 3.` plus its stderr tail, fenced.

        Only the program's name: the operator's paths and arguments stay off the issue.
        """
        text = f"The {self.event} hook `{os.path.basename(split_command(self.command)[0])}` {self.detail}."
        return text + (f"\n\n```text\n{self.stderr_tail.replace('```', 'ʼʼʼ')}\n```" if self.stderr_tail else "")


def payload(event: str, *, agent_name: str, task: DispatchTask | None = None, attempt: int | None = None,
            outcome: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON a hook reads on stdin: the event, the task as parsed, and for post_task its outcome."""
    data: dict[str, Any] = {"event": event, "agent_name": agent_name}
    if task is not None:
        data["task"] = {
            "task_id": task.task_id, "dispatch_repo": task.dispatch_repo, "issue_number": task.issue_number,
            "target_repo": task.target_repo, "base_branch": task.base_branch, "generator": task.generator,
            "model": task.model, "seniority": task.seniority, "labels": sorted(task.labels),
            "instruction": task.instruction, "metadata": dict(task.metadata),
        }
    if attempt is not None:
        data["attempt"] = attempt
    if outcome is not None:
        data["outcome"] = dict(outcome)
    return data


class HookCommands:
    """Run the configured hook commands in the sandbox; construct once from the settings and share."""

    def __init__(self, commands: Mapping[str, str], *, sandbox: Sandbox, workdir: Path, timeout_s: float,
                 agent_name: str, redact: Callable[[str], str], log: Any) -> None:
        self.commands = dict(commands)
        self.sandbox = sandbox
        self.workdir = workdir
        self.timeout_s = timeout_s
        self.agent_name = agent_name
        self.redact = redact
        self.log = log
        self._health_lock = threading.Lock()
        self._health: tuple[float, str | None] | None = None  # (when checked, problem)

    @classmethod
    def from_settings(cls, settings: Any, *, sandbox: Sandbox, redact: Callable[[str], str],
                      log: Any) -> HookCommands:
        return cls(settings.hook_commands, sandbox=sandbox, workdir=Path(settings.data_dir) / "hooks",
                   timeout_s=settings.hook_timeout_seconds, agent_name=settings.agent_name, redact=redact,
                   log=log)

    def has(self, event: str) -> bool:
        return event in self.commands

    def pre_task(self, task: DispatchTask, *, attempt: int) -> None:
        """Raise HookVetoed when the pre_task command says no; nothing happens without one."""
        if "pre_task" not in self.commands:
            return
        run = self._run("pre_task", payload("pre_task", agent_name=self.agent_name, task=task, attempt=attempt))
        if not run.ok:
            raise HookVetoed(run.sentence() + "\n\nThe task was not started.")

    def post_task(self, task: DispatchTask, *, attempt: int, status: str, pr_url: str | None,
                  error: str | None) -> str | None:
        """Tell the post_task command how the task ended; a note for the result comment when it failed."""
        if "post_task" not in self.commands:
            return None
        outcome = {"status": status, "pr_url": pr_url, "error": error}
        run = self._run("post_task", payload("post_task", agent_name=self.agent_name, task=task, attempt=attempt,
                                             outcome=outcome))
        return None if run.ok else run.sentence()

    def health_problem(self) -> str | None:
        """Why the health_check command says the runner is not ready, or None; cached HEALTH_CACHE_S."""
        if "health_check" not in self.commands:
            return None
        with self._health_lock:  # concurrent probes wait for the one check, then share its answer
            now = time.monotonic()
            if self._health is not None and now - self._health[0] < HEALTH_CACHE_S:
                return self._health[1]
            run = self._run("health_check", payload("health_check", agent_name=self.agent_name))
            problem = None if run.ok else f"{run.detail}" + (f": {run.stderr_tail}" if run.stderr_tail else "")
            self._health = (time.monotonic(), problem)
            return problem

    def _run(self, event: str, data: Mapping[str, Any]) -> HookRun:
        command = self.commands[event]
        stdin = self.redact(json.dumps(data, ensure_ascii=False)).encode()
        env = minimal_env(HOOK_ENV, {"AGENT_RUNNER_HOOK": event})
        log = self.log.bind(hook=event)
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            result = self.sandbox.run(command, worktree=self.workdir, env=env, deadline_s=self.timeout_s,
                                      stdin=stdin, merge_stderr=False, output_limit=20_000)
        except OSError as exc:  # the program is missing, not executable, or not visible in the sandbox
            detail = f"could not start ({exc.strerror or exc}: {exc.filename or command})"
            log.warning("hook could not run", error=detail)
            return HookRun(event, command, False, self.redact(detail))
        except RunnerError as exc:  # SandboxUnavailable: nothing untrusted runs without it
            log.warning("hook could not run", error=str(exc))
            return HookRun(event, command, False, f"could not run: {self.redact(str(exc))}")
        stderr = self.redact(tail_text(result.stderr, max_lines=_TAIL_LINES, max_chars=_TAIL_CHARS))
        (log.info if result.ok else log.warning)("hook ran", ok=result.ok, detail=result.describe_exit(),
                                                 seconds=round(result.duration_s, 3), stderr=stderr[-500:] or None)
        return HookRun(event, command, result.ok, result.describe_exit(), stderr)
