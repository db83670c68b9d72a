"""Read what the target repository says about itself: agent instructions, setup and checks.

A target repository can guide the runner with files it may already have for
other agents (``AGENTS.md``, ``CLAUDE.md``, ``.github/copilot-instructions.md``)
and with ``.agent-runner.yml``::

    instructions: |
      Use tabs. Every public function needs a docstring.
    setup:
      - pip install -e .
    validate:
      - ruff check .
      - pytest -q
    fix_failed_checks: false   # no CI rounds on this repository's task PRs

``setup`` and ``validate`` may also be a single string. Commands run without
a shell (see :mod:`runner.steps.validation`). The files belong to whoever can push
to the target repository, so they are read defensively: only regular files
whose real path stays inside the worktree, each cut to a size cap, and YAML
through ``yaml.safe_load`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from runner.errors import GeneratorError, GeneratorTimeout, TaskSpecError
from runner.sandbox.bwrap import Sandbox
from runner.sandbox.procs import format_seconds, split_command, tail_text
from runner.steps.validation import ValidationReport, run_validation

CONFIG_FILE = ".agent-runner.yml"
INSTRUCTION_FILES = ("AGENTS.md", "CLAUDE.md", ".github/copilot-instructions.md")
KNOWN_KEYS = ("instructions", "setup", "validate", "fix_failed_checks")
#: Each instruction source is cut to this many characters.
MAX_INSTRUCTION_CHARS = 16_000
MAX_CONFIG_BYTES = 64_000
MAX_COMMANDS = 20
_FIX_HINT = (
    f"Fix `{CONFIG_FILE}` on the target repository's base branch (or delete it), then "
    "remove the `agent-failed` label to run the task again."
)


@dataclass(frozen=True)
class RepoConfig:
    """The target repository's guidance; empty when it has none."""

    instructions: str = ""
    setup: tuple[str, ...] = ()
    validate: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    fix_failed_checks: bool = True  # `fix_failed_checks: false` turns CI rounds off for this repository


class FileSource(Protocol):
    """Where the files are read from: the base commit (:class:`runner.steps.workspace.CommittedFiles`)."""

    def read(self, name: str, max_bytes: int, warnings: list[str]) -> tuple[str, str, bool] | None:
        """(the file's real path, its text cut to ``max_bytes``, whether there was more)."""
        ...


def load_repo_config(source: Path | FileSource) -> RepoConfig:
    """Collect instructions and commands; raise TaskSpecError on a broken config.

    The pipeline passes the base commit's files, so a change (or a re-run on the
    task branch) never decides what runs; a Path reads a plain directory.
    Files that are missing are skipped; files that are not regular or point
    outside the tree are skipped with a warning. Unknown keys in the
    config are warnings, not errors, so that older runners read newer configs.
    """
    files = _DirectoryFiles(source) if isinstance(source, Path) else source
    warnings: list[str] = []
    sections: list[str] = []
    sources: list[str] = []
    seen: set[str] = set()
    for name in INSTRUCTION_FILES:
        found = files.read(name, MAX_INSTRUCTION_CHARS * 4, warnings)
        if found is None or found[0] in seen:  # CLAUDE.md is often a link to AGENTS.md
            continue
        seen.add(found[0])
        text = found[1]
        if text.strip():
            sections.append(_section(name, _cap(text, MAX_INSTRUCTION_CHARS, name)))
            sources.append(name)

    data = _load_yaml(files, warnings)
    if data:
        sources.append(CONFIG_FILE)
    for key in sorted(set(data) - set(KNOWN_KEYS)):
        warnings.append(
            f"`{CONFIG_FILE}` has an unknown key `{key}` (known: {', '.join(KNOWN_KEYS)}); it was ignored."
        )
    extra = data.get("instructions")
    if extra is not None:
        if not isinstance(extra, str):
            raise _config_error(
                "`instructions` must be text (use `instructions: |` for several lines)"
            )
        if extra.strip():
            sections.append(_section(CONFIG_FILE, _cap(extra, MAX_INSTRUCTION_CHARS, CONFIG_FILE)))
    fix = data.get("fix_failed_checks", True)
    if not isinstance(fix, bool):
        raise _config_error("`fix_failed_checks` must be `true` or `false`")
    return RepoConfig(
        fix_failed_checks=fix,
        instructions="\n\n".join(sections),
        setup=_commands(data, "setup"),
        validate=_commands(data, "validate"),
        warnings=tuple(warnings),
        sources=tuple(sources),
    )


def run_setup(
    config: RepoConfig, worktree: Path, env: Mapping[str, str], timeout_s: float,
    *, sandbox: Sandbox | None = None, git_dir: Path | None = None,
) -> ValidationReport:
    """Run the repository's setup commands in order, stopping at the first failure.

    Raise GeneratorError naming the failed command and the tail of its output
    (GeneratorTimeout when the shared deadline passed).
    """
    report = run_validation(
        config.setup, worktree=worktree, env=env, timeout_s=timeout_s, stop_at_first_failure=True,
        sandbox=sandbox, git_dir=git_dir,
    )
    for result in report.results:
        if result.passed:
            continue
        tail = tail_text(result.output_tail, max_lines=20, max_chars=1500) or "(no output)"
        if result.timed_out or result.skipped:
            raise GeneratorTimeout(
                f"Setup command `{result.command}` did not finish within the "
                f"{format_seconds(timeout_s)} s allowed for setup and was stopped: {tail}"
            )
        raise GeneratorError(
            f"Setup command `{result.command}` failed with {result.status}: {tail}",
            hint=_FIX_HINT,
        )
    return report


class _DirectoryFiles:
    """Files of a plain directory, only regular ones whose real path stays inside it."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve(strict=True)

    def read(self, name: str, max_bytes: int, warnings: list[str]) -> tuple[str, str, bool] | None:
        real = _locate(self.root, name, warnings)
        if real is None:
            return None
        text, more = _read(real, max_bytes)
        return str(real), text, more


def _locate(root: Path, name: str, warnings: list[str]) -> Path | None:
    """The real path of ``name`` if it is a regular file inside ``root``; None when absent or unsafe."""
    path = root / name
    if not path.exists() and not path.is_symlink():
        return None
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # dangling or looping symlink
        warnings.append(f"`{name}` is a broken link; it was ignored.")
        return None
    if not real.is_relative_to(root) or real.is_relative_to(root / ".git"):
        warnings.append(f"`{name}` points outside the repository; it was ignored.")
        return None
    if not real.is_file():
        warnings.append(f"`{name}` is not a regular file; it was ignored.")
        return None
    return real


def _read(real: Path, max_bytes: int) -> tuple[str, bool]:
    """Decode at most ``max_bytes`` of a file; say whether there was more."""
    with real.open("rb") as handle:
        raw = handle.read(max_bytes + 1)
    return raw[:max_bytes].decode("utf-8", errors="replace"), len(raw) > max_bytes


def _cap(text: str, limit: int, name: str) -> str:
    if len(text) <= limit:
        return text
    return (
        text[:limit] + f"\n\n[… `{name}` is longer; only its first {limit} characters are shown.]"
    )


def _section(name: str, text: str) -> str:
    return f"## From `{name}`\n\n{text.strip()}"


def _load_yaml(files: FileSource, warnings: list[str]) -> dict[str, Any]:
    found = files.read(CONFIG_FILE, MAX_CONFIG_BYTES, warnings)
    if found is None:
        return {}
    _, text, too_big = found
    if too_big:
        raise _config_error(f"the file is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _config_error(_describe_yaml_error(exc)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _config_error(
            f"the top level must be a mapping such as `validate: [pytest -q]`, not {_kind(data)}"
        )
    return {str(key): value for key, value in data.items()}


def _commands(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise _config_error(f"`{key}` must be a command or a list of commands, not {_kind(value)}")
    commands = tuple(item.strip() for item in items if item.strip())
    if len(commands) > MAX_COMMANDS:
        raise _config_error(f"`{key}` lists {len(commands)} commands; the limit is {MAX_COMMANDS}")
    for command in commands:
        try:
            split_command(command)
        except ValueError as exc:
            raise _config_error(f"`{key}` command `{command}` cannot be read ({exc})") from None
    return commands


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "it is not valid YAML"
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def _kind(value: Any) -> str:
    return {list: "a list", dict: "a mapping", str: "text", bool: "true/false"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _config_error(problem: str) -> TaskSpecError:
    return TaskSpecError(
        f"The target repository's `{CONFIG_FILE}` is invalid: {problem}. Fix the file "
        "or remove it.",
        hint=_FIX_HINT,
    )
