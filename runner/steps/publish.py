"""Publish a job's change: commit, lease-push, and open or update exactly one PR.

Each step is idempotent so that a re-run after a crash converges: the commit is
skipped when the tree is unchanged, the push is a no-op when the remote already
has HEAD (and refuses if the remote moved), and the PR is found by head branch
in any state before one is created. A failed push or PR creation is retried in
place, but only after looking again (see :mod:`runner.steps.retry`): the push is
done if the remote branch already points at HEAD, the PR is done if one is
found by its head branch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.core.policy import pull_action
from runner.forge.base import Forge, PullRequest
from runner.steps import retry
from runner.steps.workspace import Workspace, Worktree


@dataclass(frozen=True)
class Published:
    pull: PullRequest
    head_sha: str
    committed: bool
    action: str


def push_change(workspace: Workspace, tree: Worktree, *, clone_url: str, message: str, log: Any,
                policy: retry.RetryPolicy = retry.RetryPolicy()) -> tuple[str, bool]:  # noqa: B008
    """Commit the staged change (what the guard and the secret scan read) and push it; return (head, committed)."""
    committed = workspace.commit(tree, message)
    head = tree.head()
    pushed = retry.call(
        lambda: workspace.push(tree, clone_url, head), what=f"push {tree.branch}", log=log, policy=policy,
        recheck=lambda: head if workspace.remote_sha(tree, clone_url) == head else None,
    )
    return pushed, committed


def upsert_pull(
    forge: Forge,
    *,
    repo: str,
    branch: str,
    base: str,
    title: str,
    body: str,
    existing: PullRequest | None,
    log: Any,
    draft: bool = False,
    policy: retry.RetryPolicy = retry.RetryPolicy(),  # noqa: B008 (a frozen value)
) -> tuple[PullRequest, str]:
    """Open, update or reopen the task's PR; a merged PR is left alone."""
    action = pull_action(existing)
    if action == "create" or existing is None:
        pull = retry.call(
            lambda: forge.create_pull(repo, head=branch, base=base, title=title, body=body, draft=draft),
            what=f"open a pull request from {branch}", log=log, policy=policy,
            recheck=lambda: forge.find_pull(repo, branch),
        )
        return pull, action
    if action == "merged":
        return existing, action
    number = existing.number
    if action == "reopen":  # PATCHes with the same body: safe to repeat
        return retry.call(lambda: forge.update_pull(repo, number, title=title, body=body, state="open"),
                          what=f"reopen pull request #{number}", log=log, policy=policy), action
    if existing.body.strip() == body.strip() and existing.title == title:
        return existing, "unchanged"
    return retry.call(lambda: forge.update_pull(repo, number, title=title, body=body),
                      what=f"update pull request #{number}", log=log, policy=policy), action
