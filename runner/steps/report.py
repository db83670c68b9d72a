"""Tell people on the dispatch issue what happened: one comment, edited in place, and a label.

The result comment is found again by its hidden marker and its author (the
runner's own login), so a crash and a re-run edit the same comment instead of
posting a second one. Creating it is exactly-once by construction:

- within a process, one lock per issue covers find-then-create, so two threads
  of one job (the pipeline and a generator's progress callback) cannot both
  find nothing and both post;
- across processes, only the lease holder posts, and ``before_create`` renews
  the lease right before the POST (the lease is the fence);
- on a failed POST, :func:`runner.steps.retry.call` looks for the comment again
  before it tries once more (see the rule there), and the HTTP layer never
  retries a POST.

Everything posted is redacted first.

GitHub writes are the scarce resource (runner/forge/pacer.py), so progress is
shown sparingly: not before a task has run PROGRESS_AFTER_SECONDS (5), then at
most every PROGRESS_EVERY_SECONDS (15), only from spare budget while no other
work waits (runner/core/progress.py, asked by runner/pipeline/outcome.py), and
never while the write pacer has a queue. A task that finishes within a few
seconds writes only its final comment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from runner.core.policy import Labels
from runner.core.render import ResultView, is_result_comment, render_result
from runner.forge.base import Comment, Forge, Issue
from runner.steps import retry

#: Skip a progress edit when the write pacer would hold it longer than this.
PROGRESS_MAX_WAIT_S = 0.5


def progress_due(elapsed_s: float, since_last_s: float | None, *, after_s: float, every_s: float) -> bool:
    """Whether a task that has run ``elapsed_s`` may show progress now (``since_last_s``: last shown)."""
    if elapsed_s < after_s:
        return False
    return since_last_s is None or since_last_s >= every_s


class Reporter:
    """Upserts the result comment and sets the final label."""

    def __init__(self, forge: Forge, labels: Labels, redact: Callable[[str], str], log: Any,
                 policy: retry.RetryPolicy = retry.RetryPolicy(),  # noqa: B008 (a frozen value)
                 posted: Callable[[str, int, int], None] | None = None) -> None:
        self._forge = forge
        self._posted = posted  # (repo, issue, comment id) of each comment created: the ledger records it
        self._labels = labels
        self._redact = redact
        self._log = log
        self._policy = policy
        # (comment id, body) of the result comment, or None once we know there is none.
        self._known: dict[tuple[str, int], tuple[int, str] | None] = {}
        self._lock = threading.Lock()
        self._issue_locks: dict[tuple[str, int], threading.Lock] = {}

    def note_issue(self, issue: Issue, *, attempt: int) -> None:
        """Learn from the issue just read whether listing its comments can be skipped.

        On a task's first attempt no worker has commented before, so an issue
        with no comments at all has no result comment: the first post creates
        one without listing. Later attempts always look by marker.
        """
        if attempt == 1 and issue.comment_count == 0:
            with self._lock:
                self._known.setdefault((issue.repo, issue.number), None)

    def post(self, repo: str, number: int, view: ResultView,
             before_create: Callable[[], None] | None = None) -> None:
        """Create the result comment, or edit it when its text changed."""
        body = self._redact(render_result(view))
        key = (repo, number)
        with self._issue_lock(key):
            with self._lock:
                looked = key in self._known
                known = self._known.get(key)
            if not looked:
                existing = self._retry(lambda: self.find(repo, number), "find the result comment")
                known = (existing.id, existing.body) if existing else None
            if known is None:
                with self._lock:  # until the comment surely exists, the next post looks again
                    self._known.pop(key, None)
                if before_create is not None:
                    before_create()
                comment = self._retry(lambda: self._forge.create_comment(repo, number, body),
                                      "post the result comment", recheck=lambda: self.find(repo, number))
                known = (comment.id, comment.body)
                if self._posted is not None:
                    self._posted(repo, number, comment.id)
            if known[1] != body:
                comment_id = known[0]
                self._retry(lambda: self._forge.edit_comment(repo, comment_id, body), "edit the result comment")
                known = (comment_id, body)
            with self._lock:
                self._known[key] = known

    def find(self, repo: str, number: int) -> Comment | None:
        """The runner's result comment on the issue: the marker, posted by the runner's own login.

        Only our own comment is ours to edit: anyone can paste the marker into theirs."""
        me = self._forge.authenticated_login(repo).lower()
        return next((c for c in self._forge.list_comments(repo, number)
                     if is_result_comment(c.body) and c.author.lower() == me), None)

    def progress(self, repo: str, number: int, view: ResultView,
                 before_create: Callable[[], None] | None = None) -> bool:
        """Like post, but best effort: skipped while writes queue up, and a failure never fails the task."""
        if self._forge.write_wait(repo) > PROGRESS_MAX_WAIT_S:
            return False
        try:
            self.post(repo, number, view, before_create)
        except Exception as exc:  # progress is best effort; the final post is not
            self._log.warning("could not update progress comment", error=str(exc))
            return False
        return True

    def mark_processed(self, repo: str, number: int, carried: frozenset[str] | None = None) -> None:
        """Add `processed`; remove `agent-failed` only if the issue carries it (None: not known)."""
        # Adding a label that is there, or removing one that is not, changes nothing: safe to retry.
        self._retry(lambda: self._forge.add_labels(repo, number, [self._labels.processed]), "label processed")
        if carried is None or self._labels.failed in carried:
            self._retry(lambda: self._forge.remove_label(repo, number, self._labels.failed), "unlabel failed")

    def mark_failed(self, repo: str, number: int) -> None:
        self._retry(lambda: self._forge.add_labels(repo, number, [self._labels.failed]), "label failed")

    def forget(self, repo: str, number: int) -> None:
        with self._lock:
            self._known.pop((repo, number), None)

    def _issue_lock(self, key: tuple[str, int]) -> threading.Lock:
        with self._lock:
            return self._issue_locks.setdefault(key, threading.Lock())

    def _retry(self, action: Callable[[], retry.T], what: str,
               recheck: Callable[[], retry.T | None] | None = None) -> retry.T:
        return retry.call(action, what=what, log=self._log, policy=self._policy, recheck=recheck)
