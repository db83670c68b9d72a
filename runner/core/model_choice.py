"""Pick the model for a task from what its author asked for, in a fixed order.

Pure: no settings loading, no network. The order, first match wins:

1. ``metadata``: ``"model"`` in the issue's metadata JSON (``task.model``);
2. ``label``: a ``model:<name>`` label on the dispatch issue;
3. ``seniority``: the task's level (``"seniority"`` in the metadata, else a
   ``seniority:<level>`` label) looked up in ``SENIORITY_MODELS``;
4. ``default``: ``DEFAULT_MODEL``, or None, which means "the generator's own
   default" (``OPENAI_MODEL`` for the openai generator, and so on).

``SENIORITY_MODELS`` is a JSON object from a level, or a tier, to a model::

    SENIORITY_MODELS='{"principal": "gpt-4.1", "strongest": "o3"}'

A level is looked up by its own name first, then by its built-in tier:
``junior``, ``mid`` and ``senior`` belong to ``standard``; ``staff``,
``principal`` and ``distinguished`` to ``strongest``. So one
``{"strongest": "o3"}`` entry serves every top level, and a level that
maps to nothing falls through to the default model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

# The same rule parse_task applies to "model" in the metadata; task.py keeps it private.
from runner.core.task import MODEL_RE, DispatchTask
from runner.errors import TaskSpecError

ModelSource = Literal["metadata", "label", "seniority", "default"]

MODEL_LABEL_PREFIX = "model:"
SENIORITY_LABEL_PREFIX = "seniority:"
#: Built-in tiers: a level with no entry of its own uses its tier's entry.
SENIORITY_TIERS: Mapping[str, str] = {
    "junior": "standard",
    "mid": "standard",
    "senior": "standard",
    "staff": "strongest",
    "principal": "strongest",
    "distinguished": "strongest",
}
_LEVEL_RE = re.compile(r"^[a-z0-9_-]{1,40}$")


class ModelSettings(Protocol):
    """The two settings model choice reads; :class:`runner.config.Settings` has both."""

    @property
    def default_model(self) -> str | None: ...

    @property
    def seniority_models(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class ModelChoice:
    """The model to use (None: the generator's default), where it came from, and why."""

    model: str | None
    source: ModelSource
    seniority: str | None = None
    note: str | None = None


def choose_model(task: DispatchTask, settings: ModelSettings) -> ModelChoice:
    """Choose the task's model by metadata, then label, then seniority, then the default.

    Raise TaskSpecError when a label is malformed or two labels disagree, so the
    author hears about it instead of silently getting another model.
    """
    if task.model:
        return ModelChoice(task.model, "metadata")
    labelled = model_from_labels(task.labels)
    if labelled is not None:
        return ModelChoice(labelled, "label")

    default = settings.default_model or None
    level = (task.seniority or "").strip().lower() or seniority_from_labels(task.labels)
    if level is None:
        return ModelChoice(default, "default")
    mapped = seniority_model(level, settings.seniority_models)
    if mapped is not None:
        return ModelChoice(mapped, "seniority", seniority=level)
    note = f"Seniority `{level}` has no entry in SENIORITY_MODELS, so the default model is used."
    return ModelChoice(default, "default", seniority=level, note=note)


def seniority_model(level: str, seniority_models: Mapping[str, str]) -> str | None:
    """The model for a level: its own entry, else its tier's entry, else None."""
    table = {str(k).strip().lower(): str(v).strip() for k, v in seniority_models.items()}
    key = level.strip().lower()
    for candidate in (key, SENIORITY_TIERS.get(key)):
        if candidate and table.get(candidate):
            return table[candidate]
    return None


def model_from_labels(labels: Iterable[str]) -> str | None:
    """The model named by a ``model:<name>`` label, checked like the metadata's model."""
    names = _label_values(labels, MODEL_LABEL_PREFIX, lower=False)
    if not names:
        return None
    for name in names:
        if not MODEL_RE.match(name) or name.startswith("-"):
            raise TaskSpecError(
                f"The label `{MODEL_LABEL_PREFIX}{name}` does not name a model. Use letters, "
                "digits and `._:/@+-`, for example `model:gpt-4o`, or remove the label."
            )
    if len(names) > 1:
        listed = ", ".join(f"`{MODEL_LABEL_PREFIX}{n}`" for n in names)
        raise TaskSpecError(f"The issue has more than one model label ({listed}). Keep one.")
    return names[0]


def seniority_from_labels(labels: Iterable[str]) -> str | None:
    """The level named by a ``seniority:<level>`` label, lower-cased."""
    levels = _label_values(labels, SENIORITY_LABEL_PREFIX, lower=True)
    if not levels:
        return None
    for level in levels:
        if not _LEVEL_RE.match(level):
            raise TaskSpecError(
                f"The label `{SENIORITY_LABEL_PREFIX}{level}` does not name a level. Use a "
                "word such as `seniority:senior`, or remove the label."
            )
    if len(levels) > 1:
        listed = ", ".join(f"`{SENIORITY_LABEL_PREFIX}{n}`" for n in levels)
        raise TaskSpecError(f"The issue has more than one seniority label ({listed}). Keep one.")
    return levels[0]


def _label_values(labels: Iterable[str], prefix: str, *, lower: bool) -> list[str]:
    """Values of labels shaped ``prefix value`` (prefix case-insensitive), deduplicated, sorted."""
    values = set()
    for label in labels:
        head, sep, value = label.partition(":")
        if not sep or head.strip().lower() + ":" != prefix:
            continue
        value = value.strip()
        values.add(value.lower() if lower else value)
    return sorted(values)
