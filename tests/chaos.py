"""Run real runner processes against one GitHub emulator, break things on purpose, check the result.

The scale tests (``tests/e2e/test_scale.py``) and the benchmarks
(``bench/chaos.py``, ``bench/throughput.py``) share this module, so the chaos
the suite checks on every run is the same code the benchmark runs at scale::

    file_issues ──► Fleet (N `agent-runner run` processes, one ledger)
        ──► inject_faults (seeded 5xx, 403/429 + Retry-After, delays, writes that
            succeed but answer 502, git transport errors) ──► kill -9 and restart replicas
        ──► wait until settled ──► stop with SIGTERM ──► check_invariants

What is checked is what a user sees on GitHub (one PR, one result comment and
the ``processed`` label per issue; one comment and one PR creation per issue
in the emulator's request log) and that `agent-runner status --json` tells the
same story (``succeeded`` with the PR's URL exactly where GitHub shows
``processed``). Every wait here is bounded by a deadline.

It lives in tests/, not in the runtime package nor in the emulator distribution
(emulator/), which plugin authors install for their own tests.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from github_emulator import ADMIN_TOKEN, FaultRule, GitHubEmulator

from runner.core.task import BRANCH_PREFIX, task_prefix
from runner.ledger import TERMINAL, Ledger, TaskRecord
from runner.ledger.status import records_to_json

DISPATCH = "octocat/dispatch"
TARGET = "octocat/target"
RESULT_MARKER = "agent-runner:result"
DSN_ENV = "AGENT_RUNNER_TEST_POSTGRES_DSN"
DEFAULT_INSTRUCTION = "Create a simple test file to verify the agent runner is working."
RUNNER_ARGV = (sys.executable, "-m", "runner", "--env-file", "/dev/null", "run")
#: Rules skip the emulator's own control routes (the app also never faults them).
API_PATHS = r"^/(?!_emulator/)"
GIT_PATHS = r"^/git/"


@dataclass(frozen=True)
class FaultKind:
    """One kind of injected API fault and its share of all faults."""

    status: int | None
    share: float
    retry_after: float | None = None
    delay: float | None = None
    method: str | None = None
    after_action: bool = False


#: The chaos profile: how injected API faults are split. Mostly 5xx; rate limits
#: (429, and 403 with a retry hint); slow answers; and POSTs that GitHub carries out
#: but answers with a 502, which a blind retry would turn into a second comment or PR.
FAULT_MIX: tuple[FaultKind, ...] = (
    FaultKind(500, 0.2), FaultKind(502, 0.15), FaultKind(503, 0.1),
    FaultKind(429, 0.15, retry_after=1.0), FaultKind(403, 0.1, retry_after=1.0),
    FaultKind(None, 0.15, delay=0.4),
    FaultKind(502, 0.15, method="POST", after_action=True),
)

Log = Callable[[str], None]


# -- the world -----------------------------------------------------------------


def issue_body(task_id: str, target: str = TARGET, instruction: str = DEFAULT_INSTRUCTION) -> str:
    """A dispatch issue body in exactly the documented format."""
    metadata = json.dumps({"task_id": task_id})
    return (f"<!-- agent_task_metadata {metadata} -->\n\n## Instruction\n\n{instruction}\n\n"
            f"Target Repository: {target}\n")


def task_ids(count: int, tag: str = "t") -> list[str]:
    """``count`` task ids whose first 8 characters differ, so each gets a plain branch."""
    width = 8 - len(tag)
    if width < len(str(count)):
        raise ValueError(f"tag {tag!r} leaves too few digits for {count} ids")
    return [f"{tag}{i:0{width}d}-scale" for i in range(1, count + 1)]


def branch_for(task_id: str) -> str:
    return f"{BRANCH_PREFIX}{task_prefix(task_id)}"


def create_repos(emu: GitHubEmulator, dispatch: str = DISPATCH, target: str = TARGET) -> None:
    emu.create_repo(dispatch)
    emu.create_repo(target, files={"README.md": "# target\n", "src/app.py": "print('hello')\n"})


def file_issues(emu: GitHubEmulator, ids: Sequence[str], *, dispatch: str = DISPATCH,
                target: str = TARGET, label: str = "copilot-agent") -> dict[int, str]:
    """Open one labeled dispatch issue per task id; returns issue number -> task id."""
    return {emu.create_issue(dispatch, f"Task {tid}", issue_body(tid, target), labels=(label,)): tid
            for tid in ids}


def runner_env(emu: GitHubEmulator, *, dispatch: str = DISPATCH, **extra: str) -> dict[str, str]:
    """An environment for `agent-runner` subprocesses against ``emu`` (no credentials leak in).

    Shipped defaults otherwise, the write pacer included: benchmarks measure what users get.
    """
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "OPENAI_", "ANTHROPIC_", "LEDGER_", "AGENT_RUNNER_"))}
    env.update({
        "GITHUB_TOKEN": ADMIN_TOKEN,
        "GITHUB_API_URL": emu.base_url,
        "DISPATCH_REPO": dispatch,
        "GENERATORS": "patch",
        "LOG_FORMAT": "json",
    })
    env.update(extra)
    return env


def inject_faults(emu: GitHubEmulator, *, rate: float = 0.1, seed: int = 0,
                  git_rate: float | None = None) -> list[FaultRule]:
    """Fail about ``rate`` of all API requests, split as :data:`FAULT_MIX`, and ``git_rate`` of git's.

    Rules are tried in order, so each rule's probability is its share of what
    the rules before it let through; that keeps the overall rate at ``rate``.
    Git requests (fetch and push over smart HTTP) fail with 500 at ``git_rate``
    (default: ``rate``).
    """
    rules: list[FaultRule] = []
    taken = 0.0
    for index, kind in enumerate(FAULT_MIX):
        probability = min(1.0, kind.share * rate / (1.0 - taken))
        taken += kind.share * rate
        rules.append(emu.inject(status=kind.status, count=None, path_regex=API_PATHS, probability=probability,
                                seed=seed * 100 + index, retry_after=kind.retry_after, delay=kind.delay,
                                method=kind.method, after_action=kind.after_action))
    git = rate if git_rate is None else git_rate
    if git > 0:
        rules.append(emu.inject(status=500, count=None, path_regex=GIT_PATHS, probability=git,
                                seed=seed * 100 + 99, include_git=True))
    return rules


# -- processes -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Replica:
    """One `agent-runner run` process slot; it can be killed and started again.

    A replica runs in a session of its own, so :meth:`kill` takes its git
    children with it, as when a container or a machine dies. Its output is
    appended to ``log_path`` across restarts.
    """

    def __init__(self, name: str, env: Mapping[str, str], log_path: Path, *,
                 argv: Sequence[str] = RUNNER_ARGV, cwd: Path | None = None) -> None:
        self.name = name
        self.env = dict(env)
        self.log_path = log_path
        self.argv = list(argv)
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.alive:
            raise RuntimeError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.cwd)
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL the whole process group: no drain, no lease release."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self.kills += 1

    def serving(self) -> bool:
        """Whether its health server answers, which it starts after installing the SIGTERM handler."""
        url = f"http://127.0.0.1:{self.env.get('HEALTH_PORT', '8080')}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=0.5) as response:
                return bool(response.status == 200)
        except (OSError, ValueError):
            return False

    def serving_or_gone(self) -> bool:
        return not self.alive or self.serving()

    def terminate(self) -> None:
        """SIGTERM the runner itself (not its children): it drains and exits."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        """The exit status, or None if it is still running after ``timeout``."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines this replica wrote (other output is skipped)."""
        events = []
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        for line in lines:
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return events


class Fleet:
    """``size`` replicas sharing one ledger; each has its own workspace, data dir and health port."""

    def __init__(self, env: Mapping[str, str], root: Path, size: int, *,
                 per_replica: Callable[[int], Mapping[str, str]] | None = None,
                 cwd: Path | None = None) -> None:
        self.cwd = cwd
        self.replicas: list[Replica] = []
        for index in range(size):
            home = root / f"replica-{index}"
            replica_env = {
                **env,
                "WORKSPACE_DIR": str(home / "workspace"),
                "DATA_DIR": str(home / "data"),
                "HEALTH_HOST": "127.0.0.1",
                "HEALTH_PORT": str(free_port()),
                **(per_replica(index) if per_replica else {}),
            }
            self.replicas.append(Replica(f"replica-{index}", replica_env, home / "runner.log", cwd=cwd))

    def __len__(self) -> int:
        return len(self.replicas)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        for replica in self.replicas:
            replica.start()

    def stop(self, timeout: float = 30.0) -> list[int | None]:
        """SIGTERM every replica once it serves, and wait; None for one that had to be killed.

        A replica restarted a moment ago is still importing and has no SIGTERM
        handler yet (a signal then kills it: status -15), so wait until it serves.
        """
        deadline = time.monotonic() + timeout
        for replica in self.replicas:
            wait_until(replica.serving_or_gone, deadline, 0.1)
            replica.terminate()
        codes = [replica.wait(deadline - time.monotonic()) for replica in self.replicas]
        self.close()
        return codes

    def close(self) -> None:
        """Kill whatever still runs (the safety net in ``finally`` blocks)."""
        for replica in self.replicas:
            if replica.alive:
                replica.kill()

    @property
    def kills(self) -> int:
        return sum(r.kills for r in self.replicas)

    def log_events(self) -> list[dict[str, Any]]:
        return [event for replica in self.replicas for event in replica.log_events()]

    def log_tails(self, lines: int = 15) -> str:
        return "\n".join(f"--- {r.name} (started {r.starts}x) ---\n{r.log_tail(lines)}" for r in self.replicas)


def wait_until(predicate: Callable[[], bool], deadline: float, interval: float = 0.25) -> bool:
    """Poll ``predicate`` until it holds or the monotonic ``deadline`` passes."""
    while True:
        if predicate():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(interval, left))


# -- the ledger ----------------------------------------------------------------


def with_search_path(dsn: str, schema: str) -> str:
    """The DSN with ``options=-csearch_path=<schema>`` (URL or key=value form)."""
    option = f"-csearch_path={schema}"
    if "://" not in dsn:
        return f"{dsn} options='{option}'"
    parts = urllib.parse.urlsplit(dsn)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k != "options"]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode([*query, ("options", option)])))


@contextmanager
def postgres_schema(dsn: str, prefix: str = "chaos") -> Iterator[str]:
    """A LEDGER_URL in a fresh schema of ``dsn``; the schema is dropped afterwards."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield with_search_path(dsn, schema)
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def shared_ledger(root: Path, dsn: str | None = None, prefix: str = "bench") -> Iterator[str]:
    """A LEDGER_URL every replica can share: a fresh PostgreSQL schema, else one SQLite file.

    SQLite works across processes on one machine (its file lock serialises
    writers); PostgreSQL is what replicas on many machines need.
    """
    if dsn:
        with postgres_schema(dsn, prefix) as url:
            yield url
        return
    root.mkdir(parents=True, exist_ok=True)
    yield f"sqlite:///{root.resolve() / 'ledger.db'}"


#: Where Debian's postgresql-15 puts the server binaries (CI installs it).
PG_BIN = Path("/usr/lib/postgresql/15/bin")


@contextmanager
def private_postgres() -> Iterator[tuple[str, Callable[[str], None]]]:
    """A PostgreSQL cluster of its own (initdb in a fresh directory, a free port), so stopping it harms
    no one else; yields its DSN and ``pg_ctl(action)`` (``start``/``stop``). Needs root (runuser postgres)."""
    import shutil
    import tempfile

    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL's server binaries are not at {PG_BIN} (CI installs postgresql-15)")
    home = Path(tempfile.mkdtemp(prefix="agent-runner-pg-"))  # pytest's tmp_path is root-only (0700)
    home.chmod(0o755)
    data = home / "pg"
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    port = free_port()

    def as_postgres(*argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True, timeout=60)

    def pg_ctl(action: str) -> None:
        extra = ["-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1"] if action == "start" else ["-m", "fast"]
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(data / "log"), *extra, action)

    try:
        as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "runner")
        pg_ctl("start")
        yield f"postgresql://runner@127.0.0.1:{port}/postgres", pg_ctl
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(data), "-m",
                        "immediate", "stop"], capture_output=True, check=False, timeout=60)
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def scratch_world(root: Path, dispatch: str = DISPATCH, target: str = TARGET, *,
                  rate_limit: int = 5000) -> Iterator[GitHubEmulator]:
    """An emulator under ``root`` with the dispatch and the target repository, for the benchmarks.

    ``rate_limit`` is the hourly REST budget of the token, GitHub's 5000 by
    default; a task costs a few dozen requests, so benchmarks beyond ~150
    tasks raise it.
    """
    with GitHubEmulator(root / "github", rate_limit=rate_limit) as emu:
        create_repos(emu, dispatch, target)
        yield emu


def close_processed(emu: GitHubEmulator, issues: Mapping[int, str], closed: set[int], *,
                    dispatch: str = DISPATCH) -> None:
    """Close issues labeled `processed`, as merging their PRs would (`Fixes dispatch#n`).

    This keeps the poll to one page: past 100 open dispatch issues every poll
    reads every page in full (an ETag covers page 1 only).
    """
    for number in issues:
        if number not in closed and "processed" in emu.labels(dispatch, number):
            emu.update_issue(dispatch, number, state="closed")
            closed.add(number)


def ledger_records(ledger: Ledger, expected: int) -> list[TaskRecord]:
    return list(ledger.list(limit=max(100, expected * 2)))


def settled(emu: GitHubEmulator, ledger: Ledger, issues: Mapping[int, str], *,
            dispatch: str = DISPATCH) -> bool:
    """Every issue carries a result label and every ledger row is terminal."""
    for number in issues:
        labels = emu.labels(dispatch, number)
        if "processed" not in labels and "agent-failed" not in labels:
            return False
    records = ledger_records(ledger, len(issues))
    return len(records) >= len(issues) and all(r.status in TERMINAL for r in records)


# -- what users see --------------------------------------------------------------


@dataclass
class Invariants:
    """The user-visible guarantees, counted per issue; ``violations`` says what broke where."""

    issues: int
    checks: dict[str, int] = field(default_factory=dict)  # name -> issues for which it held
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def lines(self) -> list[str]:
        marks = [f"  {'ok ' if held == self.issues else 'BAD'} {name}: {held}/{self.issues}"
                 for name, held in self.checks.items()]
        return marks + [f"  violation: {v}" for v in self.violations[:20]]


def creations(emu: GitHubEmulator, path_regex: str) -> Counter[str]:
    """POSTs to paths matching ``path_regex`` that took effect, by path, from the emulator's request log.

    A creation took effect when it was answered 201, or when an injected fault
    answered an error after carrying it out (``acted``)."""
    pattern = re.compile(path_regex)
    return Counter(r.path for r in emu.request_log
                   if r.method == "POST" and pattern.search(r.path) and (r.status == 201 or r.acted))


def status_json(env: Mapping[str, str], limit: int, cwd: Path | None = None) -> list[dict[str, Any]]:
    """What `agent-runner status --json` prints, run as an operator would."""
    done = subprocess.run([*RUNNER_ARGV[:-1], "status", "--json", "--limit", str(limit)], env=dict(env),
                          capture_output=True, text=True, timeout=60, cwd=cwd)
    if done.returncode != 0:
        raise AssertionError(f"`agent-runner status --json` exited {done.returncode}: {done.stderr[-2000:]}")
    rows: list[dict[str, Any]] = json.loads(done.stdout)["tasks"]  # the status document's ledger rows
    return rows


def check_invariants(emu: GitHubEmulator, ledger: Ledger, issues: Mapping[int, str], *,
                     dispatch: str = DISPATCH, target: str = TARGET,
                     status: Sequence[Mapping[str, Any]] | None = None) -> Invariants:
    """What GitHub shows, and whether the ledger (``status``, as `status --json` prints it) agrees.

    Per issue: one PR, one result comment and no other, one comment creation
    in the request log, `processed` and not `agent-failed` (so no task failed
    wrongly), and a status row that says `succeeded` with that PR's URL. Without
    ``status`` the ledger is read directly.
    """
    result = Invariants(issues=len(issues))
    pulls = emu.pulls(target)
    by_head = Counter(p["head"]["ref"] for p in pulls)
    bodies = {p["head"]["ref"]: p.get("body") or "" for p in pulls}
    urls = {p["head"]["ref"]: p["html_url"] for p in pulls}
    rows = status if status is not None else records_to_json(ledger_records(ledger, len(issues)))
    records = {int(r["issue_number"]): r for r in rows if r["dispatch_repo"] == dispatch}
    comment_posts = creations(emu, rf"^/repos/{re.escape(dispatch)}/issues/\d+/comments$")
    pull_posts = sum(creations(emu, rf"^/repos/{re.escape(target)}/pulls$").values())

    def one_pr(number: int, tid: str) -> str | None:
        head = branch_for(tid)
        if by_head[head] != 1:
            return f"#{number}: {by_head[head]} PRs from {head}"
        if f"Fixes {dispatch}#{number}" not in bodies[head]:
            return f"#{number}: the PR from {head} does not say `Fixes {dispatch}#{number}`"
        return None

    def one_result_comment(number: int, tid: str) -> str | None:
        found = sum(RESULT_MARKER in c["body"] for c in emu.comments(dispatch, number))
        return None if found == 1 else f"#{number}: {found} result comments"

    def no_other_comment(number: int, tid: str) -> str | None:
        total = len(emu.comments(dispatch, number))
        return None if total == 1 else f"#{number}: {total} comments in all"

    def one_comment_creation(number: int, tid: str) -> str | None:
        made = comment_posts[f"/repos/{dispatch}/issues/{number}/comments"]
        return None if made == 1 else f"#{number}: {made} comment creations in the request log"

    def processed(number: int, tid: str) -> str | None:
        labels = set(emu.labels(dispatch, number))
        if "processed" not in labels:
            return f"#{number}: labels {sorted(labels)} lack `processed`"
        return f"#{number}: still labeled `agent-failed`" if "agent-failed" in labels else None

    def status_agrees(number: int, tid: str) -> str | None:
        """succeeded <=> `processed` with its pr_url; dead/failed <=> `agent-failed` with the error."""
        record = records.get(number)
        if record is None:
            return f"#{number}: not in `status`"
        labels = set(emu.labels(dispatch, number))
        state, pr_url, error = record["status"], record["pr_url"], record["last_error"]
        if "processed" in labels:
            want = urls.get(branch_for(tid))
            if state != "succeeded" or pr_url != want:
                return f"#{number}: GitHub says processed ({want}), status says {state} ({pr_url}): {error}"
        elif "agent-failed" in labels:
            if state not in ("dead", "failed") or not error:
                return f"#{number}: GitHub says agent-failed, status says {state} (error: {error})"
        elif state in ("succeeded", "dead"):
            return f"#{number}: status says {state}, but the issue has no result label"
        return None

    checks: dict[str, Callable[[int, str], str | None]] = {
        "one PR per issue (head branch, state=all)": one_pr,
        "one result comment per issue": one_result_comment,
        "no duplicate or extra comments": no_other_comment,
        "one comment creation per issue (request log)": one_comment_creation,
        "labeled `processed`, not `agent-failed`": processed,
        "`status` agrees with GitHub (succeeded + PR URL)": status_agrees,
    }
    for name, check in checks.items():
        problems = [p for p in (check(n, t) for n, t in sorted(issues.items())) if p]
        result.checks[name] = len(issues) - len(problems)
        result.violations += problems
    expected = {branch_for(t) for t in issues.values()}
    strays = sorted(set(by_head) - expected)
    if strays:
        result.violations.append(f"PRs from unexpected branches: {strays}")
    if pull_posts != len(issues):
        result.violations.append(f"{pull_posts} PR creations in the request log for {len(issues)} issues")
    return result


# -- the chaos run -----------------------------------------------------------------


@dataclass
class ChaosResult:
    issues: int
    replicas: int
    kills: int
    faults: int
    api_requests: int  # while faults were on
    seconds: float
    settled: bool
    exit_codes: list[int | None]
    invariants: Invariants
    attempts: int
    reruns: int
    git_faults: int = 0
    retried_in_place: int = 0  # "retrying in place" log lines
    found_after_failure: int = 0  # creations found by the recheck instead of being sent again
    leases_lost: int = 0  # "lease lost" warnings

    @property
    def ok(self) -> bool:
        return self.settled and self.invariants.ok and all(code == 0 for code in self.exit_codes)

    def summary(self) -> str:
        head = (f"chaos: {self.issues} issues, {self.replicas} replicas, {self.kills} kill -9, "
                f"{self.faults} faults in {self.api_requests} API requests "
                f"({100.0 * self.faults / max(1, self.api_requests):.1f}%) + {self.git_faults} git faults, "
                f"{self.attempts} attempts, {self.reruns} poll re-runs, {self.seconds:.1f} s, "
                f"exit codes {self.exit_codes}\n"
                f"  {self.retried_in_place} retries in place, {self.found_after_failure} creations found "
                f"by a recheck (not sent again), {self.leases_lost} `lease lost` warnings")
        return "\n".join([head, *self.invariants.lines()])


def run_chaos(
    emu: GitHubEmulator,
    ledger: Ledger,
    fleet: Fleet,
    issues: Mapping[int, str],
    *,
    seed: int = 0,
    fault_rate: float = 0.1,
    git_fault_rate: float | None = None,
    max_kills: int = 8,
    kill_every: tuple[float, float] = (2.0, 3.5),
    chaos_seconds: float = 40.0,
    deadline_seconds: float = 90.0,
    stop_timeout: float = 20.0,
    dispatch: str = DISPATCH,
    target: str = TARGET,
    close_when_processed: bool = False,
    log: Log = lambda _line: None,
) -> ChaosResult:
    """Start the fleet, fail API calls and kill replicas until the work is done, then check.

    Chaos lasts until every task settled or ``chaos_seconds`` passed (with at
    most ``max_kills`` kills); then faults stop and the fleet gets what is left of
    ``deadline_seconds`` to finish before it is stopped with SIGTERM.
    ``close_when_processed`` closes each issue once it is done (see
    :func:`close_processed`); the benchmark needs it beyond 100 issues.
    """
    rng = random.Random(seed)
    started = time.monotonic()
    deadline = started + deadline_seconds
    emu.clear_request_log()
    fleet.start()
    rules = inject_faults(emu, rate=fault_rate, seed=seed, git_rate=git_fault_rate)
    closed: set[int] = set()

    def done() -> bool:
        if close_when_processed:
            close_processed(emu, issues, closed, dispatch=dispatch)
        return settled(emu, ledger, issues, dispatch=dispatch)

    try:
        chaos_until = min(deadline, started + chaos_seconds)
        while time.monotonic() < chaos_until:
            if wait_until(done, min(chaos_until, time.monotonic() + rng.uniform(*kill_every)), 0.2):
                break
            if time.monotonic() >= chaos_until or fleet.kills >= max_kills:
                continue  # the faults go on until the work is done or the chaos time is up
            victim = rng.choice(fleet.replicas)
            victim.kill()
            log(f"  t={time.monotonic() - started:5.1f}s kill -9 {victim.name} (kill {fleet.kills})")
            time.sleep(rng.uniform(0.1, 0.5))
            victim.start()
    finally:
        emu.clear_faults()
        faults = sum(rule.fired for rule in rules if not rule.include_git)
        git_faults = sum(rule.fired for rule in rules if rule.include_git)
        requests = sum(1 for r in emu.request_log if not r.path.startswith("/git/"))
    log(f"  t={time.monotonic() - started:5.1f}s faults off ({faults} fired); waiting for the rest")
    is_settled = wait_until(done, deadline, 0.25)
    codes = fleet.stop(timeout=stop_timeout)
    seconds = time.monotonic() - started
    records = ledger_records(ledger, len(issues))
    events = Counter(str(e.get("event")) for e in fleet.log_events())
    invariants = check_invariants(emu, ledger, issues, dispatch=dispatch, target=target,
                                  status=status_json(fleet.replicas[0].env, len(issues) * 2, fleet.cwd))
    reruns = events["re-run requested"]
    if reruns:
        invariants.violations.append(f"{reruns} re-runs that nobody asked for (no label was removed)")
    return ChaosResult(
        issues=len(issues), replicas=len(fleet), kills=fleet.kills, faults=faults,
        api_requests=requests, seconds=seconds, settled=is_settled, exit_codes=codes,
        invariants=invariants, attempts=sum(r.attempt for r in records), reruns=reruns,
        git_faults=git_faults, retried_in_place=events["retrying in place"],
        found_after_failure=events["found it on GitHub after a failed try; not sending again"],
        leases_lost=events["lease lost"],
    )


# -- a slow agent, for drain, takeover and throughput -----------------------------------

SLOW_AGENT = '''\
"""A stand-in for an LLM agent: wait, then write one file, and record when it ran."""
import json, os, pathlib, sys, time

instruction_file, seconds, record_dir = sys.argv[1], float(sys.argv[2]), pathlib.Path(sys.argv[3])
barrier = int(sys.argv[4]) if len(sys.argv) > 4 else 0
task = os.environ.get("AGENT_RUNNER_TASK_ID", "task")
run = {"task_id": task, "pid": os.getpid(), "cwd": os.getcwd(), "start": time.time(), "end": None,
       "barrier_met": None}
record_dir.mkdir(parents=True, exist_ok=True)
record = record_dir / f"{task}.{os.getpid()}.json"
record.write_text(json.dumps(run))
if barrier:  # wait (bounded) until `barrier` runs have started: only parallel jobs get past it
    limit = time.time() + 30
    while len(list(record_dir.glob("*.json"))) < barrier and time.time() < limit:
        time.sleep(0.05)
    run["barrier_met"] = len(list(record_dir.glob("*.json"))) >= barrier
time.sleep(seconds)
text = pathlib.Path(instruction_file).read_text()
pathlib.Path("agent-output.txt").write_text(f"{task}: {len(text)} characters of instruction\\n")
run["end"] = time.time()
record.write_text(json.dumps(run))
print(f"Wrote agent-output.txt for {task} after {seconds:g} s.")
'''


@dataclass(frozen=True)
class AgentRun:
    task_id: str
    pid: int
    cwd: str
    start: float
    end: float | None
    barrier_met: bool | None = None


def slow_agent_template(directory: Path, *, seconds: float, record_dir: Path, barrier: int = 0) -> str:
    """Write the slow agent script into ``directory``; return the COMMAND_TEMPLATE that runs it.

    With ``barrier`` > 0 each run first waits (up to 30 s) until that many runs
    have started, so a test can prove jobs ran in parallel without timing them.
    """
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "slow_agent.py"
    script.write_text(SLOW_AGENT)
    return " ".join([shlex.quote(sys.executable), shlex.quote(str(script)), "{instruction_file}",
                     f"{seconds:g}", shlex.quote(str(record_dir)), str(barrier)])


def agent_runs(record_dir: Path) -> list[AgentRun]:
    """What the slow agent recorded, one entry per run (``end`` is None while it sleeps)."""
    runs = []
    for path in sorted(record_dir.glob("*.json")) if record_dir.exists() else []:
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            continue  # being rewritten right now
        runs.append(AgentRun(data["task_id"], int(data["pid"]), data["cwd"], float(data["start"]),
                             None if data["end"] is None else float(data["end"]), data.get("barrier_met")))
    return runs


def max_overlap(runs: Sequence[AgentRun]) -> int:
    """The most runs that were in progress at the same instant."""
    edges = sorted([(r.start, 1) for r in runs] + [(r.end, -1) for r in runs if r.end is not None],
                   key=lambda edge: (edge[0], edge[1]))
    best = current = 0
    for _, step in edges:
        current += step
        best = max(best, current)
    return best
