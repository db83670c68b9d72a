"""Tell people on the dispatch issue what happened: one comment, edited in place, and a label.

The result comment is found again by its hidden marker, so a crash and a re-run
edit the same comment instead of posting a second one. Everything posted is
redacted first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from runner.forge.base import Forge
from runner.policy import Labels
from runner.render import ResultView, is_result_comment, render_result


class Reporter:
    """Upserts the result comment and sets the final label."""

    def __init__(self, forge: Forge, labels: Labels, redact: Callable[[str], str], log: Any) -> None:
        self._forge = forge
        self._labels = labels
        self._redact = redact
        self._log = log
        self._known: dict[tuple[str, int], tuple[int, str]] = {}
        self._lock = threading.Lock()

    def post(self, repo: str, number: int, view: ResultView) -> None:
        """Create the result comment, or edit it when its text changed."""
        body = self._redact(render_result(view))
        with self._lock:
            known = self._known.get((repo, number))
        if known is None:
            # Only our own comment is ours to edit: anyone can paste the marker into theirs.
            me = self._forge.authenticated_login(repo).lower()
            existing = next((c for c in self._forge.list_comments(repo, number)
                             if is_result_comment(c.body) and c.author.lower() == me), None)
            known = (existing.id, existing.body) if existing else None
        if known is None:
            comment = self._forge.create_comment(repo, number, body)
            known = (comment.id, body)
        elif known[1] != body:
            self._forge.edit_comment(repo, known[0], body)
            known = (known[0], body)
        with self._lock:
            self._known[(repo, number)] = known

    def progress(self, repo: str, number: int, view: ResultView) -> None:
        """Like post, but a failure to show progress never fails the task."""
        try:
            self.post(repo, number, view)
        except Exception as exc:  # progress is best effort; the final post is not
            self._log.warning("could not update progress comment", error=str(exc))

    def mark_processed(self, repo: str, number: int) -> None:
        self._forge.add_labels(repo, number, [self._labels.processed])
        self._forge.remove_label(repo, number, self._labels.failed)

    def mark_failed(self, repo: str, number: int) -> None:
        self._forge.add_labels(repo, number, [self._labels.failed])

    def forget(self, repo: str, number: int) -> None:
        with self._lock:
            self._known.pop((repo, number), None)
