"""The one narrow interface through which the runner talks to GitHub."""

from runner.forge.base import Comment, Forge, Issue, PullRequest, RepoInfo

__all__ = ["Comment", "Forge", "Issue", "PullRequest", "RepoInfo"]
