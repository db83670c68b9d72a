"""The command generator drives a real child process in a real git worktree."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import structlog

from runner.config import load_settings
from runner.core.task import parse_task, task_names
from runner.errors import ConfigError, GeneratorError, GeneratorTimeout
from runner.generators.base import GenerationContext
from runner.generators.command import CommandGenerator, build

BODY = """<!-- agent_task_metadata {"task_id": "cmd-task-0001"} -->

## Instruction

{instruction}

Target Repository: octo/target
"""
PY = "python3"  # what the sandbox shows: the system interpreter


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture(autouse=True)
def _scripts_visible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent scripts live next to the worktree; the sandbox shows them read-only."""
    monkeypatch.setenv("SANDBOX_RO_PATHS", str(tmp_path))


@pytest.fixture()
def worktree(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# Target\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


def script(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def make_ctx(
    worktree: Path,
    *,
    seconds: float = 30.0,
    instruction: str = "Add a greeting file.",
    transcript_dir: Path | None = None,
    progress: list[str] | None = None,
    model: str | None = None,
) -> GenerationContext:
    task = parse_task(
        BODY.replace("{instruction}", instruction), dispatch_repo="o/d", issue_number=1
    )
    return GenerationContext(
        task=task,
        worktree=worktree,
        instruction=task.instruction,
        trace_path=task_names(task).trace_path,
        log=structlog.get_logger(),
        deadline=time.monotonic() + seconds,
        model=model,
        transcript_dir=transcript_dir,
        report_progress=(progress.append if progress is not None else lambda _m: None),
    )


def generator(template: str, **settings: object) -> CommandGenerator:
    return CommandGenerator(load_settings(env_file=None, command_template=template, **settings))


def alive(pid: int) -> bool:
    """Whether a pid names a running process (a zombie waiting for init counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_edits_are_reported_as_changes(worktree: Path, tmp_path: Path) -> None:
    agent = script(
        tmp_path,
        "agent.py",
        """
        import pathlib, sys
        instruction = pathlib.Path(sys.argv[2]).read_text()
        pathlib.Path("greeting.txt").write_text(instruction)
        pathlib.Path("README.md").write_text("# Target\\n\\nNow with a greeting.\\n")
        trace = pathlib.Path(sys.argv[3])
        trace.parent.mkdir(parents=True, exist_ok=True)
        trace.write_text("trace")
        print("Thinking about it...")
        print()
        print("Added greeting.txt and updated README.md.")
    """,
    )
    progress: list[str] = []
    ctx = make_ctx(worktree, transcript_dir=tmp_path / "transcripts", progress=progress)
    gen = generator(f"{PY} {agent} --message-file {{instruction_file}} {ctx.trace_path}")

    changes = gen.generate(ctx)

    assert changes.files == ("README.md", "greeting.txt")
    assert changes.summary == "Added greeting.txt and updated README.md."
    assert changes.generator == "command"
    assert (worktree / "greeting.txt").read_text().startswith("Add a greeting file.")
    assert changes.transcript is not None
    assert "Thinking about it..." in changes.transcript.read_text()
    assert len(progress) == 2 and "finished" in progress[-1] and "2 file(s)" in progress[-1]


def test_instruction_is_one_argument_and_never_reaches_a_shell(
    worktree: Path, tmp_path: Path
) -> None:
    agent = script(
        tmp_path,
        "argv.py",
        """
        import json, sys
        print(json.dumps(sys.argv[1:]))
    """,
    )
    hostile = "--version; touch pwned $(touch pwned2) `touch pwned3` 'quoted' \"double\""
    ctx = make_ctx(worktree, instruction=hostile)
    changes = generator(f"{PY} {agent} {{instruction}} --repo={{repo}}").generate(ctx)

    args = json.loads(changes.summary)
    assert len(args) == 2
    assert args[0] == " " + hostile + "\n"  # a leading dash is defused, the text is intact
    assert args[1] == "--repo=octo/target"
    assert not any(worktree.glob("pwned*"))


def test_commits_made_by_the_cli_are_folded_back(worktree: Path, tmp_path: Path) -> None:
    agent = script(
        tmp_path,
        "committer.sh",
        """
        echo new > added.txt
        git add added.txt
        git -c user.name=Aider -c user.email=aider@example.com commit -q -m "aider: add file"
        echo "Committed."
    """,
    )
    head = git(worktree, "rev-parse", "HEAD").strip()
    changes = generator(f"sh {agent} {{instruction_file}}").generate(make_ctx(worktree))

    # It committed into the sandbox's throw-away git directory: the files changed, HEAD did not.
    assert changes.files == ("added.txt",)
    assert git(worktree, "rev-parse", "HEAD").strip() == head
    assert "aider: add file" not in git(worktree, "log", "--all", "--format=%s")


def test_hanging_command_is_stopped_with_everything_it_started(
    worktree: Path, tmp_path: Path
) -> None:
    agent = script(
        tmp_path,
        "hang.sh",
        """
        setsid sh -c 'sleep 2.5; touch escaped' &
        (sleep 2.5; touch forked) &
        sleep 600
    """,
    )
    gen = generator(f"sh {agent} {{instruction_file}}")
    started = time.monotonic()

    with pytest.raises(GeneratorTimeout) as caught:
        gen.generate(make_ctx(worktree, seconds=1))

    assert time.monotonic() - started < 5
    assert "`sh` did not finish within 1 s and was stopped" in str(caught.value)
    time.sleep(max(0.0, started + 3 - time.monotonic()))
    assert not (worktree / "escaped").exists() and not (worktree / "forked").exists()


def test_github_token_never_reaches_the_command(
    worktree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secretvalue")
    monkeypatch.setenv("GH_TOKEN", "ghp_secretvalue")
    monkeypatch.setenv("SOME_DEPLOY_KEY", "deploy-secretvalue")
    dump = worktree / "env.json"
    agent = script(
        tmp_path,
        "env.py",
        f"""
        import json, os
        print(json.dumps(dict(os.environ)))
        open({str(dump)!r}, "w").write(json.dumps(dict(os.environ)))
    """,
    )
    ctx = make_ctx(worktree, transcript_dir=tmp_path / "t")
    gen = generator(
        f"{PY} {agent} {{instruction_file}}",
        # A careless allowlist that names the token still must not leak it.
        command_env_allowlist="PATH,HOME,GITHUB_TOKEN,SOME_DEPLOY_KEY,OPENAI_API_KEY",
        openai_api_key="sk-operator-chose-to-pass-this",
    )

    changes = gen.generate(ctx)

    env = json.loads(dump.read_text())
    assert "ghp_secretvalue" not in dump.read_text()
    assert "deploy-secretvalue" not in dump.read_text()
    assert not {"GITHUB_TOKEN", "GH_TOKEN", "SOME_DEPLOY_KEY"} & set(env)
    assert env["OPENAI_API_KEY"] == "sk-operator-chose-to-pass-this"
    assert env["AGENT_RUNNER_TASK_ID"] == "cmd-task-0001"
    assert env["AGENT_RUNNER_TARGET_REPO"] == "octo/target"
    assert changes.transcript is not None
    transcript = changes.transcript.read_text()
    assert "ghp_secretvalue" not in transcript
    assert "sk-operator-chose-to-pass-this" not in transcript


def test_non_zero_exit_raises_with_the_tail_of_the_output(worktree: Path, tmp_path: Path) -> None:
    agent = script(
        tmp_path,
        "fail.sh",
        """
        i=0
        while [ $i -lt 50 ]; do echo "progress line $i"; i=$((i+1)); done
        echo "fatal: the model refused" >&2
        exit 3
    """,
    )
    transcripts = tmp_path / "transcripts"
    with pytest.raises(GeneratorError) as caught:
        generator(f"sh {agent} {{instruction_file}}").generate(
            make_ctx(worktree, transcript_dir=transcripts)
        )

    message = str(caught.value)
    assert "`sh` exited with status 3" in message
    assert "fatal: the model refused" in message
    assert "progress line 49" in message
    assert "progress line 0\n" not in message
    # The whole output stays in the transcript for whoever debugs the failure.
    assert "progress line 0\n" in (transcripts / "command.log").read_text()


def test_missing_binary_says_to_install_it(worktree: Path) -> None:
    gen = generator("no-such-agent-cli-xyz --message-file {instruction_file}")
    with pytest.raises(GeneratorError) as caught:
        gen.generate(make_ctx(worktree))
    assert "`no-such-agent-cli-xyz` was not found" in str(caught.value)
    assert "Install it in the runner image" in str(caught.value)


def test_model_placeholder_uses_the_task_model(worktree: Path, tmp_path: Path) -> None:
    agent = script(
        tmp_path,
        "model.py",
        """
        import sys
        print(sys.argv[1])
    """,
    )
    gen = generator(f"{PY} {agent} {{model}} {{instruction_file}}", default_model="fallback-model")
    changes = gen.generate(make_ctx(worktree, model="gpt-4.1"))
    assert changes.summary == "gpt-4.1"
    assert changes.usage.model == "gpt-4.1"
    assert changes.files == ()
    assert any("without changing any file" in note for note in changes.notes)

    assert gen.generate(make_ctx(worktree)).summary == "fallback-model"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (None, "COMMAND_TEMPLATE is not set"),
        ("", "aider"),
        ("aider --message-file {branch}", "unknown placeholder `{branch}`"),
        ("aider --message-file {branch}", "{instruction_file}"),
        ("aider {instruction!r}", "unknown placeholder"),
        ("aider --yes", "never passes the task"),
        ("aider 'unbalanced {instruction}", "cannot be read"),
        ("aider {instruction", "stray brace"),
    ],
)
def test_bad_templates_fail_at_build(template: str | None, expected: str) -> None:
    settings = load_settings(env_file=None, command_template=template)
    with pytest.raises(ConfigError) as caught:
        build(settings)
    assert expected in str(caught.value)


def test_a_gateway_to_a_hosted_provider_without_its_key_fails_at_build() -> None:
    settings = load_settings(env_file=None, command_template="agent {instruction_file}", command_gateway="anthropic")
    with pytest.raises(ConfigError) as caught:
        build(settings)
    assert "needs ANTHROPIC_API_KEY" in str(caught.value)
    local = load_settings(env_file=None, command_template="agent {instruction_file}", command_gateway="openai",
                          openai_base_url="http://127.0.0.1:8080/v1")
    assert build(local) is not None  # a local server needs no key
