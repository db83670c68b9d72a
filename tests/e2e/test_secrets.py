"""The token never leaves the process: not in logs, comments, PR bodies, .git/config or argv."""

from __future__ import annotations

import base64
import os
import stat
import uuid
from pathlib import Path

from tests.conftest import DISPATCH, README_PATCH, TARGET, World, dispatch_body


def test_token_never_appears_anywhere_during_a_full_run(world: World, tmp_path: Path) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    encoded = base64.b64encode(f"x-access-token:{secret}".encode()).decode()
    world.emu.add_user("runner-bot", secret)
    for repo in (DISPATCH, TARGET):
        world.emu.set_permission(repo, "runner-bot", "write")
    good = world.file_issue(dispatch_body(instruction=f"Patch it.\n\n{README_PATCH}"))
    bad = world.file_issue(dispatch_body("t-missing", target="octocat/missing"))
    world.emu.inject(status=500, count=1)

    # Every git process the runner spawns goes through this wrapper, which records its argv.
    wrappers = tmp_path / "bin"
    wrappers.mkdir()
    argv_log = tmp_path / "git-argv.log"
    real_git = "/usr/bin/git"
    (wrappers / "git").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{argv_log}"\nexec {real_git} "$@"\n')
    (wrappers / "git").chmod(stat.S_IRWXU)
    env = world.env(GITHUB_TOKEN=secret, LOG_LEVEL="DEBUG", PATH=f"{wrappers}{os.pathsep}{os.environ['PATH']}",
                    GIT_PYTHON_GIT_EXECUTABLE=str(wrappers / "git"))

    result = world.cli("once", env=env)

    assert result.returncode == 0, result.stderr[-3000:]
    assert "processed" in world.labels(good) and "agent-failed" in world.labels(bad)
    assert any(r.user == "runner-bot" for r in world.emu.request_log), "the token was really used"
    assert argv_log.exists() and "push" in argv_log.read_text()

    def assert_clean(text: str, where: str) -> None:
        assert secret not in text, f"token leaked in {where}"
        assert encoded not in text, f"encoded token leaked in {where}"

    assert_clean(result.stdout + result.stderr, "the logs")
    assert_clean(argv_log.read_text(), "git argv")
    for number in (good, bad):
        for comment in world.comments(number):
            assert_clean(comment["body"], "a comment")
    for pull in world.pulls():
        assert_clean(pull["body"], "a PR body")
    for path in (tmp_path / "workspace").rglob("*"):
        if path.is_file() and (path.name == "config" or path.suffix in {".md", ".txt", ".lock"}):
            assert_clean(path.read_text(errors="replace"), str(path))
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert_clean(path.read_bytes().decode("latin-1"), str(path))
