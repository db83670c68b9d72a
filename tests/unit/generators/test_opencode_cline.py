"""The opencode and Cline presets and the old runner's Cline settings, on plain values."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from runner.config import load_settings
from runner.errors import CliNotInstalled, ConfigError, GeneratorError
from runner.generators import NotInstalled, build_chain
from runner.generators.agents.base import AgentRun
from runner.generators.agents.cline import ClinePreset, feature_flags_json, providers_json
from runner.generators.agents.install import Installation
from runner.generators.agents.opencode import OpencodePreset, config_json
from runner.sandbox.procs import ProcResult

FAKE = Installation(Path("/opt/cli/bin/agent"), (), "file")
TOKEN = "agent-runner-gateway-x"


def run_of(tmp_path: Path) -> AgentRun:
    return AgentRun(worktree=tmp_path, model="emulated-coder", prompt="Do it.", scratch=tmp_path,
                    base_url="http://127.0.0.1:4321", token=TOKEN)


def result(stdout: str, stderr: str = "", code: int = 0) -> ProcResult:
    return ProcResult(argv=("cli",), exit_code=code, output=stdout, duration_s=1.0, stderr=stderr)


def settings(**extra: object):  # noqa: ANN201
    return load_settings(env_file=None, **{"openai_api_key": "sk-test", "gemini_api_key": "gm-test", **extra})


def lines(*events: dict) -> str:
    return "\n".join(json.dumps(e) for e in events)


def test_opencode_config_has_the_gateway_provider_and_no_key(tmp_path: Path) -> None:
    config = json.loads(config_json("m", "http://127.0.0.1:4321/v1"))
    provider = config["provider"]["gateway"]
    assert provider["npm"] == "@ai-sdk/openai-compatible"
    assert provider["options"] == {"baseURL": "http://127.0.0.1:4321/v1", "apiKey": "{env:GATEWAY_API_KEY}"}
    assert config["model"] == config["small_model"] == "gateway/m"
    assert config["permission"] == {"edit": "allow", "bash": "allow"}
    preset = OpencodePreset(settings(), install=FAKE)
    run = run_of(tmp_path)
    files = preset.home_files(run)
    assert TOKEN not in "".join(files.values())  # the placeholder is in the environment only
    assert ".config/opencode/node_modules/.agent-runner" in files  # no background npm install
    env = preset.env(run)
    assert env["GATEWAY_API_KEY"] == TOKEN
    for switch in ("MODELS_FETCH", "AUTOUPDATE", "SHARE", "DEFAULT_PLUGINS", "LSP_DOWNLOAD", "PROJECT_CONFIG"):
        assert env[f"OPENCODE_DISABLE_{switch}"] == "1"
    assert preset.argv(run)[1:] == ["run", "--format", "json", "--title", "agent-runner task",
                                    "-m", "gateway/emulated-coder"]


def test_opencode_events_become_summary_usage_transcript_and_problems(tmp_path: Path) -> None:
    preset = OpencodePreset(settings(), install=FAKE)
    out = lines(
        {"type": "step_start", "part": {}},
        {"type": "tool_use", "part": {"tool": "bash", "state": {"status": "completed", "input": {"command": "ls"},
                                                                 "output": "a.txt", "metadata": {"exit": 0}}}},
        {"type": "step_finish", "part": {"reason": "tool-calls", "tokens": {"input": 100, "output": 5,
                                                                            "cache": {"read": 20}}}},
        {"type": "text", "part": {"text": "Wrote the file."}},
        {"type": "step_finish", "part": {"reason": "stop", "tokens": {"input": 150, "output": 7}}},
    )
    outcome = preset.parse(result(out), run_of(tmp_path))
    assert outcome.ok and outcome.summary == "Wrote the file."
    assert (outcome.usage.input_tokens, outcome.usage.output_tokens) == (270, 12)
    assert "$ ls  [exit 0]" in outcome.transcript and "a.txt" in outcome.transcript
    failed = preset.parse(result(lines({"type": "error", "error": {"name": "APIError", "data": {
        "message": "The request is invalid."}}})), run_of(tmp_path))
    assert not failed.ok and failed.problem == "The request is invalid."
    unfinished = preset.parse(result(lines({"type": "step_finish", "part": {"reason": "tool-calls"}})),
                              run_of(tmp_path))
    assert not unfinished.ok and "tool-calls" in unfinished.problem
    assert preset.parse(result("", "boom"), run_of(tmp_path)).problem == "boom"


def test_cline_files_keep_it_offline_and_hold_no_key(tmp_path: Path) -> None:
    providers = json.loads(providers_json("m", "http://127.0.0.1:4321/v1"))
    entry = providers["providers"]["openai-compatible"]
    assert entry["updatedAt"] and entry["settings"] == {"provider": "openai-compatible", "model": "m",
                                                         "baseUrl": "http://127.0.0.1:4321/v1"}
    flags = json.loads(feature_flags_json(time.time()))
    assert flags["version"] == 2 and time.time() * 1000 - flags["updatedAt"] < 60_000
    preset = ClinePreset(settings(), install=FAKE)
    run = run_of(tmp_path)
    files = preset.home_files(run)
    assert json.loads(files[".cline/data/settings/global-settings.json"]) == {"telemetryOptOut": True,
                                                                             "autoUpdateEnabled": False}
    assert TOKEN not in "".join(files.values())
    env = preset.env(run)
    assert env["OPENAI_API_KEY"] == TOKEN and env["CLINE_SESSION_BACKEND_MODE"] == "local"
    argv = preset.argv(run)
    assert "-y" not in argv and "--yolo" not in argv and "--json" in argv[2]
    assert argv[3:] == ["/opt/cli/bin/agent", str(tmp_path / "task.md"), f"{run.home}/.cline/data",
                        "Carry out the task below in the current directory."]


def test_cline_run_result_is_the_verdict(tmp_path: Path) -> None:
    preset = ClinePreset(settings(), install=FAKE)
    tool = {"type": "agent_event", "event": {"type": "content_end", "contentType": "tool", "toolName": "run_commands",
                                             "input": {"commands": ["echo hi > a.txt"]},
                                             "output": [{"query": "echo hi > a.txt", "result": "", "success": True}]}}
    done = {"type": "run_result", "finishReason": "completed", "iterations": 2, "text": "Wrote a.txt.",
            "usage": {"inputTokens": 20, "outputTokens": 10, "cacheReadTokens": 5}}
    outcome = preset.parse(result(lines(tool, done)), run_of(tmp_path))
    assert outcome.ok and outcome.summary == "Wrote a.txt."
    assert (outcome.usage.input_tokens, outcome.usage.output_tokens) == (25, 10)
    assert "$ echo hi > a.txt" in outcome.transcript and "completed after 2 iteration(s)" in outcome.transcript
    failed = preset.parse(result(lines({**done, "finishReason": "error", "text": "down"}),
                                 lines({"type": "error", "message": "down"}), code=1), run_of(tmp_path))
    assert not failed.ok and failed.problem == "down" and failed.summary == "Cline ended with `error`."
    nothing = preset.parse(result("", lines({"type": "error", "message": "Invalid or missing API key."})),
                           run_of(tmp_path))
    assert not nothing.ok and nothing.problem == "Invalid or missing API key."


def test_the_old_runners_cline_cmd_is_cline_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program = tmp_path / "cline"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    monkeypatch.delenv("CLINE_BIN", raising=False)
    monkeypatch.setenv("CLINE_CMD", str(program))
    assert load_settings(env_file=None).cline_bin == program
    monkeypatch.setenv("CLINE_CMD", "cline")  # the old runner's default: a name looked up on PATH
    monkeypatch.setenv("PATH", str(tmp_path))
    assert ClinePreset(settings()).install.program == program
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CliNotInstalled, match="CLINE_BIN is `cline`, which is not on PATH.*npm install -g cline"):
        ClinePreset(settings())
    with pytest.raises(ConfigError, match="CLINE_BIN"):
        load_settings(env_file=None, cline_bin="relative/cline")


def test_a_missing_opencode_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("OPENCODE_BIN", raising=False)
    with pytest.raises(CliNotInstalled, match="`opencode` is not on PATH and OPENCODE_BIN is not set.*opencode-ai"):
        build_chain(["opencode"], settings())


def test_cline_enabled_false_takes_cline_out_of_the_chain_with_one_log_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINE_ENABLED", "false")
    with capture_logs() as logs:
        chain = build_chain(["cline", "patch"], settings())
    assert [g.name for g in chain] == ["patch"]
    said = [entry for entry in logs if entry["event"] == "cline_disabled"]
    assert len(said) == 1 and "CLINE_ENABLED=false: `cline` is left out" in said[0]["message"]
    with pytest.raises(ConfigError, match="CLINE_ENABLED=false takes `cline` out of the chain, and no other"):
        build_chain(["cline"], settings())


def test_a_missing_cli_before_a_fallback_is_skipped_with_its_reason(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CLINE_BIN", raising=False)
    with capture_logs() as logs:
        first, second = build_chain(["cline", "patch"], settings())
    assert isinstance(first, NotInstalled) and second.name == "patch"
    assert any(e["event"] == "generator_not_installed" and e["fallback"] == "patch" for e in logs)
    with pytest.raises(GeneratorError, match="`cline` is not on PATH and CLINE_BIN is not set"):
        first.generate(None)  # type: ignore[arg-type]
    with pytest.raises(CliNotInstalled):  # the last in the chain: nothing would run instead
        build_chain(["patch", "cline"], settings())
