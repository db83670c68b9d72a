"""Remember what this process's tasks are doing right now, for the status page: a hook, in memory only.

The pipeline tells every hook when a task enters a stage (``on_stage``), what
the generator says (``on_progress``: ``turn 3/30: …`` and the usage so far),
the issue it read (``on_issue``: its title and link) and how the job ended
(``on_outcome``). :class:`LiveTasks` keeps that in a small, bounded registry
that the status page reads; nothing here touches GitHub, the disk or the
ledger. Each change bumps :attr:`LiveTasks.version` and wakes the page's
live stream (:meth:`LiveTasks.wait_change`).
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from runner.hooks.plugins import Hook
from runner.ops.status_line import stage_words

#: Issues whose title the registry remembers, and finished tasks it keeps.
TITLES_KEPT = 2000
DONE_KEPT = 200
#: A progress message is one line of at most this many characters.
MESSAGE_WIDTH = 200
_TURN = re.compile(r"^turn (\d+)(?:/(\d+))?")


@dataclass(frozen=True)
class LiveTask:
    """One task this process runs now, as the status page shows it."""

    issue: int
    target: str | None
    task_id: str | None
    generator: str | None
    model: str | None
    stage: str  # the pipeline's name: `clone`, `generate_try_2`, `push_round_1`
    step: str  # for people: `cloning`, `model turn 3`, `validating`, `pushing`
    message: str | None  # the generator's last one-line progress message
    turn: int | None
    tokens: int
    cost_usd: float | None
    started: float  # monotonic
    started_at: datetime


@dataclass(frozen=True)
class DoneTask:
    """How a task this process ran ended, kept for the recent list (the ledger has the rest)."""

    issue: int
    status: str
    pr_url: str | None
    error: str | None
    seconds: float
    tokens: int
    cost_usd: float | None
    model: str | None
    finished_at: datetime


class LiveTasks(Hook):
    """The running tasks of this process, their issues' titles, and how the last ones ended."""

    def __init__(self, *, default_generator: str | None = None, default_model: str | None = None,
                 clock: Any = None) -> None:
        self.default_generator = default_generator
        self.default_model = default_model
        self._wall = clock or (lambda: datetime.now(UTC))
        self._cond = threading.Condition()
        self._running: dict[int, LiveTask] = {}
        self._titles: OrderedDict[int, tuple[str, str]] = OrderedDict()  # issue -> (title, html_url)
        self._done: deque[DoneTask] = deque(maxlen=DONE_KEPT)
        self.version = 0

    # -- reading -------------------------------------------------------------------

    def running(self) -> list[LiveTask]:
        with self._cond:
            return sorted(self._running.values(), key=lambda t: t.started)

    def title(self, issue: int) -> tuple[str, str] | None:
        """The issue's title and link, when this process has read the issue."""
        with self._cond:
            return self._titles.get(issue)

    def done(self) -> list[DoneTask]:
        with self._cond:
            return list(self._done)

    def wait_change(self, seen: int, timeout: float) -> int:
        """Block until the version moves past ``seen`` or ``timeout`` passes; return the version."""
        with self._cond:
            self._cond.wait_for(lambda: self.version != seen, timeout=timeout)
            return self.version

    def poke(self) -> None:
        """Wake the live streams (the server stops, or something outside the hooks changed)."""
        with self._cond:
            self._changed()

    # -- the hook ------------------------------------------------------------------

    def on_issue(self, *, issue: Any) -> None:
        with self._cond:
            self._titles[issue.number] = (str(issue.title), str(issue.html_url))
            self._titles.move_to_end(issue.number)
            while len(self._titles) > TITLES_KEPT:
                self._titles.popitem(last=False)

    def on_stage(self, *, issue: int, task: Any, stage: str) -> None:
        with self._cond:
            current = self._running.get(issue) or self._fresh(issue)
            if task is not None:
                current = replace(current, target=task.target_repo, task_id=task.task_id,
                                  generator=task.generator or current.generator, model=task.model or current.model)
            self._running[issue] = replace(current, stage=stage, step=_step(stage, None), message=None, turn=None)
            self._changed()

    def on_progress(self, *, issue: int, task: Any, message: str | None = None, usage: Any = None) -> None:
        with self._cond:
            current = self._running.get(issue) or self._fresh(issue)
            if message is not None:
                line = " ".join(message.split())
                line = line if len(line) <= MESSAGE_WIDTH else line[: MESSAGE_WIDTH - 1] + "…"
                found = _TURN.match(line)
                turn = int(found.group(1)) if found else current.turn
                current = replace(current, message=line, turn=turn, step=_step(current.stage, turn))
            if usage is not None:
                current = replace(current, tokens=int(usage.input_tokens + usage.output_tokens),
                                  cost_usd=usage.cost_usd, model=usage.model or current.model)
            self._running[issue] = current
            self._changed()

    def on_outcome(self, *, issue: int, task: Any, outcome: Any) -> None:
        with self._cond:
            current = self._running.pop(issue, None)
            if outcome.status in ("succeeded", "failed", "retrying", "refused", "skipped"):
                seconds = time.monotonic() - current.started if current is not None else 0.0
                self._done.append(DoneTask(
                    issue=issue, status=outcome.status, pr_url=outcome.pr_url, error=outcome.error,
                    seconds=round(seconds, 1), tokens=current.tokens if current else 0,
                    cost_usd=current.cost_usd if current else None, model=current.model if current else None,
                    finished_at=self._wall()))
            self._changed()

    # -- internals -----------------------------------------------------------------

    def _fresh(self, issue: int) -> LiveTask:
        return LiveTask(issue=issue, target=None, task_id=None, generator=self.default_generator,
                        model=self.default_model, stage="intake", step="reading the issue", message=None,
                        turn=None, tokens=0, cost_usd=None, started=time.monotonic(), started_at=self._wall())

    def _changed(self) -> None:
        self.version += 1
        self._cond.notify_all()


def _step(stage: str, turn: int | None) -> str:
    """`generate` with a model turn known reads `model turn 3`; every other stage as the status line says it."""
    if stage.startswith("generate") and turn is not None:
        base = stage_words(stage)
        extra = base.partition(" (")[2]
        return f"model turn {turn}" + (f" ({extra}" if extra else "")
    return stage_words(stage)
