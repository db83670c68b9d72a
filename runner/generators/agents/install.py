"""Find an agent CLI and the files it needs at run time, so the sandbox can show them read-only.

An npm package's program is a symlink in ``node_modules/.bin`` whose real
file (a native binary, or a Node script that starts one from an optional
dependency) lives in the same ``node_modules``: that whole directory is shown.
A PyPI package's program is a script in a venv whose interpreter links to a
base Python (``home`` in ``pyvenv.cfg``, a pyenv or /usr/local install): the
venv and that base installation are shown. Anything under the sandbox's system
paths (``/usr``, ``/opt``, ...) is visible already.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from runner.errors import CliNotInstalled, ConfigError

_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt")
_VERSION_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Installation:
    """Where one agent CLI lives: the program to run and the host paths it needs, read-only."""

    program: Path
    paths: tuple[Path, ...]
    kind: str  # "npm", "venv" or "file"


def locate(program: str, configured: str | Path | None, setting: str, install_hint: str) -> Installation:
    """The CLI at the configured path, else on PATH; a ConfigError that says how to install it otherwise."""
    named = bool(configured) and "/" not in str(configured)  # a program name, as the old runner's CLINE_CMD=cline
    if configured and not named:
        candidate = Path(os.path.expanduser(str(configured)))
        if not candidate.is_absolute():
            raise ConfigError(f"{setting} must be an absolute path, got `{configured}`.")
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            raise CliNotInstalled(f"{setting} is `{configured}`, which is not an executable file. {install_hint}")
        return installation(candidate)
    found = shutil.which(str(configured) if named else program)
    if found is None:
        if named:
            raise CliNotInstalled(f"{setting} is `{configured}`, which is not on PATH. {install_hint}")
        raise CliNotInstalled(f"`{program}` is not on PATH and {setting} is not set. {install_hint}")
    return installation(Path(found))


def installation(program: Path) -> Installation:
    """The read-only paths the program needs, by how it was installed."""
    absolute = Path(os.path.abspath(program))
    real = absolute.resolve()
    modules = _node_modules(absolute) or _node_modules(real)
    if modules is not None:
        return Installation(absolute, _outside_system(modules, real), "npm")
    venv = _venv(absolute)
    if venv is not None:
        return Installation(absolute, _outside_system(venv, *_base_python(venv)), "venv")
    return Installation(absolute, _outside_system(absolute.parent, real.parent), "file")


def version(install: Installation, *, env: dict[str, str] | None = None) -> str:
    """``program --version``'s first line, or why it could not be read (for doctor)."""
    try:
        done = subprocess.run([str(install.program), "--version"], capture_output=True, text=True, check=False,
                              timeout=_VERSION_TIMEOUT_S, stdin=subprocess.DEVNULL,
                              env=env or {"PATH": os.defpath, "HOME": "/nonexistent", "LANG": "C.UTF-8"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({type(exc).__name__})"
    lines = [line.strip() for line in (done.stdout + "\n" + done.stderr).splitlines() if line.strip()]
    lines = [line for line in lines if "version" in line.lower() or any(ch.isdigit() for ch in line)]
    return lines[0] if lines else f"unknown (exit {done.returncode})"


def _node_modules(path: Path) -> Path | None:
    """The outermost ``node_modules`` directory above ``path`` (it holds the optional native packages)."""
    found = None
    for parent in path.parents:
        if parent.name == "node_modules":
            found = parent
    return found


def _venv(program: Path) -> Path | None:
    root = program.parent.parent
    return root if (root / "pyvenv.cfg").is_file() else None


def _base_python(venv: Path) -> tuple[Path, ...]:
    """The base installation the venv's interpreter links to (``home`` in pyvenv.cfg, and its target)."""
    found: list[Path] = []
    for line in (venv / "pyvenv.cfg").read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "home" and value.strip():
            found.append(Path(value.strip()).parent)  # .../bin -> the installation prefix
    interpreter = venv / "bin" / "python3"
    if interpreter.exists():
        found.append(interpreter.resolve().parent.parent)
    return tuple(found)


def _outside_system(*paths: Path) -> tuple[Path, ...]:
    """The paths the sandbox does not show already, without duplicates or nested repeats."""
    kept: list[Path] = []
    for path in sorted({p.resolve() if p.exists() else p for p in paths} | set(paths), key=lambda p: len(p.parts)):
        if any(path.is_relative_to(s) for s in _SYSTEM) and not path.is_symlink():
            continue
        if any(path.is_relative_to(k) for k in kept):
            continue
        kept.append(path)
    return tuple(kept)
