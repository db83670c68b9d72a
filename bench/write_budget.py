#!/usr/bin/env python3
"""Measure what long tasks spend of GitHub's write budget, on the emulator with GitHub's limits on.

Real `agent-runner run` processes with the shipped defaults (the write pacer,
progress only from spare budget) against the GitHub emulator, which enforces
GitHub's secondary and primary limits (github_emulator.limits); every figure
is counted from its request log. The generator is `openai` against a scripted
model (the OpenAI emulator): each task takes ``--turns`` turns of
``--turn-seconds`` each (12 x 5 s: about 60 s), writes one file, reports its
progress after every turn as a real model loop does, and finishes.

Scenarios:

- ``long``: ``--tasks`` (24) such tasks filed at once, WORKERS=8. Figures:
  writes per task (goal <= 3.2), limit hits (goal 0), and the tasks per hour
  one token's budget buys at that cost (GITHUB_WRITES_PER_HOUR / writes per
  task; goal >= 160).
- ``lone``: one such task on an idle runner: how many progress edits it shows.

Time is not compressed here: the tasks take as long as they say.

    .venv/bin/python bench/write_budget.py                 # both (~5 minutes)
    .venv/bin/python bench/write_budget.py --only lone
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _harness as h
from github_emulator import GitHubEmulator
from github_emulator.llm import OpenAIEmulator, Reply

from runner.ledger import open_ledger
from tests import chaos

KEY = "sk-bench-write-budget-0123456789"
PER_HOUR = 500


class ScriptedModel(OpenAIEmulator):
    """A model that takes ``turns`` turns per task, whatever order the tasks' requests arrive in.

    Each request is answered after ``delay`` seconds; which tool it calls
    depends on how far that task's conversation is (the tool results it
    carries): write a file first, look around, then finish on the last turn.
    """

    def __init__(self, turns: int, delay: float) -> None:
        super().__init__(api_key=KEY)
        self.turns, self.delay = turns, delay

    def _next_reply(self) -> Reply | None:
        return Reply(content="", delay=self.delay)

    def shape(self, reply: Reply, body: Mapping[str, Any]) -> Reply:
        done = sum(1 for m in body.get("messages", []) if m.get("role") == "tool")
        if done == 0:
            return Reply.tool_call("write_file", {"path": "notes/bench.txt", "content": "benchmarked\n"},
                                   text="Writing the file.")
        if done >= self.turns - 1:
            return Reply.tool_call("finish", {"summary": "Wrote notes/bench.txt."})
        return Reply.tool_call("list_files", {}, text=f"Checking the tree (turn {done + 1}).")


@dataclass
class Result:
    label: str
    tasks: int
    ok: bool
    span_s: float
    writes: int
    progress_edits: int
    limit_hits: int
    requests: h.RequestFigures
    skipped: int  # progress decisions against an edit, from the replicas' logs
    posted: int

    @property
    def writes_per_task(self) -> float:
        return self.writes / self.tasks

    @property
    def tasks_per_hour(self) -> float:
        return PER_HOUR / self.writes_per_task if self.writes else 0.0


def run(label: str, tasks: int, workers: int, *, turns: int, turn_s: float, timeout: float) -> Result:
    with tempfile.TemporaryDirectory(prefix="agent-runner-bench-") as scratch:
        root = Path(scratch)
        with (GitHubEmulator(root / "github") as emu, ScriptedModel(turns, turn_s) as model,
              chaos.shared_ledger(root / "ledger", h.dsn()) as url):
            chaos.create_repos(emu)
            issues = chaos.file_issues(emu, chaos.task_ids(tasks, "w"))
            env = chaos.runner_env(
                emu, LEDGER_URL=url, WORKERS=str(workers), GENERATORS="openai",
                OPENAI_API_KEY=KEY, OPENAI_BASE_URL=f"{model.base_url}/v1", OPENAI_MODEL="gpt-4o-mini",
                LEASE_SECONDS="60", SHUTDOWN_GRACE_SECONDS="30", LOG_LEVEL="DEBUG",
                PYTHONPATH=h.python_path())
            ledger = open_ledger(url)
            closed: set[int] = set()

            def settled() -> bool:
                chaos.close_processed(emu, issues, closed)
                return chaos.settled(emu, ledger, issues)

            try:
                with chaos.Fleet(env, root / "fleet", 1, cwd=root) as fleet:
                    started = time.monotonic()
                    fleet.start()
                    done = chaos.wait_until(settled, started + timeout, 0.5)
                    span = time.monotonic() - started
                    codes = fleet.stop(timeout=60)
                    events = fleet.log_events()
                    if not done:
                        h.say(fleet.log_tails(10))
                invariants = chaos.check_invariants(emu, ledger, issues)
            finally:
                ledger.close()
            log = emu.request_log
            figures = h.request_figures(log, tasks, f"/repos/{chaos.DISPATCH}/issues")
            edits = sum(1 for r in log if r.method == "PATCH" and "/issues/comments/" in r.path)
            hits = len(emu.limit_hits)
    decisions = [e for e in events if e.get("event") == "progress decision"]
    if not invariants.ok:
        h.say("\n".join(invariants.lines()))
    return Result(label, tasks, done and invariants.ok and codes == [0], span, figures.writes, edits, hits, figures,
                  sum(1 for e in decisions if not e.get("post")), sum(1 for e in decisions if e.get("post")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=24)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--turns", type=int, default=12, help="model turns per task (default 12)")
    parser.add_argument("--turn-seconds", type=float, default=5.0, help="seconds per model turn (default 5)")
    parser.add_argument("--only", default="", help="long, lone")
    args = parser.parse_args()
    wanted = {s.strip() for s in args.only.split(",") if s.strip()} or {"long", "lone"}
    task_s = args.turns * args.turn_seconds
    h.say(f"write budget: scripted model, {args.turns} turns x {args.turn_seconds:g} s = {task_s:g} s a task; "
          f"shipped defaults, GitHub's limits on in the emulator; ledger: {'PostgreSQL' if h.dsn() else 'SQLite'}")
    results = []
    if "long" in wanted:
        waves = -(-args.tasks // args.workers)
        results.append(run("long", args.tasks, args.workers, turns=args.turns, turn_s=args.turn_seconds,
                           timeout=180 + 3 * waves * task_s))
    if "lone" in wanted:
        results.append(run("lone", 1, 1, turns=args.turns, turn_s=args.turn_seconds, timeout=180 + 3 * task_s))
    rows = [[r.label, r.tasks, f"{r.span_s:.0f}", r.writes, f"{r.writes_per_task:.2f}", r.progress_edits,
             r.posted, r.skipped, r.limit_hits, r.requests.max_writes_per_minute,
             f"{r.requests.min_write_gap_s:.2f}", f"{r.tasks_per_hour:.0f}", "yes" if r.ok else "NO"]
            for r in results]
    h.say(h.table(["run", "tasks", "span s", "writes", "writes/task", "progress edits", "decided: post",
                   "decided: skip", "limit hits", "busiest minute", "min gap s", "tasks/h/token", "ok"], rows))
    for r in results:
        h.say(f"{r.label}: per task by route: " + ", ".join(f"{k} {v:.2f}" for k, v in r.requests.routes.items()))
    return 0 if all(r.ok and r.limit_hits == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
