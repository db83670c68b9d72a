"""The status document and its HTML on plain values: sections, reasons, escaping, the token, no secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from runner.forge.pacer import BudgetView, WriteLimits
from runner.ledger.base import TaskKey, TaskRecord
from runner.log import Redactor
from runner.ops.live_tasks import LiveTasks
from runner.ops.status_model import StatusSources, build_status, web_url
from runner.ops.status_page import CSP, StatusPage, render_page

NOW = datetime(2026, 12, 7, 23, 0, tzinfo=UTC)
REPO = "octo/dispatch"
HOSTILE = "<img src=x onerror=alert(1)></script><script>alert(2)</script>"


def record(number: int, status: str, **extra: Any) -> TaskRecord:
    values: dict[str, Any] = dict(key=TaskKey(REPO, number), task_id=f"task-{number}", body_hash=None, status=status,
                                  attempt=1, lease_owner="me:1", lease_expires_at=None, next_attempt_at=None,
                                  pr_url=None, last_error=None, created_at=NOW - timedelta(minutes=10),
                                  updated_at=NOW - timedelta(minutes=number))
    values.update(extra)
    return TaskRecord(**values)


def sources(records: list[TaskRecord], **extra: Any) -> StatusSources:
    values: dict[str, Any] = dict(dispatch_repo=REPO, web_url="https://github.com", executor="ledger",
                                  store="postgresql", workers=1, records=lambda _n: records, owner="me:1")
    values.update(extra)
    return StatusSources(**values)


def issue(number: int, title: str) -> Any:
    return SimpleNamespace(number=number, title=title, html_url=f"https://github.com/{REPO}/issues/{number}")


def test_each_task_lands_in_its_section_with_why_it_waits() -> None:
    records = [
        record(1, "running", lease_expires_at=NOW + timedelta(minutes=1)),
        record(2, "running", lease_owner="other:2", lease_expires_at=NOW - timedelta(minutes=3)),
        record(3, "failed", next_attempt_at=NOW + timedelta(minutes=5), last_error="GitHub 502\non push"),
        record(4, "queued", lease_owner=None),
        record(5, "succeeded", pr_url="https://github.com/octo/t/pull/9", stage_seconds={"clone": 1.0, "push": 2.5}),
        record(6, "dead", last_error="Patch block 1 does not apply."),
        record(7, "succeeded", pr_url="javascript:alert(1)"),
    ]
    doc = build_status(sources(records, usage_of=lambda key: {"input_tokens": 10, "output_tokens": 5,
                                                              "cost_usd": 0.01} if key.issue_number == 5 else {},
                               rounds_of=lambda key: [{"outcome": "pushed", "cost_usd": 0.02,
                                                       "input_tokens": 1, "output_tokens": 1}]
                               if key.issue_number == 5 else []), NOW)

    assert [r["issue"] for r in doc["running"]] == [1]
    waits = {r["issue"]: (r["waiting_for"], r["why"]) for r in doc["queued"]}
    assert waits[2][0] == "lease" and "other:2" in waits[2][1] and "3m ago" in waits[2][1]
    assert waits[3][0] == "retry time" and "23:05:00 UTC (in 5m)" in waits[3][1] and "GitHub 502 on push" in waits[3][1]
    assert waits[4][0] == "claim"
    recent = {r["issue"]: r for r in doc["recent"]}
    assert recent[5]["outcome"] == "succeeded" and recent[5]["duration_s"] == 3.5 and recent[5]["rounds"] == 1
    assert recent[5]["tokens"] == 17 and recent[5]["cost_usd"] == pytest.approx(0.03)
    assert recent[6]["outcome"] == "failed" and recent[6]["reason"] == "Patch block 1 does not apply."
    assert recent[7]["pr_url"] is None  # only http(s) links
    replicas = {r["owner"]: r for r in doc["fleet"]["replicas"]}
    assert replicas["me:1"]["this"] and replicas["other:2"]["leases"] == [
        {"issue": 2, "expires_at": (NOW - timedelta(minutes=3)).isoformat(), "expired": True}]
    assert doc["fleet"]["shared"] is True
    json.dumps(doc)  # JSON all the way down


def test_a_busy_replica_and_a_paced_write_say_so() -> None:
    live = LiveTasks()
    live.on_stage(issue=1, task=None, stage="clone")
    view = BudgetView(writes_last_minute=3, writes_last_hour=40, reserved=1, next_write_in_s=2.5,
                      limits=WriteLimits(), rate_remaining=4000, rate_limit=5000, rate_reset_epoch=NOW.timestamp(),
                      hold_s=0.0, shared_writes_last_hour=120)
    doc = build_status(sources([record(4, "queued")], live=live, budgets=lambda: [("installation:7", view)]), NOW)
    assert "40 / 500 (all replicas: 120)" in render_page(doc)
    assert doc["queued"][0]["waiting_for"] == "write budget"
    [bucket] = doc["write_budget"]["buckets"]
    assert bucket["credential"] == "installation:7" and bucket["per_hour"] == 500
    assert bucket["all_replicas_writes_last_hour"] == 120
    assert bucket["rate_limit"]["remaining"] == 4000
    assert bucket["next_free_slot_at"] == (NOW + timedelta(seconds=2.5)).isoformat()
    doc = build_status(sources([record(4, "queued")], live=live), NOW)
    assert doc["queued"][0]["waiting_for"] == "worker" and doc["write_budget"]["source"] == "unavailable"


def test_the_live_registry_follows_stages_turns_usage_and_outcomes() -> None:
    live = LiveTasks(default_generator="openai")
    task = SimpleNamespace(target_repo="octo/t", task_id="t-1", generator=None, model="gpt-4o-mini")
    live.on_issue(issue=issue(1, "Fix it"))
    live.on_stage(issue=1, task=task, stage="generate")
    live.on_progress(issue=1, task=task, message="turn 3/30: write_file a.py",
                     usage=SimpleNamespace(input_tokens=100, output_tokens=20, cost_usd=0.5, model=None))
    [running] = live.running()
    assert (running.step, running.tokens, running.cost_usd, running.model) == ("model turn 3", 120, 0.5, "gpt-4o-mini")
    live.on_stage(issue=1, task=task, stage="validate_try_1")
    assert live.running()[0].step == "validating (try 1)" and live.running()[0].turn is None
    version = live.version
    live.on_outcome(issue=1, task=task, outcome=SimpleNamespace(status="succeeded", pr_url="https://x/pull/1", error=None))
    assert live.running() == [] and live.done()[0].status == "succeeded" and live.version > version
    assert live.title(1) == ("Fix it", f"https://github.com/{REPO}/issues/1")


def test_hostile_text_is_escaped_everywhere_and_secrets_are_redacted() -> None:
    live = LiveTasks()
    live.on_issue(issue=issue(1, HOSTILE))
    live.on_stage(issue=1, task=SimpleNamespace(target_repo="octo/t", task_id=HOSTILE, generator=HOSTILE,
                                                model=HOSTILE), stage="generate")
    live.on_progress(issue=1, task=None, message=f"turn 1/2: {HOSTILE} ghp_{'a' * 36}")
    live.on_issue(issue=issue(2, HOSTILE))
    records = [record(1, "running", lease_expires_at=NOW + timedelta(minutes=1)),
               record(2, "dead", last_error=f"{HOSTILE} sk-secret-value-123456"),
               record(3, "queued", task_id=HOSTILE)]
    redact = Redactor(["sk-secret-value-123456"])
    html = render_page(build_status(sources(records, live=live, redact=redact), NOW))
    assert "<img" not in html and "<script>alert" not in html and "</script><script>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert "sk-secret-value-123456" not in html and "ghp_" + "a" * 36 not in html
    assert html.count("<script") == 1 and '<script src="/static/status.js" defer></script>' in html


def test_the_token_is_a_bearer_or_the_login_cookie_and_never_the_cookie_itself() -> None:
    page = StatusPage(sources([]), clock=lambda: NOW, token="tok-123456")
    assert not page.allows({}) and not page.allows({"Authorization": "Bearer nope"})
    assert page.allows({"Authorization": "Bearer tok-123456"})
    assert page.login("nope") is None
    cookie = page.login("tok-123456")
    assert cookie is not None and "tok-123456" not in cookie
    assert page.allows({"Cookie": cookie.split(";")[0]})
    assert not page.allows({"Cookie": "agent_runner_status=tok-123456"})
    assert StatusPage(sources([]), clock=lambda: NOW).allows({})
    assert "script-src 'self'" in CSP and "unsafe" not in CSP


@pytest.mark.parametrize(("api", "web"), [("https://api.github.com", "https://github.com"),
                                          ("https://ghe.example.com/api/v3", "https://ghe.example.com"),
                                          ("http://127.0.0.1:8000", "http://127.0.0.1:8000")])
def test_web_url(api: str, web: str) -> None:
    assert web_url(api) == web


def test_under_temporal_the_fleet_lists_workflow_ids_and_running_tasks_show_theirs() -> None:
    live = LiveTasks()
    live.on_stage(issue=1, task=None, stage="push")  # Temporal keeps no lease rows: memory knows it runs
    doc = build_status(sources([record(2, "succeeded", lease_owner=None)], live=live, executor="temporal",
                               store="temporal", workflow_id=lambda n: f"agent-runner/{REPO}#{n}"), NOW)
    assert [(r["issue"], r["step"], r["workflow_id"]) for r in doc["running"]] == [
        (1, "pushing", f"agent-runner/{REPO}#1")]
    assert doc["fleet"]["workflows"] == [{"issue": 2, "workflow_id": f"agent-runner/{REPO}#2", "status": "succeeded"}]
    assert "agent-runner/octo/dispatch#1" in render_page(doc)


def test_a_task_waiting_for_a_service_says_so_and_the_dependencies_show() -> None:
    waiting = record(8, "failed", waiting_on="GitHub API (api.github.com)", waiting_since=NOW - timedelta(minutes=7),
                     next_attempt_at=NOW + timedelta(seconds=40), last_error="GitHub answered 502.")
    doc = build_status(sources([waiting], dependencies=lambda: [("github-api:api.github.com", False, 420.0),
                                                                ("model:openai:api.openai.com", True, 0.0)]), NOW)
    [row] = doc["queued"]
    assert row["waiting_for"] == "service"
    assert "GitHub API (api.github.com) is unavailable since 22:53:00 UTC; it looks again in 40s" in row["why"]
    assert doc["dependencies"] == [{"name": "github-api:api.github.com", "up": False, "open_seconds": 420.0},
                                   {"name": "model:openai:api.openai.com", "up": True, "open_seconds": 0.0}]
    html = render_page(doc)
    assert "github-api:api.github.com" in html and ">down<" in html and "7m 00s" in html
