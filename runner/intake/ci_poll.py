"""Find task PRs whose head commit failed its checks: the CI rounds' intake, by poll and by webhook.

The poll is the safety net behind the webhooks (``check_suite``, ``check_run``,
``status``, ``workflow_run``). For every open task PR it makes conditional reads
only, and no writes: the PR (its head commit), that commit's check runs and its
combined status. While nothing changed GitHub answers 304, which costs no rate
limit. A commit whose checks have all completed with one failed becomes one
``ci`` item (its key is the commit), so a re-run, a redelivery or the next poll
adds nothing; the round's own gates (:mod:`runner.pipeline.ci_round`) decide the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from runner.config import Settings
from runner.core import ci, feedback
from runner.core.feedback import FeedbackItem
from runner.errors import RunnerError
from runner.forge.base import Forge, PullRequest
from runner.ledger.base import TaskKey


class CiWatch:
    """Turn red head commits of open task PRs into ``ci`` items; remember closed PRs to read them no more."""

    def __init__(self, *, settings: Settings, forge: Forge, log: Any) -> None:
        self.settings = settings
        self.forge = forge
        self.log = log
        self._closed: set[str] = set()  # PR URLs seen merged or closed: never read again
        # Items this process has handed on: a head that stays red is offered once, not every poll (under
        # Temporal a quietly dropped item, e.g. a repository that turned CI rounds off, leaves no record).
        self._offered: set[str] = set()

    def poll(self, pulls: Sequence[tuple[TaskKey, str]]) -> Iterator[tuple[TaskKey, FeedbackItem]]:
        """The CI items of every open task PR (``pulls``: task PR URLs), conditional reads only."""
        if not self.settings.fix_failed_checks:
            return
        for key, url in pulls:
            ref = feedback.pull_ref(url)
            if ref is None or url in self._closed:
                continue
            try:
                item = self._item(ref[0], self.forge.get_pull(*ref), url)
            except RunnerError as exc:  # one unreadable PR must not stop the poll
                self.log.warning("could not read a task PR's checks", pull=url, error=str(exc))
                continue
            if item is not None and item.key not in self._offered:
                yield key, item
                if len(self._offered) > 10_000:
                    self._offered.clear()
                self._offered.add(item.key)  # only once the consumer has taken it

    def route(self, item: FeedbackItem,
              pulls: Callable[[], Sequence[tuple[TaskKey, str]]]) -> tuple[TaskKey, FeedbackItem] | None:
        """A webhook's ``ci`` item (a repository and a commit, maybe a PR number) as its task's, when it is red."""
        if not self.settings.fix_failed_checks or not item.sha:
            return None
        for key, url in pulls():
            ref = feedback.pull_ref(url)
            if ref is None or ref[0].lower() != item.repo.lower() or url in self._closed:
                continue
            if item.number and ref[1] != item.number:
                continue
            pull = self.forge.get_pull(*ref)
            if pull.head_sha != item.sha:
                continue
            found = self._item(ref[0], pull, url)
            return (key, found) if found is not None else None
        return None

    def _item(self, repo: str, pull: PullRequest, url: str) -> FeedbackItem | None:
        if pull.state != "open":
            self._closed.add(url)
            return None
        if not pull.head_sha:
            return None
        key = f"{repo.lower()}:ci:{ci.item_id(pull.head_sha)}"
        history = feedback.recorded(pull.body)  # under Temporal the PR body is the record of handled items
        if ci.stopped(history) is not None or any(r.item_key == key for r in history):
            return None
        checks = self.forge.commit_checks(repo, pull.head_sha)
        if ci.verdict(checks) != "red":
            return None
        return FeedbackItem(kind="ci", id=ci.item_id(pull.head_sha), repo=repo, number=pull.number, author="",
                            body="", html_url=f"{pull.html_url}/checks", sha=pull.head_sha)
