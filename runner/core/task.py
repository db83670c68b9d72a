"""Turn a dispatch issue body into a typed task, and derive every name from it safely.

This module is pure: no network, no git, no clock. Everything a user typed that
ends up in a ref name, a path, a URL or a prompt is checked here first.

The format (kept compatible with existing dispatch issues)::

    <!-- agent_task_metadata {"task_id": "test-task-12345678"} -->

    ## Instruction

    Create a simple test file to verify the agent runner is working.

    Target Repository: owner/target-repo
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from runner.config import normalize_repo, shorten
from runner.core.markdown import MATCH_CHARS, Line, scan, strip_invisible
from runner.errors import TaskSpecError

BRANCH_PREFIX = "agent-task-"
TRACE_DIR = "agent-tasks"
PREFIX_LEN = 8
MAX_TASK_ID = 1024
MAX_INSTRUCTION_CHARS = 60_000
#: GitHub caps an issue body at 65,536 characters; anything much larger is not a dispatch issue.
MAX_BODY_CHARS = 262_144
MAX_METADATA_CHARS = 16_384
MAX_METADATA_DEPTH = 8
METADATA_KEY = "agent_task_metadata"

# GitHub's own rules: owners are alphanumerics and single hyphens (max 39),
# repository names are [A-Za-z0-9._-] (max 100) and never "." or "..".
_SAFE_REF_CHARS_RE = re.compile(r"[^A-Za-z0-9._-]+")
_GENERATOR_RE = re.compile(r"^[a-z0-9_-]+(?:\s*,\s*[a-z0-9_-]+)*$")
MODEL_RE = re.compile(r"^[A-Za-z0-9._:/@+-]{1,200}$")

FORMAT_HELP = (
    "A dispatch issue needs three parts:\n\n"
    "```markdown\n"
    '<!-- agent_task_metadata {"task_id": "my-task-123"} -->\n\n'
    "## Instruction\n\n"
    "Describe the change here.\n\n"
    "Target Repository: owner/repo\n"
    "```"
)


@dataclass(frozen=True)
class DispatchTask:
    """One unit of work described by one dispatch issue."""

    dispatch_repo: str
    issue_number: int
    task_id: str
    instruction: str
    target_repo: str
    body_hash: str
    base_branch: str | None = None
    generator: str | None = None
    model: str | None = None
    seniority: str | None = None
    labels: frozenset[str] = frozenset()
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), compare=False)

    @property
    def prefix(self) -> str:
        """The first characters of the task id, made safe for refs and paths."""
        return task_prefix(self.task_id)


@dataclass(frozen=True)
class TaskNames:
    """Where a task's work lives: its branch and its trace file."""

    branch: str
    trace_path: str
    disambiguated: bool = False


def parse_task(
    body: str | None,
    *,
    dispatch_repo: str,
    issue_number: int,
    labels: Iterable[str] = (),
) -> DispatchTask:
    """Parse a dispatch issue body, or raise TaskSpecError saying what to fix.

    Only visible text counts: the metadata comes from the one top-level
    ``agent_task_metadata`` comment, while the heading and the target line are
    read outside comments and code fences. Invisible characters are removed
    first, so neither the generator nor the trace file ever sees them.
    """
    raw = body or ""
    if not raw.strip():
        raise TaskSpecError(f"The issue body is empty. {FORMAT_HELP}")
    if len(raw) > MAX_BODY_CHARS:
        raise TaskSpecError(
            f"The issue body is {len(raw)} characters long; the limit is {MAX_BODY_CHARS}. "
            "Shorten it or link to a file in the target repository."
        )
    scanned = scan(strip_invisible(raw))
    metadata = _metadata_from(scanned.comments)
    if metadata is None:
        raise TaskSpecError(
            "The issue body has no `agent_task_metadata` comment, so the task has no id. "
            + FORMAT_HELP
        )
    task_id = _require_task_id(metadata)

    section, target_line = _scan_body(scanned.lines)
    if section is None:
        raise TaskSpecError(
            "The issue body has no `## Instruction` section (outside comments and code blocks). "
            "Add the heading `## Instruction` with the task below it."
        )
    instruction = clean_instruction(section)
    if not instruction:
        raise TaskSpecError(
            "The `## Instruction` section is empty. Write what should change under the heading."
        )
    if len(instruction) > MAX_INSTRUCTION_CHARS:
        raise TaskSpecError(
            f"The instruction is {len(instruction)} characters long; the limit is "
            f"{MAX_INSTRUCTION_CHARS}. Shorten it or link to a file in the target repository."
        )

    target_repo = _resolve_target(target_line, metadata.get("target_repo"))
    return DispatchTask(
        dispatch_repo=dispatch_repo,
        issue_number=issue_number,
        task_id=task_id,
        instruction=instruction,
        target_repo=target_repo,
        body_hash=body_hash(raw),
        base_branch=_optional_ref(metadata, "base_branch"),
        generator=_optional_match(metadata, "generator", _GENERATOR_RE, "a comma-separated list of generator names"),
        model=_optional_match(metadata, "model", MODEL_RE, "a model name such as `gpt-4o`"),
        seniority=_optional_match(metadata, "seniority", re.compile(r"^[a-z0-9_-]{1,40}$"), "a level such as `senior`"),
        labels=frozenset(labels),
        metadata=MappingProxyType(dict(metadata)),
    )


def parse_metadata(body: str) -> dict[str, Any] | None:
    """Return the JSON object of the body's one metadata comment, or None when there is none.

    Only top-level comments count (a metadata example inside a code fence is
    text), and a body with two of them is refused rather than guessed at.
    """
    if len(body) > MAX_BODY_CHARS:
        raise TaskSpecError(f"The body is over {MAX_BODY_CHARS} characters, so its metadata is not read.")
    return _metadata_from(scan(strip_invisible(body)).comments)


def _metadata_from(comments: tuple[str, ...]) -> dict[str, Any] | None:
    found = [c.lstrip() for c in comments if c.lstrip().startswith(METADATA_KEY)]
    if not found:
        return None
    if len(found) > 1:
        raise TaskSpecError(
            f"The issue body has {len(found)} `agent_task_metadata` comments; keep exactly one, "
            "so that it is clear which task this is."
        )
    payload = found[0][len(METADATA_KEY):].strip()
    if len(payload) > MAX_METADATA_CHARS:
        raise TaskSpecError(
            f"The `agent_task_metadata` comment is {len(payload)} characters long; the limit is "
            f"{MAX_METADATA_CHARS}."
        )
    depth = json_depth(payload)
    if depth > MAX_METADATA_DEPTH:
        raise TaskSpecError(
            f"The `agent_task_metadata` JSON nests {depth} levels deep; the limit is {MAX_METADATA_DEPTH}."
        )
    try:
        value = json.loads(payload, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError, and ints longer than Python's digit limit
        where = f" ({exc.msg} at character {exc.pos})" if isinstance(exc, json.JSONDecodeError) else ""
        raise TaskSpecError(
            f"The `agent_task_metadata` comment is not valid JSON{where}. Write it as "
            '`<!-- agent_task_metadata {"task_id": "my-task-123"} -->`.'
        ) from None
    if not isinstance(value, dict):
        raise TaskSpecError(
            "The `agent_task_metadata` comment must hold a JSON object such as "
            '`{"task_id": "my-task-123"}`.'
        )
    return _clean_json(value)


def _clean_json(value: Any) -> Any:
    """Strip invisible characters that JSON escapes (``\\u200b``) smuggled past the body's cleaning.

    Control characters are kept, so that the checks on ``task_id`` still see and refuse them.
    """
    if isinstance(value, str):
        return strip_invisible(value) if not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value) else value
    if isinstance(value, list):
        return [_clean_json(v) for v in value]
    if isinstance(value, dict):
        return {_clean_json(k): _clean_json(v) for k, v in value.items()}
    return value


def json_depth(text: str) -> int:
    """The deepest nesting of ``[`` and ``{`` in JSON text (strings skipped), in one pass."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def render_metadata(metadata: Mapping[str, Any]) -> str:
    """Render the metadata comment so that no value can close the HTML comment early."""
    payload = json.dumps(dict(metadata), ensure_ascii=False, sort_keys=True)
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e")
    return f"<!-- agent_task_metadata {payload} -->"


def clean_instruction(section: str) -> str:
    """Drop surrounding blank lines; keep every other byte (patches need them)."""
    lines = section.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def body_hash(body: str) -> str:
    """A stable fingerprint of the body, to notice edits."""
    normalized = body.replace("\r\n", "\n").strip()
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()[:16]


def short_hash(text: str, length: int = 6) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def task_prefix(task_id: str) -> str:
    """The first 8 characters of the task id, made into a safe ref and file component.

    When the raw characters are not safe, a hash of the whole id is appended so
    that two hostile ids that clean up alike still get different names.
    """
    raw = task_id[:PREFIX_LEN]
    safe = _SAFE_REF_CHARS_RE.sub("-", raw)
    safe = re.sub(r"\.{2,}", ".", safe).strip(".-")
    if safe.endswith(".lock"):
        safe = safe[: -len(".lock")]
    if safe == raw and safe:
        return safe
    return f"{safe}-{short_hash(task_id)}" if safe else short_hash(task_id, 8)


def task_names(task: DispatchTask, *, disambiguate: bool = False) -> TaskNames:
    """Name the branch and trace file; ``disambiguate`` adds a hash of the full id."""
    stem = task.prefix
    if disambiguate:
        stem = f"{stem}-{short_hash(task.task_id)}"
    return TaskNames(
        branch=f"{BRANCH_PREFIX}{stem}",
        trace_path=f"{TRACE_DIR}/{stem}.md",
        disambiguated=disambiguate,
    )


def choose_names(task: DispatchTask, owner_of_primary: str | None) -> TaskNames:
    """Pick the task's names given which task id already owns the primary branch.

    Two ids sharing their first 8 characters (``test-task-1``, ``test-task-2``)
    would share ``agent-task-test-tas``. When the branch's PR (or trace file)
    names another task id, this task moves to a deterministic hashed branch.
    """
    collides = owner_of_primary is not None and owner_of_primary != task.task_id
    return task_names(task, disambiguate=collides)


def is_valid_ref_name(name: str) -> bool:
    """Check a branch name against git-check-ref-format's rules, without running git."""
    if not name or len(name) > 250 or name == "@" or name.startswith(("-", "/")):
        return False
    if name.endswith(("/", ".", ".lock")) or ".." in name or "@{" in name or "//" in name:
        return False
    if any(ord(c) < 0x20 or ord(c) == 0x7F or c in " ~^:?*[\\" for c in name):
        return False
    return all(part and not part.startswith(".") and not part.endswith(".lock") for part in name.split("/"))


def _require_task_id(metadata: Mapping[str, Any]) -> str:
    task_id = metadata.get("task_id")
    if not isinstance(task_id, str | int) or isinstance(task_id, bool) or not str(task_id).strip():
        raise TaskSpecError(
            'The metadata has no `task_id`. Add one, for example `{"task_id": "my-task-123"}`.'
        )
    text = str(task_id).strip()
    if len(text) > MAX_TASK_ID:
        raise TaskSpecError(
            f"The `task_id` is {len(text)} characters long; the limit is {MAX_TASK_ID}."
        )
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text):
        raise TaskSpecError("The `task_id` contains control characters. Use printable text only.")
    return text


def _scan_body(lines: tuple[Line, ...]) -> tuple[str | None, str | None]:
    """Find the Instruction section and the target line among visible lines outside fences.

    Two visible target lines that disagree are refused instead of picking one.
    """
    section: list[str] | None = None
    in_section = False
    target: str | None = None
    for line in lines:
        if not line.code:
            title = _heading_title(line.text)
            if title is not None:
                in_section = False
                if section is None and title.lower() == "instruction":
                    section, in_section = [], True
                continue
            value = _target_value(line.text)
            if value is not None:
                if target is not None and normalize_repo(value).lower() != normalize_repo(target).lower():
                    raise TaskSpecError(
                        f"The body has two `Target Repository:` lines (`{shorten(target)}` and "
                        f"`{shorten(value)}`). Keep one."
                    )
                target = target or value
                continue
        if in_section and section is not None:
            section.append(line.text)
    return ("\n".join(section) if section is not None else None), target


def _heading_title(line: str) -> str | None:
    """The title of a level-2 ATX heading (``## Title ##``), read with string operations only."""
    head = line[:MATCH_CHARS]
    stripped = head.lstrip(" ")
    if len(head) - len(stripped) > 3 or not stripped.startswith("##") or stripped.startswith("###"):
        return None
    title = stripped[2:].strip().rstrip("#").strip()
    return title or None


_TARGET_KEY_RE = re.compile(r"target[ _-]?repo(?:sitory)?", re.IGNORECASE)


def _target_value(line: str) -> str | None:
    """The value of a ``Target Repository: owner/name`` line (bold or italic markers allowed)."""
    head = line[:MATCH_CHARS]
    if ":" not in head:
        return None
    key, _, value = line.partition(":")
    key = key.strip().strip("*_").strip()
    if len(key) > 40 or not _TARGET_KEY_RE.fullmatch(key):
        return None
    value = value.strip().strip("*_").strip()
    return value or None


def _resolve_target(line_value: str | None, meta_value: Any) -> str:
    from_line = normalize_repo(line_value) if line_value else None
    from_meta: str | None = None
    if meta_value is not None:
        if not isinstance(meta_value, str):
            raise TaskSpecError("`target_repo` in the metadata must be a string such as `owner/name`.")
        from_meta = normalize_repo(meta_value)
    if from_line and from_meta and from_line.lower() != from_meta.lower():
        raise TaskSpecError(
            f"The body names two target repositories: `{from_line}` in the "
            f"`Target Repository:` line and `{from_meta}` in the metadata. Keep one."
        )
    target = from_line or from_meta
    if target is None:
        raise TaskSpecError(
            "The issue does not say which repository to change. Add a line "
            "`Target Repository: owner/name` below the instruction."
        )
    return target


def _optional_ref(metadata: Mapping[str, Any], key: str) -> str | None:
    value = metadata.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not is_valid_ref_name(value.strip()):
        raise TaskSpecError(
            f"`{key}` in the metadata is not a valid branch name: `{shorten(str(value))}`."
        )
    return value.strip()


def _optional_match(
    metadata: Mapping[str, Any], key: str, pattern: re.Pattern[str], expected: str
) -> str | None:
    value = metadata.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.match(value.strip()):
        raise TaskSpecError(
            f"`{key}` in the metadata must be {expected}; got `{shorten(str(value))}`."
        )
    return value.strip()


def task_id_of(body: str | None) -> str | None:
    """The `task_id` in a body's metadata, or None when there is none or it does not parse."""
    if not body:
        return None
    try:
        metadata = parse_metadata(body)
    except TaskSpecError:
        return None
    value = metadata.get("task_id") if metadata else None
    return str(value) if value is not None else None
