#!/usr/bin/env python3
"""Measure how many tasks a minute the runner gets through, and what it costs per task.

Each scenario starts a fresh GitHub emulator with N labeled dispatch issues
and real `agent-runner run` processes whose generator is a stand-in agent
that sleeps ``--agent-seconds`` (2 s: simulated LLM latency) and writes one
file. Scenarios: WORKERS=1, 4 and 16 in one process, and 3 replicas with
WORKERS=4 each sharing one ledger (PostgreSQL when
AGENT_RUNNER_TEST_POSTGRES_DSN is set, else one SQLite file). Everything runs
with the shipped defaults, the write pacer included (``--pacing off`` shows the
runner without it).

Figures:

- tasks/min: N divided by the time from the first claim to the last finish
  (process start-up and the first poll are left out; the wall time with them
  is shown too).
- runner overhead per task (p50, p95): for each task, the time from its
  claim hook to its finish hook minus the agent's run time: its process from
  spawn to exit, as the runner timed it (the stand-in is a Python script, and
  its interpreter's ~50 ms start is the agent's, not the runner's; what the
  agent itself recorded is the fallback). That is everything the runner adds
  around the agent: mirror
  fetch, worktree, trace file, guard, commit, push, PR upsert, result
  comment, labels, ledger heartbeats. It leaves out the three API calls
  before the claim hook (read the issue, who labeled it, their permission)
  and the final ledger write.
- slot time per task: worker slots x span / N, minus the agent time; the
  overhead above plus the time a free slot waits for its next job.
- from the emulator's request log: REST requests and writes per task (polls
  left out, git traffic too), the measured write rate, the busiest minute and
  the smallest gap between two writes. With the pacer on these must stay
  within GitHub's limits: >= 1 s apart, <= 80 a minute, <= 500 an hour. At
  WORKERS=16 the write budget, not the workers, sets the pace: 3 writes a
  task at 1 write/s is 20 tasks/min until 500 writes in the hour are spent.

WORKERS=1 runs on ``--single-issues`` (default 20) issues, to keep the run
short; its rate is per minute all the same.

Each issue is closed once it is labeled `processed`, as merging its PR would
do, so the poll stays one page; ``--keep-open`` leaves them open (past 100
open issues every poll then reads every page, see docs/scaling.md).

    .venv/bin/python bench/throughput.py                 # all scenarios, 60 issues (~10 min with the pacer)
    .venv/bin/python bench/throughput.py --only w1,w16   # a quicker look
    .venv/bin/python bench/throughput.py --pacing off    # the runner without the write pacer
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import _harness as h

from runner.ledger import open_ledger
from tests import chaos


@dataclass
class Scenario:
    label: str
    issues: int
    workers: int
    replicas: int


@dataclass
class Figures:
    scenario: Scenario
    ledger: str
    ok: bool
    span_s: float
    wall_s: float
    overhead: list[float]
    agent_s: list[float]
    stages: dict[str, float]
    requests: h.RequestFigures

    @property
    def per_minute(self) -> float:
        return 60.0 * self.scenario.issues / self.span_s if self.span_s > 0 else 0.0

    @property
    def slot_overhead_s(self) -> float:
        slots = self.scenario.workers * self.scenario.replicas
        agent = sum(self.agent_s) / len(self.agent_s) if self.agent_s else 0.0
        return slots * self.span_s / self.scenario.issues - agent


def run_scenario(scenario: Scenario, *, agent_seconds: float, dsn: str | None, timeout: float,
                 close: bool = True, pacing: bool = True, spaced: float | None = None) -> Figures:
    """Run ``scenario`` on a fresh emulator and ledger.

    All issues are filed before the runners start, so tasks queue back to
    back; with ``spaced`` they are filed one at a time instead, each
    ``spaced`` seconds after the previous one was labeled: what one task
    costs when it does not wait for the previous task's writes.
    """
    with tempfile.TemporaryDirectory(prefix="agent-runner-bench-") as scratch:
        root = Path(scratch)
        with (chaos.scratch_world(root, rate_limit=h.UNLIMITED) as emu,
              chaos.shared_ledger(root / "ledger", dsn) as url):
            ids = chaos.task_ids(scenario.issues, "b")
            issues = chaos.file_issues(emu, ids if spaced is None else ids[:1])
            last_done = [0.0]
            runs_dir, timing = root / "agent-runs", root / "timing.jsonl"
            env = chaos.runner_env(
                emu,
                LEDGER_URL=url,
                WORKERS=str(scenario.workers),
                GENERATORS="command",
                # The slow agent records its runs outside its worktree, which the sandbox forbids.
                SANDBOX="off",
                COMMAND_TEMPLATE=chaos.slow_agent_template(root / "agent", seconds=agent_seconds,
                                                           record_dir=runs_dir),
                # Spaced issues are filed while the runner runs; a 1 s poll finds each at once.
                **({"POLL_INTERVAL_SECONDS": "1"} if spaced is not None else {}),
                LEASE_SECONDS="30",
                SHUTDOWN_GRACE_SECONDS="30",
                HOOKS=h.TIMING_HOOK,
                AGENT_RUNNER_TIMING_FILE=str(timing),
                PYTHONPATH=h.python_path(),
                **({} if pacing else {"GITHUB_THROTTLE": "false"}),
            )
            ledger = open_ledger(url)
            closed: set[int] = set()

            def settled() -> bool:
                if close:
                    chaos.close_processed(emu, issues, closed)
                # Asked once: asking again below could see the task settle in between and end a spaced
                # run after its first issue.
                now_settled = chaos.settled(emu, ledger, issues)
                if spaced is not None and len(issues) < len(ids):
                    if now_settled:
                        if not last_done[0]:
                            last_done[0] = time.monotonic()
                        elif time.monotonic() - last_done[0] >= spaced:
                            issues.update(chaos.file_issues(emu, ids[len(issues):len(issues) + 1]))
                            last_done[0] = 0.0
                    return False
                return now_settled

            try:
                with chaos.Fleet(env, root / "fleet", scenario.replicas, cwd=root) as fleet:
                    started = time.monotonic()
                    fleet.start()
                    done = chaos.wait_until(settled, started + timeout, 0.5 if spaced is None else 0.05)
                    wall = time.monotonic() - started
                    codes = fleet.stop(timeout=60)
                    if not done:
                        h.say(fleet.log_tails(10))
                invariants = chaos.check_invariants(emu, ledger, issues)
                requests = h.request_figures(emu.request_log, len(issues), f"/repos/{chaos.DISPATCH}/issues")
                records = chaos.ledger_records(ledger, len(issues))
            finally:
                ledger.close()
            events = h.timing_events(timing)
            runs = {run.task_id: run for run in chaos.agent_runs(runs_dir) if run.end is not None}
    times = h.task_times(events, runs)
    overhead, agent = times.overhead, times.agent
    span = wall if math.isnan(times.span_s) else times.span_s
    stages: dict[str, list[float]] = {}
    for record in records:
        for stage, seconds in record.stage_seconds.items():
            stages.setdefault(stage, []).append(seconds)
    if not invariants.ok:
        h.say("\n".join(invariants.lines()))
    return Figures(scenario, "postgresql" if dsn else "sqlite", done and invariants.ok and codes == [0] * len(codes),
                   span, wall, overhead, agent, {k: h.percentile(v, 50) for k, v in sorted(stages.items())},
                   requests)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issues", type=int, default=60, help="issues per scenario (default 60)")
    parser.add_argument("--pacing", choices=("on", "off"), default="on",
                        help="the write pacer (GITHUB_THROTTLE); on is the shipped default")
    parser.add_argument("--single-issues", type=int, default=20,
                        help="issues for the WORKERS=1 scenario (default 20)")
    parser.add_argument("--agent-seconds", type=float, default=2.0, help="simulated LLM latency per task")
    parser.add_argument("--keep-open", action="store_true",
                        help="leave processed issues open (past 100, each poll reads every page)")
    parser.add_argument("--only", default="", help="comma-separated scenario labels to run, e.g. w4,r3x4")
    args = parser.parse_args()
    if args.issues < 1 or args.issues > 9999 or args.single_issues < 1:
        h.fail("--issues must be 1..9999 and --single-issues at least 1")
    dsn = h.dsn()
    scenarios = [
        Scenario("w1", min(args.single_issues, args.issues), 1, 1),
        Scenario("w4", args.issues, 4, 1),
        Scenario("w16", args.issues, 16, 1),
        Scenario("r3x4", args.issues, 4, 3),
    ]
    wanted = {s.strip() for s in args.only.split(",") if s.strip()}
    scenarios = [s for s in scenarios if not wanted or s.label in wanted]
    h.say(f"agent-runner throughput: agent sleeps {args.agent_seconds:g} s per task; pacer {args.pacing}; "
          f"shared ledger: "
          f"{'PostgreSQL' if dsn else 'SQLite file (set ' + h.DSN_ENV + ' for PostgreSQL)'}")
    results: list[Figures] = []
    for scenario in scenarios:
        ideal = scenario.issues * args.agent_seconds / (scenario.workers * scenario.replicas)
        paced = scenario.issues * 3 * 1.0 if args.pacing == "on" else 0.0  # 3 writes a task, 1 s apart
        timeout = 120 + max(4 * ideal, 1.5 * paced)
        h.say(f"- {scenario.label}: {scenario.issues} issues, {scenario.replicas} process(es) x "
              f"WORKERS={scenario.workers} ...")
        figures = run_scenario(scenario, agent_seconds=args.agent_seconds, dsn=dsn, timeout=timeout,
                               close=not args.keep_open, pacing=args.pacing == "on")
        h.say(f"  {figures.per_minute:.1f} tasks/min, span {figures.span_s:.1f} s, wall {figures.wall_s:.1f} s, "
              f"{'ok' if figures.ok else 'NOT OK'}")
        results.append(figures)

    rows = []
    for f in results:
        s = f.scenario
        setup = f"{s.replicas} x WORKERS={s.workers}" if s.replicas > 1 else f"WORKERS={s.workers}"
        rows.append([setup, s.issues, f.ledger if s.replicas > 1 else "sqlite", f"{f.per_minute:.1f}",
                     f"{f.span_s:.1f}", f"{1000 * h.percentile(f.overhead, 50):.0f}",
                     f"{1000 * h.percentile(f.overhead, 95):.0f}", f"{1000 * f.slot_overhead_s:.0f}",
                     "yes" if f.ok else "NO"])
    h.say()
    h.say(h.table(["setup", "issues", "ledger", "tasks/min", "span s", "overhead p50 ms",
                   "overhead p95 ms", "slot ms/task", "invariants"], rows))
    h.say()
    rows = []
    for f in results:
        r = f.requests
        rows.append([f.scenario.label, f"{r.per_task:.2f}", f"{r.writes_per_task:.2f}", r.writes,
                     f"{r.write_rate_per_s:.2f}", r.max_writes_per_minute, r.max_writes_per_hour,
                     f"{r.min_write_gap_s:.2f}", r.polls])
    h.say(h.table(["setup", "REST req/task", "writes/task", "writes", "writes/s", "busiest minute",
                   "busiest hour", "min gap s", "polls"], rows))
    h.say()
    for f in results:
        stages = ", ".join(f"{k} {1000 * v:.0f}" for k, v in f.stages.items())
        h.say(f"{f.scenario.label}: median stage times (ms, from the ledger): {stages}")
        h.say("  per task by route: " + ", ".join(f"{k} {v:.2f}" for k, v in f.requests.routes.items()))
    if any(f.scenario.label == "w1" for f in results) and args.single_issues < args.issues:
        w1 = next(f for f in results if f.scenario.label == "w1")
        h.say(f"WORKERS=1 ran {w1.scenario.issues} issues; {args.issues} would take about "
              f"{args.issues / max(w1.per_minute, 1e-9):.1f} min at that rate (extrapolated).")
    return 0 if all(f.ok for f in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
