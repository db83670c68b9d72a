"""Find generators by name: built-ins in one literal dict, plugins from entry points.

Third-party generators register under the entry point group
``agent_runner.generators``; the entry point loads a factory ``build(settings)``
(or a class taking ``settings``) that returns a :class:`Generator`. A duplicate
name is a configuration error, and an unknown name lists the names that exist.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from runner.errors import CliNotInstalled, ConfigError, GeneratorError, RunnerError
from runner.generators.base import (
    Budget,
    Changes,
    GenerationContext,
    Generator,
    GeneratorFactory,
    Usage,
)
from runner.log import get_logger

ENTRY_POINT_GROUP = "agent_runner.generators"

__all__ = [
    "BUILTINS", "ENTRY_POINT_GROUP", "Budget", "Changes", "GenerationContext", "Generator",
    "GeneratorFactory", "Usage", "build_chain", "registry",
]


def _lazy(module: str) -> GeneratorFactory:
    """Import a built-in only when it is used, so the SDKs load only when needed."""

    def factory(settings: Any) -> Generator:
        return importlib.import_module(module).build(settings)  # type: ignore[no-any-return]

    factory.__qualname__ = f"{module}.build"
    return factory


BUILTINS: dict[str, GeneratorFactory] = {
    "trace": _lazy("runner.generators.trace"),
    "patch": _lazy("runner.generators.patch"),
    "openai": _lazy("runner.generators.llm.openai"),
    "anthropic": _lazy("runner.generators.llm.anthropic"),
    "gemini": _lazy("runner.generators.llm.gemini"),
    "command": _lazy("runner.generators.command"),
    # Agent CLIs on top of `command`, each reaching its model through the gateway (docs/generators.md).
    "claude-code": _lazy("runner.generators.agents.claude_code"),
    "codex": _lazy("runner.generators.agents.codex"),
    "aider": _lazy("runner.generators.agents.aider"),
    "mini-swe-agent": _lazy("runner.generators.agents.mini_swe_agent"),
    "gemini-cli": _lazy("runner.generators.agents.gemini_cli"),
    "opencode": _lazy("runner.generators.agents.opencode"),
    "cline": _lazy("runner.generators.agents.cline"),
}


def registry(plugins: Iterable[EntryPoint] | None = None) -> dict[str, tuple[GeneratorFactory, str]]:
    """Every generator name with its factory and where it comes from."""
    found: dict[str, tuple[GeneratorFactory, str]] = {
        name: (factory, "built-in") for name, factory in BUILTINS.items()
    }
    for ep in entry_points(group=ENTRY_POINT_GROUP) if plugins is None else plugins:
        if ep.name in found:
            raise ConfigError(
                f"Two generators are called `{ep.name}` ({found[ep.name][1]} and {ep.value}). "
                "Uninstall one of the plugins or rename its entry point."
            )
        found[ep.name] = (_plugin_factory(ep), ep.value)
    return found


def build_chain(names: Sequence[str], settings: Any) -> list[Generator]:
    """Build the fallback chain, failing at start-up on a name that does not exist."""
    known = registry()
    chain: list[Generator] = []
    names = enabled(names, settings)
    for index, name in enumerate(names):
        if name not in known:
            raise ConfigError(
                f"GENERATORS names `{name}`, which is not installed. Known generators: "
                f"{', '.join(sorted(known))}. Run `agent-runner generators` to list them."
            )
        try:
            generator = known[name][0](settings)
        except CliNotInstalled as exc:
            if index == len(names) - 1:
                raise  # nothing would run instead: refuse to start
            # The old runner's way: a missing Cline falls back to the next generator, and each task says why.
            get_logger().warning("generator_not_installed", generator=name, fallback=names[index + 1],
                                 error=str(exc))
            generator = NotInstalled(name, exc)
        if not isinstance(generator, Generator):
            raise ConfigError(f"The generator `{name}` does not have a `name` and a `generate(ctx)` method.")
        chain.append(generator)
    return chain


class NotInstalled:
    """Stands in for an agent preset whose CLI is missing, so the chain falls back with the reason on the issue."""

    def __init__(self, name: str, error: CliNotInstalled) -> None:
        self.name = name
        self.error = error

    def generate(self, ctx: GenerationContext) -> Changes:
        raise GeneratorError(str(self.error), hint="Ask the runner's operator to install the CLI.")

    def check(self) -> str:
        raise self.error


def enabled(names: Sequence[str], settings: Any) -> list[str]:
    """The chain without `cline` when CLINE_ENABLED=false (the old runner's switch), saying so in one log line."""
    names = list(names)
    if getattr(settings, "cline_enabled", True) or "cline" not in names:
        return names
    kept = [name for name in names if name != "cline"]
    if not kept:
        raise ConfigError("CLINE_ENABLED=false takes `cline` out of the chain, and no other generator is left. "
                          "Add one to GENERATORS (for example `GENERATORS=cline,gemini`) or set CLINE_ENABLED=true.")
    get_logger().info("cline_disabled", chain=",".join(kept),
                      message=f"CLINE_ENABLED=false: `cline` is left out of the generator chain, which is now "
                              f"{' → '.join(kept)}.")
    return kept


def _plugin_factory(ep: EntryPoint) -> GeneratorFactory:
    def factory(settings: Any) -> Generator:
        try:
            target: Callable[[Any], Generator] = ep.load()
        except Exception as exc:  # a broken plugin must not take the runner down
            raise ConfigError(f"The generator plugin `{ep.name}` ({ep.value}) failed to load: {exc}") from exc
        build = getattr(target, "build", None) if not callable(target) else target
        if build is None:
            raise ConfigError(f"The generator plugin `{ep.name}` ({ep.value}) is not callable.")
        try:
            return build(settings)
        except RunnerError:
            raise
        except Exception as exc:  # a plugin's own bug must read as a config problem, not a traceback
            raise ConfigError(f"The generator plugin `{ep.name}` ({ep.value}) could not be built: {exc}") from exc

    return factory
