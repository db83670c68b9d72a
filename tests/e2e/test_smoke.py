"""`agent-runner smoke-test` files the README's issue, checks what a user sees, and cleans up."""

from __future__ import annotations

from tests.conftest import DISPATCH, TARGET, World


def test_smoke_test_passes_checks_the_rerun_and_cleans_up(world: World) -> None:
    result = world.cli("smoke-test", "--target", TARGET, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    out = result.stdout
    for step in ("issue filed", "first run: issue labeled", "branch", "pull request", "PR metadata",
                 "PR Fixes line", "trace file", "one result comment", "re-run changed nothing", "cleaned up"):
        assert f"✓ {step}:" in out, out
    assert "smoke test: PASS" in out
    assert "emulator-token" not in out + result.stderr
    pulls = world.pulls()
    assert len(pulls) == 1 and pulls[0]["state"] == "closed"  # one PR, closed by the clean-up
    assert world.emu.branch_sha(TARGET, pulls[0]["head"]["ref"]) is None  # branch deleted
    assert world.emu.issue(DISPATCH, 1)["state"] == "closed"


def test_smoke_test_reports_a_refused_target_and_keeps_with_keep(world: World) -> None:
    world.emu.create_repo("someone-else/repo", files={"README.md": "x\n"})
    result = world.cli("smoke-test", "--target", "someone-else/repo", "--keep", timeout=300)
    assert result.returncode == 1
    assert "✗ first run: issue labeled: `agent-failed`" in result.stdout
    assert "smoke test: FAIL" in result.stdout
    assert "cleaned up" not in result.stdout  # --keep leaves the issue for inspection
