"""Send signed webhook deliveries to an app's URL, the way GitHub's Hookshot does.

Store changes become :class:`~.store.Notice` values; for every app installed
on the repository and subscribed to the event, the notice is rendered into
GitHub's payload, signed with the app's webhook secret (``X-Hub-Signature-256``,
HMAC-SHA256 of the body) and POSTed from a background thread. Like GitHub, a
failed delivery is only logged, never retried; a person (or a test) can ask
for a redelivery, which sends the same body with the same ``X-GitHub-Delivery``:
https://docs.github.com/webhooks/using-webhooks/handling-failed-webhook-deliveries
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from .records import GitHubAppRecord, Installation, Issue, Repo
from .shapes import Renderer
from .store import Notice, Store

_log = structlog.get_logger(__name__)
DELIVERY_TIMEOUT_S = 10.0
_FULL_PULL_ONLY = ("merged", "mergeable", "rebaseable", "mergeable_state", "merged_by", "comments",
                   "review_comments", "maintainer_can_modify", "commits", "additions", "deletions",
                   "changed_files")  # GitHub gives a receiver 10 seconds to answer


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Delivery:
    """One attempt to deliver a payload, as GitHub's "Recent Deliveries" shows it."""

    id: int
    guid: str
    event: str
    action: str | None
    app_id: int
    installation_id: int | None
    url: str
    body: bytes
    redelivery: bool = False
    status_code: int | None = None  # None: not answered (refused, timed out)
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def payload(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


class Source(Protocol):
    """What Hookshot reads to render a payload (:class:`~.backend.Backend` is the one implementation)."""

    store: Store

    def renderer(self) -> Renderer: ...

    def pull_json(self, repo: Repo, issue: Issue) -> dict[str, Any]: ...


class Hookshot:
    """Render, sign and send deliveries; one background sender thread."""

    def __init__(self, backend: Source) -> None:
        self._backend = backend
        self._queue: queue.Queue[Delivery] = queue.Queue()
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self._thread: threading.Thread | None = None

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    # -- sources -----------------------------------------------------------

    def on_notice(self, notice: Notice) -> None:
        """Store listener: deliver the notice to every app that should hear about it."""
        store = self._backend.store
        for app in store.apps():
            if not app.webhook_url or notice.event not in app.events:
                continue
            installation = next((i for i in store.installations(app.id) if i.covers(notice.repo)), None)
            if installation is None:
                continue
            self.send(app, installation, notice.event, self._render(notice, installation))

    def broadcast(self, repo: str, event: str, payload: dict[str, Any]) -> None:
        """Deliver a ready payload to every app installed on ``repo`` that subscribes to ``event``."""
        store = self._backend.store
        for app in store.apps():
            if not app.webhook_url or event not in app.events:
                continue
            installation = next((i for i in store.installations(app.id) if i.covers(repo)), None)
            if installation is not None:
                self.send(app, installation, event, json.loads(json.dumps(payload)))

    def send(self, app: GitHubAppRecord, installation: Installation | None, event: str,
             payload: dict[str, Any]) -> Delivery:
        """Queue one delivery of ``payload`` to the app's webhook URL."""
        if installation is not None:
            payload.setdefault("installation", {"id": installation.id, "node_id": f"MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9u{installation.id}"})
        body = json.dumps(payload).encode()
        return self._queue_delivery(app, installation.id if installation else None, event,
                                    payload.get("action"), body, guid=str(uuid.uuid4()))

    def redeliver(self, delivery_id: int) -> Delivery:
        """Send a past delivery again: same body, same GUID, flagged as a redelivery."""
        original = next(d for d in self.deliveries if d.id == delivery_id)
        app = self._backend.store.app(original.app_id)
        return self._queue_delivery(app, original.installation_id, original.event, original.action,
                                    original.body, guid=original.guid, redelivery=True)

    def wait(self, timeout: float = 30.0) -> None:
        """Block until every queued delivery was attempted (for tests)."""
        for delivery in self.deliveries:
            delivery.done.wait(timeout)

    # -- sending -----------------------------------------------------------

    def _queue_delivery(self, app: GitHubAppRecord, installation_id: int | None, event: str,
                        action: str | None, body: bytes, *, guid: str, redelivery: bool = False) -> Delivery:
        with self._lock:
            delivery = Delivery(id=len(self._deliveries) + 1, guid=guid, event=event, action=action,
                                app_id=app.id, installation_id=installation_id, url=app.webhook_url or "",
                                body=body, redelivery=redelivery)
            self._deliveries.append(delivery)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hookshot", daemon=True)
                self._thread.start()
        self._queue.put(delivery)
        return delivery

    def _run(self) -> None:
        while True:
            delivery = self._queue.get()
            try:
                self._post(delivery)
            except Exception as exc:  # the sender thread must outlive one broken delivery
                delivery.error = f"{type(exc).__name__}: {exc}"
                _log.exception("webhook delivery crashed", guid=delivery.guid)
            finally:
                delivery.done.set()

    def _post(self, delivery: Delivery) -> None:
        app = self._backend.store.app(delivery.app_id)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/emulator",
            "X-GitHub-Event": delivery.event,
            "X-GitHub-Delivery": delivery.guid,
            "X-GitHub-Hook-ID": str(app.id),
            "X-GitHub-Hook-Installation-Target-Type": "integration",
            "X-GitHub-Hook-Installation-Target-ID": str(app.id),
        }
        if app.webhook_secret:
            headers["X-Hub-Signature-256"] = sign(app.webhook_secret, delivery.body)
            headers["X-Hub-Signature"] = "sha1=" + hmac.new(
                app.webhook_secret.encode(), delivery.body, hashlib.sha1).hexdigest()
        request = urllib.request.Request(delivery.url, data=delivery.body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=DELIVERY_TIMEOUT_S) as resp:  # noqa: S310
                delivery.status_code = resp.status
        except urllib.error.HTTPError as exc:
            delivery.status_code = exc.code
        except OSError as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"
        if not delivery.ok:
            # GitHub does not retry: the failure is only shown in "Recent Deliveries".
            _log.warning("webhook delivery failed", guid=delivery.guid, webhook_event=delivery.event,
                         status=delivery.status_code, error=delivery.error)

    # -- payloads ----------------------------------------------------------

    def _render(self, notice: Notice, installation: Installation) -> dict[str, Any]:
        store, renderer = self._backend.store, self._backend.renderer()
        repo = store.repo(notice.repo)
        issue = store.issue(notice.repo, notice.number)
        payload: dict[str, Any] = {"action": notice.action}
        if notice.event.startswith("pull_request"):
            if notice.event == "pull_request":
                payload["number"] = issue.number
            payload["pull_request"] = self._backend.pull_json(repo, issue)
            if notice.event != "pull_request":
                # Review events carry the "simple" pull request, without the merge and size fields.
                for name in _FULL_PULL_ONLY:
                    payload["pull_request"].pop(name, None)
        else:
            payload["issue"] = renderer.issue(repo, issue)
            # A webhook's issue is the REST issue without ``closed_by`` (@octokit/openapi-webhooks).
            payload["issue"].pop("closed_by", None)
        if "label" in notice.extra:
            name = str(notice.extra["label"])
            label = repo.labels.get(name.lower())
            payload["label"] = renderer.label(repo, label) if label else {"name": name}
        if "comment_id" in notice.extra:
            payload["comment"] = renderer.comment(repo, store.comment(notice.repo, int(str(notice.extra["comment_id"]))))
        if "review_id" in notice.extra:
            payload["review"] = renderer.review(repo, store.review(notice.repo, int(str(notice.extra["review_id"]))))
        if "review_comment_id" in notice.extra:
            payload["comment"] = renderer.review_comment(
                repo, store.review_comment(notice.repo, int(str(notice.extra["review_comment_id"]))))
        if "changes" in notice.extra:
            payload["changes"] = notice.extra["changes"]
        payload["repository"] = renderer.repo(repo)
        payload["sender"] = renderer.user(notice.actor)
        return _without_archive_fields(payload)


def _without_archive_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """Webhook labels as @octokit/openapi-webhooks (the vendored webhooks description) has them.

    GitHub's newer REST description adds ``archived_at``/``archived_by`` to labels; the
    webhooks slice is not refreshed from github/rest-api-description yet (emulator/README.md)."""
    labels = [payload.get("label")]
    for holder in ("issue", "pull_request"):
        labels += (payload.get(holder) or {}).get("labels") or []
    for label in labels:
        if isinstance(label, dict):
            label.pop("archived_at", None)
            label.pop("archived_by", None)
    return payload
