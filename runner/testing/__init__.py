"""Emulators shipped with agent-runner, like ``moto`` for AWS.

They are real servers on 127.0.0.1, so tests (ours and plugin authors')
exercise real HTTP clients and real git with no credentials and no network.
"""

from __future__ import annotations

from .github import (
    ADMIN_LOGIN,
    ADMIN_TOKEN,
    EmulatorError,
    FaultRule,
    GitHubEmulator,
    Permission,
    RequestRecord,
)
from .llm import AnthropicEmulator, OpenAIEmulator, Reply

__all__ = [
    "ADMIN_LOGIN",
    "AnthropicEmulator",
    "OpenAIEmulator",
    "Reply",
    "ADMIN_TOKEN",
    "EmulatorError",
    "FaultRule",
    "GitHubEmulator",
    "Permission",
    "RequestRecord",
]
