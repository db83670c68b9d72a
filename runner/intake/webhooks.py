"""Take GitHub's webhook deliveries: verify, record once, and feed the same intake as the poll.

    POST /webhook ─► verify (signature, headers, age) ─► route (event ─► intent)
                  ─► ledger.record_delivery (X-GitHub-Delivery, once) ─► Runner.offer(issue)

- Only a delivery signed with WEBHOOK_SECRET counts: ``X-Hub-Signature-256`` is
  the HMAC-SHA256 of the raw body, compared in constant time:
  https://docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries
- GitHub signs no timestamp, so a delivery is *stale* when the event time inside
  the signed payload (the issue's ``updated_at``, a comment's or review's time) is
  older than WEBHOOK_MAX_AGE_SECONDS; together with the delivery id kept in the
  ledger, a captured delivery cannot be replayed to re-run work.
- A redelivery carries the same ``X-GitHub-Delivery``, so it is recorded once and
  is a no-op the second time.
- The answer goes out as soon as the ledger has the delivery (milliseconds):
  GitHub gives a receiver 10 seconds and never retries a failure, so a task that
  a lost delivery missed is found by the poll, which keeps running at the long
  WEBHOOK_POLL_INTERVAL_SECONDS as the safety net.
- ``issue_comment``, ``pull_request_review`` and ``pull_request_review_comment``
  are kept in the ledger with outcome ``feedback`` and a compact payload: the
  inbox of the feedback rounds (``Ledger.deliveries(outcome="feedback")``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from runner.core import ci, feedback, policy
from runner.core.feedback import FeedbackItem
from runner.errors import ConfigError, RunnerError, WebhookRejected
from runner.forge.base import Issue
from runner.forge.wire import issue_from_json
from runner.ledger.base import DeliveryRecord, Ledger
from runner.metrics import Metrics

WEBHOOK_PATH = "/webhook"
MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
ISSUE_ACTIONS = frozenset({"labeled", "unlabeled", "edited"})
FEEDBACK_EVENTS = frozenset({"issue_comment", "pull_request_review", "pull_request_review_comment"})
#: A commit's checks changed: maybe a task PR's head is red now (a CI round, docs/feedback.md).
CI_EVENTS = frozenset({"check_suite", "check_run", "status", "workflow_run"})
KNOWN_EVENTS = frozenset({"ping", "issues", *FEEDBACK_EVENTS, *CI_EVENTS})
_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: GitHub sent it and it is fresh."""

    delivery_id: str
    event: str
    payload: Mapping[str, Any]

    @property
    def action(self) -> str | None:
        action = self.payload.get("action")
        return str(action) if isinstance(action, str) else None

    @property
    def repo(self) -> str | None:
        name = (self.payload.get("repository") or {}).get("full_name")
        return str(name) if isinstance(name, str) else None

    @property
    def sender(self) -> str | None:
        login = (self.payload.get("sender") or {}).get("login")
        return str(login) if isinstance(login, str) else None


@dataclass(frozen=True)
class Intent:
    """What intake does with a delivery: offer an issue, keep feedback, or nothing."""

    outcome: str  # "queued" (offer), "feedback", "ignored"
    reason: str = ""
    issue: Issue | None = None
    issue_number: int | None = None
    feedback: Mapping[str, Any] | None = None


# -- pure core ---------------------------------------------------------------------


def signature_valid(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``X-Hub-Signature-256`` is the HMAC-SHA256 of the body; constant time."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def verify(headers: Mapping[str, str], body: bytes, *, secret: bytes, now: datetime,
           max_age: timedelta) -> Delivery:
    """Turn a request into a verified :class:`Delivery`, or raise :class:`WebhookRejected`."""
    lower = {k.lower(): v for k, v in headers.items()}
    signature = lower.get("x-hub-signature-256")
    if not signature:
        raise WebhookRejected(401, "unsigned", "missing X-Hub-Signature-256")
    if not signature_valid(secret, body, signature):
        raise WebhookRejected(401, "bad_signature", "X-Hub-Signature-256 does not match")
    delivery_id = (lower.get("x-github-delivery") or "").strip()
    event = (lower.get("x-github-event") or "").strip()
    if not delivery_id or not event or len(delivery_id) > 100:
        raise WebhookRejected(400, "malformed", "missing X-GitHub-Delivery or X-GitHub-Event")
    try:
        payload = json.loads(body)
    except ValueError:
        raise WebhookRejected(400, "malformed", "the body is not JSON") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "malformed", "the body is not a JSON object")
    delivery = Delivery(delivery_id, event, payload)
    happened = event_time(delivery)
    if happened is not None and now - happened > max_age:
        raise WebhookRejected(400, "stale", f"the event happened at {happened.isoformat()}, too long ago")
    if happened is not None and happened - now > _CLOCK_SKEW:
        raise WebhookRejected(400, "stale", "the event is dated in the future")
    return delivery


def event_time(delivery: Delivery) -> datetime | None:
    """When the event happened, from the signed payload (None for events without a time)."""
    p = delivery.payload
    candidates = {
        "issues": (p.get("issue") or {}).get("updated_at"),
        "issue_comment": (p.get("comment") or {}).get("updated_at"),
        "pull_request_review": (p.get("review") or {}).get("submitted_at"),
        "pull_request_review_comment": (p.get("comment") or {}).get("updated_at"),
    }
    value = candidates.get(delivery.event)
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def route(delivery: Delivery, *, dispatch_repo: str | Sequence[str], bot_login: str | None,
          labels: policy.Labels) -> Intent:
    """Decide, purely, what a verified delivery asks of the runner (``dispatch_repo``: one, or a fleet's)."""
    if delivery.event == "ping":
        return Intent("ignored", "ping")
    if delivery.event in CI_EVENTS:  # the runner's own push is what starts CI: its sender is often the runner
        return _ci(delivery)
    # By sender only for a GitHub App, whose login no person has. With a personal access token the
    # token's owner is a person whose comments and labels count: the runner's own comments carry its
    # marker, and its own label changes leave the issue ineligible (processed or failed).
    sender = (delivery.sender or "").lower()
    if bot_login and bot_login.lower().endswith("[bot]") and sender == bot_login.lower():
        return Intent("ignored", "the runner's own action")
    repos = (dispatch_repo,) if isinstance(dispatch_repo, str) else tuple(dispatch_repo)
    mine = next((r for r in repos if r.lower() == (delivery.repo or "").lower()), None)
    if delivery.event in FEEDBACK_EVENTS:
        return _feedback(delivery, mine)
    if mine is None:
        return Intent("ignored", "not the dispatch repository")
    dispatch_repo = mine
    if delivery.event != "issues" or delivery.action not in ISSUE_ACTIONS:
        return Intent("ignored", f"{delivery.event}.{delivery.action} is not a trigger")
    raw = delivery.payload.get("issue")
    if not isinstance(raw, dict) or not isinstance(raw.get("number"), int):
        return Intent("ignored", "the payload has no issue")
    issue = issue_from_json(dispatch_repo, raw)
    eligible, why = policy.should_process(issue, labels)
    if not eligible:
        return Intent("ignored", why, issue_number=issue.number)
    return Intent("queued", "eligible", issue=issue, issue_number=issue.number)


def _feedback(delivery: Delivery, dispatch_repo: str | None) -> Intent:
    """Keep what a person said (on a dispatch issue, or on a PR) for the feedback rounds.

    Only new comments and submitted reviews count: an edit never starts a round."""
    p = delivery.payload
    wanted = "submitted" if delivery.event == "pull_request_review" else "created"
    if delivery.action != wanted:
        return Intent("ignored", f"{delivery.event}.{delivery.action} is not feedback")
    repo = delivery.repo or ""
    if delivery.event == "issue_comment":
        issue = p.get("issue") or {}
        number, item = issue.get("number"), p.get("comment") or {}
        kind = "pr_comment" if issue.get("pull_request") else "issue_comment"
        if kind == "issue_comment" and dispatch_repo is None:
            return Intent("ignored", "a comment on an issue outside the dispatch repository")
    else:
        number = (p.get("pull_request") or {}).get("number")
        item = (p.get("review") if delivery.event == "pull_request_review" else p.get("comment")) or {}
        kind = "review" if delivery.event == "pull_request_review" else "review_comment"
    if not isinstance(number, int) or not isinstance(item.get("id"), int):
        return Intent("ignored", "the payload names no issue or pull request")
    line = item.get("line")
    found = FeedbackItem(
        kind=kind, id=int(item["id"]), repo=repo, number=number,  # type: ignore[arg-type]
        author=(item.get("user") or {}).get("login", ""), body=item.get("body") or "",
        html_url=item.get("html_url") or "",
        updated_at=item.get("submitted_at") or item.get("updated_at") or "",
        state=str(item["state"]).lower() if isinstance(item.get("state"), str) else None,
        path=item.get("path") if isinstance(item.get("path"), str) else None,
        line=line if isinstance(line, int) else None,
        diff_hunk=item.get("diff_hunk") if isinstance(item.get("diff_hunk"), str) else None,
    )
    if feedback.is_own(found):
        return Intent("ignored", "the runner's own comment")
    return Intent("feedback", delivery.event, issue_number=number, feedback=found.to_json())


def _ci(delivery: Delivery) -> Intent:
    """A commit's checks finished: a ``ci`` item for its commit (and PR, when the payload names one).

    Whether every check has completed and one failed is read when it is routed."""
    p = delivery.payload
    pulls: list[Any] = []
    if delivery.event == "status":
        if p.get("state") == "pending":
            return Intent("ignored", "status.pending is not a finished check")
        sha = p.get("sha")
    else:
        inner = p.get(delivery.event) or {}
        if delivery.action != "completed":
            return Intent("ignored", f"{delivery.event}.{delivery.action} is not a finished check")
        sha, pulls = inner.get("head_sha"), inner.get("pull_requests") or []
    if not isinstance(sha, str) or len(sha) < 15 or not all(c in "0123456789abcdef" for c in sha.lower()):
        return Intent("ignored", "the payload names no commit")
    numbers = [pr.get("number") for pr in pulls if isinstance(pr, dict) and isinstance(pr.get("number"), int)]
    number = int(numbers[0] or 0) if len(numbers) == 1 else 0
    item = FeedbackItem(kind="ci", id=ci.item_id(sha), repo=delivery.repo or "", number=number, author="",
                        body="", sha=sha.lower())
    return Intent("feedback", delivery.event, issue_number=number or None, feedback=item.to_json())


def metric_event(event: str | None) -> str:
    """Bound the metric's label values: only events GitHub sends us, the rest are "other"."""
    return event if event in KNOWN_EVENTS else "other"


# -- the edge ----------------------------------------------------------------------


class Offers(Protocol):
    """Where routed deliveries go: the executor's intake (see :class:`runner.executors.base.Executor`)."""

    repo: str
    labels: policy.Labels

    def offer(self, issue: Issue) -> int: ...

    def offer_feedback(self, item: FeedbackItem) -> int: ...


class WebhookIntake:
    """Verify, record and route deliveries into the runner's one intake."""

    def __init__(self, *, secret: str, runner: Offers, ledger: Ledger, metrics: Metrics,
                 clock: Callable[[], datetime], log: Any, max_age_seconds: float,
                 bot_login: Callable[[], str | None]) -> None:
        self._secret = secret.encode()
        self._runner = runner
        self._ledger = ledger
        self._metrics = metrics
        self._clock = clock
        self._log = log
        self._max_age = timedelta(seconds=max_age_seconds)
        self._bot_login = bot_login

    def handle(self, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """Answer one delivery: (HTTP status, a short text for GitHub's delivery log)."""
        now = self._clock()
        try:
            delivery = verify(headers, body, secret=self._secret, now=now, max_age=self._max_age)
        except WebhookRejected as rejected:
            self._metrics.webhook_delivery("unverified", rejected.outcome)
            self._log.warning("webhook rejected", outcome=rejected.outcome, reason=rejected.reason)
            return rejected.status, rejected.reason
        intent = route(delivery, dispatch_repo=getattr(self._runner, "repos", None) or self._runner.repo,
                       bot_login=self._bot_login(),
                       labels=self._runner.labels)
        record = DeliveryRecord(
            delivery_id=delivery.delivery_id, event=delivery.event, action=delivery.action,
            repo=delivery.repo, issue_number=intent.issue_number, outcome=intent.outcome,
            received_at=now, payload=intent.feedback,
        )
        event = metric_event(delivery.event)
        try:
            if not self._ledger.record_delivery(record):
                self._metrics.webhook_delivery(event, "duplicate")
                self._log.info("webhook redelivery ignored", delivery=delivery.delivery_id)
                return 200, "already received"
            if intent.issue is not None:
                self._runner.offer(intent.issue)
            if intent.feedback is not None:  # a ledger records it, Temporal gets it as a signal
                self._runner.offer_feedback(FeedbackItem.from_json(intent.feedback))
        except RunnerError as exc:
            # GitHub will not retry; the safety-net poll finds the task once the ledger is back.
            self._metrics.webhook_delivery(event, "error")
            self._log.warning("webhook not recorded", delivery=delivery.delivery_id, error=str(exc))
            return 503, "the runner's ledger is unavailable; the next poll picks this up"
        self._metrics.webhook_delivery(event, intent.outcome)
        self._log.info("webhook", webhook_event=delivery.event, action=delivery.action, outcome=intent.outcome,
                       issue=intent.issue_number, reason=intent.reason, delivery=delivery.delivery_id)
        return (202 if intent.outcome != "ignored" else 200), intent.outcome


class WebhookServer:
    """Serve ``POST /webhook`` in daemon threads; everything else is 404 or 405."""

    def __init__(self, intake: WebhookIntake, host: str = "0.0.0.0", port: int = 8081) -> None:
        intake_ref = intake

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # a slow client cannot hold a thread for long

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.split("?")[0] != WEBHOOK_PATH:
                    self._reply(404, f"POST deliveries to {WEBHOOK_PATH}")
                    return
                try:
                    length = int(self.headers.get("Content-Length") or "")
                except ValueError:
                    self._reply(411, "Content-Length required")
                    return
                if length < 0 or length > MAX_BODY_BYTES:
                    self._reply(413, "payload too large")
                    return
                body = self.rfile.read(length)
                status, text = intake_ref.handle(dict(self.headers.items()), body)
                self._reply(status, text)

            def do_GET(self) -> None:  # noqa: N802
                self._reply(405 if self.path.split("?")[0] == WEBHOOK_PATH else 404,
                            f"GitHub webhooks are POSTed to {WEBHOOK_PATH}")

            def _reply(self, status: int, text: str) -> None:
                body = (text + "\n").encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None  # intake logs each delivery itself

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhooks", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{WEBHOOK_PATH}"

    def start(self) -> WebhookServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve_webhooks(app: Any, *, port: int | None = None) -> WebhookServer:
    """Start the webhook server for a built app (see :func:`runner.app.build_app`)."""
    settings = app.settings
    if settings.webhook_secret is None:
        raise ConfigError("WEBHOOK_SECRET is not set; the webhook server cannot verify deliveries.")
    dispatch_repo = settings.require_dispatch_repo()

    def bot_login() -> str | None:
        try:
            return str(app.forge.authenticated_login(dispatch_repo))
        except RunnerError:
            return None

    intake = WebhookIntake(secret=settings.webhook_secret.get_secret_value(), runner=app.executor,
                           ledger=app.ledger, metrics=app.metrics, clock=app.executor.clock,
                           log=app.executor.log.bind(component="webhooks"),
                           max_age_seconds=settings.webhook_max_age_seconds, bot_login=bot_login)
    return WebhookServer(intake, settings.webhook_host,
                         settings.webhook_port if port is None else port).start()
