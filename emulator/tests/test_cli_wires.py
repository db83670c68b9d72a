"""Each real agent CLI makes a one-file change against the model emulators, in its own wire format.

No sandbox here: the CLI runs in a temp directory with a throw-away HOME, a
dummy key and its base URL on 127.0.0.1, with every call home switched off
(../shared/AGENT-CLIS.md). The CLI is found at CLAUDE_CODE_BIN, CODEX_BIN,
AIDER_BIN, MINI_SWE_AGENT_BIN, GEMINI_CLI_BIN, OPENCODE_BIN or CLINE_BIN, else on PATH (``eval "$(bash .ci/agent-clis)"``
installs them). A missing CLI skips the test, except with CI=true, where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from github_emulator.llm import AnthropicEmulator, GeminiEmulator, OpenAIEmulator, Reply

KEY = "dummy-key-for-the-emulator"
TIMEOUT_S = 180
#: Outside Codex's catalog, so that it sends plain function tools (exec_command).
CODEX_MODEL = "emulated-coder"


def cli(variable: str, program: str) -> str:
    """The CLI's path; skip without it, unless CI=true, where a missing CLI is a failure."""
    found = os.environ.get(variable) or shutil.which(program)
    if found and os.access(found, os.X_OK):
        return found
    message = f"{program} is not installed (set {variable}, or run: eval \"$(bash .ci/agent-clis)\")"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class Run:
    work: Path
    home: Path
    result: subprocess.CompletedProcess[str]


@pytest.fixture()
def dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    yield work, home


def run(argv: list[str], work: Path, home: Path, env: dict[str, str], stdin: str | None = None) -> Run:
    """Run the CLI in ``work`` with only the environment named here (no inherited keys or proxies)."""
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "TERM": "dumb"}
    result = subprocess.run(argv, cwd=work, env={**base, **env}, capture_output=True, text=True,
                            timeout=TIMEOUT_S, input=stdin if stdin is not None else "", check=False)
    return Run(work, home, result)


def explain(done: Run) -> str:
    return f"exit {done.result.returncode}\nstdout:\n{done.result.stdout[-3000:]}\nstderr:\n{done.result.stderr[-3000:]}"


def test_claude_code_writes_a_file_over_anthropic_streaming(dirs: tuple[Path, Path]) -> None:
    program = cli("CLAUDE_CODE_BIN", "claude")
    work, home = dirs
    with AnthropicEmulator(api_key=KEY) as emu:
        emu.script([
            Reply.claude_write(str(work / "hello.txt"), "hello from claude\n", text="Writing the file."),
            Reply.claude_bash("cat hello.txt"),
            Reply.text("Created hello.txt with a greeting."),
        ])
        done = run([program, "-p", "--output-format", "json", "--model", "claude-sonnet-4-5",
                    "--dangerously-skip-permissions"], work, home,
                   {"ANTHROPIC_BASE_URL": emu.base_url, "ANTHROPIC_API_KEY": KEY, "IS_SANDBOX": "1",
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "CLAUDE_CODE_MAX_RETRIES": "1"},
                   stdin="Create hello.txt with a greeting.")
        assert done.result.returncode == 0, explain(done)
        assert (work / "hello.txt").read_text() == "hello from claude\n"
        result = json.loads(done.result.stdout)
        assert (result["type"], result["subtype"], result["is_error"]) == ("result", "success", False)
        assert result["result"] == "Created hello.txt with a greeting."
        assert result["num_turns"] == 3 and result["permission_denials"] == []
        calls = emu.completions
        assert len(calls) == 3 and emu.remaining == 0
        first = calls[0]
        assert first.stream and first.path.startswith("/v1/messages")
        assert first.body is not None and "thinking" in first.body and "context_management" in first.body
        assert "claude-code-" in first.headers["anthropic-beta"]
        assert {"Write", "Bash", "Edit", "Read"} <= {t["name"] for t in first.body["tools"]}
        assert len(first.raw) > 30_000  # about 50-130 KB, by model and version
        assert "hello from claude" in calls[2].tool_results[0]  # Bash's output came back
        assert all(r.auth_present for r in emu.requests)


def test_codex_runs_exec_command_over_the_responses_api(dirs: tuple[Path, Path]) -> None:
    program = cli("CODEX_BIN", "codex")
    work, home = dirs
    with OpenAIEmulator(api_key=KEY) as emu:
        emu.script([
            Reply.codex_exec("printf 'hello from codex\\n' > hello.txt", text="Writing it."),
            Reply.text("Created hello.txt.", input_tokens=300, output_tokens=7),
        ])
        (home / ".codex").mkdir()
        (home / ".codex" / "config.toml").write_text(
            f'model = "{CODEX_MODEL}"\nmodel_provider = "gateway"\n'
            "[analytics]\nenabled = false\n[features]\nplugins = false\n"
            f'[model_providers.gateway]\nname = "gateway"\nbase_url = "{emu.base_url}/v1"\n'
            'env_key = "GATEWAY_API_KEY"\nwire_api = "responses"\nrequest_max_retries = 0\n'
            "stream_max_retries = 0\n", encoding="utf-8")
        done = run([program, "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
                    "--json", "-"], work, home, {"GATEWAY_API_KEY": KEY}, stdin="Create hello.txt.")
        assert done.result.returncode == 0, explain(done)
        assert (work / "hello.txt").read_text() == "hello from codex\n"
        events = [json.loads(line) for line in done.result.stdout.splitlines() if line.startswith("{")]
        kinds = [e["type"] for e in events]
        assert kinds[0] == "thread.started" and kinds[-1] == "turn.completed"
        commands = [e["item"] for e in events if e["type"] == "item.completed"
                    and e["item"]["type"] == "command_execution"]
        assert commands and commands[0]["exit_code"] == 0 and "hello.txt" in commands[0]["command"]
        messages = [e["item"]["text"] for e in events if e["type"] == "item.completed"
                    and e["item"]["type"] == "agent_message"]
        assert messages == ["Writing it.", "Created hello.txt."]
        assert events[-1]["usage"]["output_tokens"] == 5 + 7  # both turns' usage, from response.completed
        calls = emu.completions
        assert [c.path for c in calls] == ["/v1/responses", "/v1/responses"]
        assert calls[0].stream and calls[0].body is not None and calls[0].body["model"] == CODEX_MODEL
        assert "exec_command" in {t.get("name") for t in calls[0].body["tools"]}
        assert calls[1].tool_results and "exited with code 0" in calls[1].tool_results[0]


def test_aider_applies_a_whole_file_edit_over_chat_completions(dirs: tuple[Path, Path]) -> None:
    program = cli("AIDER_BIN", "aider")
    work, home = dirs
    meta = home / "model-metadata.json"
    meta.write_text(json.dumps({"openai/emulated-coder": {
        "max_tokens": 8192, "max_input_tokens": 128000, "max_output_tokens": 8192, "input_cost_per_token": 0.0,
        "output_cost_per_token": 0.0, "litellm_provider": "openai", "mode": "chat"}}), encoding="utf-8")
    message = home / "message.md"
    message.write_text("Put a greeting in hello.txt.", encoding="utf-8")
    with OpenAIEmulator(api_key=KEY) as emu:
        emu.script([Reply.aider_whole({"hello.txt": "hello from aider\n"}, text="Here is the file:")])
        done = run([program, "--model", "openai/emulated-coder", "--edit-format", "whole", "--yes-always",
                    "--no-pretty", "--no-fancy-input", "--no-check-update", "--analytics-disable",
                    "--no-show-release-notes", "--no-show-model-warnings", "--model-metadata-file", str(meta),
                    "--no-auto-commits", "--no-gitignore", "--map-tokens", "0",
                    "--message-file", str(message), "hello.txt"], work, home,
                   {"OPENAI_API_BASE": emu.base_url + "/v1", "OPENAI_API_KEY": KEY,
                    "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
        assert done.result.returncode == 0, explain(done)
        assert (work / "hello.txt").read_text() == "hello from aider\n"
        assert "Applied edit to hello.txt" in done.result.stdout
        calls = emu.completions
        assert len(calls) == 1 and calls[0].stream and calls[0].body is not None
        assert calls[0].body["model"] == "emulated-coder"  # sent without the openai/ prefix
        assert calls[0].contains("Put a greeting in hello.txt.")


def test_mini_swe_agent_runs_bash_and_submits(dirs: tuple[Path, Path]) -> None:
    program = cli("MINI_SWE_AGENT_BIN", "mini")
    work, home = dirs
    task = home / "task.yaml"
    task.write_text(json.dumps({"run": {"task": "Put a greeting in hello.txt."}}), encoding="utf-8")
    trajectory = home / "trajectory.json"
    with OpenAIEmulator(api_key=KEY) as emu:
        emu.script([Reply.mini_bash("printf 'hello from mini\\n' > hello.txt"), Reply.mini_submit()])
        done = run([program, "-m", "openai/emulated-coder", "-y", "--exit-immediately", "-o", str(trajectory),
                    "-c", "mini.yaml", "-c", str(task), "-c", "agent.step_limit=5"], work, home,
                   {"OPENAI_API_BASE": emu.base_url + "/v1", "OPENAI_API_KEY": KEY,
                    "LITELLM_LOCAL_MODEL_COST_MAP": "True", "MSWEA_CONFIGURED": "true",
                    "MSWEA_COST_TRACKING": "ignore_errors", "MSWEA_SILENT_STARTUP": "1",
                    "MSWEA_MODEL_RETRY_STOP_AFTER_ATTEMPT": "1"})
        assert done.result.returncode == 0, explain(done)
        assert (work / "hello.txt").read_text() == "hello from mini\n"
        info = json.loads(trajectory.read_text())["info"]
        assert info["exit_status"] == "Submitted" and info["model_stats"]["api_calls"] == 2
        calls = emu.completions
        assert len(calls) == 2 and not calls[0].stream
        assert calls[0].body is not None and [t["function"]["name"] for t in calls[0].body["tools"]] == ["bash"]
        assert calls[0].contains("Put a greeting in hello.txt.")
        assert calls[1].tool_results and json.loads(calls[1].tool_results[0])["returncode"] == 0


def test_gemini_cli_writes_a_file_over_stream_generate_content(dirs: tuple[Path, Path]) -> None:
    program = cli("GEMINI_CLI_BIN", "gemini")
    work, home = dirs
    (home / ".gemini").mkdir()
    (home / ".gemini" / "settings.json").write_text(json.dumps({
        "security": {"auth": {"selectedType": "gemini-api-key"}}, "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False}, "general": {"disableAutoUpdate": True}}), encoding="utf-8")
    with GeminiEmulator(api_key=KEY) as emu:
        emu.script([Reply.gemini_write(str(work / "hello.txt"), "hello from gemini\n", text="Writing the file."),
                    Reply.text("Created hello.txt.", input_tokens=40, output_tokens=6)])
        done = run([program, "-p", "Create hello.txt with a greeting.", "--yolo", "--skip-trust",
                    "-m", "gemini-2.5-flash", "--output-format", "json"], work, home,
                   {"GOOGLE_GEMINI_BASE_URL": emu.base_url, "GEMINI_API_KEY": KEY})
        assert done.result.returncode == 0, explain(done)
        assert (work / "hello.txt").read_text() == "hello from gemini\n"
        result = json.loads(done.result.stdout)
        assert result["response"] == "Created hello.txt."
        assert result["stats"]["tools"]["byName"]["write_file"]["success"] == 1
        tokens = result["stats"]["models"]["gemini-2.5-flash"]["tokens"]
        assert (tokens["prompt"], tokens["candidates"]) == (10 + 40, 5 + 6)  # usageMetadata, both turns
        calls = emu.completions
        assert [c.path for c in calls] == ["/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"] * 2
        assert calls[0].stream and calls[0].body is not None
        declared = {d["name"] for t in calls[0].body["tools"] for d in t.get("functionDeclarations", [])}
        assert {"write_file", "run_shell_command", "replace"} <= declared
        assert calls[1].tool_results and "hello.txt" in calls[1].tool_results[0]
        assert all(r.auth_present for r in emu.requests) and emu.remaining == 0


def test_opencode_runs_bash_over_streamed_chat_completions(dirs: tuple[Path, Path]) -> None:
    program = cli("OPENCODE_BIN", "opencode")
    work, home = dirs
    config = home / ".config" / "opencode"
    (config / "node_modules").mkdir(parents=True)  # with a lock naming the plugin: no npm install
    (config / "package-lock.json").write_text(json.dumps(
        {"lockfileVersion": 3, "packages": {"": {"dependencies": {"@opencode-ai/plugin": "*"}}}}))
    with OpenAIEmulator(api_key=KEY) as emu:
        (config / "opencode.json").write_text(json.dumps({
            "provider": {"gateway": {"npm": "@ai-sdk/openai-compatible", "options": {
                "baseURL": emu.base_url + "/v1", "apiKey": "{env:GATEWAY_API_KEY}"},
                "models": {"emulated-coder": {}}}},
            "model": "gateway/emulated-coder", "small_model": "gateway/emulated-coder",
            "permission": {"edit": "allow", "bash": "allow"}}))
        emu.script([Reply.opencode_bash("printf 'hello from opencode\\n' > hello.txt"),
                    Reply.text("Created hello.txt.", input_tokens=300, output_tokens=7)])
        done = run([program, "run", "--format", "json", "--title", "a task"], work, home,
                   {"GATEWAY_API_KEY": KEY, "OPENCODE_DISABLE_MODELS_FETCH": "1", "OPENCODE_DISABLE_AUTOUPDATE": "1",
                    "OPENCODE_DISABLE_SHARE": "1", "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1"},
                   stdin="Put a greeting in hello.txt.")
        assert done.result.returncode == 0, explain(done)
        assert (work / "hello.txt").read_text() == "hello from opencode\n"
        events = [json.loads(line) for line in done.result.stdout.splitlines() if line.startswith("{")]
        tools = [e["part"] for e in events if e["type"] == "tool_use"]
        assert tools[0]["tool"] == "bash" and tools[0]["state"]["metadata"]["exit"] == 0
        finished = [e["part"] for e in events if e["type"] == "step_finish"]
        assert finished[-1]["reason"] == "stop" and finished[-1]["tokens"]["output"] == 7
        calls = emu.completions  # --title: no title call on small_model
        assert len(calls) == 2 and all(c.stream for c in calls)
        assert calls[0].contains("Put a greeting in hello.txt.")
        assert {"bash", "edit", "write", "read"} <= {t["function"]["name"] for t in calls[0].body["tools"]}


def test_cline_runs_commands_and_ends_with_a_run_result(dirs: tuple[Path, Path]) -> None:
    program = cli("CLINE_BIN", "cline")
    work, home = dirs
    data = home / ".cline" / "data"
    (data / "settings").mkdir(parents=True)
    (data / "cache").mkdir()
    with OpenAIEmulator(api_key=KEY) as emu:
        (data / "settings" / "providers.json").write_text(json.dumps({
            "version": 1, "lastUsedProvider": "openai-compatible", "modes": {}, "providers": {"openai-compatible": {
                "settings": {"provider": "openai-compatible", "model": "emulated-coder",
                             "baseUrl": emu.base_url + "/v1"},
                "updatedAt": "2026-01-01T00:00:00.000Z", "tokenSource": "manual"}}}))
        (data / "settings" / "global-settings.json").write_text('{"telemetryOptOut": true, "autoUpdateEnabled": false}')
        (data / "cache" / "feature-flags.json").write_text(json.dumps(
            {"version": 2, "updatedAt": int(time.time() * 1000), "userId": None,
             "flagsPayload": {"featureFlags": {}, "featureFlagPayloads": {}}}))
        emu.script([Reply.cline_commands("printf 'hello from cline\\n' > hello.txt"),
                    Reply.text("Created hello.txt.", input_tokens=300, output_tokens=7)])
        done = run([program, "--json", "--data-dir", str(data), "Do the task below."], work, home,
                   {"OPENAI_API_KEY": KEY, "CLINE_SESSION_BACKEND_MODE": "local"},
                   stdin="Put a greeting in hello.txt.")  # a pipe: Cline appends it to the prompt
        assert done.result.returncode == 0, explain(done)
        assert (work / "hello.txt").read_text() == "hello from cline\n"
        events = [json.loads(line) for line in done.result.stdout.splitlines() if line.startswith("{")]
        final = events[-1]
        assert (final["type"], final["finishReason"], final["iterations"]) == ("run_result", "completed", 2)
        assert final["text"] == "Created hello.txt." and final["usage"]["outputTokens"] == 5 + 7
        calls = emu.completions
        assert len(calls) == 2 and all(c.stream for c in calls)
        assert calls[0].contains("Do the task below.") and calls[0].contains("Put a greeting in hello.txt.")
        assert {"run_commands", "editor", "read_files"} <= {t["function"]["name"] for t in calls[0].body["tools"]}
