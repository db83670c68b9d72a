"""Expose liveness, readiness and Prometheus metrics over a small HTTP server.

`/healthz` says the loop is turning and GitHub still accepts the token (it
fails after AUTH_FAILURES_UNHEALTHY polls in a row are refused with 401/403,
so the container turns unhealthy instead of idling forever), `/readyz` that
the last poll reached GitHub (and that the operator's `health_check` hook, if
any, passes), and `/metrics` is the Prometheus text format. The container's HEALTHCHECK runs
`agent-runner healthcheck`, which asks `/healthz` on localhost.

With a :class:`runner.ops.status_page.StatusPage`, the same server answers
`/` (the status page), `/api/status` (its JSON), `/api/events` (its live
stream), `/login` and `/static/…`; STATUS_TOKEN guards those, never the probes.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from runner.metrics import Metrics
from runner.ops.status_page import SAFE_HEADERS, STATUS_CSS, STATUS_JS, StatusPage, render_login

HTML = "text/html; charset=utf-8"
JSON = "application/json"
#: The login form's body is one short field.
MAX_FORM_BYTES = 4096


class HealthServer:
    """Serve /healthz, /readyz and /metrics in a daemon thread."""

    def __init__(self, metrics: Metrics, host: str = "127.0.0.1", port: int = 8080,
                 status: StatusPage | None = None) -> None:
        metrics_ref = metrics
        page_ref = status
        self.status = status

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path == "/healthz":
                    problem = metrics_ref.health_problem()
                    self._reply(503 if problem else 200, f"{problem or 'ok'}\n".encode())
                elif self.path == "/readyz":
                    problem = metrics_ref.ready_problem()
                    text = f"not ready: {problem}\n" if problem else "ready\n"
                    degraded = metrics_ref.degraded()  # a dependency down: ready all the same, and says so
                    text += f"dependencies: {degraded or 'all up'}\n"
                    self._reply(503 if problem else 200, f"{text}sandbox: {metrics_ref.sandbox}\n".encode())
                elif self.path == "/metrics":
                    self._reply(200, generate_latest(metrics_ref.registry), CONTENT_TYPE_LATEST)
                elif page_ref is not None and _status_get(self, page_ref):
                    return
                else:
                    self._reply(404, b"try /healthz, /readyz or /metrics\n")

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                if page_ref is not None and urllib.parse.urlsplit(self.path).path == "/login":
                    _login(self, page_ref)
                else:
                    self._reply(404, b"not found\n")

            def _reply(self, status: int, body: bytes, ctype: str = "text/plain; charset=utf-8",
                       headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None  # probes every few seconds would flood the log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()  # ends the live streams, which would hold their threads
        self._server.shutdown()
        self._server.server_close()


def _status_get(handler: Any, page: StatusPage) -> bool:
    """Answer the status page's routes; False when the path is not one of them."""
    path = urllib.parse.urlsplit(handler.path).path
    if path == "/static/status.js":
        handler._reply(200, STATUS_JS.encode(), "text/javascript; charset=utf-8", SAFE_HEADERS)
    elif path == "/static/status.css":
        handler._reply(200, STATUS_CSS.encode(), "text/css; charset=utf-8", SAFE_HEADERS)
    elif path == "/login":
        handler._reply(200, render_login().encode(), HTML, SAFE_HEADERS)
    elif path not in ("/", "/api/status", "/api/events"):
        return False
    elif not page.allows(handler.headers):
        _refuse(handler, api=path != "/")
    elif path == "/":
        handler._reply(200, page.page().encode(), HTML, SAFE_HEADERS)
    elif path == "/api/status":
        body = json.dumps(page.document(), indent=2).encode()
        handler._reply(200, body, JSON, SAFE_HEADERS)
    else:
        _stream(handler, page)
    return True


def _refuse(handler: Any, *, api: bool) -> None:
    headers = {**SAFE_HEADERS, "WWW-Authenticate": 'Bearer realm="agent-runner status"'}
    if api:
        body = json.dumps({"error": "STATUS_TOKEN is set: send it as `Authorization: Bearer <token>`."})
        handler._reply(401, body.encode(), JSON, headers)
    else:
        handler._reply(401, render_login().encode(), HTML, headers)


def _login(handler: Any, page: StatusPage) -> None:
    size = int(handler.headers.get("Content-Length") or 0)
    if size > MAX_FORM_BYTES:
        handler._reply(413, b"too large\n")
        return
    form = urllib.parse.parse_qs(handler.rfile.read(size).decode(errors="replace"))
    cookie = page.login((form.get("token") or [""])[0])
    if cookie is None:
        handler._reply(401, render_login(failed=page.guarded).encode(), HTML, SAFE_HEADERS)
        return
    handler.send_response(303)
    for name, value in {**SAFE_HEADERS, "Set-Cookie": cookie, "Location": "/", "Content-Length": "0"}.items():
        handler.send_header(name, value)
    handler.end_headers()


def _stream(handler: Any, page: StatusPage) -> None:
    """Server-sent events until the client goes or the server stops."""
    handler.send_response(200)
    for name, value in {**SAFE_HEADERS, "Content-Type": "text/event-stream; charset=utf-8",
                        "Connection": "close"}.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.close_connection = True
    try:
        for chunk in page.events():
            handler.wfile.write(chunk)
            handler.wfile.flush()
    except (BrokenPipeError, ConnectionResetError):
        return


def probe(url: str, timeout: float = 3.0) -> tuple[bool, str]:
    """What the container HEALTHCHECK runs: GET the URL, healthy on 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (local URL)
            return resp.status == 200, resp.read().decode(errors="replace").strip()
    except urllib.error.HTTPError as exc:
        return False, f"{exc.code} {exc.read().decode(errors='replace').strip()}"
    except OSError as exc:
        return False, f"unreachable: {exc}"
