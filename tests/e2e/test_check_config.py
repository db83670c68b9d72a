"""`check-config` rejects what start-up rejects, names the setting, and changes nothing on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import World


def bad_settings(root: Path) -> list[tuple[dict[str, str], str]]:
    blocker = root / "a-file"
    blocker.write_text("not a directory\n")
    return [
        ({"LEDGER_URL": "garbage"}, "LEDGER_URL"),
        ({"LEDGER_URL": "mysql://u:p@db/x"}, "LEDGER_URL"),
        ({"HOOKS": "nosuch:Thing"}, "HOOKS"),
        ({"GENERATORS": "command", "COMMAND_TEMPLATE": "no-such-agent-cli --yes {instruction}"}, "COMMAND_TEMPLATE"),
        ({"DATA_DIR": str(blocker / "data")}, "DATA_DIR"),
        ({"WORKSPACE_DIR": str(blocker / "ws")}, "WORKSPACE_DIR"),
        ({"GENERATORS": "codex", "CODEX_BIN": str(root / "no-such-codex")}, "CODEX_BIN"),
    ]


@pytest.mark.parametrize("case", range(7))
def test_check_config_and_start_up_reject_the_same_settings(world: World, case: int) -> None:
    env_extra, setting = bad_settings(world.root)[case]
    checked = world.cli("check-config", env=world.env(**env_extra))
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert "✗" in checked.stdout and setting in checked.stdout
    started = world.cli("once", env=world.env(**env_extra))
    assert started.returncode == 2, started.stderr[-2000:]
    assert setting in started.stderr and "Traceback" not in started.stderr


def test_check_config_has_no_side_effects(world: World, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    env = world.env(DATA_DIR=str(fresh / "data"), WORKSPACE_DIR=str(fresh / "workspace"))
    checked = world.cli("check-config", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert not fresh.exists()  # no directory, no ledger file
    for name in ("settings", "directories", "ledger", "generators", "commands", "hooks", "sandbox"):
        assert f"✓ {name}:" in checked.stdout
    assert "empty: created at start-up" in checked.stdout
    assert not any(r.path.startswith("/repos") for r in world.emu.request_log)  # offline


def test_check_config_json_hides_secrets(world: World) -> None:
    checked = world.cli("check-config", "--json", env=world.env(OPENAI_API_KEY="sk-local-secret-1234567890abcd"))
    assert checked.returncode == 0, checked.stderr
    assert '"dispatch_repo": "octocat/dispatch"' in checked.stdout
    assert "sk-local-secret" not in checked.stdout + checked.stderr
    assert "emulator-token" not in checked.stdout + checked.stderr


def test_check_config_warns_about_the_whole_network_and_shows_the_gateway(world: World) -> None:
    checked = world.cli("check-config", env=world.env(
        SANDBOX_NETWORK="allow", COMMAND_GATEWAY="anthropic,openai", OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        ANTHROPIC_API_KEY="sk-ant-check-config-secret-000000000", SANDBOX_EGRESS_ALLOW="pypi.org"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "⚠ SANDBOX_NETWORK=allow gives every sandboxed command the whole network" in checked.stdout
    assert ("✓ model gateway: anthropic → https://api.anthropic.com:443 (key set); "
            "openai → http://127.0.0.1:9/v1 (no key); egress allowed to: pypi.org") in checked.stdout
    assert "sk-ant-check-config" not in checked.stdout + checked.stderr


def test_check_config_and_start_up_refuse_a_gateway_to_a_provider_without_its_key(world: World) -> None:
    env = world.env(COMMAND_GATEWAY="openai", GENERATORS="command", COMMAND_TEMPLATE="true {instruction_file}")
    checked = world.cli("check-config", env=env)
    assert checked.returncode == 2
    assert "✗ model gateway: openai → https://api.openai.com:443/v1 (no key)" in checked.stdout
    assert "Set OPENAI_API_KEY" in checked.stdout
    started = world.cli("once", env=env)
    assert started.returncode == 2 and "needs OPENAI_API_KEY" in started.stderr, started.stderr[-2000:]
