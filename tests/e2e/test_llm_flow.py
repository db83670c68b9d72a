"""LLM generators through the whole pipeline: dispatch issue → model tool calls → validated PR."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from github_emulator.llm import (
    AnthropicEmulator,
    GeminiEmulator,
    LLMEmulator,
    OpenAIEmulator,
    Reply,
)

from tests.conftest import DISPATCH, README_PATCH, TARGET, World, dispatch_body

KEY = "sk-emulated-key-0000"


def llm_settings(name: str, emu: LLMEmulator, **extra: Any) -> dict[str, Any]:
    if name == "openai":
        values = {"openai_api_key": KEY, "openai_base_url": f"{emu.base_url}/v1", "openai_model": "gpt-4o-mini"}
    elif name == "gemini":
        values = {"gemini_api_key": KEY, "gemini_base_url": emu.base_url, "gemini_model": "gemini-2.5-flash"}
    else:
        values = {"anthropic_api_key": KEY, "anthropic_base_url": emu.base_url, "anthropic_model": "claude-haiku-4-5"}
    return {"generators": name, **values, **extra}


#: The model server each LLM generator talks to.
EMULATORS: dict[str, type[LLMEmulator]] = {"openai": OpenAIEmulator, "anthropic": AnthropicEmulator,
                                           "gemini": GeminiEmulator}


@pytest.fixture(params=["openai", "anthropic", "gemini"])
def provider(request: pytest.FixtureRequest) -> Iterator[tuple[str, LLMEmulator]]:
    with EMULATORS[request.param]() as emu:
        yield request.param, emu


def call(name: str, args: dict[str, Any]) -> Reply:
    return Reply.tool_call(name, args, input_tokens=1200, output_tokens=80)


def target_file(world: World, path: str, branch: str = "agent-task-test-tas") -> str | None:
    return world.emu.file_at(TARGET, branch, path)


def changed_paths(world: World, branch: str = "agent-task-test-tas") -> set[str]:
    from runner.steps.git import run_git

    out = run_git(world.emu.bare_repo_path(TARGET), "diff", "--name-only", f"main...{branch}")
    return set(out.split())


def test_scripted_session_edits_two_files_and_the_pr_tells_the_story(world: World, provider) -> None:
    name, emu = provider
    emu.script([
        call("list_files", {}),
        call("read_file", {"path": "src/app.py"}),
        call("edit_file", {"path": "src/app.py", "search": "print('hello')", "replace": "print('hello, world')"}),
        call("write_file", {"path": "docs/NOTES.md", "content": "# Notes\n\nGreets the world.\n"}),
        call("finish", {"summary": "Made the app greet the world and wrote notes."}),
    ])
    number = world.file_issue(dispatch_body(instruction="Greet the world and document it."))

    outcomes = world.run_once(**llm_settings(name, emu))

    assert [o.status for o in outcomes] == ["succeeded"], outcomes
    assert changed_paths(world) == {"src/app.py", "docs/NOTES.md", "agent-tasks/test-tas.md"}
    assert target_file(world, "src/app.py") == "print('hello, world')\n"
    pull = world.pulls()[0]
    assert "Made the app greet the world and wrote notes." in pull["body"]
    assert "6000 in / 400 out tokens" in pull["body"]  # five turns of 1200 in / 80 out
    assert "Transcript excerpt" in pull["body"] and KEY not in pull["body"]
    assert "processed" in world.labels(number)
    assert all(r.auth_present for r in emu.requests)


def test_repository_instructions_and_model_label_reach_the_model(world: World) -> None:
    with OpenAIEmulator() as emu:
        emu.script([call("write_file", {"path": "a.txt", "content": "b\n"}), call("finish", {"summary": "Done."})])
        world.emu.create_repo("octocat/guided", files={"AGENTS.md": "Always write tests first.\n", "a.txt": "a\n"})
        number = world.file_issue(dispatch_body(target="octocat/guided"), labels=("copilot-agent", "model:gpt-4.1"))

        world.run_once(**llm_settings("openai", emu))

        sent = emu.completions[0]
        assert sent.contains("Always write tests first.")
        assert sent.body["model"] == "gpt-4.1"
        assert "processed" in world.labels(number)


CHECK = "import pathlib, sys\nsys.exit(0 if 'fixed' in pathlib.Path('src/app.py').read_text() else 3)\n"


def validated_world(world: World) -> None:
    world.emu.create_repo("octocat/checked", files={"src/app.py": "print('hello')\n", "check.py": CHECK})


def test_validation_failure_goes_back_to_the_model_until_it_passes(world: World) -> None:
    validated_world(world)
    with OpenAIEmulator() as emu:
        emu.script([
            call("write_file", {"path": "src/app.py", "content": "print('broken')\n"}),
            call("finish", {"summary": "First try."}),
            call("write_file", {"path": "src/app.py", "content": "print('fixed')\n"}),
            call("finish", {"summary": "Fixed after validation."}),
        ])
        number = world.file_issue(dispatch_body(target="octocat/checked"))

        world.run_once(**llm_settings("openai", emu, validate_commands="python3 check.py", validation_rounds=2))

        assert any(r.contains("exit") and r.contains("check.py") for r in emu.completions[2:])
        pull = world.pulls("octocat/checked")[0]
        assert not pull["draft"] and "✅" in pull["body"] and "Fixed after validation." in pull["body"]
        assert world.emu.file_at("octocat/checked", pull["head"]["ref"], "src/app.py") == "print('fixed')\n"
        assert "processed" in world.labels(number)


@pytest.mark.parametrize("on_failure", ["draft", "fail"])
def test_validation_that_never_passes(world: World, on_failure: str) -> None:
    validated_world(world)
    with OpenAIEmulator() as emu:
        emu.script([
            call("write_file", {"path": "src/app.py", "content": "print('broken')\n"}),
            call("finish", {"summary": "Try one."}),
            call("write_file", {"path": "src/app.py", "content": "print('still broken')\n"}),
            call("finish", {"summary": "Try two."}),
        ])
        number = world.file_issue(dispatch_body(target="octocat/checked"))

        world.run_once(**llm_settings("openai", emu, validate_commands="python3 check.py", validation_rounds=1,
                                      on_validation_failure=on_failure))

        pulls = world.pulls("octocat/checked")
        comment = [c["body"] for c in world.comments(number) if "agent-runner:result" in c["body"]][0]
        if on_failure == "draft":
            assert len(pulls) == 1 and pulls[0]["draft"]
            assert "❌" in pulls[0]["body"] and "opened as a draft" in pulls[0]["body"]
            assert "processed" in world.labels(number)
        else:
            assert pulls == []
            assert "Validation failed after 2 tries" in comment and "python3 check.py" in comment
            assert "agent-failed" in world.labels(number)


def test_fallback_chain_uses_the_next_generator_and_says_so(world: World) -> None:
    with OpenAIEmulator() as emu:
        emu.script([Reply.error(500, "upstream exploded")] * 6)
        number = world.file_issue(dispatch_body(instruction=f"Patch it.\n\n{README_PATCH}"))

        # Time compressed: the failing turn is retried in place for 1 s, not MODEL_TURN_RETRY_SECONDS' 300.
        world.run_once(**llm_settings("openai", emu, generators="openai,patch", model_turn_retry_seconds=1))

        pull = world.pulls()[0]
        assert "`openai` failed and was skipped" in pull["body"]
        assert "Generated by `patch`" in pull["body"]
        comment = [c["body"] for c in world.comments(number) if "agent-runner:result" in c["body"]][0]
        assert "`openai` failed and was skipped" in comment
        assert target_file(world, "README.md").endswith("Patched by the runner.\n")
        assert "processed" in world.labels(number)


def test_budget_exceeded_fails_with_the_amount_spent(world: World) -> None:
    with OpenAIEmulator() as emu:
        emu.script([call("list_files", {})] * 5)
        number = world.file_issue(dispatch_body())

        world.run_once(**llm_settings("openai", emu, max_tokens_per_task=2000))

        comment = [c["body"] for c in world.comments(number) if "agent-runner:result" in c["body"]][0]
        assert "MAX_TOKENS_PER_TASK" in comment and "2560" in comment
        assert "agent-failed" in world.labels(number) and world.pulls() == []


def test_hostile_model_output_is_refused_and_the_task_completes(world: World) -> None:
    with OpenAIEmulator() as emu:
        emu.script([
            call("write_file", {"path": "../escape.txt", "content": "x"}),
            call("write_file", {"path": ".git/hooks/pre-commit", "content": "#!/bin/sh\nexit 1\n"}),
            call("write_file", {"path": ".github/workflows/x.yml", "content": "on: push\n"}),
            call("write_file", {"path": "ok.txt", "content": "fine\n"}),
            call("finish", {"summary": "Wrote what was allowed."}),
        ])
        number = world.file_issue(dispatch_body())

        world.run_once(**llm_settings("openai", emu))

        assert changed_paths(world) == {"ok.txt", "agent-tasks/test-tas.md"}
        assert not (world.root / "escape.txt").exists()
        assert "processed" in world.labels(number)
        assert DISPATCH in world.pulls()[0]["body"]
