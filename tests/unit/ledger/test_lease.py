"""The lease keeper: a heartbeat racing the job's own completion is not a lost lease."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from runner.errors import LeaseLost
from runner.ledger import TaskKey, open_ledger
from runner.ledger.lease import LeaseKeeper


def utcnow() -> datetime:
    return datetime.now(UTC)


def test_completing_while_the_heartbeat_beats_never_logs_lease_lost(tmp_path: Path) -> None:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    rng = random.Random(7)
    log = structlog.get_logger()
    try:
        with capture_logs() as logs:
            for number in range(1, 13):
                key = TaskKey("octocat/dispatch", number)
                ledger.enqueue(key, task_id=None, body_hash=None, now=utcnow())
                job = ledger.claim_key(key, "me", now=utcnow(), lease_seconds=0.6)  # a beat every 0.2 s
                assert job is not None
                with LeaseKeeper(ledger, job, lease_seconds=0.6, clock=utcnow, log=log) as lease:
                    time.sleep(rng.uniform(0.19, 0.21))  # finish right when the heartbeat is due
                    with lease.finishing() as current:
                        ledger.complete(current, now=utcnow(), pr_url=None, stage_seconds={})
                record = ledger.get(key)
                assert record is not None and record.status == "succeeded"
    finally:
        ledger.close()
    assert [e for e in logs if e["event"] == "lease lost"] == []


def test_renew_before_a_creation_notices_a_takeover(tmp_path: Path) -> None:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        key = TaskKey("octocat/dispatch", 1)
        ledger.enqueue(key, task_id=None, body_hash=None, now=utcnow())
        job = ledger.claim_key(key, "slow", now=utcnow(), lease_seconds=60)
        assert job is not None
        with LeaseKeeper(ledger, job, lease_seconds=60, clock=utcnow, log=structlog.get_logger()) as lease:
            ledger.release(job, now=utcnow())  # as a shutdown would, or
            assert ledger.claim_key(key, "other", now=utcnow(), lease_seconds=60) is not None  # a takeover
            with pytest.raises(LeaseLost):
                lease.renew()
            with pytest.raises(LeaseLost):
                lease.check()
    finally:
        ledger.close()
