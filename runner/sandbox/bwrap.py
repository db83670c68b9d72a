"""Run every untrusted command so that it can change its worktree and nothing else.

Untrusted means: the agent CLI of the ``command`` generator, a repository's
setup and validation commands (and the tests a generated diff adds, which they
run), and the executable hooks (``HOOK_COMMANDS``, :mod:`runner.hooks.commands`).
:class:`Sandbox` is the only way they run; :mod:`runner.sandbox.procs` stays the
low-level bounded runner underneath.

The default backend is bubblewrap (``bwrap``, Debian package ``bubblewrap``):

- new user, PID, IPC, UTS (and cgroup) namespaces, ``--die-with-parent`` and
  ``--new-session``: the command sees only its own processes, so no
  ``/proc/<pid>/environ`` of the runner, and when the deadline kills bwrap the
  kernel kills everything left in the PID namespace, including children that
  called ``setsid()`` or forked twice;
- a read-only view of the system (``/usr``, ``/etc``, ...), a private ``/tmp``
  and ``$HOME``, a minimal ``/dev`` and a fresh ``/proc``;
- the worktree is the only writable host path. ``WORKSPACE_DIR``, ``DATA_DIR``
  and the runner's ``$HOME`` are not visible; the repository's objects are
  mounted read-only behind a throw-away git directory (see
  :func:`runner.sandbox.gitdir.prepare_sandbox_git`), so git works inside but no
  ref, config or hook of the real repository can be read or written;
- no network (``--unshare-net``) unless ``SANDBOX_NETWORK=allow``;
- ``prlimit`` inside the namespace caps each process's data size and the
  number of processes, and the wall time is the caller's deadline.

The environment is the caller's explicit mapping, passed to bwrap as its
environment (never in argv, which every process in the sandbox can read as
``/proc/1/cmdline``); names that look like credentials are dropped unless the
caller lists them in ``secrets_allowed``.

``SANDBOX=off`` runs commands without isolation (still with the minimal
environment and the deadline); every result comment then says so.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from runner.errors import SandboxUnavailable
from runner.sandbox.gitdir import prepare_sandbox_git
from runner.sandbox.procs import ProcResult, is_secret_name, run_bounded, split_command

SandboxMode = Literal["bwrap", "off"]
#: System directories the sandbox sees read-only (those that exist on this machine).
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
#: Where the throw-away git directory and the read-only objects appear inside.
GIT_MOUNT = Path("/run/agent-runner/git")
OBJECTS_MOUNT = Path("/run/agent-runner/objects")
SANDBOX_HOME = "/tmp/home"
OFF_WARNING = (
    "⚠️ The sandbox is off (`SANDBOX=off`): this runner ran the repository's and the agent's "
    "commands without isolation, where they could read its credentials."
)
_INSTALL_HINT = (
    "Install bubblewrap (`apt-get install bubblewrap`) and allow user namespaces (see "
    "docs/security.md, \"Isolation\"), or set `SANDBOX=off` to run untrusted commands "
    "without isolation."
)
_PROBE_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class SandboxLimits:
    """Per-sandbox limits; the wall time is each call's ``deadline_s``."""

    memory_mb: int = 4096
    pids: int = 512


@dataclass(frozen=True)
class Backend:
    """Which backend runs untrusted commands, in words for check-config and /readyz."""

    name: str
    detail: str
    isolated: bool
    path: str = ""


@dataclass(frozen=True)
class Sandbox:
    """Run untrusted argv in a worktree; construct once from the settings and share."""

    mode: SandboxMode = "bwrap"
    network: bool = False
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    #: Host paths that must never be visible, even when under a system path (WORKSPACE_DIR, DATA_DIR, HOME).
    hidden: tuple[Path, ...] = ()
    #: Extra read-only paths every command sees (tool installs outside /usr and /opt).
    extra_ro: tuple[Path, ...] = ()
    #: The bubblewrap program (a name on PATH or a path).
    bwrap: str = "bwrap"
    #: Shown read-only in every command of this sandbox, and run first (the egress proxy's relay).
    binds: tuple[tuple[Path, str], ...] = ()
    wrap: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: object) -> Sandbox:
        """Build the sandbox the settings ask for (duck-typed so the core never imports config here)."""
        home = Path(os.path.expanduser("~"))
        return cls(
            mode=getattr(settings, "sandbox", "bwrap"),
            network=getattr(settings, "sandbox_network", "off") == "allow",
            limits=SandboxLimits(
                memory_mb=getattr(settings, "sandbox_memory_mb", 4096),
                pids=getattr(settings, "sandbox_pids", 512),
            ),
            hidden=tuple(
                Path(p) for p in (getattr(settings, "workspace_dir", None),
                                  getattr(settings, "data_dir", None), home) if p
            ),
            extra_ro=tuple(Path(p) for p in getattr(settings, "sandbox_ro_paths", ())),
        )

    @property
    def warning(self) -> str | None:
        """The note every result comment carries while isolation is off."""
        return OFF_WARNING if self.mode == "off" else None

    def backend(self) -> Backend:
        """Which backend is active; raise SandboxUnavailable when the configured one cannot run."""
        if self.mode == "off":
            return Backend("off", "SANDBOX=off: untrusted commands run without isolation", False)
        return detect_backend(self.bwrap)

    def run(
        self,
        argv: Sequence[str] | str,
        *,
        worktree: Path,
        env: Mapping[str, str],
        deadline_s: float,
        network: bool | None = None,
        stdin: bytes | None = None,
        extra_ro: Iterable[Path] = (),
        git_dir: Path | None = None,
        secrets_allowed: Iterable[str] = (),
        output_limit: int = 200_000,
        merge_stderr: bool = True,
        binds: Iterable[tuple[Path, str]] = (),
        wrap: Sequence[str] = (),
    ) -> ProcResult:
        """Run ``argv`` in ``worktree`` within ``deadline_s`` seconds and return what it printed.

        With ``merge_stderr`` False, stderr comes back apart in ``ProcResult.stderr``.
        ``binds`` shows host paths read-only at the given paths inside (a Unix socket
        of the model gateway), besides the sandbox's own; ``wrap`` is argv that runs inside
        first and starts the command itself (the gateway's relay), instead of the sandbox's
        own. With ``SANDBOX=off`` both are ignored.

        ``git_dir`` is the worktree's real git directory, from the workspace (never read
        from the worktree's ``.git``, which the command controls). Raise SandboxUnavailable
        when no backend can run it, FileNotFoundError when the program is not visible inside.
        """
        args = split_command(argv)
        binds, wrap = (*self.binds, *binds), tuple(wrap) or self.wrap
        allowed = set(secrets_allowed)
        child_env = {k: v for k, v in env.items() if k in allowed or not is_secret_name(k)}
        worktree = Path(worktree).resolve()
        if self.mode == "off":
            return run_bounded(args, cwd=worktree, env=child_env, deadline_s=deadline_s,
                               stdin=stdin, output_limit=output_limit, merge_stderr=merge_stderr)
        backend = detect_backend(self.bwrap)  # raises SandboxUnavailable, with the reason, first
        readonly = [*self.extra_ro, *[Path(p) for p in extra_ro]]
        _check_program(args[0], worktree, child_env.get("PATH", os.defpath), readonly)
        if wrap:
            _check_program(wrap[0], worktree, child_env.get("PATH", os.defpath), readonly)
        child_env.update({"HOME": SANDBOX_HOME, "TMPDIR": "/tmp"})
        with tempfile.TemporaryDirectory(prefix="agent-runner-sandbox-") as scratch:
            git_binds = _git_binds(worktree, git_dir, Path(scratch))
            bwrap = _bwrap_argv(
                backend.path,
                worktree=worktree,
                network=self.network if network is None else network,
                hidden=self.hidden,
                readonly=readonly,
                git_binds=git_binds,
                binds=tuple(binds),
            )
            inner = [*wrap, "prlimit", f"--data={self.limits.memory_mb * 1024 * 1024}",
                     f"--nproc={self.limits.pids}", "--core=0", "--"]
            return _unwrap(run_bounded([*bwrap, "--", *inner, *args], cwd=worktree, env=child_env,
                                       deadline_s=deadline_s, stdin=stdin, output_limit=output_limit,
                                       merge_stderr=merge_stderr),
                           args)


def contain_credentials(settings: object) -> list[str]:
    """Keep the loaded secrets in this process's memory only; return the names removed from the environment.

    Called once the settings are loaded: every variable that holds a configured secret
    value, or is named like a credential, leaves ``os.environ``, and the process turns
    non-dumpable, so no same-uid process can read ``/proc/<pid>/environ`` or ``/mem``.
    """
    secrets_of = getattr(settings, "secrets", None)
    values = {v for v in (secrets_of() if callable(secrets_of) else []) if v}
    removed = [name for name, value in list(os.environ.items())
               if is_secret_name(name) or value in values]
    for name in removed:
        os.environ.pop(name, None)
    set_non_dumpable()
    return removed


def set_non_dumpable() -> bool:
    """prctl(PR_SET_DUMPABLE, 0) on Linux; False where it is not available."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(4, 0, 0, 0, 0)) == 0  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        return False


@functools.cache
def detect_backend(bwrap: str = "bwrap") -> Backend:
    """Probe bubblewrap once per process: find it, and check that it can make its namespaces."""
    path = shutil.which(bwrap)
    if path is None:
        raise SandboxUnavailable("The sandbox is not available: `bwrap` is not installed. " + _INSTALL_HINT)
    if shutil.which("prlimit") is None:
        raise SandboxUnavailable(
            "The sandbox is not available: `prlimit` (util-linux) is not installed. " + _INSTALL_HINT
        )
    probe_dir = Path(tempfile.mkdtemp(prefix="agent-runner-probe-"))
    try:
        argv = [*_bwrap_argv(path, worktree=probe_dir, network=False, hidden=(), readonly=[], git_binds=[]),
                "--", "true"]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S,
                                  env={"PATH": os.defpath}, stdin=subprocess.DEVNULL, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"The sandbox is not available: bwrap did not run ({exc}). "
                                     + _INSTALL_HINT) from None
        if done.returncode != 0:
            reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise SandboxUnavailable(
                f"The sandbox is not available: bwrap cannot create its namespaces here "
                f"({reason[0]}). " + _INSTALL_HINT
            )
        version = subprocess.run([path, "--version"], capture_output=True, text=True, check=False,
                                 env={"PATH": os.defpath}, timeout=_PROBE_TIMEOUT_S).stdout.strip()
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)
    return Backend("bwrap", version or "bubblewrap", True, path)


def _bwrap_argv(
    bwrap: str,
    *,
    worktree: Path,
    network: bool,
    hidden: Sequence[Path],
    readonly: Sequence[Path],
    git_binds: Sequence[str],
    binds: Sequence[tuple[Path, str]] = (),
) -> list[str]:
    argv = [bwrap, "--die-with-parent", "--new-session", "--unshare-user", "--unshare-pid",
            "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--cap-drop", "ALL"]
    # No --hostname: sethostname() is refused by podman's default seccomp profile.
    if os.geteuid() == 0:
        # uid 0 inside would keep capabilities in the namespace and ignore the process limit.
        argv += ["--uid", "65534", "--gid", "65534"]
    if not network:
        argv.append("--unshare-net")
    for system in SYSTEM_PATHS:
        path = Path(system)
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), system]
        elif path.is_dir():
            argv += ["--ro-bind", system, system]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", SANDBOX_HOME,
             "--tmpfs", "/run"]
    for secret in hidden:
        # Mask what a system path would otherwise show (a workspace under /opt, a home under /etc).
        resolved = secret.resolve()
        if resolved.is_dir() and any(resolved.is_relative_to(s) for s in SYSTEM_PATHS if Path(s).is_dir()):
            argv += ["--tmpfs", str(resolved)]
    shown = [p for p in readonly if p.exists()]
    # Mount points bwrap makes for binds under the private /tmp (a worktree in /tmp/...) sit in
    # a tmpfs of their own, made read-only below, so only /tmp itself and the worktree are writable.
    bound = {str(p) for p in (*shown, worktree)}
    tops = sorted({top for p in (*shown, worktree) if (top := _tmp_top(p)) is not None} - bound)
    for top in tops:
        argv += ["--tmpfs", str(top)]
    for path in shown:
        argv += ["--ro-bind", str(path), str(path)]
    argv += ["--bind", str(worktree), str(worktree)]
    argv += list(git_binds)
    for source, target in binds:
        argv += ["--ro-bind", str(source), target]
    for top in tops:
        argv += ["--remount-ro", str(top)]
    # The root bwrap built (mount points for the binds) turns read-only too.
    argv += ["--remount-ro", "/", "--chdir", str(worktree)]
    return argv


def _tmp_top(path: Path) -> str | None:
    """``/tmp/a`` for ``/tmp/a/b/c``: the directory under /tmp a bind would create."""
    parts = path.parts
    return f"/tmp/{parts[2]}" if len(parts) > 2 and parts[1] == "tmp" else None


def _git_binds(worktree: Path, git_dir: Path | None, scratch: Path) -> list[str]:
    """Mount a throw-away git directory over the worktree's ``.git``, with the objects read-only."""
    dot_git = worktree / ".git"
    if git_dir is None:
        if not dot_git.is_dir() or dot_git.is_symlink():
            # No trusted git directory to show: hide whatever `.git` is, so git finds nothing.
            return ["--ro-bind", "/dev/null", str(dot_git)] if dot_git.is_file() else []
        git_dir = dot_git
    mini = scratch / "git"
    objects = prepare_sandbox_git(git_dir, mini, objects_mount=OBJECTS_MOUNT)
    binds = ["--ro-bind", str(objects), str(OBJECTS_MOUNT), "--bind", str(mini), str(GIT_MOUNT)]
    if dot_git.is_dir() and not dot_git.is_symlink():
        return binds + ["--bind", str(mini), str(dot_git)]
    gitfile = scratch / "gitfile"
    gitfile.write_text(f"gitdir: {GIT_MOUNT}\n", encoding="utf-8")
    if not dot_git.exists() and not dot_git.is_symlink():
        dot_git.write_text(f"gitdir: {GIT_MOUNT}\n", encoding="utf-8")
    if dot_git.is_symlink() or not dot_git.is_file():
        raise SandboxUnavailable(
            "The worktree's `.git` was replaced by something that is not a file; the runner "
            "will not run commands in it. Run the task again to get a fresh worktree."
        )
    # Read-only over the real gitfile: the command can neither edit nor replace it.
    return binds + ["--ro-bind", str(gitfile), str(dot_git)]


def _check_program(program: str, worktree: Path, path: str, readonly: Sequence[Path]) -> None:
    """Fail like exec would when the program is missing, or not visible inside the sandbox."""
    visible = [Path(s) for s in SYSTEM_PATHS if Path(s).exists()]
    visible += [worktree, *readonly]
    visible += [p.resolve() for p in visible]

    def shown(candidate: Path) -> bool:
        return any(candidate.is_relative_to(root) for root in visible)

    if "/" in program:
        candidate = str(worktree / program) if not program.startswith("/") else program
        found: str | None = candidate if os.path.exists(candidate) else None
    else:  # search PATH the way it looks inside: directories the sandbox does not show are skipped
        dirs = [d for d in path.split(os.pathsep) if d and shown(Path(os.path.abspath(d)))]
        found = shutil.which(program, path=os.pathsep.join(dirs)) if dirs else None
    if found is None:
        raise FileNotFoundError(errno.ENOENT, "not found on PATH", program)
    real = Path(found).resolve()
    if not (shown(Path(os.path.abspath(found))) and shown(real)):
        raise FileNotFoundError(
            errno.ENOENT,
            f"{real} is outside what the sandbox shows (add its directory to SANDBOX_RO_PATHS)",
            program,
        )
    if not os.access(real, os.X_OK):
        raise PermissionError(errno.EACCES, "not executable", program)


def _unwrap(result: ProcResult, args: list[str]) -> ProcResult:
    """Report the command's own argv, not bwrap's."""
    return ProcResult(argv=tuple(args), exit_code=result.exit_code, output=result.output,
                      duration_s=result.duration_s, timed_out=result.timed_out,
                      truncated=result.truncated, deadline_s=result.deadline_s, stderr=result.stderr)
