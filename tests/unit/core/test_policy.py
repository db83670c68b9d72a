"""The pure checks in front of every side effect."""

from __future__ import annotations

import random

import pytest

from runner.core.policy import (
    Labels,
    check_labeler,
    check_target,
    outage_sentence,
    pull_action,
    repeated_failure_sentence,
    retry_decision,
    retry_delay,
    should_process,
)
from runner.errors import (
    BadCredentials,
    BudgetExceeded,
    DependencyDown,
    DiskFull,
    ForgeError,
    GeneratorError,
    GeneratorUnavailable,
    GeneratorUnreachable,
    GitTransportFailed,
    HumanCommitsOnBranch,
    InternalError,
    LabelerNotTrusted,
    LedgerUnavailable,
    NoChangeMade,
    NotFound,
    PermissionDenied,
    RateLimited,
    Rejected,
    RunnerError,
    TargetNotAllowed,
    TaskSpecError,
    ValidationFailed,
    WorkspaceError,
)
from runner.forge.base import Issue, PullRequest


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
    assert retry_decision(InternalError("x"), 1, 3) == "retry"
    assert retry_decision(InternalError("x"), 3, 3) == "dead"
    assert retry_decision(TaskSpecError("x"), 1, 3) == "dead"


@pytest.mark.parametrize("error", [
    ForgeError("GitHub failed (503)."), RateLimited("slow down"), GitTransportFailed("fetch failed"),
    GeneratorUnavailable("529 overloaded"), GeneratorUnreachable("refused"), LedgerUnavailable("gone"),
    DiskFull("no space"), DependencyDown("open", service="GitHub"),
])
def test_an_outage_waits_and_never_spends_an_attempt(error: RunnerError) -> None:
    """Issue #29: a service that is down says nothing about the task; MAX_ATTEMPTS counts only task failures."""
    assert error.outage and error.service
    assert retry_decision(error, 99, 3, waited_s=3600, wait_limit_s=24 * 3600) == "wait"
    assert retry_decision(error, 1, 3, waited_s=25 * 3600, wait_limit_s=24 * 3600) == "dead"
    sentence = outage_sentence(error, 25 * 3600, 24)
    assert error.service[1:] in sentence and "25 h 0 min" in sentence and "TRANSIENT_RETRY_HOURS=24" in sentence


@pytest.mark.parametrize("error", [
    NoChangeMade("none"), ValidationFailed("tests"), GeneratorError("crashed"), BudgetExceeded("cap"),
    PermissionDenied("403"), BadCredentials("401"), NotFound("404"), Rejected("422"), HumanCommitsOnBranch("x"),
    WorkspaceError("local git failed"),
])
def test_a_task_failure_is_not_an_outage(error: RunnerError) -> None:
    assert not error.outage
    assert retry_decision(error, 3, 3) == "dead"


def test_the_wait_between_looks_is_capped_at_a_minute() -> None:
    rng = random.Random(1)
    waits = [retry_delay(ForgeError("503"), n, base=10, cap=900, rng=rng) for n in range(1, 12)]
    assert max(waits) <= 60 and waits[-1] >= 30
    assert retry_delay(InternalError("bug"), 8, base=10, cap=900, rng=rng) > 60  # a task failure backs off longer


def test_the_reason_of_repeated_failures_is_the_last_real_error() -> None:
    assert "worker stopped" in repeated_failure_sentence(5, None)
    said = repeated_failure_sentence(5, "The patch does not apply.")
    assert "worker" not in said and "The patch does not apply." in said


# -- who approved the text (issue #8) ---------------------------------------------------------

from runner.core.policy import approval, check_approval  # noqa: E402
from runner.errors import RerunNotTrusted, TextNotApproved  # noqa: E402
from runner.forge.base import ContentEdit, IssueTrail, LabelEvent  # noqa: E402

ROLES = {"writer": "write", "reader": "read", "triager": "read", "admin": "admin"}


def trail(events: list[tuple[str, str, str, str]], edits: list[tuple[str, str]] = (),  # type: ignore[assignment]
          complete: bool = True) -> IssueTrail:
    last = max((at for _, at in edits), default=None)
    return IssueTrail(author="reader", body="b", created_at="2030-01-01T00:00:00Z", last_edited_at=last,
                      edits=tuple(ContentEdit(editor, at) for editor, at in edits),
                      label_events=tuple(LabelEvent(a, label, actor, at) for a, label, actor, at in events),
                      complete=complete)


def t(second: int) -> str:
    return f"2030-01-01T00:00:{second:02d}Z"


def check(facts_trail: IssueTrail, *, while_running: bool = False) -> None:
    check_approval(approval(facts_trail, Labels()), ROLES, Labels(), "o/d", while_running=while_running)


def test_edit_before_the_label_is_approved_and_after_is_not() -> None:
    labeled = [("labeled", "copilot-agent", "writer", t(5))]
    check(trail(labeled, [("reader", t(4))]))
    with pytest.raises(TextNotApproved, match="@reader .* after @writer added"):
        check(trail(labeled, [("reader", t(6))]))
    with pytest.raises(TextNotApproved, match="same second|after"):
        check(trail(labeled, [("reader", t(5))]))  # a tie counts as after
    check(trail(labeled, [("writer", t(6)), ("admin", t(7))]))


def test_an_edit_while_running_is_worded_for_the_pre_push_check() -> None:
    with pytest.raises(TextNotApproved, match="while the task ran.*stopped before pushing"):
        check(trail([("labeled", "copilot-agent", "writer", t(1))], [("reader", t(9))]), while_running=True)


def test_a_rerun_needs_a_writer_to_remove_the_result_label() -> None:
    base = [("labeled", "copilot-agent", "writer", t(1)), ("labeled", "processed", "bot", t(2))]
    check(trail(base + [("unlabeled", "processed", "writer", t(3))]))
    with pytest.raises(RerunNotTrusted, match="@triager removed the `processed` label"):
        check(trail(base + [("unlabeled", "processed", "triager", t(3))]))
    # A writer re-adding the trigger label afterwards is a fresh approval.
    check(trail(base + [("unlabeled", "processed", "triager", t(3)), ("unlabeled", "copilot-agent", "writer", t(4)),
                        ("labeled", "copilot-agent", "writer", t(5))]))


def test_missing_label_unknown_editor_and_partial_history_are_refused() -> None:
    with pytest.raises(LabelerNotTrusted, match="could not find"):
        check(trail([]))
    labeled = [("labeled", "copilot-agent", "writer", t(1))]
    with pytest.raises(TextNotApproved, match="deleted account"):
        check_approval(approval(trail(labeled), Labels()), ROLES, Labels(), "o/d")  # sanity: no edits passes
        check(IssueTrail("reader", "b", t(0), t(3), (ContentEdit(None, t(3)),), tuple(LabelEvent(*e) for e in labeled)))
    with pytest.raises(TextNotApproved, match="more often than the runner can check"):
        check(trail(labeled, [("writer", t(3))], complete=False))


def test_one_retry_policy_says_whether_and_when() -> None:
    import random

    from runner.core.policy import retry_delay, retry_in_place
    from runner.errors import HumanCommitsOnBranch, RateLimited, WorkspaceError

    rng = random.Random(1)
    assert 10 <= retry_delay(ForgeError("x"), 2, base=10, cap=60, rng=rng) <= 20
    assert retry_delay(RateLimited("slow down", retry_after=300), 1, base=10, cap=60, rng=rng) == 300
    assert retry_in_place(ForgeError("502")) and not retry_in_place(TaskSpecError("bad"))
    assert retry_in_place(WorkspaceError("reset")) and not retry_in_place(HumanCommitsOnBranch("mine"))
