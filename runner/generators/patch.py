"""Apply the fenced ``diff``/``patch`` blocks of an instruction, deterministically.

This is the default generator: a person (or an upstream tool) writes the exact
change as a unified diff in the issue, and the runner applies it with
``git apply``. A block that is already applied (a re-run after a crash) is
skipped, so the generator is idempotent.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from runner.errors import GeneratorError, WorkspaceError
from runner.generators.base import Changes, GenerationContext
from runner.steps.git import run_git
from runner.steps.guard import check_patch_modes

_FENCE_RE = re.compile(
    r"^(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>diff|patch|udiff)[^\n]*\n(?P<body>.*?)^(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL | re.IGNORECASE,
)


def extract_patches(instruction: str) -> list[str]:
    """The bodies of fenced blocks tagged diff or patch, in order."""
    return [m.group("body") for m in _FENCE_RE.finditer(instruction)]


class PatchGenerator:
    """Apply each patch block with ``git apply``; no blocks means no change."""

    name = "patch"

    def generate(self, ctx: GenerationContext) -> Changes:
        # A feedback round applies the blocks of the feedback; the instruction's are on the branch already.
        patches = extract_patches(ctx.round.feedback if ctx.round else ctx.instruction)
        if not patches:
            reason = "The instruction has no `diff` or `patch` block, so only the trace file was written."
            return Changes(summary=reason, generator=self.name, no_change=reason)
        repo = _Apply(ctx.worktree, ctx.git_dir)
        touched: list[str] = []
        applied = skipped = 0
        for body in patches:
            check_patch_modes(body)
        for index, body in enumerate(patches, start=1):
            ctx.report_progress(f"applying patch block {index}/{len(patches)}")
            with tempfile.NamedTemporaryFile("w", suffix=".patch", delete=False, encoding="utf-8") as fh:
                fh.write(body if body.endswith("\n") else body + "\n")
                patch_file = Path(fh.name)
            try:
                files = _numstat_files(repo, patch_file)
                if _applies(repo, patch_file):
                    repo.apply("--whitespace=nowarn", str(patch_file))
                    applied += 1
                elif _applies(repo, patch_file, reverse=True):
                    skipped += 1  # already applied by an earlier attempt
                else:
                    raise GeneratorError(
                        f"Patch block {index} does not apply to the target repository: "
                        f"{_check_error(repo, patch_file)}",
                        hint="Rebase the patch on the current base branch, update the issue, "
                        "then remove the `agent-failed` label.",
                    )
            finally:
                patch_file.unlink(missing_ok=True)
            touched += [f for f in files if f not in touched]
        summary = f"Applied {applied} patch block(s)"
        if skipped:
            summary += f"; {skipped} were already applied"
        return Changes(summary=summary + ".", files=tuple(touched), generator=self.name)


def _applies(repo: _Apply, patch_file: Path, *, reverse: bool = False) -> bool:
    args = ["--check", "--whitespace=nowarn"] + (["--reverse"] if reverse else [])
    try:
        repo.apply(*args, str(patch_file))
        return True
    except WorkspaceError:
        return False


def _check_error(repo: _Apply, patch_file: Path) -> str:
    try:
        repo.apply("--check", str(patch_file))
    except WorkspaceError as exc:
        return str(exc).split(": ", 1)[-1][-300:]
    return "unknown reason"


def _numstat_files(repo: _Apply, patch_file: Path) -> list[str]:
    try:
        out = repo.apply("--numstat", "-z", str(patch_file))
    except WorkspaceError as exc:
        raise GeneratorError(
            f"A patch block is not a valid unified diff: {str(exc).split(': ', 1)[-1][-200:]}",
            hint="Paste the output of `git diff` inside a ```diff fence, then remove the `agent-failed` label.",
        ) from None
    return [entry.split("\t")[-1] for entry in out.split("\0") if entry.count("\t") >= 2]


class _Apply:
    """`git apply` in the worktree, through the workspace's one git layer."""

    def __init__(self, worktree: Path, git_dir: Path | None) -> None:
        self.worktree = worktree
        self.env = {"GIT_DIR": str(git_dir), "GIT_WORK_TREE": str(worktree)} if git_dir else {}

    def apply(self, *args: str) -> str:
        return run_git(self.worktree, "apply", *args, env=self.env, what="apply the patch")


def build(settings: Any) -> PatchGenerator:
    return PatchGenerator()
