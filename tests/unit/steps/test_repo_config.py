"""What the target repository says about itself is read safely and explained when broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import GeneratorError, TaskSpecError
from runner.sandbox.procs import minimal_env
from runner.steps.repo_config import MAX_INSTRUCTION_CHARS, RepoConfig, load_repo_config, run_setup

PY = "python3"  # what the sandbox shows: the system interpreter


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_empty_repository_has_an_empty_config(tmp_path: Path) -> None:
    assert load_repo_config(tmp_path) == RepoConfig()


def test_every_source_is_collected_in_order(tmp_path: Path) -> None:
    write(tmp_path, "AGENTS.md", "Run `make lint` before committing.\n")
    write(tmp_path, "CLAUDE.md", "Prefer small functions.\n")
    write(tmp_path, ".github/copilot-instructions.md", "Use British spelling.\n")
    write(
        tmp_path,
        ".agent-runner.yml",
        "instructions: |\n  Never touch vendor/.\nsetup:\n  - pip install -e .\nvalidate:\n  - ruff check .\n  - pytest -q\n",
    )

    config = load_repo_config(tmp_path)

    assert config.setup == ("pip install -e .",)
    assert config.validate == ("ruff check .", "pytest -q")
    assert config.warnings == ()
    assert config.sources == (
        "AGENTS.md",
        "CLAUDE.md",
        ".github/copilot-instructions.md",
        ".agent-runner.yml",
    )
    text = config.instructions
    order = [
        text.index("## From `AGENTS.md`"),
        text.index("make lint"),
        text.index("## From `CLAUDE.md`"),
        text.index("## From `.github/copilot-instructions.md`"),
        text.index("British spelling"),
        text.index("## From `.agent-runner.yml`"),
        text.index("Never touch vendor/."),
    ]
    assert order == sorted(order)


def test_a_single_command_may_be_a_string(tmp_path: Path) -> None:
    write(tmp_path, ".agent-runner.yml", "validate: pytest -q\n")
    assert load_repo_config(tmp_path).validate == ("pytest -q",)


def test_claude_md_linked_to_agents_md_is_read_once(tmp_path: Path) -> None:
    write(tmp_path, "AGENTS.md", "Shared guidance.\n")
    (tmp_path / "CLAUDE.md").symlink_to("AGENTS.md")
    config = load_repo_config(tmp_path)
    assert config.instructions.count("Shared guidance.") == 1
    assert config.warnings == ()


@pytest.mark.parametrize(
    "name", ["AGENTS.md", ".agent-runner.yml", ".github/copilot-instructions.md"]
)
def test_symlinks_out_of_the_worktree_are_ignored(tmp_path: Path, name: str) -> None:
    outside = write(tmp_path / "outside", "secret.txt", "instructions: host secret\n")
    repo = tmp_path / "repo"
    (repo / ".github").mkdir(parents=True)
    (repo / name).symlink_to(outside)

    config = load_repo_config(repo)

    assert "host secret" not in config.instructions
    assert config.warnings == (f"`{name}` points outside the repository; it was ignored.",)


def test_directories_and_dangling_links_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "AGENTS.md").mkdir()
    (tmp_path / "CLAUDE.md").symlink_to(tmp_path / "missing")
    config = load_repo_config(tmp_path)
    assert config.instructions == ""
    assert config.warnings == (
        "`AGENTS.md` is not a regular file; it was ignored.",
        "`CLAUDE.md` is a broken link; it was ignored.",
    )


def test_each_instruction_file_is_capped(tmp_path: Path) -> None:
    write(tmp_path, "AGENTS.md", "x" * (MAX_INSTRUCTION_CHARS * 10))
    config = load_repo_config(tmp_path)
    assert len(config.instructions) < MAX_INSTRUCTION_CHARS + 200
    assert "only its first" in config.instructions


def test_unknown_keys_are_warnings(tmp_path: Path) -> None:
    write(tmp_path, ".agent-runner.yml", "validate: [pytest]\nlint: ruff\n")
    config = load_repo_config(tmp_path)
    assert config.validate == ("pytest",)
    assert config.warnings == (
        "`.agent-runner.yml` has an unknown key `lint` (known: instructions, setup, validate, fix_failed_checks); it was ignored.",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("validate:\n  - pytest\n setup: [x]\n", "line 3, column 2"),
        ("validate: [pytest\n", "line 2"),
        ("- pytest\n- ruff\n", "the top level must be a mapping"),
        (
            "validate:\n  run: pytest\n",
            "`validate` must be a command or a list of commands, not a mapping",
        ),
        ("setup: [1, 2]\n", "`setup` must be a command or a list of commands"),
        ("instructions: [a, b]\n", "`instructions` must be text"),
        ('validate: ["echo \'unbalanced"]\n', "cannot be read (No closing quotation)"),
        ("!!python/object/apply:os.system ['true']\n", "line 1"),
    ],
)
def test_a_broken_config_names_the_file_and_the_problem(
    tmp_path: Path, text: str, expected: str
) -> None:
    write(tmp_path, ".agent-runner.yml", text)
    with pytest.raises(TaskSpecError) as caught:
        load_repo_config(tmp_path)
    message = str(caught.value)
    assert message.startswith("The target repository's `.agent-runner.yml` is invalid:")
    assert expected in message
    assert "Fix `.agent-runner.yml`" in caught.value.hint


def test_setup_runs_in_order_and_reports(tmp_path: Path) -> None:
    config = RepoConfig(setup=(f'{PY} -c \'open("built", "w").write("1")\'', "cat built"))
    report = run_setup(config, tmp_path, minimal_env(["PATH"]), timeout_s=20)
    assert report.passed and report.results[1].output_tail == "1"


def test_failed_setup_names_the_command_and_stops(tmp_path: Path) -> None:
    config = RepoConfig(setup=("sh -c 'echo cannot resolve deps >&2; exit 2'", "touch never"))
    with pytest.raises(GeneratorError) as caught:
        run_setup(config, tmp_path, minimal_env(["PATH"]), timeout_s=20)
    message = str(caught.value)
    assert (
        "Setup command `sh -c 'echo cannot resolve deps >&2; exit 2'` failed with exit 2" in message
    )
    assert "cannot resolve deps" in message
    assert not (tmp_path / "never").exists()
