"""What only the `gemini` generator does, over real HTTP to the Gemini emulator through google-genai.

The contract every LLM generator keeps (tools, guard, caps, deadlines, keys) is
in test_llm_generators.py, parametrized over all three; here: the request in
Gemini's own shape, each fault the Gemini API has (503, 429 with a short or a
long wait, a reply cut short, a blocked answer), the SDK never retrying behind
our back, the old runner's key name, and `agent-runner doctor`'s check.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from github_emulator.llm import GeminiEmulator, Reply, ToolCall

from runner.config import load_settings
from runner.errors import GeneratorError, GeneratorUnavailable
from runner.generators import registry
from runner.generators.base import Budget
from runner.generators.llm.gemini import GeminiGenerator
from tests.e2e.test_llm_generators import changed, context
from tests.e2e.test_llm_generators import worktree as worktree  # noqa: F401 (the fixture)

KEY = "AIzaSyEmulatedGeminiKey0123456789abcdef"
MODEL = "gemini-2.5-pro"


def generator(emu: GeminiEmulator, **overrides: Any) -> GeminiGenerator:
    values = {"generators": "gemini", "gemini_api_key": KEY, "gemini_base_url": emu.base_url,
              "gemini_model": MODEL, "model_turn_retry_seconds": 0, **overrides}
    return GeminiGenerator(load_settings(env_file=None, **values))


def call(name: str, args: dict[str, Any], **kwargs: Any) -> Reply:
    return Reply.tool_call(name, args, input_tokens=100, output_tokens=20, **kwargs)


WRITE = call("write_file", {"path": "a.txt", "content": "a\n"})
FINISH = call("finish", {"summary": "Wrote a.txt."})


def test_the_request_is_gemini_shaped_and_the_key_stays_in_the_header(worktree: Path) -> None:
    with GeminiEmulator(api_key=KEY) as emu:
        emu.script([Reply.tool_calls(ToolCall("list_files", {}, id="fc-1"), ("read_file", {"path": "README.md"})),
                    WRITE, FINISH])
        changes = generator(emu).generate(context(worktree, budget=Budget(max_output_tokens=777)))
        first, second, third = emu.completions
    assert changes.summary == "Wrote a.txt." and changes.usage.model == MODEL
    assert first.path == f"/v1beta/models/{MODEL}:generateContent" and first.model == MODEL
    body = first.body or {}
    assert "Use four spaces." in body["systemInstruction"]["parts"][0]["text"]
    assert body["generationConfig"]["maxOutputTokens"] == 777
    declarations = body["tools"][0]["functionDeclarations"]
    assert {d["name"] for d in declarations} >= {"write_file", "edit_file", "finish"}
    write = next(d for d in declarations if d["name"] == "write_file")
    # The JSON Schema as is (google-genai spells the field as the proto does; the API takes either spelling).
    schema = write.get("parametersJsonSchema") or write.get("parameters_json_schema")
    assert schema["required"] == ["path", "content"] and "parameters" not in write
    # No file edited yet: a call is required (ANY); after the edit, the model may answer (AUTO).
    assert body["toolConfig"]["functionCallingConfig"]["mode"] == "ANY"
    assert (third.body or {})["toolConfig"]["functionCallingConfig"]["mode"] == "AUTO"
    # The calls go back with the results: the model's id echoed, none made up for the call without one.
    model_turn, results = (second.body or {})["contents"][-2:]
    assert model_turn["role"] == "model" and [p["functionCall"].get("id") for p in model_turn["parts"]] == ["fc-1", None]
    assert results["role"] == "user" and [p["functionResponse"].get("id") for p in results["parts"]] == ["fc-1", None]
    assert second.tool_results == ["README.md\nsrc/app.py", "     1\t# target"]
    assert all(r.auth_present and "key=" not in r.path for r in emu.requests)


def test_a_503_and_a_short_429_are_retried_in_the_turn_and_a_long_429_is_not(worktree: Path) -> None:
    with GeminiEmulator() as emu:
        emu.script([Reply.error(503, "The model is overloaded."), WRITE,
                    Reply.error(429, "Resource has been exhausted.", retry_after=1), FINISH])
        changes = generator(emu).generate(context(worktree, seconds=120))  # time for three tries a turn
        assert changes.files == ("a.txt",) and len(emu.completions) == 4
        # The retried turns were the same request: the conversation did not grow for a failure.
        bodies = [r.body for r in emu.completions]
        assert bodies[0] == bodies[1] and bodies[2] == bodies[3]
        assert (changes.usage.input_tokens, changes.usage.output_tokens) == (200, 40)  # failures cost nothing

        emu.script([Reply.error(429, "Quota exceeded.", retry_after=3600), WRITE])
        started = time.monotonic()
        with pytest.raises(GeneratorUnavailable, match="HTTP 429: Quota exceeded") as info:
            generator(emu).generate(context(worktree, seconds=600))
    assert info.value.transient and time.monotonic() - started < 5
    assert len(emu.completions) == 5 and emu.remaining == 1  # no hour-long sleep, no retry


def test_the_sdk_never_retries_behind_the_loops_back(worktree: Path) -> None:
    with GeminiEmulator() as emu:
        emu.script([Reply.error(503)] * 5)
        with pytest.raises(GeneratorUnavailable, match="HTTP 503"):
            generator(emu).generate(context(worktree, seconds=120))
        assert len(emu.completions) == 3  # our two retries; google-genai's own (five by default) are off
        assert emu.remaining == 2


def test_a_reply_cut_short_is_transient_and_retried(worktree: Path) -> None:
    with GeminiEmulator() as emu:
        emu.script([Reply.malformed(), WRITE, FINISH])
        changes = generator(emu).generate(context(worktree, seconds=120))
        assert changes.files == ("a.txt",) and len(emu.completions) == 3
        emu.script([Reply.malformed()] * 3)
        with pytest.raises(GeneratorUnavailable, match="could not be read") as info:
            generator(emu).generate(context(worktree, seconds=120))
    assert info.value.transient


def test_a_blocked_answer_fails_at_once_and_says_why(worktree: Path) -> None:
    with GeminiEmulator() as emu:
        emu.script([Reply.refusal("PROHIBITED_CONTENT"), WRITE])
        with pytest.raises(GeneratorError, match="blocked it \\(finishReason PROHIBITED_CONTENT\\)") as info:
            generator(emu).generate(context(worktree))
        assert len(emu.completions) == 1 and emu.remaining == 1
    assert not info.value.transient and changed(worktree) == set()


def test_the_old_runners_key_name_still_works(worktree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_GEMINI_API_KEY", KEY)
    with GeminiEmulator(api_key=KEY) as emu:
        emu.script([WRITE, FINISH])
        settings = load_settings(env_file=None, generators="gemini", gemini_base_url=emu.base_url)
        assert settings.gemini_api_key is not None and KEY in settings.secrets()
        assert GeminiGenerator(settings).generate(context(worktree)).files == ("a.txt",)


def test_doctor_lists_the_models_and_names_the_setting_for_a_bad_key() -> None:
    assert registry()["gemini"][1] == "built-in"
    with GeminiEmulator(api_key=KEY) as emu:
        assert generator(emu).check() == "Gemini answered with 1 model (gemini-2.5-flash)"
        with pytest.raises(GeneratorError) as info:
            generator(emu, gemini_api_key="AIza-wrong").check()
    message = str(info.value)
    assert "GEMINI_API_KEY" in message and "API key not valid" in message and "AIza-wrong" not in message
    assert not info.value.transient
