"""Settings is composed of per-concern groups; composing them must lose no field and no validator."""

from __future__ import annotations

import pytest

from runner.config import Settings, load_settings
from runner.config.base import Group
from runner.errors import ConfigError


def _groups() -> list[type[Group]]:
    return [cls for cls in Settings.__mro__ if issubclass(cls, Group) and cls not in (Group, Settings)]


def test_no_two_groups_share_a_validator_name() -> None:
    # pydantic keeps one validator per attribute name along the MRO: a second `_check` in another
    # group would silently replace the first, and its fields would go unchecked.
    seen: dict[str, str] = {}
    for group in _groups():
        decorators = group.__pydantic_decorators__
        for kind in (decorators.field_validators, decorators.model_validators):
            for name in kind:
                if name in group.__dict__:
                    assert name not in seen, f"{group.__name__}.{name} also in {seen[name]}"
                    seen[name] = group.__name__


def test_every_field_belongs_to_exactly_one_group() -> None:
    owners: dict[str, list[str]] = {}
    for group in _groups():
        for name in group.__annotations__:
            owners.setdefault(name, []).append(group.__name__)
    assert set(owners) == set(Settings.model_fields)
    assert all(len(found) == 1 for found in owners.values()), owners


@pytest.mark.parametrize(("env", "message"), [
    ({"RETRY_MAX_SECONDS": "1"}, "RETRY_MAX_SECONDS must be at least RETRY_BASE_SECONDS"),
    ({"WEBHOOK_SECRET": "short"}, "WEBHOOK_SECRET must be at least 16 characters"),
    ({"TEMPORAL_TLS_CLIENT_CERT_FILE": "/c.pem"}, "go together"),
    ({"GITHUB_APP_PRIVATE_KEY": "k"}, "GITHUB_APP_ID is not"),
    ({"SANDBOX_RO_PATHS": "relative"}, "must be an absolute path"),
    ({"HOOK_COMMANDS": '{"nope": "x"}'}, "is not a hook"),
    ({"COMMAND_GATEWAY": "openai,smoke-signals"}, "not a dialect"),
])
def test_each_groups_checks_still_run_in_the_composed_settings(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_settings(None)
