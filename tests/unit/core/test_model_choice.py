"""Model choice follows metadata, then label, then seniority, then the default."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from runner.config import load_settings
from runner.core.model_choice import ModelChoice, choose_model, seniority_model
from runner.core.task import DispatchTask, parse_task
from runner.errors import TaskSpecError


@dataclass(frozen=True)
class ModelSettings:
    default_model: str | None = "gpt-4o-mini"
    seniority_models: Mapping[str, str] = field(default_factory=dict)


def task(metadata: dict[str, str] | None = None, labels: tuple[str, ...] = ()) -> DispatchTask:
    meta = {"task_id": "model-task-1", **(metadata or {})}
    body = (
        f"<!-- agent_task_metadata {json.dumps(meta)} -->\n\n## Instruction\n\nDo it.\n\n"
        "Target Repository: octo/target\n"
    )
    return parse_task(body, dispatch_repo="o/d", issue_number=7, labels=("copilot-agent", *labels))


SENIORITY = {"principal": "gpt-4.1", "strongest": "o3", "senior": "gpt-4o"}


@pytest.mark.parametrize(
    ("metadata", "labels", "expected"),
    [
        # 1. metadata beats everything
        (
            {"model": "claude-opus-4"},
            ("model:gpt-4o", "seniority:staff"),
            ModelChoice("claude-opus-4", "metadata"),
        ),
        # 2. a model label beats seniority
        ({}, ("model:gpt-4o", "seniority:principal"), ModelChoice("gpt-4o", "label")),
        (
            {},
            ("Model: openrouter/anthropic/claude-3.5",),
            ModelChoice("openrouter/anthropic/claude-3.5", "label"),
        ),
        # 3. seniority: metadata level first, then label; own entry, then tier entry
        (
            {"seniority": "principal"},
            ("seniority:senior",),
            ModelChoice("gpt-4.1", "seniority", "principal"),
        ),
        ({}, ("seniority:principal",), ModelChoice("gpt-4.1", "seniority", "principal")),
        ({}, ("Seniority: Staff",), ModelChoice("o3", "seniority", "staff")),
        ({"seniority": "distinguished"}, (), ModelChoice("o3", "seniority", "distinguished")),
        ({"seniority": "senior"}, (), ModelChoice("gpt-4o", "seniority", "senior")),
        # 4. default, with a note when a level maps to nothing
        ({}, (), ModelChoice("gpt-4o-mini", "default")),
        ({}, ("bug", "model-ish"), ModelChoice("gpt-4o-mini", "default")),
        (
            {"seniority": "junior"},
            (),
            ModelChoice(
                "gpt-4o-mini",
                "default",
                "junior",
                "Seniority `junior` has no entry in SENIORITY_MODELS, so the default model is used.",
            ),
        ),
    ],
)
def test_precedence(
    metadata: dict[str, str], labels: tuple[str, ...], expected: ModelChoice
) -> None:
    settings = ModelSettings(seniority_models=SENIORITY)
    assert choose_model(task(metadata, labels), settings) == expected


def test_no_default_means_the_generators_own() -> None:
    assert choose_model(task(), ModelSettings(default_model=None)) == ModelChoice(None, "default")


def test_real_settings_parse_the_documented_json() -> None:
    settings = load_settings(
        env_file=None, default_model="gpt-4o-mini", seniority_models='{"principal": "gpt-4.1"}'
    )
    choice = choose_model(task({"seniority": "principal"}), settings)
    assert choice == ModelChoice("gpt-4.1", "seniority", "principal")
    # staff shares principal's tier, but the tier itself has no entry
    assert choose_model(task({"seniority": "staff"}), settings).model == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("level", "table", "expected"),
    [
        ("junior", {"standard": "small"}, "small"),
        ("SENIOR", {"senior": "mid-size", "standard": "small"}, "mid-size"),
        ("staff", {"Strongest": "big"}, "big"),
        ("intern", {"standard": "small"}, None),
        ("principal", {"principal": ""}, None),
    ],
)
def test_seniority_lookup(level: str, table: dict[str, str], expected: str | None) -> None:
    assert seniority_model(level, table) == expected


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (("model:gpt 4o",), "does not name a model"),
        (("model:",), "does not name a model"),
        (("model:--exec",), "does not name a model"),
        (("model:gpt-4o", "model:o3"), "more than one model label"),
        (("seniority:very senior",), "does not name a level"),
        (("seniority:staff", "seniority:junior"), "more than one seniority label"),
    ],
)
def test_bad_labels_are_explained(labels: tuple[str, ...], expected: str) -> None:
    with pytest.raises(TaskSpecError) as caught:
        choose_model(task(labels=labels), ModelSettings(seniority_models=SENIORITY))
    assert expected in str(caught.value)


def test_duplicate_labels_that_agree_are_fine() -> None:
    labels = ("model:gpt-4o", "Model: gpt-4o")
    assert choose_model(task(labels=labels), ModelSettings()) == ModelChoice("gpt-4o", "label")
