"""Show what `once` and `process` are doing while they do it: one line per task on the terminal.

On a terminal (stderr is a TTY) the tasks in flight share one line, redrawn in
place at each stage and every :data:`TICK_S` (``#12 octocat/target:
generating… 4.1s``); each task then ends with a line of its own, ``✓`` with the
PR URL or ``✗`` with the reason. Anywhere else (a pipe, a log collector) each
stage and each result is an ordinary log line (JSON in JSON mode), without
control characters.

It is a :class:`runner.hooks.plugins.Hook`: the pipeline tells it about every stage it
enters (``on_stage``, from the same ``stage()`` that times stages for the
metrics) and every outcome (``on_outcome``); nothing else in the pipeline knows
it exists.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from typing import Any, TextIO

from runner.hooks.plugins import Hook

TICK_S = 0.2
#: How a stage reads while it runs.
WORDS = {
    "pre_task": "pre_task hook", "clone": "cloning", "setup": "setting up", "generate": "generating",
    "validate": "validating", "secret_scan": "scanning for secrets", "push": "pushing",
    "pull_request": "opening the pull request", "post_task": "post_task hook",
}
_MARKS = {"succeeded": "✓", "skipped": "·", "released": "·", "retrying": "↻", "waiting": "⏸"}


def stage_words(stage: str) -> str:
    """`push_round_2` → `pushing (round 2)`, `generate_try_2` → `generating (try 2)`; others as named."""
    for kind in ("round", "try"):
        base, _, number = stage.partition(f"_{kind}_")
        if number:
            return f"{WORDS.get(base, base.replace('_', ' '))} ({kind} {number})"
    return WORDS.get(stage, stage.replace("_", " "))


class StatusLine(Hook):
    """Print the tasks' progress to ``out``; live and in place when ``live`` (a TTY)."""

    def __init__(self, out: TextIO, *, live: bool, log: Any, quiet: bool = False) -> None:
        self.out = out
        self.live = live
        self.log = log
        self.quiet = quiet and live  # INFO log lines would scroll the live line away: show warnings only
        self._levels: dict[logging.Handler, int] = {}
        self._lock = threading.RLock()
        self._tasks: dict[int, tuple[str, str, float]] = {}  # issue -> (who, stage words, started)
        self._shown = False  # whether the live line is on screen now
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._log_filter = _ClearBeforeLogging(self)

    def __enter__(self) -> StatusLine:
        if self.live:
            for handler in logging.getLogger().handlers:
                handler.addFilter(self._log_filter)
                if self.quiet and handler.level < logging.WARNING:
                    self._levels[handler] = handler.level
                    handler.setLevel(logging.WARNING)
            self._ticker = threading.Thread(target=self._tick, name="status-line", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self._log_filter)
        for handler, level in self._levels.items():
            handler.setLevel(level)
        with self._lock:
            self.clear()

    # -- the hook ------------------------------------------------------------------

    def on_stage(self, *, issue: int, task: Any, stage: str) -> None:
        who = f"#{issue} {task.target_repo}" if task is not None else f"#{issue}"
        words = stage_words(stage)
        with self._lock:
            started = self._tasks.get(issue, ("", "", time.monotonic()))[2]
            self._tasks[issue] = (who, words, started)
            if self.live:
                self._draw()
            else:
                self.log.info("task stage", issue=issue, target=getattr(task, "target_repo", None), stage=stage)

    def on_outcome(self, *, issue: int, task: Any, outcome: Any) -> None:
        with self._lock:
            who, _, started = self._tasks.pop(issue, (f"#{issue}", "", time.monotonic()))
            if task is not None and who == f"#{issue}":
                who = f"#{issue} {task.target_repo}"
            if not self.live:
                self.log.info("task done", issue=issue, target=getattr(task, "target_repo", None),
                              status=outcome.status, pr=outcome.pr_url, seconds=round(time.monotonic() - started, 1))
                return
            mark = _MARKS.get(outcome.status, "✗")
            text = f"{mark} {who}: {outcome.status}"
            if outcome.pr_url:
                text += f" {outcome.pr_url}"
            if outcome.error and outcome.status != "succeeded":
                text += f": {outcome.error.splitlines()[0][:200]}"
            self._print(f"{text} ({time.monotonic() - started:.1f}s)")
            self._draw()

    # -- drawing -------------------------------------------------------------------

    def clear(self) -> None:
        """Take the live line off the screen (the next tick draws it again)."""
        with self._lock:
            if self._shown:
                self.out.write("\r\x1b[K")
                self.out.flush()
                self._shown = False

    def _print(self, line: str) -> None:
        self.clear()
        self.out.write(line + "\n")
        self.out.flush()

    def _tick(self) -> None:
        while not self._stop.wait(TICK_S):
            self._draw()

    def _draw(self) -> None:
        with self._lock:
            if not self._tasks or self._stop.is_set():
                self.clear()
                return
            now = time.monotonic()
            line = "  ·  ".join(f"{who}: {words}… {now - started:.1f}s" for who, words, started in self._tasks.values())
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.out.write("\r\x1b[K" + (line if len(line) <= width else line[: width - 1] + "…"))
            self.out.flush()
            self._shown = True


class _ClearBeforeLogging(logging.Filter):
    """A log line on the same terminal starts on a clean line, not after the live status."""

    def __init__(self, status: StatusLine) -> None:
        super().__init__()
        self.status = status

    def filter(self, record: logging.LogRecord) -> bool:
        self.status.clear()
        return True
