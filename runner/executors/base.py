"""Say what an executor is: the one interface the CLI, the webhook intake and the status page use.

Two implementations run the same pipeline stages:

- :class:`runner.executors.threads.ThreadExecutor`: a poll loop and worker
  threads over the SQLite or PostgreSQL ledger's leases (``EXECUTOR=ledger``);
- :class:`runner.executors.temporal.executor.TemporalExecutor`: workflows and
  one activity per stage on a Temporal cluster (``EXECUTOR=temporal``).

:mod:`runner.app` picks one from its table and builds the object graph once.
Whether and when a failed task runs again is decided in one place for both:
:func:`runner.core.policy.retry_decision` and :func:`runner.core.policy.retry_delay`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from runner.core.feedback import FeedbackItem
from runner.forge.base import Issue
from runner.pipeline import Outcome


@runtime_checkable
class Executor(Protocol):
    """Find dispatch work and run the pipeline on it, once or until stopped."""

    #: The lease owner (machine, process, random suffix) this executor claims work as.
    owner: str
    clock: Callable[[], datetime]
    log: Any

    def poll(self) -> int:
        """Queue every eligible issue (and re-queue finished ones whose result label was removed)."""
        ...

    def run_once(self) -> list[Outcome]:
        """One pass: poll, then run everything that is due, and return how each ended."""
        ...

    def process_issue(self, number: int) -> Outcome | None:
        """Run exactly one issue now; None while another worker holds it."""
        ...

    def serve(self, stop: threading.Event, *, poll: bool = True) -> None:
        """Run until ``stop`` is set; at shutdown finish or release the jobs in hand."""
        ...

    def offer(self, issue: Issue) -> int:
        """Queue one issue a webhook delivered; 1 when it became work."""
        ...

    def offer_feedback(self, item: FeedbackItem) -> int:
        """Queue one feedback item a webhook delivered; 1 when it became a round to run."""
        ...

    def active_count(self) -> int:
        """How many jobs (or activities) this process runs now."""
        ...

    def waiting_on_github(self) -> bool:
        """After serve: whether a job or the poll is still stuck in a call to GitHub."""
        ...
