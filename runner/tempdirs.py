"""Keep a runner process's temporary files in one directory of its own, and leave none behind.

Every runner command that loads settings calls :func:`claim` once: it makes
``$TMPDIR/agent-runner-<pid>-<random>/``, holds an exclusive ``flock`` on its
``.lock`` file for the life of the process, and points :mod:`tempfile` at it,
so every ``mkdtemp``/``TemporaryDirectory`` of the runner (git's empty HOME and
hooks path, sandbox scratch, gateway sockets, agent homes) lands inside.
:func:`release` removes it at exit, read-only parts included (the sandbox
gets some directories mode 0555, where a plain ``rmtree`` fails).

A process that died without cleaning up (SIGKILL, OOM) left its directory
behind; the kernel dropped its lock with it. :func:`sweep`, run by the next
:func:`claim`, removes exactly those: directories named ``agent-runner-*``,
owned by this user, with a ``.lock`` that nobody holds. A directory without
a lock file (another tool's, an older runner's) is never touched.

When no temporary directory is writable (a read-only root file system
without a tmpfs), the directory goes under ``DATA_DIR`` instead, the one
volume that must be writable anyway.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import stat
import tempfile
from pathlib import Path

from runner.errors import ConfigError

PREFIX = "agent-runner-"
LOCK = ".lock"

_state: dict[str, object] = {}  # "path": Path, "fd": int, "previous": str | None


def claim(fallback: Path | None = None) -> Path:
    """This process's temporary directory (made once); stale ones of dead runners are removed first."""
    current = _state.get("path")
    if isinstance(current, Path):
        return current
    base = usable_base(fallback)
    sweep(base)
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))
    fd = os.open(path / LOCK, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _state.update(path=path, fd=fd, previous=tempfile.tempdir)
    tempfile.tempdir = str(path)
    atexit.register(release)
    return path


def release() -> None:
    """Remove this process's temporary directory; safe to call twice (explicitly, then at exit)."""
    path, fd = _state.pop("path", None), _state.pop("fd", None)
    if isinstance(path, Path):
        previous = _state.pop("previous", None)
        tempfile.tempdir = previous if isinstance(previous, str) else None
        remove_tree(path)
    if isinstance(fd, int):
        os.close(fd)


def usable_base(fallback: Path | None) -> Path:
    """Where temporary directories can be made: TMPDIR (or /tmp...), else ``fallback/tmp``.

    Raises ConfigError naming both when neither is writable."""
    try:
        return Path(tempfile.gettempdir())
    except FileNotFoundError:  # "No usable temporary directory found"
        if fallback is None:
            raise ConfigError("No writable temporary directory: set TMPDIR to a writable path.") from None
    place = fallback / "tmp"
    try:
        place.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(dir=place)
        os.rmdir(probe)
    except OSError as exc:
        raise ConfigError(f"No writable temporary directory: TMPDIR ({os.environ.get('TMPDIR') or '/tmp'}) and "
                      f"{place} are both read-only ({exc.strerror}); mount a tmpfs on /tmp or make "
                      f"{fallback} writable") from exc
    tempfile.tempdir = str(place)  # so gettempdir() of later code agrees
    return place


def sweep(base: Path) -> list[Path]:
    """Remove the runner directories under ``base`` that no live process holds; return them."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            fd = os.open(os.path.join(entry.path, LOCK), os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue  # no lock file: not a directory this protocol made, so not ours to judge
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live runner holds it
        try:
            remove_tree(Path(entry.path))
            removed.append(Path(entry.path))
        finally:
            os.close(fd)
    return removed


def remove_tree(path: Path) -> None:
    """``rmtree`` that also removes what was made read-only (never following a symbolic link)."""
    if not os.path.lexists(path):
        return
    if not os.path.isdir(path) or os.path.islink(path):
        os.unlink(path)
        return
    _writable(path)
    for root, dirs, _files in os.walk(path):
        for name in dirs:
            _writable(Path(root) / name)
    shutil.rmtree(path, ignore_errors=True)


def _writable(directory: Path) -> None:
    try:
        mode = os.lstat(directory).st_mode
        if stat.S_ISDIR(mode) and (mode & 0o700) != 0o700:
            os.chmod(directory, stat.S_IMODE(mode) | 0o700)
    except OSError:
        pass
