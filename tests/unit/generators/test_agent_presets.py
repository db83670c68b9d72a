"""The agent presets: how each CLI is found, configured, and read back, on plain values."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest

from runner.config import load_settings
from runner.errors import ConfigError
from runner.generators import build_chain, registry
from runner.generators.agents.aider import AiderPreset, model_metadata
from runner.generators.agents.base import AgentRun, summary_text
from runner.generators.agents.claude_code import ClaudeCodePreset, result_object
from runner.generators.agents.cline import ClinePreset
from runner.generators.agents.codex import CodexPreset, config_toml
from runner.generators.agents.gemini_cli import GeminiCliPreset
from runner.generators.agents.install import Installation, installation, locate
from runner.generators.agents.mini_swe_agent import TRAJECTORY, MiniSweAgentPreset, read_trajectory
from runner.generators.agents.opencode import OpencodePreset
from runner.sandbox.procs import ProcResult

FAKE = Installation(Path("/opt/cli/bin/agent"), (), "file")


def run_of(tmp_path: Path, **extra: object) -> AgentRun:
    values: dict[str, object] = {"worktree": tmp_path, "model": "emulated-coder", "prompt": "Do it.",
                                 "scratch": tmp_path, "base_url": "http://127.0.0.1:4321", "token": "agent-runner-gateway-x"}
    values.update(extra)
    return AgentRun(**values)  # type: ignore[arg-type]


def result(stdout: str, stderr: str = "", code: int = 0) -> ProcResult:
    return ProcResult(argv=("cli",), exit_code=code, output=stdout, duration_s=1.0, stderr=stderr)


def settings(**extra: object):  # noqa: ANN201
    """Settings a preset can be built from: the gateway refuses to start without an upstream key."""
    return load_settings(env_file=None, **{"openai_api_key": "sk-test", "anthropic_api_key": "sk-ant-test",
                                           "gemini_api_key": "gm-test", **extra})


def test_presets_are_registered_built_ins() -> None:
    known = registry(plugins=[])
    for name in ("claude-code", "codex", "aider", "mini-swe-agent", "gemini-cli", "opencode", "cline"):
        assert known[name][1] == "built-in"


def test_a_missing_cli_is_a_config_error_that_says_how_to_install_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    for variable in ("CLAUDE_CODE_BIN", "CODEX_BIN", "AIDER_BIN", "MINI_SWE_AGENT_BIN"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ConfigError, match="`claude` is not on PATH and CLAUDE_CODE_BIN is not set.*npm install"):
        build_chain(["claude-code"], settings())
    with pytest.raises(ConfigError, match="CODEX_BIN is `/nowhere/codex`, which is not an executable file"):
        build_chain(["codex"], settings(codex_bin="/nowhere/codex"))
    with pytest.raises(ConfigError, match="AIDER_BIN"):
        load_settings(env_file=None, aider_bin="relative/aider")
    with pytest.raises(ConfigError, match="mini"):
        locate("mini", None, "MINI_SWE_AGENT_BIN", "Install it.")


def test_npm_and_venv_installations_are_shown_whole(tmp_path: Path) -> None:
    modules = tmp_path / "npm" / "node_modules"
    (modules / ".bin").mkdir(parents=True)
    (modules / "@x" / "cli" / "bin").mkdir(parents=True)
    real = modules / "@x" / "cli" / "bin" / "cli.js"
    real.write_text("#!/usr/bin/env node\n")
    real.chmod(0o755)
    (modules / ".bin" / "cli").symlink_to("../@x/cli/bin/cli.js")
    npm = installation(modules / ".bin" / "cli")
    assert (npm.kind, npm.paths) == ("npm", (modules,))

    base = tmp_path / "pyenv" / "3.11"
    (base / "bin").mkdir(parents=True)
    (base / "bin" / "python3").write_text("")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(f"home = {base / 'bin'}\ninclude-system-site-packages = false\n")
    (venv / "bin" / "python3").symlink_to(base / "bin" / "python3")
    (venv / "bin" / "aider").write_text(f"#!{venv}/bin/python3\n")
    found = installation(venv / "bin" / "aider")
    assert found.kind == "venv" and set(found.paths) == {venv, base}


def test_claude_code_result_object_becomes_summary_and_usage(tmp_path: Path) -> None:
    preset = ClaudeCodePreset(settings(anthropic_model="claude-x"), install=FAKE)
    out = json.dumps({"type": "result", "subtype": "success", "is_error": False, "num_turns": 3,
                      "result": "Added the greeting.", "permission_denials": [], "total_cost_usd": 0.01,
                      "usage": {"input_tokens": 100, "cache_read_input_tokens": 20, "output_tokens": 7}})
    outcome = preset.parse(result("noise\n" + out + "\n"), run_of(tmp_path))
    assert outcome.ok and outcome.summary == "Added the greeting."
    assert (outcome.usage.input_tokens, outcome.usage.output_tokens) == (120, 7)
    assert "success after 3 turn(s)" in outcome.transcript
    failed = preset.parse(result(json.dumps({"type": "result", "subtype": "error_max_turns", "is_error": True})),
                          run_of(tmp_path))
    assert not failed.ok and failed.problem == "error max turns" and not failed.summary.startswith("{")
    assert preset.parse(result("", "boom"), run_of(tmp_path)).problem == "boom"
    assert result_object('{"type": "system"}') is None
    assert preset.default_model() == "claude-x"
    argv = preset.argv(run_of(tmp_path))
    assert "--dangerously-skip-permissions" in argv and "Do it." not in argv  # the prompt goes on stdin
    env = preset.env(run_of(tmp_path))
    assert env["IS_SANDBOX"] == "1" and env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "1" and env["ANTHROPIC_API_KEY"].startswith("agent-runner-gateway-")


def test_codex_config_is_valid_toml_with_everything_off(tmp_path: Path) -> None:
    config = tomllib.loads(config_toml('odd"model', "http://127.0.0.1:4321/v1"))
    assert config["model"] == 'odd"model' and config["model_provider"] == "gateway"
    assert config["analytics"] == {"enabled": False} and config["features"] == {"plugins": False}
    assert config["check_for_update_on_startup"] is False
    provider = config["model_providers"]["gateway"]
    assert provider["wire_api"] == "responses" and provider["env_key"] == "GATEWAY_API_KEY"
    assert provider["request_max_retries"] == 0 and provider["stream_max_retries"] == 0
    preset = CodexPreset(settings(), install=FAKE)
    assert set(preset.home_files(run_of(tmp_path))) == {".codex/config.toml"}
    assert "--dangerously-bypass-approvals-and-sandbox" in preset.argv(run_of(tmp_path))


def test_codex_events_become_summary_transcript_and_problems(tmp_path: Path) -> None:
    preset = CodexPreset(settings(), install=FAKE)
    events = [
        {"type": "thread.started"},
        {"type": "item.completed", "item": {"type": "command_execution", "command": "ls", "exit_code": 0,
                                            "aggregated_output": "a.txt\n"}},
        {"type": "item.completed", "item": {"type": "agent_message", "text": "Listed and wrote the file."}},
        {"type": "turn.completed", "usage": {"input_tokens": 300, "output_tokens": 12}},
    ]
    outcome = preset.parse(result("\n".join(json.dumps(e) for e in events)), run_of(tmp_path))
    assert outcome.ok and outcome.summary == "Listed and wrote the file."
    assert (outcome.usage.input_tokens, outcome.usage.output_tokens) == (300, 12)
    assert "$ ls  [exit 0]" in outcome.transcript
    failed = preset.parse(result(json.dumps({"type": "turn.failed", "error": {"message": "stream closed"}})),
                          run_of(tmp_path))
    assert not failed.ok and failed.problem == "stream closed"


def test_aider_stdout_is_read_for_edits_tokens_and_prose(tmp_path: Path) -> None:
    preset = AiderPreset(settings(), install=FAKE)
    out = ("Detected dumb terminal, disabling fancy input and pretty output.\nAider v0.86.2\n\n"
           "I added a greeting.\n\nhello.txt\n```\nhello\n```\n\nTokens: 1.2k sent, 11 received.\n\n"
           "hello.txt\nApplied edit to hello.txt\n")
    outcome = preset.parse(result(out), run_of(tmp_path))
    assert outcome.ok and outcome.summary == "I added a greeting."
    assert (outcome.usage.input_tokens, outcome.usage.output_tokens) == (1200, 11)
    failed = preset.parse(result("litellm.APIError: boom\n"), run_of(tmp_path))
    assert not failed.ok and "APIError" in failed.problem
    assert json.loads(model_metadata("m"))["openai/m"]["litellm_provider"] == "openai"
    names = set(preset.scratch_files(run_of(tmp_path)))
    assert names == {"message.md", "model-metadata.json"}


def test_mini_trajectory_exit_status_is_the_verdict(tmp_path: Path) -> None:
    preset = MiniSweAgentPreset(settings(), install=FAKE)
    trajectory = {"info": {"exit_status": "Submitted", "model_stats": {"api_calls": 2}},
                  "messages": [{"role": "assistant", "content": "Wrote hello.txt.", "tool_calls": [
                      {"function": {"name": "bash", "arguments": json.dumps({"command": "echo hi"})}}]},
                               {"role": "tool", "content": "hi"}]}
    (tmp_path / TRAJECTORY).write_text(json.dumps(trajectory))
    outcome = preset.parse(result(""), run_of(tmp_path))
    assert outcome.ok and outcome.summary == "Wrote hello.txt." and "$ echo hi" in outcome.transcript
    trajectory["info"]["exit_status"] = "LimitsExceeded"
    (tmp_path / TRAJECTORY).write_text(json.dumps(trajectory))
    assert "LimitsExceeded" in preset.parse(result(""), run_of(tmp_path)).problem
    os.unlink(tmp_path / TRAJECTORY)
    (tmp_path / TRAJECTORY).symlink_to("/etc/passwd")
    assert read_trajectory(tmp_path / TRAJECTORY) is None  # never followed through a link
    assert preset.env(run_of(tmp_path))["MSWEA_MODEL_RETRY_STOP_AFTER_ATTEMPT"] == "1"


def test_gemini_cli_json_becomes_summary_usage_and_transcript(tmp_path: Path) -> None:
    preset = GeminiCliPreset(settings(gemini_model="gemini-x"), install=FAKE)
    document = {"session_id": "s", "response": "Wrote hello.txt.", "stats": {
        "models": {"gemini-x": {"api": {"totalRequests": 2}, "tokens": {"prompt": 50, "candidates": 11}}},
        "tools": {"byName": {"run_shell_command": {"count": 1, "success": 1, "fail": 0}}}}}
    out = "Loaded cached credentials.\n" + json.dumps(document, indent=2) + "\n"
    outcome = preset.parse(result(out), run_of(tmp_path))
    assert outcome.ok and outcome.summary == "Wrote hello.txt."
    assert (outcome.usage.input_tokens, outcome.usage.output_tokens) == (50, 11)
    assert "2 model request(s)" in outcome.transcript and "tool run_shell_command: 1 call(s)" in outcome.transcript
    failed = preset.parse(result(json.dumps({"error": {"type": "Error", "message": "Invalid auth method selected",
                                                       "code": 41}}, indent=2), code=41), run_of(tmp_path))
    assert not failed.ok and failed.problem == "Invalid auth method selected"
    assert preset.parse(result("", "boom", code=1), run_of(tmp_path)).problem == "boom"
    assert preset.default_model() == "gemini-x"
    written = json.loads(preset.home_files(run_of(tmp_path))[".gemini/settings.json"])
    assert written["security"]["auth"]["selectedType"] == "gemini-api-key"
    assert written["privacy"]["usageStatisticsEnabled"] is False and written["telemetry"]["enabled"] is False
    assert written["general"]["disableAutoUpdate"] is True and written["general"]["maxAttempts"] == 1
    argv = preset.argv(run_of(tmp_path))
    assert {"--yolo", "--skip-trust", "-m", "emulated-coder"} <= set(argv) and "Do it." not in argv
    env = preset.env(run_of(tmp_path))
    assert env["GOOGLE_GEMINI_BASE_URL"] == "http://127.0.0.1:4321"
    assert env["GEMINI_API_KEY"].startswith("agent-runner-gateway-")


def test_summaries_are_never_raw_json() -> None:
    assert summary_text('{"type": "result"}', "fallback") == "fallback"
    assert summary_text("[link](x) done", "fallback") == "[link](x) done"
    assert summary_text("x" * 5000, "f").endswith("…")


@pytest.mark.parametrize("preset_type", [ClaudeCodePreset, CodexPreset, AiderPreset, MiniSweAgentPreset,
                                         GeminiCliPreset, OpencodePreset, ClinePreset])
def test_the_instruction_never_travels_in_argv(tmp_path: Path, preset_type: type) -> None:
    """Stdin or a read-only file: no argument-size limit, no shell, nothing in /proc/PID/cmdline."""
    prompt = "; rm -rf / $(curl evil) `x` " + "long " * 40_000
    preset = preset_type(settings(), install=FAKE)
    run = run_of(tmp_path, prompt=prompt)
    assert not any("rm -rf" in arg for arg in preset.argv(run))
    files = {**preset.scratch_files(run)}
    assert preset.stdin(run) == prompt.encode() or any(prompt in text for text in files.values()) \
        or any(json.dumps(prompt) in text for text in files.values())
