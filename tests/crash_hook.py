"""A hook that kills its process at one stage, to test the crash windows for real.

Loaded by a runner subprocess through `HOOKS=crash_hook:CrashAt` with `CRASH_AT=<hook method>`.
"""

from __future__ import annotations

import os
from typing import Any

from runner.hooks.plugins import Hook


class CrashAt(Hook):
    def __init__(self) -> None:
        self.stage = os.environ.get("CRASH_AT", "")

    def _maybe_die(self, stage: str) -> None:
        if stage == self.stage:
            os._exit(137)  # like SIGKILL: no cleanup, no lease release

    def on_pushed(self, **_: Any) -> None:
        self._maybe_die("on_pushed")

    def on_pull_request(self, **_: Any) -> None:
        self._maybe_die("on_pull_request")

    def on_generated(self, **_: Any) -> None:
        self._maybe_die("on_generated")
