"""The network recorder the preset tests rely on sees what a CLI tries in the sandbox: DNS, other hosts, other ports.

A recorder that saw nothing would let every preset test pass; this runs a
probe that does the things a CLI must not, under the same wrapper, in the real
sandbox, and checks that each attempt is recorded and refused by the check.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from runner.sandbox.bwrap import Sandbox
from tests.e2e.netrecord import NetworkRecorder, assert_only_the_gateway

PROBE = """#!/usr/bin/python3
import socket
for target in (("127.0.0.1", 4321), ("10.1.2.3", 80), ("::1", 8080)):
    try:
        socket.create_connection(target, timeout=1).close()
    except OSError:
        pass
try:
    socket.getaddrinfo("api.example.com", 443)
except OSError:
    pass
"""


def test_the_recorder_sees_dns_and_every_other_connection_in_the_sandbox(tmp_path: Path) -> None:
    if shutil.which("strace") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("strace is not installed (apt-get install strace)")
        pytest.skip("strace is not installed")
    tools = tmp_path / "tools"
    tools.mkdir()
    probe = tools / "probe"
    probe.write_text(PROBE, encoding="utf-8")
    probe.chmod(0o755)
    worktree = tmp_path / "work"
    worktree.mkdir()
    with NetworkRecorder(str(probe), tmp_path / "netrecord") as recorder:
        result = Sandbox().run([str(recorder.wrapper)], worktree=worktree, env={"PATH": "/usr/bin:/bin"},
                               deadline_s=60, extra_ro=(tools, recorder.folder))
    assert result.exit_code == 0, result.output

    addresses = {a.address for a in recorder.attempts}
    assert {"127.0.0.1:4321", "10.1.2.3:80", "[::1]:8080"} <= addresses, recorder.lines
    assert any(a.endswith(":53") for a in addresses), recorder.lines  # the resolver's query, though it failed
    with pytest.raises(AssertionError) as refused:
        assert_only_the_gateway(recorder, 4321)
    message = str(refused.value)
    assert "10.1.2.3" in message and "htons(53)" in message and '"::1"' in message, message
