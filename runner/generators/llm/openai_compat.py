"""Know how each OpenAI-compatible server differs, instead of guessing per request.

``OPENAI_COMPAT`` names the server kind (``openai``, ``llamacpp``, ``vllm``,
``ollama``), or ``auto``: no ``OPENAI_BASE_URL`` means OpenAI itself, and
otherwise ``GET /v1/models`` tells the kind by its ``owned_by`` field
(llama.cpp's server says ``llamacpp``, llama-cpp-python ``me``, vLLM
``vllm``, Ollama ``library``). A server that cannot be told apart gets the
``generic`` profile, which every server we know accepts.

Pure values and functions; the generator does the one HTTP call.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

CompatName = Literal["auto", "openai", "llamacpp", "vllm", "ollama"]
ToolChoice = Literal["auto", "required"]


@dataclass(frozen=True)
class CompatProfile:
    """What one server kind accepts on the wire."""

    name: str
    #: OpenAI's own API wants ``max_completion_tokens`` (o-series and gpt-5 reject
    #: ``max_tokens``); compatible servers only know ``max_tokens``.
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    #: The server honours ``tool_choice="required"``; otherwise "auto" is sent instead.
    #: Every profile sends a ``tool_choice``: llama.cpp ignores tools without one.
    honours_required: bool = False

    def tool_choice(self, wanted: ToolChoice) -> ToolChoice:
        return wanted if self.honours_required else "auto"


PROFILES: Mapping[str, CompatProfile] = {
    "openai": CompatProfile("openai", max_tokens_field="max_completion_tokens", honours_required=True),
    # llama-cpp-python's chatml-function-calling asserts tool_choice == "auto" (HTTP 500 otherwise).
    "llamacpp": CompatProfile("llamacpp"),
    # vLLM >= 0.8.3 takes "required" (guided decoding); "auto" needs --enable-auto-tool-choice.
    "vllm": CompatProfile("vllm", honours_required=True),
    # Ollama's OpenAI endpoint ignores tool_choice; "auto" says what it does anyway.
    "ollama": CompatProfile("ollama"),
    "generic": CompatProfile("generic"),
}

_OWNERS = {"llamacpp": "llamacpp", "me": "llamacpp", "vllm": "vllm", "library": "ollama", "ollama": "ollama",
           "openai": "openai", "system": "openai", "openai-internal": "openai"}


def profile_for(setting: str, base_url: str | None) -> CompatProfile | None:
    """The profile the setting names, or None when it must be detected from the server."""
    if setting != "auto":
        return PROFILES[setting]
    if not base_url:
        return PROFILES["openai"]
    return None


def detect_profile(models: Any) -> CompatProfile:
    """Tell the server kind from its ``GET /v1/models`` answer (``generic`` when unsure)."""
    data = models.get("data") if isinstance(models, Mapping) else None
    owners = {str(m.get("owned_by", "")).lower() for m in data or [] if isinstance(m, Mapping)}
    kinds = {_OWNERS[o] for o in owners if o in _OWNERS}
    # A LiteLLM proxy reports "openai" for every model it fronts; it is not OpenAI's own API.
    if len(kinds) == 1 and kinds != {"openai"}:
        return PROFILES[kinds.pop()]
    return PROFILES["generic"]


def decode_arguments(raw: Any) -> Mapping[str, Any] | str:
    """Decode a tool call's arguments; keep the raw text when it is no JSON object, for the model to fix.

    Arguments are a JSON string on the wire, but some servers send an object, and
    some HTML-escape the JSON (``{&quot;path&quot;: ...}``).
    """
    if isinstance(raw, Mapping):
        return dict(raw)
    if raw is None or raw == "":
        return {}
    text = str(raw)
    for candidate in (text, html.unescape(text)) if "&" in text else (text,):
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return text

