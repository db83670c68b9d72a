"""Hooks: in-process plugin hooks (:mod:`.plugins`) and operator commands run in the sandbox (:mod:`.commands`)."""

from __future__ import annotations

from runner.hooks.plugins import CombinedHooks, Hook, load_hooks

__all__ = ["CombinedHooks", "Hook", "load_hooks"]
