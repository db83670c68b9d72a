"""Name the operator's hooks: Python classes called at each stage, and commands run in the sandbox."""

from __future__ import annotations

import shlex

from pydantic import Field, field_validator

from runner.config.base import CsvList, Group, parse_json_map

#: The executable hooks HOOK_COMMANDS may name (runner/hooks/commands.py).
HOOK_EVENTS = ("pre_task", "post_task", "health_check")


class HookSettings(Group):
    """HOOKS (in-process plugins) and HOOK_COMMANDS (executables, sandboxed)."""

    hooks: CsvList = ()
    """Python hooks called at each stage, comma-separated `package.module:Class` (see `runner/hooks/plugins.py`)."""
    hook_commands: dict[str, str] = Field(default_factory=dict)
    """Executable hooks, a JSON object with any of `pre_task`, `post_task` and `health_check`, for example
    `{"pre_task": "/etc/agent-runner/quota.sh", "health_check": "/etc/agent-runner/ready.sh"}`. Each gets the task
    as JSON on stdin and runs in the sandbox; a non-zero `pre_task` refuses the task with its stderr on the issue,
    `post_task` gets the outcome, a failing `health_check` makes `/readyz` fail (see docs/hooks.md)."""
    hook_timeout_seconds: float = Field(default=30.0, gt=0)
    """Time limit of each hook command; one that runs longer is stopped and counts as failed."""

    _hook_json = field_validator("hook_commands", mode="before")(parse_json_map)

    @field_validator("hook_commands")
    @classmethod
    def _check_hook_commands(cls, value: dict[str, str]) -> dict[str, str]:
        for event, command in value.items():
            if event not in HOOK_EVENTS:
                raise ValueError(f"`{event}` is not a hook; the hooks are {', '.join(HOOK_EVENTS)}")
            if not isinstance(command, str) or not command.strip():
                raise ValueError(f"`{event}` must be a command line, for example \"/etc/agent-runner/{event}.sh\"")
            try:
                shlex.split(command)
            except ValueError as exc:
                raise ValueError(f"the `{event}` command cannot be split into arguments ({exc})") from exc
        return value
