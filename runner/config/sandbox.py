"""Bound every untrusted command: bubblewrap, its network, its limits, and which repositories' commands run."""

from __future__ import annotations

import fnmatch
from typing import Literal

from pydantic import Field, field_validator

from runner.config.base import CsvList, Group


class SandboxSettings(Group):
    """The sandbox (docs/security.md) and REPO_COMMANDS."""

    sandbox: Literal["bwrap", "off"] = "bwrap"
    """Every untrusted command (agent CLI, setup/validate commands, the tests they run) runs in bubblewrap. `off` runs them without isolation and says so on every issue (see docs/security.md)."""
    sandbox_network: Literal["off", "allow"] = "off"
    """`off`: no network inside the sandbox (agent CLIs reach their model through the model gateway); `allow`: the whole network, GitHub's API host included. `doctor` warns about `allow`."""
    sandbox_memory_mb: int = Field(default=4096, ge=64)
    """Per-process data size (MiB) inside one sandbox."""
    sandbox_pids: int = Field(default=512, ge=16)
    """Process count inside one sandbox."""
    sandbox_ro_paths: CsvList = ()
    """Extra read-only paths the sandboxed commands see (tools installed outside /usr and /opt), comma-separated absolute paths."""
    sandbox_egress_allow: CsvList = ()
    """Hosts that agent CLIs and the setup and validation commands may reach through the sandbox's HTTP(S) CONNECT proxy (ports 443 and 80), comma-separated, for example `pypi.org,*.pythonhosted.org`. Every attempt is logged; blocked ones are reported on the issue. Empty: nothing but the model gateway."""
    repo_commands: CsvList = ()
    """Run the setup/validate commands of a target's `.agent-runner.yml`: empty (never), `allow` (every target), or patterns such as `octo-org/*,octo-org/tools`."""

    @field_validator("sandbox_egress_allow")
    @classmethod
    def _check_egress_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for host in value:
            if "/" in host or ":" in host or " " in host:
                raise ValueError(f"`{host}` must be a host name such as `pypi.org` or `*.pythonhosted.org` "
                                 "(no scheme, path or port: ports 443 and 80 are allowed)")
        return tuple(host.lower() for host in value)

    @field_validator("sandbox_ro_paths")
    @classmethod
    def _check_ro_paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if not path.startswith("/"):
                raise ValueError(f"`{path}` must be an absolute path")
        return value

    @field_validator("repo_commands")
    @classmethod
    def _check_repo_commands(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if item.lower() not in ("allow", "off") and item.count("/") != 1:
                raise ValueError(f"`{item}` must be `allow`, `off`, or a pattern like `owner/*`")
        return value

    def repo_commands_allowed(self, target_repo: str) -> bool:
        """Whether `.agent-runner.yml` setup and validate commands may run for this repository."""
        items = [item.lower() for item in self.repo_commands]
        if "allow" in items:
            return True
        target = target_repo.lower()
        return any(fnmatch.fnmatchcase(target, p) for p in items if "/" in p)
