"""Retry a transient GitHub or git failure inside its stage, so that a blip does not cost the task an attempt.

A 502 on a comment, a 429 on a label or a reset connection during ``git push``
is retried right where it happened, a few times, with exponential backoff
("equal jitter", :func:`runner.core.policy.backoff_delay`), within a time
budget. Only when that fails too does the error leave the stage and count as
one of the task's ``MAX_ATTEMPTS``. Which errors qualify is a property of their
class: transient :class:`ForgeError` (5xx, 429, 403 with a retry hint,
network) and transient :class:`WorkspaceError` (git transport). A rate limit
that asks for a longer wait than the budget allows is not waited for here: it
fails the attempt, and the task backs off for the ``Retry-After``.

**The rule for requests that create something** (a comment, a pull request,
a push): they are never repeated blindly. The failure may have come after
GitHub acted (a 502 after the write, a read timeout, a connection reset
mid-response), and a second POST would then make a second comment or PR. So
the caller passes ``recheck``, which looks again (the comment by its marker
and author, the PR by its head branch, the branch by its sha on the remote)
before every retry; when it finds the thing, that is the result and nothing is
sent again. Only idempotent requests (GETs, a PATCH with the same body, adding
a label that may already be there, removing one) are retried without looking.
For the same reason the HTTP layer (``GithubRetry`` in
:mod:`runner.forge.github`) never retries a POST.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from runner.core.policy import backoff_delay, retry_in_place
from runner.errors import RateLimited, RunnerError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one stage tries before giving up: ``tries`` calls in all, waiting at most ``budget_s``."""

    tries: int = 4
    base_s: float = 0.5
    cap_s: float = 8.0
    budget_s: float = 30.0


def call(
    action: Callable[[], T],
    *,
    what: str,
    log: Any,
    policy: RetryPolicy = RetryPolicy(),  # noqa: B008 (a frozen value)
    recheck: Callable[[], T | None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run ``action``; on a transient failure wait and run it again, up to the policy's bounds.

    ``recheck`` is required in spirit for anything that creates content (see
    the module docstring): it runs before each retry, and what it returns (when
    not None) is taken as the action's result. A recheck that fails is itself
    retried; the action is never sent again before a recheck has answered.
    """
    started = clock()
    unsure = False  # a try failed: it may have acted all the same
    for attempt in range(1, policy.tries + 1):
        try:
            if unsure and recheck is not None:
                found = recheck()
                if found is not None:
                    log.info("found it on GitHub after a failed try; not sending again", action=what)
                    return found
            return action()
        except RunnerError as exc:
            if not retry_in_place(exc) or attempt == policy.tries:
                raise
            delay = backoff_delay(attempt, base=policy.base_s, cap=policy.cap_s)
            if isinstance(exc, RateLimited):
                delay = max(delay, exc.retry_after)
            if clock() - started + delay > policy.budget_s:
                raise
            log.info("retrying in place", action=what, error=str(exc), tried=attempt, wait_s=round(delay, 2))
            sleep(delay)
            unsure = True
    raise AssertionError("unreachable: the last try returns or raises")
