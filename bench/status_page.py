#!/usr/bin/env python3
"""Measure what the status page costs the runner: one document, one page, one API answer, over HTTP.

A SQLite ledger (or PostgreSQL with ``--ledger postgresql://…``) is filled
with ``--tasks`` tasks in every state (running, queued, backing off,
succeeded, dead), and the live registry with ``--running`` tasks mid-stage.
Then it times, for ``--rounds`` rounds each: building the status document
(the ledger read included), rendering the page, and `GET /` and `GET
/api/status` through the real health server (the per-second reuse off, so
every request builds anew). It prints milliseconds (p50, p95) and sizes;
nothing here is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from runner.ledger import open_ledger
from runner.ledger.base import TaskKey
from runner.metrics import Metrics
from runner.ops import status_page as page_module
from runner.ops.health import HealthServer
from runner.ops.live_tasks import LiveTasks
from runner.ops.status_model import StatusSources, build_status
from runner.ops.status_page import StatusPage, render_page

REPO = "octocat/dispatch"


def fill(url: str, tasks: int, running: int) -> tuple[object, LiveTasks]:
    ledger = open_ledger(url)
    live = LiveTasks(default_generator="openai")
    now = datetime.now(UTC)
    for n in range(1, tasks + 1):
        key = TaskKey(REPO, n)
        ledger.enqueue(key, task_id=f"bench-{n}", body_hash=None, now=now - timedelta(hours=1))
        kind = n % 5
        if kind == 0:
            continue  # queued
        job = ledger.claim_key(key, f"replica-{n % 3}:1:abc", now=now, lease_seconds=600)
        assert job is not None
        if kind == 1:
            ledger.complete(job, now=now, pr_url=f"https://github.com/octocat/target/pull/{n}",
                            stage_seconds={"clone": 0.4, "generate": 12.0, "push": 0.8})
        elif kind == 2:
            ledger.fail(job, now=now, error="Patch block 1 does not apply.", retry_at=None)
        elif kind == 3:
            ledger.fail(job, now=now, error="GitHub answered 502.", retry_at=now + timedelta(minutes=10))
    task = SimpleNamespace(target_repo="octocat/target", task_id="t", generator=None, model="gpt-4o-mini")
    for n in range(1, running + 1):
        live.on_issue(issue=SimpleNamespace(number=n, title=f"Task {n} <b>title</b>",
                                            html_url=f"https://github.com/{REPO}/issues/{n}"))
        live.on_stage(issue=n, task=task, stage="generate")
        live.on_progress(issue=n, task=task, message=f"turn {n}/30: read_file a.py",
                         usage=SimpleNamespace(input_tokens=1000 * n, output_tokens=80 * n, cost_usd=0.001 * n,
                                               model=None))
    return ledger, live


def timed(fn: object, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter() - started) * 1000)
    return out


def show(name: str, samples: list[float], size: int | None = None) -> None:
    p95 = statistics.quantiles(samples, n=20)[-1] if len(samples) >= 20 else max(samples)
    extra = f"  {size / 1024:.0f} KB" if size is not None else ""
    print(f"{name:28} p50 {statistics.median(samples):7.2f} ms   p95 {p95:7.2f} ms{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--running", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--ledger", default=None, help="a LEDGER_URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.ledger or f"sqlite:///{Path(tmp) / 'ledger.db'}"
        ledger, live = fill(url, args.tasks, args.running)
        sources = StatusSources(dispatch_repo=REPO, web_url="https://github.com", executor="ledger",
                                store=url.split(":")[0], workers=args.running, owner="replica-1:1:abc",
                                records=lambda n: ledger.list(limit=n), usage_of=ledger.usage_of,  # type: ignore[attr-defined]
                                rounds_of=lambda key: [], live=live)
        now = datetime.now(UTC)
        doc = build_status(sources, now)
        html = render_page(doc)
        print(f"{args.tasks} tasks in the ledger ({url.split(':')[0]}), {args.running} running here; "
              f"{len(doc['recent'])} recent, {len(doc['queued'])} queued, {len(doc['running'])} running shown")
        show("build the document", timed(lambda: build_status(sources, datetime.now(UTC)), args.rounds))
        show("render the page", timed(lambda: render_page(doc), args.rounds), len(html.encode()))
        page_module.REUSE_S = 0.0  # every request builds its own document
        server = HealthServer(Metrics(), "127.0.0.1", 0, status=StatusPage(sources, clock=lambda: datetime.now(UTC)))
        server.start()
        try:
            base = f"http://127.0.0.1:{server.port}"
            for path in ("/", "/api/status"):
                body = b""

                def get(path: str = path) -> None:
                    nonlocal body
                    with urllib.request.urlopen(base + path, timeout=30) as resp:  # noqa: S310 (local)
                        body = resp.read()

                samples = timed(get, args.rounds)
                show(f"GET {path}", samples, len(body))
        finally:
            server.stop()
            ledger.close()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
