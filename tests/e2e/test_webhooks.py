"""Webhook intake end to end: the emulator signs and delivers, the runner verifies, records, queues."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from github_emulator import GitHubEmulator, sign

from runner.app import App
from runner.intake.webhooks import WebhookServer, serve_webhooks
from runner.ledger.base import TaskKey
from tests.app_world import WEBHOOK_SECRET, AppWorld, make_app_world
from tests.conftest import DISPATCH, README_PATCH, TARGET, dispatch_body


@pytest.fixture()
def emu(tmp_path: Path) -> Iterator[GitHubEmulator]:
    with GitHubEmulator(tmp_path / "github") as emulator:
        yield emulator


class Hooked:
    """An app-mode runner whose webhook server the emulator delivers to."""

    def __init__(self, aw: AppWorld, **overrides: Any) -> None:
        self.aw = aw
        values = {"webhook_secret": WEBHOOK_SECRET, "webhook_poll_interval_seconds": 3600, **overrides}
        self.app: App = aw.world.app(**aw.settings(**values))
        self.server: WebhookServer = serve_webhooks(self.app, port=0)
        aw.emu.set_webhook(aw.app.id, self.server.url(), WEBHOOK_SECRET)
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def serve(self) -> None:
        self.thread = threading.Thread(target=self.app.executor.serve, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(30)
        self.server.stop()

    def metric(self, event: str, outcome: str) -> float:
        value = self.app.metrics.registry.get_sample_value(
            "agent_runner_webhook_deliveries_total", {"event": event, "outcome": outcome})
        return value or 0.0

    def post(self, body: bytes, *, secret: str | None = WEBHOOK_SECRET, event: str = "issues",
             guid: str | None = None) -> requests.Response:
        headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": guid or str(uuid.uuid4()),
                   "Content-Type": "application/json"}
        if secret is not None:
            headers["X-Hub-Signature-256"] = sign(secret, body)
        return requests.post(self.server.url(), data=body, headers=headers, timeout=10)


@pytest.fixture()
def hooked(emu: GitHubEmulator, tmp_path: Path) -> Iterator[Hooked]:
    h = Hooked(make_app_world(emu, tmp_path))
    yield h
    h.close()


def wait_until(check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def labeled_delivery(emu: GitHubEmulator) -> Any:
    found = [d for d in emu.wait_for_deliveries() if d.event == "issues" and d.action == "labeled"]
    assert found, "the emulator sent no issues.labeled delivery"
    return found[-1]


def test_webhook_queues_the_task_once_and_a_redelivery_is_a_no_op(hooked: Hooked) -> None:
    emu = hooked.aw.emu
    number = hooked.aw.world.file_issue(dispatch_body())
    delivery = labeled_delivery(emu)
    assert delivery.status_code == 202

    again = emu.redeliver(delivery.id)
    emu.wait_for_deliveries()

    assert again.guid == delivery.guid and again.status_code == 200
    assert [r.key for r in hooked.app.ledger.list()] == [TaskKey(DISPATCH, number)]
    assert hooked.app.ledger.get(TaskKey(DISPATCH, number)).status == "queued"  # type: ignore[union-attr]
    assert [d.delivery_id for d in hooked.app.ledger.deliveries()].count(delivery.guid) == 1
    assert hooked.metric("issues", "queued") == 1 and hooked.metric("issues", "duplicate") == 1


def test_bad_signature_is_401_and_queues_nothing(hooked: Hooked) -> None:
    """Attack: a delivery signed with another secret, and one not signed at all."""
    emu = hooked.aw.emu
    emu.set_webhook(hooked.aw.app.id, hooked.server.url(), "not-the-runners-secret-at-all")
    hooked.aw.world.file_issue(dispatch_body())
    delivery = labeled_delivery(emu)

    assert delivery.status_code == 401
    body = delivery.body
    assert hooked.post(body, secret=None).status_code == 401
    assert hooked.post(body + b" ", secret=WEBHOOK_SECRET).status_code == 202  # the secret is what counts
    forged = json.loads(body)
    forged["issue"]["body"] = dispatch_body(instruction="Something else entirely.")
    tampered = json.dumps(forged).encode()
    resp = requests.post(hooked.server.url(), data=tampered, timeout=10, headers={
        "X-GitHub-Event": "issues", "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(WEBHOOK_SECRET, body)})  # a signature of another body
    assert resp.status_code == 401
    refused = [d for d in emu.deliveries if d.status_code == 401]
    assert len(refused) == len(emu.deliveries) >= 2  # opened and labeled, both refused
    assert hooked.metric("unverified", "bad_signature") == len(refused) + 1
    assert hooked.metric("unverified", "unsigned") == 1
    # Only the one correctly signed delivery reached the ledger.
    assert len(hooked.app.ledger.deliveries()) == 1


def test_replayed_old_delivery_is_rejected(hooked: Hooked, emu: GitHubEmulator) -> None:
    """Attack: a captured, correctly signed delivery sent again later under a new delivery id."""
    hooked.aw.world.file_issue(dispatch_body())
    captured = labeled_delivery(emu).body
    before = len(hooked.app.ledger.deliveries())
    clock = hooked.app.executor.clock
    hooked.app.executor.clock = lambda: clock() + timedelta(hours=3)  # noqa: E731 (the intake reads it)
    server = serve_webhooks(hooked.app, port=0)
    try:
        resp = requests.post(server.url(), data=captured, timeout=10, headers={
            "X-GitHub-Event": "issues", "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(WEBHOOK_SECRET, captured)})
    finally:
        server.stop()
    assert resp.status_code == 400 and "too long ago" in resp.text
    assert len(hooked.app.ledger.deliveries()) == before  # nothing new recorded


def test_comments_and_reviews_are_kept_for_feedback(hooked: Hooked) -> None:
    emu, world = hooked.aw.emu, hooked.aw.world
    number = world.file_issue(dispatch_body(), labels=())
    emu.add_comment(DISPATCH, number, "Please also update the docs.", as_user="octocat")
    world.run_once(**hooked.aw.settings())  # nothing to do: not labeled, but creates nothing either
    emu.create_issue(TARGET, "a PR stand-in", "x")
    emu.wait_for_deliveries()
    feedback = hooked.app.ledger.deliveries(outcome="feedback")
    assert [(d.event, d.issue_number) for d in feedback] == [("issue_comment", number)]
    assert feedback[0].payload is not None and feedback[0].payload["body"] == "Please also update the docs."
    assert hooked.metric("issue_comment", "feedback") == 1


def test_webhook_work_starts_without_waiting_for_a_poll(hooked: Hooked) -> None:
    emu, world = hooked.aw.emu, hooked.aw.world
    hooked.serve()
    wait_until(lambda: hooked.app.metrics.registry.get_sample_value(
        "agent_runner_polls_total", {"result": "ok"}) == 1)
    number = world.file_issue(dispatch_body(instruction=f"Add a line.\n\n{README_PATCH}"))

    wait_until(lambda: "processed" in world.labels(number))

    log = emu.request_log
    lists = [i for i, r in enumerate(log) if r.method == "GET" and r.path == f"/repos/{DISPATCH}/issues"]
    created = next(i for i, r in enumerate(log) if r.method == "POST" and r.path == f"/repos/{TARGET}/pulls")
    assert len(lists) == 1 and lists[0] < created  # the only poll ran before the issue existed
    assert len(world.pulls()) == 1
    # Its own label and comment came back as deliveries and were recognised as its own.
    emu.wait_for_deliveries()
    assert hooked.metric("issue_comment", "ignored") >= 1
    assert not hooked.app.ledger.deliveries(outcome="feedback")


def test_polling_and_webhooks_together_make_one_of_everything(emu: GitHubEmulator, tmp_path: Path) -> None:
    aw = make_app_world(emu, tmp_path)
    hooked = Hooked(aw, webhook_poll_interval_seconds=0.2)
    try:
        hooked.serve()
        number = aw.world.file_issue(dispatch_body(instruction=f"Add a line.\n\n{README_PATCH}"))
        wait_until(lambda: "processed" in aw.world.labels(number))
        emu.wait_for_deliveries()
        polls = hooked.app.metrics.registry.get_sample_value("agent_runner_polls_total", {"result": "ok"}) or 0
        wait_until(lambda: (hooked.app.metrics.registry.get_sample_value(
            "agent_runner_polls_total", {"result": "ok"}) or 0) >= polls + 2)
    finally:
        hooked.close()
    assert len(aw.world.pulls()) == 1
    assert len([c for c in aw.world.comments(number) if "agent-runner:result" in c["body"]]) == 1
    assert aw.world.labels(number) == {"copilot-agent", "processed"}
    labeled = [e for e in emu.events(DISPATCH, number) if e["event"] == "labeled"
               and e["label"]["name"] == "processed"]
    assert len(labeled) == 1
    record = hooked.app.ledger.get(TaskKey(DISPATCH, number))
    assert record is not None and record.attempt == 1 and record.status == "succeeded"


def test_serve_needs_a_webhook_secret(emu: GitHubEmulator, tmp_path: Path) -> None:
    aw = make_app_world(emu, tmp_path)
    env = aw.world.env(GITHUB_APP_ID=str(aw.app.id), GITHUB_APP_PRIVATE_KEY=aw.app.private_key_pem)
    env.pop("GITHUB_TOKEN")
    result = aw.world.cli("serve", env=env, timeout=60)
    assert result.returncode == 2 and "WEBHOOK_SECRET" in result.stderr
