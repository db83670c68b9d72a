#!/usr/bin/env python3
"""Outages lose no task (issue #29): what the runner sends to a dependency that is down, and how fast it recovers.

For each dependency, one `agent-runner run` process (WORKERS=3) works on six
dispatch issues; once tasks are in flight the dependency goes down for
``--outage`` seconds, then comes back:

- **GitHub**: the emulator answers 503 to every REST, GraphQL and git request;
- **a model upstream**: the Anthropic wire answers 529 "overloaded" to every
  call; the agents are CLIs (a stdlib stand-in speaking the Anthropic wire)
  behind the model gateway;
- **the ledger**: its PostgreSQL (a private cluster) is stopped, then started;
  the runner reaches it through a counting TCP relay, so every connection it
  opens is seen.

For each it prints how long the outage lasted, how many requests the runner
sent to the dependency meanwhile (the goal: only its breaker's probes; counted
from the emulator's request log, the model emulator's log, the relay's
connections), and the seconds from the recovery to the last task done; then
whether every task finished with one PR, one result comment, `processed`, no
`agent-failed` and no attempt spent.

Shipped defaults (MAX_ATTEMPTS=5, BREAKER_THRESHOLD=3, TRANSIENT_RETRY_HOURS=24,
the write pacer, HTTP retries) except compressed time: with ``--scale`` S (4 by
default) BREAKER_PROBE_MAX_SECONDS is 60/S, RETRY_BASE_SECONDS 10/S,
RETRY_MAX_SECONDS 900/S and LEASE_SECONDS 120/S; POLL_INTERVAL_SECONDS is 2, as
in the issue's own trial; SANDBOX=off (the stand-in agents are Python scripts).

    .venv/bin/python bench/outages.py                    # 60 s outages, time x4
    .venv/bin/python bench/outages.py --outage 120 --only github

Needs root for the private PostgreSQL cluster (runuser postgres); exits 1 when a
task was lost, doubled or failed.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import _harness as h
from github_emulator import GitHubEmulator
from github_emulator.llm import AnthropicEmulator, Reply

from runner.ledger import TaskKey, open_ledger
from tests import chaos
from tests.e2e.test_outages import GATEWAY_CLI

TASKS = 6
ANTHROPIC_KEY = "sk-ant-api03-BenchAnthropicKey0123456789abcdefABCDEF"


@dataclass(frozen=True)
class Figures:
    dependency: str
    down_s: float
    sent: int  # requests that reached the dependency (or tried to) during the outage
    probes: int  # of which the breaker's probes, by the runner's own count
    detail: str
    recovery_s: float | None  # recovery to the last task done
    ok: bool
    problems: tuple[str, ...] = ()


def env_for(emu: GitHubEmulator, scale: float, **extra: str) -> dict[str, str]:
    return chaos.runner_env(
        emu, WORKERS="3", POLL_INTERVAL_SECONDS="2", SANDBOX="off", HEALTH_PORT=str(chaos.free_port()),
        BREAKER_PROBE_MAX_SECONDS=f"{60 / scale:g}", RETRY_BASE_SECONDS=f"{10 / scale:g}",
        RETRY_MAX_SECONDS=f"{900 / scale:g}", LEASE_SECONDS=f"{120 / scale:g}", PYTHONPATH=h.python_path(),
        **extra)


def when(event: Mapping[str, Any]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def events(runner: chaos.Replica, text: str) -> list[dict[str, Any]]:
    return [e for e in runner.log_events() if text in str(e.get("event", ""))]


def probes_of(runner: chaos.Replica, service: str) -> int:
    """The probes the breaker of ``service`` sent, from its "back after" lines."""
    return sum(int(e.get("probes", 0)) for e in events(runner, f"{service} back after"))


def open_window(runner: chaos.Replica, service: str, down_at: float, up_at: float) -> tuple[float, float]:
    """When the breaker of ``service`` was open during the outage (its first "unavailable since" to its
    last "back after"); an empty window when it never opened."""
    opened = [when(e) for e in events(runner, f"{service} unavailable since") if when(e) >= down_at]
    back = [when(e) for e in events(runner, f"{service} back after")]
    if not opened:
        return (up_at, up_at)
    return (opened[0], max(back) if back else up_at)


def finish(emu: GitHubEmulator, issues: Mapping[int, str], up_at: float, timeout: float,
           ledger_url: str | None) -> tuple[float | None, list[str]]:
    """Wait for every task to be done; the seconds from ``up_at``, and what is wrong with the result."""
    def done() -> bool:
        return all("processed" in labels(emu, n) for n in issues)
    finished = chaos.wait_until(done, time.monotonic() + timeout, 0.25)
    recovery = time.time() - up_at if finished else None
    problems = []
    heads = [p["head"]["ref"] for p in emu.pulls(chaos.TARGET)]
    for number, task_id in issues.items():
        have = labels(emu, number)
        if have != {"copilot-agent", "processed"}:
            problems.append(f"#{number}: labels {sorted(have)}")
        if len(emu.comments(chaos.DISPATCH, number)) != 1:
            problems.append(f"#{number}: {len(emu.comments(chaos.DISPATCH, number))} comments")
        if heads.count(chaos.branch_for(task_id)) != 1:
            problems.append(f"#{number}: {heads.count(chaos.branch_for(task_id))} PRs")
    if ledger_url is not None:
        ledger = open_ledger(ledger_url)
        try:
            for number in issues:
                record = ledger.get(TaskKey(chaos.DISPATCH, number))
                if record is None or record.failures:
                    problems.append(f"#{number}: {record.failures if record else '?'} attempts spent")
        finally:
            ledger.close()
    return recovery, problems


def labels(emu: GitHubEmulator, number: int) -> set[str]:
    return set(emu.labels(chaos.DISPATCH, number))


# -- GitHub ---------------------------------------------------------------------------------


def github(root: Path, args: argparse.Namespace) -> Figures:
    with chaos.scratch_world(root, rate_limit=h.UNLIMITED) as emu:
        issues = chaos.file_issues(emu, chaos.task_ids(TASKS, "gh"))
        runs = root / "agent-runs"
        ledger_url = f"sqlite:///{root / 'ledger.db'}"
        env = env_for(emu, args.scale, LEDGER_URL=ledger_url, GENERATORS="command",
                      COMMAND_TEMPLATE=chaos.slow_agent_template(root / "agent", seconds=3, record_dir=runs))
        runner = chaos.Replica("runner", env, root / "runner.log", cwd=root)
        runner.start()
        try:
            chaos.wait_until(lambda: len(chaos.agent_runs(runs)) >= 3, time.monotonic() + 120, 0.05)
            down_at = time.time()
            emu.inject(503, count=None, include_git=True)
            time.sleep(args.outage)
            emu.clear_faults()
            up_at = time.time()
            recovery, problems = finish(emu, issues, up_at, args.settle, ledger_url)
            during = [r for r in emu.request_log if down_at <= r.at < up_at]
            api_open = open_window(runner, "GitHub", down_at, up_at)
            git_open = open_window(runner, "git transport", down_at, up_at)
            api = [r for r in during if not r.git]
            api_while_open = [r for r in api if api_open[0] <= r.at < api_open[1]]
            api_probes = [r for r in api_while_open if (r.method, r.path) == ("GET", "/rate_limit")]
            others = [r for r in api_while_open if r not in api_probes]
            git = [r for r in during if r.git]
            git_while_open = [r for r in git if git_open[0] <= r.at < git_open[1]]
            probes = probes_of(runner, "GitHub") + probes_of(runner, "git transport")
        finally:
            runner.kill()
    detail = (f"API: {len(api) - len(api_while_open)} before its breaker opened, then {len(api_probes)} probes "
              f"(GET /rate_limit) and {len(api_while_open) - len(api_probes)} other requests while open"
              + (f" ({', '.join(sorted({f'{r.method} {r.path} +{r.at - api_open[0]:.2f}s' for r in others}))})"
                 if others else "") + "; git: "
              f"{len(git) - len(git_while_open)} before its breaker opened, {len(git_while_open)} while open")
    return Figures("GitHub (REST, GraphQL, git)", up_at - down_at, len(during), probes, detail, recovery,
                   recovery is not None and not problems, tuple(problems))


# -- a model upstream -----------------------------------------------------------------------


def model(root: Path, args: argparse.Namespace) -> Figures:
    agent = root / "cli" / "agent.py"
    agent.parent.mkdir(parents=True)
    agent.write_text(GATEWAY_CLI)
    answers = root / "answers.jsonl"
    with chaos.scratch_world(root, rate_limit=h.UNLIMITED) as emu, AnthropicEmulator(api_key=ANTHROPIC_KEY) as llm:
        issues = chaos.file_issues(emu, chaos.task_ids(TASKS, "md"))
        llm.script([Reply.text("Done.", input_tokens=100, output_tokens=10)] * TASKS)
        ledger_url = f"sqlite:///{root / 'ledger.db'}"
        env = env_for(emu, args.scale, LEDGER_URL=ledger_url, GENERATORS="command", COMMAND_GATEWAY="anthropic",
                      COMMAND_TEMPLATE=f"{sys.executable} {agent} {{instruction_file}} {answers}",
                      ANTHROPIC_API_KEY=ANTHROPIC_KEY, ANTHROPIC_BASE_URL=llm.base_url)
        llm.go_down(529)
        down_at = time.time()
        runner = chaos.Replica("runner", env, root / "runner.log", cwd=root)
        runner.start()
        try:
            time.sleep(args.outage)
            llm.come_back()
            up_at = time.time()
            recovery, problems = finish(emu, issues, up_at, args.settle, ledger_url)
            during = [r for r in llm.completions if down_at <= r.at < up_at]
            probes = probes_of(runner, "the Anthropic API")
            opened = events(runner, "the Anthropic API unavailable since")
            before = [r for r in during if not opened or r.at < when(opened[0])]
        finally:
            runner.kill()
    said = [json.loads(line) for line in answers.read_text().splitlines()] if answers.exists() else []
    refused = sum(1 for a in said if a["status"] == 502 and "did not forward" in a["text"])
    detail = (f"{len(before)} before the breaker opened, {len(during) - len(before)} while open; "
              f"{refused} CLI calls answered 502 by the gateway without forwarding")
    return Figures("a model upstream (Anthropic wire, 529, via the gateway)", up_at - down_at, len(during), probes,
                   detail, recovery, recovery is not None and not problems, tuple(problems))


# -- the ledger -----------------------------------------------------------------------------


class CountingRelay:
    """A TCP relay in front of PostgreSQL that notes when each connection was opened."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.opened: list[float] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self.opened.append(time.time())
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self._server.close()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@contextmanager
def relayed(dsn: str) -> Iterator[tuple[str, CountingRelay]]:
    port = int(dsn.rsplit(":", 1)[1].split("/", 1)[0])
    relay = CountingRelay(port)
    try:
        yield dsn.replace(f":{port}/", f":{relay.port}/"), relay
    finally:
        relay.close()


def ledger(root: Path, args: argparse.Namespace) -> Figures:
    with (chaos.private_postgres() as (dsn, pg_ctl), relayed(dsn) as (url, relay),
          chaos.scratch_world(root, rate_limit=h.UNLIMITED) as emu):
        issues = chaos.file_issues(emu, chaos.task_ids(TASKS, "pg"))
        runs = root / "agent-runs"
        env = env_for(emu, args.scale, LEDGER_URL=url, GENERATORS="command",
                      COMMAND_TEMPLATE=chaos.slow_agent_template(root / "agent", seconds=3, record_dir=runs))
        runner = chaos.Replica("runner", env, root / "runner.log", cwd=root)
        runner.start()
        try:
            chaos.wait_until(lambda: len(chaos.agent_runs(runs)) >= 3, time.monotonic() + 120, 0.05)
            pg_ctl("stop")
            down_at = time.time()
            time.sleep(max(0.0, args.outage - (time.time() - down_at)))
            pg_ctl("start")
            up_at = time.time()
            recovery, problems = finish(emu, issues, up_at, args.settle, url)
            during = [t for t in relay.opened if down_at <= t < up_at]
            probes = probes_of(runner, "the ledger database")
            paused = events(runner, "intake paused")
            opened = events(runner, "the ledger database unavailable since")
            before = [t for t in during if not opened or t < when(opened[0])]
        finally:
            runner.kill()
    detail = (f"{len(before)} before the breaker opened, {len(during) - len(before)} while open; intake paused "
              f"{'once' if len(paused) == 1 else f'{len(paused)} times'}")
    return Figures("the ledger (PostgreSQL stopped)", up_at - down_at, len(during), probes, detail, recovery,
                   recovery is not None and not problems, tuple(problems))


SCENARIOS: dict[str, Callable[[Path, argparse.Namespace], Figures]] = {
    "github": github, "model": model, "ledger": ledger}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outage", type=float, default=60.0, help="seconds each dependency is down (default 60)")
    parser.add_argument("--scale", type=float, default=4.0, help="time compression (default 4; 1: shipped)")
    parser.add_argument("--settle", type=float, default=180.0, help="seconds allowed after the recovery")
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append", help="run only these")
    args = parser.parse_args()
    if args.outage <= 0 or args.scale < 1:
        h.fail("--outage must be positive and --scale at least 1")
    h.say(f"agent-runner outages: {TASKS} tasks, WORKERS=3, each dependency down {args.outage:g} s; shipped "
          f"defaults but time compressed x{args.scale:g} (BREAKER_PROBE_MAX_SECONDS={60 / args.scale:g}, "
          f"RETRY_BASE_SECONDS={10 / args.scale:g}, RETRY_MAX_SECONDS={900 / args.scale:g}, "
          f"LEASE_SECONDS={120 / args.scale:g}), POLL_INTERVAL_SECONDS=2, SANDBOX=off")
    results = []
    for name in args.only or list(SCENARIOS):
        with tempfile.TemporaryDirectory(prefix=f"agent-runner-outage-{name}-") as scratch:
            figures = SCENARIOS[name](Path(scratch), args)
        results.append(figures)
        h.say(f"  {figures.dependency}: down {figures.down_s:.1f} s, {figures.sent} requests sent meanwhile "
              f"({figures.probes} breaker probes by the runner's count; {figures.detail}); last task done "
              + (f"{figures.recovery_s:.1f} s after recovery" if figures.recovery_s is not None else "NEVER")
              + ("" if figures.ok else f"; PROBLEMS: {'; '.join(figures.problems) or 'not finished'}"))
    h.say()
    h.say(h.table(["dependency", "down s", "requests sent", "probes", "recovery → last done s", "all kept"],
                  [[f.dependency, f"{f.down_s:.0f}", f.sent, f.probes,
                    f"{f.recovery_s:.1f}" if f.recovery_s is not None else "never", "yes" if f.ok else "NO"]
                   for f in results]))
    return 0 if all(f.ok for f in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
