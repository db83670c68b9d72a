"""The pure checks in front of every side effect."""

from __future__ import annotations

import pytest

from runner.errors import ForgeError, LabelerNotTrusted, TargetNotAllowed, TaskSpecError
from runner.forge.base import Issue, PullRequest
from runner.policy import (
    Labels,
    check_labeler,
    check_target,
    pull_action,
    retry_decision,
    should_process,
)


def issue(labels: set[str], state: str = "open", pr: bool = False) -> Issue:
    return Issue("o/d", 1, "t", "b", frozenset(labels), "u", state, "", "", pr)


@pytest.mark.parametrize(("labels", "state", "pr", "expected"), [
    ({"copilot-agent"}, "open", False, True),
    ({"copilot-agent", "processed"}, "open", False, False),
    ({"copilot-agent", "agent-failed"}, "open", False, False),
    ({"copilot-agent"}, "closed", False, False),
    ({"copilot-agent"}, "open", True, False),
    (set(), "open", False, False),
])
def test_should_process(labels: set[str], state: str, pr: bool, expected: bool) -> None:
    assert should_process(issue(labels, state, pr), Labels())[0] is expected


def test_trust_checks_raise_postable_refusals() -> None:
    with pytest.raises(TargetNotAllowed, match="`org/\\*`"):
        check_target("x/y", False, ("org/*",), "o")
    with pytest.raises(LabelerNotTrusted, match="@eve .* `read`"):
        check_labeler("eve", "read", "copilot-agent", "o/d")
    check_labeler("ann", "maintain", "copilot-agent", "o/d")


def pull(state: str, merged: bool = False) -> PullRequest:
    return PullRequest(1, "u", state, merged, "h", "main", "t", "b")


def test_pull_action() -> None:
    assert pull_action(None) == "create"
    assert pull_action(pull("open")) == "update"
    assert pull_action(pull("closed")) == "reopen"
    assert pull_action(pull("closed", merged=True)) == "merged"


def test_retry_is_a_property_of_the_error_class() -> None:
    assert retry_decision(ForgeError("x"), 1, 3) == "retry"
    assert retry_decision(ForgeError("x"), 3, 3) == "dead"
    assert retry_decision(TaskSpecError("x"), 1, 3) == "dead"
