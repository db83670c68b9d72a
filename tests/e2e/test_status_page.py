"""The status page in a real browser: tasks where they belong, hostile text inert, live, guarded, no GitHub call.

A runner (the real app, its thread executor and its health server) works on
the emulator with tasks in every state: one succeeded and one failed (with a
hostile title), one held mid-generation by a gate hook at the model's second
turn (hostile title), one queued behind it, one backing off until a retry
time and one leased by another replica. Debian's chromium loads the page
headless (`--dump-dom`, `--screenshot`); with CI=true a missing chromium
fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, cast

import pytest
from github_emulator.llm import OpenAIEmulator, Reply

from runner.app import App, status_page
from runner.hooks.plugins import Hook
from runner.ledger.base import Ledger, TaskKey
from runner.ops.health import HealthServer
from tests.conftest import DISPATCH, README_PATCH, REPO_ROOT, World, dispatch_body

IMG_TITLE = "<img src=x onerror=\"document.title='pwned-img'\">Fix the greeting"
SCRIPT_TITLE = "</script><script>document.title='pwned-script'</script>Broken task"
HOSTILE_TARGET = "octo/<img src=x onerror=\"document.title='pwned-reason'\">"
MODEL_KEY = "sk-status-page-model-key-0123456789"
STATUS_TOKEN = "status-token-for-the-test-0123456789"
#: docs/status-page.png is taken again only on request (UPDATE_DOCS_SCREENSHOT=1): a test run leaves the
#: checkout as it found it.
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "status-page.png"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; CI installs it (.ci/run: apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def browse(url: str, *extra: str, tmp: Path) -> str:
    """Chromium headless, as the issue says: `--dump-dom` or `--screenshot`, with a throw-away profile.

    No virtual-time budget: it would wait for the live stream (which never ends) to finish.
    """
    done = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={tmp / 'chromium-profile'}",
                           *extra, url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@dataclass
class Gate(Hook):
    """Hold a task where the test wants it: the model's second turn, or the start of generating."""

    at_turn: dict[int, int] = field(default_factory=dict)  # issue -> the turn to stop at
    at_generate: set[int] = field(default_factory=set)
    reached: dict[int, threading.Event] = field(default_factory=dict)
    release: dict[int, threading.Event] = field(default_factory=dict)

    def hold(self, issue: int) -> None:
        self.reached[issue] = threading.Event()
        self.release[issue] = threading.Event()

    def _wait(self, issue: int) -> None:
        self.reached[issue].set()
        assert self.release[issue].wait(60), f"the test never released #{issue}"

    def on_stage(self, *, issue: int, task: Any, stage: str) -> None:
        if issue in self.at_generate and stage == "generate":
            self._wait(issue)

    def on_progress(self, *, issue: int, task: Any, message: str | None = None, usage: Any = None) -> None:
        turn = self.at_turn.get(issue)
        if turn is not None and message and message.startswith(f"turn {turn}/"):
            self._wait(issue)


class Sections(HTMLParser):
    """Which section (running, queued, recent, ...) each task row sits in, and the text of each row."""

    def __init__(self) -> None:
        super().__init__()
        self.section: str | None = None
        self.row: int | None = None
        self.rows: dict[int, tuple[str, list[str]]] = {}
        self.images: list[dict[str, str | None]] = []
        self.scripts: list[dict[str, str | None]] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "section":
            self.section = found.get("id")
        elif tag == "tr" and found.get("data-issue"):
            self.row = int(found["data-issue"] or 0)
            self.rows[self.row] = (self.section or "?", [])
        elif tag == "img":
            self.images.append(found)
        elif tag == "script":
            self.scripts.append(found)
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self.row = None
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self.row is not None:
            self.rows[self.row][1].append(data)

    def text(self, issue: int) -> str:
        return " ".join(" ".join(self.rows[issue][1]).split())

    def where(self, issue: int) -> str | None:
        return self.rows[issue][0] if issue in self.rows else None


def parse(html: str) -> Sections:
    found = Sections()
    found.feed(html)
    return found


@dataclass
class Served:
    app: App
    server: HealthServer
    gate: Gate
    stop: threading.Event
    thread: threading.Thread
    numbers: dict[str, int]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


def get(url: str, **headers: str) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 (local)
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def wait_for(check: Any, timeout: float = 30.0, what: str = "") -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    while not check():
        assert datetime.now(UTC) < deadline, f"timed out waiting for {what}"
        threading.Event().wait(0.05)


@pytest.fixture()
def served(world: World, tmp_path: Path) -> Iterator[Served]:
    """Tasks in every state, and a runner serving its status page."""
    ok = world.file_issue(dispatch_body("status-ok-1", instruction=f"Patch it.\n\n{README_PATCH}"),
                          title="Add a line to the README")
    bad = world.file_issue(dispatch_body("status-bad-1", target=HOSTILE_TARGET), title=SCRIPT_TITLE)
    with OpenAIEmulator() as model:
        model.script([Reply.tool_call("list_files", {}, input_tokens=1200, output_tokens=80),
                      Reply.tool_call("read_file", {"path": "README.md"}, input_tokens=1300, output_tokens=90),
                      Reply.tool_call("write_file", {"path": "hello.txt", "content": "hi\n"}),
                      Reply.tool_call("finish", {"summary": "Wrote hello.txt."})])
        gate = Gate()
        app = world.app(workers=1, poll_interval_seconds=600, openai_api_key=MODEL_KEY,
                        openai_base_url=f"{model.base_url}/v1", openai_model="gpt-4o-mini",
                        status_token=None)
        app.pipeline.deps.hooks.add(gate)
        running = world.file_issue(dispatch_body("status-run-1", generator="openai"), title=IMG_TITLE)
        queued = world.file_issue(dispatch_body("status-queue-1"), title="Waits for a worker")
        gate.at_turn[running] = 2
        gate.hold(running)
        gate.at_generate.add(queued)
        gate.hold(queued)

        ledger = cast(Ledger, app.ledger)
        now = datetime.now(UTC)
        later, elsewhere = TaskKey(DISPATCH, 9001), TaskKey(DISPATCH, 9002)
        ledger.enqueue(later, task_id="status-retry-1", body_hash=None, now=now - timedelta(minutes=5))
        job = ledger.claim_key(later, "replica-b:41:aa11bb", now=now - timedelta(minutes=4), lease_seconds=60)
        assert job is not None
        ledger.fail(job, now=now - timedelta(minutes=3), retry_at=now + timedelta(minutes=40),
                    error="GitHub answered 502 Bad Gateway while pushing; it will be retried.")
        ledger.enqueue(elsewhere, task_id="status-replica-b", body_hash=None, now=now - timedelta(minutes=2))
        assert ledger.claim_key(elsewhere, "replica-b:41:aa11bb", now=now - timedelta(minutes=1),
                                lease_seconds=3600) is not None

        server = HealthServer(app.metrics, "127.0.0.1", 0, status=status_page(app)).start()
        stop = threading.Event()
        thread = threading.Thread(target=app.executor.serve, args=(stop,), daemon=True)
        thread.start()
        served = Served(app, server, gate, stop, thread, {"ok": ok, "bad": bad, "running": running,
                                                          "queued": queued, "later": 9001, "elsewhere": 9002})
        try:
            assert gate.reached[running].wait(60), "the running task never reached the model's second turn"
            yield served
        finally:
            for event in gate.release.values():
                event.set()
            stop.set()
            thread.join(30)
            server.stop()


def test_the_page_shows_each_task_where_it_belongs_and_hostile_text_stays_text(
        served: Served, world: World, tmp_path: Path) -> None:
    n = served.numbers
    before = len(world.emu.request_log)

    dom = browse(served.url + "/", "--dump-dom", tmp=tmp_path)
    status, api_text, headers = get(served.url + "/api/status")

    assert len(world.emu.request_log) == before, [r.path for r in world.emu.request_log[before:]]  # no GitHub call
    page = parse(dom)
    assert page.where(n["running"]) == "running" and page.where(n["elsewhere"]) == "running"
    assert page.where(n["queued"]) == "queued" and page.where(n["later"]) == "queued"
    assert page.where(n["ok"]) == "recent" and page.where(n["bad"]) == "recent"

    running = page.text(n["running"])
    assert IMG_TITLE in running  # the hostile title, as text
    assert "octocat/target" in running and "openai" in running and "gpt-4o-mini" in running
    assert "model turn 2" in running and "2,670" in running and "$" in running  # 2500 in + 170 out
    assert "replica-b:41:aa11bb" in page.text(n["elsewhere"])
    assert "worker" in page.text(n["queued"])
    assert "retry time" in page.text(n["later"]) and "502 Bad Gateway" in page.text(n["later"])
    [pull] = world.pulls()
    assert "succeeded" in page.text(n["ok"]) and f"#{pull['number']}" in page.text(n["ok"])
    assert SCRIPT_TITLE in page.text(n["bad"]) and "failed" in page.text(n["bad"])
    assert f"`{HOSTILE_TARGET}` is not a valid GitHub repository name" in page.text(n["bad"])  # the reason, as text

    assert page.title.startswith("agent-runner"), page.title  # neither hostile script set it
    assert "pwned" not in page.title
    assert all(img.get("src") != "x" for img in page.images)
    assert [script.get("src") for script in page.scripts] == ["/static/status.js"]

    assert status == 200 and headers["Content-Type"].startswith("application/json")
    doc = json.loads(api_text)
    assert doc["schema"] == "agent-runner/status@1"
    assert {r["issue"] for r in doc["running"]} == {n["running"], n["elsewhere"]}
    assert {r["issue"]: r["waiting_for"] for r in doc["queued"]} == {n["queued"]: "worker", n["later"]: "retry time"}
    assert {r["issue"]: r["outcome"] for r in doc["recent"]} == {n["ok"]: "succeeded", n["bad"]: "failed"}
    [budget] = doc["write_budget"]["buckets"]
    assert budget["credential"] == "token" and budget["rate_limit"] is not None
    owners = {rep["owner"]: rep for rep in doc["fleet"]["replicas"]}
    assert owners["replica-b:41:aa11bb"]["leases"][0]["issue"] == n["elsewhere"]
    assert owners[served.app.executor.owner]["this"] is True

    for body in (dom, api_text):
        assert MODEL_KEY not in body and "emulator-token" not in body
        assert "Create a simple test file" not in body  # no instruction, no prompt

    screenshot = DOCS_SCREENSHOT if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1" else tmp_path / "page.png"
    browse(served.url + "/", f"--screenshot={screenshot}", "--window-size=1280,900",
           "--hide-scrollbars", tmp=tmp_path)
    assert screenshot.stat().st_size > 10_000
    assert len(world.emu.request_log) == before


def test_the_page_is_strict_about_what_it_loads(served: Served) -> None:
    status, body, headers = get(served.url + "/")
    assert status == 200
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert not re.search(r"<script>(?!</script>)", body) and "https://" not in body.split("<main")[0]
    assert get(served.url + "/healthz")[0] == 200 and get(served.url + "/metrics")[0] == 200


def events(url: str, stop: threading.Event, seen: list[dict[str, Any]]) -> None:
    """Read the page's live stream (what status.js listens to) into ``seen``."""
    with urllib.request.urlopen(url + "/api/events", timeout=30) as resp:  # noqa: S310 (local)
        data = ""
        for raw in resp:
            if stop.is_set():
                return
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                data = line[6:]
            elif line == "" and data:
                seen.append(json.loads(data))
                data = ""


def section_of(event: dict[str, Any], issue: int) -> str | None:
    doc = event["doc"]
    for section in ("running", "queued", "recent"):
        if any(row["issue"] == issue for row in doc[section]):
            return section
    return None


def test_a_task_moves_queued_running_done_on_the_open_page(served: Served) -> None:
    n = served.numbers
    seen: list[dict[str, Any]] = []
    stop = threading.Event()
    reader = threading.Thread(target=events, args=(served.url, stop, seen), daemon=True)
    reader.start()
    try:
        wait_for(lambda: seen and section_of(seen[-1], n["queued"]) == "queued", what="queued on the stream")
        served.gate.release[n["running"]].set()  # the running task finishes; the queued one starts
        assert served.gate.reached[n["queued"]].wait(60)
        wait_for(lambda: section_of(seen[-1], n["queued"]) == "running", what="running on the stream")
        assert f'id="task-{n["queued"]}" class="task running"' in seen[-1]["html"]
        served.gate.release[n["queued"]].set()
        wait_for(lambda: section_of(seen[-1], n["queued"]) == "recent", what="done on the stream")
    finally:
        stop.set()
    path = [section_of(event, n["queued"]) for event in seen]
    compact = [s for i, s in enumerate(path) if i == 0 or s != path[i - 1]]
    assert compact == ["queued", "running", "recent"], compact
    assert section_of(seen[-1], n["running"]) == "recent"


def test_status_token_guards_the_page_and_the_api_but_not_the_probes(world: World, tmp_path: Path) -> None:
    app = world.app(status_token=STATUS_TOKEN)
    server = HealthServer(app.metrics, "127.0.0.1", 0, status=status_page(app)).start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        answers = {path: get(url + path) for path in ("/", "/api/status", "/api/events")}
        assert {path: a[0] for path, a in answers.items()} == {"/": 401, "/api/status": 401, "/api/events": 401}
        assert '<form method="post" action="/login">' in answers["/"][1]
        assert get(url + "/api/status", Authorization="Bearer wrong")[0] == 401
        status, body, _ = get(url + "/api/status", Authorization=f"Bearer {STATUS_TOKEN}")
        assert status == 200 and json.loads(body)["schema"] == "agent-runner/status@1"
        assert get(url + "/", Authorization=f"Bearer {STATUS_TOKEN}")[0] == 200
        assert get(url + "/healthz")[0] in (200, 503) and get(url + "/metrics")[0] == 200  # not guarded

        form = urllib.request.Request(url + "/login", data=f"token={STATUS_TOKEN}".encode(), method="POST")
        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(form, timeout=10)
            raise AssertionError("the login did not redirect")
        except urllib.error.HTTPError as exc:
            assert exc.code == 303
            cookie = exc.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and STATUS_TOKEN not in cookie
        assert get(url + "/", Cookie=cookie.split(";")[0])[0] == 200
        wrong = urllib.request.Request(url + "/login", data=b"token=nope", method="POST")
        try:
            opener.open(wrong, timeout=10)
        except urllib.error.HTTPError as exc:
            assert exc.code == 401 and "Set-Cookie" not in exc.headers

        for path in ("/", "/api/status", "/login", "/static/status.js"):
            for extra in ({}, {"Authorization": f"Bearer {STATUS_TOKEN}"}):
                _, body, headers = get(url + path, **extra)
                assert STATUS_TOKEN not in body and STATUS_TOKEN not in json.dumps(headers)
                assert "emulator-token" not in body
    finally:
        server.stop()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_status_json_prints_the_same_document(world: World, served: Served) -> None:
    shown = world.cli("status", "--json", env=world.env(LEDGER_URL=served.app.settings.ledger_location))
    assert shown.returncode == 0, shown.stderr[-2000:]
    doc = json.loads(shown.stdout)
    _, api_text, _ = get(served.url + "/api/status")
    live = json.loads(api_text)
    assert doc["schema"] == live["schema"] and set(doc) == set(live)
    n = served.numbers
    assert {r["issue"] for r in doc["recent"]} == {r["issue"] for r in live["recent"]} == {n["ok"], n["bad"]}
    assert {r["issue"] for r in doc["queued"]} >= {n["later"]}
    assert doc["write_budget"]["source"] == "unavailable"  # only the running process knows it


def test_with_postgresql_every_replicas_tasks_and_leases_show(world: World, tmp_path: Path) -> None:
    """Two replicas share one PostgreSQL ledger: each page shows both, and who holds each lease."""
    from runner.ledger import open_ledger
    from tests.unit.ledger.fixtures import fresh_url

    with fresh_url("postgres", tmp_path, prefix="status_test") as url:
        app = world.app(ledger_url=url)
        other = open_ledger(url)
        server = HealthServer(app.metrics, "127.0.0.1", 0, status=status_page(app)).start()
        try:
            now = datetime.now(UTC)
            for number, owner in ((71, "replica-b:9:bbbbbb"), (72, app.executor.owner)):
                key = TaskKey(DISPATCH, number)
                other.enqueue(key, task_id=f"pg-{number}", body_hash=None, now=now)
                assert other.claim_key(key, owner, now=now, lease_seconds=600) is not None
            status, body, _ = get(f"http://127.0.0.1:{server.port}/api/status")
            assert status == 200
            doc = json.loads(body)
            assert doc["runner"]["store"] == "postgresql" and doc["fleet"]["shared"] is True
            leases = {rep["owner"]: [lease["issue"] for lease in rep["leases"]] for rep in doc["fleet"]["replicas"]}
            assert leases == {"replica-b:9:bbbbbb": [71], app.executor.owner: [72]}
            assert {r["issue"]: r["owner"] for r in doc["running"]} == {71: "replica-b:9:bbbbbb",
                                                                         72: app.executor.owner}
            assert url.split("@")[0] not in body  # no ledger credentials
        finally:
            server.stop()
            other.close()
