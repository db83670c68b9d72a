"""The old runner's chain as one setting, `GENERATORS=cline,gemini`: Cline first, the Gemini API when Cline cannot.

Cline is the real CLI in the sandbox behind the model gateway, talking to the
OpenAI emulator; `gemini` is the native generator on google-genai, talking to
the Gemini emulator. Whether Cline is missing, fails, or finishes without a
change, the `gemini` generator makes the change, and the issue is told which
generator made it and why Cline did not. A missing CLI skips, except with
CI=true, where it fails.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from github_emulator.llm import GeminiEmulator, OpenAIEmulator, Reply

from tests.conftest import TARGET, World, dispatch_body

OPENAI_KEY = "sk-real-openai-key-0123456789abcdefABCDEF"
GEMINI_KEY = "AIzaSyRealGeminiKey0123456789abcdefABCD"
INSTRUCTION = "Create hello.txt with a greeting."

#: How Cline does not make the change → what the issue says about it.
CASES = {
    "missing": ([], "which is not an executable file. Install it (`npm install -g cline@3.0.65`"),
    "fails": ([Reply.error(400, "The request is invalid: the context is too long.")],
              "The request is invalid: the context is too long."),
    "no change": ([Reply.text("I would rather not touch any file.")], "Cline changed no file"),
}


def cline_path() -> str:
    found = os.environ.get("CLINE_BIN") or shutil.which("cline")
    if found and os.access(found, os.X_OK):
        return found
    message = "cline is not installed (set CLINE_BIN; eval \"$(bash .ci/agent-clis)\")"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.mark.parametrize("case", sorted(CASES))
def test_gemini_makes_the_change_when_cline_does_not(world: World, case: str, tmp_path: Path) -> None:
    script, why = CASES[case]
    program = str(tmp_path / "no-such" / "cline") if case == "missing" else cline_path()
    with OpenAIEmulator(api_key=OPENAI_KEY) as openai, GeminiEmulator(api_key=GEMINI_KEY) as gemini:
        openai.script(script)
        gemini.script([Reply.tool_call("write_file", {"path": "hello.txt", "content": "hello from gemini\n"}),
                       Reply.tool_call("finish", {"summary": "Wrote hello.txt with a greeting."})])
        number = world.file_issue(dispatch_body(instruction=INSTRUCTION))
        outcomes = world.run_once(generators="cline,gemini", cline_bin=program,
                                  openai_base_url=f"{openai.base_url}/v1", openai_api_key=OPENAI_KEY,
                                  gemini_base_url=gemini.base_url, gemini_api_key=GEMINI_KEY,
                                  gemini_model="gemini-2.5-flash", generator_timeout_seconds=120)

        assert [o.status for o in outcomes] == ["succeeded"], (outcomes, world.comments(number))
        pull = world.pulls()[0]
        assert world.emu.file_at(TARGET, pull["head"]["ref"], "hello.txt") == "hello from gemini\n"
        assert len(openai.completions) == len(script) and openai.remaining == 0
        assert len(gemini.completions) == 2
        comment = world.comments(number)[-1]["body"]
        assert "finished task `test-task-12345678` with `gemini`, after `cline` failed" in comment, comment
        assert "`cline` failed and was skipped" in comment and why in comment, comment
        assert "processed" in world.labels(number)
        for body in (comment, pull["body"]):
            assert OPENAI_KEY not in body and GEMINI_KEY not in body
