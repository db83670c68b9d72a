"""Check against the real services what `check-config` cannot: `agent-runner doctor`.

One :class:`runner.ops.preflight.Check` per line, each ✗ with its fix: the token
(valid, and its scopes), the dispatch repository, the labels (``--fix``
creates the missing ones), the allowlist resolved against real repositories,
each generator's credentials (one cheap call), git and the clock.

Adding a check (GitHub App authentication, for example) is adding a function
to :data:`ONLINE_CHECKS`; each gets a :class:`Doctor` with the settings, the
forge and what the earlier checks learned.
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from runner.config import Settings
from runner.errors import BadCredentials, ConfigError, ForgeError, GeneratorError, NotFound
from runner.forge.base import RepoAccess, TokenInfo
from runner.forge.github import GitHubForge
from runner.ops.preflight import Check

#: Label colours the runner creates with `doctor --fix` (GitHub wants six hex digits, no `#`).
LABEL_COLOURS = {"trigger": ("1d76db", "Ask agent-runner to work on this issue"),
                 "processed": ("0e8a16", "agent-runner finished this task"),
                 "failed": ("d73a4a", "agent-runner could not finish this task; see its comment"),
                 "ci_failed": ("e99695", "agent-runner's CI rounds stopped with checks still failing")}
MAX_CLOCK_SKEW_SECONDS = 60.0
_WRITE = {"push", "maintain", "admin"}
_LABEL = _WRITE | {"triage"}


@dataclass
class Doctor:
    """What every online check gets, and what the earlier ones found."""

    settings: Settings
    forge: GitHubForge
    now: Callable[[], datetime]
    fix: bool = False
    token: TokenInfo | None = None
    notes: list[str] = field(default_factory=list)


def run_checks(doctor: Doctor) -> list[Check]:
    """Every online check in order; a token GitHub rejects makes the rest moot."""
    results: list[Check] = []
    for name, check in ONLINE_CHECKS:
        if doctor.token is None and name not in ("token", "git", "agent CLIs"):
            results.append(Check(name, False, "skipped: the token does not work", "Fix the token first."))
            continue
        try:
            results.append(check(doctor))
        except (ForgeError, GeneratorError, ConfigError) as exc:
            results.append(Check(name, False, str(exc), getattr(exc, "hint", "")))
    return results


def check_token(doctor: Doctor) -> Check:
    dispatch = doctor.settings.require_dispatch_repo()
    if doctor.settings.auth_mode == "app":
        login = doctor.forge.authenticated_login(dispatch)  # mints an installation token for DISPATCH_REPO
        doctor.token = TokenInfo(login=login, scopes=None, server_time=None)
        return Check("token", True, f"GitHub App {login}, installed on {dispatch} (permissions checked per "
                     "repository below)")
    try:
        info = doctor.forge.token_info(dispatch)
    except BadCredentials:
        return Check("token", False, "GitHub rejected GITHUB_TOKEN (401 Bad credentials).",
                     "Create a new token (classic: `repo` scope; fine-grained: Contents, Issues and Pull "
                     "requests read/write) and set GITHUB_TOKEN.")
    doctor.token = info
    if info.scopes is None:
        return Check("token", True, f"authenticated as {info.login} (fine-grained or app token: "
                     "its permissions are checked per repository below)")
    missing = missing_scopes(info.scopes)
    shown = ", ".join(info.scopes) or "none"
    if missing:
        return Check("token", False, f"authenticated as {info.login}, but the classic token's scopes are "
                     f"`{shown}`: it lacks `{'`, `'.join(missing)}`.",
                     "Edit the token at https://github.com/settings/tokens and tick `repo`.")
    return Check("token", True, f"authenticated as {info.login} (classic token, scopes: {shown})")


def missing_scopes(scopes: tuple[str, ...]) -> list[str]:
    """The classic scopes the runner needs and the token lacks (`repo` covers issues, PRs and pushes)."""
    return [] if "repo" in scopes else ["repo"]


def check_dispatch(doctor: Doctor) -> Check:
    repo = doctor.settings.require_dispatch_repo()
    try:
        access = doctor.forge.repo_access(repo)
    except NotFound:
        return Check("dispatch repository", False, f"DISPATCH_REPO {repo} does not exist or the token cannot see it.",
                     "Check the name in DISPATCH_REPO, and give the token access to that repository.")
    if not access.permissions & _LABEL:
        return Check("dispatch repository", False,
                     f"{repo}: the token may only read ({_perms(access)}); it must label and comment.",
                     "Give the token triage or write access to DISPATCH_REPO (fine-grained: Issues read/write).")
    return Check("dispatch repository", True, f"{repo} ({_perms(access)})")


def check_labels(doctor: Doctor) -> Check:
    settings = doctor.settings
    repo = settings.require_dispatch_repo()
    wanted = {"trigger": settings.trigger_label, "processed": settings.processed_label,
              "failed": settings.failed_label, "ci_failed": settings.ci_failed_label}
    present = {name.lower() for name in doctor.forge.list_labels(repo)}
    missing = {role: name for role, name in wanted.items() if name.lower() not in present}
    if not missing:
        return Check("labels", True, f"{', '.join(wanted.values())} exist in {repo}")
    if not doctor.fix:
        return Check("labels", False, f"{repo} lacks the label(s) {', '.join(missing.values())}.",
                     "Run `agent-runner doctor --fix` to create them, or create them by hand.")
    for role, name in missing.items():
        colour, description = LABEL_COLOURS[role]
        doctor.forge.create_label(repo, name, colour, description)
    return Check("labels", True, f"created {', '.join(missing.values())} in {repo}")


def check_allowlist(doctor: Doctor) -> Check:
    settings = doctor.settings
    patterns = settings.allowed_target_repos or (f"{settings.require_dispatch_repo().split('/')[0]}/*",)
    exact = [p for p in patterns if not any(c in p for c in "*?[")]
    found: dict[str, RepoAccess] = {}
    problems: list[str] = []
    for name in exact:
        try:
            access = doctor.forge.repo_access(name)
            found[access.full_name.lower()] = access
        except NotFound:
            problems.append(f"{name} does not exist or the token cannot see it")
    if len(exact) < len(patterns) and settings.auth_mode == "app":
        problems_note = "globs are resolved per task for a GitHub App"
        doctor.notes.append(problems_note)
    elif len(exact) < len(patterns):
        for access in doctor.forge.accessible_repos(settings.require_dispatch_repo()):
            if settings.target_allowed(access.full_name):
                found.setdefault(access.full_name.lower(), access)
        for pattern in patterns:
            if pattern not in exact and not any(fnmatch.fnmatchcase(k, pattern.lower()) for k in found):
                problems.append(f"`{pattern}` matches no repository the token can use")
    read_only = sorted(a.full_name for a in found.values() if not a.permissions & _WRITE)
    if read_only:
        problems.append(f"the token may not push to {', '.join(read_only)}")
    if problems:
        return Check("allowlist", False, "ALLOWED_TARGET_REPOS: " + "; ".join(problems) + ".",
                     "Fix the names in ALLOWED_TARGET_REPOS, or give the token write access (fine-grained: "
                     "Contents and Pull requests read/write) to those repositories.")
    names = sorted(a.full_name for a in found.values())
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return Check("allowlist", True, f"{len(names)} target repositor{'y' if len(names) == 1 else 'ies'} "
                 f"with write access: {shown}")


def check_generators(doctor: Doctor) -> Check:
    """Each generator with a `check()` method (the LLM ones, and any plugin that has one) makes one call."""
    from runner.generators import build_chain
    from runner.generators.agents import PRESETS

    lines = []
    for generator in build_chain(doctor.settings.generators, doctor.settings):
        if generator.name in PRESETS:
            lines.append(f"{generator.name}: see agent CLIs")
            continue
        probe = getattr(generator, "check", None)
        lines.append(f"{generator.name}: {probe() if callable(probe) else 'nothing to check'}")
    return Check("generators", True, "; ".join(lines))


def check_agents(doctor: Doctor) -> Check:
    """Each agent preset in GENERATORS: its CLI's path and version, and where its model calls go."""
    from runner.generators import build_chain
    from runner.generators.agents import PRESETS

    names = [name for name in doctor.settings.generators if name in PRESETS]
    if not names:
        return Check("agent CLIs", True, "none configured")
    lines = []
    for preset in build_chain(names, doctor.settings):  # a missing CLI is a ConfigError, shown with its fix
        describe = getattr(preset, "check", None)
        lines.append(f"{preset.name}: {describe() if callable(describe) else 'installed'}")
    return Check("agent CLIs", True, "; ".join(lines))


def check_git(doctor: Doctor) -> Check:
    git = shutil.which("git")
    if git is None:
        return Check("git", False, "git is not on PATH.", "Install git (2.30 or newer).")
    done = subprocess.run([git, "--version"], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"}, check=False)
    return Check("git", done.returncode == 0, done.stdout.strip() or done.stderr.strip(), "Reinstall git.")


def check_clock(doctor: Doctor) -> Check:
    server = doctor.token.server_time if doctor.token else None
    if server is None:
        return Check("clock", True, "GitHub sent no Date header; not compared")
    skew = (doctor.now() - server).total_seconds()
    if abs(skew) > MAX_CLOCK_SKEW_SECONDS:
        return Check("clock", False, f"this machine's clock is {skew:+.0f} s off GitHub's.",
                     "Synchronise the clock (NTP): leases, retries and rate-limit waits depend on it.")
    return Check("clock", True, f"within {abs(skew):.0f} s of GitHub's")


ONLINE_CHECKS: tuple[tuple[str, Callable[[Doctor], Check]], ...] = (
    ("token", check_token),
    # GitHub App authentication (GITHUB_APP_ID) adds its check here, next to the token's.
    ("dispatch repository", check_dispatch),
    ("labels", check_labels),
    ("allowlist", check_allowlist),
    ("generators", check_generators),
    ("agent CLIs", check_agents),
    ("git", check_git),
    ("clock", check_clock),
)


def _perms(access: RepoAccess) -> str:
    order = ("admin", "maintain", "push", "triage", "pull")
    return ", ".join(p for p in order if p in access.permissions) or "no access"
