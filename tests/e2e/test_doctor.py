"""`agent-runner doctor` checks the real thing: token, repositories, labels, generators, git, clock."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from github_emulator.llm import AnthropicEmulator, OpenAIEmulator

from runner.app import utc_now
from runner.forge.github import GitHubForge
from runner.ops.doctor import Doctor, run_checks
from runner.ops.preflight import Check
from tests.conftest import DISPATCH, TARGET, TOKEN, World


def doctor(world: World, *, token: str = TOKEN, fix: bool = False, now: Any = utc_now, **overrides: Any) -> dict[str, Check]:
    settings = world.settings(**overrides)
    forge = GitHubForge(token, base_url=world.emu.base_url, max_retries=0, throttle=False)
    return {c.name: c for c in run_checks(Doctor(settings, forge, now, fix=fix))}


def test_a_healthy_setup_passes_after_fix_creates_the_labels(world: World) -> None:
    first = world.cli("doctor")
    assert first.returncode == 1, first.stdout + first.stderr
    assert "✗ labels:" in first.stdout and "agent-runner doctor --fix" in first.stdout
    assert TOKEN not in first.stdout + first.stderr

    fixed = world.cli("doctor", "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    for name in ("token", "dispatch repository", "labels", "allowlist", "generators", "git", "clock"):
        assert f"✓ {name}:" in fixed.stdout
    listed = requests.get(f"{world.emu.base_url}/repos/{DISPATCH}/labels",
                          headers={"Authorization": f"token {TOKEN}"}, timeout=10).json()
    colours = {label["name"]: label["color"] for label in listed}
    assert colours["processed"] == "0e8a16" and colours["agent-failed"] == "d73a4a"
    assert colours["copilot-agent"] == "1d76db" and colours["agent-ci-failed"] == "e99695"
    again = world.cli("doctor")
    assert again.returncode == 0 and "✓ labels:" in again.stdout  # --fix is not needed twice


def test_a_rejected_token_says_which_setting_and_skips_the_rest(world: World) -> None:
    found = doctor(world, token="ghp_" + "z" * 36)
    assert not found["token"].ok and "GITHUB_TOKEN" in found["token"].detail
    assert "Create a new token" in found["token"].fix
    assert not found["labels"].ok and "skipped" in found["labels"].detail
    assert found["git"].ok


def test_a_read_only_token_fails_the_allowlist_and_the_dispatch_check(world: World) -> None:
    """A triage-only or read-only token looks valid; doctor says what it cannot do."""
    world.emu.add_user("reader", "reader-token")
    world.emu.set_permission(DISPATCH, "reader", "read")
    world.emu.set_permission(TARGET, "reader", "triage")
    found = doctor(world, token="reader-token", allowed_target_repos=TARGET)
    assert found["token"].ok
    assert not found["dispatch repository"].ok and "only read" in found["dispatch repository"].detail
    assert not found["allowlist"].ok and f"may not push to {TARGET}" in found["allowlist"].detail


def test_the_allowlist_is_resolved_against_real_repositories(world: World) -> None:
    globbed = doctor(world)  # default: the dispatch owner's repositories
    assert globbed["allowlist"].ok and TARGET in globbed["allowlist"].detail
    missing = doctor(world, allowed_target_repos="octocat/nope,elsewhere/*")
    assert not missing["allowlist"].ok
    assert "octocat/nope does not exist" in missing["allowlist"].detail
    assert "`elsewhere/*` matches no repository" in missing["allowlist"].detail


def test_generator_credentials_are_tried_with_one_cheap_call(world: World) -> None:
    with OpenAIEmulator(api_key="right-key") as openai_emu, AnthropicEmulator(api_key="right-key") as claude_emu:
        urls = {"openai_base_url": f"{openai_emu.base_url}/v1", "anthropic_base_url": claude_emu.base_url}
        good = doctor(world, generators="openai,anthropic,patch", openai_api_key="right-key",
                      anthropic_api_key="right-key", **urls)
        assert good["generators"].ok, good["generators"].detail
        assert "OpenAI answered" in good["generators"].detail and "Anthropic answered" in good["generators"].detail
        bad = doctor(world, generators="openai", openai_api_key="wrong-key-123456", **urls)
        assert not bad["generators"].ok and "OPENAI_API_KEY" in bad["generators"].detail
        assert "wrong-key-123456" not in bad["generators"].detail
        assert [r.path for r in openai_emu.requests if r.path.endswith("/models")]


def test_a_skewed_clock_is_reported(world: World) -> None:
    found = doctor(world, now=lambda: datetime.now(UTC) + timedelta(minutes=10))
    assert not found["clock"].ok and re.search(r"\+60\d s", found["clock"].detail) and "NTP" in found["clock"].fix
