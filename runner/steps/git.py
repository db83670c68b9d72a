"""Run git with an explicit environment: the one place a git process starts (the workspace calls it).

No repository hook runs (``core.hooksPath`` is an empty directory), no user or
system config is read, and the token travels only as a host-scoped header in
the environment of a fetch or push (:func:`auth_env`). A failure becomes a
:class:`~runner.errors.WorkspaceError`, transient for transport, or a
:class:`~runner.errors.DiskFull`. :class:`CommittedFiles` reads files at a
commit without a checkout.
"""

from __future__ import annotations

import atexit
import base64
import functools
import os
import posixpath
import re
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from runner import tempdirs
from runner.errors import (
    DiskFull,
    GitTransportFailed,
    WorkspaceError,
)

GIT_TIMEOUT_S = 600


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


def run_git(
    cwd: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    what: str | None = None,
    timeout_s: float = GIT_TIMEOUT_S,
) -> str:
    """Run git with an explicit environment and no hooks; raise WorkspaceError saying what failed."""
    argv = ["git", "-c", f"core.hooksPath={_empty_dir('hooks')}", "-c", "core.fsmonitor=false",
            "-c", "maintenance.auto=false", "-c", "gc.auto=0", *args]
    try:
        done = subprocess.run(argv, cwd=cwd, env=git_env(env), capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise WorkspaceError(f"Could not {what or f'run git {args[0]}'}: git took longer than "
                             f"{timeout_s:g} s.") from None
    except OSError as exc:
        raise WorkspaceError(f"Could not run git ({exc.strerror}); install git in the runner image.") from None
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", "replace").strip().replace("\n", " ")[-400:]
        action = what or f"run git {args[0]}"
        raise _git_error(args[0], f"Could not {action}: {stderr or f'git exited {done.returncode}'}", stderr)
    return done.stdout.decode("utf-8", "replace").removesuffix("\n")


#: What git prints when the server or the network failed, not the request (a refused push is not here).
_TRANSPORT = re.compile(
    r"returned error: 5\d\d|unable to access|could not resolve host|connection (?:refused|reset|timed out)|"
    r"failed to connect|operation timed out|early eof|rpc failed|remote end hung up|"
    r"the requested url returned error: 429|gnutls|ssl_|recv failure|couldn't connect", re.IGNORECASE)
_DISK_FULL = re.compile(r"no space left on device|disk quota exceeded|file too large", re.IGNORECASE)
_REMOTE_COMMANDS = frozenset({"fetch", "push", "ls-remote", "clone"})


def _git_error(command: str, message: str, stderr: str) -> WorkspaceError | DiskFull:
    """The error for a failed git command: a full disk or a transport outage are told apart at this boundary."""
    if _DISK_FULL.search(stderr):
        return DiskFull(f"{message} (WORKSPACE_DIR has no space left).")
    if command in _REMOTE_COMMANDS and _TRANSPORT.search(stderr):
        return GitTransportFailed(message)
    return WorkspaceError(message)


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a git child: nothing is inherited but PATH."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(_empty_dir("home")),
        "LC_ALL": "C",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "true",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_OPTIONAL_LOCKS": "0",
    }
    env.update(extra or {})
    return env


@functools.cache
def _empty_dir(purpose: str) -> Path:
    """A directory only the runner can see, empty and read-only: the hooks path and git's HOME."""
    path = Path(tempfile.mkdtemp(prefix=f"agent-runner-{purpose}-"))
    path.chmod(0o555)
    atexit.register(tempdirs.remove_tree, path)  # read-only: a plain rmtree would fail on it
    return path


class CommittedFiles:
    """Files as committed at one commit: what `.agent-runner.yml` is read from.

    Only blobs count; a symlink is followed once, and only to a path inside the tree.
    """

    def __init__(self, git_dir: Path, commit: str) -> None:
        self.git_dir = git_dir
        self.commit = commit
        self._trees: dict[str, dict[str, tuple[str, str, str]]] = {}  # tree -> name -> (mode, kind, sha)

    def read(self, name: str, max_bytes: int, warnings: list[str]) -> tuple[str, str, bool] | None:
        """(the real path, its text cut to ``max_bytes``, whether there was more), or None."""
        path = posixpath.normpath(name)
        for _ in range(2):
            entry = self._entry(path)
            if entry is None:
                return None
            mode, sha = entry
            if mode == "120000":
                target = self._git("cat-file", "blob", sha)
                path = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
                if path.startswith("../") or path == ".." or path.startswith("/") or \
                        path.split("/")[0] == ".git":
                    warnings.append(f"`{name}` points outside the repository; it was ignored.")
                    return None
                continue
            if mode not in ("100644", "100755"):
                warnings.append(f"`{name}` is not a regular file; it was ignored.")
                return None
            size = int(self._git("cat-file", "-s", sha) or "0")
            text = self._git("cat-file", "blob", sha) if size <= 4 * max_bytes else ""
            raw = text.encode("utf-8", "replace")
            return path, raw[:max_bytes].decode("utf-8", "replace"), size > max_bytes
        warnings.append(f"`{name}` is a link to a link; it was ignored.")
        return None

    def _entry(self, path: str) -> tuple[str, str] | None:
        """(mode, sha) of ``path``, walking one directory listing per level (each read once)."""
        tree, parts = self.commit, path.split("/")
        for depth, part in enumerate(parts):
            found = self._listing(tree).get(part)
            if found is None:
                return None
            mode, kind, sha = found
            if depth == len(parts) - 1:
                return mode, sha
            if kind != "tree":
                return None
            tree = sha
        return None

    def _listing(self, tree: str) -> dict[str, tuple[str, str, str]]:
        if tree not in self._trees:
            entries: dict[str, tuple[str, str, str]] = {}
            for record in self._git("ls-tree", "-z", tree).split("\0"):
                meta, _, name = record.partition("\t")
                if meta and name:
                    mode, kind, sha = meta.split(" ")
                    entries[name] = (mode, kind, sha)
            self._trees[tree] = entries
        return self._trees[tree]

    def _git(self, *args: str) -> str:
        return run_git(self.git_dir, *args, env={"GIT_DIR": str(self.git_dir)},
                       what=f"read the repository at {self.commit[:12]}")
