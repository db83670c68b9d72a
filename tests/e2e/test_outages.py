"""Outages lose no task (issue #29): a dependency that is down makes tasks wait, never fail.

Every runner here is a real `agent-runner run` process against the emulators. Time is
compressed through the settings, and each test says how: the old backoff
(RETRY_BASE_SECONDS=0.2, RETRY_MAX_SECONDS=1, MAX_ATTEMPTS=5, no HTTP-level retries)
spends all five attempts within seconds, so an outage of 25 s is longer than the whole
old backoff; the breakers probe at most every BREAKER_PROBE_MAX_SECONDS=2 s instead of 60 s.
What is checked is what a user sees on GitHub and what the emulator's request log shows.
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from runner.ledger import TaskKey, open_ledger
from tests import chaos
from tests.conftest import DISPATCH, World

#: Compressed time (see the module docstring).
FAST = {"RETRY_BASE_SECONDS": "0.2", "RETRY_MAX_SECONDS": "1", "GITHUB_MAX_RETRIES": "0",
        "BREAKER_PROBE_MAX_SECONDS": "2", "LEASE_SECONDS": "6", "POLL_INTERVAL_SECONDS": "0.5",
        "WORKERS": "3", "SANDBOX": "off", "HEALTH_HOST": "127.0.0.1"}


@pytest.fixture()
def replicas() -> Iterator[list[chaos.Replica]]:
    made: list[chaos.Replica] = []
    yield made
    for replica in made:
        if replica.alive:
            replica.kill()


def when(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def events_like(replica: chaos.Replica, text: str) -> list[dict[str, Any]]:
    return [e for e in replica.log_events() if text in str(e.get("event", ""))]


def test_github_down_longer_than_the_old_backoff_loses_no_task(
        world: World, tmp_path: Path, replicas: list[chaos.Replica]) -> None:
    """GitHub answers 503 to every REST and git request for 25 s while three tasks are in flight.

    No `agent-failed`; every task finishes after the recovery with one PR, one result comment
    and `processed`; while the API's breaker was open the emulator saw only its probes."""
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    github_down(world, tmp_path, replicas, ledger_url=ledger_url, LEDGER_URL=ledger_url)


def test_github_down_under_temporal_loses_no_task(
        world: World, tmp_path: Path, replicas: list[chaos.Replica]) -> None:
    """The same outage under EXECUTOR=temporal: the stages hold in their activities (heartbeating),
    and Temporal's retry policy never ends a task for an outage."""
    from tests.temporal_server import temporal_dev_server

    with temporal_dev_server() as address:
        github_down(world, tmp_path, replicas, ledger_url=None, EXECUTOR="temporal", TEMPORAL_ADDRESS=address)


def test_github_down_past_the_stage_hold_under_temporal_waits_as_retried_activities(
        world: World, tmp_path: Path, replicas: list[chaos.Replica]) -> None:
    """The same 25 s outage under EXECUTOR=temporal with a stage hold of 4 s (time compressed:
    TEMPORAL_STAGE_HOLD_SECONDS=4 instead of 300): each stage holds 4 s in its activity, then the
    attempt ends as a wait (TaskWaiting) and Temporal retries it, again and again, spending no
    attempt. Every task finishes after the recovery with one of everything and no `agent-failed`,
    and no activity attempt of any task failed as a task failure."""
    from tests.temporal_server import temporal_dev_server

    with temporal_dev_server() as address:
        issues = github_down(world, tmp_path, replicas, ledger_url=None, EXECUTOR="temporal",
                             TEMPORAL_ADDRESS=address, TEMPORAL_STAGE_HOLD_SECONDS="4")
        failures = {n: activity_failures(address, n) for n in issues}
    assert any(failures.values()), failures  # the outage outlasted the hold: some attempts ended waiting
    assert all(kind == "TaskWaiting" for kinds in failures.values() for kind in kinds), failures


def activity_failures(address: str, number: int) -> list[str]:
    """For each activity that took more than one attempt (every run of the issue's workflow), the error
    type of the attempt before its last."""
    import asyncio

    from temporalio.client import Client

    from runner.executors.temporal.types import workflow_id

    async def go() -> list[str]:
        client = await Client.connect(address)
        wid = workflow_id(DISPATCH, number)
        kinds = []
        async for execution in client.list_workflows(f'WorkflowId = "{wid}"'):
            handle = client.get_workflow_handle(wid, run_id=execution.run_id)
            async for event in handle.fetch_history_events():
                # Temporal retries server-side: a retried activity's started event carries its last
                # attempt number and the failure of the attempt before it.
                if event.HasField("activity_task_started_event_attributes"):
                    started = event.activity_task_started_event_attributes
                    if started.attempt > 1:
                        failure = started.last_failure
                        kinds.append(failure.application_failure_info.type or failure.message)
        return kinds
    return asyncio.run(go())


def github_down(world: World, tmp_path: Path, replicas: list[chaos.Replica], *, ledger_url: str | None,
                **extra: str) -> dict[int, str]:
    ids = chaos.task_ids(3, "gh")  # distinct first 8 characters (shared ones: below)
    issues = chaos.file_issues(world.emu, ids, dispatch=DISPATCH)
    runs = tmp_path / "agent-runs"
    template = chaos.slow_agent_template(tmp_path / "agent", seconds=2, record_dir=runs)
    env = world.env(**FAST, GENERATORS="command", COMMAND_TEMPLATE=template,
                    HEALTH_PORT=str(chaos.free_port()), **extra)
    runner = chaos.Replica("runner", env, tmp_path / "runner.log", cwd=world.root)
    replicas.append(runner)
    runner.start()
    assert chaos.wait_until(lambda: len(chaos.agent_runs(runs)) >= 3, time.monotonic() + 60, 0.05), \
        runner.log_tail(40)

    down_at = time.time()
    world.emu.inject(503, count=None, include_git=True)  # everything: REST, GraphQL and git
    time.sleep(12)
    port = env["HEALTH_PORT"]
    health, metrics, ready = (urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=5)
                              for path in ("healthz", "metrics", "readyz"))
    assert health.status == 200  # a restart cures nothing
    exported = metrics.read().decode()
    assert re.search(r'agent_runner_dependency_up\{dependency="github-api:[^"]+"\} 0\.0', exported), exported
    assert re.search(r'agent_runner_dependency_open_seconds\{dependency="github-api:[^"]+"\} [1-9]', exported)
    assert "degraded: github-api:" in ready.read().decode()
    time.sleep(13)
    world.emu.clear_faults()
    up_at = time.time()

    def done() -> bool:
        return all("processed" in world.labels(n) for n in issues)
    assert chaos.wait_until(done, time.monotonic() + 90, 0.25), runner.log_tail(60)
    finished_at = time.time()

    for number, task_id in issues.items():
        assert world.labels(number) == {"copilot-agent", "processed"}, runner.log_tail(60)
        comments = [c["body"] for c in world.comments(number)]
        assert len(comments) == 1 and chaos.RESULT_MARKER in comments[0], comments
        heads = [p["head"]["ref"] for p in world.pulls()]
        assert heads.count(chaos.branch_for(task_id)) == 1, heads
    if ledger_url is not None:
        ledger = open_ledger(ledger_url)
        try:
            records = [ledger.get(TaskKey(DISPATCH, n)) for n in issues]
        finally:
            ledger.close()
        assert all(r is not None and r.status == "succeeded" and r.failures == 0 for r in records), records

    # While the API's breaker was open, only its probes (GET /rate_limit) reached GitHub's API.
    opened = events_like(runner, "GitHub unavailable since")
    back = events_like(runner, "GitHub back after")
    assert opened and back, runner.log_tail(60)
    open_from, open_to = when(opened[0]) + 0.2, when(back[-1])
    during = [r for r in world.emu.request_log if open_from <= r.at < open_to and not r.git]
    assert during and all((r.method, r.path) == ("GET", "/rate_limit") for r in during), \
        [(r.method, r.path) for r in during if r.path != "/rate_limit"]
    git_open = events_like(runner, "git transport unavailable since")
    git_back = events_like(runner, "git transport back after")
    git_during = [r for r in world.emu.request_log if r.git and git_open and git_back
                  and when(git_open[0]) + 0.2 <= r.at < when(git_back[-1])]
    assert len(git_during) <= sum(int(e.get("probes", 0)) for e in git_back) * 2  # a probe is 1-2 HTTP requests
    in_outage = [r for r in world.emu.request_log if down_at <= r.at < up_at]
    print(f"\n[{extra.get('EXECUTOR', 'ledger')}] GitHub down {up_at - down_at:.1f} s: {len(in_outage)} requests in the outage "
          f"({len(during)} API probes while open, {len(git_during)} git requests while git's breaker was open); "
          f"last task done {finished_at - up_at:.1f} s after recovery")
    assert not any("agent-failed" in world.labels(n) for n in issues)
    return issues


def test_six_tasks_sharing_their_first_8_characters_get_six_branches_through_an_outage(
        world: World, tmp_path: Path, replicas: list[chaos.Replica]) -> None:
    """Each branch is decided once and recorded in the ledger before the first push, so an outage
    in the middle (GitHub 503 for 8 s) cannot make two tasks pick the same name."""
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    shared_prefixes(world, tmp_path, replicas, ledger_url=ledger_url, LEDGER_URL=ledger_url)


def test_six_tasks_sharing_their_first_8_characters_get_six_branches_under_temporal(
        world: World, tmp_path: Path, replicas: list[chaos.Replica]) -> None:
    """Under EXECUTOR=temporal the name is recorded in Temporal before the first push (a claim
    workflow whose id is the branch: only one task can start it), so the same outage gives six
    branches, six PRs, and no push refused for a branch another task took."""
    from tests.temporal_server import temporal_dev_server

    with temporal_dev_server() as address:
        shared_prefixes(world, tmp_path, replicas, ledger_url=None, EXECUTOR="temporal", TEMPORAL_ADDRESS=address)


def shared_prefixes(world: World, tmp_path: Path, replicas: list[chaos.Replica], *, ledger_url: str | None,
                    **extra: str) -> None:
    ids = [f"outage-t-{i}" for i in range(1, 7)]  # all share `outage-t`
    issues = chaos.file_issues(world.emu, ids, dispatch=DISPATCH)
    runs = tmp_path / "agent-runs"
    template = chaos.slow_agent_template(tmp_path / "agent", seconds=1.5, record_dir=runs)
    env = world.env(**{**FAST, "WORKERS": "6"}, GENERATORS="command", COMMAND_TEMPLATE=template,
                    HEALTH_PORT=str(chaos.free_port()), **extra)
    runner = chaos.Replica("runner", env, tmp_path / "runner.log", cwd=world.root)
    replicas.append(runner)
    runner.start()
    assert chaos.wait_until(lambda: len(chaos.agent_runs(runs)) >= 3, time.monotonic() + 60, 0.05), \
        runner.log_tail(40)
    world.emu.inject(503, count=None, include_git=True)
    time.sleep(8)
    world.emu.clear_faults()

    def done() -> bool:
        return all("processed" in world.labels(n) for n in issues)
    assert chaos.wait_until(done, time.monotonic() + 90, 0.25), runner.log_tail(60)

    pulls = world.pulls()
    heads = sorted(p["head"]["ref"] for p in pulls)
    assert len(pulls) == 6 and len(set(heads)) == 6, heads
    for number in issues:
        assert len(world.comments(number)) == 1
    # Each task pushed once, to its own branch: no push was refused for a branch another task took.
    assert not [e for e in runner.log_events() if "Could not push" in str(e)], runner.log_tail(60)
    assert len(chaos.agent_runs(runs)) == 6, chaos.agent_runs(runs)  # one generation each: none re-ran
    if ledger_url is not None:
        ledger = open_ledger(ledger_url)
        try:
            records = [ledger.get(TaskKey(DISPATCH, n)) for n in issues]
        finally:
            ledger.close()
        branches = {r.branch for r in records if r is not None}
        assert len(branches) == 6 and all(b and b.split(":", 1)[1] in heads for b in branches), (branches, heads)
        assert all(r is not None and r.status == "succeeded" and r.failures == 0 for r in records), records
    assert not any("agent-failed" in world.labels(n) for n in issues)


# -- a model upstream down in the middle of a conversation --------------------------------


@pytest.mark.parametrize("name,status", [("anthropic", 529), ("openai", 503), ("gemini", 503)])
def test_model_down_mid_conversation_retries_the_turn_and_keeps_the_conversation(
        world: World, name: str, status: int) -> None:
    """Two turns answer, then the upstream fails 12 requests in a row (529 "overloaded" on the
    Anthropic wire, 503 on the OpenAI and Gemini wires): more than the old backoff's five attempts could
    absorb (time compressed: the SDK retries twice per turn, the breaker opens after 3 failed
    turns and probes with the turn itself). The task finishes on its first attempt; the two turns
    before the outage were sent once; the cost is counted once."""
    from github_emulator.llm import Reply

    from tests.e2e.test_llm_flow import EMULATORS, call, llm_settings

    with EMULATORS[name]() as emu:
        emu.script([
            call("list_files", {}),
            call("read_file", {"path": "src/app.py"}),
            *[Reply.error(status, "Overloaded" if status == 529 else "Service Unavailable")] * 12,
            call("edit_file", {"path": "src/app.py", "search": "print('hello')", "replace": "print('hi')"}),
            call("finish", {"summary": "Said hi."}),
        ])
        number = world.file_issue(chaos.issue_body("model-down-1"))
        started = time.monotonic()
        outcomes = world.run_once(**llm_settings(name, emu), max_attempts=5, retry_base_seconds=0.2,
                                  retry_max_seconds=1)
        took = time.monotonic() - started
        completions = emu.completions

    assert [o.status for o in outcomes] == ["succeeded"], outcomes
    assert "processed" in world.labels(number) and "agent-failed" not in world.labels(number)
    sizes = [len((r.body or {}).get("messages") or (r.body or {}).get("contents") or []) for r in completions]
    # Turn 1 (the task alone) and turn 2 (after list_files) went out once each; only turn 3 was repeated.
    assert sizes.count(sizes[0]) == 1 and sizes.count(sizes[1]) == 1, sizes
    assert len(completions) == 2 + 12 + 2, sizes
    pull = world.pulls()[0]
    assert "4800 in / 320 out tokens" in pull["body"], pull["body"]  # four answered turns of 1200 / 80
    print(f"\n{name} down for 12 requests ({status}): task done in {took:.1f} s, "
          f"{len(completions)} model requests, the turn retried in place")


# -- a model upstream down behind the gateway (agent CLIs) ----------------------------------

#: A stand-in for an agent CLI: it calls the Anthropic wire through the gateway, retries an
#: upstream 5xx twice (not an answer marked x-should-retry: false, as the SDKs do), records
#: each answer, and writes a file only when the model answered.
GATEWAY_CLI = """
import json, os, sys, time, urllib.error, urllib.request
record = sys.argv[2]
body = {"model": "claude-haiku-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
for _ in range(3):
    request = urllib.request.Request(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", method="POST",
        data=json.dumps(body).encode(), headers={"content-type": "application/json", "anthropic-version": "2023-06-01",
                                                 "x-api-key": os.environ["ANTHROPIC_API_KEY"]})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, retry, text = response.status, "", response.read().decode()
    except urllib.error.HTTPError as exc:
        status, retry, text = exc.code, exc.headers.get("x-should-retry") or "", exc.read().decode()
    with open(record, "a") as out:
        out.write(json.dumps({"status": status, "text": text[:300]}) + "\\n")
    if status == 200:
        open("answer.txt", "w").write("the model answered\\n")
        sys.exit(0)
    if retry == "false":
        break
    time.sleep(0.2)
sys.exit(1)
"""


def test_a_model_upstream_down_behind_the_gateway_opens_its_breaker_and_tasks_wait(
        world: World, tmp_path: Path, replicas: list[chaos.Replica]) -> None:
    """Three agent CLIs reach the Anthropic wire through the model gateway; it answers 529 for
    15 s. After BREAKER_THRESHOLD (3) failed calls the upstream's breaker opens: the gateway
    answers the CLIs 502 at once without forwarding, one call at a time probes the upstream
    (compressed time: BREAKER_PROBE_MAX_SECONDS=2), /metrics shows the upstream down, and the
    tasks wait (no attempt spent, no `agent-failed`). Once it answers, every task finishes with
    one PR and one comment, and the model server saw only the probes while the breaker was open."""
    from github_emulator.llm import AnthropicEmulator, Reply

    key = "sk-ant-api03-RealAnthropicKey0123456789abcdefABCDEF"
    agent = tmp_path / "cli" / "agent.py"
    agent.parent.mkdir()
    agent.write_text(GATEWAY_CLI)
    answers = tmp_path / "answers.jsonl"
    issues = chaos.file_issues(world.emu, chaos.task_ids(3, "gw"), dispatch=DISPATCH)
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with AnthropicEmulator(api_key=key) as model:
        model.script([Reply.text("Done.", input_tokens=100, output_tokens=10)] * 3)
        model.go_down(529)
        down_at = time.time()
        env = world.env(**FAST, GENERATORS="command", COMMAND_GATEWAY="anthropic", LEDGER_URL=ledger_url,
                        COMMAND_TEMPLATE=f"{sys.executable} {agent} {{instruction_file}} {answers}",
                        ANTHROPIC_API_KEY=key, ANTHROPIC_BASE_URL=model.base_url,
                        HEALTH_PORT=str(chaos.free_port()))
        runner = chaos.Replica("runner", env, tmp_path / "runner.log", cwd=world.root)
        replicas.append(runner)
        runner.start()
        name = f"model:anthropic:{urlsplit(model.base_url).netloc}"
        assert chaos.wait_until(lambda: bool(events_like(runner, "the Anthropic API unavailable since")),
                                time.monotonic() + 60, 0.1), runner.log_tail(40)
        time.sleep(6)
        exported = urllib.request.urlopen(f"http://127.0.0.1:{env['HEALTH_PORT']}/metrics", timeout=5).read().decode()
        assert f'agent_runner_dependency_up{{dependency="{name}"}} 0.0' in exported, exported
        assert not any("agent-failed" in world.labels(n) for n in issues)
        time.sleep(max(0.0, down_at + 15 - time.time()))
        model.come_back()
        up_at = time.time()

        def done() -> bool:
            return all("processed" in world.labels(n) for n in issues)
        assert chaos.wait_until(done, time.monotonic() + 60, 0.25), runner.log_tail(60)
        finished_at = time.time()
        requests = list(model.completions)

    for number in issues:
        assert world.labels(number) == {"copilot-agent", "processed"}
        assert len(world.comments(number)) == 1
    assert len(world.pulls()) == 3
    ledger = open_ledger(ledger_url)
    try:
        records = [ledger.get(TaskKey(DISPATCH, n)) for n in issues]
    finally:
        ledger.close()
    assert all(r is not None and (r.status, r.failures) == ("succeeded", 0) and r.waits >= 1 for r in records), records

    # The CLIs were answered by the gateway itself while the breaker was open.
    said = [json.loads(line) for line in answers.read_text().splitlines()]
    refused = [a for a in said if a["status"] == 502 and "did not forward" in a["text"]]
    assert refused, said
    # While it was open, the model server saw only the probes, one at a time.
    [opened] = events_like(runner, "the Anthropic API unavailable since")
    [back] = events_like(runner, "the Anthropic API back after")
    during = [r for r in requests if when(opened) + 0.2 <= r.at < when(back)]
    assert 0 < len(during) <= int(back["probes"]), (len(during), back)
    in_outage = [r for r in requests if down_at <= r.at < up_at]
    print(f"\nmodel upstream down {up_at - down_at:.1f} s: {len(in_outage)} model requests in the outage "
          f"({len(during)} while the breaker was open, {back['probes']} probes), {len(refused)} CLI calls "
          f"answered by the gateway; last task done {finished_at - up_at:.1f} s after recovery")


# -- a full disk ----------------------------------------------------------------------------


@contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where`` (CI runs as root), unmounted on the way out."""
    import subprocess

    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"could not mount a tmpfs (the test needs root or a user namespace): {done.stderr}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture()
def small_workspace(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs as WORKSPACE_DIR."""
    with tmpfs(tmp_path / "small-workspace", "2m") as where:
        yield where


def test_a_full_workspace_makes_the_task_wait_and_it_finishes_when_space_returns(
        world: World, tmp_path: Path, small_workspace: Path, replicas: list[chaos.Replica]) -> None:
    """WORKSPACE_DIR is full when the task clones: the task waits (no attempt spent, no
    `agent-failed`), the runner keeps running and leaves no partial worktree, and the task
    finishes once the filler is deleted. The ledger (in DATA_DIR) stays readable throughout."""
    filler = small_workspace / "filler"
    with filler.open("wb") as out:  # fill it to the last block
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    number = world.file_issue(chaos.issue_body("disk-full-1"))
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    env = world.env(**FAST, LEDGER_URL=ledger_url, WORKSPACE_DIR=str(small_workspace),
                    HEALTH_PORT=str(chaos.free_port()))
    runner = chaos.Replica("runner", env, tmp_path / "runner.log", cwd=world.root)
    replicas.append(runner)
    runner.start()

    def waiting() -> bool:
        ledger = open_ledger(ledger_url)
        try:
            record = ledger.get(TaskKey(DISPATCH, number))
        finally:
            ledger.close()
        return record is not None and record.waiting_on == "disk space"
    assert chaos.wait_until(waiting, time.monotonic() + 60, 0.25), runner.log_tail(40)
    time.sleep(2)  # a few more looks while it is full
    assert runner.alive and "agent-failed" not in world.labels(number)
    assert not list((small_workspace / "worktrees").glob("*/*/*")) if (small_workspace / "worktrees").exists() \
        else True

    filler.unlink()
    assert chaos.wait_until(lambda: "processed" in world.labels(number), time.monotonic() + 60, 0.25), \
        runner.log_tail(40)
    ledger = open_ledger(ledger_url)
    try:
        record = ledger.get(TaskKey(DISPATCH, number))
    finally:
        ledger.close()
    assert record is not None and (record.status, record.failures) == ("succeeded", 0) and record.waits >= 1
    [comment] = [c["body"] for c in world.comments(number)]
    assert "waited" in comment and "disk space" in comment, comment
    assert runner.alive


# -- permanent failures still fail fast ---------------------------------------------------


def test_permanent_failures_still_fail_fast(world: World) -> None:
    """A patch that does not apply fails on its first attempt; a 401 stops the task at once with
    the sentence about the token; neither waits like an outage."""
    bad = world.file_issue(chaos.issue_body(
        "bad-patch-1", instruction="```diff\n--- a/nope.txt\n+++ b/nope.txt\n@@ -1 +1 @@\n-x\n+y\n```"))
    [outcome] = world.run_once(max_attempts=5)
    assert outcome.status == "failed" and "does not apply" in (outcome.error or "")
    assert world.labels(bad) == {"copilot-agent", "agent-failed"}
    assert world.app().ledger.get(TaskKey(DISPATCH, bad)).failures == 1  # type: ignore[attr-defined, union-attr]

    token = world.file_issue(chaos.issue_body("bad-token-1"))
    world.emu.inject(401, count=None, path_regex=rf"^/repos/{DISPATCH}/issues/{token}$", method="GET",
                     message="Bad credentials")
    [outcome] = world.run_once(max_attempts=5)  # one pass: it fails at once, it does not wait
    assert outcome.status == "failed" and "GITHUB_TOKEN" in (outcome.error or ""), outcome
    world.emu.clear_faults()
    assert world.labels(token) == {"copilot-agent", "agent-failed"}


# -- the ledger (PostgreSQL) stopped and started again --------------------------------------


@pytest.fixture()
def private_postgres() -> Iterator[tuple[str, Any]]:
    """A PostgreSQL of this test's own (tests.chaos.private_postgres), so stopping it harms no one
    else's tests; yields its DSN and a function that runs pg_ctl (start/stop)."""
    if not (chaos.PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL's server binaries are not at {chaos.PG_BIN} (CI installs postgresql-15)")
    with chaos.private_postgres() as cluster:
        yield cluster


def runner_on_ledger(world: World, tmp_path: Path, dsn: str, replicas: list[chaos.Replica], runs: Path, *,
                     agent_seconds: float, in_flight: int) -> chaos.Replica:
    """A runner on the PostgreSQL ledger at ``dsn`` (FAST, LEASE_SECONDS=30 so that its tasks outlive the
    outage on their lease), once ``in_flight`` of its slow agents have started."""
    template = chaos.slow_agent_template(tmp_path / "agent", seconds=agent_seconds, record_dir=runs)
    env = world.env(**{**FAST, "LEASE_SECONDS": "30"}, GENERATORS="command", COMMAND_TEMPLATE=template,
                    LEDGER_URL=dsn, HEALTH_PORT=str(chaos.free_port()))
    runner = chaos.Replica("runner", env, tmp_path / "runner.log", cwd=world.root)
    replicas.append(runner)
    runner.start()
    assert chaos.wait_until(lambda: len(chaos.agent_runs(runs)) >= in_flight, time.monotonic() + 60, 0.05), \
        runner.log_tail(40)
    return runner


def test_the_ledger_stopped_and_started_again_loses_no_task(
        world: World, tmp_path: Path, private_postgres: tuple[str, Any], replicas: list[chaos.Replica]) -> None:
    """PostgreSQL (the ledger) is stopped for 10 s while three tasks are in flight, then started:
    every task finishes with one of everything and none is labelled `agent-failed`."""
    dsn, pg_ctl = private_postgres
    issues = chaos.file_issues(world.emu, chaos.task_ids(3, "pg"), dispatch=DISPATCH)
    runs = tmp_path / "agent-runs"
    runner = runner_on_ledger(world, tmp_path, dsn, replicas, runs, agent_seconds=2, in_flight=3)
    stopped_at = time.monotonic()
    pg_ctl("stop")
    time.sleep(10)
    pg_ctl("start")
    started_at = time.monotonic()

    def done() -> bool:
        return all("processed" in world.labels(n) for n in issues)
    assert chaos.wait_until(done, time.monotonic() + 90, 0.25), runner.log_tail(60)
    for number, task_id in issues.items():
        assert world.labels(number) == {"copilot-agent", "processed"}
        assert len(world.comments(number)) == 1
        assert [p["head"]["ref"] for p in world.pulls()].count(chaos.branch_for(task_id)) == 1
    assert runner.alive
    print(f"\nledger down {started_at - stopped_at:.1f} s; last task done "
          f"{time.monotonic() - started_at:.1f} s after it came back")


def test_while_the_ledger_is_down_intake_pauses_and_tasks_in_flight_go_on(
        world: World, tmp_path: Path, private_postgres: tuple[str, Any], replicas: list[chaos.Replica]) -> None:
    """PostgreSQL is stopped for 12 s with two tasks in flight, and two more issues are filed meanwhile.

    The ledger's breaker opens: intake pauses (no poll lists the dispatch issues, nothing new is
    claimed: the agent never starts for the new issues while it is down), /metrics shows the
    ledger down, and the tasks in flight keep their state (no `agent-failed`). After the restart
    intake resumes and all four tasks finish with one of everything. Time is compressed as in
    FAST, with LEASE_SECONDS=30 so that the tasks in flight outlive the outage on their lease."""
    dsn, pg_ctl = private_postgres
    first = chaos.file_issues(world.emu, chaos.task_ids(2, "lp"), dispatch=DISPATCH)
    runs = tmp_path / "agent-runs"
    runner = runner_on_ledger(world, tmp_path, dsn, replicas, runs, agent_seconds=3, in_flight=2)
    pg_ctl("stop")
    stopped_at = time.time()
    assert chaos.wait_until(lambda: bool(events_like(runner, "intake paused")), time.monotonic() + 30, 0.1), \
        runner.log_tail(40)
    paused_at = when(events_like(runner, "intake paused")[0])
    later = chaos.file_issues(world.emu, chaos.task_ids(2, "lq"), dispatch=DISPATCH)
    time.sleep(max(0.0, stopped_at + 12 - time.time()))
    exported = urllib.request.urlopen(f"http://127.0.0.1:{runner.env['HEALTH_PORT']}/metrics", timeout=5).read().decode()
    assert 'agent_runner_dependency_up{dependency="ledger:postgresql"} 0.0' in exported, exported
    assert not {r.task_id for r in chaos.agent_runs(runs)} & set(later.values())  # nothing new was claimed
    listed_while_down = [r for r in world.emu.request_log if r.at >= paused_at + 0.5 and r.method == "GET"
                         and r.path == f"/repos/{DISPATCH}/issues"]
    assert not listed_while_down, [(r.at, r.path) for r in listed_while_down]
    pg_ctl("start")
    started_at = time.time()
    issues = {**first, **later}

    def done() -> bool:
        return all("processed" in world.labels(n) for n in issues)
    assert chaos.wait_until(done, time.monotonic() + 90, 0.25), runner.log_tail(60)
    for number, task_id in issues.items():
        assert world.labels(number) == {"copilot-agent", "processed"}
        assert len(world.comments(number)) == 1
        assert [p["head"]["ref"] for p in world.pulls()].count(chaos.branch_for(task_id)) == 1
    assert len(events_like(runner, "intake paused")) == 1 and events_like(runner, "intake resumed")
    assert all(r.start >= started_at for r in chaos.agent_runs(runs) if r.task_id in later.values())
    assert runner.alive
    print(f"\nledger down {started_at - stopped_at:.1f} s: intake paused {paused_at - stopped_at:.1f} s after it "
          f"stopped; last task done {time.time() - started_at:.1f} s after it came back")


@pytest.fixture()
def small_data_dir(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs as DATA_DIR, where the SQLite ledger lives."""
    with tmpfs(tmp_path / "small-data", "16m") as where:
        yield where


def fill(directory: Path) -> Path:
    """Fill ``directory``'s file system to its last block; return the filler to delete."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        for size in (65536, 4096, 512):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError:
                pass
    return filler


def integrity(path: Path) -> str:
    import sqlite3

    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def test_a_full_data_dir_during_a_ledger_write_makes_the_task_wait_and_keeps_the_ledger_whole(
        world: World, tmp_path: Path, small_data_dir: Path, replicas: list[chaos.Replica]) -> None:
    """DATA_DIR (a 16 MB tmpfs holding the SQLite ledger) fills up while a task's agent works:
    the attempt ends waiting for disk space, and the ledger's writes (a heartbeat, the result
    comment's id, the task's final write) fail with SQLITE_FULL. The final write is retried in
    place until there is space; the runner keeps running; `PRAGMA integrity_check` says ok while
    full and after; once the filler is deleted the task runs again and finishes: one PR, one
    comment, `processed`, no attempt spent. Time is compressed as in FAST."""
    number = world.file_issue(chaos.issue_body("data-full-1"))
    runs = tmp_path / "agent-runs"
    template = chaos.slow_agent_template(tmp_path / "agent", seconds=3, record_dir=runs)
    ledger_path = small_data_dir / "ledger.db"
    env = world.env(**{**FAST, "LEASE_SECONDS": "30"}, GENERATORS="command", COMMAND_TEMPLATE=template,
                    DATA_DIR=str(small_data_dir), LEDGER_URL=f"sqlite:///{ledger_path}",
                    HEALTH_PORT=str(chaos.free_port()))
    runner = chaos.Replica("runner", env, tmp_path / "runner.log", cwd=world.root)
    replicas.append(runner)
    runner.start()
    assert chaos.wait_until(lambda: len(chaos.agent_runs(runs)) >= 1, time.monotonic() + 60, 0.05), \
        runner.log_tail(40)
    filler = fill(small_data_dir)
    full_at = time.time()
    assert chaos.wait_until(lambda: any("is full" in str(e) for e in runner.log_events()),
                            time.monotonic() + 60, 0.1), runner.log_tail(40)
    time.sleep(4)  # a few probes while it is full
    assert runner.alive and "agent-failed" not in world.labels(number)
    assert integrity(ledger_path) == "ok"
    assert events_like(runner, "final write waits for the ledger"), runner.log_tail(40)

    filler.unlink()
    freed_at = time.time()

    def succeeded() -> bool:
        ledger = open_ledger(f"sqlite:///{ledger_path}")
        try:
            record = ledger.get(TaskKey(DISPATCH, number))
        finally:
            ledger.close()
        return record is not None and record.status == "succeeded"
    assert chaos.wait_until(succeeded, time.monotonic() + 60, 0.25), runner.log_tail(60)
    assert world.labels(number) == {"copilot-agent", "processed"}
    assert len(world.comments(number)) == 1 and len(world.pulls()) == 1
    ledger = open_ledger(f"sqlite:///{ledger_path}")
    try:
        record = ledger.get(TaskKey(DISPATCH, number))
    finally:
        ledger.close()
    assert record is not None and record.failures == 0 and record.waits >= 1, record
    assert integrity(ledger_path) == "ok"
    assert runner.alive
    print(f"\nDATA_DIR full {freed_at - full_at:.1f} s: the task succeeded {time.time() - freed_at:.1f} s after "
          "space returned")
