"""The plugin API is exactly what runner/__init__.py exports (as httpx pins its own)."""

from __future__ import annotations

import runner
import runner.errors

PLUGIN_API = {
    "Budget", "Changes", "GenerationContext", "Generator", "Usage", "Hook", "__version__",
    "RunnerError", "ConfigError", "TaskSpecError", "ForgeError", "RateLimited", "PermissionDenied",
    "WorkspaceError", "GeneratorError", "GeneratorUnavailable", "NoChangeMade", "BudgetExceeded",
    "GeneratorTimeout", "GuardRefused", "ValidationFailed", "HookFailed",
}


def test_the_plugin_api_is_pinned() -> None:
    assert set(runner.__all__) == PLUGIN_API == set(runner._HOMES) | {"__version__"}
    assert all(hasattr(runner, name) for name in runner.__all__)


def test_importing_runner_stays_light() -> None:
    """The CLI installs its SIGTERM handler right after `import runner`: no pydantic or SDK before it."""
    import subprocess
    import sys

    code = "import sys, runner.cli; print(' '.join(m for m in ('pydantic', 'github', 'structlog', 'openai') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_every_exported_error_is_in_the_one_tree() -> None:
    errors = [getattr(runner, n) for n in runner.__all__ if n.endswith(("Error", "Failed", "Exceeded", "Timeout",
                                                                       "Limited", "Denied", "Refused", "Made",
                                                                       "Unavailable"))]
    assert errors and all(e.__module__ == "runner.errors" and issubclass(e, runner.RunnerError) for e in errors)


def test_every_exception_class_of_the_runner_lives_in_errors_py() -> None:
    """httpx keeps its exception tree in one module; so do we (emulator aside: its own distribution)."""
    import importlib
    import pkgutil

    found = []
    for info in pkgutil.walk_packages(runner.__path__, "runner."):
        if info.name.startswith("runner.testing") or info.name == "runner.__main__":
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, BaseException)
                    and value.__module__ == info.name and info.name != "runner.errors"):
                found.append(f"{info.name}.{value.__name__}")
    assert found == []
