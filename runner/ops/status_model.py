"""Build the status document (what runs, what waits and why, what ended, the write budget, the fleet).

One document serves three readers: the status page renders it as HTML, `GET
/api/status` sends it as JSON, and `agent-runner status --json` prints it. Its
schema is in docs/operations.md (``SCHEMA``). Every input is memory (the live
registry, the pacers) or the ledger (Temporal: its visibility API); building
it never makes a GitHub request. Text that came from an issue or a failure is
passed through the redactor, and no prompt or instruction is ever included.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from runner.forge.pacer import BudgetView
from runner.ledger.base import TaskKey, TaskRecord
from runner.ledger.status import format_duration, records_to_json
from runner.ops.live_tasks import DoneTask, LiveTask, LiveTasks

SCHEMA = "agent-runner/status@1"
#: Ledger rows read per view: running and waiting tasks are among the most recently updated.
ROWS_READ = 500
REASON_WIDTH = 200


@dataclass(frozen=True)
class StatusSources:
    """Where the document comes from: memory and the ledger, never GitHub."""

    dispatch_repo: str
    web_url: str  # https://github.com (GHE: its host), for the issues' links
    executor: str  # ledger | temporal
    store: str  # sqlite | postgresql | temporal
    workers: int
    records: Callable[[int], Sequence[TaskRecord]]
    recent_limit: int = 50
    owner: str | None = None  # this replica's lease owner; None in `agent-runner status`
    usage_of: Callable[[TaskKey], Mapping[str, Any]] | None = None
    rounds_of: Callable[[TaskKey], Sequence[Mapping[str, Any]]] | None = None
    live: LiveTasks | None = None
    budgets: Callable[[], Sequence[tuple[str, BudgetView]]] | None = None
    pacing: bool = True
    workflow_id: Callable[[int], str] | None = None
    redact: Callable[[str], str] = field(default=lambda text: text)
    #: Each dependency's breaker as (name, up, seconds open), from memory (runner.breakers via Metrics).
    dependencies: Callable[[], Sequence[tuple[str, bool, float]]] | None = None


def web_url(api_url: str) -> str:
    """GitHub's web address for an API address: api.github.com → github.com, GHE's /api/v3 → the host."""
    base = api_url.rstrip("/")
    if base.startswith(("https://api.github.com", "http://api.github.com")):
        return base.replace("api.github.com", "github.com", 1)
    return base.removesuffix("/api/v3")


def build_status(src: StatusSources, now: datetime) -> dict[str, Any]:
    """The whole document at ``now`` (UTC)."""
    records = list(src.records(ROWS_READ))
    live = src.live.running() if src.live is not None else []
    done = src.live.done() if src.live is not None else []
    budgets = _budgets(src, now)
    write_wait = max((b["next_write_in_s"] for b in budgets["buckets"]), default=0.0)
    running = _running(src, records, live, now)
    return {
        "schema": SCHEMA,
        "generated_at": now.isoformat(),
        "runner": {"dispatch_repo": src.dispatch_repo, "owner": src.owner, "executor": src.executor,
                   "store": src.store, "workers": src.workers, "busy": len(live)},
        "running": running,
        "queued": _queued(src, records, {r["issue"] for r in running}, len(live), write_wait, now),
        "recent": _recent(src, records, done),
        "write_budget": budgets,
        "dependencies": [{"name": name, "up": up, "open_seconds": round(seconds, 1)}
                         for name, up, seconds in (src.dependencies() if src.dependencies else [])],
        "fleet": _fleet(src, records, now),
        "tasks": [{**row, "last_error": src.redact(row["last_error"]) if row["last_error"] else None}
                  for row in records_to_json(records)],
    }


# -- sections ----------------------------------------------------------------------


def _running(src: StatusSources, records: Sequence[TaskRecord], live: Sequence[LiveTask],
             now: datetime) -> list[dict[str, Any]]:
    here = {t.issue: t for t in live}
    rows: list[dict[str, Any]] = []
    for r in records:
        if r.status != "running" or (r.lease_expires_at is not None and r.lease_expires_at <= now
                                     and r.key.issue_number not in here):
            continue
        rows.append(_running_row(src, r.key.issue_number, here.pop(r.key.issue_number, None), r, now))
    for task in here.values():  # Temporal keeps no lease rows; a claim not yet listed
        rows.append(_running_row(src, task.issue, task, None, now))
    return sorted(rows, key=lambda row: row["started_at"] or "")


def _running_row(src: StatusSources, issue: int, task: LiveTask | None, record: TaskRecord | None,
                 now: datetime) -> dict[str, Any]:
    started = task.started_at if task is not None else (record.updated_at if record is not None else None)
    return {
        **_issue(src, issue),
        "task_id": _text(src, (task.task_id if task else None) or (record.task_id if record else None)),
        "target": task.target if task else None,
        "generator": task.generator if task else None,
        "model": _text(src, task.model) if task else None,
        "stage": task.stage if task else None,
        "step": task.step if task else ("starting" if record and record.lease_owner == src.owner
                                        else "running on another replica"),
        "message": _text(src, task.message) if task else None,
        "turn": task.turn if task else None,
        "tokens": task.tokens if task else None,
        "cost_usd": task.cost_usd if task else None,
        "started_at": started.isoformat() if started else None,
        "elapsed_s": round((now - started).total_seconds(), 1) if started else None,
        "attempt": record.attempt if record else None,
        "owner": (record.lease_owner if record else None) or (src.owner if task else None),
        "lease_expires_at": _iso(record.lease_expires_at) if record else None,
        "here": task is not None,
        "workflow_id": src.workflow_id(issue) if src.workflow_id else None,
    }


def _queued(src: StatusSources, records: Sequence[TaskRecord], running: set[int], busy: int,
            write_wait: float, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        if r.key.issue_number in running or r.status in ("succeeded", "dead"):
            continue
        waiting, why = _why_waiting(src, r, busy, write_wait, now)
        rows.append({
            **_issue(src, r.key.issue_number),
            "task_id": _text(src, r.task_id),
            "status": r.status,
            "waiting_for": waiting,
            "why": why,
            "since": r.updated_at.isoformat(),
            "next_attempt_at": _iso(r.next_attempt_at),
            "attempt": r.attempt,
            "failures": r.failures,
            "last_error": _one_line(src, r.last_error),
        })
    return sorted(rows, key=lambda row: row["next_attempt_at"] or row["since"])


def _why_waiting(src: StatusSources, r: TaskRecord, busy: int, write_wait: float,
                 now: datetime) -> tuple[str, str]:
    """What the task waits for (``service``, ``retry time``, ``lease``, ``write budget``, ``worker``, ``claim``)."""
    if r.waiting_on and r.status != "running":
        since = f" since {r.waiting_since:%H:%M:%S} UTC" if r.waiting_since else ""
        when = ""
        if r.next_attempt_at is not None and r.next_attempt_at > now:
            when = f"; it looks again in {format_duration((r.next_attempt_at - now).total_seconds())}"
        return "service", (f"{_one_line(src, r.waiting_on)} is unavailable{since}{when}. Waiting spends no "
                           "attempt and posts nothing.")
    if r.status == "running" and r.lease_expires_at is not None:
        ago = format_duration((now - r.lease_expires_at).total_seconds())
        return "lease", (f"The lease of {r.lease_owner or 'a worker'} expired {ago} ago; "
                         "the next claim takes the task over.")
    if r.next_attempt_at is not None and r.next_attempt_at > now:
        wait = format_duration((r.next_attempt_at - now).total_seconds())
        after = f" after: {_one_line(src, r.last_error)}" if r.last_error else ""
        return "retry time", f"Retries at {r.next_attempt_at:%H:%M:%S} UTC (in {wait}){after}"
    if write_wait > 0:
        return "write budget", (f"Due; GitHub's write budget has the next slot in {write_wait:.1f}s, "
                                "so new work waits for it.")
    if src.live is not None and busy >= src.workers:
        return "worker", f"Due; all {src.workers} worker(s) of this replica are busy."
    return "claim", "Due now; the next claim takes it (within about a second)."


def _recent(src: StatusSources, records: Sequence[TaskRecord], done: Sequence[DoneTask]) -> list[dict[str, Any]]:
    mine: dict[int, DoneTask] = {}
    for d in done:  # oldest first: the last one wins
        mine[d.issue] = d
    rows = []
    for r in sorted((r for r in records if r.status in ("succeeded", "dead")),
                    key=lambda r: r.updated_at, reverse=True)[: src.recent_limit]:
        tokens, cost, rounds = _spent(src, r.key)
        here = mine.get(r.key.issue_number)
        duration = here.seconds if here is not None else round(sum(r.stage_seconds.values()), 1)
        rows.append({
            **_issue(src, r.key.issue_number),
            "task_id": _text(src, r.task_id),
            "outcome": "succeeded" if r.status == "succeeded" else "failed",
            "reason": _one_line(src, r.last_error),
            "pr_url": _safe_url(r.pr_url),
            "rounds": rounds,
            "tokens": tokens if tokens else (here.tokens if here and here.tokens else None),
            "cost_usd": cost if cost is not None else (here.cost_usd if here else None),
            "duration_s": duration,
            "finished_at": r.updated_at.isoformat(),
            "attempt": r.attempt,
            "owner": r.lease_owner,
        })
    return rows


def _spent(src: StatusSources, key: TaskKey) -> tuple[int, float | None, int]:
    """Tokens, cost and rounds over the first run and every feedback round, from the ledger."""
    first = src.usage_of(key) if src.usage_of is not None else {}
    rounds = list(src.rounds_of(key)) if src.rounds_of is not None else []
    parts = [first, *rounds]
    tokens = sum(int(p.get("input_tokens") or 0) + int(p.get("output_tokens") or 0) for p in parts)
    costs = [float(p["cost_usd"]) for p in parts if p.get("cost_usd") is not None]
    ran = sum(1 for p in rounds if p.get("outcome") != "refused")
    return tokens, (sum(costs) if costs else None), ran


def _budgets(src: StatusSources, now: datetime) -> dict[str, Any]:
    if src.budgets is None:
        return {"source": "unavailable", "pacing": src.pacing, "buckets": [],
                "note": "The write budget lives in the running process's memory; see its status page."}
    buckets = []
    for credential, view in src.budgets():
        limits = view.limits
        buckets.append({
            "credential": credential,
            "writes_last_minute": view.writes_last_minute,
            "writes_last_hour": view.writes_last_hour,
            "all_replicas_writes_last_hour": view.shared_writes_last_hour,
            "reserved": view.reserved,
            "per_minute": limits.per_minute if limits else None,
            "per_hour": limits.per_hour if limits else None,
            "min_interval_s": limits.min_interval_s if limits else None,
            "next_write_in_s": round(view.next_write_in_s, 2),
            "next_free_slot_at": (now + timedelta(seconds=view.next_write_in_s)).isoformat(),
            "retry_after_s": round(view.hold_s, 1) if view.hold_s else None,
            "rate_limit": None if view.rate_limit is None else {
                "remaining": view.rate_remaining, "limit": view.rate_limit,
                "reset_at": datetime.fromtimestamp(view.rate_reset_epoch or 0, now.tzinfo).isoformat()},
        })
    return {"source": "this process", "pacing": src.pacing, "buckets": buckets}


def _fleet(src: StatusSources, records: Sequence[TaskRecord], now: datetime) -> dict[str, Any]:
    replicas: dict[str, dict[str, Any]] = {}
    for r in records:
        if not r.lease_owner:
            continue
        replica = replicas.setdefault(r.lease_owner, {"owner": r.lease_owner, "this": r.lease_owner == src.owner,
                                                      "leases": [], "tasks": 0, "last_seen": None})
        replica["tasks"] += 1
        seen = r.updated_at.isoformat()
        replica["last_seen"] = max(replica["last_seen"] or seen, seen)
        if r.status == "running":
            replica["leases"].append({"issue": r.key.issue_number, "expires_at": _iso(r.lease_expires_at),
                                      "expired": r.lease_expires_at is not None and r.lease_expires_at <= now})
    workflows = []
    if src.workflow_id is not None:
        workflows = [{"issue": r.key.issue_number, "workflow_id": src.workflow_id(r.key.issue_number),
                      "status": r.status} for r in records]
    return {"shared": src.store == "postgresql",
            "replicas": sorted(replicas.values(), key=lambda rep: (not rep["this"], rep["owner"])),
            "workflows": workflows}


# -- helpers -----------------------------------------------------------------------


def _issue(src: StatusSources, number: int) -> dict[str, Any]:
    known = src.live.title(number) if src.live is not None else None
    url = _safe_url(known[1]) if known else None
    return {"issue": number, "issue_url": url or f"{src.web_url}/{src.dispatch_repo}/issues/{number}",
            "title": _text(src, known[0]) if known else None}


def _text(src: StatusSources, value: str | None) -> str | None:
    return None if value is None else src.redact(value)


def _one_line(src: StatusSources, text: str | None) -> str | None:
    if not text:
        return None
    line = " ".join(src.redact(text).split())
    return line if len(line) <= REASON_WIDTH else line[: REASON_WIDTH - 1] + "…"


def _safe_url(url: str | None) -> str | None:
    """Only http(s) links; anything else (``javascript:``) is dropped."""
    return url if url and url.startswith(("https://", "http://")) else None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
