"""The subcommands that read the ledger or GitHub and print for people: status, retry, doctor, smoke,
check-config, config-docs, generators. Heavy imports stay inside each, as in the parser's module."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError

if TYPE_CHECKING:
    from runner.config import Settings


def list_generators() -> int:
    from runner.generators import registry

    found = sorted(registry().items())
    width = max((len(name) for name, _ in found), default=0) + 1
    for name, (_factory, origin) in found:
        print(f"{name:{width}}{origin}")
    return 0


def config_docs(root: Path | None, *, check: bool) -> int:
    from runner.ops import config_reference

    root = root or Path(__file__).resolve().parents[2]
    if check:
        stale = config_reference.stale_files(root)
        for path in stale:
            print(f"agent-runner: {path} is out of date; run `agent-runner config-docs`", file=sys.stderr)
        return 1 if stale else 0
    for path in config_reference.write_files(root):
        print(f"agent-runner: wrote {path}")
    return 0


def check_config(settings: Settings, *, as_json: bool) -> int:
    from runner.ops.preflight import offline_checks

    checks = offline_checks(settings)
    for check in checks:
        print(check.line(), file=sys.stderr if as_json else sys.stdout)
    if as_json:
        print(json.dumps(settings.model_dump(mode="json"), indent=2, sort_keys=True, default=str))
    failed = [c for c in checks if not c.ok]
    if failed:
        print(f"agent-runner: configuration error: {len(failed)} check(s) failed", file=sys.stderr)
        return 2
    print("agent-runner: configuration is valid", file=sys.stderr)
    return 0


def doctor(settings: Settings, *, fix: bool) -> int:
    from runner.forge.connect import forge_from_settings, utc_now
    from runner.ops.doctor import Doctor, run_checks
    from runner.ops.preflight import offline_checks

    checks = offline_checks(settings)
    for check in checks:
        print(check.line(), flush=True)
    forge = forge_from_settings(settings)
    for check in run_checks(Doctor(settings, forge, utc_now, fix=fix)):
        checks.append(check)
        print(check.line(), flush=True)
    failed = [c.name for c in checks if not c.ok]
    print(f"agent-runner: {len(failed)} check(s) failed: {', '.join(failed)}" if failed
          else "agent-runner: all checks passed", file=sys.stderr)
    return 1 if failed else 0


def smoke_test(settings: Settings, args: argparse.Namespace) -> int:
    from runner.core.task import normalize_repo
    from runner.forge.connect import forge_from_settings
    from runner.ops.smoke import SmokeTest

    exact = [p for p in settings.allowed_target_repos if not any(c in p for c in "*?[")]
    target = args.target or (exact[0] if exact else None)
    if target is None:
        raise ConfigError("smoke-test needs a target repository: pass --target OWNER/REPO, or name one "
                          "exactly in ALLOWED_TARGET_REPOS.")
    target = normalize_repo(target)
    forge = forge_from_settings(settings)
    app = None
    run_runner = None
    if not args.wait:
        from runner.app import build_app

        app = build_app(settings)
        runner = app.executor

        def run_runner(number: int) -> None:
            runner.process_issue(number)

    try:
        report = SmokeTest(settings, forge, target, run_runner, timeout_s=args.timeout, keep=args.keep).run()
    finally:
        if app is not None:
            app.close()
    verdict = "PASS" if report.passed else "FAIL"
    failed = [step for step, ok, _ in report.steps if not ok]
    print(f"smoke test: {verdict}" + (f" (failed: {', '.join(failed)})" if failed else
                                       f": {len(report.steps)} steps, one PR, one comment, re-run idempotent"))
    return 0 if report.passed else 1


def ledger_command(settings: Settings, args: argparse.Namespace) -> int:
    from dataclasses import replace

    from runner.forge.connect import utc_now
    from runner.ledger import open_existing_ledger, open_ledger
    from runner.ledger.status import format_status_table

    if settings.executor == "temporal":
        return temporal_command(settings, args)
    if args.command == "retry":
        ledger = open_ledger(settings.ledger_location)
        try:
            return retry(settings, ledger, args.issue)
        finally:
            ledger.close()
    existing = open_existing_ledger(settings.ledger_location)  # status creates nothing
    try:
        if args.json:
            from runner.app import status_sources
            from runner.ops.status_model import ROWS_READ, build_status

            def read(_limit: int) -> list[Any]:
                return list(existing.list(limit=max(args.limit, ROWS_READ))) if existing is not None else []

            sources = status_sources(settings, records=read, ledger=existing)
            print(json.dumps(build_status(replace(sources, recent_limit=args.limit), utc_now()), indent=2))
            return 0
        records = existing.list(limit=args.limit) if existing is not None else []
    finally:
        if existing is not None:
            existing.close()
    print(format_status_table(records, utc_now()))
    return 0


def temporal_command(settings: Settings, args: argparse.Namespace) -> int:
    """`status` through Temporal's visibility API, `retry` as a new workflow run."""
    from runner.executors.temporal.executor import TemporalExecutor
    from runner.forge.connect import forge_from_settings, utc_now
    from runner.ledger.status import format_status_table
    from runner.log import get_logger
    from runner.metrics import Metrics

    forge = forge_from_settings(settings)
    runner = TemporalExecutor(settings=settings, forge=forge, activities=None, clock=utc_now, owner="cli",
                            log=get_logger(), metrics=Metrics())
    if args.command == "retry":
        print(f"agent-runner: {runner.retry(args.issue)}")
        return 0
    if args.json:
        from dataclasses import replace

        from runner.app import status_sources
        from runner.ops.status_model import build_status

        sources = status_sources(settings, records=lambda _limit: runner.records(limit=args.limit))
        print(json.dumps(build_status(replace(sources, recent_limit=args.limit), utc_now()), indent=2))
        return 0
    print(format_status_table(runner.records(limit=args.limit), utc_now()))
    return 0


def retry(settings: Settings, ledger: Any, number: int) -> int:
    """Re-queue a finished task and clear its result label, as removing the label by hand would."""
    from runner.forge.connect import forge_from_settings, utc_now
    from runner.ledger.base import TaskKey

    key = TaskKey(settings.require_dispatch_repo(), number)
    record = ledger.get(key)
    if record is not None and record.status in {"queued", "running", "failed"}:
        state = {"queued": "is already queued", "running": f"is running now (attempt {record.attempt})",
                 "failed": "is waiting to be retried"}[record.status]
        print(f"agent-runner: issue #{number} {state}; nothing to do")
        return 0
    forge = forge_from_settings(settings)
    for label in (settings.failed_label, settings.processed_label):
        forge.remove_label(key.dispatch_repo, number, label)
    if record is None:
        print(f"agent-runner: issue #{number} is not in the ledger yet; it runs at the next poll "
              f"if it is labeled `{settings.trigger_label}`")
        return 0
    ledger.requeue(key, now=utc_now())
    print(f"agent-runner: issue #{number} re-queued (was {record.status})")
    return 0
