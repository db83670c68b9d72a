"""What the two benchmarks share beyond :mod:`tests.chaos`: timing, figures, the DSN.

:class:`TimingHook` is loaded by the runner processes under test
(``HOOKS=_harness:TimingHook`` with this folder on PYTHONPATH) and appends one
JSON line per job event to ``$AGENT_RUNNER_TIMING_FILE``.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import RunnerError
from runner.hooks.plugins import Hook

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
if str(REPO_ROOT) not in sys.path:  # the chaos rig lives in tests/ (tests.chaos), not in the package
    sys.path.insert(0, str(REPO_ROOT))
DSN_ENV = "AGENT_RUNNER_TEST_POSTGRES_DSN"
DSN_HELP = (
    f"Set {DSN_ENV} to a PostgreSQL database the benchmark may create schemas in, for example:\n"
    "  pg_ctlcluster 15 main start\n"
    f"  export {DSN_ENV}=postgresql://runner:runner@127.0.0.1:5432/agent_runner_test"
)
TIMING_HOOK = "_harness:TimingHook"
#: The emulator's hourly REST budget for benchmarks. GitHub gives a token 5000 an hour, which
#: a few hundred tasks exhaust; the runner then waits for the reset, as it should, but a
#: benchmark measures the runner, not the budget. Each benchmark prints requests per task.
UNLIMITED = 10_000_000


def dsn() -> str | None:
    return os.environ.get(DSN_ENV, "").strip() or None


def python_path() -> str:
    """PYTHONPATH for runner processes: the checkout (for `runner`) and this folder (for the hook)."""
    return os.pathsep.join([str(REPO_ROOT), str(BENCH_DIR)])


class TimingHook(Hook):
    """Append when each job was claimed and finished, with wall-clock times, to a JSON-lines file."""

    def __init__(self) -> None:
        self._path = os.environ.get("AGENT_RUNNER_TIMING_FILE", "")

    def _write(self, event: str, task: Any, **extra: Any) -> None:
        if not self._path:
            return
        line = json.dumps({"event": event, "task_id": task.task_id, "issue": task.issue_number,
                           "t": time.time(), "pid": os.getpid(), **extra}) + "\n"
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())  # one write with O_APPEND: lines never interleave
        finally:
            os.close(fd)

    def on_claimed(self, *, task: Any, attempt: int) -> None:
        self._write("claimed", task, attempt=attempt)

    def on_generated(self, *, task: Any, changes: Any) -> None:
        # The agent process from spawn to exit as the runner timed it, its interpreter's start included.
        self._write("generated", task, agent_s=float(getattr(changes.usage, "duration_s", 0.0) or 0.0))

    def on_finished(self, *, task: Any, pull: Any) -> None:
        self._write("finished", task)

    def on_failed(self, *, task: Any, error: RunnerError) -> None:
        self._write("failed", task)


def timing_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass(frozen=True)
class TaskTimes:
    """From the timing hook's events: when the first claim and the last finish were, and per task
    the runner's overhead (claim to finish minus the agent's run) and the agent's run."""

    first_claim: float
    last_finish: float
    overhead: list[float]
    agent: list[float]

    @property
    def span_s(self) -> float:
        return self.last_finish - self.first_claim


def task_times(events: Sequence[dict[str, Any]], runs: Mapping[str, Any]) -> TaskTimes:
    """The agent's run is its process from spawn to exit as the runner timed it (its interpreter's
    start is the agent's, not the runner's); what the agent recorded (``runs``) is the fallback."""
    claimed = {e["task_id"]: e["t"] for e in events if e["event"] == "claimed"}
    finished = {e["task_id"]: e["t"] for e in events if e["event"] == "finished"}
    generated = {e["task_id"]: float(e["agent_s"]) for e in events if e["event"] == "generated"}
    overhead, agent = [], []
    for task_id, end in finished.items():
        run = runs.get(task_id)
        if run is None or run.end is None or task_id not in claimed:
            continue
        agent_s = generated.get(task_id) or run.end - run.start
        agent.append(agent_s)
        overhead.append(end - claimed[task_id] - agent_s)
    if not claimed or not finished:
        return TaskTimes(math.nan, math.nan, overhead, agent)
    return TaskTimes(min(claimed.values()), max(finished.values()), overhead, agent)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table with right-aligned figures."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def say(text: str = "") -> None:
    print(text, flush=True)


def fail(text: str, code: int = 2) -> None:
    print(text, file=sys.stderr, flush=True)
    raise SystemExit(code)


# -- figures from the emulator's request log ------------------------------------------------

_NUMBERS = re.compile(r"/\d+(?=/|$)")


def route(record: Any) -> str:
    """`METHOD /path` with numbers as {n}, so that tasks on different issues add up."""
    return f"{record.method} {_NUMBERS.sub('/{n}', record.path)}"


@dataclass
class RequestFigures:
    """What GitHub saw during a run, counted from the emulator's request log."""

    tasks: int
    polls: int
    per_task: float  # REST requests per task, polls left out
    writes_per_task: float
    routes: dict[str, float]  # route -> requests per task
    writes: int
    write_span_s: float
    min_write_gap_s: float
    max_writes_per_minute: int
    max_writes_per_hour: int

    @property
    def write_rate_per_s(self) -> float:
        return self.writes / self.write_span_s if self.write_span_s > 0 else 0.0


#: The repository-wide comment listings a poll makes for feedback (runner/executors/threads.py, docs/feedback.md).
FEEDBACK_LISTING = re.compile(r"^/repos/[^/]+/[^/]+/(issues|pulls)/comments$")


def is_poll(record: Any, poll_path: str) -> bool:
    """A request of the poll: the dispatch issue listing, or a feedback listing of a repository."""
    return record.method == "GET" and (record.path == poll_path or bool(FEEDBACK_LISTING.match(record.path)))


def request_figures(log: Sequence[Any], tasks: int, poll_path: str) -> RequestFigures:
    rest = [r for r in log if not r.git and not r.path.startswith("/_emulator/")]
    polls = [r for r in rest if is_poll(r, poll_path)]
    work = [r for r in rest if not is_poll(r, poll_path)]
    counts: dict[str, int] = {}
    for record in work:
        counts[route(record)] = counts.get(route(record), 0) + 1
    times = sorted(r.at for r in work if r.is_write)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]

    def busiest(window: float) -> int:
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while times[lo] <= t - window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    n = max(tasks, 1)
    return RequestFigures(
        tasks=tasks, polls=len(polls), per_task=len(work) / n, writes_per_task=len(times) / n,
        routes={k: v / n for k, v in sorted(counts.items(), key=lambda kv: -kv[1])},
        writes=len(times), write_span_s=(times[-1] - times[0]) if len(times) > 1 else 0.0,
        min_write_gap_s=min(gaps) if gaps else math.nan,
        max_writes_per_minute=busiest(60.0), max_writes_per_hour=busiest(3600.0),
    )
