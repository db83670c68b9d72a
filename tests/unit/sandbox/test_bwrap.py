"""Sandbox settings and the pure parts of the bubblewrap command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.config import load_settings
from runner.errors import ConfigError
from runner.sandbox.bwrap import OFF_WARNING, Sandbox, _bwrap_argv, _tmp_top


@pytest.mark.parametrize(
    ("setting", "repo", "allowed"),
    [
        ("", "octo/app", False),
        ("off", "octo/app", False),
        ("allow", "octo/app", True),
        ("octo/*", "Octo/App", True),
        ("octo/*,other/tools", "other/tools", True),
        ("octo/*", "evil/app", False),
    ],
)
def test_repo_commands_are_opt_in(setting: str, repo: str, allowed: bool) -> None:
    settings = load_settings(env_file=None, repo_commands=setting)
    assert settings.repo_commands_allowed(repo) is allowed


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"repo_commands": "yes"}, "REPO_COMMANDS"),
        ({"sandbox": "docker"}, "SANDBOX"),
        ({"sandbox_network": "on"}, "SANDBOX_NETWORK"),
        ({"sandbox_ro_paths": "relative/dir"}, "must be an absolute path"),
        ({"sandbox_pids": 1}, "SANDBOX_PIDS"),
    ],
)
def test_bad_sandbox_settings_name_the_setting(overrides: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_settings(env_file=None, **overrides)


def test_settings_build_the_sandbox_and_off_carries_the_warning(tmp_path: Path) -> None:
    settings = load_settings(env_file=None, sandbox="off", sandbox_network="allow",
                             sandbox_ro_paths=str(tmp_path), workspace_dir=tmp_path / "ws")
    sandbox = Sandbox.from_settings(settings)
    assert sandbox.network and sandbox.extra_ro == (tmp_path,) and (tmp_path / "ws") in sandbox.hidden
    assert sandbox.warning == OFF_WARNING and Sandbox().warning is None


def test_bwrap_argv_isolates_by_default_and_binds_only_the_worktree_writable(tmp_path: Path) -> None:
    worktree = tmp_path / "wt"
    worktree.mkdir()
    argv = _bwrap_argv("bwrap", worktree=worktree, network=False, hidden=(), readonly=[tmp_path], git_binds=[])
    for flag in ("--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
                 "--die-with-parent", "--new-session"):
        assert flag in argv
    writable = [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"]
    assert writable == [str(worktree)]
    assert argv[-3:] == ["/", "--chdir", str(worktree)]
    assert "--unshare-net" not in _bwrap_argv("bwrap", worktree=worktree, network=True, hidden=(),
                                              readonly=[], git_binds=[])


def test_tmp_top() -> None:
    assert _tmp_top(Path("/tmp/pytest-of-root/x/wt")) == "/tmp/pytest-of-root"
    assert _tmp_top(Path("/workspace/worktrees/x")) is None
    assert _tmp_top(Path("/tmp")) is None
