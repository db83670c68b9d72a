"""Publish a job's change: commit, lease-push, and open or update exactly one PR.

Each step is idempotent so that a re-run after a crash converges: the commit is
skipped when the tree is unchanged, the push is a no-op when the remote already
has HEAD (and refuses if the remote moved), and the PR is found by head branch
in any state before one is created.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.forge.base import Forge, PullRequest
from runner.policy import pull_action
from runner.workspace import Workspace, Worktree


@dataclass(frozen=True)
class Published:
    pull: PullRequest
    head_sha: str
    committed: bool
    action: str


def push_change(workspace: Workspace, tree: Worktree, *, clone_url: str, message: str) -> tuple[str, bool]:
    """Commit whatever the generators left in the tree and push it; return (head, committed)."""
    committed = workspace.commit(tree, message)
    return workspace.push(tree, clone_url), committed


def upsert_pull(
    forge: Forge,
    *,
    repo: str,
    branch: str,
    base: str,
    title: str,
    body: str,
    existing: PullRequest | None,
    draft: bool = False,
) -> tuple[PullRequest, str]:
    """Open, update or reopen the task's PR; a merged PR is left alone."""
    action = pull_action(existing)
    if action == "create" or existing is None:
        return forge.create_pull(repo, head=branch, base=base, title=title, body=body, draft=draft), action
    if action == "merged":
        return existing, action
    if action == "reopen":
        return forge.update_pull(repo, existing.number, title=title, body=body, state="open"), action
    if existing.body.strip() == body.strip() and existing.title == title:
        return existing, "unchanged"
    return forge.update_pull(repo, existing.number, title=title, body=body), action
