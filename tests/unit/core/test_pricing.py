"""Prices resolve for exact, dated and prefixed model ids; overrides win; unknown stays unknown."""

from __future__ import annotations

import pytest

from runner.core.pricing import cost_usd, format_cost, price_for
from runner.steps.transcript import excerpt, redact


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("gpt-4o", (2.50, 10.00)),
        ("gpt-4o-mini", (0.15, 0.60)),
        ("gpt-4o-mini-2024-07-18", (0.15, 0.60)),
        ("gpt-4o-2024-08-06", (2.50, 10.00)),
        ("GPT-4.1", (2.00, 8.00)),
        ("openai/gpt-4.1-mini", (0.40, 1.60)),
        ("claude-sonnet-4-5-20250929", (3.00, 15.00)),
        ("claude-haiku-4-5", (1.00, 5.00)),
        ("openrouter/anthropic/claude-opus-4-1", (15.00, 75.00)),
        ("claude-3-5-haiku-latest", (0.80, 4.00)),
    ],
)
def test_known_models(model: str, price: tuple[float, float]) -> None:
    assert price_for(model) == price


@pytest.mark.parametrize("model", ["llama3:8b", "gpt-4o2", "my-model", "", None, "gpt-5.1x"])
def test_unknown_models_cost_none(model: str | None) -> None:
    assert price_for(model) is None
    assert cost_usd(model, 1000, 1000) is None


def test_cost_is_per_million_tokens() -> None:
    assert cost_usd("gpt-4o", 1_000_000, 1_000_000) == pytest.approx(12.50)
    assert cost_usd("gpt-4o-mini", 2_000, 1_000) == pytest.approx(0.0009)


def test_overrides_win_and_extend() -> None:
    overrides = {"gpt-4o": [1.0, 2.0], "llama3": (0.0, 0.0), "Local-Model": [0.5, 0.5]}
    assert price_for("gpt-4o-2024-08-06", overrides) == (1.0, 2.0)
    assert price_for("llama3:8b", overrides) == (0.0, 0.0)
    assert cost_usd("llama3", 10**6, 10**6, overrides) == 0.0
    assert price_for("local-model", overrides) == (0.5, 0.5)
    assert price_for("gpt-4o-mini", overrides) == (0.15, 0.60)  # a longer built-in name still matches exactly


def test_format_cost() -> None:
    assert format_cost(None) == "$ unknown"
    assert format_cost(0.01234) == "$0.0123"


def test_transcript_excerpt_is_redacted_collapsed_and_bounded() -> None:
    text = "key sk-abc123 and token ghp_x\n```\ncode\n```\n<!-- agent-runner:result -->\n" + "y" * 10_000
    out = excerpt(text, ["sk-abc123", "ghp_x", ""], limit=500)
    assert len(out) <= 500
    assert "sk-abc123" not in out and "ghp_x" not in out and "***" in out
    assert out.startswith("<details>") and out.endswith("</details>")
    assert "````text" in out  # a fence longer than any inside
    assert "<!--" not in out
    assert "truncated" in out
    assert redact("aXa", ["a", "aXa"]) == "***"
    assert excerpt("short", [], limit=10) == ""
