"""Expose liveness, readiness and Prometheus metrics over a small HTTP server.

`/healthz` says the loop is turning and GitHub still accepts the token (it
fails after AUTH_FAILURES_UNHEALTHY polls in a row are refused with 401/403,
so the container turns unhealthy instead of idling forever), `/readyz` that
the last poll reached GitHub (and that the operator's `health_check` hook, if
any, passes), and `/metrics` is the Prometheus text format. The container's HEALTHCHECK runs
`agent-runner healthcheck`, which asks `/healthz` on localhost.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from runner.metrics import Metrics


class HealthServer:
    """Serve /healthz, /readyz and /metrics in a daemon thread."""

    def __init__(self, metrics: Metrics, host: str = "0.0.0.0", port: int = 8080) -> None:
        metrics_ref = metrics

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
                else:
                    self._reply(404, b"try /healthz, /readyz or /metrics\n")

            def _reply(self, status: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
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
        self._server.shutdown()
        self._server.server_close()


def probe(url: str, timeout: float = 3.0) -> tuple[bool, str]:
    """What the container HEALTHCHECK runs: GET the URL, healthy on 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (local URL)
            return resp.status == 200, resp.read().decode(errors="replace").strip()
    except urllib.error.HTTPError as exc:
        return False, f"{exc.code} {exc.read().decode(errors='replace').strip()}"
    except OSError as exc:
        return False, f"unreachable: {exc}"
