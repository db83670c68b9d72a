"""A CI round's intake: the failing checks of a task PR's head commit, through the gates, into a Round.

    ci item (sha) ─► still the PR's head? every check completed, one failed?   (else: nothing, quietly)
                 ─► a person's push? every failing check red on the base too?   (stop / say so once)
                 ─► read summaries, annotations, logs ─► fingerprint ─► cap, budget, no progress (stop)
                 ─► Round (the change and publish are the feedback rounds' own)

A stop edits the result comment once (why, and what is still red) and labels the
dispatch issue ``agent-ci-failed``; after it no CI round runs on that PR again, so
re-runs, flaky checks and a check that fails on every push never loop. The rules
are pure (:mod:`runner.core.ci`); this module reads GitHub and the branch.
"""

from __future__ import annotations

from typing import Any

from runner.core import ci, feedback
from runner.core.feedback import FeedbackItem, RoundRecord
from runner.errors import HumanCommitsOnBranch, NotFound, RunnerError
from runner.forge.base import Check, CommitChecks
from runner.pipeline.job import Deps, JobRun
from runner.pipeline.values import Round, RoundPushed, Rounds
from runner.steps.git import CommittedFiles
from runner.steps.repo_config import load_repo_config

#: Whole logs kept for an agent CLI's scratch space, per failing job.
FULL_LOG_BYTES = 2_000_000
#: Failing checks read in detail per round (annotations, logs).
MAX_FAILING = 10
LOGS_ENV = "AGENT_RUNNER_CI_LOGS_DIR"


#: What the gates decide: a Round to run, a record to publish instead (a stop, or "red on the base"),
#: or why nothing happens (the item is handled quietly).
Gate = Round | tuple[Round, RoundPushed] | str


def intake(d: Deps, run: JobRun, rounds: Rounds, item: FeedbackItem) -> Gate:
    """The gates of a CI round (the caller, :mod:`runner.pipeline.rounds`, publishes or finishes the item)."""
    s, log = d.settings, run.log.bind(feedback=item.key, sha=(item.sha or "")[:12])
    pull = rounds.pull

    def quiet(why: str) -> str:
        return why
    if not s.fix_failed_checks:
        return quiet("FIX_FAILED_CHECKS is off")
    if pull is None or pull.state != "open" or pull.number != item.number or not item.sha:
        return quiet("the task's PR is not open, or the item is not about it")
    if ci.stopped(rounds.history) is not None:
        return quiet("CI rounds stopped on this PR earlier")
    fresh = d.forge.get_pull(item.repo, pull.number)
    mirror = d.workspace.sync(item.repo, rounds.plan.clone_url)
    spent = feedback.spent_from(rounds.first_usage, rounds.history)
    number = spent.rounds + 1
    if fresh.state == "open" and fresh.head_sha != item.sha and d.workspace.commit_with_line(
            mirror, rounds.names.branch, rounds.plan.base, feedback.trailer(item.key)) is not None:
        # This round pushed, then its worker died before reporting: the change finds the commit.
        failed = ci.failing(d.forge.commit_checks(item.repo, item.sha))
        print_ = ci.fingerprint(read_failures(d, item.repo, failed, s.ci_log_max_bytes * 8))
        return Round(rounds=rounds, item=item, text="", number=number, spent=spent, fingerprint=print_)
    if fresh.state != "open" or fresh.head_sha != item.sha:
        return quiet("the PR has a newer head commit (or is closed)")
    base_sha = mirror.branch_sha(rounds.plan.base)
    if base_sha is not None and not _enabled_by_repo(mirror.path, base_sha):
        return quiet("the repository's .agent-runner.yml says fix_failed_checks: false")
    checks = d.forge.commit_checks(item.repo, item.sha)
    if ci.verdict(checks) != "red":
        return quiet("not every check has completed, or none failed")
    failed = ci.failing(checks)
    try:
        d.workspace.refuse_human_commits(mirror, rounds.names.branch, rounds.plan.base)
    except HumanCommitsOnBranch as exc:
        return _stop(d, run, rounds, item, number, f"{d.redact(str(exc))}", failed)
    base = _base_checks(d, item.repo, rounds.plan.base)
    on_base = ci.red_on_base(failed, base)
    fixable = tuple(c for c in failed if c.name not in on_base)
    if not fixable:
        if ci.said_red_on_base(rounds.history, on_base):
            return quiet("the same checks fail on the base branch; the PR was told")
        text = ci.base_red_text(on_base, rounds.plan.base)
        d.forge.create_comment(item.repo, pull.number, text)
        record = _record(item, number, "base-red", summary=text, fingerprint=",".join(on_base))
        log.info("no CI round: the failing checks fail on the base too", checks=list(on_base))
        return _round(rounds, item, number, spent), RoundPushed(record)
    details = read_failures(d, item.repo, fixable, s.ci_log_max_bytes * 8)
    print_ = ci.fingerprint(details)
    why = ci.stop_reason(rounds.history, print_, spent, ci.CiLimits(
        max_rounds=s.max_ci_rounds, max_tokens=s.max_tokens_per_task, max_cost_usd=s.max_cost_usd_per_task))
    if why is not None:
        return _stop(d, run, rounds, item, number, why, failed)
    text = ci.round_text(details, sha=item.sha, max_log_bytes=s.ci_log_max_bytes,
                         logs_dir=f"${LOGS_ENV}" if any(f.log for f in details) else None)
    log.info("CI round", round=number, checks=[c.name for c in fixable], fingerprint=print_)
    return Round(rounds=rounds, item=item, text=text, number=number, spent=spent, fingerprint=print_)


def read_failures(d: Deps, repo: str, failed: tuple[Check, ...], log_bytes: int) -> list[ci.FailedCheck]:
    """Each failing check's annotations and (Actions jobs) log; a log GitHub no longer has is left out."""
    found = []
    for check in failed[:MAX_FAILING]:
        annotations: tuple[Any, ...] = ()
        log = ""
        if check.source == "check_run" and check.id:
            annotations = tuple(d.forge.check_annotations(repo, check.id))
        if check.actions_job is not None:
            try:
                log = d.forge.job_log(repo, check.actions_job, log_bytes)
            except NotFound:
                log = ""
        found.append(ci.FailedCheck(check, annotations, log))
    return found


def full_logs(d: Deps, item: FeedbackItem) -> tuple[tuple[str, str], ...]:
    """The failing jobs' whole logs (each its last 2 MB), for an agent CLI to read outside the repository."""
    if item.kind != "ci" or not item.sha:
        return ()
    try:
        failed = ci.failing(d.forge.commit_checks(item.repo, item.sha))
        return tuple(ci.logs_of(read_failures(d, item.repo, failed, FULL_LOG_BYTES)).items())
    except RunnerError as exc:  # the round still has the excerpts in its text
        d.log.warning("could not read the full CI logs", error=str(exc))
        return ()


def _base_checks(d: Deps, repo: str, base: str) -> CommitChecks:
    try:
        return d.forge.commit_checks(repo, base)
    except NotFound:
        return CommitChecks(sha="")


def _enabled_by_repo(git_dir: Any, base_sha: str) -> bool:
    """``fix_failed_checks`` in the base commit's ``.agent-runner.yml`` (on unless it says false)."""
    try:
        config = load_repo_config(CommittedFiles(git_dir, base_sha))
    except RunnerError:
        return True  # a broken config is reported by the task's own runs; it does not turn CI rounds off
    return config.fix_failed_checks


def _stop(d: Deps, run: JobRun, rounds: Rounds, item: FeedbackItem, number: int, why: str,
          failed: tuple[Check, ...]) -> tuple[Round, RoundPushed]:
    """Give up once: label the issue, and the record that says why (with what is still red) on the result comment."""
    assert run.task is not None
    text = ci.give_up_text(why, failed)
    run.log.warning("CI rounds stopped", reason=why)
    d.forge.add_labels(run.task.dispatch_repo, run.task.issue_number, [d.settings.ci_failed_label])
    spent = feedback.spent_from(rounds.first_usage, rounds.history)
    record = _record(item, number, "stopped", summary=text)
    return _round(rounds, item, number, spent), RoundPushed(record, notes=(text,))


def _round(rounds: Rounds, item: FeedbackItem, number: int, spent: feedback.Spent) -> Round:
    return Round(rounds=rounds, item=item, text="", number=number, spent=spent)


def _record(item: FeedbackItem, number: int, kind: str, *, summary: str, fingerprint: str = "") -> RoundRecord:
    return RoundRecord(number=number, item_key=item.key, kind="ci", author="", outcome="refused",
                       html_url=item.html_url, summary=summary, ci=kind, fingerprint=fingerprint)
