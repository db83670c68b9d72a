#!/usr/bin/env python3
"""Measure what the runner itself costs per task, per idle poll and at shutdown, with the shipped defaults.

Three measurements, each on a fresh GitHub emulator, with counts from its
request log:

1. **Per-task overhead** (``--tasks``, default 20, WORKERS=1): real
   `agent-runner run` processes whose generator takes no time, so that
   claim-to-finish is all runner: mirror fetch, worktree, guard, commit, push,
   PR, result comment, label, and the write pacer's spacing. Shown with the
   pacer on (the default) and off, for tasks that come one at a time (what a
   user filing an issue sees) and for tasks queued back to back (each also
   waits out the pacer's second after the previous task's last write). Also
   REST requests and writes per task, by route, polls left out.
2. **Idle poll cost**: 100 polls with nothing new, of a dispatch repository
   whose tasks have open PRs in a target repository, through the real forge:
   requests, their status (304 is free on GitHub's rate limit) and the time
   per poll.
3. **SIGTERM while GitHub hangs**: the emulator stops answering (a task's
   pull request creation, then everything); the time from SIGTERM to exit,
   against SHUTDOWN_GRACE_SECONDS, and what the ledger says afterwards.

    .venv/bin/python bench/performance.py            # ~5 min
    .venv/bin/python bench/performance.py --tasks 40
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _harness as h
import throughput

from runner.app import build_app
from runner.config import load_settings
from runner.ledger import TaskKey, open_ledger
from runner.log import configure_logging
from tests import chaos

GRACE_S = 5.0


#: How long after a task is labeled the next issue is filed, in the one-at-a-time runs: more than the
#: pacer's 1 s between writes, so a task never waits for the previous task's last write.
SPACING_S = 1.5


def overhead(tasks: int, dsn: str | None, pacing: bool, spaced: bool) -> throughput.Figures:
    scenario = throughput.Scenario("w1", tasks, 1, 1)
    return throughput.run_scenario(scenario, agent_seconds=0.0, dsn=dsn, timeout=120 + 10 * tasks, pacing=pacing,
                                   spaced=SPACING_S if spaced else None)


def idle_polls(count: int = 100) -> tuple[dict[int, int], float]:
    with tempfile.TemporaryDirectory(prefix="agent-runner-idle-") as scratch:
        root = Path(scratch)
        with chaos.scratch_world(root, rate_limit=h.UNLIMITED) as emu:
            chaos.file_issues(emu, chaos.task_ids(3, "i"))
            settings = load_settings(env_file=None, github_token=chaos.ADMIN_TOKEN, github_api_url=emu.base_url,
                                     dispatch_repo=chaos.DISPATCH, workspace_dir=root / "ws",
                                     data_dir=root / "data")
            app = build_app(settings)
            try:
                app.executor.run_once()  # three tasks done: their PRs make the target's listings part of a poll
                app.executor.poll()  # this poll learns the lists and their ETags
                emu.clear_request_log()
                started = time.monotonic()
                for _ in range(count):
                    app.executor.poll()
                elapsed = time.monotonic() - started
            finally:
                app.close()
            statuses: dict[int, int] = {}
            for record in emu.request_log:
                statuses[record.status] = statuses.get(record.status, 0) + 1
    return statuses, elapsed / count


def sigterm_exit(freeze_all: bool) -> tuple[float, int | None, str]:
    """Seconds from SIGTERM to exit while GitHub hangs, the exit code and the task's ledger status."""
    with tempfile.TemporaryDirectory(prefix="agent-runner-hang-") as scratch:
        root = Path(scratch)
        with chaos.scratch_world(root, rate_limit=h.UNLIMITED) as emu:
            issues = chaos.file_issues(emu, chaos.task_ids(1, "h"))
            url = f"sqlite:///{root / 'ledger.db'}"
            hang = emu.faults.inject(status=None, count=None, hang=True, path_regex=r"/pulls$", method="POST")
            env = chaos.runner_env(emu, LEDGER_URL=url, POLL_INTERVAL_SECONDS="1",
                                   SHUTDOWN_GRACE_SECONDS=str(GRACE_S), HEALTH_HOST="127.0.0.1",
                                   HEALTH_PORT=str(chaos.free_port()), WORKSPACE_DIR=str(root / "ws"),
                                   DATA_DIR=str(root / "data"))
            replica = chaos.Replica("hung", env, root / "runner.log", cwd=root)
            replica.start()
            try:
                if not chaos.wait_until(lambda: hang.fired > 0, time.monotonic() + 120, 0.05):
                    h.fail("the runner never reached the pull request:\n" + replica.log_tail(20), 1)
                if freeze_all:
                    emu.faults.freeze()
                    time.sleep(1.5)  # let the next poll hang too
                replica.terminate()
                started = time.monotonic()
                code = replica.wait(120)
                elapsed = time.monotonic() - started
            finally:
                replica.kill()
            ledger = open_ledger(url)
            try:
                record = ledger.get(TaskKey(chaos.DISPATCH, next(iter(issues))))
            finally:
                ledger.close()
    return elapsed, code, record.status if record else "missing"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=20, help="tasks for the overhead figures (default 20)")
    parser.add_argument("--quick", action="store_true",
                        help="only the overhead with the pacer on (the shipped default); no idle polls, no SIGTERM")
    args = parser.parse_args()
    dsn = h.dsn()
    configure_logging("WARNING", "console", [chaos.ADMIN_TOKEN])  # the in-process runner of the idle polls

    h.say(f"1. per-task overhead, WORKERS=1, {args.tasks} tasks, a generator that takes no time")
    h.say(f"   one at a time: each issue filed {SPACING_S:g} s after the previous one was labeled;"
          " back to back: all filed at once, so each task also waits out the previous task's last write")
    rows, by_route = [], {}
    for spaced in (True, False):
        for pacing in (True,) if args.quick else (True, False):
            f = overhead(args.tasks, dsn, pacing, spaced)
            r = f.requests
            rows.append(["one at a time" if spaced else "back to back", "on (default)" if pacing else "off",
                         f"{1000 * h.percentile(f.overhead, 50):.0f}", f"{1000 * h.percentile(f.overhead, 95):.0f}",
                         f"{f.per_minute:.1f}" if not spaced else "-", f"{r.per_task:.2f}",
                         f"{r.writes_per_task:.2f}", f"{r.min_write_gap_s:.2f}", "yes" if f.ok else "NO"])
            by_route.setdefault(pacing, r.routes)
    h.say(h.table(["tasks", "pacer", "overhead p50 ms", "p95 ms", "tasks/min", "REST req/task", "writes/task",
                   "min write gap s", "invariants"], rows))
    h.say("   REST requests per task by route (pacer on, one at a time; polls left out; the first task also"
          " reads the repository and the labeler's permission, cached for GITHUB_CACHE_SECONDS):")
    for name, per_task in by_route[True].items():
        h.say(f"     {per_task:5.2f}  {name}")
    if args.quick:
        return 0

    statuses, per_poll = idle_polls()
    h.say()
    h.say(f"2. idle polls, one target repository with task PRs: 100 polls -> {sum(statuses.values())} requests"
          f" ({sum(statuses.values()) / 100:g} a poll: the dispatch issues, and the comment listings for"
          f" feedback), by status {statuses}, {1000 * per_poll:.1f} ms per poll")

    h.say()
    h.say(f"3. SIGTERM while GitHub hangs (SHUTDOWN_GRACE_SECONDS={GRACE_S:g})")
    for freeze_all, what in ((False, "a job hung on creating its pull request"),
                             (True, "the job and the poll hung (whole API frozen)")):
        elapsed, code, status = sigterm_exit(freeze_all)
        h.say(f"   {what}: exit {code} after {elapsed:.2f} s; task left `{status}` in the ledger")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
