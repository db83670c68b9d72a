"""Untrusted code runs in the real bubblewrap sandbox and never reaches a credential.

Three hostile actors run the same attack (tests/e2e/attack.py): the agent CLI of the
`command` generator, a repository setup command, and a test file that a generated diff
adds and validation runs. Each must fail at reading the runner's environment or memory,
reading the mirror's config, DATA_DIR or ~/.gitconfig, writing outside its worktree,
planting a hook that later runs, connecting to the emulator, and outliving its run.
What a user sees is asserted: the outcome, the comment, what was pushed, and that the
token is in no branch, comment, PR body, log line or sampled /proc/*/environ.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import structlog

from runner.errors import WorkspaceError
from runner.steps.git import run_git
from tests.conftest import DISPATCH, World, dispatch_body

TOKEN = "ghs_SandboxCanaryToken0123456789abcdefXYZ"
HEADER = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
HOSTILE = "octocat/hostile"
ATTACK = (Path(__file__).parent / "attack.py").read_text()
#: Processes that may hold the token in their environment: git fetch/push and their helpers.
GIT_TRANSPORT = ("fetch", "push", "remote-http", "send-pack", "index-pack", "pack-objects", "rev-list")


@dataclass
class Hostile:
    world: World
    root: Path
    home: Path
    markers: Path
    survivor: str
    samples: list[tuple[int, str]] = field(default_factory=list)
    logs: str = ""

    @property
    def mirror(self) -> Path:
        return self.world.root / "workspace" / "mirrors" / "octocat" / "hostile.git"

    @property
    def data(self) -> Path:
        return self.world.root / "data"

    def script(self, **extra: Any) -> str:
        port = urlsplit(self.world.emu.base_url).port
        config = {
            "runner_pid": os.getpid(),
            "port": port,
            "marker_dir": str(self.markers),
            "survivor_seconds": self.survivor,
            "read": {
                "mirror-config": str(self.mirror / "config"),
                "data-canary": str(self.data / "canary.txt"),
                "ledger": str(self.data / "ledger.db"),
                "gitconfig": str(self.home / ".gitconfig"),
            },
            "write": {
                "mirror-objects": str(self.mirror / "objects" / "pwned"),
                "data-dir": str(self.data / "pwned"),
                "gitconfig-write": str(self.home / ".gitconfig"),
                "workspace-dir": str(self.world.root / "workspace" / "pwned"),
                "worktree-parent": "../pwned-parent",
            },
            "hooks": {
                "mirror-post-commit": str(self.mirror / "hooks" / "post-commit"),
                "mirror-reference-transaction": str(self.mirror / "hooks" / "reference-transaction"),
                "mirror-pre-push": str(self.mirror / "hooks" / "pre-push"),
            },
            **extra,
        }
        return ATTACK.replace("__CONFIG__", json.dumps(config))

    def settings(self, **overrides: Any) -> dict[str, Any]:
        return {"github_token": TOKEN, "generator_timeout_seconds": 20, **overrides}

    def run(self, **overrides: Any) -> list[Any]:
        """One pass of the runner, with every process's environment sampled while it works."""
        stop = threading.Event()
        sampler = threading.Thread(target=self._sample, args=(stop,), daemon=True)
        sampler.start()
        try:
            with structlog.testing.capture_logs() as entries:
                return self.world.run_once(**self.settings(**overrides))
        finally:
            stop.set()
            sampler.join()
            self.logs = "\n".join(json.dumps(e, default=str) for e in entries)

    def _sample(self, stop: threading.Event) -> None:
        while not stop.is_set():
            for pid in (p for p in os.listdir("/proc") if p.isdigit()):
                try:
                    before = Path(f"/proc/{pid}/cmdline").read_bytes()
                    environ = Path(f"/proc/{pid}/environ").read_bytes()
                    cmdline = (Path(f"/proc/{pid}/cmdline").read_bytes() or before).replace(b"\0", b" ").decode()
                except OSError:
                    continue
                if not cmdline:  # it exited between the reads: which program it was is unknown, skip it
                    continue
                if TOKEN.encode() in environ or HEADER.encode() in environ:
                    self.samples.append((int(pid), cmdline))
            time.sleep(0.01)

    def lines(self, text: str, who: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith(f"{who}:")]

    def assert_contained(self, who: str, report: str) -> None:
        lines = self.lines(report, who)
        assert f"{who}:survivors=started" in lines, report  # the attack ran to the end
        broke = [line for line in lines if line.rsplit("=", 1)[1].startswith(("READ", "WROTE", "CONNECTED"))]
        assert not broke, "\n".join(lines)
        assert list(self.markers.iterdir()) == [], "a planted hook ran under the runner"
        for hook in ("post-commit", "reference-transaction", "pre-push"):
            assert not (self.mirror / "hooks" / hook).exists()
        assert not (self.data / "pwned").exists() and not (self.world.root / "workspace" / "pwned").exists()
        assert (self.home / ".gitconfig").read_text() == "[user]\n\tname = canary\n"
        assert not list((self.world.root / "workspace").rglob("pwned-parent"))
        assert self.survivors() == []
        self.assert_token_absent()

    def survivors(self) -> list[str]:
        found = []
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            found = [cmd for cmd in _cmdlines() if f"sleep {self.survivor}" in cmd]
            if not found:
                return []
            time.sleep(0.05)
        return found

    def assert_token_absent(self) -> None:
        secrets = (TOKEN, HEADER)
        emu = self.world.emu
        comments = emu.comments(DISPATCH, 1)  # each test files one dispatch issue
        assert comments and not any(s in c["body"] for c in comments for s in secrets)
        for repo in (DISPATCH, HOSTILE):
            for pull in emu.pulls(repo):
                assert not any(s in (pull["body"] or "") for s in secrets)
            bare = emu.bare_repo_path(repo)
            refs = run_git(bare, "for-each-ref", "--format=%(objectname)").split()
            for secret in secrets:
                hits = _grep(bare, secret, refs)
                assert not hits, f"the token is in a pushed branch of {repo}: {hits}"
        assert self.logs and not any(s in self.logs for s in secrets)
        leaked = [(pid, cmd) for pid, cmd in self.samples
                  if not (os.path.basename(cmd.split(" ")[0]).startswith("git")
                          and any(word in cmd for word in GIT_TRANSPORT))]
        assert not leaked, f"processes other than git fetch/push held the token: {leaked}"


@pytest.fixture()
def hostile(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hostile]:
    world.emu.add_user("sandbox-bot", TOKEN, admin=True)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = canary\n")
    monkeypatch.setenv("HOME", str(home))
    (world.root / "data").mkdir()
    (world.root / "data" / "canary.txt").write_text("data canary\n")
    markers = tmp_path / "markers"
    markers.mkdir()
    yield Hostile(world=world, root=tmp_path, home=home, markers=markers,
                  survivor=f"{os.getpid() % 1000 + 100}.{time.time_ns() % 10**6}")


def _cmdlines() -> list[str]:
    out = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return out


def _grep(bare: Path, text: str, refs: list[str]) -> str:
    """The files of any ref that hold ``text`` (git grep exits 1 when none does)."""
    try:
        return run_git(bare, "grep", "-I", "-l", "-F", text, *refs) if refs else ""
    except WorkspaceError:
        return ""


def _add_file_patch(path: str, text: str) -> str:
    body = "".join(f"+{line}\n" for line in text.splitlines())
    count = len(text.splitlines())
    return f"```diff\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{count} @@\n{body}```"


def test_hostile_agent_cli_is_contained(hostile: Hostile) -> None:
    agent = hostile.root / "agent"
    agent.mkdir()
    (agent / "attack.py").write_text(hostile.script())
    hostile.world.emu.create_repo(HOSTILE, files={"README.md": "# hostile\n"})
    number = hostile.world.file_issue(dispatch_body(target=HOSTILE, instruction="Do your worst."))

    outcomes = hostile.run(generators="command", sandbox_ro_paths=str(agent),
                           command_template=f"python3 {agent / 'attack.py'} cli {{instruction_file}}")

    assert [o.status for o in outcomes] == ["succeeded"]
    pull = hostile.world.pulls(HOSTILE)[0]
    loot = hostile.world.emu.file_at(HOSTILE, pull["head"]["ref"], "loot-cli.txt")
    assert loot is not None
    assert "processed" in hostile.world.labels(number)
    hostile.assert_contained("cli", loot)


def test_hostile_setup_command_is_contained(hostile: Hostile) -> None:
    hostile.world.emu.create_repo(HOSTILE, files={
        "README.md": "# hostile\n",
        "attack.py": hostile.script(),
        ".agent-runner.yml": "setup:\n  - python3 attack.py setup\n",
    })
    number = hostile.world.file_issue(dispatch_body(target=HOSTILE))

    outcomes = hostile.run(generators="patch", repo_commands="allow")

    assert [o.status for o in outcomes] == ["succeeded"]
    pull = hostile.world.pulls(HOSTILE)[0]
    loot = hostile.world.emu.file_at(HOSTILE, pull["head"]["ref"], "loot-setup.txt")
    assert loot is not None
    assert "processed" in hostile.world.labels(number)
    hostile.assert_contained("setup", loot)


def test_test_added_by_the_diff_is_contained_when_validation_runs_it(
    hostile: Hostile,
) -> None:
    hostile.world.emu.create_repo(HOSTILE, files={"README.md": "# hostile\n"})
    patch = _add_file_patch("test_attack.py", hostile.script(exit=1))
    number = hostile.world.file_issue(dispatch_body(target=HOSTILE, instruction=f"Add a test.\n\n{patch}"))

    outcomes = hostile.run(generators="patch", validate_commands="python3 test_attack.py validate",
                           validation_rounds=0)

    # The test fails on purpose: the PR is a draft and its body carries the test's output.
    assert [o.status for o in outcomes] == ["succeeded"]
    pull = hostile.world.pulls(HOSTILE)[0]
    assert pull["draft"]
    assert "processed" in hostile.world.labels(number)
    hostile.assert_contained("validate", pull["body"])


def test_a_command_that_hangs_is_killed_with_everything_it_started(
    hostile: Hostile,
) -> None:
    agent = hostile.root / "agent"
    agent.mkdir()
    (agent / "attack.py").write_text(hostile.script(hang=True))
    hostile.world.emu.create_repo(HOSTILE, files={"README.md": "# hostile\n"})
    number = hostile.world.file_issue(dispatch_body(target=HOSTILE))

    outcomes = hostile.run(generators="command", sandbox_ro_paths=str(agent), generator_timeout_seconds=2,
                           command_template=f"python3 {agent / 'attack.py'} cli {{instruction_file}}")

    assert [o.status for o in outcomes] == ["failed"]
    comment = hostile.world.comments(number)[-1]["body"]
    assert re.search(r"`python3` did not finish within [\d.]+ s and was stopped", comment), comment
    assert "agent-failed" in hostile.world.labels(number)
    assert hostile.world.pulls(HOSTILE) == []
    assert hostile.world.emu.branch_sha(HOSTILE, "agent-task-test-tas") is None
    assert hostile.survivors() == []
    hostile.assert_token_absent()
