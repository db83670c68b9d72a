"""Record each dispatch task in the target repository's CHANGELOG.md, under "Unreleased".

An example agent-runner generator plugin. The first line of the instruction
becomes one bullet in the ``## Unreleased`` section of ``CHANGELOG.md``; the
file and the section are created when they are missing. The generator is
deterministic: running the same task again finds its bullet already there and
changes nothing, so a re-run adds no commit.

It is registered in ``pyproject.toml`` under the ``agent_runner.generators``
entry point group, and enabled with ``GENERATORS=changelog`` (or in a chain,
``GENERATORS=changelog,patch``).
"""

from __future__ import annotations

import re
from typing import Any

from runner.errors import GeneratorError, GeneratorTimeout
from runner.generators import Changes, GenerationContext
from runner.steps.guard import resolve_inside, safe_read, safe_write

__all__ = ["CHANGELOG", "MAX_ENTRY_CHARS", "ChangelogGenerator", "add_entry", "build", "changelog_entry"]

CHANGELOG = "CHANGELOG.md"
HEADING = "## Unreleased"
MAX_ENTRY_CHARS = 200

_HINT = (
    "Start the instruction with a one-line summary of the change (at most "
    f"{MAX_ENTRY_CHARS} characters), then remove the `agent-failed` label."
)
_FENCE_RE = re.compile(r"^(`{3,}|~{3,})")
_MARKER_RE = re.compile(r"^(?:[-*+]\s+|\d+[.)]\s+|#{1,6}\s+)")  # a list marker or heading prefix
_UNRELEASED_RE = re.compile(r"^##\s+\[?unreleased\]?\s*$", re.IGNORECASE)
_SECTION_END_RE = re.compile(r"^#{1,2}\s")  # the next `#` or `##` heading ends the section


# -- the pure core: text in, text out ------------------------------------------


def changelog_entry(instruction: str) -> str:
    """Turn the instruction's first line into the text of one bullet, or say why it cannot be."""
    for raw in instruction.splitlines():
        line = raw.strip()
        if not line:
            continue
        if _FENCE_RE.match(line):
            raise GeneratorError(
                "The instruction starts with a code block, so the `changelog` generator has no "
                "sentence to record in CHANGELOG.md.",
                hint=_HINT,
            )
        entry = " ".join(_MARKER_RE.sub("", line, count=1).split())
        if len(entry) > MAX_ENTRY_CHARS:
            raise GeneratorError(
                f"The first line of the instruction is {len(entry)} characters long; the `changelog` "
                f"generator records at most {MAX_ENTRY_CHARS} characters per entry.",
                hint=_HINT,
            )
        if entry:
            return entry
    raise GeneratorError("The instruction is empty, so the `changelog` generator has nothing to record.",
                         hint=_HINT)


def add_entry(changelog: str | None, entry: str) -> str:
    """Return the changelog with ``- entry`` under "Unreleased"; unchanged if it is already listed."""
    bullet = f"- {entry}"
    if changelog is None or not changelog.strip():
        return f"# Changelog\n\n{HEADING}\n\n{bullet}\n"
    newline = "\r\n" if "\r\n" in changelog else "\n"
    lines = changelog.splitlines()
    start = next((i for i, line in enumerate(lines) if _UNRELEASED_RE.match(line.strip())), None)
    if start is None:
        # A new section goes above the newest release (the first `##`), or at the end.
        first = next((i for i, line in enumerate(lines) if line.startswith("## ")), None)
        if first is None:
            lines = [*_rstrip_blank(lines), "", HEADING, "", bullet]
        else:
            lines = [*lines[:first], HEADING, "", bullet, "", *lines[first:]]
        return newline.join(lines) + newline
    end = next((i for i in range(start + 1, len(lines)) if _SECTION_END_RE.match(lines[i])), len(lines))
    section = lines[start + 1:end]
    if any(line.strip() == bullet for line in section):
        return changelog
    filled = [i for i, line in enumerate(section) if line.strip()]
    if filled:
        at = start + 1 + filled[-1] + 1
        insert = [bullet]
    else:
        at = start + 1
        insert = ["", bullet]
    if at < len(lines) and lines[at].strip():
        insert.append("")  # keep a blank line before the next heading
    lines[at:at] = insert
    return newline.join(lines) + newline


def _rstrip_blank(lines: list[str]) -> list[str]:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


# -- the generator: the I/O edge ---------------------------------------------------


class ChangelogGenerator:
    """Add the instruction's first line to CHANGELOG.md; the runner commits and publishes it."""

    name = "changelog"

    def __init__(self, *, path: str = CHANGELOG, max_file_bytes: int = 1_000_000) -> None:
        self.path = path
        self.max_file_bytes = max_file_bytes

    def generate(self, ctx: GenerationContext) -> Changes:
        self._check_time(ctx)
        entry = changelog_entry(ctx.instruction)
        ctx.report_progress(f"adding an entry to {self.path}")
        current = self._read(ctx)
        updated = add_entry(current, entry)
        if updated == current:
            ctx.log.info("changelog entry already present", path=self.path)
            already = f"{self.path} already lists “{entry}” under Unreleased."
            return Changes(summary=already, generator=self.name, no_change=already)
        self._check_time(ctx)
        written = safe_write(ctx.worktree, self.path, updated, max_bytes=self.max_file_bytes,
                             allow_workflows=False)
        ctx.log.info("changelog entry added", path=written, created=current is None)
        return Changes(
            summary=f"Added “{entry}” to {written} under Unreleased.",
            files=(written,),
            generator=self.name,
            notes=(f"Created {written}, which did not exist.",) if current is None else (),
        )

    def _read(self, ctx: GenerationContext) -> str | None:
        path = resolve_inside(ctx.worktree, self.path)
        if not path.exists() and not path.is_symlink():
            return None
        data = safe_read(ctx.worktree, self.path, max_bytes=self.max_file_bytes)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise GeneratorError(
                f"{self.path} in the target repository is not UTF-8 text, so the `changelog` "
                "generator cannot add to it.",
                hint=f"Convert {self.path} to UTF-8, then remove the `agent-failed` label.",
            ) from None

    def _check_time(self, ctx: GenerationContext) -> None:
        if ctx.seconds_left() <= 0:
            raise GeneratorTimeout("The `changelog` generator reached its deadline before it could write.")


def build(settings: Any) -> ChangelogGenerator:
    """The entry point: the runner calls it once at start-up with its validated Settings."""
    return ChangelogGenerator(max_file_bytes=settings.max_file_bytes)
