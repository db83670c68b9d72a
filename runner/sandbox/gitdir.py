"""Give a sandboxed command a throw-away git directory: HEAD, a copy of the index, no refs.

Its objects are its own (so a command may commit), with the real objects as a
read-only alternate. Everything here is read from the git directory's files;
no git process runs outside the workspace (:mod:`runner.steps.workspace`).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
#: What HEAD says when it names no commit yet (a fresh repository).
UNBORN = "ref: refs/heads/main"


def prepare_sandbox_git(git_dir: Path, dest: Path, *, objects_mount: Path) -> Path:
    """Build the sandbox's git directory in ``dest``; return the real objects directory to mount."""
    common = common_dir(git_dir)
    (dest / "objects" / "info").mkdir(parents=True)
    (dest / "refs" / "heads").mkdir(parents=True)
    (dest / "refs" / "tags").mkdir(parents=True)
    (dest / "HEAD").write_text((head_commit(git_dir, common) or UNBORN) + "\n", encoding="utf-8")
    (dest / "config").write_text(
        "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n", encoding="utf-8"
    )
    (dest / "objects" / "info" / "alternates").write_text(f"{objects_mount}\n", encoding="utf-8")
    if (git_dir / "index").is_file():
        shutil.copyfile(git_dir / "index", dest / "index")
    return (common / "objects").resolve()


def common_dir(git_dir: Path) -> Path:
    """The repository's shared directory: a worktree's ``commondir`` names it; else the git dir itself."""
    text = _read(git_dir / "commondir")
    if not text:
        return git_dir
    common = Path(text.strip())
    return common if common.is_absolute() else (git_dir / common)


def head_commit(git_dir: Path, common: Path) -> str | None:
    """The commit HEAD points at (detached, a loose ref or a packed one), or None when it is unborn."""
    head = (_read(git_dir / "HEAD") or "").strip()
    if _SHA.fullmatch(head):
        return head
    ref = head.removeprefix("ref: ").strip() if head.startswith("ref: ") else None
    if not ref or ".." in ref:
        return None
    for where in (git_dir, common):
        loose = (_read(where / ref) or "").strip()
        if _SHA.fullmatch(loose):
            return loose
    for line in (_read(common / "packed-refs") or "").splitlines():
        sha, _, name = line.partition(" ")
        if name.strip() == ref and _SHA.fullmatch(sha):
            return sha
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None
