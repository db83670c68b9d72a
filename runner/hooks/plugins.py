"""Let operators observe or gate each stage without touching the pipeline.

A hook subclasses :class:`Hook` and overrides any ``on_*`` method; every method
takes keyword-only arguments so new ones can be added without breaking plugins.
Hooks are listed in ``HOOKS`` as ``module:attribute``. A failing hook is logged
and noted on the issue; only a hook with ``gate = True`` can fail the task.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from runner.errors import ConfigError, HookFailed, RunnerError


class Hook:
    """No-op base; override what you need."""

    gate: bool = False

    def on_claimed(self, *, task: Any, attempt: int) -> None: ...

    def on_generated(self, *, task: Any, changes: Any) -> None: ...

    def on_pushed(self, *, task: Any, branch: str, sha: str) -> None: ...

    def on_pull_request(self, *, task: Any, pull: Any) -> None: ...

    def on_finished(self, *, task: Any, pull: Any) -> None: ...

    def on_failed(self, *, task: Any, error: RunnerError) -> None: ...

    def on_stage(self, *, issue: int, task: Any, stage: str) -> None:
        """A stage starts (`clone`, `generate`, `validate`, ...); ``task`` is None before it is parsed."""

    def on_outcome(self, *, issue: int, task: Any, outcome: Any) -> None:
        """The job ended, however it ended (an ``Outcome``: status, PR URL, error)."""

    def on_issue(self, *, issue: Any) -> None:
        """The runner read a dispatch issue (a forge ``Issue``: number, title, html_url, labels)."""

    def on_progress(self, *, issue: int, task: Any, message: str | None = None, usage: Any = None) -> None:
        """The generator said how it goes: a one-line ``message`` (``turn 3/30: …``) and/or its ``usage`` so far."""


class CombinedHooks:
    """Call every hook in order; contain their failures unless they gate."""

    def __init__(self, hooks: Sequence[Hook], log: Any) -> None:
        self._hooks = list(hooks)
        self._log = log
        self.failures: list[str] = []

    def add(self, hook: Hook) -> None:
        """One more hook, such as the CLI's status line."""
        self._hooks.append(hook)

    def call(self, name: str, **kwargs: Any) -> None:
        for hook in self._hooks:
            method = getattr(hook, name, None)
            if method is None:
                continue  # a duck-typed hook from before this event existed
            try:
                method(**kwargs)
            except RunnerError:
                raise
            except Exception as exc:  # third-party code: contain anything it raises
                label = type(hook).__name__
                if getattr(hook, "gate", False):
                    raise HookFailed(f"The gating hook `{label}` refused the task in {name}: {exc}") from exc
                self._log.warning("hook failed", hook=label, stage=name, error=str(exc))
                self.failures.append(f"Hook `{label}` failed in {name}: {exc}")


def load_hooks(specs: Sequence[str]) -> list[Hook]:
    """Import `module:attribute` specs; a class is instantiated with no arguments."""
    hooks: list[Hook] = []
    for spec in specs:
        module_name, _, attr = spec.partition(":")
        if not module_name or not attr:
            raise ConfigError(f"HOOKS entry `{spec}` must look like `package.module:HookClass`.")
        try:
            target = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"HOOKS entry `{spec}` could not be loaded: {exc}") from exc
        hooks.append(target() if isinstance(target, type) else target)
    return hooks
