"""A stateful GitHub emulator for end-to-end tests: REST subset, git smart HTTP, faults.

    with GitHubEmulator(tmp_path) as emu:
        emu.create_repo("octo/dispatch")
        gh = github.Github(auth=github.Auth.Token(ADMIN_TOKEN), base_url=emu.base_url)
"""

from __future__ import annotations

from .app import RequestRecord
from .emulator import (
    ADMIN_LOGIN,
    ADMIN_TOKEN,
    APP_EVENTS,
    EmulatedApp,
    GitHubEmulator,
    serve_forever,
)
from .errors import EmulatorError
from .faults import FaultRule, Faults
from .hookshot import Delivery, sign
from .limits import LimitConfig, LimitHit
from .records import Permission

__all__ = [
    "ADMIN_LOGIN",
    "ADMIN_TOKEN",
    "APP_EVENTS",
    "Delivery",
    "EmulatedApp",
    "EmulatorError",
    "FaultRule",
    "Faults",
    "GitHubEmulator",
    "LimitConfig",
    "LimitHit",
    "Permission",
    "RequestRecord",
    "serve_forever",
    "sign",
]
