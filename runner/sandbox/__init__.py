"""The only way an untrusted command runs (:mod:`.bwrap`), and bounded child processes (:mod:`.procs`)."""

from __future__ import annotations

from runner.sandbox.bwrap import Sandbox

__all__ = ["Sandbox"]
