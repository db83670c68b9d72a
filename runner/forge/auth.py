"""Hand each repository the credential that may act on it: one token, or an app's installation tokens.

Two modes, one interface (:class:`TokenSource`):

- :class:`PersonalToken`: ``GITHUB_TOKEN`` for every repository; the runner is
  the token's user (``GET /user``).
- :class:`AppInstallations`: ``GITHUB_APP_ID`` and its private key. For each
  repository the runner finds the app's installation
  (``GET /repos/{owner}/{repo}/installation``, with the app's JWT) and mints an
  installation token (``POST /app/installations/{id}/access_tokens``), through
  PyGithub's ``Auth.AppAuth`` and ``GithubIntegration``. A token reaches only
  the repositories of its installation, lasts an hour, and is cached per
  installation until shortly before it expires. The runner is the app's bot,
  ``<slug>[bot]``:
  https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app/authenticating-as-a-github-app-installation

A *key* names one credential ("token", or "installation:<id>"); the forge keeps
one client (and so one write pacer) per key, and git asks for the token of the
repository it fetches from or pushes to.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from github import Auth, GithubException, GithubIntegration

from runner.errors import AppNotInstalled, ConfigError
from runner.forge.wire import translate

#: Refresh a cached installation token this long before it expires (GitHub: tokens last 1 h).
REFRESH_MARGIN = timedelta(minutes=5)
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class BotIdentity:
    """Who the runner is on GitHub, and who its commits are by."""

    login: str
    name: str
    email: str


class TokenSource(Protocol):
    """Where the forge and git get a token for a repository."""

    mode: str  # "token" or "app"

    @property
    def bot_login(self) -> str | None:
        """The app's ``<slug>[bot]``; None for a personal token (ask ``GET /user``)."""
        ...

    def key_for(self, repo: str) -> str:
        """Which credential acts on ``repo``; raises AppNotInstalled when none may."""
        ...

    def token(self, key: str) -> str:
        """A token for the key that is valid now (minted or refreshed as needed)."""
        ...

    def token_for(self, repo: str) -> str:
        """Both of the above: what git uses."""
        ...


class PersonalToken:
    """One token for every repository (a PAT, or any token handed in)."""

    mode = "token"

    def __init__(self, token: str) -> None:
        self._token = token

    @property
    def bot_login(self) -> str | None:
        return None

    def key_for(self, repo: str) -> str:
        return "token"

    def token(self, key: str) -> str:
        return self._token

    def token_for(self, repo: str) -> str:
        return self._token


@dataclass(frozen=True)
class _Minted:
    token: str
    expires_at: datetime
    refresh_at: datetime


class AppInstallations:
    """Installation tokens of one GitHub App, per repository's installation, cached and refreshed."""

    mode = "app"

    def __init__(
        self,
        app_id: int,
        private_key: str,
        *,
        base_url: str,
        timeout: float = 30.0,
        max_retries: int = 5,
        clock: Clock = lambda: datetime.now(UTC),
        on_token: Callable[[str], None] = lambda _token: None,
    ) -> None:
        self.app_id = app_id
        self._integration = GithubIntegration(
            auth=Auth.AppAuth(app_id, private_key), base_url=base_url, timeout=int(timeout),
            retry=max_retries, lazy=True,
        )
        self._clock = clock
        self._on_token = on_token
        self._lock = threading.Lock()
        self._installations: dict[str, int] = {}  # lower-cased repo -> installation id
        self._tokens: dict[int, _Minted] = {}
        self._app: tuple[str, str] | None = None  # (slug, html_url)
        self.minted = 0  # how many tokens were minted (for tests and doctor)

    # -- the app ----------------------------------------------------------------

    def app_info(self) -> tuple[str, str]:
        """The app's slug and web page, from ``GET /app``."""
        if self._app is None:
            with translate(f"read GitHub App {self.app_id} (check GITHUB_APP_ID and the private key)"):
                app = self._integration.get_app()
                self._app = (app.slug, app.html_url)
        return self._app

    @property
    def bot_login(self) -> str:
        return f"{self.app_info()[0]}[bot]"

    def install_url(self) -> str:
        return f"{self.app_info()[1]}/installations/new"

    # -- tokens -------------------------------------------------------------------

    def installation_id(self, repo: str) -> int:
        """The installation that covers ``repo``; only positive answers are cached."""
        key = repo.lower()
        with self._lock:
            known = self._installations.get(key)
        if known is not None:
            return known
        owner, _, name = repo.partition("/")
        with translate(f"find the GitHub App's installation on {repo}"):
            try:
                found = int(self._integration.get_repo_installation(owner, name).id)
            except GithubException as exc:
                if exc.status != 404:
                    raise
                raise self._not_installed(repo) from None
        with self._lock:
            self._installations[key] = found
        return found

    def key_for(self, repo: str) -> str:
        return f"installation:{self.installation_id(repo)}"

    def token_for(self, repo: str) -> str:
        return self.token(self.key_for(repo))

    def token(self, key: str) -> str:
        installation = int(key.removeprefix("installation:"))
        with self._lock:
            minted = self._tokens.get(installation)
            if minted is not None and self._clock() < minted.refresh_at:
                return minted.token
            minted = self._mint(installation)
            self._tokens[installation] = minted
            return minted.token

    def _mint(self, installation: int) -> _Minted:
        now = self._clock()
        with translate(f"mint a token for installation {installation} of GitHub App {self.app_id}"):
            try:
                grant = self._integration.get_access_token(installation)
            except GithubException as exc:
                if exc.status == 404:  # uninstalled since we looked it up
                    self._installations = {r: i for r, i in self._installations.items() if i != installation}
                raise
        self._on_token(grant.token)
        self.minted += 1
        expires_at = grant.expires_at.astimezone(UTC)
        # GitHub's expires_at is in its own clock; our margin keeps clock skew and slow pushes safe.
        margin = min(REFRESH_MARGIN, max(timedelta(0), expires_at - now) / 2)
        return _Minted(grant.token, expires_at, expires_at - margin)

    def _not_installed(self, repo: str) -> AppNotInstalled:
        slug, _ = self.app_info()
        url = self.install_url()
        return AppNotInstalled(
            f"The GitHub App `{slug}` is not installed on `{repo}`, so the runner may not read or "
            f"change it. Install it: {url}",
            install_url=url,
        )

    # -- identity -------------------------------------------------------------------

    def identity(self, dispatch_repo: str, user_id: Callable[[str, str], int]) -> BotIdentity:
        """``<slug>[bot]``, committing as ``<id>+<slug>[bot]@users.noreply.github.com``.

        ``user_id(login, repo)`` looks the bot user up (``GET /users/{login}``) with a token
        for ``repo``; the id is the bot *user's* id, not the app's:
        https://docs.github.com/account-and-profile/setting-up-and-managing-your-personal-account-on-github/managing-email-preferences/setting-your-commit-email-address
        """
        login = self.bot_login
        bot_id = user_id(login, dispatch_repo)
        return BotIdentity(login=login, name=login, email=f"{bot_id}+{login}@users.noreply.github.com")


class SourcedAuth(Auth.Auth):
    """PyGithub auth that asks the token source on every request, so a refreshed token is used at once."""

    def __init__(self, source: TokenSource, key: str) -> None:
        self._source = source
        self._key = key

    @property
    def token_type(self) -> str:
        return "token"

    @property
    def token(self) -> str:
        return self._source.token(self._key)

    @property
    def _masked_token(self) -> str:
        return "token (removed)"


def read_private_key(pem: str | None, path: str | None) -> str:
    """The app's private key from GITHUB_APP_PRIVATE_KEY or GITHUB_APP_PRIVATE_KEY_FILE, checked."""
    if pem and path:
        raise ConfigError("Set GITHUB_APP_PRIVATE_KEY or GITHUB_APP_PRIVATE_KEY_FILE, not both.")
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                pem = fh.read()
        except OSError as exc:
            raise ConfigError(
                f"GITHUB_APP_PRIVATE_KEY_FILE `{path}` cannot be read ({exc.strerror}). Point it at the "
                "`.pem` file GitHub gave you when you generated the app's private key."
            ) from None
    if not pem or not pem.strip():
        raise ConfigError(
            "GITHUB_APP_ID is set but the app's private key is not. Set GITHUB_APP_PRIVATE_KEY_FILE to "
            "the `.pem` file from the app's settings page (or GITHUB_APP_PRIVATE_KEY to its text)."
        )
    pem = pem.strip().replace("\\n", "\n") + "\n"  # one-line env values often carry literal \n
    from cryptography.hazmat.primitives import serialization

    try:
        serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            "The GitHub App private key is not a readable PEM private key "
            f"({type(exc).__name__}). Download a new one from the app's settings page."
        ) from None
    return pem
