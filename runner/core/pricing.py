"""Turn token counts into dollars, so a task can be stopped before it costs too much.

Prices are US dollars per one million tokens, ``(input, output)``. The table
holds list prices of common OpenAI, Anthropic and Gemini models; operators override or
extend it with ``MODEL_PRICES='{"my-model": [0.5, 1.5]}'``. A dated or
provider-prefixed id (``gpt-4o-2024-08-06``, ``openrouter/anthropic/claude-sonnet-4-5``)
matches the longest known name it starts with. An unknown model costs ``None``:
we would rather say "unknown" than guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

Price = tuple[float, float]

#: List prices in $ per 1M tokens (input, output), from the providers' pricing pages.
DEFAULT_PRICES: Mapping[str, Price] = {
    # OpenAI
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
    "o1": (15.00, 60.00),
    "o1-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    # Anthropic
    "claude-opus-4-5": (5.00, 25.00),
    "claude-opus-4-1": (15.00, 75.00),
    "claude-opus-4": (15.00, 75.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-opus": (15.00, 75.00),
    "claude-3-haiku": (0.25, 1.25),
    # Google (Gemini API; the Pro models' prices are for prompts up to 200k tokens)
    "gemini-3.1-pro": (2.00, 12.00),
    "gemini-3-pro": (2.00, 12.00),
    "gemini-3-flash": (0.50, 3.00),
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.0-flash-lite": (0.075, 0.30),
}

_SEPARATORS = ("-", ":", "@")


def price_for(model: str | None, overrides: Mapping[str, Sequence[float]] | None = None) -> Price | None:
    """Return ``(input, output)`` $/1M tokens for a model, or None when it is unknown.

    An operator's override replaces the built-in price of the same name; the
    most specific name wins, so overriding ``gpt-4o`` leaves ``gpt-4o-mini`` alone.
    """
    if not model:
        return None
    table = {**DEFAULT_PRICES, **_normalize(overrides or {})}
    return _lookup(model.strip().lower(), table)


def cost_usd(
    model: str | None,
    input_tokens: int,
    output_tokens: int,
    overrides: Mapping[str, Sequence[float]] | None = None,
) -> float | None:
    """What ``input_tokens`` and ``output_tokens`` of ``model`` cost in dollars, or None."""
    price = price_for(model, overrides)
    if price is None:
        return None
    return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000


def format_cost(cost: float | None) -> str:
    """Show a cost the way a person reads it: ``$0.0123`` or ``$ unknown``."""
    return "$ unknown" if cost is None else f"${cost:.4f}"


_PATHLIKE = re.compile(r"^(?:/|~|\.{1,2}/|[A-Za-z]:[\\/])|\\|\.(?:gguf|ggml|bin|safetensors|pt|pth|onnx)$",
                       re.IGNORECASE)


def display_model(model: str | None) -> str | None:
    """The model's name as people may read it: a local file path becomes its file name.

    A llama.cpp server started without ``--alias`` reports the path of the
    weights file as the model id; a public PR body must not show that path.
    """
    if not model or not _PATHLIKE.search(model):
        return model
    name = re.split(r"[\\/]", model.rstrip("/\\"))[-1]
    return re.sub(r"\.(?:gguf|ggml|bin|safetensors|pt|pth|onnx)$", "", name, flags=re.IGNORECASE) or "local model"


def _normalize(table: Mapping[str, Sequence[float]]) -> dict[str, Price]:
    return {name.lower(): (float(p[0]), float(p[1])) for name, p in table.items() if len(p) == 2}


def _lookup(model: str, table: Mapping[str, Price]) -> Price | None:
    candidates = [model]
    if "/" in model:  # openrouter/anthropic/claude-... or openai/gpt-4o
        candidates.append(model.rsplit("/", 1)[1])
    for name in candidates:
        if name in table:
            return table[name]
        best = ""
        for known in table:
            if (
                name.startswith(known)
                and name[len(known)] in _SEPARATORS
                and len(known) > len(best)
            ):
                best = known
        if best:
            return table[best]
    return None
