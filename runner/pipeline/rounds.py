"""Iterate on a processed task's PR: the second entry into the same line, one commit per round.

    Rounds ─► for each pending item:
                intake (writer? limits? budgets?) ─► Round
                change (generate, guard, validate, scan, push once by trailer) ─► RoundPushed
                publish (the PR body's rounds record, the one result comment)
           ─► done ─► Outcome

Feedback rounds (``/agent`` comments, reviews) share the change step
(:mod:`runner.pipeline.change`) and the outcome bookkeeping with the first run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from runner.core import feedback, policy
from runner.core.feedback import FeedbackItem, RoundRecord
from runner.core.render import commit_message
from runner.errors import CrashLoop, LeaseLost, RunnerError, ShuttingDown
from runner.forge.base import Issue, PullRequest
from runner.pipeline import change, ci_round, outcome
from runner.pipeline.job import Deps, JobRun, check_trust, names_for, parse, plan_of, resume
from runner.pipeline.values import Outcome, Round, RoundPushed, Rounds
from runner.steps.publish import push_change


def run_all(d: Deps, run: JobRun, rounds: Rounds) -> Outcome:
    """Each pending item through a round's three stages, in order, each its own commit."""
    for item_key, raw in rounds.pending:
        step = intake(d, run, rounds, item_key, raw)
        if isinstance(step, Round):
            step = publish(d, run, step, make_change(d, run, step))
        rounds = step
    return done(d, run, rounds)


def plan(d: Deps, run: JobRun, issue: Issue, pending: Sequence[tuple[str, dict[str, Any]]]) -> Rounds:
    """Where the rounds go: the approved task's branch and PR, and the rounds it has had so far."""
    assert d.inbox is not None
    key = run.job.key
    task = parse(run, issue)
    check_trust(d, task, issue)
    where = plan_of(d, task, issue)
    mirror = d.workspace.sync(task.target_repo, where.clone_url)
    names, pull = names_for(d, run, task, mirror)
    run.log = run.log.bind(branch=names.branch)
    history = [RoundRecord.from_json(handled) for _, _, _, handled in d.inbox.handled_feedback(key)
               if handled.get("number")]
    if not history and pull is not None:  # an executor without a ledger (Temporal): the PR body records them
        history = feedback.recorded(pull.body)
    run.view = replace(run.view, task_id=task.task_id, branch=names.branch)
    return Rounds(plan=where, names=names, pull=pull, history=tuple(history),
                  first_usage=d.inbox.usage_of(key), pending=tuple(pending))


def intake(d: Deps, run: JobRun, rounds: Rounds, item_key: str, raw: dict[str, Any]) -> Round | Rounds:
    """A round's intake: a handled item, a non-writer's or a refused round ends here; else the Round to run."""
    assert run.task is not None
    s, task = d.settings, run.task
    if any(r.item_key == item_key for r in rounds.history):  # a redelivery, or a retry after the report
        run.log.info("feedback already handled", feedback=item_key)
        finish_item(d, run, item_key, "done", None, {})
        return rounds
    item = FeedbackItem.from_json(raw)
    if item.kind == "ci":  # failing checks: their own gates (runner.pipeline.ci_round)
        gate = ci_round.intake(d, run, rounds, item)
        if isinstance(gate, str):
            run.log.info("no CI round", feedback=item_key, reason=gate)
            finish_item(d, run, item_key, "refused", None, {})
            return replace(rounds, ran=True)
        return publish(d, run, *gate) if isinstance(gate, tuple) else gate
    log = run.log.bind(feedback=item.key, author=item.author)
    text = feedback.trigger_text(item, command=s.feedback_command,
                                 bot_login=d.forge.authenticated_login(task.dispatch_repo))
    permission = d.forge.permission(item.repo, item.author) if text is not None else None
    if text is None or permission not in policy.TRUSTED_PERMISSIONS:
        log.warning("feedback ignored: its author may not write to the repository it was posted in",
                    permission=permission, repo=item.repo)
        finish_item(d, run, item_key, "refused", None, {})
        return replace(rounds, ran=True)
    spent = feedback.spent_from(rounds.first_usage, rounds.history)
    round_ = Round(rounds=rounds, item=item, text=text, number=spent.rounds + 1, spent=spent)
    why = feedback.refusal(item, text, spent, feedback.Limits(
        max_rounds=s.max_feedback_rounds, max_tokens=s.max_tokens_per_task, max_cost_usd=s.max_cost_usd_per_task))
    if why is None and (rounds.pull is None or rounds.pull.state != "open"):
        why = ("The task's pull request is merged or closed, so there is nothing to iterate on. "
               "Open a new dispatch issue for further changes.")
    if why is not None:
        log.info("feedback round refused", reason=why)
        return publish(d, run, round_, RoundPushed(_record(round_, "refused", summary=why), notes=(why,)))
    if item.reactable:
        d.forge.add_reaction(item, "eyes")
    log.info("feedback round", round=round_.number)
    return round_


def make_change(d: Deps, run: JobRun, round_: Round) -> RoundPushed:
    """A round's change: its commit pushed, or the failure the round reports; transient ones retry."""
    task = resume(run, round_.rounds.plan, round_.rounds.names)
    try:
        return RoundPushed(_commit(d, run, task, round_))
    except (LeaseLost, CrashLoop, ShuttingDown):
        raise
    except RunnerError as exc:
        if policy.retry_decision(exc, run.job.failures + 1, d.settings.max_attempts) in ("retry", "wait"):
            raise  # retried with backoff, or waits for the service; the item stays pending
        message = d.redact(str(exc))
        run.log.warning("feedback round failed", feedback=round_.item.key, error=message,
                        error_type=type(exc).__name__)
        return RoundPushed(_record(round_, "failed", summary=message),
                           notes=(f"Round {round_.number} failed: {message}",))


def publish(d: Deps, run: JobRun, round_: Round, pushed: RoundPushed) -> Rounds:
    """A round's publish: the PR body's rounds record and the one result comment say what it did."""
    rounds, record = round_.rounds, pushed.record
    resume(run, rounds.plan, rounds.names)
    history = (*rounds.history, record)
    pull = _report(d, run, rounds.pull, list(history), notes=pushed.notes)
    status = record.outcome if record.outcome in ("failed", "refused") else "done"
    finish_item(d, run, round_.item.key, status, record.number, record.to_json())
    return replace(rounds, pull=pull, history=history, ran=True)


def done(d: Deps, run: JobRun, rounds: Rounds) -> Outcome:
    """Record the rounds' end; a retry that finds its round recorded shows it on the comment too."""
    pull = rounds.pull
    if not rounds.ran and rounds.history:
        pull = _report(d, run, pull, list(rounds.history))
    outcome.complete(d, run, pr_url=pull.html_url if pull else None)
    return Outcome("succeeded", pr_url=pull.html_url if pull else None, stage_seconds=dict(run.stages))


def finish_item(d: Deps, run: JobRun, item_key: str, status: str, round_no: int | None,
                record: dict[str, Any]) -> None:
    if d.inbox is not None:
        d.inbox.finish_feedback(run.lease.job, item_key, status=status, round_no=round_no, outcome=record,
                                now=d.clock())


def _commit(d: Deps, run: JobRun, task: Any, round_: Round) -> RoundRecord:
    """Generate, guard, validate and push the round's commit, once even across a crash."""
    plan_, names, item, number = round_.rounds.plan, round_.rounds.names, round_.item, round_.number
    workspace = d.workspace
    mirror = workspace.sync(task.target_repo, plan_.clone_url)
    record = _record(round_, "pushed")
    pushed_before = workspace.commit_with_line(mirror, names.branch, plan_.base, feedback.trailer(item.key))
    if pushed_before is not None:  # a worker pushed this round, then died before recording it
        return replace(record, sha=pushed_before, summary="Pushed before the runner restarted.")
    job_tag = f"{run.job.key.issue_number}-a{run.job.attempt}-r{number}"
    with workspace.checkout(mirror, branch=names.branch, base_branch=plan_.base, job=job_tag) as tree:
        # A review's inline comments travel with it: each with its file, line and hunk.
        thread = list(d.forge.review_thread(item)) if item.kind == "review" else []
        round_ctx = feedback.round_context(number, [item, *thread],
                                           [round_.text, *(feedback.visible_text(c.body).strip() for c in thread)],
                                           task.instruction, workspace.diff(tree), logs=ci_round.full_logs(d, item))
        made = change.make(d, run, task, tree, names, round_ctx=round_ctx, spent=round_.spent)
        run.lease.check()
        changes = made.changes
        message = feedback.commit_message(commit_message(task, changes.summary), number, item)
        with run.stage(f"secret_scan_round_{number}"):
            change.scan_for_secrets(d, tree, names)
        with run.stage(f"push_round_{number}"):
            run.lease.renew()
            head, committed = push_change(workspace, tree, clone_url=plan_.clone_url, message=message,
                                          log=run.log, policy=d.retry)
    usage = changes.usage
    return replace(record, outcome="pushed" if committed else "unchanged", sha=head if committed else None,
                   summary=changes.summary, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                   cost_usd=usage.cost_usd)


def _record(round_: Round, result: feedback.RoundOutcome, summary: str = "") -> RoundRecord:
    item = round_.item
    return RoundRecord(number=round_.number, item_key=item.key, kind=item.kind, author=item.author,
                       outcome=result, html_url=item.html_url, summary=summary,
                       ci="round" if item.kind == "ci" else "", fingerprint=round_.fingerprint)


def _report(d: Deps, run: JobRun, pull: PullRequest | None, records: list[RoundRecord],
            notes: tuple[str, ...] = ()) -> PullRequest | None:
    """The same PR's body gets the rounds section; the same result comment is edited."""
    assert run.task is not None
    run.lease.check()
    if pull is not None and pull.state == "open":
        # The rounds record is encoded in the body: redact its text before, not after.
        clean = [replace(r, summary=d.redact(r.summary)) for r in records]
        body = d.redact(feedback.with_rounds(pull.body, clean))
        if body.strip() != pull.body.strip():
            pull = d.forge.update_pull(run.task.target_repo, pull.number, body=body)
    outcome.show(d, run, final=True, status="succeeded", pr_url=pull.html_url if pull else None,
                 pr_number=pull.number if pull else None, summary=None, stages_done=(), progress=None,
                 rounds=tuple(feedback.round_line(r) for r in records), notes=notes)
    return pull
