"""The runner as a GitHub App: installation tokens per repository, the bot's identity, refusals."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import github
import pytest
import requests
from github import Auth, GithubIntegration
from github_emulator import GitHubEmulator

from tests import app_world
from tests.app_world import BOT, AppWorld, Clock, app_world_fixture, make_app_world
from tests.conftest import DISPATCH, README_PATCH, TARGET, dispatch_body


@pytest.fixture()
def aw(tmp_path: Path) -> Iterator[AppWorld]:
    yield from app_world_fixture(tmp_path)


def _mints(emu: GitHubEmulator) -> list[int]:
    return [i for i, r in enumerate(emu.request_log)
            if r.method == "POST" and r.path.endswith("/access_tokens")]


def test_app_opens_one_pull_request_as_its_bot(aw: AppWorld) -> None:
    number = aw.world.file_issue(dispatch_body(instruction=f"Add a line.\n\n{README_PATCH}"))

    outcomes = aw.run_once()

    assert [o.status for o in outcomes] == ["succeeded"]
    pulls = aw.world.pulls()
    assert len(pulls) == 1 and pulls[0]["user"]["login"] == BOT and pulls[0]["user"]["type"] == "Bot"
    results = [c for c in aw.world.comments(number) if "agent-runner:result" in c["body"]]
    assert [c["user"]["login"] for c in results] == [BOT]
    assert aw.world.labels(number) == {"copilot-agent", "processed"}
    # Every API and git call went out as the app (JWT: no user) or its bot, never as a person.
    assert {r.user for r in aw.emu.request_log} <= {None, BOT}
    bot_id = requests.get(f"{aw.emu.base_url}/users/{BOT}",
                          headers={"Authorization": "token emulator-token"}).json()["id"]
    bare = aw.emu.bare_repo_path(TARGET)
    author = subprocess.run(["git", "log", "-1", "--format=%an <%ae>", "agent-task-test-tas"], cwd=bare,
                            capture_output=True, text=True, check=True).stdout.strip()
    assert author == f"{BOT} <{bot_id}+{BOT}@users.noreply.github.com>"
    assert not [r for r in aw.emu.request_log if r.status == 401]
    for config in (aw.world.root / "workspace").rglob("config"):
        assert "ghs_" not in config.read_text(errors="replace")


def test_target_without_installation_is_refused_with_the_install_link(tmp_path: Path) -> None:
    with GitHubEmulator(tmp_path / "github") as emu:
        aw = make_app_world(emu, tmp_path, repositories=[DISPATCH])
        number = aw.world.file_issue(dispatch_body())

        outcomes = aw.run_once()

        assert [o.status for o in outcomes] == ["failed"]
        comment = next(c["body"] for c in aw.world.comments(number) if "agent-runner:result" in c["body"])
        assert f"is not installed on `{TARGET}`" in comment
        assert f"{emu.base_url}/apps/runner-bot/installations/new" in comment
        assert aw.world.labels(number) == {"copilot-agent", "agent-failed"}
        assert aw.world.pulls() == []


def test_dispatch_repo_without_installation_is_a_config_error(tmp_path: Path) -> None:
    with GitHubEmulator(tmp_path / "github") as emu:
        aw = make_app_world(emu, tmp_path, repositories=[TARGET])
        from runner.errors import ConfigError

        with pytest.raises(ConfigError, match="not installed on the dispatch repository"):
            aw.world.app(**aw.settings())


def test_expired_installation_token_is_refreshed_mid_run(tmp_path: Path) -> None:
    clock = Clock()
    app_world.CLOCK = clock
    with GitHubEmulator(tmp_path / "github", clock=clock) as emu:
        aw = make_app_world(emu, tmp_path)
        aw.world.file_issue(dispatch_body(instruction=f"Add a line.\n\n{README_PATCH}"))
        # The runner's clock is the emulator's: two hours pass between generating and pushing.
        from runner.app import build_app

        built = build_app(aw.world.settings(**aw.settings(hooks="tests.app_world:AdvanceClock")), clock=clock)
        try:
            outcomes = built.executor.run_once()
        finally:
            built.close()

    assert [o.status for o in outcomes] == ["succeeded"]
    log = emu.request_log
    mints = _mints(emu)
    pushes = [i for i, r in enumerate(log) if r.path.endswith("/git-receive-pack")]
    pulls = [i for i, r in enumerate(log) if r.method == "POST" and r.path.endswith("/pulls")]
    assert len(mints) >= 2, "the token should have been minted again after it expired"
    generated = next(i for i, r in enumerate(log) if r.path.endswith("/git-upload-pack"))
    assert mints[0] < generated < mints[-1] < pushes[0] and mints[-1] < pulls[0]
    assert not [r for r in log if r.status == 401], "no request went out with the expired token"


def test_token_of_one_installation_does_not_reach_another(tmp_path: Path) -> None:
    """Attack: a token minted for installation A (octocat) used on repo B (installed, other account)."""
    with GitHubEmulator(tmp_path / "github") as emu:
        aw = make_app_world(emu, tmp_path)
        emu.create_repo("other/b")
        emu.install_app(aw.app.id, "other")
        gi = GithubIntegration(auth=Auth.AppAuth(aw.app.id, aw.app.private_key_pem), base_url=emu.base_url)
        token = gi.get_access_token(aw.installation).token
        headers = {"Authorization": f"token {token}"}

        assert requests.get(f"{emu.base_url}/repos/{TARGET}", headers=headers).status_code == 200
        assert requests.get(f"{emu.base_url}/repos/other/b", headers=headers).status_code == 404
        assert requests.post(f"{emu.base_url}/repos/other/b/issues", json={"title": "x"},
                             headers=headers).status_code == 404
        git = subprocess.run(
            ["git", "-c", f"http.extraHeader=Authorization: Bearer {token}", "ls-remote", emu.git_url("other/b")],
            capture_output=True, text=True, env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin"})
        assert git.returncode != 0
        own = subprocess.run(
            ["git", "-c", f"http.extraHeader=Authorization: Bearer {token}", "ls-remote", emu.git_url(TARGET)],
            capture_output=True, text=True, env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin"})
        assert own.returncode == 0 and "refs/heads/main" in own.stdout
        # Expired tokens stop working on the API and on git.
        emu.expire_installation_tokens(aw.installation)
        assert requests.get(f"{emu.base_url}/repos/{TARGET}", headers=headers).status_code == 401


def test_app_jwt_is_checked(tmp_path: Path) -> None:
    """Attack: forged, expired and misused JWTs, and installation tokens on app routes."""
    import time

    import jwt as pyjwt

    with GitHubEmulator(tmp_path / "github") as emu:
        aw = make_app_world(emu, tmp_path)
        other_key = emu.create_app("impostor").private_key_pem
        now = int(time.time())

        def call(token: str, path: str = "/app/installations") -> int:
            return requests.get(f"{emu.base_url}{path}", headers={"Authorization": f"Bearer {token}"}).status_code

        good = pyjwt.encode({"iat": now - 60, "exp": now + 300, "iss": str(aw.app.id)},
                            aw.app.private_key_pem, algorithm="RS256")
        forged = pyjwt.encode({"iat": now - 60, "exp": now + 300, "iss": str(aw.app.id)},
                              other_key, algorithm="RS256")
        expired = pyjwt.encode({"iat": now - 900, "exp": now - 300, "iss": str(aw.app.id)},
                               aw.app.private_key_pem, algorithm="RS256")
        too_long = pyjwt.encode({"iat": now, "exp": now + 3600, "iss": str(aw.app.id)},
                                aw.app.private_key_pem, algorithm="RS256")
        assert call(good) == 200
        assert call(forged) == 401 and call(expired) == 401 and call(too_long) == 401
        assert call(good, f"/repos/{TARGET}") == 403  # a JWT is not an installation token
        token = GithubIntegration(auth=Auth.AppAuth(aw.app.id, aw.app.private_key_pem),
                                  base_url=emu.base_url).get_access_token(aw.installation).token
        assert call(token) == 401  # an installation token cannot list installations
        gh = github.Github(auth=Auth.AppAuth(aw.app.id, aw.app.private_key_pem).get_installation_auth(
            aw.installation), base_url=emu.base_url)
        assert gh.get_repo(TARGET).full_name == TARGET  # PyGithub's own AppInstallationAuth works


def test_app_settings_are_validated(tmp_path: Path) -> None:
    from runner.config import load_settings
    from runner.errors import ConfigError

    with pytest.raises(ConfigError, match="not both"):
        load_settings(env_file=None, github_token="x", github_app_id=1, dispatch_repo=DISPATCH)
    with pytest.raises(ConfigError, match="GITHUB_APP_ID is not"):
        load_settings(env_file=None, github_app_private_key_file=tmp_path / "k.pem")
    from runner.app import token_source

    missing = load_settings(env_file=None, github_app_id=1, github_app_private_key_file=tmp_path / "nope.pem")
    with pytest.raises(ConfigError, match="cannot be read"):
        token_source(missing)
    (tmp_path / "bad.pem").write_text("not a key")
    with pytest.raises(ConfigError, match="not a readable PEM"):
        token_source(load_settings(env_file=None, github_app_id=1, github_app_private_key_file=tmp_path / "bad.pem"))
    _ = timedelta
