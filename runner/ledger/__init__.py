"""Open the durable ledger named by LEDGER_URL; everything else imports from here.

``open_ledger`` is the one place that maps a URL scheme to a backend:
``sqlite:///...`` (the embedded default) or ``postgresql://...`` (shared by
many replicas). The PostgreSQL driver is imported only when it is used.
"""

from __future__ import annotations

from runner.errors import ConfigError, LedgerUnavailable
from runner.ledger.base import (
    STATUSES,
    TERMINAL,
    DeliveryRecord,
    Job,
    Ledger,
    Status,
    TaskKey,
    TaskRecord,
    lease_expiry,
)
from runner.ledger.database import URL_FORMATS, redact_url

__all__ = [
    "STATUSES",
    "TERMINAL",
    "DeliveryRecord",
    "Job",
    "Ledger",
    "LedgerUnavailable",
    "Status",
    "TaskKey",
    "TaskRecord",
    "lease_expiry",
    "ledger_scheme",
    "open_existing_ledger",
    "open_ledger",
]


def open_existing_ledger(url: str) -> Ledger | None:
    """Open the ledger at ``url`` read-only, creating and migrating nothing.

    For read-only commands (`status`, `check-config`): None means there is no
    ledger there yet, which is an empty one, not an error.
    """
    scheme = ledger_scheme(url)
    if scheme == "sqlite":
        from runner.ledger.sqlite import SqliteLedger

        return SqliteLedger.open_existing(url.strip())
    if scheme == "postgresql":
        from runner.ledger.postgres import PostgresLedger

        return PostgresLedger.open_existing(url.strip())
    raise ConfigError(f"LEDGER_URL `{redact_url(url)}` has an unknown scheme. {URL_FORMATS}")


def ledger_scheme(url: str) -> str | None:
    """``sqlite`` or ``postgresql`` (the one replicas can share), by the URL's scheme; None if unknown."""
    scheme, sep, _ = url.strip().partition("://")
    scheme = scheme.lower()
    if sep and scheme == "sqlite":
        return "sqlite"
    if sep and scheme in ("postgresql", "postgres"):
        return "postgresql"
    return None


def open_ledger(url: str) -> Ledger:
    """Open and migrate the ledger at ``url``, or raise ConfigError naming LEDGER_URL."""
    scheme, sep, _ = url.strip().partition("://")
    scheme = scheme.lower()
    if sep and scheme == "sqlite":
        from runner.ledger.sqlite import SqliteLedger

        return SqliteLedger.from_url(url.strip())
    if sep and scheme in ("postgresql", "postgres"):
        from runner.ledger.postgres import PostgresLedger

        return PostgresLedger.from_url(url.strip())
    raise ConfigError(f"LEDGER_URL `{redact_url(url)}` has an unknown scheme. {URL_FORMATS}")
