"""The guard refuses every hostile path on a real directory, and lets ordinary writes through."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.errors import GuardRefused
from runner.steps.guard import check_tree, normalize_path, resolve_inside, safe_read, safe_write

LIMIT = 1_000


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A worktree with a .git dir, a workflow, and symlinks inside and outside."""
    root = tmp_path / "repo"
    (root / ".git" / "hooks").mkdir(parents=True)
    (root / ".github" / "workflows").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("print('hi')\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "out").symlink_to(outside)  # directory symlink leaving the tree
    (root / "secret-link.txt").symlink_to(outside / "secret.txt")  # file symlink leaving the tree
    (root / "inner-link.py").symlink_to(root / "src" / "app.py")  # file symlink staying inside
    (root / "gitdir").symlink_to(root / ".git")  # symlink into .git
    (root / "wf").symlink_to(root / ".github" / "workflows")  # symlink into workflows
    return root


HOSTILE = [
    ("/etc/passwd", "absolute"),
    ("~/x", "absolute"),
    ("C:/x", "absolute"),
    ("../x", "`..`"),
    ("src/../../x", "`..`"),
    ("a/b/../../../x", "`..`"),
    (".git/hooks/pre-commit", "`.git`"),
    (".GIT/config", "`.git`"),
    ("sub/.git/config", "`.git`"),
    (".git", "`.git`"),
    (".git./config", "`.git`"),
    (".git /config", "`.git`"),
    ("GIT~1/config", "`.git`"),
    (".github/workflows/x.yml", "workflows"),
    (".GitHub/Workflows/x.yml", "workflows"),
    ("./.github//workflows/ci.yml", "workflows"),
    ("a\x00b", "NUL"),
    ("src\\app.py", "backslashes"),
    ("", "without a path"),
    (".", "root"),
    ("out/evil.txt", "symlink"),
    ("out/../x", "`..`"),
    ("gitdir/hooks/pre-commit", "`.git`"),
    ("wf/x.yml", "workflows"),
    ("secret-link.txt", "symlink"),
    ("inner-link.py", "symlink"),
    ("src", "directory"),
]


@pytest.mark.parametrize(("path", "reason"), HOSTILE)
def test_safe_write_refuses_hostile_paths(tree: Path, path: str, reason: str) -> None:
    before = sorted(p.as_posix() for p in tree.parent.rglob("*"))
    with pytest.raises(GuardRefused) as info:
        safe_write(tree, path, "evil", max_bytes=LIMIT, allow_workflows=False)
    assert reason in str(info.value)
    assert str(info.value).startswith("Refused")
    assert sorted(p.as_posix() for p in tree.parent.rglob("*")) == before
    assert (tree.parent / "outside" / "secret.txt").read_text() == "secret"


@pytest.mark.parametrize(
    ("path", "expected"),
    [("a.txt", "a.txt"), ("./src//new.py", "src/new.py"), ("deep/er/file.md", "deep/er/file.md"),
     ("src/app.py", "src/app.py"), (".github/CODEOWNERS", ".github/CODEOWNERS"), (".gitignore", ".gitignore"),
     ("docs/.git-blame-ignore-revs", "docs/.git-blame-ignore-revs")],
)
def test_safe_write_writes_inside(tree: Path, path: str, expected: str) -> None:
    assert safe_write(tree, path, "ok\n", max_bytes=LIMIT, allow_workflows=False) == expected
    assert (tree / expected).read_text() == "ok\n"


def test_workflows_are_allowed_when_configured(tree: Path) -> None:
    assert safe_write(tree, ".github/workflows/ci.yml", "on: push\n", max_bytes=LIMIT, allow_workflows=True)
    assert (tree / ".github/workflows/ci.yml").read_text() == "on: push\n"


def test_size_limit_counts_bytes(tree: Path) -> None:
    safe_write(tree, "ok.bin", b"x" * LIMIT, max_bytes=LIMIT, allow_workflows=False)
    with pytest.raises(GuardRefused, match="1001 bytes is over the 1000-byte limit"):
        safe_write(tree, "big.bin", b"x" * (LIMIT + 1), max_bytes=LIMIT, allow_workflows=False)
    with pytest.raises(GuardRefused, match="over the"):
        safe_write(tree, "big.txt", "é" * 501, max_bytes=LIMIT, allow_workflows=False)
    assert not (tree / "big.bin").exists() and not (tree / "big.txt").exists()


def test_safe_read_follows_only_inner_symlinks(tree: Path) -> None:
    assert safe_read(tree, "inner-link.py") == b"print('hi')\n"
    assert safe_read(tree, "src/app.py") == b"print('hi')\n"
    for path in ("secret-link.txt", "out/secret.txt", ".git/config", "../outside/secret.txt"):
        with pytest.raises(GuardRefused):
            safe_read(tree, path)
    with pytest.raises(GuardRefused, match="not a regular file"):
        safe_read(tree, "src")


def test_resolve_inside_returns_absolute_path(tree: Path) -> None:
    assert resolve_inside(tree, "src/app.py") == tree.resolve() / "src" / "app.py"
    assert normalize_path("./a//b/./c") == "a/b/c"


def test_check_tree_accepts_ordinary_changes(tree: Path) -> None:
    (tree / "src" / "new.py").write_text("x = 1\n")
    check_tree(tree, ["src/new.py", "src/app.py", "deleted.txt", "inner-link.py"], False, LIMIT)


def test_check_tree_lists_every_problem(tree: Path) -> None:
    (tree / "link-out").symlink_to("/etc/passwd")
    (tree / "link-git").symlink_to(".git/hooks")
    (tree / "huge.txt").write_bytes(b"x" * (LIMIT + 1))
    (tree / ".github/workflows/ci.yml").write_text("on: push\n")
    with pytest.raises(GuardRefused) as info:
        check_tree(tree, ["link-out", "link-git", "huge.txt", ".github/workflows/ci.yml", ".git/config",
                          "src/app.py"], False, LIMIT)
    message = str(info.value)
    for fragment in ("`link-out`: it points outside", "`link-git`: it points into `.git`", "`huge.txt` is 1001 bytes",
                     "`.github/workflows/` are not allowed", "under `.git`"):
        assert fragment in message
    assert "src/app.py" not in message


def test_check_tree_allows_workflows_when_configured(tree: Path) -> None:
    (tree / ".github/workflows/ci.yml").write_text("on: push\n")
    check_tree(tree, [".github/workflows/ci.yml"], True, LIMIT)


def test_write_does_not_follow_a_symlink_swapped_in(tree: Path, tmp_path: Path) -> None:
    """O_NOFOLLOW: even a symlink planted at the leaf is never written through."""
    target = tmp_path / "outside" / "planted.txt"
    target.write_text("untouched")
    os.symlink(target, tree / "planted.txt")
    with pytest.raises(GuardRefused):
        safe_write(tree, "planted.txt", "evil", max_bytes=LIMIT, allow_workflows=False)
    assert target.read_text() == "untouched"
