#!/usr/bin/env python3
"""Measure what feedback rounds cost on GitHub: idle polls, and the writes of one round.

A fresh GitHub emulator gets a dispatch repository and ``--targets`` target
repositories; ``--tasks`` dispatch issues are processed first (one PR each,
spread over the targets). Then, with the shipped defaults (the write pacer on):

- **idle polls**: ``--polls`` polls with nothing new. Figures: REST requests per
  poll, how many were conditional (sent ``If-None-Match``) and answered 304, and
  the requests that read per-PR data (none but CI rounds' three conditional
  reads per open task PR, answered 304 while nothing changed).
- **one round**: a writer posts ``/agent`` with a diff block; one pass of the
  runner runs the round. Figures: the round's REST writes by route (the push is
  git traffic, not counted), which the issue bounds at one reaction, one PR body
  update and one result-comment edit.

    .venv/bin/python bench/feedback.py
    .venv/bin/python bench/feedback.py --tasks 12 --targets 4 --polls 5
"""

from __future__ import annotations

import argparse
import re
import tempfile
from collections import Counter
from pathlib import Path

import _harness as h
from github_emulator import ADMIN_TOKEN, GitHubEmulator

from runner.app import build_app
from runner.config import load_settings

DISPATCH = "octocat/dispatch"
README = "# target\n\nA repository.\n"
README_PATCH = """```diff
--- a/README.md
+++ b/README.md
@@ -1,3 +1,4 @@
 # target

 A repository.
+Patched.
```"""
ROUND_PATCH = """```diff
--- a/README.md
+++ b/README.md
@@ -1,4 +1,5 @@
 # target

 A repository.
 Patched.
+And patched again.
```"""


def body(task_id: str, target: str, instruction: str) -> str:
    return (f'<!-- agent_task_metadata {{"task_id": "{task_id}"}} -->\n\n## Instruction\n\n{instruction}\n\n'
            f"Target Repository: {target}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument("--targets", type=int, default=3)
    parser.add_argument("--polls", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-feedback-") as tmp, GitHubEmulator(Path(tmp) / "gh") as emu:
        root = Path(tmp)
        emu.create_repo(DISPATCH)
        targets = [f"octocat/target-{i}" for i in range(args.targets)]
        for target in targets:
            emu.create_repo(target, files={"README.md": README})
        emu.add_user("wendy", "wendy-token")
        emu.set_permission(DISPATCH, "wendy", "write")
        numbers = [emu.create_issue(DISPATCH, f"Task {i}", body(f"bench-task-{i:04d}", targets[i % len(targets)],
                                                                    f"Patch it.\n\n{README_PATCH}"), ["copilot-agent"])
                   for i in range(args.tasks)]
        settings = load_settings(env_file=None, github_token=ADMIN_TOKEN, github_api_url=emu.base_url,
                                 dispatch_repo=DISPATCH, workspace_dir=root / "ws", data_dir=root / "data")
        app = build_app(settings)
        try:
            h.say(f"first runs: {args.tasks} tasks over {args.targets} target repositories (write pacer on)")
            app.executor.run_once()
            open_pulls = sum(len([p for p in emu.pulls(t) if p["state"] == "open"]) for t in targets)
            h.say(f"  {open_pulls} open PRs")

            app.executor.poll()  # warm: every listing has its ETag now
            emu.clear_request_log()
            for _ in range(args.polls):
                app.executor.poll()
            log = [r for r in emu.request_log if not r.path.startswith("/git/")]
            ci_reads = [r for r in log if re.search(r"/pulls/\d+$|/commits/[0-9a-f]{40}/(check-runs|status)$", r.path)]
            per_pr = [r for r in log if re.search(r"/pulls/\d+|/issues/\d+", r.path) and r not in ci_reads]
            conditional = [r for r in log if "if-none-match" in r.headers]
            rows = [
                ["REST requests per idle poll", f"{len(log) / args.polls:.1f}"],
                ["  of them conditional (If-None-Match)", f"{len(conditional) / args.polls:.1f}"],
                ["  answered 304 (free on the rate limit)", f"{sum(r.status == 304 for r in log) / args.polls:.1f}"],
                ["  per-PR or per-issue reads (besides CI's)", str(len(per_pr))],
                ["  CI reads per open task PR (PR, check runs, status)", f"{len(ci_reads) / args.polls / max(1, open_pulls):.1f}"],
                ["  of them answered 304", f"{sum(r.status == 304 for r in ci_reads) / args.polls / max(1, open_pulls):.1f}"],
                ["listings: dispatch + 2 per target with a PR", str(1 + 1 + 2 * args.targets)],
            ]
            h.say(h.table(["idle polls", "value"], rows))

            emu.add_comment(DISPATCH, numbers[0], f"/agent one more line\n\n{ROUND_PATCH}", as_user="wendy")
            emu.clear_request_log()
            app.executor.run_once()
            writes = Counter(h.route(r) for r in emu.request_log
                             if r.method not in ("GET", "HEAD") and not r.path.startswith("/git/"))
            pushes = sum(1 for r in emu.request_log if r.path.endswith("/git-receive-pack") and r.method == "POST")
            h.say(h.table(["one round: REST writes", "count"],
                          [[route, str(n)] for route, n in sorted(writes.items())]
                          + [["total REST writes", str(sum(writes.values()))], ["git pushes", str(pushes)]]))
        finally:
            app.close()


if __name__ == "__main__":
    main()
