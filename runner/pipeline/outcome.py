"""Say how a job stands and how it ended: the result comment, the labels, the ledger record.

Progress on the result comment is paced and best effort; a final update is
not. A failure is reported on the issue and recorded with the one retry
policy (:func:`runner.core.policy.retry_decision`), whatever the executor.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from runner.core import policy
from runner.core.progress import WriteBudget, progress_decision
from runner.core.task import parse_task, task_id_of, task_names
from runner.errors import (
    LeaseLost,
    OutageTooLong,
    PolicyRefused,
    RunnerError,
    ShuttingDown,
    TaskSpecError,
)
from runner.forge.base import Issue, PullRequest
from runner.generators.base import Changes
from runner.pipeline.job import Deps, JobRun
from runner.pipeline.values import Outcome
from runner.steps.report import progress_due


def warnings(d: Deps) -> tuple[str, ...]:
    """What every result comment says while the sandbox is off."""
    return (d.sandbox.warning,) if d.sandbox.warning else ()


def show(d: Deps, run: JobRun, *, final: bool = False, force: bool = False, **changes: Any) -> None:
    """Update the result comment; progress is paced and best effort, final updates are not."""
    run.view = replace(run.view, **changes)
    if not final:
        run.lease.check()
    key = run.job.key
    if final:
        d.reporter.post(key.dispatch_repo, key.issue_number, run.view, run.lease.renew)
        return
    now = time.monotonic()
    since = None if run.last_shown is None else now - run.last_shown
    if not force:
        if not progress_due(now - run.started, since, after_s=d.settings.progress_after_seconds,
                            every_s=d.settings.progress_every_seconds):
            return
        if not spare_write(d, run):
            run.last_shown = now  # asked again after PROGRESS_EVERY_SECONDS, not at every step
            return
    if d.reporter.progress(key.dispatch_repo, key.issue_number, run.view, run.lease.renew):
        run.last_shown = now


def spare_write(d: Deps, run: JobRun) -> bool:
    """Whether a progress edit may spend a write now (runner/core/progress.py), logged and counted."""
    repo, s = run.job.key.dispatch_repo, d.settings
    try:
        workload = d.workload.workload() if d.workload is not None else None
        used = d.forge.writes_used(repo)
    except RunnerError as exc:  # the ledger is away: other work may be waiting, so spend nothing
        run.log.debug("progress decision: skip, workload unknown", error=str(exc))
        return False
    decision = progress_decision(WriteBudget(used_last_hour=used, per_hour=s.github_writes_per_hour,
                                             reserve=s.github_write_reserve, workload=workload))
    run.log.debug("progress decision", decision=decision.explanation, post=decision.post,
                  reason=decision.reason, needed=decision.needed, per_hour=decision.per_hour,
                  queued=workload.queued if workload else None, running=workload.running if workload else None,
                  pending_rounds=workload.pending_rounds if workload else None)
    if d.metrics is not None:
        d.metrics.progress_decisions.labels("posted" if decision.post else "skipped", decision.reason).inc()
    return decision.post


def progress(d: Deps, run: JobRun, message: str) -> None:
    run.log.info("progress", message=message)
    run.on_progress(message, None)
    show(d, run, progress=message)


def complete(d: Deps, run: JobRun, *, pr_url: str | None, transcript: Path | None = None) -> None:
    run.lease.finish(lambda job: d.ledger.complete(job, now=d.clock(), pr_url=pr_url, stage_seconds=run.stages,
                                                   transcript=str(transcript) if transcript else None))


def succeed(d: Deps, run: JobRun, pull: PullRequest, changes: Changes, notes: tuple[str, ...] = ()) -> Outcome:
    assert run.task is not None
    run.lease.check()
    hook_notes = post_task(d, run, "succeeded", pr_url=pull.html_url)
    show(d, run, final=True, status="succeeded", pr_url=pull.html_url, pr_number=pull.number,
         summary=changes.summary, files=changes.files, stages_done=(), progress=None,
         summary_by=changes.summary_by, no_change=changes.no_change, generator=changes.generator,
         fell_back=changes.fell_back,
         notes=warnings(d) + notes + waited_note(d, run) + tuple(d.hooks.failures) + hook_notes)
    d.reporter.mark_processed(run.task.dispatch_repo, run.task.issue_number,
                              carried=run.issue.labels if run.issue is not None else None)
    d.hooks.call("on_finished", task=run.task, pull=pull)
    if d.inbox is not None and changes.usage.total_tokens:
        u = changes.usage
        d.inbox.record_usage(run.lease.job, {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
                                             "cost_usd": u.cost_usd}, now=d.clock())
    complete(d, run, pr_url=pull.html_url, transcript=changes.transcript)
    return Outcome("succeeded", pr_url=pull.html_url, stage_seconds=dict(run.stages))


def fail(d: Deps, run: JobRun, error: RunnerError) -> Outcome:
    """Report, label and record a failure with the one retry policy.

    An outage (``error.outage``) makes the task wait for the service: nothing is
    labelled, no attempt is spent, until TRANSIENT_RETRY_HOURS have passed; a
    transient task failure is retried with backoff; the rest fail now."""
    key, job, s = run.job.key, run.job, d.settings
    waited = waited_s(d, run) if error.outage else 0.0
    limit_s = s.transient_retry_hours * 3600
    failures = job.failures + 1
    decision = policy.retry_decision(error, failures, s.max_attempts, waited_s=waited, wait_limit_s=limit_s)
    if decision == "dead" and error.outage:  # waited long enough: the true reason, naming the service
        error = OutageTooLong(policy.outage_sentence(error, waited, s.transient_retry_hours), service=error.service)
    message = d.redact(str(error))
    run.log.warning("task failed" if decision != "wait" else "task waits for a dependency", error=message,
                    error_type=type(error).__name__, decision=decision, failures=failures,
                    service=error.service if decision == "wait" else None, waited_s=round(waited, 1))
    if decision == "wait":
        return wait(d, run, error, message)
    retry_at: datetime | None = None
    try:
        if run.lease.lost:
            raise LeaseLost("lease lost while failing")
        if decision == "retry":
            retry_at = _retry_at(d, error, failures)
            show(d, run, force=True, status="retrying", error=message)
        else:
            status = "refused" if isinstance(error, PolicyRefused) else "failed"
            hook_notes = post_task(d, run, status, error=message)
            show(d, run, final=True, status=status, error=message, hint=error.hint, progress=None,
                 notes=run.view.notes + hook_notes)
            d.reporter.mark_failed(key.dispatch_repo, key.issue_number)
            if run.task is not None:
                d.hooks.call("on_failed", task=run.task, error=error)
    except LeaseLost:
        return Outcome("lost", error=message)
    except RunnerError as report_error:
        # Could not even report: the task failed, but GitHub does not say so yet. When GitHub is
        # down, wait for it (no attempt spent; the report happens after); otherwise keep the task
        # alive so the report happens later (`dead` without `agent-failed` would be a lie about GitHub).
        run.log.warning("could not report failure", error=d.redact(str(report_error)))
        if report_error.outage:
            return wait(d, run, report_error, d.redact(str(report_error)))
        if failures < s.max_attempts or policy.retry_in_place(report_error):
            decision = "retry"
            retry_at = _retry_at(d, report_error, failures)
    try:
        run.lease.finish(lambda current: d.ledger.fail(current, now=d.clock(), error=message, retry_at=retry_at,
                                                       stage_seconds=run.stages))
    except LeaseLost:
        return Outcome("lost", error=message)
    return Outcome("retrying" if decision == "retry" else "failed", error=message, stage_seconds=dict(run.stages))


def wait(d: Deps, run: JobRun, error: RunnerError, message: str) -> Outcome:
    """A dependency is down: hold the task for a later attempt, spending no attempt and labelling nothing.

    The result comment says what it waits for, when GitHub itself is up."""
    assert error.service is not None
    s = d.settings
    retry_at = d.clock() + timedelta(seconds=policy.retry_delay(
        error, run.job.waits + 1, base=s.retry_base_seconds, cap=s.retry_max_seconds))
    if error.service != "GitHub" and not run.lease.lost:
        try:
            show(d, run, force=True, status="retrying", error=f"Waiting for {error.service}: {message}")
        except RunnerError as exc:  # best effort: the wait is what matters
            run.log.info("could not show the wait", error=d.redact(str(exc)))
    try:
        service = error.service
        run.lease.finish(lambda current: d.ledger.wait(current, now=d.clock(), error=message, service=service,
                                                       retry_at=retry_at, stage_seconds=run.stages))
    except LeaseLost:
        return Outcome("lost", error=message)
    return Outcome("waiting", error=message, stage_seconds=dict(run.stages))


def waited_note(d: Deps, run: JobRun) -> tuple[str, ...]:
    """What the result comment says about an outage the task waited out: for what, and how long."""
    if run.job.waiting_on is None:
        return ()
    return (f"The task waited {policy.describe_wait(waited_s(d, run))} for {run.job.waiting_on}, which was "
            f"unavailable ({run.job.waits} wait{'s' if run.job.waits != 1 else ''}; no attempt was spent).",)


def waited_s(d: Deps, run: JobRun) -> float:
    """How long the task has been waiting for a dependency (0 when this is its first wait)."""
    since = run.job.waiting_since
    return 0.0 if since is None else max(0.0, (d.clock() - since).total_seconds())


def release(d: Deps, run: JobRun, stop: ShuttingDown) -> Outcome:
    """Shutdown cut a wait on GitHub short: hand the task back as it is, counting no failure."""
    run.log.info("stopping: shutting down", error=str(stop))
    try:
        with run.lease.finishing() as job:
            d.ledger.release(job, now=d.clock())
    except RunnerError as exc:  # already released by the drain, or the ledger is away: its lease expires
        run.log.info("lease not released by the job", error=str(exc))
    return Outcome("released", error=str(stop), stage_seconds=dict(run.stages))


def record_as_found(d: Deps, run: JobRun, issue: Issue, why: str) -> Outcome:
    """Record what GitHub already says about an issue we may not work on, so `status` agrees.

    A takeover of a task whose worker died after labeling finds `processed`
    (then the PR is looked up by its head branch and recorded) or
    `agent-failed` (then the task is `dead`, pointing at the result comment).
    """
    labels = d.labels
    if labels.failed in issue.labels and labels.processed not in issue.labels:
        error = (f"The issue is labeled `{labels.failed}`: an earlier attempt failed, and the "
                 "result comment on the issue says why.")
        run.lease.finish(lambda job: d.ledger.fail(job, now=d.clock(), error=error, retry_at=None,
                                                   stage_seconds=run.stages))
        return Outcome("skipped", error=why)
    pull = _find_task_pull(d, issue) if labels.processed in issue.labels else None
    complete(d, run, pr_url=pull.html_url if pull else None)
    return Outcome("skipped", pr_url=pull.html_url if pull else None, error=why)


def post_task(d: Deps, run: JobRun, status: str, *, pr_url: str | None = None,
              error: str | None = None) -> tuple[str, ...]:
    """Tell the post_task hook the final outcome; its failure becomes a note on the result comment."""
    if run.task is None or not d.hook_commands.has("post_task"):
        return ()
    with run.stage("post_task"):
        note = d.hook_commands.post_task(run.task, attempt=run.job.attempt, status=status, pr_url=pr_url,
                                         error=error)
    return (note,) if note else ()


def _retry_at(d: Deps, error: RunnerError, failures: int) -> datetime:
    s = d.settings
    return d.clock() + timedelta(seconds=policy.retry_delay(error, failures, base=s.retry_base_seconds,
                                                            cap=s.retry_max_seconds))


def _find_task_pull(d: Deps, issue: Issue) -> PullRequest | None:
    """The PR of a processed issue, by head branch: the primary one, else the disambiguated one."""
    try:
        task = parse_task(issue.body, dispatch_repo=issue.repo, issue_number=issue.number, labels=issue.labels)
    except TaskSpecError:
        return None
    primary = task_names(task)
    pull = d.forge.find_pull(task.target_repo, primary.branch)
    if pull is not None and task_id_of(pull.body) in (None, task.task_id):
        return pull
    return d.forge.find_pull(task.target_repo, task_names(task, disambiguate=True).branch)
