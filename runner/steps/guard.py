"""Keep every write inside the worktree and away from what a change may never touch.

A model, a plugin or an external CLI may ask to write anywhere. Every write on
a model's behalf goes through :func:`safe_write`; changes made by a tool we do
not control are checked afterwards with :func:`check_tree`. Both refuse with a
:class:`~runner.errors.GuardRefused` whose message can be posted as it is:

- absolute paths, ``..`` escapes, NUL bytes and backslashes;
- anything under ``.git`` (in any case, also a ``.git`` file, and the NTFS/HFS
  aliases git itself refuses: ``.git.``, ``.git `` and ``git~1``);
- ``.github/workflows/`` unless workflow changes are allowed;
- paths that reach outside the worktree through a symlink, and replacing a
  symlink (a write would land wherever it points);
- contents larger than the configured limit, and a whole change with more
  bytes or files than ``MAX_CHANGE_BYTES`` / ``MAX_CHANGED_FILES``;
- setuid, setgid and sticky modes (git would silently store them as 755).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from runner.errors import GuardRefused

WORKFLOWS_DIR = ".github/workflows"
SPECIAL_MODE_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX
#: The modes git stores for files, links and submodules; anything else is refused in a patch.
GIT_MODES = frozenset({0o100644, 0o100755, 0o120000, 0o160000, 0o040000})


def normalize_path(rel_path: str, *, allow_workflows: bool = False) -> str:
    """Check a repository-relative path as text and return it as ``a/b/c``.

    This is the pure half of the guard: it never touches the file system.
    """
    if not isinstance(rel_path, str) or not rel_path.strip():
        raise GuardRefused("Refused a file operation without a path; name a file inside the repository.")
    shown = _show(rel_path)
    if "\x00" in rel_path:
        raise GuardRefused(f"Refused the path {shown}: it contains a NUL byte.")
    if "\\" in rel_path:
        raise GuardRefused(f"Refused the path {shown}: use forward slashes, not backslashes.")
    if rel_path.startswith(("/", "~")) or (len(rel_path) > 1 and rel_path[1] == ":"):
        raise GuardRefused(f"Refused the path {shown}: it is absolute; use a path relative to the repository root.")
    parts = [p for p in rel_path.split("/") if p not in ("", ".")]
    if not parts:
        raise GuardRefused(f"Refused the path {shown}: it names the repository root, not a file.")
    if ".." in parts:
        raise GuardRefused(f"Refused the path {shown}: `..` would leave the repository.")
    _check_parts(parts, shown, allow_workflows=allow_workflows)
    return "/".join(parts)


def resolve_inside(worktree: Path, rel_path: str, *, allow_workflows: bool = True) -> Path:
    """Return the absolute path for ``rel_path``, refusing anything that leaves the worktree.

    The parent chain is resolved, so a symlinked directory that points outside
    (or into ``.git``) is refused; the last component itself is not followed.
    """
    norm = normalize_path(rel_path, allow_workflows=allow_workflows)
    root = worktree.resolve()
    target = root / norm
    parent = target.parent.resolve()
    if not parent.is_relative_to(root):
        raise GuardRefused(
            f"Refused the path {_show(rel_path)}: a symlink in it points outside the repository."
        )
    real_rel = (parent / target.name).relative_to(root)
    if real_rel.parts:
        _check_parts(list(real_rel.parts), _show(rel_path), allow_workflows=allow_workflows)
    return parent / target.name


def safe_read(worktree: Path, rel_path: str, *, max_bytes: int | None = None) -> bytes:
    """Read a file inside the worktree; a symlink is followed only if it stays inside."""
    path = resolve_inside(worktree, rel_path)
    root = worktree.resolve()
    if path.is_symlink() and not path.resolve().is_relative_to(root):
        raise GuardRefused(f"Refused to read {_show(rel_path)}: it is a symlink pointing outside the repository.")
    real = path.resolve()
    if real.is_relative_to(root) and real != root:
        _check_parts(list(real.relative_to(root).parts), _show(rel_path), allow_workflows=True)
    if not real.is_file():
        raise GuardRefused(f"Refused to read {_show(rel_path)}: it is not a regular file.")
    if max_bytes is not None and real.stat().st_size > max_bytes:
        raise GuardRefused(
            f"Refused to read {_show(rel_path)}: it is {real.stat().st_size} bytes, over the {max_bytes}-byte limit."
        )
    return real.read_bytes()


def safe_write(
    worktree: Path,
    rel_path: str,
    content: str | bytes,
    *,
    max_bytes: int,
    allow_workflows: bool,
) -> str:
    """Write ``content`` to ``rel_path`` inside the worktree and return the normalized path."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    norm = normalize_path(rel_path, allow_workflows=allow_workflows)
    if len(data) > max_bytes:
        raise GuardRefused(
            f"Refused to write {norm}: {len(data)} bytes is over the {max_bytes}-byte limit per file."
        )
    path = resolve_inside(worktree, norm, allow_workflows=allow_workflows)
    if path.is_symlink():
        raise GuardRefused(f"Refused to write {norm}: it is a symlink, and writing would follow it.")
    if path.is_dir():
        raise GuardRefused(f"Refused to write {norm}: it is a directory.")
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_NOFOLLOW closes the gap between the check above and the open.
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise GuardRefused(f"Refused to write {norm}: {exc.strerror or exc}.") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return norm


def check_tree(
    worktree: Path,
    changed_paths: Iterable[str],
    allow_workflows: bool,
    max_bytes: int,
    *,
    max_change_bytes: int | None = None,
    max_changed_files: int | None = None,
) -> None:
    """Check changes someone else made (an external CLI, a patch) and refuse the unsafe ones.

    Every problem is listed in one message, so a person sees them all at once.
    A deleted path is checked as a path only.
    """
    root = worktree.resolve()
    paths = list(changed_paths)
    problems: list[str] = []
    if max_changed_files is not None and len(paths) > max_changed_files:
        problems.append(f"it changes {len(paths)} files, over the limit of {max_changed_files} "
                        "(MAX_CHANGED_FILES).")
    total = 0
    for rel_path in paths:
        try:
            path = resolve_inside(worktree, rel_path, allow_workflows=allow_workflows)
            if path.is_symlink():
                _check_symlink(root, path, rel_path)
            elif path.exists():
                info = path.lstat()
                total += info.st_size
                if info.st_mode & SPECIAL_MODE_BITS:
                    problems.append(f"{_show(rel_path)} has mode {stat.S_IMODE(info.st_mode):o}; setuid, "
                                    "setgid and sticky modes are not allowed.")
                if path.is_file() and info.st_size > max_bytes:
                    problems.append(f"{_show(rel_path)} is {info.st_size} bytes, over the {max_bytes}-byte limit.")
        except GuardRefused as exc:
            problems.append(exc.message.removeprefix("Refused "))
    if max_change_bytes is not None and total > max_change_bytes:
        problems.append(f"the whole change is {total} bytes, over the limit of {max_change_bytes} "
                        "(MAX_CHANGE_BYTES).")
    if problems:
        listed = "; ".join(problems)
        raise GuardRefused(f"Refused the change because it touches what it may not: {listed}")


def check_patch_modes(patch: str) -> None:
    """Refuse a patch that asks for a mode git would not store as asked (``git apply`` turns 104755 into 755).

    Only the mode header lines are read (``old mode``, ``new mode``, ``new file
    mode``, ``deleted file mode``), each capped before parsing.
    """
    for line in patch.split("\n"):
        head = line[:80]
        for prefix in ("new file mode ", "deleted file mode ", "old mode ", "new mode "):
            if not head.startswith(prefix):
                continue
            text = head[len(prefix):].strip()
            octal = 0 < len(text) <= 7 and all(c in "01234567" for c in text)
            mode = int(text, 8) if octal else -1
            if mode > 0 and mode & SPECIAL_MODE_BITS:
                raise GuardRefused(f"Refused the patch: it asks for mode {text}; setuid, setgid and sticky "
                                   "modes are not allowed.")
            if mode not in GIT_MODES:
                raise GuardRefused(f"Refused the patch: `{prefix}{_show(text)[1:-1]}` is not a mode git "
                                   "stores (use 100644 or 100755).")
            break


def _check_symlink(root: Path, path: Path, rel_path: str) -> None:
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise GuardRefused(f"Refused the symlink {_show(rel_path)}: it points outside the repository.")
    inner = resolved.relative_to(root).parts
    if any(_is_git_name(part) for part in inner):
        raise GuardRefused(f"Refused the symlink {_show(rel_path)}: it points into `.git`.")


def _check_parts(parts: list[str], shown: str, *, allow_workflows: bool) -> None:
    if any(_is_git_name(part) for part in parts):
        raise GuardRefused(f"Refused the path {shown}: nothing under `.git` may be changed.")
    lowered = "/".join(parts).casefold()
    if not allow_workflows and (lowered + "/").startswith(WORKFLOWS_DIR + "/"):
        raise GuardRefused(
            f"Refused the path {shown}: changes to `{WORKFLOWS_DIR}/` are not allowed "
            "(set ALLOW_WORKFLOW_CHANGES=true to permit them)."
        )


def _is_git_name(part: str) -> bool:
    # Same aliases as git's own verify_path (is_ntfs_dotgit / is_hfs_dotgit).
    folded = part.casefold().rstrip(". ").replace("\u200c", "").replace("\u200d", "")
    return folded in {".git", "git~1"}


def _show(rel_path: str) -> str:
    text = rel_path.replace("\x00", "\\0").replace("\n", "\\n").replace("`", "'")
    if len(text) > 120:
        text = text[:119] + "…"
    return f"`{text}`"
