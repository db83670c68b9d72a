"""GitHub and model API emulators for agent-runner, like ``moto`` for AWS.

They are real servers on 127.0.0.1, so tests (ours and plugin authors')
exercise real HTTP clients and real git with no credentials and no network.
"""

from __future__ import annotations

from ._github import (
    ADMIN_LOGIN,
    ADMIN_TOKEN,
    APP_EVENTS,
    Delivery,
    EmulatedApp,
    EmulatorError,
    FaultRule,
    Faults,
    GitHubEmulator,
    LimitConfig,
    LimitHit,
    Permission,
    RequestRecord,
    serve_forever,
    sign,
)
from .llm import AnthropicEmulator, OpenAIEmulator, Reply

__all__ = [
    "APP_EVENTS",
    "Delivery",
    "EmulatedApp",
    "Faults",
    "serve_forever",
    "sign",
    "ADMIN_LOGIN",
    "AnthropicEmulator",
    "OpenAIEmulator",
    "Reply",
    "ADMIN_TOKEN",
    "EmulatorError",
    "FaultRule",
    "GitHubEmulator",
    "LimitConfig",
    "LimitHit",
    "Permission",
    "RequestRecord",
]
