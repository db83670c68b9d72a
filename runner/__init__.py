"""agent-runner: turn labeled dispatch issues into one idempotent pull request each.

This module is the plugin API: what a generator or hook plugin imports. Everything in
``__all__`` is kept stable (tests/unit/test_exported_members.py pins it); the rest of the
package is the runner's own and may change. The names load on first use, so that
``import runner`` (and the CLI's first milliseconds, before its SIGTERM handler) stays light.

    from runner import Changes, GenerationContext, Generator, Usage

    class Changelog(Generator):
        name = "changelog"
        def generate(self, ctx: GenerationContext) -> Changes: ...
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Where each name of the plugin API lives.
_HOMES = {
    "BudgetExceeded": "runner.errors",
    "ConfigError": "runner.errors",
    "ForgeError": "runner.errors",
    "GeneratorError": "runner.errors",
    "GeneratorTimeout": "runner.errors",
    "GeneratorUnavailable": "runner.errors",
    "GuardRefused": "runner.errors",
    "HookFailed": "runner.errors",
    "NoChangeMade": "runner.errors",
    "PermissionDenied": "runner.errors",
    "RateLimited": "runner.errors",
    "RunnerError": "runner.errors",
    "TaskSpecError": "runner.errors",
    "ValidationFailed": "runner.errors",
    "WorkspaceError": "runner.errors",
    "Budget": "runner.generators.base",
    "Changes": "runner.generators.base",
    "GenerationContext": "runner.generators.base",
    "Generator": "runner.generators.base",
    "Usage": "runner.generators.base",
    "Hook": "runner.hooks.plugins",
}

__all__ = [
    "__version__",
    "Budget",
    "BudgetExceeded",
    "Changes",
    "ConfigError",
    "ForgeError",
    "GenerationContext",
    "Generator",
    "GeneratorError",
    "GeneratorTimeout",
    "GeneratorUnavailable",
    "GuardRefused",
    "Hook",
    "HookFailed",
    "NoChangeMade",
    "PermissionDenied",
    "RateLimited",
    "RunnerError",
    "TaskSpecError",
    "Usage",
    "ValidationFailed",
    "WorkspaceError",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time, __getattr__ below
    from runner.errors import (
        BudgetExceeded,
        ConfigError,
        ForgeError,
        GeneratorError,
        GeneratorTimeout,
        GeneratorUnavailable,
        GuardRefused,
        HookFailed,
        NoChangeMade,
        PermissionDenied,
        RateLimited,
        RunnerError,
        TaskSpecError,
        ValidationFailed,
        WorkspaceError,
    )
    from runner.generators.base import Budget, Changes, GenerationContext, Generator, Usage
    from runner.hooks.plugins import Hook


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'runner' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value
