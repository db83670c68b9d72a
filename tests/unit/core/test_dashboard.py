"""The dashboard issue's text on plain values: sections, retry boxes, neutralised issue text."""

from __future__ import annotations

from typing import Any

from runner.core.dashboard import MARKER, render_dashboard, ticked

HOSTILE = "<img src=x onerror=alert(1)> @everyone [link](javascript:x) **bold**"


def doc(**sections: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"runner": {"dispatch_repo": "octo/dispatch"}, "running": [], "queued": [], "recent": []}
    base.update(sections)
    return base


def test_failed_tasks_get_a_box_and_hostile_text_renders_as_itself() -> None:
    body = render_dashboard(doc(
        running=[{"issue": 3, "title": HOSTILE, "step": "model turn 2"}],
        recent=[{"issue": 1, "outcome": "succeeded", "pr_url": "https://github.com/o/t/pull/1"},
                {"issue": 2, "outcome": "failed", "title": HOSTILE, "reason": f"bad {HOSTILE}"}]))
    assert body.startswith(MARKER)
    assert "- [ ] <!-- agent-runner:retry:2 --> #2" in body and "retry:1" not in body
    assert "<img" not in body and "@everyone" not in body and "](javascript" not in body and "**bold**" not in body
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" in body
    assert "#3" in body and "model turn 2" in body and "https://github.com/o/t/pull/1" in body


def test_ticked_boxes_are_read_and_nothing_else_counts() -> None:
    body = ("- [x] <!-- agent-runner:retry:2 --> #2\n- [ ] <!-- agent-runner:retry:5 --> #5\n"
            "- [X] <!-- agent-runner:retry:7 --> #7\n- [x] retry:9 by hand\n")
    assert ticked(body) == {2, 7}
    assert ticked("") == set()
