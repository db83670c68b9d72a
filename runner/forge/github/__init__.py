"""Talk to GitHub (or GitHub Enterprise, or the emulator) through PyGithub.

This package makes the requests: one PyGithub client and one write pacer per
credential, conditional polling and short caches. What GitHub's answers mean,
PyGithub objects into our frozen values and PyGithub/requests exceptions into
:mod:`runner.errors`, is the pure :mod:`runner.forge.wire`; the tokens come from
:mod:`runner.forge.auth`. Nothing above the forge needs to know the library.

:class:`GitHubForge` is one object composed of the calls by concern, each over
the one :class:`~runner.forge.github.session.GitHubSession`:

- ``session``: clients, pacers, breakers, error translation, retries of reads, ETags;
- ``issues``: the dispatch poll, issues, comments, labels, reactions, permissions, history;
- ``repos``: repository facts, branches, files, pull requests, the token's identity and reach;
- ``checks``: a commit's checks and statuses, annotations, job logs.
"""

from __future__ import annotations

from runner.forge.github.checks import ChecksReads
from runner.forge.github.issues import IssueCalls
from runner.forge.github.repos import RepoCalls
from runner.forge.github.session import GitHubSession, PacedRetry

__all__ = ["GitHubForge", "GitHubSession", "PacedRetry"]


class GitHubForge(IssueCalls, RepoCalls, ChecksReads):
    """The Forge protocol over PyGithub, with a write pacer per token, short caches and conditional polling."""
