"""Find feedback on the tasks' PRs and dispatch issues: the feedback intake every executor shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from runner.config import Settings
from runner.core import feedback
from runner.core.feedback import FeedbackItem
from runner.errors import RunnerError
from runner.forge.base import Forge
from runner.intake.ci_poll import CiWatch
from runner.ledger.base import TaskKey

#: How far back the first feedback poll after a start looks (the ledger makes repeats harmless).
FEEDBACK_LOOKBACK = timedelta(hours=1)


class FeedbackPoll:
    """The feedback intake every executor shares: what to list, since when, and whose task an item is.

    One conditional request per listing: the dispatch repository's comments, and
    for every target repository that has a task PR its comment and review-comment
    listings, each ``since`` the last change seen; while nothing changes, each
    answer is a 304 (free on the rate limit). Repeats are harmless: the executor
    records each item once."""

    def __init__(self, *, settings: Settings, forge: Forge, repo: str, clock: Callable[[], datetime],
                 log: Any) -> None:
        self.settings = settings
        self.forge = forge
        self.repo = repo
        self.clock = clock
        self.log = log
        self._since: dict[tuple[str, str], str] = {}  # watermarks: (repo, listing) -> time
        self.ci = CiWatch(settings=settings, forge=forge, log=log)  # failing checks on the task PRs

    def poll(self, pulls: Sequence[tuple[TaskKey, str]]) -> Iterator[tuple[TaskKey, FeedbackItem]]:
        """The trigger items posted since the last poll, each with its task (``pulls``: task PR URLs)."""
        targets = sorted({ref[0] for _, url in pulls if (ref := feedback.pull_ref(url))})
        listings: list[tuple[str, str]] = [(self.repo, "comments")]
        listings += [(repo, kind) for repo in targets if repo.lower() != self.repo.lower()
                     for kind in ("comments", "review_comments")]
        for repo, kind in listings:
            since = self._since.get((repo, kind)) or _iso(self.clock() - FEEDBACK_LOOKBACK)
            fetch = self.forge.comments_since if kind == "comments" else self.forge.review_comments_since
            try:
                items = fetch(repo, since)
            except RunnerError as exc:  # one unreadable target (deleted, app removed) must not stop the poll
                self.log.warning("could not list feedback", repo=repo, listing=kind, error=str(exc))
                continue
            for item in items:
                routed = self.route(item, lambda: pulls)
                if routed is not None:
                    yield routed
            newest = max((i.updated_at for i in items if i.updated_at), default=since)
            self._since[(repo, kind)] = max(newest, since)
        yield from self.ci.poll(pulls)

    def route(self, item: FeedbackItem,
              pulls: Callable[[], Sequence[tuple[TaskKey, str]]]) -> tuple[TaskKey, FeedbackItem] | None:
        """The task a trigger item belongs to, or None when it is no trigger or nobody's."""
        if item.kind == "ci":  # a webhook's news of a commit's checks: red and a task PR's head?
            return self.ci.route(item, pulls)
        # Who the runner is costs a request the first time: ask only when the answer matters.
        mention = self.forge.authenticated_login(self.repo) if item.kind == "review_comment" else None
        if feedback.is_own(item):  # by what the runner writes, not by author; the ledger knows its ids too
            return None
        if feedback.trigger_text(item, command=self.settings.feedback_command, bot_login=mention) is None:
            return None
        key = self._task_of(item, pulls)
        if key is None:
            return None
        if item.kind == "issue_comment" and item.repo.lower() != self.repo.lower():
            item = replace(item, kind="pr_comment")
        return key, item

    def _task_of(self, item: FeedbackItem, pulls: Callable[[], Sequence[tuple[TaskKey, str]]]) -> TaskKey | None:
        """Its dispatch issue, or the task whose PR it was posted on."""
        if item.repo.lower() == self.repo.lower() and item.kind == "issue_comment":
            return TaskKey(self.repo, item.number)
        for key, url in pulls():
            ref = feedback.pull_ref(url)
            if ref is not None and ref[0].lower() == item.repo.lower() and ref[1] == item.number:
                return key
        return None


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
