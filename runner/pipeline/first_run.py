"""Take an approved task from its plan to one pull request: the first run's change and publish stages.

    Plan ─► change (clone, generate, validate, re-check trust, scan, push) ─► Pushed
         ─► publish (PR upsert, result comment, label) ─► Outcome

The change stage ends with the commit on GitHub, so publish needs nothing of
the machine that generated it and may run on any worker.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from runner.core import policy
from runner.core.render import PullView, commit_message, pull_title, render_pull_body
from runner.errors import NoChangeMade
from runner.generators.base import Changes
from runner.pipeline import change, outcome
from runner.pipeline.job import Deps, JobRun, check_trust, names_for, resume
from runner.pipeline.values import Outcome, Plan, Pushed, Validated
from runner.steps import retry
from runner.steps.publish import push_change, upsert_pull
from runner.steps.workspace import Worktree

#: The summary when an earlier attempt's push is what this attempt publishes.
ALREADY_PUSHED = ("An earlier attempt of this task pushed its change to this branch and could not finish; "
                  "this attempt found nothing further to change, so it publishes that change.")


def make_change(d: Deps, run: JobRun, plan: Plan) -> Pushed | Outcome:
    """Make the change on the task branch and push it: clone, generate, validate, re-check, scan, push."""
    task = resume(run, plan)
    with run.stage("clone"):
        mirror = retry.call(lambda: d.workspace.sync(task.target_repo, plan.clone_url),
                            what=f"fetch {task.target_repo}", log=run.log, policy=d.retry)
    names, existing = names_for(d, run, task, mirror)
    run.log = run.log.bind(branch=names.branch)
    if policy.pull_action(existing) == "merged" and existing is not None:
        return outcome.succeed(d, run, existing, Changes(summary="The pull request was already merged."))
    outcome.show(d, run, stages_done=("claimed", "cloned"), branch=names.branch)

    job_tag = f"{run.job.key.issue_number}-a{run.job.attempt}"
    with d.workspace.checkout(mirror, branch=names.branch, base_branch=plan.base, job=job_tag) as tree:
        try:
            made = change.make(d, run, task, tree, names)
        except NoChangeMade:
            if not _takeover_of_a_push(run, tree):
                raise
            # An earlier attempt of this run pushed the task's change, then could not finish (its lease
            # ran out in an outage, its worker died): the branch holds the change, so publish it.
            run.log.info("the branch already holds this task's change; publishing it", head=tree.remote_sha)
            made = Validated(Changes(summary=ALREADY_PUSHED))
        d.hooks.call("on_generated", task=task, changes=made.changes)

        run.lease.check()
        check_trust(d, task, plan.issue, while_running=True)  # an edit while we worked stops the push
        with run.stage("secret_scan"):
            change.scan_for_secrets(d, tree, names)
        with run.stage("push"):
            run.lease.renew()  # only the holder of a fresh lease pushes and opens the PR
            head, _ = push_change(d.workspace, tree, clone_url=plan.clone_url,
                                  message=commit_message(task, made.changes.summary), log=run.log, policy=d.retry)
        d.hooks.call("on_pushed", task=task, branch=names.branch, sha=head)
        outcome.show(d, run, stages_done=("claimed", "cloned", "generated", "validated", "pushed"))
    changes = made.changes
    return Pushed(names=names, existing=existing, head=head, changes=replace(changes, transcript=None),
                  validation_md=made.validation_md, draft=made.draft, notes=made.notes,
                  excerpt=change.excerpt(changes), transcript=str(changes.transcript) if changes.transcript else None)


def publish(d: Deps, run: JobRun, plan: Plan, pushed: Pushed) -> Outcome:
    """Open or update the one pull request, then report on the issue and label it."""
    task = resume(run, plan, pushed.names)
    run.lease.renew()
    changes = replace(pushed.changes, transcript=Path(pushed.transcript) if pushed.transcript else None)
    with run.stage("pull_request"):
        body = d.redact(render_pull_body(PullView(
            task=task, summary=changes.summary, files=changes.files, generator=changes.generator,
            usage_line=change.usage_line(changes), validation_md=pushed.validation_md,
            summary_by=changes.summary_by, transcript_excerpt=pushed.excerpt,
            notes=changes.notes + pushed.notes + tuple(d.hooks.failures),
        )))
        pull, action = upsert_pull(d.forge, repo=task.target_repo, branch=pushed.names.branch, base=plan.base,
                                   title=pull_title(task, plan.issue.title), body=body, existing=pushed.existing,
                                   draft=pushed.draft, log=run.log, policy=d.retry)
    run.log.info("pull request ready", pr=pull.html_url, action=action, head=pushed.head, draft=pushed.draft)
    d.hooks.call("on_pull_request", task=task, pull=pull)
    return outcome.succeed(d, run, pull, changes, notes=changes.notes + pushed.notes)


def _takeover_of_a_push(run: JobRun, tree: Worktree) -> bool:
    """Whether this attempt took over from one that had already pushed the task's change.

    Only a takeover (an earlier attempt since the last requeue ended badly or waited) counts: a
    person's re-run that changes nothing must still say so, not take credit for the old commit."""
    job = run.job
    pushed = tree.remote_sha is not None and tree.remote_sha != tree.base_sha
    return pushed and (job.failures > 0 or job.waits > 0)
