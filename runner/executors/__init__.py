"""Executors run the pipeline's stages: worker threads over a SQLite or PostgreSQL ledger, or Temporal.

Both implement :class:`runner.executors.base.Executor`; :mod:`runner.app` picks one from a table.
"""
