"""Give every settings group the same footing: documented fields and the shared value shapes.

A group is a plain pydantic model whose fields :class:`runner.config.Settings`
inherits; only ``Settings`` reads the environment. Each group keeps
``use_attribute_docstrings``, because pydantic reads a field's docstring in
the class that declares it, and that docstring is the setting's documentation
(``agent-runner config-docs``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic_settings import NoDecode


def split_csv(value: Any) -> Any:
    """Read `a, b,c` as ``("a", "b", "c")``; empty items are dropped."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


#: A comma-separated list in `.env`, a tuple in the model (NoDecode: not JSON).
CsvList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(split_csv)]


def check_url(value: str | None) -> str | None:
    """Accept an http(s) URL without its trailing slash, or nothing."""
    if value is None:
        return None
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"must start with http:// or https://, got `{value}`")
    return value.rstrip("/")


def parse_json_map(value: Any) -> Any:
    """Read a JSON object from `.env`; an empty value is an empty map."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"must be a JSON object ({exc.msg})") from exc
    return value


def empty_is_unset(value: Any) -> Any:
    """Read a blank value as unset (None)."""
    return None if isinstance(value, str) and not value.strip() else value


class Group(BaseModel):
    """One concern's settings: fields with their docstrings, validators beside them."""

    model_config = ConfigDict(use_attribute_docstrings=True)
