"""The LLM generators (OpenAI, Anthropic, Gemini), over real HTTP to the emulators through the official SDKs, on real git worktrees."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from github_emulator.llm import (
    AnthropicEmulator,
    GeminiEmulator,
    LLMEmulator,
    OpenAIEmulator,
    Reply,
)

from runner.config import Settings, load_settings
from runner.core.pricing import cost_usd
from runner.core.task import parse_task
from runner.errors import (
    BudgetExceeded,
    ConfigError,
    GeneratorError,
    GeneratorTimeout,
    GeneratorUnavailable,
    ModelRequestRefused,
    NoChangeMade,
)
from runner.generators.base import Budget, Changes, GenerationContext, Generator
from runner.generators.llm.anthropic import AnthropicGenerator
from runner.generators.llm.gemini import GeminiGenerator
from runner.generators.llm.loop import JSON_FALLBACK_NOTE
from runner.generators.llm.openai import OpenAIGenerator

API_KEY = "sk-emulated-secret-123"
INSTRUCTION = "Make src/app.py greet the world and add docs/NOTES.md."
BODY = (
    '<!-- agent_task_metadata {"task_id": "llm-task-12345678"} -->\n\n'
    f"## Instruction\n\n{INSTRUCTION}\n\nTarget Repository: octo/target\n"
)
APP = "def main():\n    print('hello')\n"


@dataclass(frozen=True)
class Provider:
    name: str
    emulator: type[LLMEmulator]
    model: str

    def settings(self, emu: LLMEmulator | None, **overrides: Any) -> Settings:
        values: dict[str, Any] = {"generators": self.name}
        if self.name == "openai":
            values.update(openai_api_key=API_KEY, openai_model=self.model,
                          openai_base_url=f"{emu.base_url}/v1" if emu else None)
        else:
            values.update({f"{self.name}_api_key": API_KEY, f"{self.name}_model": self.model,
                           f"{self.name}_base_url": emu.base_url if emu else None})
        values.update(overrides)
        return load_settings(env_file=None, **values)

    def generator(self, settings: Settings) -> Generator:
        kinds = {"openai": OpenAIGenerator, "anthropic": AnthropicGenerator, "gemini": GeminiGenerator}
        return kinds[self.name](settings)  # type: ignore[no-any-return]


PROVIDERS = [Provider("openai", OpenAIEmulator, "gpt-4o-mini"), Provider("anthropic", AnthropicEmulator, "claude-haiku-4-5"),
             Provider("gemini", GeminiEmulator, "gemini-2.5-flash")]


@pytest.fixture(params=PROVIDERS, ids=lambda p: p.name)
def provider(request: pytest.FixtureRequest) -> Provider:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture()
def emu(provider: Provider) -> Iterator[LLMEmulator]:
    with provider.emulator() as server:
        yield server


@pytest.fixture()
def worktree(tmp_path: Path) -> Path:
    """A real git repository with one commit, like the runner's worktree."""
    root = tmp_path / "work"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text(APP)
    (root / "README.md").write_text("# target\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "init")
    return root


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def changed(root: Path) -> set[str]:
    return {line[3:] for line in git(root, "status", "--porcelain", "-uall").splitlines()}


def context(worktree: Path, *, seconds: float = 30, budget: Budget | None = None,
            progress: Callable[[str], None] | None = None, transcript_dir: Path | None = None) -> GenerationContext:
    task = parse_task(BODY, dispatch_repo="o/d", issue_number=1)
    return GenerationContext(
        task=task, worktree=worktree, instruction=task.instruction, trace_path="agent-tasks/llm-task.md",
        log=structlog.get_logger(), deadline=time.monotonic() + seconds, budget=budget or Budget(),
        repo_instructions="Use four spaces.", transcript_dir=transcript_dir,
        report_progress=progress or (lambda message: None),
    )


def call(name: str, args: dict[str, Any] | str, **kwargs: Any) -> Reply:
    return Reply.tool_call(name, args, input_tokens=100, output_tokens=20, **kwargs)


def test_scripted_session_edits_exactly_two_files(provider: Provider, emu: LLMEmulator, worktree: Path,
                                                  tmp_path: Path) -> None:
    emu.script([
        call("list_files", {}),
        call("read_file", {"path": "src/app.py"}, text=f"Reading it. (key {API_KEY})"),
        call("edit_file", {"path": "src/app.py", "search": "print('hello')", "replace": "print('hello, world')"}),
        call("write_file", {"path": "docs/NOTES.md", "content": "# Notes\n"}),
        call("finish", {"summary": "Greets the world and adds notes."}),
    ])
    progress: list[str] = []
    changes = provider.generator(provider.settings(emu)).generate(
        context(worktree, progress=progress.append, transcript_dir=tmp_path / "transcripts"))

    assert isinstance(changes, Changes)
    assert changes.summary == "Greets the world and adds notes."
    assert changes.files == ("src/app.py", "docs/NOTES.md")
    assert changed(worktree) == {"src/app.py", "docs/NOTES.md"}
    assert (worktree / "src/app.py").read_text() == "def main():\n    print('hello, world')\n"
    assert changes.generator == provider.name and changes.notes == ()
    assert (changes.usage.input_tokens, changes.usage.output_tokens) == (500, 100)
    assert changes.usage.model == provider.model
    assert changes.usage.cost_usd == pytest.approx(cost_usd(provider.model, 500, 100))
    assert progress[2] == "turn 3/30: edit_file src/app.py" and len(progress) == 5

    requests = emu.completions
    assert len(requests) == 5 and all(r.auth_present for r in requests)
    assert requests[0].contains(INSTRUCTION) and requests[0].contains("Use four spaces.")
    assert requests[0].body and requests[0].model == provider.model and requests[0].body["tools"]
    assert requests[1].tool_results == ["README.md\nsrc/app.py"]  # the listing came back
    assert requests[2].tool_results == ["     1\tdef main():\n     2\t    print('hello')"]
    assert requests[3].tool_results == ["Edited src/app.py (38 bytes)."]
    assert requests[4].tool_results == ["Wrote docs/NOTES.md (8 bytes)."]

    assert changes.transcript is not None and changes.transcript.exists()
    transcript = changes.transcript.read_text() + (changes.transcript.with_suffix(".jsonl")).read_text()
    assert "edit_file" in transcript and API_KEY not in transcript and "***" in transcript


HOSTILE = [
    ({"path": "../x", "content": "evil"}, "`..` would leave the repository"),
    ({"path": ".git/hooks/pre-commit", "content": "#!/bin/sh\nevil\n"}, "nothing under `.git` may be changed"),
    ({"path": "link/evil.txt", "content": "evil"}, "a symlink in it points outside the repository"),
    ({"path": ".github/workflows/x.yml", "content": "on: push"}, "`.github/workflows/` are not allowed"),
    ({"path": "big.txt", "content": "x" * 50_000_000}, "over the 1000000-byte limit"),
]


def test_hostile_tool_calls_are_refused_and_sent_back(provider: Provider, emu: LLMEmulator, worktree: Path,
                                                      tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (worktree / "link").symlink_to(outside)
    emu.script([call("write_file", args) for args, _ in HOSTILE] + [
        Reply.tool_call("write_file", "{not json"),
        Reply.tool_call("rm_rf", {"path": "/"}),
        Reply.tool_call("edit_file", {"path": "src/app.py", "search": "nope", "replace": "x"}),
        Reply.tool_call("finish", {"summary": "Nothing was safe to do."}),
        Reply.tool_call("finish", {"summary": "Nothing was safe to do."}),
    ])
    with pytest.raises(NoChangeMade) as info:
        provider.generator(provider.settings(emu)).generate(context(worktree))

    requests = emu.completions
    for index, (_, refusal) in enumerate(HOSTILE):
        [result] = requests[index + 1].tool_results
        assert result.startswith("ERROR: Refused") and refusal in result, (refusal, result)
    [malformed] = requests[len(HOSTILE) + 1].tool_results
    assert malformed.startswith("ERROR:") and ("not valid JSON" in malformed or "missing the required" in malformed)
    assert "unknown tool `rm_rf`" in requests[len(HOSTILE) + 2].tool_results[0]
    assert "`search` was not found in src/app.py" in requests[len(HOSTILE) + 3].tool_results[0]
    assert all(len(r.raw) < 2_000_000 for r in requests[len(HOSTILE) + 1:])  # the 50 MB are not re-sent
    # A finish without an edit is refused once, then the task fails quoting the model, not claiming work.
    assert "no file has been changed yet" in requests[len(HOSTILE) + 4].tool_results[0]
    assert "called finish without editing any file" in str(info.value)
    assert "“Nothing was safe to do.”" in str(info.value)
    assert changed(worktree) == {"link"}  # only the symlink we planted
    assert list(outside.iterdir()) == [] and not (tmp_path / "x").exists()
    assert not (worktree / ".git/hooks/pre-commit").exists()


def test_token_budget_stops_between_turns(provider: Provider, emu: LLMEmulator, worktree: Path) -> None:
    emu.script([call("list_files", {}), call("list_files", {}), call("list_files", {})])
    with pytest.raises(BudgetExceeded) as info:
        provider.generator(provider.settings(emu)).generate(context(worktree, budget=Budget(max_tokens=150)))
    message = str(info.value)
    assert "240 tokens (200 input, 40 output)" in message and "$0.0" in message and "150 tokens" in message
    assert len(emu.completions) == 2


def test_cost_budget_and_turn_limit(provider: Provider, emu: LLMEmulator, worktree: Path) -> None:
    emu.script([Reply.tool_call("list_files", {}, input_tokens=1_000_000, output_tokens=0)])
    with pytest.raises(BudgetExceeded, match=r"over the limit of \$0\.01"):
        provider.generator(provider.settings(emu)).generate(context(worktree, budget=Budget(max_cost_usd=0.01)))
    emu.script([call("list_files", {}), call("list_files", {}), call("list_files", {})])
    with pytest.raises(BudgetExceeded, match="did not finish within MAX_TURNS=2 turns; it used 240 tokens"):
        provider.generator(provider.settings(emu)).generate(context(worktree, budget=Budget(max_turns=2)))


def test_deadline_with_a_slow_reply(provider: Provider, emu: LLMEmulator, worktree: Path) -> None:
    emu.script([Reply.slow(5, then=Reply.text("too late"))])
    started = time.monotonic()
    with pytest.raises(GeneratorTimeout, match="deadline"):
        provider.generator(provider.settings(emu)).generate(context(worktree, seconds=1.0))
    assert time.monotonic() - started < 3


def test_tool_calling_rejected_falls_back_to_json(provider: Provider, worktree: Path) -> None:
    plan = {"summary": "Adds notes and greets the world.", "edits": [
        {"path": "docs/NOTES.md", "content": "# Notes\n"},
        {"path": "src/app.py", "search": "print('hello')", "replace": "print('hello, world')"},
        {"path": ".git/config", "content": "evil"},
    ]}
    with provider.emulator(reject_tools=True) as emu:
        emu.script([Reply.text("Sure, here is my plan."), Reply.text(f"```json\n{json.dumps(plan)}\n```")])
        changes = provider.generator(provider.settings(emu)).generate(context(worktree))
    assert changes.notes[0] == JSON_FALLBACK_NOTE
    assert "skipped an edit of `.git/config`" in changes.notes[1]
    assert changes.summary == "Adds notes and greets the world."
    assert changes.files == ("docs/NOTES.md", "src/app.py")
    assert changed(worktree) == {"docs/NOTES.md", "src/app.py"}
    first, fallback, retry = emu.completions
    assert first.body and first.body.get("tools") and not (fallback.body or {}).get("tools")
    assert fallback.contains("print('hello')")  # files named in the task are shown to the model
    assert retry.contains("ERROR: the reply holds no JSON object")


def test_server_errors_are_transient(provider: Provider, emu: LLMEmulator, worktree: Path) -> None:
    # MODEL_TURN_RETRY_SECONDS=0: the turn is not retried in place (tests/e2e/test_outages.py shows that).
    emu.script([Reply.error(500, "upstream exploded", retry_after=0.01)] * 3)
    with pytest.raises(GeneratorUnavailable, match="HTTP 500: upstream exploded") as info:
        provider.generator(provider.settings(emu, model_turn_retry_seconds=0)).generate(
            context(worktree, seconds=120))
    assert info.value.transient
    assert len(emu.completions) == 3  # the SDK's own two retries, then we give up

    emu.script([Reply.error(429, "slow down", retry_after=3600), Reply.text("never asked for")])
    started = time.monotonic()
    with pytest.raises(GeneratorUnavailable, match="HTTP 429"):
        provider.generator(provider.settings(emu, model_turn_retry_seconds=0)).generate(
            context(worktree, seconds=600))
    assert time.monotonic() - started < 5 and len(emu.completions) == 4  # no hour-long sleep, no retry


def test_bad_key_is_permanent_and_names_the_setting(provider: Provider, worktree: Path) -> None:
    with provider.emulator(api_key="the-right-key") as emu:
        with pytest.raises(GeneratorError) as info:
            provider.generator(provider.settings(emu)).generate(context(worktree))
    assert not info.value.transient
    assert f"{provider.name.upper()}_API_KEY" in str(info.value) and API_KEY not in str(info.value)


def test_unreachable_server_is_transient(provider: Provider, worktree: Path) -> None:
    with provider.emulator() as emu:  # not retried in place: the freed port may serve another test soon
        settings = provider.settings(emu, model_turn_retry_seconds=0)
        host = emu.base_url.split("//", 1)[1].split("/", 1)[0]
    with pytest.raises(GeneratorUnavailable, match="Could not reach") as info:
        provider.generator(settings).generate(context(worktree, seconds=10))
    assert f"{provider.name.upper()}_BASE_URL" in str(info.value)  # names the setting to check
    assert host in str(info.value)  # and where it tried


def test_keys_are_required_unless_a_local_server_is_named(provider: Provider, emu: LLMEmulator,
                                                          worktree: Path) -> None:
    key = f"{provider.name}_api_key"
    with pytest.raises(ConfigError, match=f"{provider.name.upper()}_API_KEY"):
        provider.generator(provider.settings(None, **{key: None}))
    emu.script([call("write_file", {"path": "a.txt", "content": "a\n"}), Reply.text("Wrote a.txt.")])
    changes = provider.generator(provider.settings(emu, **{key: None})).generate(context(worktree))
    assert changes.summary == "Wrote a.txt." and changes.files == ("a.txt",)
    assert emu.completions[0].auth_present


def test_read_only_tools_answer_with_bounded_results(provider: Provider, emu: LLMEmulator, worktree: Path,
                                                     tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("top secret")
    (worktree / "link").symlink_to(tmp_path / "outside")
    (worktree / "notes.txt").write_text("\n".join(f"line {n}" for n in range(1, 1001)))
    emu.script([
        call("search_text", {"pattern": "print("}),
        call("search_text", {"pattern": r"de[f]\s+main", "regex": True}),
        call("search_text", {"pattern": "(", "regex": True}),
        call("read_file", {"path": "src/app.py", "start_line": 2, "end_line": 2}),
        call("read_file", {"path": "notes.txt"}),
        call("list_files", {"pattern": "*.py"}),
        call("read_file", {"path": "link/secret.txt"}),
        call("read_file", {"path": "src/app.py", "bogus": 1}),
        call("read_file", {"path": "missing.txt"}),
        call("read_file", {"path": "src"}),
        call("write_file", {"path": "seen.txt", "content": "looked\n"}),
        call("finish", {"summary": "Looked around."}),
    ])
    changes = provider.generator(provider.settings(emu)).generate(context(worktree))
    seen = [r.tool_results for r in emu.completions[1:]]
    assert seen[0] == ["src/app.py:2:     print('hello')"]
    assert seen[1] == ["src/app.py:1: def main():"]
    assert seen[2][0].startswith("ERROR: `(` is not a valid regular expression")
    assert seen[3] == ["     2\t    print('hello')"]
    assert seen[4][0].endswith("   400\tline 400\n… (lines 1-400 of 1000; ask for more with start_line)")
    assert seen[5] == ["src/app.py"]
    assert seen[6][0].startswith("ERROR: Refused") and "top secret" not in seen[6][0]
    assert "unknown arguments ['bogus']" in seen[7][0]
    assert seen[8][0].startswith("ERROR: missing.txt does not exist.")
    assert seen[9][0] == "ERROR: src is a directory, not a file. Use list_files to see what it holds."
    assert changes.files == ("seen.txt",) and changes.summary == "Looked around."


def test_a_later_tool_refusal_is_not_mistaken_for_missing_tool_support(provider: Provider, emu: LLMEmulator,
                                                                         worktree: Path) -> None:
    emu.script([call("list_files", {}), Reply.error(400, "Invalid tool_call_id in messages[3].")])
    with pytest.raises(ModelRequestRefused, match="tool_call_id") as info:
        provider.generator(provider.settings(emu)).generate(context(worktree))
    assert not info.value.transient and len(emu.completions) == 2
