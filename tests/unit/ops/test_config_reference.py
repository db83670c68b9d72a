"""The settings reference is generated from the model, and `.env.example` loads as shipped."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runner.cli import main
from runner.config import Settings, load_settings
from runner.errors import ConfigError
from runner.ops import config_reference
from tests.conftest import REPO_ROOT

REGENERATE_HELP = (
    "The settings reference drifted from runner/config/. Regenerate it with\n"
    "    .venv/bin/agent-runner config-docs\n"
    "(it rewrites .env.example, docs/configuration.md and the README's settings summary from the\n"
    "field docstrings in runner/config/), then commit the result. Stale: {stale}"
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting leaks in from the environment running the tests."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_generated_reference_matches_the_settings_model() -> None:
    stale = config_reference.stale_files(REPO_ROOT)
    assert not stale, REGENERATE_HELP.format(stale=", ".join(str(p.relative_to(REPO_ROOT)) for p in stale))


def test_every_setting_is_in_every_generated_file() -> None:
    env_example = (REPO_ROOT / ".env.example").read_text()
    reference = (REPO_ROOT / "docs" / "configuration.md").read_text()
    readme = (REPO_ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        env = name.upper()
        assert f"\n{env}=" in env_example
        assert f"| `{env}` |" in reference
        assert f"`{env}`" in readme


def test_env_example_loads_as_shipped(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    shutil.copy(REPO_ROOT / ".env.example", env_file)
    loaded = load_settings(env_file)
    defaults = load_settings(None)
    differing = {name for name in Settings.model_fields if getattr(loaded, name) != getattr(defaults, name)}
    assert differing == {"dispatch_repo"}  # the only example value; every other line is the default


def test_env_example_passes_check_config_once_the_token_is_set(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = tmp_path / ".env"
    shutil.copy(REPO_ROOT / ".env.example", env_file)
    clean_env.setenv("GITHUB_TOKEN", "ghp_" + "x" * 36)
    clean_env.setenv("DATA_DIR", str(tmp_path / "data"))
    clean_env.setenv("WORKSPACE_DIR", str(tmp_path / "workspace"))
    assert main(["--env-file", str(env_file), "check-config"]) == 0
    out = capsys.readouterr()
    assert "configuration is valid" in out.err
    assert "x" * 36 not in out.out + out.err


def test_empty_values_mean_unset(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("WORKERS", "")
    clean_env.setenv("MAX_COST_USD_PER_TASK", "")
    clean_env.setenv("OPENAI_BASE_URL", "")
    settings = load_settings(None)
    assert settings.workers == 1 and settings.max_cost_usd_per_task is None and settings.openai_base_url is None


@pytest.mark.parametrize("value", ["debug", "Debug", " WARNING "])
def test_log_level_is_case_insensitive(clean_env: pytest.MonkeyPatch, value: str) -> None:
    clean_env.setenv("LOG_LEVEL", value)
    assert load_settings(None).log_level == value.strip().upper()


def test_an_undocumented_setting_is_refused_with_the_fix() -> None:
    class Extended(Settings):
        brand_new_knob: int = 3

    with pytest.raises(ConfigError, match="BRAND_NEW_KNOB.*docstring.*agent-runner config-docs"):
        config_reference.describe(Extended)


def test_config_docs_check_reports_a_stale_checkout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "README.md").write_text(f"# x\n\n{config_reference.README_START}\n{config_reference.README_END}\n")
    assert main(["config-docs", "--check", "--root", str(tmp_path)]) == 1
    assert "agent-runner config-docs" in capsys.readouterr().err
    assert main(["config-docs", "--root", str(tmp_path)]) == 0
    assert main(["config-docs", "--check", "--root", str(tmp_path)]) == 0
    assert "`DISPATCH_REPO`" in (tmp_path / "README.md").read_text()
