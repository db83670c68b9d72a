"""Tell people on the dispatch issue what happened: one comment, edited in place, and a label.

The result comment is found again by its hidden marker, so a crash and a re-run
edit the same comment instead of posting a second one. Everything posted is
redacted first.

GitHub writes are the scarce resource (runner/forge/pacer.py), so progress is
shown sparingly: not before a task has run PROGRESS_AFTER_SECONDS (5), then at
most every PROGRESS_EVERY_SECONDS (15), and never while the write pacer has a
queue. A task that finishes within a few seconds writes only its final comment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from runner.forge.base import Forge, Issue
from runner.policy import Labels
from runner.render import ResultView, is_result_comment, render_result

#: Skip a progress edit when the write pacer would hold it longer than this.
PROGRESS_MAX_WAIT_S = 0.5


def progress_due(elapsed_s: float, since_last_s: float | None, *, after_s: float, every_s: float) -> bool:
    """Whether a task that has run ``elapsed_s`` may show progress now (``since_last_s``: last shown)."""
    if elapsed_s < after_s:
        return False
    return since_last_s is None or since_last_s >= every_s


class Reporter:
    """Upserts the result comment and sets the final label."""

    def __init__(self, forge: Forge, labels: Labels, redact: Callable[[str], str], log: Any) -> None:
        self._forge = forge
        self._labels = labels
        self._redact = redact
        self._log = log
        # (comment id, body) of the result comment, or None once we know there is none.
        self._known: dict[tuple[str, int], tuple[int, str] | None] = {}
        self._lock = threading.Lock()

    def note_issue(self, issue: Issue, *, attempt: int) -> None:
        """Learn from the issue just read whether listing its comments can be skipped.

        On a task's first attempt no worker has commented before, so an issue
        with no comments at all has no result comment: the first post creates
        one without listing. Later attempts always look by marker.
        """
        if attempt == 1 and issue.comment_count == 0:
            with self._lock:
                self._known.setdefault((issue.repo, issue.number), None)

    def post(self, repo: str, number: int, view: ResultView) -> None:
        """Create the result comment, or edit it when its text changed."""
        body = self._redact(render_result(view))
        with self._lock:
            looked = (repo, number) in self._known
            known = self._known.get((repo, number))
        if not looked:
            # Only our own comment is ours to edit: anyone can paste the marker into theirs.
            me = self._forge.authenticated_login(repo).lower()
            existing = next((c for c in self._forge.list_comments(repo, number)
                             if is_result_comment(c.body) and c.author.lower() == me), None)
            known = (existing.id, existing.body) if existing else None
        if known is None:
            with self._lock:  # until the comment surely exists, the next post looks again
                self._known.pop((repo, number), None)
            comment = self._forge.create_comment(repo, number, body)
            known = (comment.id, body)
        elif known[1] != body:
            self._forge.edit_comment(repo, known[0], body)
            known = (known[0], body)
        with self._lock:
            self._known[(repo, number)] = known

    def progress(self, repo: str, number: int, view: ResultView) -> bool:
        """Like post, but best effort: skipped while writes queue up, and a failure never fails the task."""
        if self._forge.write_wait() > PROGRESS_MAX_WAIT_S:
            return False
        try:
            self.post(repo, number, view)
        except Exception as exc:  # progress is best effort; the final post is not
            self._log.warning("could not update progress comment", error=str(exc))
            return False
        return True

    def mark_processed(self, repo: str, number: int, carried: frozenset[str] | None = None) -> None:
        """Add `processed`; remove `agent-failed` only if the issue carries it (None: not known)."""
        self._forge.add_labels(repo, number, [self._labels.processed])
        if carried is None or self._labels.failed in carried:
            self._forge.remove_label(repo, number, self._labels.failed)

    def mark_failed(self, repo: str, number: int) -> None:
        self._forge.add_labels(repo, number, [self._labels.failed])

    def forget(self, repo: str, number: int) -> None:
        with self._lock:
            self._known.pop((repo, number), None)
