"""Give each job a clean worktree of its target repository, cheaply and safely.

One persistent bare mirror per target repository is fetched under a file lock;
each job gets its own detached ``git worktree`` from it, so a task never pays for
a full clone and two workers never share a checkout.

All its git runs through :func:`runner.steps.git.run_git`, the one place a git process starts. Every call gets:

- an explicit environment built by :func:`runner.steps.git.git_env`, never ``os.environ``
  (GitPython, which this replaced, handed the whole runner environment to every
  git child);
- ``core.hooksPath`` set to an empty runner-owned directory and ``core.fsmonitor``
  off, on the command line, which beats any repository config: no hook planted
  in the mirror, in a worktree's ``.git`` or through ``core.hooksPath`` ever runs;
- no automatic maintenance or gc (``maintenance.auto``, ``gc.auto``): a fetch would
  otherwise start ``git maintenance run --auto`` with its environment, token included;
- no system or global config (``~/.gitconfig`` is not read);
- the token only for fetch and push (:meth:`Workspace._auth_env`, the one place it
  leaves memory), as a host-scoped ``http.extraHeader`` in
  ``GIT_CONFIG_COUNT``/``KEY``/``VALUE``: never in a URL, argv or ``.git/config``.

Worktree commands name the git directory (``GIT_DIR``), so a ``.git`` file an
untrusted command rewrote is never followed.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from filelock import FileLock

from runner.breakers import Breaker, Breakers
from runner.errors import (
    DiskFull,
    GitTransportFailed,
    HumanCommitsOnBranch,
    NotFound,
    WorkspaceError,
)
from runner.steps.git import GIT_TIMEOUT_S, CommittedFiles, auth_env, run_git


@dataclass(frozen=True)
class Identity:
    """Who the bot commits as; commits by anyone else on a task branch are a human's."""

    name: str
    email: str

    def env(self) -> dict[str, str]:
        return {
            "GIT_AUTHOR_NAME": self.name,
            "GIT_AUTHOR_EMAIL": self.email,
            "GIT_COMMITTER_NAME": self.name,
            "GIT_COMMITTER_EMAIL": self.email,
        }


@dataclass(frozen=True)
class Mirror:
    """A fetched bare mirror; remote branches live under refs/remotes/origin/."""

    repo: str
    path: Path
    #: The remote branches as this fetch left them (branch -> sha), read once by :meth:`Workspace.sync`.
    branches: Mapping[str, str]

    def branch_sha(self, branch: str) -> str | None:
        return self.branches.get(branch)

    def read_file(self, branch: str, rel_path: str) -> str | None:
        """The file's text on the remote branch, or None when branch or file is missing."""
        if branch not in self.branches:
            return None
        try:
            return run_git(self.path, "show", f"refs/remotes/origin/{branch}:{rel_path}")
        except WorkspaceError:
            return None


@dataclass(frozen=True)
class Worktree:
    """A detached checkout for one job; ``remote_sha`` is what the lease-push expects."""

    path: Path
    branch: str
    base_branch: str
    base_sha: str
    remote_sha: str | None
    repo: str = ""
    #: The worktree's own git directory in the mirror; the sandbox shows a throw-away copy.
    git_dir: Path | None = None

    def head(self) -> str:
        # The worktree is detached, so its HEAD file names the commit; the git directory is
        # the runner's own (the sandbox sees a throw-away copy), so the file is read as is.
        if self.git_dir is not None:
            text = _read_text(self.git_dir / "HEAD")
            if text is not None and _SHA.fullmatch(text.strip()):
                return text.strip()
        sha = _rev_parse(self.path, "HEAD", git_dir=self.git_dir)
        if sha is None:
            raise WorkspaceError(f"The worktree at {self.path} has no HEAD.")
        return sha


class Workspace:
    """Mirrors under ``root/mirrors``, job worktrees under ``root/worktrees``."""

    def __init__(self, root: Path, *, token: str | None | Callable[[str], str | None],
                 identity: Identity, breakers: Breakers | None = None) -> None:
        self.root = root
        self.identity = identity
        # One breaker per git host: while it is open no fetch or push goes out but one probe at a time.
        self.breakers = breakers or Breakers()
        # One token for everything, or a function of the repository (a GitHub App's
        # installation token, minted or refreshed when asked).
        self._token_for: Callable[[str], str | None] = token if callable(token) else (lambda _repo: token)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._origins: dict[Path, str] = {}  # mirror -> the origin URL this process set

    # -- mirrors -----------------------------------------------------------------

    def sync(self, repo: str, clone_url: str) -> Mirror:
        """Create or fetch the bare mirror of ``repo``, under a lock shared by all processes."""
        path = self.root / "mirrors" / f"{repo}.git"
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock(repo):
            if not (path / "HEAD").exists():
                # Made whole beside it, then renamed into place: a process killed between `init` and
                # `config` must not leave a mirror without the fetch refspec, whose fetches would
                # bring no branch (every task then failing "the base branch does not exist").
                shutil.rmtree(path, ignore_errors=True)
                staging = path.with_name(f"{path.name}.new-{os.getpid()}")
                shutil.rmtree(staging, ignore_errors=True)
                run_git(path.parent, "init", "--quiet", "--bare", str(staging))
                self._git(staging, "config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*")
                self._git(staging, "config", "gc.auto", "0")
                os.rename(staging, path)
            if self._origins.get(path) != clone_url:  # once per process: a mirror an older runner left half-made heals
                self._git(path, "config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*")
                self._git(path, "config", "remote.origin.url", clone_url)
                self._origins[path] = clone_url
            self._transport(clone_url).call(  # a fetch is safe to send again: retried in place
                lambda: self._git(path, "fetch", "--prune", "--no-tags", "origin", remote=clone_url,
                                  what=f"fetch {repo}", repo=repo))
            refs = self._git(path, "for-each-ref", "--format=%(objectname) %(refname)", "refs/remotes/origin/")
        prefix = "refs/remotes/origin/"
        branches = {name.removeprefix(prefix): sha for sha, _, name in
                    (line.partition(" ") for line in refs.splitlines()) if name.startswith(prefix)}
        return Mirror(repo=repo, path=path, branches=branches)

    # -- worktrees ---------------------------------------------------------------

    @contextmanager
    def checkout(self, mirror: Mirror, *, branch: str, base_branch: str, job: str) -> Iterator[Worktree]:
        """Check out the task branch (or the base when it is new) and remove the tree after."""
        base_sha = mirror.branch_sha(base_branch)
        if base_sha is None:
            raise NotFound(
                f"The base branch `{base_branch}` does not exist in {mirror.repo}. "
                "Set `base_branch` in the task metadata to an existing branch."
            )
        remote_sha = mirror.branch_sha(branch)
        if remote_sha is not None:
            self._refuse_human_commits(mirror, branch, base_branch)
        path = self.root / "worktrees" / mirror.repo / f"{branch}--{job}"
        with self._lock(mirror.repo):
            self._remove_worktree(mirror.path, path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._git(mirror.path, "worktree", "add", "--detach", "--force", str(path),
                          remote_sha or base_sha, what=f"check out {branch}")
                # Read now, before any untrusted command could rewrite the worktree's `.git` file
                # ("gitdir: <mirror>/worktrees/<name>", as `worktree add` just wrote it).
                git_dir = (_worktree_git_dir(path)
                           or Path(self._git(path, "rev-parse", "--absolute-git-dir").strip()))
            except (WorkspaceError, DiskFull, OSError):  # a full disk, say: leave no partial worktree behind
                self._remove_worktree(mirror.path, path)
                raise
        try:
            yield Worktree(path=path, branch=branch, base_branch=base_branch,
                           base_sha=base_sha, remote_sha=remote_sha, repo=mirror.repo,
                           git_dir=git_dir)
        finally:
            with self._lock(mirror.repo):
                self._remove_worktree(mirror.path, path)

    def commit(self, tree: Worktree, message: str) -> bool:
        """Commit the index as the bot; False when it holds nothing new.

        The index is what :meth:`changed_files` staged and the guard and the
        secret scan then read: what lands is exactly what they checked, even if
        something wrote to the worktree since.
        """
        try:
            self._tree_git(tree, "commit", "--no-verify", "--quiet", "-m", message,
                           env=self.identity.env(), what="commit the change")
        except WorkspaceError:
            # git refuses an empty commit; only then ask whether that was the reason.
            if not self._tree_git(tree, "diff", "--cached", "--name-only", "-z", "HEAD").strip("\0"):
                return False
            raise
        return True

    def reset(self, tree: Worktree) -> None:
        """Throw away what a failed generator left behind, keeping ignored files (caches)."""
        self._tree_git(tree, "reset", "--hard", "--quiet", "HEAD")
        self._tree_git(tree, "clean", "-fdq")

    def snapshot(self, tree: Worktree) -> str:
        """Stage everything and return the tree id, to see whether a round changed anything."""
        self._tree_git(tree, "add", "--all")
        return self._tree_git(tree, "write-tree").strip()

    def head_tree(self, tree: Worktree) -> str:
        """The tree id of HEAD: what :meth:`snapshot` returns for a clean checkout."""
        return self._tree_git(tree, "rev-parse", "HEAD^{tree}").strip()

    def restore_snapshot(self, tree: Worktree) -> None:
        """Drop what ran after the last snapshot (caches, formatter rewrites), keep the staged change."""
        self._tree_git(tree, "checkout", "--quiet", "--", ".")
        self._tree_git(tree, "clean", "-fdq")

    def changed_files(self, tree: Worktree) -> list[str]:
        """Stage everything; the paths that differ between the base and the worktree (committed or not)."""
        self._tree_git(tree, "add", "--all")
        out = self._tree_git(tree, "diff", "--cached", "--name-only", "-z", tree.base_sha)
        return [p for p in out.split("\0") if p]

    def staged_diff(self, tree: Worktree) -> str:
        """The staged change (:meth:`changed_files`) against the base as a zero-context diff, binary
        files as text, for the secret scan."""
        return self._tree_git(tree, "diff", "--cached", "--text", "-U0", "--no-color", "--no-ext-diff",
                              "--no-renames", tree.base_sha)

    def diff(self, tree: Worktree) -> str:
        """The branch's change against the base, as a unified diff (a feedback round's context)."""
        return self._git(tree.path, "diff", "--no-color", "--no-ext-diff", tree.base_sha, "HEAD")

    def commit_with_line(self, mirror: Mirror, branch: str, base_branch: str, line: str) -> str | None:
        """The newest commit on the remote branch (not on the base) whose message has ``line``."""
        out = self._git(mirror.path, "log", "--format=%H%x00%B%x01",
                        f"refs/remotes/origin/{base_branch}..refs/remotes/origin/{branch}")
        for entry in out.split("\x01"):
            sha, _, message = entry.strip().partition("\x00")
            if sha and line in message.splitlines():
                return sha
        return None

    def push(self, tree: Worktree, clone_url: str, head: str | None = None) -> str:
        """Push HEAD (``head`` when the caller read it) to the task branch, refusing if the remote
        moved since we fetched."""
        head = head or tree.head()
        if head == tree.remote_sha:
            return head
        lease = f"--force-with-lease=refs/heads/{tree.branch}:{tree.remote_sha or ''}"
        with self._transport(clone_url).guard():  # retried one level up, after a look at the remote
            self._tree_git(tree, "push", "--quiet", "--no-verify", lease, "origin",
                           f"{head}:refs/heads/{tree.branch}", remote=clone_url,
                           what=f"push {tree.branch}", repo=tree.repo)
        return head

    def remote_sha(self, tree: Worktree, clone_url: str) -> str | None:
        """Where the task branch points on the remote now (None: no such branch), asked over the wire."""
        out = self._transport(clone_url).call(
            lambda: self._git(tree.path, "ls-remote", "origin", f"refs/heads/{tree.branch}", remote=clone_url,
                              what=f"read {tree.branch} on the remote"))
        return out.split()[0] if out.strip() else None

    def cleanup(self) -> None:
        """Prune worktrees left behind by a killed process (safe to run at start-up)."""
        mirrors = self.root / "mirrors"
        for head in mirrors.glob("*/*.git/HEAD") if mirrors.exists() else []:
            repo = f"{head.parent.parent.name}/{head.parent.name.removesuffix('.git')}"
            with self._lock(repo):
                self._git(head.parent, "worktree", "prune")
        shutil.rmtree(self.root / "worktrees", ignore_errors=True)

    # -- helpers -----------------------------------------------------------------

    def refuse_human_commits(self, mirror: Mirror, branch: str, base_branch: str) -> None:
        """Raise HumanCommitsOnBranch when anyone but the runner has a commit on the fetched branch."""
        self._refuse_human_commits(mirror, branch, base_branch)

    def _transport(self, clone_url: str) -> Breaker:
        """The breaker of git transport to ``clone_url``'s host; only transport failures count."""
        host = urlsplit(clone_url).netloc.rsplit("@", 1)[-1] or clone_url
        return self.breakers.get(f"git:{host}", service="git transport",
                                 is_outage=lambda exc: isinstance(exc, GitTransportFailed))

    def _refuse_human_commits(self, mirror: Mirror, branch: str, base_branch: str) -> None:
        log = self._git(mirror.path, "log", "--format=%ae%x09%an%x09%h",
                        f"refs/remotes/origin/{base_branch}..refs/remotes/origin/{branch}")
        for line in log.splitlines():
            email, name, short = (line.split("\t") + ["", "", ""])[:3]
            if email.lower() != self.identity.email.lower():
                raise HumanCommitsOnBranch(
                    f"The branch `{branch}` has commit {short} by {name} <{email}>, who is not "
                    "the runner. The runner does not overwrite a person's work."
                )

    def _remove_worktree(self, mirror_path: Path, path: Path) -> None:
        """Remove a job's worktree; a path never used is nothing to do (start-up prunes what a
        killed process left, :meth:`cleanup`)."""
        if not path.exists():
            return
        try:
            self._git(mirror_path, "worktree", "remove", "--force", str(path))
        except (WorkspaceError, DiskFull):
            shutil.rmtree(path, ignore_errors=True)
            self._git(mirror_path, "worktree", "prune")

    def _lock(self, repo: str) -> _DualLock:
        """A thread lock (FileLock is re-entrant per process) plus the cross-process file lock."""
        with self._locks_guard:
            thread_lock = self._locks.setdefault(repo, threading.Lock())
        lock_path = self.root / "locks" / f"{repo.replace('/', '__')}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        return _DualLock(thread_lock, FileLock(str(lock_path), timeout=GIT_TIMEOUT_S))

    def files_at(self, tree: Worktree, commit: str) -> CommittedFiles:
        """Read files as committed at ``commit`` (the base), never from the worktree."""
        return CommittedFiles(tree.git_dir or tree.path, commit)

    def _git(
        self,
        cwd: Path,
        *args: str,
        remote: str | None = None,
        env: Mapping[str, str] | None = None,
        what: str | None = None,
        repo: str = "",
    ) -> str:
        full_env = dict(env or {})
        if remote is not None:
            full_env.update(self._auth_env(remote, repo))
        return run_git(cwd, *args, env=full_env, what=what)

    def _tree_git(
        self,
        tree: Worktree,
        *args: str,
        remote: str | None = None,
        env: Mapping[str, str] | None = None,
        what: str | None = None,
        repo: str = "",
    ) -> str:
        """Git on a worktree, with its git directory named, so its `.git` file is not trusted."""
        full_env = dict(env or {})
        if tree.git_dir is not None:
            full_env.update({"GIT_DIR": str(tree.git_dir), "GIT_WORK_TREE": str(tree.path)})
        return self._git(tree.path, *args, remote=remote, env=full_env, what=what, repo=repo)

    def _auth_env(self, remote: str, repo: str) -> dict[str, str]:
        """The only place the token leaves memory: into the environment of one fetch or push."""
        return auth_env(remote, self._token_for(repo))


class _DualLock:
    def __init__(self, thread_lock: threading.Lock, file_lock: FileLock) -> None:
        self._thread_lock = thread_lock
        self._file_lock = file_lock

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            self._file_lock.acquire()
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        self._file_lock.release()
        self._thread_lock.release()


_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _worktree_git_dir(path: Path) -> Path | None:
    """The git directory a fresh worktree's `.git` file names, when it is an absolute path."""
    text = _read_text(path / ".git")
    if text is None or not text.startswith("gitdir: "):
        return None
    git_dir = Path(text.removeprefix("gitdir: ").strip())
    return git_dir if git_dir.is_absolute() and (git_dir / "HEAD").is_file() else None


def _rev_parse(cwd: Path, ref: str, git_dir: Path | None = None) -> str | None:
    env = {"GIT_DIR": str(git_dir), "GIT_WORK_TREE": str(cwd)} if git_dir is not None else None
    try:
        return run_git(cwd, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", env=env) or None
    except WorkspaceError:
        return None
