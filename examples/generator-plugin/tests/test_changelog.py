"""How to test a generator plugin: the pure core on plain values, then the real runner end to end.

The end-to-end tests run the whole agent-runner pipeline (intake, git clone,
your generator, commit, push, pull request, issue comment, labels) against
``github_emulator.GitHubEmulator``: a real GitHub-shaped HTTP server and real
git on 127.0.0.1, with no credentials and no network. Run them from this
directory after installing the plugin, so its entry point is registered:

    pip install -e '.[test]'
    pytest
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from runner.app import build_app
from runner.config import load_settings
from runner.errors import GeneratorError
from github_emulator import ADMIN_TOKEN, GitHubEmulator

from agent_runner_changelog import MAX_ENTRY_CHARS, add_entry, changelog_entry

DISPATCH = "octocat/dispatch"
TARGET = "octocat/target"


# -- the pure core -------------------------------------------------------------------

@pytest.mark.parametrize(("before", "after"), [
    pytest.param(None, "# Changelog\n\n## Unreleased\n\n- Add dark mode\n", id="missing file"),
    pytest.param("# Changelog\n\n## Unreleased\n\n- Fix login\n\n## 1.0.0\n\n- First\n",
                 "# Changelog\n\n## Unreleased\n\n- Fix login\n- Add dark mode\n\n## 1.0.0\n\n- First\n",
                 id="appended to the list"),
    pytest.param("# Changelog\n\n## Unreleased\n## 1.0.0\n",
                 "# Changelog\n\n## Unreleased\n\n- Add dark mode\n\n## 1.0.0\n", id="empty section"),
    pytest.param("# Changelog\n\n## [1.0.0] - 2024-01-01\n\n- First\n",
                 "# Changelog\n\n## Unreleased\n\n- Add dark mode\n\n## [1.0.0] - 2024-01-01\n\n- First\n",
                 id="new section above the newest release"),
    pytest.param("# Changelog\n\nNothing yet.\n\n",
                 "# Changelog\n\nNothing yet.\n\n## Unreleased\n\n- Add dark mode\n", id="no release yet"),
    pytest.param("# Changelog\r\n\r\n## [Unreleased]\r\n\r\n- Fix login\r\n",
                 "# Changelog\r\n\r\n## [Unreleased]\r\n\r\n- Fix login\r\n- Add dark mode\r\n",
                 id="keep-a-changelog heading, CRLF kept"),
])
def test_add_entry(before: str | None, after: str) -> None:
    assert add_entry(before, "Add dark mode") == after


def test_add_entry_is_idempotent() -> None:
    once = add_entry(None, "Add dark mode")
    assert add_entry(once, "Add dark mode") is once


@pytest.mark.parametrize(("instruction", "entry"), [
    ("Add dark mode.\n\nUse the system setting.", "Add dark mode."),
    ("\n\n  - Add   dark\tmode  \nmore", "Add dark mode"),
    ("1. Add dark mode", "Add dark mode"),
])
def test_changelog_entry_is_the_first_line(instruction: str, entry: str) -> None:
    assert changelog_entry(instruction) == entry


@pytest.mark.parametrize(("instruction", "message"), [
    ("```diff\n--- a/x\n+++ b/x\n```", "starts with a code block"),
    ("   \n\n", "is empty"),
    ("x" * (MAX_ENTRY_CHARS + 1), f"at most {MAX_ENTRY_CHARS} characters"),
])
def test_bad_instructions_say_what_to_do(instruction: str, message: str) -> None:
    with pytest.raises(GeneratorError) as caught:
        changelog_entry(instruction)
    assert message in caught.value.message
    assert "one-line summary" in caught.value.hint  # what the issue comment tells the person


# -- end to end: the real runner against the GitHub emulator --------------------------

def issue_body(instruction: str, task_id: str = "changelog-task-1") -> str:
    """A dispatch issue in the documented format."""
    metadata = json.dumps({"task_id": task_id})
    return (f"<!-- agent_task_metadata {metadata} -->\n\n## Instruction\n\n{instruction}\n\n"
            f"Target Repository: {TARGET}\n")


@pytest.fixture()
def emulator(tmp_path: Path) -> Iterator[GitHubEmulator]:
    with GitHubEmulator(tmp_path / "github") as emu:
        emu.create_repo(DISPATCH)
        emu.create_repo(TARGET, files={"README.md": "# target\n"})
        yield emu


def run_once(emu: GitHubEmulator, tmp_path: Path, generators: str = "changelog") -> list[Any]:
    """One pass of the runner, configured as an operator would, but pointed at the emulator."""
    if not entry_points(group="agent_runner.generators", name="changelog"):
        pytest.fail("The plugin is not installed; run `pip install -e .` in examples/generator-plugin.")
    settings = load_settings(
        env_file=None,
        github_token=ADMIN_TOKEN,
        github_api_url=emu.base_url,
        dispatch_repo=DISPATCH,
        generators=generators,
        workspace_dir=tmp_path / "workspace",
        data_dir=tmp_path / "data",
        github_throttle=False,  # no pause between writes: the emulator does not need it
    )
    app = build_app(settings)
    try:
        return app.executor.run_once()
    finally:
        app.close()


def test_issue_becomes_a_pull_request_with_the_entry(emulator: GitHubEmulator, tmp_path: Path) -> None:
    number = emulator.create_issue(DISPATCH, "Dark mode", issue_body("Add dark mode.\n\nFollow the OS."),
                                   labels=["copilot-agent"])

    outcomes = run_once(emulator, tmp_path)

    assert [o.status for o in outcomes] == ["succeeded"]
    [pull] = emulator.pulls(TARGET)
    branch = pull["head"]["ref"]
    changelog = emulator.file_at(TARGET, branch, "CHANGELOG.md")
    assert changelog == "# Changelog\n\n## Unreleased\n\n- Add dark mode.\n"
    assert "Generated by `changelog`" in pull["body"]
    assert "processed" in emulator.labels(DISPATCH, number)


def test_a_rerun_changes_nothing(emulator: GitHubEmulator, tmp_path: Path) -> None:
    number = emulator.create_issue(DISPATCH, "Dark mode", issue_body("Add dark mode."), labels=["copilot-agent"])
    run_once(emulator, tmp_path)
    branch = emulator.pulls(TARGET)[0]["head"]["ref"]
    sha = emulator.branch_sha(TARGET, branch)

    emulator.remove_label(DISPATCH, number, "processed")  # how a person asks for a re-run
    outcomes = run_once(emulator, tmp_path)

    assert [o.status for o in outcomes] == ["succeeded"]
    assert emulator.branch_sha(TARGET, branch) == sha
    assert len(emulator.pulls(TARGET)) == 1


def test_a_bad_instruction_is_explained_on_the_issue(emulator: GitHubEmulator, tmp_path: Path) -> None:
    number = emulator.create_issue(DISPATCH, "Patch", issue_body("```diff\n--- a/README.md\n```"),
                                   labels=["copilot-agent"])

    outcomes = run_once(emulator, tmp_path)

    assert [o.status for o in outcomes] == ["failed"]
    [comment] = [c["body"] for c in emulator.comments(DISPATCH, number) if "agent-runner:result" in c["body"]]
    assert "starts with a code block" in comment and "one-line summary" in comment
    assert "agent-failed" in emulator.labels(DISPATCH, number)
    assert emulator.pulls(TARGET) == []
