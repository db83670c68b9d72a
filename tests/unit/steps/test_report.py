"""Progress on the issue is paced: nothing in a task's first seconds, then at most every 15 s."""

from __future__ import annotations

import pytest

from runner.steps.report import progress_due

FIRST_PROGRESS_AFTER_S = 5.0
PROGRESS_EVERY_S = 15.0


@pytest.mark.parametrize(("elapsed", "since_last", "due"), [
    (0.0, None, False),
    (FIRST_PROGRESS_AFTER_S - 0.1, None, False),  # a fast task never shows progress
    (FIRST_PROGRESS_AFTER_S, None, True),
    (30.0, PROGRESS_EVERY_S - 0.1, False),
    (30.0, PROGRESS_EVERY_S, True),
])
def test_progress_is_paced(elapsed: float, since_last: float | None, due: bool) -> None:
    assert progress_due(elapsed, since_last, after_s=FIRST_PROGRESS_AFTER_S, every_s=PROGRESS_EVERY_S) is due
