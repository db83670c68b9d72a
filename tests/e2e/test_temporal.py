"""What Temporal itself must give: deduplicated starts, killed workers replaced, status and retry."""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import chaos
from tests.conftest import DISPATCH, World, dispatch_body
from tests.temporal_server import temporal_dev_server

WORKER_ARGV = (sys.executable, "-m", "runner", "--env-file", "/dev/null", "worker")


@pytest.fixture()
def temporal() -> Iterator[str]:
    with temporal_dev_server() as address:
        yield address


def result_comments(world: World, number: int) -> list[str]:
    return [c["body"] for c in world.comments(number) if chaos.RESULT_MARKER in c["body"]]


def assert_one_of_everything(world: World, number: int, task_id: str) -> None:
    heads = [p["head"]["ref"] for p in world.pulls()]
    assert heads.count(chaos.branch_for(task_id)) == 1, heads
    assert len(result_comments(world, number)) == 1
    assert world.labels(number) == {"copilot-agent", "processed"}


def test_a_second_start_of_the_same_task_is_a_no_op(world: World, temporal: str) -> None:
    number = world.file_issue(dispatch_body("dedup-task-1"))
    first, second = world.app(executor="temporal", temporal_address=temporal), \
        world.app(executor="temporal", temporal_address=temporal)

    assert first.executor.poll() == 1
    assert second.executor.poll() == 0  # Temporal rejects the same workflow id while it runs
    outcomes = second.executor.run_once()

    assert [o.status for o in outcomes] == ["succeeded"]
    assert_one_of_everything(world, number, "dedup-task-1")
    duplicates = second.metrics.registry.get_sample_value("agent_runner_task_submissions_total",
                                                          {"result": "duplicate"})
    assert duplicates is not None and duplicates >= 1
    records = second.executor.records()
    assert [(r.key.issue_number, r.status) for r in records] == [(number, "succeeded")]
    assert records[0].pr_url == world.pulls()[0]["html_url"]


def test_a_worker_killed_mid_activity_is_replaced(world: World, tmp_path: Path, temporal: str) -> None:
    runs = tmp_path / "agent-runs"
    template = chaos.slow_agent_template(tmp_path / "agent", seconds=3, record_dir=runs)
    # SANDBOX=off: the slow agent records its runs outside its worktree, which the sandbox forbids.
    base = {"GENERATORS": "command", "COMMAND_TEMPLATE": template, "EXECUTOR": "temporal", "SANDBOX": "off",
            "TEMPORAL_ADDRESS": temporal, "LEASE_SECONDS": "2", "POLL_INTERVAL_SECONDS": "0.5",
            "HEALTH_HOST": "127.0.0.1"}

    def replica(name: str, argv: tuple[str, ...]) -> chaos.Replica:
        env = world.env(**base, WORKSPACE_DIR=str(tmp_path / name / "ws"), DATA_DIR=str(tmp_path / name / "data"),
                        HEALTH_PORT=str(chaos.free_port()))
        return chaos.Replica(name, env, tmp_path / name / "log", argv=argv, cwd=world.root)

    number = world.file_issue(dispatch_body("temporal-kill-1"))
    first = replica("runner-a", chaos.RUNNER_ARGV)
    second = replica("worker-b", WORKER_ARGV)
    try:
        first.start()
        assert chaos.wait_until(lambda: len(chaos.agent_runs(runs)) >= 1, time.monotonic() + 30, 0.05), \
            first.log_tail(30)
        first.kill()  # mid-activity: no drain, no heartbeat any more
        second.start()
        observer = world.app(executor="temporal", temporal_address=temporal).executor
        done = chaos.wait_until(lambda: [r.status for r in observer.records()] == ["succeeded"],
                                time.monotonic() + 60, 0.3)
        assert done, first.log_tail(30) + "\n" + second.log_tail(30)
        second.terminate()
        assert second.wait(30) == 0, second.log_tail(30)
    finally:
        for r in (first, second):
            if r.alive:
                r.kill()
    assert_one_of_everything(world, number, "temporal-kill-1")
    records = observer.records()
    assert [(r.status, r.attempt) for r in records] == [("succeeded", 2)]  # the retry of the killed attempt
    cwds = {run.cwd for run in chaos.agent_runs(runs)}
    assert len(cwds) == 2 and any("worker-b" in cwd for cwd in cwds)


def test_status_and_retry_go_through_temporal(world: World, temporal: str) -> None:
    number = world.file_issue(dispatch_body("status-task-1"))
    env = world.env(EXECUTOR="temporal", TEMPORAL_ADDRESS=temporal)
    assert world.cli("once", env=env).returncode == 0

    shown = world.cli("status", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)["tasks"]
    assert [(r["issue"], r["status"]) for r in rows] == [(f"{DISPATCH}#{number}", "succeeded")], rows
    assert rows[0]["pr_url"] == world.pulls()[0]["html_url"]

    retried = world.cli("retry", str(number), env=env)
    assert retried.returncode == 0 and "new workflow run" in retried.stdout, retried.stdout + retried.stderr
    assert "processed" not in world.labels(number)
    assert world.cli("once", env=env).returncode == 0
    assert_one_of_everything(world, number, "status-task-1")


def test_the_worker_command_needs_temporal(world: World) -> None:
    done = world.cli("worker")
    assert done.returncode == 2
    assert "EXECUTOR=temporal" in done.stderr


def test_an_unreachable_server_names_the_setting(world: World) -> None:
    done = world.cli("once", env=world.env(EXECUTOR="temporal", TEMPORAL_ADDRESS=f"127.0.0.1:{chaos.free_port()}"))
    assert done.returncode != 0
    assert "TEMPORAL_ADDRESS" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_chaos_with_killed_workers_still_gives_one_of_everything(world: World, tmp_path: Path,
                                                                 temporal: str) -> None:
    """Three replicas, kill -9 during activities, API faults; GitHub and `status` agree in the end."""
    ids = chaos.task_ids(8, "tc")
    issues = chaos.file_issues(world.emu, ids)
    chaos.inject_faults(world.emu, rate=0.05, seed=7)
    template = chaos.slow_agent_template(tmp_path / "agent", seconds=1, record_dir=tmp_path / "runs")
    env = world.env(GENERATORS="command", COMMAND_TEMPLATE=template, EXECUTOR="temporal", SANDBOX="off",
                    TEMPORAL_ADDRESS=temporal, LEASE_SECONDS="2", POLL_INTERVAL_SECONDS="0.5")
    rng = random.Random(3)
    with chaos.Fleet(env, tmp_path, 3, cwd=world.root) as fleet:
        fleet.start()
        deadline = time.monotonic() + 150  # a bound for slow CI machines, not a timing claim
        kills = 0
        while time.monotonic() < deadline and not all("processed" in world.labels(n) for n in issues):
            time.sleep(rng.uniform(1.5, 3.0))
            if kills < 4:
                victim = rng.choice(fleet.replicas)
                victim.kill()
                victim.start()
                kills += 1
        world.emu.clear_faults()
        assert all("processed" in world.labels(n) for n in issues), fleet.log_tails()
        # The last workflow tasks (recording each result) run on the live workers; then stop them.
        observer = world.app(executor="temporal", temporal_address=temporal).executor
        closed = chaos.wait_until(lambda: all(r.status != "running" for r in observer.records(limit=50)),
                                  time.monotonic() + 60, 0.5)
        assert closed, [(r.key.issue_number, r.status) for r in observer.records(limit=50)]
        codes = fleet.stop()
    assert all(code == 0 for code in codes), (codes, fleet.log_tails())
    for number, task_id in issues.items():
        assert_one_of_everything(world, number, task_id)
    rows = json.loads(world.cli("status", "--json", "--limit", "50", env=env).stdout)["tasks"]
    pulls = {p["html_url"] for p in world.pulls()}
    assert sorted(r["issue"] for r in rows) == sorted(f"{DISPATCH}#{n}" for n in issues)
    assert [(r["issue"], r["status"]) for r in rows if r["status"] != "succeeded" or r["pr_url"] not in pulls] == []


def test_webhooks_and_polling_start_one_workflow(tmp_path: Path, temporal: str) -> None:
    """EXECUTOR=temporal takes webhooks too: a delivery and its redeliveries make one run."""
    import threading

    from github_emulator import GitHubEmulator

    from runner.intake.webhooks import serve_webhooks
    from tests.app_world import WEBHOOK_SECRET, make_app_world

    with GitHubEmulator(tmp_path / "github") as emu:
        aw = make_app_world(emu, tmp_path)
        app = aw.world.app(**aw.settings(webhook_secret=WEBHOOK_SECRET, webhook_poll_interval_seconds=3600,
                                         executor="temporal", temporal_address=temporal))
        server = serve_webhooks(app, port=0)
        emu.set_webhook(aw.app.id, server.url(), WEBHOOK_SECRET)
        stop = threading.Event()
        thread = threading.Thread(target=app.executor.serve, args=(stop,), daemon=True)
        thread.start()
        try:
            number = aw.world.file_issue(dispatch_body("hooked-temporal-1"))
            labeled = [d for d in emu.wait_for_deliveries() if d.event == "issues" and d.action == "labeled"]
            assert labeled and labeled[-1].status_code == 202
            emu.redeliver(labeled[-1].id)
            assert chaos.wait_until(lambda: [r.status for r in app.executor.records()] == ["succeeded"],
                                    time.monotonic() + 60, 0.3)
            emu.redeliver(labeled[-1].id)  # an old delivery after the run: changes nothing
            emu.wait_for_deliveries()
        finally:
            stop.set()
            thread.join(30)
            server.stop()
        assert_one_of_everything(aw.world, number, "hooked-temporal-1")
        runs = app.metrics.registry.get_sample_value("agent_runner_task_submissions_total", {"result": "started"})
        assert runs == 1


@pytest.mark.postgres
def test_temporal_replicas_share_one_write_budget_through_postgresql(world: World, tmp_path: Path,
                                                                   temporal: str) -> None:
    """Two Temporal workers on one token, the pacer on, LEDGER_URL PostgreSQL: one budget between them."""
    import threading

    from tests.unit.ledger.fixtures import fresh_url, raw_query

    numbers = [world.file_issue(dispatch_body(f"paced-{i}-task")) for i in range(3)]
    with fresh_url("postgres", tmp_path, prefix="temporal_slots") as url:
        apps = [world.app(executor="temporal", temporal_address=temporal, ledger_url=url, github_throttle=True,
                          workers=2, workspace_dir=tmp_path / f"ws-{i}") for i in range(2)]
        assert world.cli("check-config", env=world.env(EXECUTOR="temporal", TEMPORAL_ADDRESS=temporal,
                                                       LEDGER_URL=url, GITHUB_THROTTLE="true")).stdout.count(
            "shared by every replica through the PostgreSQL ledger") == 1
        world.emu.clear_request_log()
        stop = threading.Event()
        threads = [threading.Thread(target=app.executor.serve, args=(stop,), daemon=True) for app in apps]
        for thread in threads:
            thread.start()
        try:
            done = chaos.wait_until(lambda: all("processed" in world.labels(n) for n in numbers),
                                    time.monotonic() + 90, 0.3)
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        assert done
        # The write lane's slots; the notifications lane (comments, PRs) keeps its own rows too.
        slots = [row[0] for row in raw_query(
            url, "SELECT at FROM github_write_slots WHERE bucket NOT LIKE '%:notify' ORDER BY at")]
    writes = sorted(r.at for r in world.emu.request_log if r.is_write)
    for number, task_id in zip(numbers, ("paced-0-task", "paced-1-task", "paced-2-task"), strict=True):
        assert_one_of_everything(world, number, task_id)
    # Every write took its slot from the one table, and the slots are a second apart whichever
    # replica asked; what GitHub saw follows them (a little scheduling jitter aside).
    assert len(writes) >= 9 and len(slots) >= len(writes), (len(slots), len(writes))
    assert all(b - a >= 1.0 - 1e-6 for a, b in zip(slots, slots[1:], strict=False)), slots
    assert min(b - a for a, b in zip(writes, writes[1:], strict=False)) > 0.8, writes


def test_check_config_says_temporal_replicas_pace_alone_without_postgresql(world: World) -> None:
    shown = world.cli("check-config", env=world.env(EXECUTOR="temporal", TEMPORAL_ADDRESS="127.0.0.1:7233",
                                                    GITHUB_THROTTLE="true"))
    assert shown.returncode == 0, shown.stderr
    assert "Temporal replicas on one token do not share it; set LEDGER_URL=postgresql://" in shown.stdout
