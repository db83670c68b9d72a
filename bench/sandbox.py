"""What the sandbox costs per command: `true` and `git status` with and without bubblewrap.

Prints the median and 90th-percentile wall time of N runs each, with the shipped defaults
(SANDBOX=bwrap, network off), in a real worktree of a small repository.

    .venv/bin/python bench/sandbox.py [N]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from runner.sandbox.bwrap import Sandbox, detect_backend
from runner.sandbox.procs import run_bounded
from runner.steps.git import run_git

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C"}


def timed(n: int, call: Callable[[], object]) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.median(samples) * 1000, samples[int(0.9 * (len(samples) - 1))] * 1000


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    print(f"backend: {detect_backend()}")
    sandbox = Sandbox()
    with tempfile.TemporaryDirectory(prefix="agent-runner-bench-sandbox-") as scratch:
        repo = Path(scratch) / "repo"
        repo.mkdir()
        run_git(repo, "init", "-q")
        for i in range(200):
            (repo / f"f{i}.txt").write_text(f"{i}\n")
        run_git(repo, "add", ".")
        run_git(repo, "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "init")
        git_dir = repo / ".git"
        cases = {
            "true, unsandboxed": lambda: run_bounded(["true"], cwd=repo, env=ENV, deadline_s=30),
            "true, sandboxed": lambda: sandbox.run(["true"], worktree=repo, env=ENV, deadline_s=30),
            "git status, unsandboxed": lambda: run_bounded(["git", "status", "-s"], cwd=repo, env=ENV,
                                                           deadline_s=30),
            "git status, sandboxed (throw-away git dir)": lambda: sandbox.run(
                ["git", "status", "-s"], worktree=repo, env=ENV, deadline_s=30, git_dir=git_dir),
        }
        print(f"{'case':45} {'median ms':>10} {'p90 ms':>8}   ({n} runs each)")
        for name, call in cases.items():
            median, p90 = timed(n, call)
            print(f"{name:45} {median:10.1f} {p90:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
