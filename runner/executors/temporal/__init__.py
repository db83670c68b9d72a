"""Temporal as the execution engine: one workflow per dispatch issue, the pipeline as its activity.

The SQLite and PostgreSQL executors share work through our own lease ledger.
With ``EXECUTOR=temporal`` the durable record is Temporal's instead: the
workflow id deduplicates tasks, activity heartbeats replace leases, and the
retry policy replaces the ledger's backoff. The pipeline itself is the same
straight line; it sees Temporal only through :class:`ActivityLedger`, an
implementation of the :class:`runner.ledger.Ledger` methods it calls.

    types.py       the values that cross Temporal (pure dataclasses)
    workflow.py    the workflow definition (deterministic, sandboxed)
    activities.py  the activity that runs the pipeline, and ActivityLedger
    executor.py    TemporalExecutor: poll, start workflows, host workers, status
"""
