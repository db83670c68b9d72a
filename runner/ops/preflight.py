"""Check, before any work starts, what start-up needs; `check-config` runs the same checks dry.

Start-up (:func:`prepare`) and ``agent-runner check-config`` (:func:`offline_checks`)
share one list, so a configuration that passes the check does not fail at
start-up. The dry run has no side effects: it creates no directory, opens
the ledger read-only, and only imports hooks and plugins.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runner.config import Settings
from runner.errors import ConfigError


@dataclass(frozen=True)
class Check:
    """One line of a check report: ✓ or ✗, what was found, and for a ✗ how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: str = ""  # a ✓ that deserves a second look (SANDBOX_NETWORK=allow)

    def line(self) -> str:
        mark = "✓" if self.ok else "✗"
        text = f"{mark} {self.name}: {self.detail}"
        text += f"\n    ⚠ {self.warning}" if self.warning else ""
        return text + (f"\n    fix: {self.fix}" if self.fix and not self.ok else "")


def offline_checks(settings: Settings) -> list[Check]:
    """Every start-up check, run dry; never raises for a bad setting, reports it."""
    checks = [_guarded(name, fn, settings) for name, fn in _CHECKS]
    return checks


def prepare(settings: Settings) -> None:
    """Start-up: create the directories and check what building the app would not.

    The chain, the hooks and the ledger are checked by being built, so only the
    directories and the commands' programs are checked here; raises ConfigError.
    """
    for setting, path in (("WORKSPACE_DIR", settings.workspace_dir), ("DATA_DIR", settings.data_dir)):
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{setting} `{path}` cannot be created ({exc.strerror}). {_dir_fix(setting)}") from exc
    for check in (_directories(settings), _commands(settings), _hook_commands(settings)):
        if not check.ok:
            raise ConfigError(f"{check.detail} {check.fix}".strip())


def writable_dir(path: Path) -> str | None:
    """None if ``path`` is a writable directory or could be created as one; else the reason."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return f"no part of `{path}` exists"
        probe = probe.parent
    if not probe.is_dir():
        return f"`{probe}` is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"`{probe}` is not writable by this user (uid {os.getuid()})"
    return None


def resolve_program(command: str, path: str | None = None) -> str | None:
    """The absolute path of the command's program, or None. A path with a slash is taken as it is."""
    program = shlex.split(command)[0] if command.strip() else ""
    if not program:
        return None
    if "/" in program:
        return program if os.access(program, os.X_OK) else None
    return shutil.which(program, path=path if path is not None else os.environ.get("PATH", os.defpath))


# -- the checks -----------------------------------------------------------------------


def _credentials(settings: Settings) -> Check:
    if settings.auth_mode == "token":
        settings.token()
        auth = "GITHUB_TOKEN set"
    else:
        from runner.forge.connect import token_source

        token_source(settings)  # reads and parses the private key
        auth = f"GitHub App {settings.github_app_id}, private key readable"
    repos = settings.require_dispatch_repos()
    where = f"DISPATCH_REPO {repos[0]}" if len(repos) == 1 else f"{len(repos)} dispatch repositories: {', '.join(repos)}"
    return Check("settings", True, f"{auth}, {where}")


def _directories(settings: Settings) -> Check:
    problems = []
    for setting, path in (("WORKSPACE_DIR", settings.workspace_dir), ("DATA_DIR", settings.data_dir)):
        reason = writable_dir(path)
        if reason:
            return Check("directories", False, f"{setting} `{path}` is unusable: {reason}.", _dir_fix(setting))
        problems.append(f"{setting} {path}")
    return Check("directories", True, "writable: " + ", ".join(problems))


def _ledger(settings: Settings) -> Check:
    from runner.ledger import open_existing_ledger
    from runner.ledger.database import redact_url

    url = settings.ledger_location
    shown = redact_url(url)
    ledger = open_existing_ledger(url)  # raises ConfigError for a bad URL or an unreadable ledger
    if ledger is None:
        if url.lower().startswith("sqlite"):
            from runner.ledger.sqlite import path_from_url

            path = path_from_url(url)
            reason = writable_dir(path.parent)
            if reason:
                return Check("ledger", False, f"The SQLite ledger `{path}` cannot be created: {reason}.",
                             "Set DATA_DIR or LEDGER_URL to a writable place.")
        return Check("ledger", True, f"{shown} (empty: created at start-up)")
    try:
        count = len(ledger.list(limit=100_000))
    finally:
        ledger.close()
    return Check("ledger", True, f"{shown} ({count} task{'s' if count != 1 else ''})")


def _write_pacer(settings: Settings) -> Check:
    return Check("write pacer", True, write_pacing(settings))


def write_pacing(settings: Settings) -> str:
    """How this deployment keeps GitHub's write limits, in a line for `check-config` and the start-up log."""
    limits = (f"{settings.github_write_interval_seconds:g} s apart, {settings.github_writes_per_minute}/min, "
              f"{settings.github_writes_per_hour}/h per token")
    if not settings.github_throttle:
        return "off (GITHUB_THROTTLE=false): GitHub's write limits are not kept"
    if settings.github_limit_time_scale != 1:
        limits += f", TIME COMPRESSED x{settings.github_limit_time_scale:g} (benchmarks only)"
    if shared_ledger(settings):
        return f"shared by every replica through the PostgreSQL ledger ({limits})"
    if settings.executor == "temporal":
        return (f"per process ({limits}): Temporal replicas on one token do not share it; "
                "set LEDGER_URL=postgresql://… to give them one budget")
    return f"per process, shared by its {settings.workers} workers ({limits})"


def shared_ledger(settings: Settings) -> bool:
    """Whether the ledger is one PostgreSQL database that every replica shares."""
    from runner.ledger import ledger_scheme

    return ledger_scheme(settings.ledger_location) == "postgresql"


def _generators(settings: Settings) -> Check:
    from runner.generators import NotInstalled, build_chain

    chain = build_chain(settings.generators, settings)  # imports plugins, checks each generator's settings
    detail = "chain " + " → ".join(g.name for g in chain) + " loads"
    for missing in (g for g in chain if isinstance(g, NotInstalled)):
        detail += f"; `{missing.name}` is skipped on every task until it is installed: {missing.error}"
    return Check("generators", True, detail)


def _commands(settings: Settings) -> Check:
    from runner.sandbox.procs import minimal_env

    wanted: list[tuple[str, str]] = []
    if "command" in settings.generators and settings.command_template:
        wanted.append(("COMMAND_TEMPLATE", settings.command_template))
    search = minimal_env(settings.command_env_allowlist).get("PATH", os.defpath)  # what the child gets
    found = []
    for setting, command in wanted:
        program = shlex.split(command)[0]
        resolved = resolve_program(command, search)
        if resolved is None:
            return Check("commands", False, f"{setting} runs `{program}`, which is not on PATH ({search}).",
                         f"Install `{program}` in the runner's image, or name it by absolute path in {setting}.")
        found.append(f"{program} → {resolved}")
    for command in settings.validate_commands:
        program = shlex.split(command)[0] if command.strip() else ""
        if program and "/" not in program:  # a path inside the target repository is checked there
            resolved = resolve_program(command, search)
            if resolved is None:
                return Check("commands", False,
                             f"VALIDATE_COMMANDS runs `{program}`, which is not on PATH ({search}).",
                             f"Install `{program}` in the runner's image, or remove it from VALIDATE_COMMANDS.")
            found.append(f"{program} → {resolved}")
    return Check("commands", True, ", ".join(found) if found else "none configured")


def _hooks(settings: Settings) -> Check:
    from runner.hooks.plugins import load_hooks

    hooks = load_hooks(settings.hooks)
    return Check("hooks", True, f"{len(hooks)} Python hook{'s' if len(hooks) != 1 else ''} loaded"
                 + (f" ({', '.join(settings.hooks)})" if hooks else ""))


def _hook_commands(settings: Settings) -> Check:
    """HOOK_COMMANDS: each program on the hooks' PATH, and no credential in any command line."""
    from runner.hooks.commands import HOOK_ENV
    from runner.sandbox.procs import minimal_env

    search = minimal_env(HOOK_ENV).get("PATH", os.defpath)
    found = []
    for event, command in settings.hook_commands.items():
        if any(secret in command for secret in settings.secrets()):
            return Check("hook commands", False, f"HOOK_COMMANDS `{event}` holds a credential in its command line.",
                         "Hooks run without credentials and their argv is visible; remove the secret from "
                         "HOOK_COMMANDS.")
        program = shlex.split(command)[0]
        resolved = resolve_program(command, search)
        if resolved is None:
            return Check("hook commands", False,
                         f"HOOK_COMMANDS `{event}` runs `{program}`, which is not on PATH ({search}).",
                         f"Install `{program}` in the runner's image, or name it by absolute path (outside /usr, "
                         "/etc and /opt, add its directory to SANDBOX_RO_PATHS so the sandbox shows it).")
        found.append(f"{event} → {resolved}")
    return Check("hook commands", True, ", ".join(found) if found else "none configured")


def _sandbox(settings: Settings) -> Check:
    """Which backend isolates untrusted commands; unusable is a ✗ only when something would need it."""
    from runner.errors import SandboxUnavailable
    from runner.sandbox.bwrap import Sandbox

    sandbox = Sandbox.from_settings(settings)
    try:
        backend = sandbox.backend()
    except SandboxUnavailable as exc:
        from runner.generators.agents import PRESETS

        runs_cli = any(name == "command" or name in PRESETS for name in settings.generators)
        needed = runs_cli or settings.validate_commands or settings.repo_commands or settings.hook_commands
        return Check("sandbox", not needed, f"unavailable ({exc})" + ("" if needed else "; nothing needs it"),
                     "Install bubblewrap and allow user namespaces (docs/security.md), or set SANDBOX=off "
                     "to run commands without isolation.")
    if not backend.isolated:
        return Check("sandbox", True, "off (SANDBOX=off: untrusted commands run without isolation)")
    warning = ""
    if sandbox.network:
        warning = ("SANDBOX_NETWORK=allow gives every sandboxed command the whole network: GitHub's API host, "
                   "this machine's other ports, anything. Agent CLIs reach their model through the model "
                   "gateway without it: set SANDBOX_NETWORK=off, and SANDBOX_EGRESS_ALLOW for hosts a tool needs.")
    return Check("sandbox", True, f"{backend.name} ({backend.detail}; network "
                 f"{'allowed' if sandbox.network else 'off'})", warning=warning)


def _gateway(settings: Settings) -> Check:
    """Where the model gateway of COMMAND_GATEWAY forwards, with or without a key, and the egress allowlist."""
    from runner.gateway.upstream import missing_keys, upstreams_from

    dialects = tuple(settings.command_gateway)
    if not dialects:
        return Check("model gateway", True, "not used by COMMAND_TEMPLATE (agent presets start their own)")
    try:
        upstreams = upstreams_from(settings, dialects)  # type: ignore[arg-type]
    except ValueError as exc:
        return Check("model gateway", False, str(exc), "Fix ANTHROPIC_BASE_URL / OPENAI_BASE_URL / GEMINI_BASE_URL.")
    parts = [f"{dialect} → {upstream.origin}{upstream.base_path} ({'key set' if upstream.key else 'no key'})"
             for dialect, upstream in upstreams.items()]
    missing = missing_keys(upstreams)
    egress = ", ".join(settings.sandbox_egress_allow) or "none"
    detail = "; ".join(parts) + f"; egress allowed to: {egress}"
    if missing and "command" in settings.generators:  # start-up refuses it too (the command generator's build)
        return Check("model gateway", False, detail, f"Set {' and '.join(missing)}: the gateway adds the key; "
                     "the CLI only ever gets a placeholder.")
    return Check("model gateway", True, detail)


_CHECKS: tuple[tuple[str, Callable[[Settings], Check]], ...] = (
    ("settings", _credentials),
    ("directories", _directories),
    ("ledger", _ledger),
    ("write pacer", _write_pacer),
    ("generators", _generators),
    ("commands", _commands),
    ("hooks", _hooks),
    ("hook commands", _hook_commands),
    ("sandbox", _sandbox),
    ("model gateway", _gateway),
)


def _guarded(name: str, fn: Callable[[Settings], Check], settings: Settings) -> Check:
    try:
        return fn(settings)
    except ConfigError as exc:
        return Check(name, False, str(exc))


def _dir_fix(setting: str) -> str:
    return (f"Point {setting} at a directory this user can write (in the container, a volume owned by "
            "uid 1000).")
