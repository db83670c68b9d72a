#!/usr/bin/env python3
"""Chaos at scale: many replicas on one PostgreSQL ledger, GitHub failing, replicas killed.

The same scenario as the suite's chaos test (tests/e2e/test_scale.py), at a
larger size and through the same harness (:mod:`tests.chaos`):
``--replicas`` `agent-runner run` processes (WORKERS each) against one GitHub
emulator holding ``--issues`` dispatch issues; about 10% of API requests
fail (5xx, 403/429 with Retry-After, slow answers, POSTs carried out but
answered 502) and 10% of git requests answer 500; for ``--seconds`` a random
replica is killed with SIGKILL every 2-5 s and restarted with its workspace.
The runners use the shipped defaults for attempts and HTTP retries
(``MAX_ATTEMPTS=5``). Then the faults stop, the replicas finish, get SIGTERM,
and the invariants are checked against GitHub's view: one PR, one result
comment and one comment creation (request log) per issue, `processed` and no
`agent-failed`, no re-run nobody asked for, and `agent-runner status --json`
saying `succeeded` with the PR's URL for every issue. Issues are closed once
processed (as merging their PRs would), so the poll stays one page;
``--keep-open`` leaves them open (see docs/scaling.md).

    export AGENT_RUNNER_TEST_POSTGRES_DSN=postgresql://runner:runner@127.0.0.1:5432/agent_runner_test
    .venv/bin/python bench/chaos.py                          # 300 issues, 5 replicas
    .venv/bin/python bench/chaos.py --issues 100 --replicas 3 --seconds 30

Exits 0 when every invariant held, 1 when one broke, 2 without PostgreSQL.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _harness as h

from runner.ledger import open_ledger
from tests import chaos


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issues", type=int, default=300, help="dispatch issues (default 300)")
    parser.add_argument("--replicas", type=int, default=5, help="runner processes (default 5)")
    parser.add_argument("--workers", type=int, default=2, help="WORKERS per replica (default 2)")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="how long to keep killing replicas and failing requests (default 60)")
    parser.add_argument("--fault-rate", type=float, default=0.1, help="share of API requests to fail")
    parser.add_argument("--seed", type=int, default=7, help="seed for faults and kill timing")
    parser.add_argument("--settle-seconds", type=float, default=300.0,
                        help="time allowed after the chaos to finish everything (default 300)")
    parser.add_argument("--keep-open", action="store_true",
                        help="leave processed issues open (past 100, each poll reads every page)")
    args = parser.parse_args()
    if not 1 <= args.issues <= 9999 or not 1 <= args.replicas <= 32 or not 1 <= args.workers <= 64:
        h.fail("--issues must be 1..9999, --replicas 1..32 and --workers 1..64")
    if not 0.0 <= args.fault_rate < 0.5 or args.seconds < 0:
        h.fail("--fault-rate must be in [0, 0.5) and --seconds at least 0")
    dsn = h.dsn()
    if dsn is None:
        h.fail("bench/chaos.py needs PostgreSQL: replicas share the ledger there.\n" + h.DSN_HELP)

    h.say(f"agent-runner chaos: {args.issues} issues, {args.replicas} replicas x WORKERS={args.workers}, "
          f"{args.fault_rate:.0%} API faults, kills for {args.seconds:g} s, PostgreSQL ledger")
    with tempfile.TemporaryDirectory(prefix="agent-runner-chaos-") as scratch:
        root = Path(scratch)
        with (chaos.scratch_world(root, rate_limit=h.UNLIMITED) as emu,
              chaos.postgres_schema(dsn, "bench_chaos") as url):
            issues = chaos.file_issues(emu, chaos.task_ids(args.issues, "x"))
            env = chaos.runner_env(
                emu,
                LEDGER_URL=url,
                WORKERS=str(args.workers),
                POLL_INTERVAL_SECONDS="1",
                LEASE_SECONDS="5",
                RETRY_BASE_SECONDS="0.5",
                RETRY_MAX_SECONDS="5",
                SHUTDOWN_GRACE_SECONDS="20",
                PYTHONPATH=h.python_path(),
            )
            ledger = open_ledger(url)
            try:
                with chaos.Fleet(env, root / "fleet", args.replicas, cwd=root) as fleet:
                    started = time.monotonic()
                    result = chaos.run_chaos(
                        emu, ledger, fleet, issues, seed=args.seed, fault_rate=args.fault_rate,
                        max_kills=max(1, int(args.seconds)), kill_every=(2.0, 5.0),
                        chaos_seconds=args.seconds, deadline_seconds=args.seconds + args.settle_seconds,
                        stop_timeout=60, close_when_processed=not args.keep_open, log=h.say)
                    if not result.ok:
                        h.say(fleet.log_tails(10))
                    elapsed = time.monotonic() - started
            finally:
                ledger.close()
    h.say()
    h.say(result.summary())
    h.say(f"throughput under chaos: {60.0 * args.issues / elapsed:.1f} tasks/min over {elapsed:.1f} s")
    h.say("ALL INVARIANTS HELD" if result.ok else "INVARIANTS BROKEN")
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
