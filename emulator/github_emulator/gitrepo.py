"""Read and write the bare repositories that back the emulator's branches and files.

Git is the source of truth for refs and content, so the REST answers
(branches, refs, contents, PR head shas) always agree with what a client
pushed over smart HTTP. Every git process runs with system and global
config switched off, so the host's settings never leak in.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import EmulatorError

GIT = "git"


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return an environment that isolates git from the user's and the system's config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
    })
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class TreeEntry:
    """One row of ``git ls-tree -l``."""

    mode: str
    type: str  # "blob" | "tree" | "commit"
    sha: str
    size: int
    path: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    tree: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    author_date: str
    committer_name: str
    committer_email: str
    committer_date: str
    message: str


@dataclass(frozen=True)
class DiffStats:
    """What a pull request's head adds over its base, as GitHub counts it."""

    commits: int
    additions: int
    deletions: int
    changed_files: int


@dataclass(frozen=True)
class Identity:
    name: str
    email: str

    def env(self) -> dict[str, str]:
        return {
            "GIT_AUTHOR_NAME": self.name, "GIT_AUTHOR_EMAIL": self.email,
            "GIT_COMMITTER_NAME": self.name, "GIT_COMMITTER_EMAIL": self.email,
        }


class BareRepo:
    """A bare repository on disk, read and written with plumbing commands only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _git(self, *args: str, env: Mapping[str, str] | None = None,
             check: bool = True) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(
            [GIT, "--git-dir", str(self.path), *args],
            capture_output=True, env=git_env(env), check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace')}")
        return proc

    @classmethod
    def create(
        cls, path: Path, *, default_branch: str, files: Mapping[str, str | bytes] | None,
        author: Identity, message: str = "Initial commit",
    ) -> BareRepo:
        """Make a bare repository; unless ``files`` is ``None``, commit them on the default branch."""
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [GIT, "init", "--quiet", "--bare", f"--initial-branch={default_branch}", str(path)],
            check=True, capture_output=True, env=git_env(),
        )
        repo = cls(path)
        if files is None:
            return repo
        with tempfile.TemporaryDirectory(prefix="emu-init-") as tmp:
            tree = Path(tmp, "tree")
            for rel, content in files.items():
                target = tree / rel
                if tree.resolve() not in target.resolve().parents:
                    raise ValueError(f"file path escapes the repository: {rel!r}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content.encode() if isinstance(content, str) else content)
            env = {**author.env(), "GIT_INDEX_FILE": str(Path(tmp, "index")), "GIT_WORK_TREE": str(tree)}
            repo._git("add", "--all", env=env)
            tree_sha = repo._git("write-tree", env=env).stdout.decode().strip()
            sha = repo._git("commit-tree", tree_sha, "-m", message, env=env).stdout.decode().strip()
        repo._git("update-ref", f"refs/heads/{default_branch}", sha)
        return repo

    def rev_parse(self, rev: str) -> str | None:
        """Resolve a branch, tag or sha to a commit sha, or ``None`` when it does not exist."""
        if not rev or rev.startswith("-"):
            return None
        proc = self._git("rev-parse", "--verify", "--quiet", "--end-of-options",
                         f"{rev}^{{commit}}", check=False)
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def delete_ref(self, refname: str) -> bool:
        """Delete a ref; False when it did not exist."""
        if self.rev_parse(refname) is None:
            return False
        self._git("update-ref", "-d", refname)
        return True

    def branch_sha(self, branch: str) -> str | None:
        return self.rev_parse(f"refs/heads/{branch}")

    def branch_shas(self, *branches: str) -> dict[str, str | None]:
        """Where each branch points, ``None`` for a missing one: one git process for all of them."""
        wanted = {f"refs/heads/{b}": b for b in branches if b and not b.startswith("-")}
        found: dict[str, str | None] = dict.fromkeys(branches)
        if wanted:
            out = self._git("for-each-ref", "--format=%(refname) %(objectname)", "--", *wanted).stdout.decode()
            for line in out.splitlines():
                ref, _, sha = line.partition(" ")
                if ref in wanted:  # a pattern also matches refs below it (refs/heads/a/b for a)
                    found[wanted[ref]] = sha
        return found

    def branches(self) -> dict[str, str]:
        out = self._git("for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
        return dict(line.split(" ", 1) for line in out.stdout.decode().splitlines())

    def entry(self, ref: str, path: str) -> TreeEntry | None:
        """Describe ``path`` at ``ref`` (``""`` is the root tree), or ``None`` when missing."""
        sha = self.rev_parse(ref)
        if sha is None:
            return None
        path = path.strip("/")
        if not path:
            tree = self._git("rev-parse", f"{sha}^{{tree}}").stdout.decode().strip()
            return TreeEntry("040000", "tree", tree, 0, "")
        rows = self._ls_tree(sha, path)
        return rows[0] if rows else None

    def list_dir(self, ref: str, path: str) -> list[TreeEntry]:
        sha = self.rev_parse(ref)
        prefix = path.strip("/")
        return self._ls_tree(sha, f"{prefix}/" if prefix else "") if sha else []

    def _ls_tree(self, commit: str, path: str) -> list[TreeEntry]:
        args = ["ls-tree", "-l", "-z", commit, "--"] + ([path] if path else [])
        rows = []
        for record in self._git(*args).stdout.decode().split("\0"):
            if not record:
                continue
            meta, name = record.split("\t", 1)
            mode, kind, sha, size = meta.split()
            rows.append(TreeEntry(mode, kind, sha, int(size) if size != "-" else 0, name))
        return rows

    def read_blob(self, sha: str) -> bytes:
        return self._git("cat-file", "blob", sha).stdout

    def read_file(self, ref: str, path: str) -> bytes | None:
        found = self.entry(ref, path)
        return self.read_blob(found.sha) if found and found.type == "blob" else None

    def commit(self, sha: str) -> CommitInfo:
        fmt = "%H%x00%T%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B"
        fields = self._git("show", "-s", f"--format={fmt}", sha).stdout.decode().split("\0")
        return CommitInfo(
            sha=fields[0], tree=fields[1], parents=tuple(fields[2].split()),
            author_name=fields[3], author_email=fields[4], author_date=fields[5],
            committer_name=fields[6], committer_email=fields[7], committer_date=fields[8],
            message=fields[9].rstrip("\n"),
        )

    def diff_stats(self, base_sha: str, head_sha: str) -> DiffStats:
        """Commits on ``head_sha`` not on ``base_sha``, and the diff from their merge base."""
        commits = int(self._git("rev-list", "--count", f"{base_sha}..{head_sha}").stdout.decode().strip() or 0)
        added = deleted = files = 0
        for line in self._git("diff", "--numstat", f"{base_sha}...{head_sha}").stdout.decode().splitlines():
            plus, minus, _ = line.split("\t", 2)
            added += int(plus) if plus.isdigit() else 0  # binary files count as "-"
            deleted += int(minus) if minus.isdigit() else 0
            files += 1
        return DiffStats(commits, added, deleted, files)

    def diff(self, base: str, head: str, path: str) -> str:
        """The unified diff of one path between two commits (merge-base to head, as a PR shows)."""
        proc = self._git("diff", "--no-color", "--no-ext-diff", f"{base}...{head}", "--", path, check=False)
        return proc.stdout.decode("utf-8", errors="replace") if proc.returncode == 0 else ""

    def is_ancestor(self, older: str, newer: str) -> bool:
        return self._git("merge-base", "--is-ancestor", older, newer, check=False).returncode == 0

    def merge(self, base_branch: str, head_sha: str, *, message: str, author: Identity) -> str:
        """Merge ``head_sha`` into ``base_branch``: fast-forward when possible, else a merge commit."""
        base_sha = self.branch_sha(base_branch)
        if base_sha is None:
            raise EmulatorError("Base branch was modified or deleted", status=405)
        if self.is_ancestor(base_sha, head_sha):
            new_sha = head_sha
        else:
            proc = self._git("merge-tree", "--write-tree", base_sha, head_sha, check=False)
            if proc.returncode != 0:
                raise EmulatorError("Pull Request is not mergeable", status=405)
            tree = proc.stdout.decode().split("\n", 1)[0].strip()
            new_sha = self._git("commit-tree", tree, "-p", base_sha, "-p", head_sha, "-m", message,
                                env=author.env()).stdout.decode().strip()
        self._git("update-ref", f"refs/heads/{base_branch}", new_sha, base_sha)
        return new_sha
