"""Record every network attempt a real CLI makes inside the sandbox, for tests only.

The preset under test is pointed (through its ``*_BIN`` setting) at a small
wrapper script that runs the real CLI under ``strace -f``, tracing only the
system calls that reach out: ``connect``, ``sendto``, ``sendmsg`` and
``sendmmsg``. The wrapper and a FIFO sit in a directory shown read-only in
the sandbox (``SANDBOX_RO_PATHS``, with the real installation's paths); strace
writes its log into the FIFO (writing a FIFO needs no writable mount), and a
thread on the host reads it. Nothing the runner runs in production changes:
the preset runs its usual command line, only behind strace.

Every attempt is recorded, whether or not it succeeded, so a DNS lookup or a
connection the empty network namespace refused still shows.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.generators.agents.install import installation

TRACED = "connect,sendto,sendmsg,sendmmsg"
_INET = re.compile(r'sa_family=AF_INET6?, sin6?_port=htons\((\d+)\), '
                   r'(?:sin_addr=inet_addr\("([^"]+)"\)|sin6_flowinfo=[^,]+, inet_pton\(AF_INET6, "([^"]+)")')
_FAMILY = re.compile(r"sa_family=(AF_[A-Z0-9]+)")
_UNIX_PATH = re.compile(r'sun_path=(@?"[^"]*")')
_NSCD = ('"/var/run/nscd/socket"', '"/run/nscd/socket"')
_CALL = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s*(connect|sendto|sendmsg|sendmmsg)\(")


@dataclass(frozen=True)
class Attempt:
    """One traced call that named a destination."""

    syscall: str
    family: str
    address: str  # "127.0.0.1:PORT", "[::1]:53", a Unix socket path, or "" for netlink
    line: str

    @property
    def failed(self) -> bool:
        return bool(re.search(r"\) = -1 E[A-Z]+", self.line))

    @property
    def harmless(self) -> bool:
        """The C library's own local lookups that reach nothing: a netlink query of the interfaces, and
        nscd's socket (users and groups; absent in the sandbox, so the connect fails). A host lookup that
        fell back to DNS would still show as a connect or send to port 53."""
        return self.family == "AF_NETLINK" or (self.family == "AF_UNIX" and self.failed and self.address in _NSCD)


class NetworkRecorder:
    """A strace wrapper around one CLI, and the attempts it recorded."""

    def __init__(self, program: str, folder: Path) -> None:
        strace = shutil.which("strace")
        if strace is None:
            raise RuntimeError("strace is not installed (apt-get install strace)")
        self.program = program
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.fifo = folder / "strace.fifo"
        os.mkfifo(self.fifo)
        self.wrapper = folder / Path(program).name
        # -f follows every child (the CLI's shell commands too); --seccomp-bpf keeps untraced calls fast;
        # -qq drops attach/exit notes; -s 256 keeps Unix socket paths whole.
        self.wrapper.write_text(
            "#!/bin/sh\n"
            f"exec {strace} -f --seccomp-bpf -qq -s 256 -e trace={TRACED} -e signal=none "
            f"-o {self.fifo} {program} \"$@\"\n", encoding="utf-8")
        self.wrapper.chmod(self.wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def overrides(self, setting: str) -> dict[str, Any]:
        """The settings that run the CLI behind the wrapper: its ``*_BIN`` and what the sandbox must show."""
        real = installation(Path(self.program))
        return {setting: str(self.wrapper),
                "sandbox_ro_paths": ",".join([str(self.folder), *(str(p) for p in real.paths)])}

    def _read(self) -> None:
        # Each run of the CLI opens the FIFO once; read every run until the test closes it.
        while True:
            with self.fifo.open("r", encoding="utf-8", errors="replace") as stream:
                for line in stream:
                    if line == "\0STOP\n":
                        return
                    self.lines.append(line.rstrip("\n"))

    def close(self) -> None:
        with self.fifo.open("w", encoding="utf-8") as stream:
            stream.write("\0STOP\n")
        self._thread.join(10)

    def __enter__(self) -> NetworkRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def attempts(self) -> list[Attempt]:
        """Every traced call that named a destination (a send on a connected socket names none)."""
        found: list[Attempt] = []
        for line in self.lines:
            call = _CALL.match(line) or re.match(r"^()(connect|sendto|sendmsg|sendmmsg)\(", line)
            family = _FAMILY.search(line)
            if call is None or family is None:
                continue
            name = family.group(1)
            address = ""
            inet = _INET.search(line)
            if inet:
                host = inet.group(2) or f"[{inet.group(3)}]"
                address = f"{host}:{inet.group(1)}"
            elif name == "AF_UNIX":
                path = _UNIX_PATH.search(line)
                address = path.group(1) if path else "?"
            found.append(Attempt(call.group(2), name, address, line))
        return found


def assert_only_the_gateway(recorder: NetworkRecorder, port: int) -> list[Attempt]:
    """Every recorded attempt went to 127.0.0.1:PORT (the relay to the gateway): no DNS, no other host or socket.

    Only :attr:`Attempt.harmless` ones are let through, and they reach nothing outside the sandbox."""
    attempts = recorder.attempts
    assert recorder.lines, "strace recorded nothing: the wrapper did not run the CLI"
    inet = [a for a in attempts if a.family in ("AF_INET", "AF_INET6")]
    assert inet, "the CLI never connected to the gateway"
    strays = [a.line for a in attempts if not a.harmless and a.address != f"127.0.0.1:{port}"]
    assert not strays, f"network attempts other than the gateway at 127.0.0.1:{port}:\n" + "\n".join(strays)
    assert not [a for a in inet if a.address.endswith(":53")]
    return attempts
