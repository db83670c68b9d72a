"""Render ledger records for `agent-runner status`, as a table or as JSON, purely.

The table answers what an operator asks first: what is each task doing,
for how long, who holds it, is it backing off, and why did it last fail.
No clock is read here; the caller passes ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from runner.ledger.base import TaskRecord

COLUMNS = ("TASK", "ISSUE", "STATUS", "ATTEMPT", "OWNER", "AGE", "PR", "LAST ERROR")
ERROR_WIDTH = 60
TASK_WIDTH = 32
EMPTY = "No tasks in the ledger yet."


def format_status_table(records: Sequence[TaskRecord], now: datetime) -> str:
    """A plain-text table, one task per line, newest activity first as given."""
    if not records:
        return EMPTY
    rows = [COLUMNS, *(_row(record, now) for record in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def records_to_json(records: Iterable[TaskRecord]) -> list[dict[str, Any]]:
    """Every field of every record, JSON-ready (times as ISO-8601 UTC, errors untruncated)."""
    return [
        {
            "dispatch_repo": r.key.dispatch_repo,
            "issue_number": r.key.issue_number,
            "issue": str(r.key),
            "task_id": r.task_id,
            "body_hash": r.body_hash,
            "status": r.status,
            "attempt": r.attempt,
            "failures": r.failures,
            "lease_owner": r.lease_owner,
            "lease_expires_at": _iso(r.lease_expires_at),
            "next_attempt_at": _iso(r.next_attempt_at),
            "pr_url": r.pr_url,
            "last_error": r.last_error,
            "created_at": _iso(r.created_at),
            "updated_at": _iso(r.updated_at),
            "stage_seconds": dict(r.stage_seconds),
            "transcript": r.transcript,
        }
        for r in records
    ]


def status_text(record: TaskRecord, now: datetime) -> str:
    """The status with the one time that matters for it: lease left, or retry due."""
    if record.status == "running" and record.lease_expires_at is not None:
        left = (record.lease_expires_at - now).total_seconds()
        if left > 0:
            return f"running (lease {format_duration(left)} left)"
        return f"running (lease expired {format_duration(-left)} ago)"
    if record.status == "failed" and record.next_attempt_at is not None:
        wait = (record.next_attempt_at - now).total_seconds()
        return f"failed (retry in {format_duration(wait)})" if wait > 0 else "failed (retry due)"
    return record.status


def format_duration(seconds: float) -> str:
    """Coarse and short: 0s, 45s, 12m, 3h, 2d."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _row(record: TaskRecord, now: datetime) -> tuple[str, ...]:
    attempt = str(record.attempt)
    if record.failures:
        attempt += f" ({record.failures} failed)"
    return (
        _truncate(record.task_id or "-", TASK_WIDTH),
        str(record.key),
        status_text(record, now),
        attempt,
        record.lease_owner or "-",
        format_duration((now - record.created_at).total_seconds()),
        record.pr_url or "-",
        _truncate(" ".join((record.last_error or "-").split()), ERROR_WIDTH),
    )


def _truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
