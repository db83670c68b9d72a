"""Give a model a few small, safe tools on the worktree, described once for every provider.

The tools follow SWE-agent's lesson: few of them, bounded output, and an error
message the model can act on. Every write goes through
:func:`runner.steps.guard.safe_write`. A refused or malformed call becomes an error
:class:`ToolResult` that is sent back to the model; it never raises.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import GuardRefused, ToolInputError
from runner.steps import guard

MAX_LIST_ENTRIES = 500
MAX_READ_LINES = 400
MAX_READ_CHARS = 40_000
MAX_SEARCH_HITS = 100
MAX_SEARCH_FILE_BYTES = 1_000_000
#: How a finish before any edit is answered; the loop counts these replies.
NO_EDIT_REFUSAL = "ERROR: no file has been changed yet, so the task is not done."
SKIP_DIRS = frozenset({".git", "node_modules", "__pycache__", ".venv", ".tox", ".mypy_cache"})


@dataclass(frozen=True)
class ToolSpec:
    """One tool as every provider needs it: a name, a sentence and a JSON schema."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class ToolResult:
    """What a tool call returns to the model; ``finished`` ends the conversation."""

    content: str
    is_error: bool = False
    finished: bool = False


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


_STR = {"type": "string"}
TOOL_SPECS: tuple[ToolSpec, ...] = (
    ToolSpec("list_files", "List files under a directory of the repository (recursive, .git excluded).",
             _schema({"path": {**_STR, "description": "Directory, default '.'"},
                      "pattern": {**_STR, "description": "Optional glob on the relative path, e.g. '*.py'"}}, [])),
    ToolSpec("read_file", "Read a text file with line numbers; use start_line/end_line for long files.",
             _schema({"path": _STR, "start_line": {"type": "integer"}, "end_line": {"type": "integer"}}, ["path"])),
    ToolSpec("search_text", "Search text files for a string (or a regular expression with regex=true).",
             _schema({"pattern": _STR, "path": {**_STR, "description": "Directory or file, default '.'"},
                      "regex": {"type": "boolean"}}, ["pattern"])),
    ToolSpec("edit_file", "Replace one exact occurrence of `search` with `replace` in a file. "
             "`search` must match exactly once, including whitespace.",
             _schema({"path": _STR, "search": _STR, "replace": _STR}, ["path", "search", "replace"])),
    ToolSpec("write_file", "Create a file or replace its whole content.",
             _schema({"path": _STR, "content": _STR}, ["path", "content"])),
    ToolSpec("finish", "Call when the task is done, with a short summary of the change for the pull request.",
             _schema({"summary": _STR}, ["summary"])),
)


class Toolbox:
    """Run tool calls against one worktree and remember which files were written."""

    def __init__(self, worktree: Path, *, max_file_bytes: int, allow_workflows: bool) -> None:
        self.worktree = worktree
        self.max_file_bytes = max_file_bytes
        self.allow_workflows = allow_workflows
        self.touched: list[str] = []
        self.summary: str | None = None

    def dispatch(self, name: str, arguments: Mapping[str, Any] | str | None) -> ToolResult:
        """Run one call; every failure the model can cause comes back as an error result."""
        handler = getattr(self, f"_tool_{name}", None)
        if handler is None:
            known = ", ".join(spec.name for spec in TOOL_SPECS)
            return ToolResult(f"ERROR: unknown tool `{name}`. Available tools: {known}.", is_error=True)
        try:
            args = _parse_arguments(arguments)
            result: ToolResult = handler(**_known_args(name, args))
            return result
        except (ToolInputError, GuardRefused) as exc:
            return ToolResult(f"ERROR: {exc}", is_error=True)
        except OSError as exc:
            return ToolResult(f"ERROR: {name} failed: {exc.strerror or exc}", is_error=True)

    # The tools. Arguments arrive as the model sent them, so each one checks its types.

    def _tool_list_files(self, path: str = ".", pattern: str | None = None) -> ToolResult:
        base = self._dir(path)
        if pattern is not None and not isinstance(pattern, str):
            raise ToolInputError("`pattern` must be a glob string such as '*.py'.")
        entries: list[str] = []
        root = self.worktree.resolve()
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for filename in sorted(f for f in filenames if f not in SKIP_DIRS):  # a worktree's `.git` is a file
                rel = (Path(dirpath) / filename).relative_to(root).as_posix()
                if pattern and not (fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(filename, pattern)):
                    continue
                entries.append(rel)
                if len(entries) >= MAX_LIST_ENTRIES:
                    return ToolResult("\n".join(entries) + f"\n… (stopped at {MAX_LIST_ENTRIES} entries)")
        return ToolResult("\n".join(entries) if entries else "(no files)")

    def _tool_read_file(self, path: str, start_line: int | None = None, end_line: int | None = None) -> ToolResult:
        text = self._read_text(path)
        lines = text.splitlines()
        start = max(1, _int(start_line, "start_line") or 1)
        if lines and start > len(lines):
            raise ToolInputError(f"{path} has only {len(lines)} lines; start_line {start} is past the end.")
        end = min(len(lines), _int(end_line, "end_line") or start + MAX_READ_LINES - 1, start + MAX_READ_LINES - 1)
        numbered: list[str] = []
        size = 0
        for number in range(start, end + 1):
            line = f"{number:>6}\t{lines[number - 1]}"
            size += len(line) + 1
            if size > MAX_READ_CHARS:
                end = number - 1
                break
            numbered.append(line)
        footer = f"\n… (lines {start}-{end} of {len(lines)}; ask for more with start_line)" if end < len(lines) else ""
        return ToolResult(("\n".join(numbered) or "(empty file)") + footer)

    def _tool_search_text(self, pattern: str, path: str = ".", regex: bool = False) -> ToolResult:
        if not isinstance(pattern, str) or not pattern:
            raise ToolInputError("search_text needs a non-empty `pattern`.")
        try:
            matcher = re.compile(pattern if regex else re.escape(pattern))
        except re.error as exc:
            raise ToolInputError(f"`{pattern}` is not a valid regular expression: {exc}.") from exc
        root = self.worktree.resolve()
        if isinstance(path, str) and path not in ("", ".", "./") and guard.resolve_inside(self.worktree, path).is_file():
            files = [guard.resolve_inside(self.worktree, path)]
        else:
            files = self._walk_files(self._dir(path))
        hits: list[str] = []
        for file in files:
            if file.is_symlink() or file.stat().st_size > MAX_SEARCH_FILE_BYTES:
                continue
            try:
                text = file.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            for number, line in enumerate(text.splitlines(), 1):
                if matcher.search(line):
                    hits.append(f"{file.relative_to(root).as_posix()}:{number}: {line[:300]}")
                    if len(hits) >= MAX_SEARCH_HITS:
                        return ToolResult("\n".join(hits) + f"\n… (stopped at {MAX_SEARCH_HITS} matches)")
        return ToolResult("\n".join(hits) if hits else f"No match for `{pattern}`.")

    def _tool_edit_file(self, path: str, search: str, replace: str) -> ToolResult:
        if not isinstance(search, str) or not isinstance(replace, str) or not search:
            raise ToolInputError("edit_file needs a non-empty string `search` and a string `replace`.")
        text = self._read_text(path)
        count = text.count(search)
        if count == 0:
            raise ToolInputError(
                f"`search` was not found in {path}. Read the file again and copy the text exactly, whitespace included."
            )
        if count > 1:
            raise ToolInputError(
                f"`search` occurs {count} times in {path}; include more surrounding lines so it matches exactly once."
            )
        return self._write(path, text.replace(search, replace, 1), verb="Edited")

    def _tool_write_file(self, path: str, content: str) -> ToolResult:
        if not isinstance(content, str):
            raise ToolInputError("write_file needs `content` as a string.")
        return self._write(path, content, verb="Wrote")

    def _tool_finish(self, summary: str = "") -> ToolResult:
        if not self.touched:
            raise ToolInputError(NO_EDIT_REFUSAL.removeprefix("ERROR: ") + " Change the files with "
                                 "write_file or edit_file first, then call finish.")
        self.summary = summary.strip() if isinstance(summary, str) else ""
        return ToolResult("Finished.", finished=True)

    # Helpers.

    def _write(self, path: str, content: str, *, verb: str) -> ToolResult:
        if not isinstance(path, str):
            raise ToolInputError("`path` must be a string.")
        norm = guard.safe_write(
            self.worktree, path, content, max_bytes=self.max_file_bytes, allow_workflows=self.allow_workflows
        )
        if norm not in self.touched:
            self.touched.append(norm)
        return ToolResult(f"{verb} {norm} ({len(content.encode('utf-8'))} bytes).")

    def _read_text(self, path: str) -> str:
        if not isinstance(path, str):
            raise ToolInputError("`path` must be a string.")
        target = guard.resolve_inside(self.worktree, path)
        if not target.exists() and not target.is_symlink():
            raise ToolInputError(
                f"{path} does not exist. Use list_files to see which files exist, or write_file to create it."
            )
        if target.is_dir() and not target.is_symlink():
            raise ToolInputError(f"{path} is a directory, not a file. Use list_files to see what it holds.")
        data = guard.safe_read(self.worktree, path, max_bytes=max(self.max_file_bytes, MAX_SEARCH_FILE_BYTES))
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ToolInputError(f"{path} is not UTF-8 text; binary files cannot be read or edited.") from exc

    def _dir(self, path: str) -> Path:
        if not isinstance(path, str):
            raise ToolInputError("`path` must be a string.")
        if path in ("", ".", "./"):
            return self.worktree.resolve()
        resolved = guard.resolve_inside(self.worktree, path)
        if not resolved.is_dir() or resolved.is_symlink():
            raise ToolInputError(f"{path} is not a directory of the repository.")
        return resolved

    def _walk_files(self, start: Path) -> list[Path]:
        found: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            found += [Path(dirpath) / f for f in sorted(filenames) if f not in SKIP_DIRS]
        return found


def _parse_arguments(arguments: Mapping[str, Any] | str | None) -> dict[str, Any]:
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments)
        except json.JSONDecodeError as exc:
            raise ToolInputError(f"the arguments are not valid JSON ({exc.msg}); send a JSON object.") from exc
    else:
        value = arguments
    if not isinstance(value, Mapping):
        raise ToolInputError("the arguments must be a JSON object.")
    return dict(value)


def _known_args(name: str, args: dict[str, Any]) -> dict[str, Any]:
    spec = next(s for s in TOOL_SPECS if s.name == name)
    properties = spec.parameters["properties"]
    unknown = sorted(set(args) - set(properties))
    if unknown:
        raise ToolInputError(f"{name} got unknown arguments {unknown}; it takes {sorted(properties)}.")
    missing = [key for key in spec.parameters["required"] if key not in args]
    if missing:
        raise ToolInputError(f"{name} is missing the required arguments {missing}.")
    return args


def _int(value: Any, label: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ToolInputError(f"`{label}` must be a line number.")
    try:
        return int(value)
    except ValueError as exc:
        raise ToolInputError(f"`{label}` must be a line number.") from exc


def parse_edit_plan(text: str) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """Read the JSON edit protocol (for servers without tool calling) as ``(summary, tool calls)``.

    Each edit becomes a ``write_file`` or ``edit_file`` call, so it passes the
    same guard as a tool call would.
    """
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ToolInputError("the reply holds no JSON object.")
    try:
        plan = json.loads(text[start : end + 1])
    except json.JSONDecodeError as exc:
        raise ToolInputError(f"the reply is not valid JSON ({exc.msg} at character {exc.pos}).") from exc
    if not isinstance(plan, dict) or not isinstance(plan.get("edits"), list):
        raise ToolInputError('the JSON object needs an "edits" list.')
    calls: list[tuple[str, dict[str, Any]]] = []
    for number, edit in enumerate(plan["edits"], 1):
        if not isinstance(edit, dict) or not isinstance(edit.get("path"), str):
            raise ToolInputError(f'edit {number} needs a "path" string.')
        if isinstance(edit.get("content"), str):
            calls.append(("write_file", {"path": edit["path"], "content": edit["content"]}))
        elif isinstance(edit.get("search"), str) and isinstance(edit.get("replace"), str):
            calls.append(("edit_file", {"path": edit["path"], "search": edit["search"], "replace": edit["replace"]}))
        else:
            raise ToolInputError(f'edit {number} needs either "content" or both "search" and "replace".')
    summary = plan.get("summary")
    return (summary.strip() if isinstance(summary, str) else ""), calls
