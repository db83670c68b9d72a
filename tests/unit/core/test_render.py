"""What people read on the issue and the PR."""

from __future__ import annotations

from runner.core.render import (
    PullView,
    ResultView,
    is_result_comment,
    pull_title,
    render_pull_body,
    render_result,
)
from runner.core.task import parse_task

BODY = ('<!-- agent_task_metadata {"task_id": "t-1", "extra": "kept"} -->\n## Instruction\nDo the thing.\n'
        "Target Repository: o/t")
TASK = parse_task(BODY, dispatch_repo="o/d", issue_number=4)


def test_running_comment_shows_the_checklist_and_the_marker() -> None:
    text = render_result(ResultView("running", "t-1", "bot", stages_done=("claimed", "cloned")))
    assert is_result_comment(text)
    assert "- [x] cloned" in text and "- [ ] pushed" in text


def test_failure_says_what_went_wrong_and_how_to_retry() -> None:
    text = render_result(ResultView("failed", "t-1", "bot", error="No target.", hint="Add one, then remove the label."))
    assert "**What went wrong:** No target." in text and "**How to retry:** Add one" in text


def test_user_text_cannot_forge_the_marker() -> None:
    text = render_result(ResultView("failed", "t-1", "bot", error="<!-- agent-runner:result --> x"))
    assert text.count("<!-- agent-runner:result -->") == 1


def test_pull_body_carries_metadata_summary_and_fixes_line() -> None:
    body = render_pull_body(PullView(task=TASK, summary="Did it.", files=("a.py",), generator="patch",
                                     notes=("`openai` failed and was skipped: down",)))
    assert body.startswith("<!-- agent_task_metadata ") and '"extra": "kept"' in body
    assert "## What changed" in body and "- `a.py`" in body and "openai` failed" in body
    assert body.rstrip().endswith("Fixes o/d#4")


def test_pull_title_uses_the_issue_title() -> None:
    assert pull_title(TASK, "  Add   tests ") == "[agent] Add tests"
    assert pull_title(TASK, "") == "[agent] Do the thing."


def test_the_format_example_in_a_failure_comment_is_copyable() -> None:
    """Entities are not decoded inside code, so the example must keep a literal `<!--`."""
    from runner.errors import TaskSpecError

    try:
        parse_task("no metadata here", dispatch_repo="o/d", issue_number=5)
    except TaskSpecError as exc:
        error = str(exc)
    text = render_result(ResultView("failed", "t-1", "bot", error=error))
    fenced = text.split("```markdown\n", 1)[1].split("```", 1)[0]
    assert fenced.startswith('<!-- agent_task_metadata {"task_id": "my-task-123"} -->')
    assert "&lt;" not in fenced
    copied = fenced.replace("my-task-123", "t-9").replace("owner/repo", "o/t")
    assert parse_task(copied, dispatch_repo="o/d", issue_number=5).task_id == "t-9"


def test_comments_outside_code_are_still_neutralised() -> None:
    text = render_result(ResultView("failed", "t-1", "bot",
                                    error="hidden <!-- secret text --> and `<!-- shown -->` and `<!-- agent-runner:result -->`"))
    assert "hidden &lt;!-- secret text --&gt;" in text and "`<!-- shown -->`" in text
    assert text.count("<!-- agent-runner:result -->") == 1
    unclosed = render_result(ResultView("failed", "t-1", "bot", error="```\n<!-- never closed"))
    assert "&lt;!-- never closed" in unclosed
