"""Fixtures for the runner authenticated as a GitHub App against the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from github_emulator import EmulatedApp, GitHubEmulator

from runner.hooks.plugins import Hook
from tests.conftest import DISPATCH, README, TARGET, World

SLUG = "runner-bot"
BOT = f"{SLUG}[bot]"
WEBHOOK_SECRET = "s3cret-webhook-secret-for-tests"


class Clock:
    """Real time plus an offset a test can move forward; shared by the emulator and the runner."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


#: The clock the AdvanceClock hook moves; set by the test that loads the hook.
CLOCK: Clock | None = None


class AdvanceClock(Hook):
    """Two hours pass between generating the change and pushing it."""

    def on_generated(self, **_: Any) -> None:
        assert CLOCK is not None
        CLOCK.offset += timedelta(hours=2)


@dataclass
class AppWorld:
    world: World
    app: EmulatedApp
    installation: int

    @property
    def emu(self) -> GitHubEmulator:
        return self.world.emu

    def settings(self, **overrides: Any) -> dict[str, Any]:
        values: dict[str, Any] = {"github_token": None, "github_app_id": self.app.id,
                                  "github_app_private_key": self.app.private_key_pem}
        values.update(overrides)
        return values

    def run_once(self, **overrides: Any) -> list[Any]:
        return self.world.run_once(**self.settings(**overrides))


def make_app_world(emu: GitHubEmulator, root: Path, *, repositories: list[str] | None = None,
                   webhook_url: str | None = None) -> AppWorld:
    emu.create_repo(DISPATCH)
    emu.create_repo(TARGET, files={"README.md": README, "src/app.py": "print('hello')\n"})
    app = emu.create_app(SLUG, webhook_url=webhook_url, webhook_secret=WEBHOOK_SECRET)
    installation = emu.install_app(app.id, "octocat", repositories)
    return AppWorld(World(emu=emu, root=root), app, installation)


def app_world_fixture(tmp_path: Path, **kwargs: Any) -> Iterator[AppWorld]:
    with GitHubEmulator(tmp_path / "github") as emu:
        world = make_app_world(emu, tmp_path, **kwargs)
        yield world
        for built in world.world.apps:
            built.close()
