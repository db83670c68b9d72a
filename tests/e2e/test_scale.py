"""Many workers and replicas share the work through the ledger, and crashes change nothing users see.

Every runner here is a real `agent-runner run` process. They are killed with
SIGKILL, stopped with SIGTERM and fed GitHub 5xx, 403/429, slow answers,
writes answered 502 and git transport errors; the checks are what a user sees
on GitHub (one PR, one result comment, `processed`) and what `status` says.
The harness lives in :mod:`tests.chaos` and is shared with ``bench/chaos.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.ledger import Ledger, TaskKey, TaskRecord, open_ledger
from tests import chaos
from tests.conftest import DISPATCH, TARGET, World, dispatch_body
from tests.unit.ledger.fixtures import BACKEND_PARAMS, fresh_url

RUNNER_START_S = 30.0  # generous: these tests share two cores with the rest of the suite


@pytest.fixture(params=BACKEND_PARAMS)
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A ledger every runner process of the test shares: one SQLite file, or a PostgreSQL schema."""
    with fresh_url(request.param, tmp_path, "shared-ledger.db", "scale_test") as url:
        yield url


def record(url: str, number: int) -> TaskRecord | None:
    ledger = open_ledger(url)
    try:
        return ledger.get(TaskKey(DISPATCH, number))
    finally:
        ledger.close()


def result_comments(world: World, number: int) -> list[str]:
    return [c["body"] for c in world.comments(number) if chaos.RESULT_MARKER in c["body"]]


def assert_one_of_everything(world: World, number: int, task_id: str) -> None:
    heads = [p["head"]["ref"] for p in world.pulls()]
    assert heads.count(chaos.branch_for(task_id)) == 1, heads
    assert len(result_comments(world, number)) == 1
    assert len(world.comments(number)) == 1
    assert world.labels(number) == {"copilot-agent", "processed"}


class SlowRunners:
    """Runner processes whose generator is the slow agent (a stand-in for an LLM taking its time)."""

    def __init__(self, world: World, tmp_path: Path, ledger_url: str, *, seconds: float, barrier: int = 0,
                 **settings: str) -> None:
        self.world = world
        self.root = tmp_path
        self.runs_dir = tmp_path / "agent-runs"
        template = chaos.slow_agent_template(tmp_path / "agent", seconds=seconds, record_dir=self.runs_dir,
                                             barrier=barrier)
        # SANDBOX=off: the slow agent records its runs (and meets its barrier) outside its worktree,
        # which the sandbox forbids; isolation has its own tests (tests/e2e/test_sandbox*.py).
        self.settings = {"GENERATORS": "command", "COMMAND_TEMPLATE": template, "LEDGER_URL": ledger_url,
                         "SANDBOX": "off",
                         "POLL_INTERVAL_SECONDS": "0.5", "HEALTH_HOST": "127.0.0.1", **settings}
        self.replicas: list[chaos.Replica] = []

    def env(self, name: str, **extra: str) -> dict[str, str]:
        return self.world.env(**{**self.settings, "WORKSPACE_DIR": str(self.root / name / "workspace"),
                                 "DATA_DIR": str(self.root / name / "data"),
                                 "HEALTH_PORT": str(chaos.free_port()), **extra})

    def start(self, name: str, **extra: str) -> chaos.Replica:
        replica = chaos.Replica(name, self.env(name, **extra), self.root / name / "runner.log", cwd=self.world.root)
        self.replicas.append(replica)
        replica.start()
        return replica

    def wait_for_agent(self, count: int = 1) -> list[chaos.AgentRun]:
        """Block until ``count`` agent runs have started; fail with the runners' logs otherwise."""
        ok = chaos.wait_until(lambda: len(chaos.agent_runs(self.runs_dir)) >= count,
                              time.monotonic() + RUNNER_START_S, 0.05)
        assert ok, self.logs()
        return chaos.agent_runs(self.runs_dir)

    def logs(self) -> str:
        return "\n".join(f"--- {r.name} ---\n{r.log_tail(30)}" for r in self.replicas)

    def close(self) -> None:
        for replica in self.replicas:
            if replica.alive:
                replica.kill()


@pytest.fixture()
def slow_runners(world: World, tmp_path: Path) -> Iterator[list[SlowRunners]]:
    made: list[SlowRunners] = []
    yield made
    for runners in made:
        runners.close()


# -- the chaos test ----------------------------------------------------------------------


@pytest.mark.slow
def test_under_chaos_github_shows_one_of_everything_and_status_agrees(
        world: World, ledger_url: str, tmp_path: Path) -> None:
    """3 replicas, 8 issues, ~10% of API and git calls failing, replicas killed; default MAX_ATTEMPTS.

    The short version of `bench/chaos.py`, on both ledgers. The faults include
    POSTs that GitHub carries out and then answers 502, so a blind retry would
    show up as a second comment creation in the request log.
    """
    issues = chaos.file_issues(world.emu, chaos.task_ids(8, "c"), dispatch=DISPATCH, target=TARGET)
    env = world.env(LEDGER_URL=ledger_url, WORKERS="2", POLL_INTERVAL_SECONDS="0.5", LEASE_SECONDS="3",
                    RETRY_BASE_SECONDS="0.2", RETRY_MAX_SECONDS="1", SHUTDOWN_GRACE_SECONDS="10")
    assert "MAX_ATTEMPTS" not in env  # the shipped default must be enough
    ledger = open_ledger(ledger_url)  # migrates once, before the replicas race to
    try:
        with chaos.Fleet(env, tmp_path / "fleet", 3, cwd=world.root) as fleet:
            result = chaos.run_chaos(world.emu, ledger, fleet, issues, seed=20240611, fault_rate=0.1,
                                     max_kills=3, kill_every=(1.5, 3.0), chaos_seconds=15,
                                     deadline_seconds=45, dispatch=DISPATCH, target=TARGET, log=print)
            logs = fleet.log_tails()
    finally:
        ledger.close()

    summary = result.summary()
    print(summary)
    assert result.settled, f"not settled before the deadline\n{summary}\n{logs}"
    assert result.invariants.violations == [], f"{summary}\n{logs}"
    assert result.exit_codes == [0, 0, 0], f"SIGTERM must drain and exit 0\n{summary}\n{logs}"
    assert result.kills >= 2, f"the chaos never really happened\n{summary}"
    assert result.faults > 0 and result.git_faults > 0, summary


# -- SIGTERM ---------------------------------------------------------------------------


def test_sigterm_lets_the_job_in_flight_finish(world: World, tmp_path: Path, slow_runners: list[SlowRunners]) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    runners = SlowRunners(world, tmp_path, url, seconds=3, SHUTDOWN_GRACE_SECONDS="10", LEASE_SECONDS="5")
    slow_runners.append(runners)
    number = world.file_issue(dispatch_body("drain-finish-01"))
    runner = runners.start("runner-a")
    runners.wait_for_agent()

    stopped_at = time.time()
    runner.terminate()
    code = runner.wait(20)

    assert code == 0, runners.logs()
    [run] = chaos.agent_runs(runners.runs_dir)
    assert run.end is not None and run.end > stopped_at  # it ran to the end after SIGTERM
    assert_one_of_everything(world, number, "drain-finish-01")
    rec = record(url, number)
    assert rec is not None and rec.status == "succeeded" and rec.attempt == 1
    assert "released lease on shutdown" not in runner.log_path.read_text()


def test_sigterm_past_the_grace_releases_the_lease_for_another_runner(
        world: World, tmp_path: Path, slow_runners: list[SlowRunners]) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    runners = SlowRunners(world, tmp_path, url, seconds=4, SHUTDOWN_GRACE_SECONDS="0.5", LEASE_SECONDS="30")
    slow_runners.append(runners)
    number = world.file_issue(dispatch_body("drain-release-1"))
    first = runners.start("runner-a")
    [started] = runners.wait_for_agent()
    held = record(url, number)
    assert held is not None and held.status == "running"

    first.terminate()
    code = first.wait(10)

    assert code == 0, runners.logs()
    assert time.time() < started.start + 4, "it should not have waited for the job"
    assert "released lease on shutdown" in first.log_path.read_text()
    released = record(url, number)
    assert released is not None
    # Back in the queue at once (no 30 s lease to wait out), with no failure counted. The
    # owner column keeps naming the last worker by design (see TaskRecord), so only the
    # lease itself is checked.
    assert (released.status, released.lease_expires_at, released.failures) == ("queued", None, 0)
    assert "processed" not in world.labels(number)

    done = world.cli("once", env=runners.env("runner-b"))

    assert done.returncode == 0, done.stderr[-3000:]
    assert_one_of_everything(world, number, "drain-release-1")
    finished = record(url, number)
    assert finished is not None and (finished.status, finished.attempt) == ("succeeded", 2)
    assert finished.lease_owner != held.lease_owner


# -- kill -9 -----------------------------------------------------------------------------


def test_kill_9_mid_generation_is_taken_over_after_the_lease_expires(
        world: World, tmp_path: Path, ledger_url: str, slow_runners: list[SlowRunners]) -> None:
    runners = SlowRunners(world, tmp_path, ledger_url, seconds=3, LEASE_SECONDS="2", SHUTDOWN_GRACE_SECONDS="10")
    slow_runners.append(runners)
    number = world.file_issue(dispatch_body("takeover-task-1"))
    first = runners.start("runner-a")
    runners.wait_for_agent()
    held = record(ledger_url, number)
    assert held is not None and held.status == "running"

    first.kill()
    second = runners.start("runner-b")
    finished = chaos.wait_until(lambda: "processed" in world.labels(number), time.monotonic() + 45, 0.2)
    second.terminate()

    assert finished, runners.logs()
    assert second.wait(20) == 0, runners.logs()
    assert_one_of_everything(world, number, "takeover-task-1")
    rec = record(ledger_url, number)
    assert rec is not None
    assert (rec.status, rec.attempt, rec.failures) == ("succeeded", 2, 1)  # the takeover counts one failure
    assert rec.lease_owner != held.lease_owner
    cwds = {run.cwd for run in chaos.agent_runs(runners.runs_dir)}
    assert len(cwds) == 2 and any("runner-b" in cwd for cwd in cwds)


# -- workers -------------------------------------------------------------------------------


def test_four_workers_run_four_jobs_at_once_each_in_its_own_worktree(
        world: World, tmp_path: Path, slow_runners: list[SlowRunners]) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    # Each agent run waits until four have started: with fewer than four jobs in parallel
    # none would get past that barrier (it gives up after 30 s and says so).
    runners = SlowRunners(world, tmp_path, url, seconds=0.5, barrier=4, WORKERS="4")
    slow_runners.append(runners)
    ids = [f"w{i}000000-parallel" for i in range(1, 5)]
    numbers = {world.file_issue(dispatch_body(tid)): tid for tid in ids}

    done = world.cli("once", env=runners.env("runner-a"))

    assert done.returncode == 0, done.stderr[-3000:]
    assert "4 succeeded" in done.stdout
    runs = chaos.agent_runs(runners.runs_dir)
    assert len(runs) == 4
    assert all(run.barrier_met for run in runs), runs
    assert chaos.max_overlap(runs) == 4
    worktrees = {run.cwd for run in runs}
    assert len(worktrees) == 4
    assert all(Path(cwd).is_relative_to(tmp_path / "runner-a" / "workspace" / "worktrees") for cwd in worktrees)
    assert not any(Path(cwd).exists() for cwd in worktrees)  # removed after each job
    ledger: Ledger = open_ledger(url)
    try:
        records = [ledger.get(TaskKey(DISPATCH, n)) for n in numbers]
    finally:
        ledger.close()
    assert {(r.status, r.attempt) for r in records if r} == {("succeeded", 1)}
    assert len({r.lease_owner for r in records if r}) == 1  # one process ran all four
    for number, tid in numbers.items():
        assert_one_of_everything(world, number, tid)


# -- more than one page of dispatch issues ----------------------------------------------------


def test_a_new_issue_past_the_first_page_is_queued(world: World) -> None:
    """Processed issues stay open, so a busy dispatch repo soon has more than 100 of them."""
    for tid in chaos.task_ids(101, "p"):
        world.file_issue(dispatch_body(tid))
    app = world.app()
    assert app.executor.poll() == 101  # two pages, nothing cached yet

    world.file_issue(dispatch_body("p-new-task-1"))  # lands on page 2; page 1 is unchanged

    assert app.executor.poll() == 1
