"""Shared fixtures: a real GitHub emulator, real repositories, and the real app wired to them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from github_emulator import GitHubEmulator, LimitHit
from github_emulator.limits import HIT_OBSERVERS

from runner.app import App, build_app
from runner.config import Settings, load_settings
from runner.log import configure_logging

DISPATCH = "octocat/dispatch"
TARGET = "octocat/target"
TOKEN = "emulator-token"
TESTS_DIR = Path(__file__).parent
REPO_ROOT = TESTS_DIR.parent

README = "# target\n\nA repository the runner changes in tests.\n"


def dispatch_body(task_id: str = "test-task-12345678", instruction: str = "Create a simple test file to "
                  "verify the agent runner is working.", target: str = TARGET, **meta: Any) -> str:
    """A dispatch issue body in exactly the documented format."""
    import json

    metadata = json.dumps({"task_id": task_id, **meta})
    return (f"<!-- agent_task_metadata {metadata} -->\n\n## Instruction\n\n{instruction}\n\n"
            f"Target Repository: {target}\n")


README_PATCH = """```diff
--- a/README.md
+++ b/README.md
@@ -1,3 +1,4 @@
 # target

 A repository the runner changes in tests.
+Patched by the runner.
```"""


@dataclass
class World:
    """An emulator with a dispatch and a target repository, and ways to run the runner on it."""

    emu: GitHubEmulator
    root: Path
    apps: list[App] = field(default_factory=list)

    def file_issue(self, body: str, *, title: str = "Dispatch task", labels: tuple[str, ...] = ("copilot-agent",),
                   as_user: str = "octocat") -> int:
        return self.emu.create_issue(DISPATCH, title, body, labels=labels, as_user=as_user)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "github_token": TOKEN,
            "github_api_url": self.emu.base_url,
            "dispatch_repo": DISPATCH,
            "workspace_dir": self.root / "workspace",
            "data_dir": self.root / "data",
            "generators": "patch",
            "github_throttle": False,
            "github_max_retries": 3,
            "retry_base_seconds": 0.05,
            "retry_max_seconds": 0.2,
            "lease_seconds": 30,
        }
        values.update(overrides)
        return load_settings(env_file=None, **values)

    def app(self, **overrides: Any) -> App:
        app = build_app(self.settings(**overrides))
        self.apps.append(app)
        return app

    def run_once(self, **overrides: Any) -> list[Any]:
        app = self.app(**overrides)
        try:
            return app.executor.run_once()
        finally:
            app.close()
            self.apps.remove(app)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for running `agent-runner` as a real subprocess against this world."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "OPENAI_", "ANTHROPIC_"))}
        env.update({
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_API_URL": self.emu.base_url,
            "DISPATCH_REPO": DISPATCH,
            "WORKSPACE_DIR": str(self.root / "workspace"),
            "DATA_DIR": str(self.root / "data"),
            "GENERATORS": "patch",
            "GITHUB_THROTTLE": "false",
            "RETRY_BASE_SECONDS": "0.05",
            "RETRY_MAX_SECONDS": "0.2",
            "LOG_FORMAT": "json",
            "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), str(REPO_ROOT)]),
        })
        env.update(extra)
        return env

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "runner", "--env-file", "/dev/null", *args],
                              env=env or self.env(), capture_output=True, text=True, timeout=timeout,
                              cwd=self.root)

    # What a user sees ---------------------------------------------------------

    def comments(self, number: int) -> list[dict[str, Any]]:
        return self.emu.comments(DISPATCH, number)

    def labels(self, number: int) -> set[str]:
        return set(self.emu.labels(DISPATCH, number))

    def pulls(self, repo: str = TARGET) -> list[dict[str, Any]]:
        return self.emu.pulls(repo)


#: Every rate-limit hit of every emulator in this process, and how many were seen before this test.
_LIMIT_HITS: list[LimitHit] = []
HIT_OBSERVERS.append(_LIMIT_HITS.append)
_HITS_CHECKED = [0]


@pytest.fixture(autouse=True)
def _no_rate_limit_hits(request: pytest.FixtureRequest) -> Iterator[None]:
    """A request GitHub would refuse for a rate limit fails the test, unless the test is about limits.

    The emulators enforce GitHub's secondary limits (80 content-creating requests a
    minute, 500 an hour, 900 REST points a minute, 100 at once) and the primary one;
    mark a test ``@pytest.mark.rate_limits`` when hitting them is what it checks. Counted
    from this test's set-up on (a module-scoped fixture's own set-up is not counted).
    """
    _HITS_CHECKED[0] = len(_LIMIT_HITS)  # the emulator's own tests hit limits on purpose
    yield
    hits = _LIMIT_HITS[_HITS_CHECKED[0]:]
    _HITS_CHECKED[0] = len(_LIMIT_HITS)
    if hits and request.node.get_closest_marker("rate_limits") is None:
        pytest.fail(f"GitHub's rate limits refused {len(hits)} request(s) in this test: "
                    + "; ".join(f"{h.limit} on {h.method} {h.path} ({h.bucket})" for h in hits[:5]), pytrace=False)


@pytest.fixture(autouse=True)
def _fresh_model_breakers() -> Iterator[None]:
    """Each test starts with no model upstream breaker: a port freed by one test's model emulator may
    serve the next test's, and a breaker left open by the first would refuse its calls."""
    from runner.breakers import MODEL_UPSTREAMS

    MODEL_UPSTREAMS.clear()
    yield


@pytest.fixture(scope="session", autouse=True)
def _logging() -> None:
    configure_logging("INFO", "json", [TOKEN])


@pytest.fixture()
def emulator(tmp_path: Path) -> Iterator[GitHubEmulator]:
    with GitHubEmulator(tmp_path / "github") as emu:
        yield emu


@pytest.fixture()
def world(emulator: GitHubEmulator, tmp_path: Path) -> Iterator[World]:
    emulator.create_repo(DISPATCH)
    emulator.create_repo(TARGET, files={"README.md": README, "src/app.py": "print('hello')\n"})
    w = World(emu=emulator, root=tmp_path)
    yield w
    for app in w.apps:
        app.close()
