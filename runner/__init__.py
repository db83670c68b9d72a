"""agent-runner: turn labeled dispatch issues into one idempotent pull request each.

This module is the plugin API: what a generator or hook plugin imports. Everything in
``__all__`` is kept stable (tests/unit/test_exported_members.py pins it); the rest of the
package is the runner's own and may change.

    from runner import Changes, GenerationContext, Generator, Usage

    class Changelog(Generator):
        name = "changelog"
        def generate(self, ctx: GenerationContext) -> Changes: ...
"""

from __future__ import annotations

__version__ = "0.1.0"

from runner.errors import (  # noqa: E402 (the version first: the CLI reads it without the rest)
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
from runner.generators.base import Budget, Changes, GenerationContext, Generator, Usage  # noqa: E402
from runner.hooks.plugins import Hook  # noqa: E402

__all__ = [
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
    "__version__",
]
