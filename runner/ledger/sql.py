"""Write the ledger's schema and state machine in SQL once, for both backends.

Both SQLite (>= 3.35) and PostgreSQL understand the same statements here:
``UPDATE ... RETURNING``, ``INSERT ... ON CONFLICT DO NOTHING``, row values,
``CASE`` and ``||``. The dialects differ only in what :class:`Dialect` holds:
column types, the row lock added to the claim's sub-select, and the
placeholder style. Parameters are written ``:name``; PostgreSQL's backend
rewrites them to ``%(name)s`` with :func:`to_pyformat`.

The claim is one statement. The sub-select picks the runnable task that has
been due the longest; on PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets
concurrent claimers pass over a row another transaction is taking, and the
re-check of the locked row (READ COMMITTED's EvalPlanQual) drops a row that
stopped being runnable. On SQLite the whole statement runs under
``BEGIN IMMEDIATE``, the single writer lock, so there is nothing to skip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TABLE = "tasks"
DELIVERIES = "deliveries"
FEEDBACK = "feedback"


@dataclass(frozen=True)
class Dialect:
    """What differs between the two databases, and nothing else."""

    name: str
    timestamp: str  # column type of every timestamp
    json: str  # column type of the per-stage durations
    claim_lock: str  # appended to the claim's sub-select


SQLITE = Dialect(name="sqlite", timestamp="TEXT", json="TEXT", claim_lock="")
POSTGRES = Dialect(
    name="postgresql", timestamp="TIMESTAMPTZ", json="JSONB", claim_lock="FOR UPDATE SKIP LOCKED"
)


@dataclass(frozen=True)
class Migration:
    """One schema step; ``{timestamp}`` and ``{json}`` are filled per dialect."""

    version: int
    description: str
    statements: tuple[str, ...]

    def render(self, dialect: Dialect) -> tuple[str, ...]:
        return tuple(s.format(timestamp=dialect.timestamp, json=dialect.json) for s in self.statements)


# Append only: a released migration never changes, a fix is a new version.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        description="tasks table with leases, fencing attempt and failure count",
        statements=(
            f"""CREATE TABLE {TABLE} (
                dispatch_repo    TEXT NOT NULL,
                issue_number     INTEGER NOT NULL,
                task_id          TEXT,
                body_hash        TEXT,
                status           TEXT NOT NULL CHECK (status IN
                                   ('queued', 'running', 'succeeded', 'failed', 'dead')),
                attempt          INTEGER NOT NULL DEFAULT 0,
                failures         INTEGER NOT NULL DEFAULT 0,
                lease_owner      TEXT,
                lease_expires_at {{timestamp}},
                next_attempt_at  {{timestamp}},
                pr_url           TEXT,
                last_error       TEXT,
                created_at       {{timestamp}} NOT NULL,
                updated_at       {{timestamp}} NOT NULL,
                stage_seconds    {{json}} NOT NULL DEFAULT '{{{{}}}}',
                transcript       TEXT,
                PRIMARY KEY (dispatch_repo, issue_number)
            )""",
            f"CREATE INDEX {TABLE}_by_status ON {TABLE} (status, next_attempt_at)",
            f"CREATE INDEX {TABLE}_by_updated ON {TABLE} (updated_at)",
        ),
    ),
    Migration(
        version=2,
        description="webhook deliveries, one row per X-GitHub-Delivery, so a redelivery is a no-op",
        statements=(
            f"""CREATE TABLE {DELIVERIES} (
                delivery_id      TEXT PRIMARY KEY,
                event            TEXT NOT NULL,
                action           TEXT,
                repo             TEXT,
                issue_number     INTEGER,
                outcome          TEXT NOT NULL,
                payload          {{json}},
                received_at      {{timestamp}} NOT NULL
            )""",
            f"CREATE INDEX {DELIVERIES}_by_outcome ON {DELIVERIES} (outcome, received_at)",
        ),
    ),
    Migration(
        version=3,
        description="feedback items, one row per handled comment or review, and each task's usage",
        statements=(
            f"""CREATE TABLE {FEEDBACK} (
                dispatch_repo    TEXT NOT NULL,
                issue_number     INTEGER NOT NULL,
                item_key         TEXT NOT NULL,
                status           TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed', 'refused')),
                item             {{json}} NOT NULL,
                round            INTEGER,
                outcome          {{json}},
                received_at      {{timestamp}} NOT NULL,
                handled_at       {{timestamp}},
                PRIMARY KEY (dispatch_repo, issue_number, item_key)
            )""",
            f"CREATE INDEX {FEEDBACK}_pending ON {FEEDBACK} (status, dispatch_repo, issue_number)",
            f"ALTER TABLE {TABLE} ADD COLUMN run_usage {{json}}",
        ),
    ),
    Migration(
        version=4,
        description="outages apart from failures (waits, waiting_on, waiting_since), the last real error "
                    "of a failed attempt (task_error), and the branch a task owns for good",
        statements=(
            f"ALTER TABLE {TABLE} ADD COLUMN waits INTEGER NOT NULL DEFAULT 0",
            f"ALTER TABLE {TABLE} ADD COLUMN waiting_on TEXT",
            f"ALTER TABLE {TABLE} ADD COLUMN waiting_since {{timestamp}}",
            f"ALTER TABLE {TABLE} ADD COLUMN task_error TEXT",
            f"ALTER TABLE {TABLE} ADD COLUMN branch TEXT",
            f"CREATE UNIQUE INDEX {TABLE}_by_branch ON {TABLE} (branch)",
        ),
    ),
)

CREATE_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at  {timestamp} NOT NULL
)"""
CURRENT_VERSION = "SELECT COALESCE(MAX(version), 0) FROM schema_version"
RECORD_VERSION = (
    "INSERT INTO schema_version (version, description, applied_at) VALUES (:version, :description, :now)"
)

# -- columns, in the order the row mappers in store.py read them -------------

JOB_COLUMNS = ("dispatch_repo, issue_number, attempt, lease_owner, lease_expires_at, task_id, failures, "
               "waits, waiting_on, waiting_since, task_error, branch")
RECORD_COLUMNS = (
    "dispatch_repo, issue_number, task_id, body_hash, status, attempt, lease_owner, "
    "lease_expires_at, next_attempt_at, pr_url, last_error, created_at, updated_at, "
    "stage_seconds, transcript, failures, waits, waiting_on, waiting_since, task_error, branch"
)

DELIVERY_COLUMNS = "delivery_id, event, action, repo, issue_number, outcome, payload, received_at"

# -- the state machine --------------------------------------------------------

_KEY = "dispatch_repo = :repo AND issue_number = :issue"
# Who may still touch a job: the current attempt of its owner, while running.
_FENCE = f"{_KEY} AND status = 'running' AND attempt = :attempt AND lease_owner = :owner"
_EXPIRED = "(status = 'running' AND lease_expires_at <= :now)"
_DUE = "(status IN ('queued', 'failed') AND (next_attempt_at IS NULL OR next_attempt_at <= :now))"
_HAS_PENDING = (f"EXISTS (SELECT 1 FROM {FEEDBACK} f WHERE f.dispatch_repo = {TABLE}.dispatch_repo "
                f"AND f.issue_number = {TABLE}.issue_number AND f.status = 'pending')")
_DUE_AT = "CASE WHEN status = 'running' THEN lease_expires_at ELSE COALESCE(next_attempt_at, created_at) END"
# The right-hand sides read the row as it was before the update.
_TAKE = """status = 'running',
    attempt = attempt + 1,
    failures = failures + CASE WHEN status = 'running' THEN 1 ELSE 0 END,
    last_error = CASE WHEN status = 'running'
        THEN 'The lease of ' || COALESCE(lease_owner, 'a worker') || ' expired before it finished.'
        ELSE last_error END,
    lease_owner = :owner,
    lease_expires_at = :expires,
    next_attempt_at = NULL,
    updated_at = :now"""


@dataclass(frozen=True)
class Statements:
    """Every statement a backend runs, rendered for one dialect."""

    enqueue: str
    requeue: str
    claim: str
    claim_in: str
    claim_key: str
    heartbeat: str
    complete: str
    fail: str
    wait: str
    own_branch: str
    release: str
    get: str
    list: str
    record_delivery: str
    deliveries: str
    add_feedback: str
    add_own_comment: str
    wake_for_feedback: str
    pending_feedback: str
    handled_feedback: str
    finish_feedback: str
    record_usage: str
    usage_of: str
    pull_tasks: str
    workload: str


def statements(dialect: Dialect) -> Statements:
    """Render the shared state machine for one dialect."""
    return Statements(
        enqueue=f"""INSERT INTO {TABLE}
            (dispatch_repo, issue_number, task_id, body_hash, status, created_at, updated_at)
            VALUES (:repo, :issue, :task_id, :body_hash, 'queued', :now, :now)
            ON CONFLICT (dispatch_repo, issue_number) DO NOTHING
            RETURNING issue_number""",
        requeue=f"""UPDATE {TABLE} SET status = 'queued', failures = 0, last_error = NULL,
                waits = 0, waiting_on = NULL, waiting_since = NULL, task_error = NULL,
                next_attempt_at = :now, lease_expires_at = NULL,
                task_id = COALESCE(:task_id, task_id), body_hash = COALESCE(:body_hash, body_hash),
                updated_at = :now
            WHERE {_KEY} AND status IN ('succeeded', 'failed', 'dead')
                AND attempt = COALESCE(:attempt, attempt)
            RETURNING issue_number""",
        claim=f"""UPDATE {TABLE} SET {_TAKE}
            WHERE (dispatch_repo, issue_number) = (
                SELECT dispatch_repo, issue_number FROM {TABLE}
                WHERE {_DUE} OR {_EXPIRED}
                ORDER BY {_DUE_AT}, created_at, dispatch_repo, issue_number
                LIMIT 1 {dialect.claim_lock})
            RETURNING {JOB_COLUMNS}""",
        # The same, within one dispatch repository: a fleet claims round the repositories, so one
        # installation out of write budget does not take every worker (runner/executors/threads.py).
        claim_in=f"""UPDATE {TABLE} SET {_TAKE}
            WHERE (dispatch_repo, issue_number) = (
                SELECT dispatch_repo, issue_number FROM {TABLE}
                WHERE dispatch_repo = :repo AND ({_DUE} OR {_EXPIRED})
                ORDER BY {_DUE_AT}, created_at, dispatch_repo, issue_number
                LIMIT 1 {dialect.claim_lock})
            RETURNING {JOB_COLUMNS}""",
        claim_key=f"""UPDATE {TABLE} SET {_TAKE}
            WHERE {_KEY} AND (status IN ('queued', 'failed') OR {_EXPIRED})
            RETURNING {JOB_COLUMNS}""",
        heartbeat=f"""UPDATE {TABLE} SET lease_expires_at = :expires, updated_at = :now
            WHERE {_FENCE} RETURNING attempt""",
        # A feedback item that arrived while the job ran keeps the task queued: the next
        # claim runs its round, so two rounds of one task never overlap.
        complete=f"""UPDATE {TABLE} SET status = CASE WHEN {_HAS_PENDING} THEN 'queued' ELSE 'succeeded' END,
                lease_expires_at = NULL,
                next_attempt_at = NULL, last_error = NULL, pr_url = COALESCE(:pr_url, pr_url),
                waiting_on = NULL, waiting_since = NULL,
                stage_seconds = :stages, transcript = COALESCE(:transcript, transcript),
                updated_at = :now
            WHERE {_FENCE} RETURNING attempt""",
        fail=f"""UPDATE {TABLE} SET status = :status, failures = failures + 1,
                last_error = :error, task_error = :error, next_attempt_at = :retry_at, lease_expires_at = NULL,
                waiting_on = NULL, waiting_since = NULL,
                stage_seconds = COALESCE(:stages, stage_seconds),
                transcript = COALESCE(:transcript, transcript), updated_at = :now
            WHERE {_FENCE} RETURNING attempt""",
        # An outage: the task waits for the service, counting a wait, never a failure.
        wait=f"""UPDATE {TABLE} SET status = 'failed', waits = waits + 1,
                last_error = :error, waiting_on = :service, waiting_since = COALESCE(waiting_since, :since),
                next_attempt_at = :retry_at, lease_expires_at = NULL,
                stage_seconds = COALESCE(:stages, stage_seconds), updated_at = :now
            WHERE {_FENCE} RETURNING attempt""",
        # The branch is the task's for good: set once, never to one another task holds (unique index too).
        own_branch=f"""UPDATE {TABLE} SET branch = :branch, updated_at = :now
            WHERE {_FENCE} AND (branch IS NULL OR branch = :branch)
                AND NOT EXISTS (SELECT 1 FROM {TABLE} o WHERE o.branch = :branch
                                AND NOT (o.dispatch_repo = :repo AND o.issue_number = :issue))
            RETURNING branch""",
        release=f"""UPDATE {TABLE} SET status = 'queued', lease_expires_at = NULL,
                next_attempt_at = NULL, updated_at = :now
            WHERE {_FENCE} RETURNING attempt""",
        get=f"SELECT {RECORD_COLUMNS} FROM {TABLE} WHERE {_KEY}",
        list=f"""SELECT {RECORD_COLUMNS} FROM {TABLE}
            ORDER BY updated_at DESC, dispatch_repo, issue_number LIMIT :limit""",
        record_delivery=f"""INSERT INTO {DELIVERIES}
            (delivery_id, event, action, repo, issue_number, outcome, payload, received_at)
            VALUES (:delivery_id, :event, :action, :repo, :issue, :outcome, :payload, :now)
            ON CONFLICT (delivery_id) DO NOTHING
            RETURNING delivery_id""",
        deliveries=f"""SELECT {DELIVERY_COLUMNS} FROM {DELIVERIES}
            WHERE (CAST(:outcome AS TEXT) IS NULL OR outcome = :outcome)
            ORDER BY received_at, delivery_id LIMIT :limit""",
        add_feedback=f"""INSERT INTO {FEEDBACK}
            (dispatch_repo, issue_number, item_key, status, item, received_at)
            SELECT :repo, :issue, :item_key, 'pending', :item, :now
            WHERE EXISTS (SELECT 1 FROM {TABLE} WHERE {_KEY})
            ON CONFLICT (dispatch_repo, issue_number, item_key) DO NOTHING
            RETURNING item_key""",
        # A comment the runner posted: known and handled from the start, so no poll or delivery queues it.
        add_own_comment=f"""INSERT INTO {FEEDBACK}
            (dispatch_repo, issue_number, item_key, status, item, outcome, received_at, handled_at)
            SELECT :repo, :issue, :item_key, 'done', :item, :outcome, :now, :now
            WHERE EXISTS (SELECT 1 FROM {TABLE} WHERE {_KEY})
            ON CONFLICT (dispatch_repo, issue_number, item_key) DO NOTHING
            RETURNING item_key""",
        wake_for_feedback=f"""UPDATE {TABLE} SET status = 'queued', failures = 0, last_error = NULL,
                next_attempt_at = :now, updated_at = :now
            WHERE status = 'succeeded' AND {_HAS_PENDING}
                AND (CAST(:repo AS TEXT) IS NULL OR {_KEY})
            RETURNING dispatch_repo, issue_number""",
        pending_feedback=f"""SELECT item_key, item FROM {FEEDBACK}
            WHERE {_KEY} AND status = 'pending' ORDER BY received_at, item_key""",
        handled_feedback=f"""SELECT item_key, status, round, outcome FROM {FEEDBACK}
            WHERE {_KEY} AND status <> 'pending' ORDER BY round, handled_at, item_key""",
        finish_feedback=f"""UPDATE {FEEDBACK} SET status = :status, round = :round, outcome = :outcome,
                handled_at = :now
            WHERE {_KEY} AND item_key = :item_key AND status = 'pending'
                AND EXISTS (SELECT 1 FROM {TABLE} WHERE {_FENCE})
            RETURNING item_key""",
        record_usage=f"""UPDATE {TABLE} SET run_usage = :usage, updated_at = :now
            WHERE {_FENCE} RETURNING attempt""",
        usage_of=f"SELECT run_usage FROM {TABLE} WHERE {_KEY}",
        pull_tasks=f"""SELECT dispatch_repo, issue_number, pr_url FROM {TABLE}
            WHERE pr_url IS NOT NULL ORDER BY dispatch_repo, issue_number""",
        # Work that will need writes: queued tasks and retries due later, running ones, pending rounds.
        workload=f"""SELECT
            (SELECT COUNT(*) FROM {TABLE} WHERE status = 'queued'
                OR (status = 'failed' AND next_attempt_at IS NOT NULL)),
            (SELECT COUNT(*) FROM {TABLE} WHERE status = 'running'),
            (SELECT COUNT(*) FROM {FEEDBACK} WHERE status = 'pending')""",
    )


_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def to_pyformat(sql: str) -> str:
    """Rewrite ``:name`` placeholders as psycopg's ``%(name)s``."""
    if "%" in sql:
        raise ValueError("a literal % would need escaping for psycopg; keep it out of shared SQL")
    return _NAMED.sub(r"%(\1)s", sql)
