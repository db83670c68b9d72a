"""Render the status document as one HTML page, safe by construction, and guard it with STATUS_TOKEN.

The page is rendered on the server; its only script (``/static/status.js``,
served by the runner, no framework, no CDN) listens to ``/api/events``
(server-sent events) and swaps in the freshly rendered sections, so the
page stays live and keeps its scroll position. Every piece of text is
escaped here, where it becomes HTML, and the Content-Security-Policy
(:data:`CSP`) allows no inline script, no inline style and nothing from
another origin, so even a missed escape would run nothing.

With ``STATUS_TOKEN`` set, the page and the API take the token as
``Authorization: Bearer …``, or a cookie that the login form sets; the
cookie holds an HMAC of the token, never the token itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from html import escape
from http.cookies import SimpleCookie
from typing import Any

from runner.ledger.status import format_duration
from runner.ops.status_model import StatusSources, build_status

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
#: Headers on every page, API answer and asset.
SAFE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
COOKIE = "agent_runner_status"
#: The live stream sends at most one frame per this many seconds.
COALESCE_S = 0.25
#: A document this young, with nothing changed in memory, serves every viewer (Temporal's
#: visibility API and the ledger are asked once, not once per open page).
REUSE_S = 1.0
_SESSION_SALT = b"agent-runner status page session v1"


class StatusPage:
    """The status page, its JSON and its live stream over one set of sources."""

    def __init__(self, sources: StatusSources, *, clock: Callable[[], datetime], token: str | None = None,
                 refresh_s: float = 2.0) -> None:
        self.sources = sources
        self.clock = clock
        self.refresh_s = refresh_s
        self._token = token or None
        self._session = _session_value(token) if token else None
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._cached: tuple[float, int, dict[str, Any]] | None = None  # (monotonic, live version, document)

    # -- access ------------------------------------------------------------------

    @property
    def guarded(self) -> bool:
        return self._token is not None

    def allows(self, headers: Mapping[str, str]) -> bool:
        """Whether the request carries the token (bearer) or the login cookie; always with no STATUS_TOKEN."""
        if self._token is None or self._session is None:
            return True
        auth = headers.get("Authorization") or ""
        scheme, _, given = auth.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token.encode()):
            return True
        jar = SimpleCookie()
        try:
            jar.load(headers.get("Cookie") or "")
        except Exception:  # noqa: BLE001 (a malformed cookie header is simply no cookie)
            return False
        morsel = jar.get(COOKIE)
        return morsel is not None and hmac.compare_digest(morsel.value.encode(), self._session.encode())

    def login(self, given: str) -> str | None:
        """The Set-Cookie value for a correct token from the login form, else None."""
        if self._token is None or self._session is None:
            return None
        if not hmac.compare_digest(given.strip().encode(), self._token.encode()):
            return None
        return f"{COOKIE}={self._session}; Path=/; HttpOnly; SameSite=Strict"

    # -- content -----------------------------------------------------------------

    def document(self, *, fresh: bool = False) -> dict[str, Any]:
        """The document, built at most once per :data:`REUSE_S` however many pages and streams ask."""
        version = self.sources.live.version if self.sources.live is not None else 0
        with self._lock:
            now = time.monotonic()
            if (not fresh and self._cached is not None and self._cached[1] == version
                    and now - self._cached[0] < REUSE_S):
                return self._cached[2]
            doc = build_status(self.sources, self.clock())
            self._cached = (now, version, doc)
            return doc

    def page(self) -> str:
        return render_page(self.document(), refresh_s=self.refresh_s)

    def events(self) -> Iterator[bytes]:
        """Server-sent events: a ``status`` event at once, then on every change or every ``refresh_s``."""
        live = self.sources.live
        seen = live.version if live is not None else 0  # read before each view: no change slips between
        yield b"retry: 2000\n\n"
        while not self.stopping.is_set():
            doc = self.document()
            slim = {k: v for k, v in doc.items() if k != "tasks"}
            data = json.dumps({"doc": slim, "html": render_main(doc)}, separators=(",", ":"))
            yield f"event: status\ndata: {data}\n\n".encode()
            self.stopping.wait(COALESCE_S)  # a burst of events (a busy model) makes one frame, not many
            if live is not None:
                seen = live.wait_change(seen, self.refresh_s)
            else:
                self.stopping.wait(self.refresh_s)

    def stop(self) -> None:
        self.stopping.set()
        if self.sources.live is not None:
            self.sources.live.poke()


def _session_value(token: str) -> str:
    return hmac.new(token.encode(), _SESSION_SALT, hashlib.sha256).hexdigest()


# -- rendering ---------------------------------------------------------------------


def render_page(doc: Mapping[str, Any], *, refresh_s: float = 2.0) -> str:
    """The whole page: the head, the header, and the sections the live stream replaces."""
    runner = doc["runner"]
    title = f"agent-runner · {runner['dispatch_repo']}"
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{_e(title)}</title><link rel=\"stylesheet\" href=\"/static/status.css\">"
        "<script src=\"/static/status.js\" defer></script></head><body>"
        f"<header><h1>agent-runner <span class=\"repo\">{_e(runner['dispatch_repo'])}</span></h1>"
        f"<p class=\"meta\">replica <code>{_e(runner['owner'] or '-')}</code> · executor {_e(runner['executor'])}"
        f" · ledger {_e(runner['store'])} · <span id=\"live\" data-refresh=\"{refresh_s:g}\">static</span></p>"
        "</header>"
        f"<main id=\"status\">{render_main(doc)}</main>"
        "<footer>Served by the runner from its memory and its ledger; loading it asks GitHub nothing. "
        "JSON: <a href=\"/api/status\">/api/status</a></footer></body></html>\n"
    )


def render_main(doc: Mapping[str, Any]) -> str:
    """The sections, as the live stream sends them."""
    runner = doc["runner"]
    parts = [
        f"<p class=\"generated\">As of <time datetime=\"{_e(doc['generated_at'])}\">"
        f"{_e(_clock(doc['generated_at']))}</time> UTC · {runner['busy']} of {runner['workers']} worker(s) "
        "busy here</p>",
        _section("running", f"Running ({len(doc['running'])})", _running(doc["running"]), "Nothing is running."),
        _section("queued", f"Queued ({len(doc['queued'])})", _queued(doc["queued"]), "Nothing is waiting."),
        _section("recent", f"Recent ({len(doc['recent'])})", _recent(doc["recent"]), "No task has finished yet."),
        _section("dependencies", "Dependencies", _dependencies(doc.get("dependencies") or []),
                 "No dependency called yet."),
        _section("budget", "Write budget", _budget(doc["write_budget"]), _e(doc["write_budget"].get("note")
                                                                            or "No write to GitHub yet.")),
        _section("fleet", "Fleet", _fleet(doc["fleet"]), "No replica has held a lease yet."),
    ]
    return "".join(parts)


def _section(ident: str, heading: str, table: str, empty: str) -> str:
    body = table or f"<p class=\"empty\">{empty}</p>"
    return f"<section id=\"{ident}\"><h2>{_e(heading)}</h2>{body}</section>"


def _table(head: tuple[str, ...], rows: list[str], cls: str) -> str:
    if not rows:
        return ""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    return f"<table class=\"{cls}\"><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _row(issue: int, cells: list[str], cls: str = "") -> str:
    tds = "".join(f"<td>{c}</td>" for c in cells)
    return f"<tr id=\"task-{int(issue)}\" class=\"task {cls}\" data-issue=\"{int(issue)}\">{tds}</tr>"


def _issue_cell(row: Mapping[str, Any]) -> str:
    link = _link(row.get("issue_url"), f"#{row['issue']}")
    title = f"<span class=\"title\">{_e(row['title'])}</span>" if row.get("title") else ""
    task = f"<span class=\"task-id\">{_e(row['task_id'])}</span>" if row.get("task_id") else ""
    return f"{link} {title}{task}"


def _running(rows: list[dict[str, Any]]) -> str:
    out = []
    for r in rows:
        step = _e(r["step"]) + (f"<span class=\"detail\">{_e(r['message'])}</span>" if r.get("message") else "")
        where = _e(r.get("workflow_id") or r.get("owner") or "-")
        out.append(_row(r["issue"], [
            _issue_cell(r), _e(r.get("target") or "-"), _e(r.get("generator") or "-"), _e(r.get("model") or "-"),
            f"<span class=\"step\">{step}</span>", _tokens(r.get("tokens")), _cost(r.get("cost_usd")),
            _e(_dur(r.get("elapsed_s"))), f"<code>{where}</code>"], "running"))
    return _table(("Issue", "Target", "Generator", "Model", "Step", "Tokens", "Cost", "Elapsed", "Where"),
                  out, "running")


def _queued(rows: list[dict[str, Any]]) -> str:
    out = [_row(r["issue"], [
        _issue_cell(r), f"<span class=\"badge wait-{_e(r['waiting_for'].replace(' ', '-'))}\">"
        f"{_e(r['waiting_for'])}</span>", _e(r["why"]), str(int(r["attempt"])), str(int(r["failures"]))], "queued")
        for r in rows]
    return _table(("Issue", "Waiting for", "Why", "Attempt", "Failures"), out, "queued")


def _recent(rows: list[dict[str, Any]]) -> str:
    out = []
    for r in rows:
        ok = r["outcome"] == "succeeded"
        out.append(_row(r["issue"], [
            _issue_cell(r), f"<span class=\"badge {'ok' if ok else 'bad'}\">{_e(r['outcome'])}</span>",
            f"<span class=\"reason\">{_e(r.get('reason') or '')}</span>",
            _link(r.get("pr_url"), _pr_label(r.get("pr_url"))) if r.get("pr_url") else "-",
            str(int(r["rounds"])), _cost(r.get("cost_usd")), _e(_dur(r.get("duration_s"))),
            _e(_clock(r["finished_at"]))], "recent " + ("succeeded" if ok else "failed")))
    return _table(("Issue", "Outcome", "Reason", "Pull request", "Rounds", "Cost", "Duration", "Finished"),
                  out, "recent")


def _budget(budget: Mapping[str, Any]) -> str:
    out = []
    for b in budget["buckets"]:
        rate = b.get("rate_limit")
        left = f"{rate['remaining']} of {rate['limit']} (resets {_clock(rate['reset_at'])})" if rate else "not seen yet"
        minute = f"{b['writes_last_minute']}" + (f" / {b['per_minute']}" if b.get("per_minute") else "")
        hour = f"{b['writes_last_hour']}" + (f" / {b['per_hour']}" if b.get("per_hour") else "")
        if b.get("all_replicas_writes_last_hour") is not None:
            hour += f" (all replicas: {b['all_replicas_writes_last_hour']})"
        wait = b["next_write_in_s"]
        slot = "now" if wait <= 0 else f"in {wait:.1f}s"
        if b.get("retry_after_s"):
            slot += f" (GitHub said Retry-After, {b['retry_after_s']:g}s left)"
        out.append(f"<tr><td><code>{_e(b['credential'])}</code></td><td>{_e(minute)}</td><td>{_e(hour)}</td>"
                   f"<td>{int(b['reserved'])}</td><td>{_e(slot)}</td><td>{_e(left)}</td></tr>")
    table = _table(("Credential", "Writes, last minute", "Writes, last hour", "Waiting", "Next free slot",
                    "Primary rate limit left"), out, "budget")
    if table and not budget.get("pacing", True):
        table += "<p class=\"note\">Write pacing is off (GITHUB_THROTTLE=false).</p>"
    return table


def _dependencies(rows: list[dict[str, Any]]) -> str:
    out = [f"<tr><td><code>{_e(d['name'])}</code></td><td><span class=\"badge {'ok' if d['up'] else 'bad'}\">"
           f"{'up' if d['up'] else 'down'}</span></td>"
           f"<td>{_e('-' if d['up'] else _dur(d['open_seconds']))}</td></tr>" for d in rows]
    return _table(("Dependency", "State", "Down for"), out, "dependencies")


def _fleet(fleet: Mapping[str, Any]) -> str:
    out = []
    for rep in fleet["replicas"]:
        leases = ", ".join(f"#{int(lease['issue'])}" + (" (expired)" if lease["expired"] else "")
                           for lease in rep["leases"]) or "-"
        me = " <span class=\"badge\">this replica</span>" if rep["this"] else ""
        out.append(f"<tr><td><code>{_e(rep['owner'])}</code>{me}</td><td>{_e(leases)}</td>"
                   f"<td>{int(rep['tasks'])}</td><td>{_e(_clock(rep['last_seen']))}</td></tr>")
    table = _table(("Replica", "Holds the lease of", "Tasks it ran", "Last activity"), out, "fleet")
    flows = [f"<tr><td>#{int(w['issue'])}</td><td><code>{_e(w['workflow_id'])}</code></td>"
             f"<td>{_e(w['status'])}</td></tr>" for w in fleet.get("workflows", [])]
    table += _table(("Issue", "Temporal workflow", "Status"), flows, "workflows")
    if table and not fleet.get("shared"):
        table += "<p class=\"note\">One replica: the ledger is not shared (SQLite).</p>"
    return table


# -- small formatters ---------------------------------------------------------------


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _link(url: str | None, label: str) -> str:
    if not url or not url.startswith(("https://", "http://")):
        return _e(label)
    return f"<a href=\"{_e(url)}\" rel=\"noopener noreferrer\">{_e(label)}</a>"


def _pr_label(url: str | None) -> str:
    if not url:
        return "-"
    parts = url.rstrip("/").split("/")
    return f"{parts[-4]}/{parts[-3]}#{parts[-1]}" if len(parts) >= 4 and parts[-2] == "pull" else url


def _tokens(value: int | None) -> str:
    return "-" if not value else f"{int(value):,}"


def _cost(value: float | None) -> str:
    return "-" if value is None else f"${float(value):.4f}"


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return format_duration(seconds) + (f" {int(seconds % 60):02d}s" if seconds < 3600 else "")


def _clock(iso: str | None) -> str:
    """`2026-12-07T23:01:02+00:00` → `23:01:02` (the date when it is not today is in the tooltip-free JSON)."""
    if not iso:
        return "-"
    try:
        return datetime.fromisoformat(iso).strftime("%H:%M:%S")
    except ValueError:
        return iso


# -- the login form and the assets ----------------------------------------------------


def render_login(*, failed: bool = False) -> str:
    note = "<p class=\"bad\">That is not the status token.</p>" if failed else ""
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>agent-runner · sign in</title>"
        "<link rel=\"stylesheet\" href=\"/static/status.css\"></head><body><main class=\"login\">"
        "<h1>agent-runner status</h1><p>This page needs the status token (STATUS_TOKEN).</p>"
        f"{note}<form method=\"post\" action=\"/login\"><label>Token <input type=\"password\" name=\"token\" "
        "autocomplete=\"current-password\" required autofocus></label> <button type=\"submit\">Sign in</button>"
        "</form></main></body></html>\n"
    )


STATUS_JS = """\
// Keep the status page live: swap in the server-rendered sections on every event (no reload,
// so the scroll position stays). The server escapes every text; the CSP forbids inline script.
(function () {
  "use strict";
  var main = document.getElementById("status");
  var live = document.getElementById("live");
  if (!main || !window.EventSource) { return; }
  var source = new EventSource("/api/events");
  source.addEventListener("status", function (event) {
    var data = JSON.parse(event.data);
    var fresh = new DOMParser().parseFromString("<main>" + data.html + "</main>", "text/html");
    main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.body.firstChild.childNodes));
    if (live) { live.textContent = "live"; live.className = "on"; }
  });
  source.onerror = function () {
    if (live) { live.textContent = "reconnecting\\u2026"; live.className = "off"; }
  };
})();
"""

STATUS_CSS = """\
:root { color-scheme: light dark; --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --bg: #ffffff;
        --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --chip: #eaeef2; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --muted: #8d96a0; --line: #30363d; --bg: #0d1117; --chip: #21262d; }
}
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
       background: var(--bg); margin: 0 auto; max-width: 1400px; padding: 16px 24px; }
h1 { font-size: 20px; margin: 0; } h1 .repo { color: var(--muted); font-weight: normal; }
h2 { font-size: 16px; margin: 22px 0 6px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.meta, .generated, footer, .note, .empty { color: var(--muted); }
footer { margin-top: 28px; font-size: 12px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; font-size: 12px; color: var(--muted); }
td .title { display: block; } td .task-id { display: block; color: var(--muted); font-size: 12px; }
.detail { display: block; color: var(--muted); font-size: 12px; }
.reason { color: var(--bad); }
.badge { display: inline-block; border-radius: 10px; padding: 0 8px; background: var(--chip); font-size: 12px; }
.badge.ok { color: var(--ok); } .badge.bad { color: var(--bad); }
.badge.wait-retry-time, .badge.wait-write-budget, .badge.wait-lease, .badge.wait-service { color: var(--warn); }
#live.on { color: var(--ok); } #live.off { color: var(--warn); }
code { font-size: 12px; }
a { color: #0969da; }
.login { max-width: 420px; margin: 80px auto; } .login .bad { color: var(--bad); }
"""
