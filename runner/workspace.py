"""Give each job a clean worktree of its target repository, cheaply and safely.

One persistent bare mirror per target repository is fetched under a file lock;
each job gets its own detached ``git worktree`` from it, so a task never pays for
a full clone and two workers never share a checkout. The token travels only in
the environment of the git process (``GIT_CONFIG_COUNT``/``KEY``/``VALUE`` with a
host-scoped ``http.extraHeader``): never in a URL, argv or ``.git/config``.
"""

from __future__ import annotations

import base64
import shutil
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import git
from filelock import FileLock

from runner.errors import HumanCommitsOnBranch, NotFound, WorkspaceError

GIT_TIMEOUT_S = 600


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

    def branch_sha(self, branch: str) -> str | None:
        return _rev_parse(self.path, f"refs/remotes/origin/{branch}")

    def read_file(self, branch: str, rel_path: str) -> str | None:
        """The file's text on the remote branch, or None when branch or file is missing."""
        try:
            return git.Git(self.path).show(f"refs/remotes/origin/{branch}:{rel_path}")
        except git.GitCommandError:
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

    def head(self) -> str:
        sha = _rev_parse(self.path, "HEAD")
        if sha is None:
            raise WorkspaceError(f"The worktree at {self.path} has no HEAD.")
        return sha


class Workspace:
    """Mirrors under ``root/mirrors``, job worktrees under ``root/worktrees``."""

    def __init__(self, root: Path, *, token: str | None | Callable[[str], str | None],
                 identity: Identity) -> None:
        self.root = root
        self.identity = identity
        # One token for everything, or a function of the repository (a GitHub App's
        # installation token, minted or refreshed when asked).
        self._token_for: Callable[[str], str | None] = token if callable(token) else (lambda _repo: token)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- mirrors -----------------------------------------------------------------

    def sync(self, repo: str, clone_url: str) -> Mirror:
        """Create or fetch the bare mirror of ``repo``, under a lock shared by all processes."""
        path = self.root / "mirrors" / f"{repo}.git"
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock(repo):
            if not (path / "HEAD").exists():
                shutil.rmtree(path, ignore_errors=True)
                git.Repo.init(path, bare=True)
                self._git(path, "config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*")
                self._git(path, "config", "gc.auto", "0")
            self._git(path, "config", "remote.origin.url", clone_url)
            self._git(path, "fetch", "--prune", "--no-tags", "origin", remote=clone_url,
                      what=f"fetch {repo}", repo=repo)
        return Mirror(repo=repo, path=path)

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
            path.parent.mkdir(parents=True, exist_ok=True)
            self._git(mirror.path, "worktree", "add", "--detach", "--force", str(path),
                      remote_sha or base_sha, what=f"check out {branch}")
        try:
            yield Worktree(path=path, branch=branch, base_branch=base_branch,
                           base_sha=base_sha, remote_sha=remote_sha, repo=mirror.repo)
        finally:
            with self._lock(mirror.repo):
                self._remove_worktree(mirror.path, path)

    def commit(self, tree: Worktree, message: str) -> bool:
        """Stage everything and commit as the bot; False when there was nothing to commit."""
        self._git(tree.path, "add", "--all")
        status = self._git(tree.path, "status", "--porcelain")
        if not status.strip():
            return False
        self._git(tree.path, "commit", "--no-verify", "--quiet", "-m", message,
                  env=self.identity.env(), what="commit the change")
        return True

    def reset(self, tree: Worktree) -> None:
        """Throw away what a failed generator left behind, keeping ignored files (caches)."""
        self._git(tree.path, "reset", "--hard", "--quiet", "HEAD")
        self._git(tree.path, "clean", "-fdq")

    def snapshot(self, tree: Worktree) -> str:
        """Stage everything and return the tree id, to see whether a round changed anything."""
        self._git(tree.path, "add", "--all")
        return self._git(tree.path, "write-tree").strip()

    def restore_snapshot(self, tree: Worktree) -> None:
        """Drop what ran after the last snapshot (caches, formatter rewrites), keep the staged change."""
        self._git(tree.path, "checkout", "--quiet", "--", ".")
        self._git(tree.path, "clean", "-fdq")

    def changed_files(self, tree: Worktree) -> list[str]:
        """Paths that differ between the base and the worktree (committed or not)."""
        self._git(tree.path, "add", "--all")
        out = self._git(tree.path, "diff", "--cached", "--name-only", "-z", tree.base_sha)
        return [p for p in out.split("\0") if p]

    def push(self, tree: Worktree, clone_url: str) -> str:
        """Push HEAD to the task branch, refusing if the remote moved since we fetched."""
        head = tree.head()
        if head == tree.remote_sha:
            return head
        lease = f"--force-with-lease=refs/heads/{tree.branch}:{tree.remote_sha or ''}"
        self._git(tree.path, "push", "--quiet", "--no-verify", lease, "origin",
                  f"{head}:refs/heads/{tree.branch}", remote=clone_url,
                  what=f"push {tree.branch}", repo=tree.repo)
        return head

    def cleanup(self) -> None:
        """Prune worktrees left behind by a killed process (safe to run at start-up)."""
        mirrors = self.root / "mirrors"
        for head in mirrors.glob("*/*.git/HEAD") if mirrors.exists() else []:
            repo = f"{head.parent.parent.name}/{head.parent.name.removesuffix('.git')}"
            with self._lock(repo):
                self._git(head.parent, "worktree", "prune")
        shutil.rmtree(self.root / "worktrees", ignore_errors=True)

    # -- helpers -----------------------------------------------------------------

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
        if path.exists():
            try:
                self._git(mirror_path, "worktree", "remove", "--force", str(path))
            except WorkspaceError:
                shutil.rmtree(path, ignore_errors=True)
        self._git(mirror_path, "worktree", "prune")

    def _lock(self, repo: str) -> _DualLock:
        """A thread lock (FileLock is re-entrant per process) plus the cross-process file lock."""
        with self._locks_guard:
            thread_lock = self._locks.setdefault(repo, threading.Lock())
        lock_path = self.root / "locks" / f"{repo.replace('/', '__')}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        return _DualLock(thread_lock, FileLock(str(lock_path), timeout=GIT_TIMEOUT_S))

    def _git(
        self,
        cwd: Path,
        *args: str,
        remote: str | None = None,
        env: Mapping[str, str] | None = None,
        what: str | None = None,
        repo: str = "",
    ) -> str:
        full_env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}
        if remote is not None:
            full_env.update(auth_env(remote, self._token_for(repo)))
        full_env.update(env or {})
        try:
            out = git.Git(cwd).execute(
                ["git", *args], env=full_env, kill_after_timeout=GIT_TIMEOUT_S,
                with_extended_output=False,
            )
        except git.GitCommandError as exc:
            stderr = (exc.stderr or "").strip().replace("\n", " ")[-400:]
            action = what or f"run git {args[0]}"
            raise WorkspaceError(f"Could not {action}: {stderr or f'git exited {exc.status}'}") from None
        return out if isinstance(out, str) else str(out)


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


def auth_env(remote_url: str, token: str | None) -> dict[str, str]:
    """Git config passed through the environment: the auth header, scoped to the remote's host.

    ``http.<url>.extraHeader`` only applies to URLs under that prefix, so the token
    never follows a redirect or a submodule to another host.
    """
    env = {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "credential.helper",
        "GIT_CONFIG_VALUE_0": "",
    }
    if token:
        parts = urlsplit(remote_url)
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env.update({
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_1": f"http.{parts.scheme}://{parts.netloc}/.extraHeader",
            "GIT_CONFIG_VALUE_1": f"Authorization: Basic {basic}",
        })
    return env


def _rev_parse(cwd: Path, ref: str) -> str | None:
    try:
        return git.Git(cwd).rev_parse("--verify", "--quiet", f"{ref}^{{commit}}") or None
    except git.GitCommandError:
        return None
