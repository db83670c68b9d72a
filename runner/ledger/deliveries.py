"""Log each webhook delivery once, by its `X-GitHub-Delivery` id, with what became of it.

Part of :class:`runner.ledger.store.SqlLedger`: a redelivery finds its id
taken and changes nothing. Feedback deliveries are kept with a compact
payload (outcome ``feedback``), the webhook side of the rounds' inbox.
"""

from __future__ import annotations

from collections.abc import Sequence

from runner.ledger.base import DeliveryRecord
from runner.ledger.database import SqlDatabase


class DeliveryLog(SqlDatabase):
    """The webhook deliveries table."""

    def record_delivery(self, delivery: DeliveryRecord) -> bool:
        rows = self._watched(self._write, self._sql.record_delivery, {
            "delivery_id": delivery.delivery_id, "event": delivery.event, "action": delivery.action,
            "repo": delivery.repo, "issue": delivery.issue_number, "outcome": delivery.outcome,
            "payload": None if delivery.payload is None else self._json_in(delivery.payload),  # type: ignore[arg-type]
            "now": self._now(delivery.received_at),
        })
        return bool(rows)

    def deliveries(self, *, outcome: str | None = None, limit: int = 100) -> Sequence[DeliveryRecord]:
        rows = self._watched(self._read, self._sql.deliveries, {"outcome": outcome, "limit": limit})
        return [
            DeliveryRecord(delivery_id=d, event=e, action=a, repo=r,
                           issue_number=None if n is None else int(n), outcome=o,
                           payload=None if p is None else self._json_out(p),
                           received_at=self._time_out(t))
            for d, e, a, r, n, o, p, t in rows
        ]
