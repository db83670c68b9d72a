"""Run a child process with a deadline, and leave nothing of it behind.

Every subprocess the runner starts on behalf of a task (agent CLIs, setup and
validation commands, git inspections of a worktree) goes through
:func:`run_bounded`, so that all of them share one set of guarantees:

- no shell: argv is a list, and a string is split with :func:`shlex.split`;
- the child starts in its own session, so its whole process group can be
  stopped: SIGTERM at the deadline, SIGKILL after a short grace;
- whatever the group left running after the leader exits is killed too
  (a process that calls ``setsid`` itself escapes; only a cgroup stops that);
- stdout and stderr are read in one loop, so a chatty child never deadlocks,
  and only the tail of the output is kept in memory;
- the environment is built from an allowlist by :func:`minimal_env`, so the
  GitHub token never reaches a child.

It raises the ``OSError`` that ``exec`` raised (``FileNotFoundError`` when the
program is missing, ``PermissionError`` when it is not executable); callers
turn that into an error a person can act on.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import selectors
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: How long a process group gets between SIGTERM and SIGKILL.
KILL_GRACE_S = 2.0
#: How long to keep reading after the leader exited, for output still in the pipe.
_DRAIN_S = 0.5
_TICK_S = 0.05
_CHUNK = 65536
_SECRET_NAME = re.compile(r"TOKEN|SECRET|KEY|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


@dataclass(frozen=True)
class ProcResult:
    """What a bounded run produced; ``exit_code`` is negative when a signal ended it."""

    argv: tuple[str, ...]
    exit_code: int
    output: str
    duration_s: float
    timed_out: bool = False
    truncated: bool = False
    deadline_s: float = 0.0
    #: What it wrote to stderr, when the caller kept stderr apart (``merge_stderr=False``).
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    @property
    def program(self) -> str:
        """The program's base name, for messages (`aider`, not `/usr/local/bin/aider`)."""
        return os.path.basename(self.argv[0]) if self.argv else ""

    def describe_exit(self) -> str:
        """Say how the process ended, in words: `exited with status 2`."""
        if self.timed_out:
            return f"did not finish within {format_seconds(self.deadline_s)} s and was stopped"
        if self.exit_code < 0:
            try:
                name = signal.Signals(-self.exit_code).name
            except ValueError:
                name = f"signal {-self.exit_code}"
            return f"was killed by {name}"
        return f"exited with status {self.exit_code}"


def split_command(command: str | Iterable[str]) -> list[str]:
    """Turn a command line into argv without a shell; raise ValueError when it is empty or unbalanced."""
    argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    if not argv:
        raise ValueError("the command is empty")
    return argv


def run_bounded(
    argv: list[str] | str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    deadline_s: float,
    output_limit: int = 200_000,
    merge_stderr: bool = True,
    grace_s: float = KILL_GRACE_S,
    stdin: bytes | None = None,
) -> ProcResult:
    """Run ``argv`` in ``cwd`` for at most ``deadline_s`` seconds and return its output.

    The output is stdout and stderr interleaved as written (with ``merge_stderr``
    False, stdout only, for output that is parsed, and stderr's tail apart in
    ``stderr``), decoded as UTF-8, and cut to its last ``output_limit`` bytes
    with a marker in front.
    ``stdin`` is fed from a temporary file, so a child that never reads it cannot block us.
    """
    args = split_command(argv)
    if not Path(cwd).is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "working directory does not exist", str(cwd))
    started = time.monotonic()
    deadline = started + max(deadline_s, 0.0)
    stdin_file = None
    if stdin is not None:
        stdin_file = tempfile.TemporaryFile()
        stdin_file.write(stdin)
        stdin_file.seek(0)
    try:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=dict(env),
            stdin=stdin_file if stdin_file is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        if stdin_file is not None:
            stdin_file.close()
    assert proc.stdout is not None
    tail, err_tail = _Tail(output_limit), _Tail(output_limit)
    pipes = {proc.stdout.fileno(): tail}
    if proc.stderr is not None:
        pipes[proc.stderr.fileno()] = err_tail
    reader = _Reader(pipes, proc.pid)
    timed_out = False
    try:
        if not reader.pump_until(deadline):
            timed_out = True
            _signal_group(proc.pid, signal.SIGTERM)
            reader.pump_until(time.monotonic() + grace_s)
        # The leader is dead or out of time; nothing else of the group may stay.
        _signal_group(proc.pid, signal.SIGKILL)
        reader.drain(time.monotonic() + _DRAIN_S)
    finally:
        reader.close()
        # Not reaped yet, so the pid still names our group and cannot be reused.
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
    return ProcResult(
        argv=tuple(args),
        exit_code=proc.returncode,
        output=tail.text(),
        duration_s=time.monotonic() - started,
        timed_out=timed_out,
        truncated=tail.dropped > 0,
        deadline_s=deadline_s,
        stderr=err_tail.text(),
    )


def minimal_env(
    allowlist: Iterable[str],
    extra: Mapping[str, str] | None = None,
    *,
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Copy only allowlisted variables (names or ``LC_*`` globs) from ``source``, then ``extra``.

    Names that look like credentials (``*TOKEN*``, ``*SECRET*``, ``*KEY*``, ...)
    are never copied from the allowlist, so a careless ``COMMAND_ENV_ALLOWLIST``
    cannot leak ``GITHUB_TOKEN``. A caller that means to hand over a secret
    (an LLM key for an agent CLI) passes it in ``extra``.
    """
    environ = os.environ if source is None else source
    patterns = [p.strip() for p in allowlist if p.strip()]
    env: dict[str, str] = {}
    for name, value in environ.items():
        if is_secret_name(name):
            continue
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            env[name] = value
    env.update(extra or {})
    return env


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a credential."""
    return bool(_SECRET_NAME.search(name))


def format_seconds(seconds: float) -> str:
    """`900`, `1.5`: seconds as a person writes them."""
    return f"{round(seconds, 1):g}"


def strip_ansi(text: str) -> str:
    """Remove terminal colour and cursor codes, which agent CLIs print even into pipes."""
    return _ANSI.sub("", text)


def tail_text(text: str, *, max_lines: int = 40, max_chars: int = 4000) -> str:
    """The last lines of some output, bounded both ways, for messages and feedback."""
    lines = strip_ansi(text).rstrip().splitlines()
    kept = "\n".join(lines[-max_lines:])
    if len(kept) > max_chars:
        kept = "…" + kept[-(max_chars - 1) :]
    return kept


def fenced(text: str, info: str = "") -> str:
    """Put text in a Markdown code block whose fence no line of the text can close."""
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


class _Tail:
    """Keep the last ``limit`` bytes written, and count what was dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 0)
        self.buf = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        self.buf += chunk
        if len(self.buf) > 2 * self.limit + _CHUNK:
            self._trim()

    def _trim(self) -> None:
        excess = len(self.buf) - self.limit
        if excess > 0:
            del self.buf[:excess]
            self.dropped += excess

    def text(self) -> str:
        self._trim()
        body = self.buf.decode("utf-8", errors="replace")
        if self.dropped:
            return f"[… {self.dropped} bytes of earlier output omitted …]\n{body}"
        return body


class _Reader:
    """Read a child's pipes and watch for its exit in one select loop."""

    def __init__(self, pipes: dict[int, _Tail], pid: int) -> None:
        self.pipes = dict(pipes)  # the pipes still open, each with the tail it fills
        self.pid = pid
        self.sel = selectors.DefaultSelector()
        for fd in self.pipes:
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, "out")
        self.pidfd: int | None = None
        try:  # Linux >= 5.3: the pidfd turns readable when the process exits.
            self.pidfd = os.pidfd_open(pid)
            self.sel.register(self.pidfd, selectors.EVENT_READ, "exit")
        except (AttributeError, OSError):
            self.pidfd = None

    @property
    def eof(self) -> bool:
        return not self.pipes

    def exited(self) -> bool:
        """Whether the leader exited, without reaping it: its pid keeps naming the group."""
        info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return info is not None

    def pump_until(self, deadline: float) -> bool:
        """Read output until the leader exits (True) or the deadline passes (False)."""
        while True:
            if self.exited():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            wait = remaining if self.pidfd is not None else min(remaining, _TICK_S)
            self._select(wait)

    def drain(self, deadline: float) -> None:
        """Read what is left in the pipe, but give up on writers that outlive the group."""
        if self.pidfd is not None:
            self.sel.unregister(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None
        while not self.eof and time.monotonic() < deadline:
            self._select(min(deadline - time.monotonic(), _TICK_S))

    def _select(self, timeout: float) -> None:
        if self.eof and self.pidfd is None:
            time.sleep(max(timeout, 0.0))
            return
        for key, _ in self.sel.select(max(timeout, 0.0)):
            if key.data == "out":
                self._read(key.fd)

    def _read(self, fd: int) -> None:
        try:
            chunk = os.read(fd, _CHUNK)
        except BlockingIOError:
            return
        if chunk:
            self.pipes[fd].add(chunk)
        else:
            del self.pipes[fd]
            self.sel.unregister(fd)

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        self.sel.close()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
