"""Configure what writes the change: the generator chain, model APIs and budgets, agent CLIs, change limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator

from runner.config.base import CsvList, Group, check_url, parse_json_map


class GeneratorSettings(Group):
    """GENERATORS, the model APIs, model choice and budgets, the `command` generator and the gateway."""

    generators: CsvList = ("patch",)
    """The generator fallback chain, tried in order: `patch`, `trace`, `openai`, `anthropic`, `gemini`, `command`, an agent preset (`claude-code`, `codex`, `aider`, `mini-swe-agent`, `gemini-cli`, `opencode`, `cline`) or a plugin's name. `agent-runner generators` lists what is installed."""
    generator_timeout_seconds: float = Field(default=900.0, gt=0)
    """Wall-clock limit for generation."""
    openai_api_key: SecretStr | None = None
    """OpenAI API key. A local OPENAI_BASE_URL needs none."""
    openai_base_url: str | None = None
    """Any OpenAI-compatible server (vLLM, Ollama, llama.cpp, LiteLLM). Empty: OpenAI."""
    openai_model: str = "gpt-4o-mini"
    """Model for the `openai` generator when the task names none."""
    openai_compat: Literal["auto", "openai", "llamacpp", "vllm", "ollama"] = "auto"
    """The OpenAI-compatible server's kind: `openai`, `llamacpp`, `vllm`, `ollama`, or `auto` (OpenAI without OPENAI_BASE_URL, otherwise detected). See docs/generators.md."""
    anthropic_api_key: SecretStr | None = None
    """Anthropic API key."""
    anthropic_base_url: str | None = None
    """An Anthropic-compatible server. Empty: Anthropic."""
    anthropic_model: str = "claude-sonnet-4-6"
    """Model for the `anthropic` generator when the task names none."""
    gemini_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("gemini_api_key", "google_gemini_api_key"))
    """Gemini API key (Google AI Studio), for the `gemini` generator and the gateway's Gemini calls. The old runner's `GOOGLE_GEMINI_API_KEY` is accepted too. A local GEMINI_BASE_URL needs none."""
    gemini_base_url: str | None = None
    """A Gemini-API-compatible server (it serves `/v1beta/models/{model}:generateContent`). Empty: Google's."""
    gemini_model: str = "gemini-2.5-flash"
    """Model for the `gemini` generator when the task names none."""
    default_model: str | None = None
    """Model used when a task names none, before OPENAI_MODEL / ANTHROPIC_MODEL / GEMINI_MODEL."""
    seniority_models: dict[str, str] = Field(default_factory=dict)
    """JSON object mapping a task's `seniority` to a model, for example `{"junior": "gpt-4o-mini", "senior": "gpt-4o"}`."""
    model_prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    """JSON object of USD prices per million input and output tokens, for example `{"my-model": [0.5, 1.5]}`, added to the built-in table."""
    max_turns: int = Field(default=30, ge=1, le=500)
    """Model turns per task for the LLM generators."""
    max_output_tokens: int = Field(default=4096, ge=1)
    """Output tokens per model turn."""
    max_tokens_per_task: int | None = Field(default=None, ge=1)
    """Token budget per task, enforced between model turns. Empty: no limit."""
    max_cost_usd_per_task: float | None = Field(default=None, gt=0)
    """Cost budget per task in USD, enforced between model turns. Empty: no limit."""
    command_template: str | None = None
    """External coding-agent CLI for the `command` generator, for example `aider --message-file {instruction_file} --yes`."""
    command_env_allowlist: CsvList = ("PATH", "HOME", "LANG", "LC_ALL", "TERM", "TMPDIR")
    """Environment variables the `command` generator's CLI receives. It never gets the GitHub token."""
    command_gateway: CsvList = ()
    """Serve the model gateway to the `command` generator's CLI for these wire dialects, comma-separated: `anthropic`, `openai`, `gemini`. The CLI then gets `ANTHROPIC_BASE_URL` / `OPENAI_BASE_URL` (and `OPENAI_API_BASE`) / `GOOGLE_GEMINI_BASE_URL` on 127.0.0.1 and a per-task placeholder in `ANTHROPIC_API_KEY` / `OPENAI_API_KEY` / `GEMINI_API_KEY`; the real keys stay in the runner (see docs/security.md, "Model gateway"). Empty: no gateway (the agent presets turn it on themselves)."""
    gateway_models: CsvList = ()
    """Models the gateway forwards calls for, comma-separated. Empty: any model."""
    gateway_timeout_seconds: float = Field(default=300.0, gt=0)
    """How long the gateway waits for the model server between two bytes of an answer before it answers the CLI 504."""

    _base_urls = field_validator("openai_base_url", "anthropic_base_url", "gemini_base_url")(check_url)
    _model_json = field_validator("seniority_models", "model_prices", mode="before")(parse_json_map)

    @field_validator("generators")
    @classmethod
    def _check_generators(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one generator, for example `patch`")
        return value

    @field_validator("command_gateway")
    @classmethod
    def _check_gateway_dialects(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if item not in ("anthropic", "openai", "gemini"):
                raise ValueError(f"`{item}` is not a dialect the gateway speaks; use `anthropic`, `openai` "
                                 "and/or `gemini`")
        return value


class AgentPresetSettings(Group):
    """Where each agent preset's CLI is installed (`claude-code`, `codex`, `aider`, `mini-swe-agent`, `gemini-cli`, `opencode`, `cline`; docs/generators.md)."""

    claude_code_bin: Path | None = None
    """The `claude` program of Claude Code for the `claude-code` preset (an npm install's `node_modules/.bin/claude`). Empty: `claude` on PATH."""
    codex_bin: Path | None = None
    """The `codex` program of Codex CLI for the `codex` preset (an npm install's `node_modules/.bin/codex`). Empty: `codex` on PATH."""
    aider_bin: Path | None = None
    """The `aider` program for the `aider` preset, best in its own venv (`/opt/aider/bin/aider`). Empty: `aider` on PATH."""
    mini_swe_agent_bin: Path | None = None
    """The `mini` program of mini-swe-agent for the `mini-swe-agent` preset, best in its own venv. Empty: `mini` on PATH."""
    gemini_cli_bin: Path | None = None
    """The `gemini` program of the Gemini CLI for the `gemini-cli` preset (an npm install's `node_modules/.bin/gemini`). Empty: `gemini` on PATH."""
    opencode_bin: Path | None = None
    """The `opencode` program for the `opencode` preset (an npm install's `node_modules/.bin/opencode`). Empty: `opencode` on PATH."""
    cline_bin: Path | None = Field(default=None, validation_alias=AliasChoices("cline_bin", "cline_cmd"))
    """The `cline` program for the `cline` preset (an npm install's `node_modules/.bin/cline`); the old runner's `CLINE_CMD` is read too. Empty: `cline` on PATH."""
    cline_enabled: bool = True
    """`false` takes `cline` out of every generator chain (GENERATORS and a task's own), with one log line that says so; the old runner's switch."""

    @field_validator("claude_code_bin", "codex_bin", "aider_bin", "mini_swe_agent_bin", "gemini_cli_bin",
                     "opencode_bin", "cline_bin", mode="before")
    @classmethod
    def _check_bin(cls, value: Any) -> Any:
        text = value.strip() if isinstance(value, str) else ""
        if "/" in text and not text.startswith(("/", "~")):  # a bare name (the old runner's CLINE_CMD=cline) is looked up on PATH
            raise ValueError(f"`{value}` must be an absolute path or a program name on PATH")
        return value


class ChangeLimitSettings(Group):
    """How large a change any generator may make (the guard enforces them)."""

    max_file_bytes: int = Field(default=1_000_000, ge=1)
    """Largest file a generator may write."""
    max_change_bytes: int = Field(default=5_000_000, ge=1)  # the whole change, every file together
    """Largest change a task may push, every file together."""
    max_changed_files: int = Field(default=500, ge=1)
    """Most files one change may touch."""
    allow_workflow_changes: bool = False
    """Allow changes under `.github/workflows/`."""
