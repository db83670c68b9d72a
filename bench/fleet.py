#!/usr/bin/env python3
"""Measure a fleet against its write budget: 3 replicas, a GitHub App on 4 installations.

Each installation has its own dispatch repository and target (``DISPATCH_REPOS``
lists the four), so the fleet's ceiling is the sum of the installations'
write budgets: 4 x GITHUB_WRITES_PER_HOUR (500) / 3 writes a task, about 667
tasks an hour. Three `agent-runner run` processes (WORKERS=4 each) share one
PostgreSQL ledger; the generator is a stand-in agent that takes 2 s a task.

**Time is compressed**: the emulator and the runners run every limit window
``--time-scale`` times faster (GITHUB_LIMIT_TIME_SCALE), so "an hour" lasts
3600 / scale seconds (600 s at the default 6) and the minute 60 / scale. The
emulator enforces GitHub's limits on that clock, per installation. Figures,
from the emulator's request log:

- tasks finished in the first compressed hour (from the first write), against
  the ceiling (goal >= 90 %);
- each installation's writes in its busiest compressed hour and minute, and
  the limit hits (goal 0);
- writes per task.

    .venv/bin/python bench/fleet.py                   # ~12 minutes
    .venv/bin/python bench/fleet.py --time-scale 12   # "an hour" in 5 minutes, if the machine keeps up
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import _harness as h
from github_emulator import GitHubEmulator

from runner.ledger import open_ledger
from tests import chaos

SLUG = "fleet-bot"
PER_HOUR, PER_MINUTE, WRITES_PER_TASK = 500, 80, 3
_REPO = re.compile(r"^/repos/([^/]+)/")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--installations", type=int, default=4)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--time-scale", type=float, default=6.0, help="limit windows run this much faster")
    parser.add_argument("--agent-seconds", type=float, default=2.0)
    parser.add_argument("--per-installation", type=int, default=0,
                        help="issues per installation (default: 115 %% of its share of the ceiling)")
    args = parser.parse_args()
    url_dsn = h.dsn()
    if url_dsn is None:
        h.fail(h.DSN_HELP)
    scale = args.time_scale
    hour_s, minute_s = 3600 / scale, 60 / scale
    ceiling = args.installations * PER_HOUR / WRITES_PER_TASK
    # A backlog that the budget, not the queue, limits.
    per_org = args.per_installation or int(ceiling * 1.15 / args.installations) + 1
    h.say(f"fleet: {args.replicas} replicas x WORKERS={args.workers} on PostgreSQL, a GitHub App on "
          f"{args.installations} installations, agent {args.agent_seconds:g} s; TIME COMPRESSED x{scale:g}: "
          f"an hour is {hour_s:.0f} s, a minute {minute_s:.1f} s; {per_org} issues per installation; "
          f"ceiling {ceiling:.0f} tasks an hour")
    orgs = [f"org{i}" for i in range(1, args.installations + 1)]
    with tempfile.TemporaryDirectory(prefix="agent-runner-bench-") as scratch:
        root = Path(scratch)
        with (GitHubEmulator(root / "github", time_scale=scale) as emu,
              chaos.shared_ledger(root / "ledger", url_dsn) as url):
            app = emu.create_app(SLUG)
            issues: dict[str, dict[int, str]] = {}
            for org in orgs:
                emu.add_user(org)
                chaos.create_repos(emu, f"{org}/dispatch", f"{org}/target")
                emu.install_app(app.id, org)
                issues[org] = chaos.file_issues(emu, chaos.task_ids(per_org, "f" + org[-1]),
                                                dispatch=f"{org}/dispatch", target=f"{org}/target")
            env = chaos.runner_env(
                emu, LEDGER_URL=url, WORKERS=str(args.workers), GENERATORS="command", SANDBOX="off",
                COMMAND_TEMPLATE=chaos.slow_agent_template(root / "agent", seconds=args.agent_seconds,
                                                           record_dir=root / "runs"),
                DISPATCH_REPO="", DISPATCH_REPOS=",".join(f"{org}/dispatch" for org in orgs),
                GITHUB_APP_ID=str(app.id), GITHUB_APP_PRIVATE_KEY=app.private_key_pem,
                GITHUB_LIMIT_TIME_SCALE=f"{scale:g}", POLL_INTERVAL_SECONDS="5",
                LEASE_SECONDS="60", SHUTDOWN_GRACE_SECONDS="20", PYTHONPATH=h.python_path())
            env.pop("GITHUB_TOKEN", None)
            ledger = open_ledger(url)
            closed: dict[str, set[int]] = {org: set() for org in orgs}
            first_write: list[float] = []

            def hour_over() -> bool:
                for org in orgs:
                    chaos.close_processed(emu, issues[org], closed[org], dispatch=f"{org}/dispatch")
                if not first_write:
                    writes = [r.at for r in emu.request_log if r.is_write]
                    if writes:
                        first_write.append(min(writes))
                return bool(first_write) and time.time() > first_write[0] + hour_s + 5

            try:
                with chaos.Fleet(env, root / "fleet", args.replicas, cwd=root) as fleet:
                    started = time.monotonic()
                    fleet.start()
                    done = chaos.wait_until(hour_over, started + hour_s + 300, 1.0)
                    codes = fleet.stop(timeout=60)
                    if not done or codes != [0] * args.replicas:
                        h.say(fleet.log_tails(10))
            finally:
                ledger.close()
            log = emu.request_log
            hits = emu.limit_hits
    t0 = min(r.at for r in log if r.is_write)
    labeled = [r for r in log if r.is_write and r.path.endswith("/labels") and r.status < 300]
    in_hour = [r for r in labeled if r.at <= t0 + hour_s]
    rows = []
    for org in orgs:
        writes = sorted(r.at for r in log if r.is_write and (m := _REPO.match(r.path)) and m.group(1) == org)
        rows.append([org, len(writes), sum(1 for r in in_hour if r.path.startswith(f"/repos/{org}/")),
                     _busiest(writes, hour_s), _busiest(writes, minute_s)])
    h.say(h.table(["installation", "writes", "tasks in the hour", "busiest hour (writes)",
                   "busiest minute (writes)"], rows))
    total_writes = sum(1 for r in log if r.is_write and _REPO.match(r.path))  # not the app's token mints
    done_tasks = len(labeled)
    h.say(f"tasks finished in the first compressed hour: {len(in_hour)} of a ceiling of {ceiling:.0f} "
          f"({100 * len(in_hour) / ceiling:.1f} %); {done_tasks} in all")
    h.say(f"writes per task: {total_writes / max(done_tasks, 1):.2f}; limit hits: {len(hits)} "
          + (", ".join(sorted({f'{x.limit} ({x.bucket})' for x in hits})) if hits else ""))
    h.say(f"replicas exited: {codes}")
    return 0 if not hits and len(in_hour) >= 0.9 * ceiling else 1


def _busiest(times: list[float], window: float) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


if __name__ == "__main__":
    raise SystemExit(main())
