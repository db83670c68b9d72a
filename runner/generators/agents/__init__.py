"""Presets for real coding-agent CLIs, one module per CLI, on top of the ``command`` generator.

``GENERATORS=claude-code``, ``codex``, ``aider``, ``mini-swe-agent``,
``gemini-cli``, ``opencode`` or ``cline`` (chainable like any generator). :mod:`.base` holds what they share; each CLI's module
holds its command line, its config files and the parsing of its output.
"""

from __future__ import annotations

#: Preset name → its module.
PRESETS = {
    "claude-code": "runner.generators.agents.claude_code",
    "codex": "runner.generators.agents.codex",
    "aider": "runner.generators.agents.aider",
    "mini-swe-agent": "runner.generators.agents.mini_swe_agent",
    "gemini-cli": "runner.generators.agents.gemini_cli",
    "opencode": "runner.generators.agents.opencode",
    "cline": "runner.generators.agents.cline",
}
