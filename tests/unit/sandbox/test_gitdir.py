"""The sandbox's git directory is read from files, and names the same commit git does."""

from __future__ import annotations

import subprocess
from pathlib import Path

from runner.sandbox.gitdir import UNBORN, common_dir, head_commit, prepare_sandbox_git


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_a_worktrees_head_and_objects_match_what_git_says(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "a.txt").write_text("a\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-qm", "one")
    _git(repo, "worktree", "add", "-q", "--detach", str(tmp_path / "wt"))
    _git(repo, "pack-refs", "--all")  # the branch is now only in packed-refs
    wt_git = Path(_git(tmp_path / "wt", "rev-parse", "--absolute-git-dir"))

    assert common_dir(wt_git).resolve() == (repo / ".git").resolve()
    assert head_commit(wt_git, common_dir(wt_git)) == _git(tmp_path / "wt", "rev-parse", "HEAD")
    assert head_commit(repo / ".git", repo / ".git") == _git(repo, "rev-parse", "HEAD")  # packed ref

    objects = prepare_sandbox_git(wt_git, tmp_path / "mini", objects_mount=Path("/objects"))
    assert objects == (repo / ".git" / "objects").resolve()
    assert (tmp_path / "mini" / "HEAD").read_text().strip() == _git(repo, "rev-parse", "HEAD")
    assert (tmp_path / "mini" / "objects" / "info" / "alternates").read_text() == "/objects\n"


def test_an_unborn_or_hostile_head_names_no_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    assert head_commit(repo / ".git", repo / ".git") is None
    (repo / ".git" / "HEAD").write_text("ref: ../../../etc/passwd\n")
    assert head_commit(repo / ".git", repo / ".git") is None
    prepare_sandbox_git(repo / ".git", tmp_path / "mini", objects_mount=Path("/objects"))
    assert (tmp_path / "mini" / "HEAD").read_text().strip() == UNBORN
