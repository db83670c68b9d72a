"""Serve one task's model calls: check the placeholder, swap in the real key, meter, and pass bytes through.

:class:`Gateway` listens on a Unix socket (bound into the sandbox and relayed
to ``127.0.0.1:PORT`` inside it) and, for ``SANDBOX=off``, on a loopback TCP
port. It owns what outlives one request: the upstreams and their kept-alive
connections, the :class:`Meter`, the :class:`Recorder`, the placeholder token,
and what was denied or failed. Each request is handled by
:class:`runner.gateway.handler.Handler`. Closing it waits briefly for calls
still settling, so the spend it returns includes every answer the CLI received.
"""

from __future__ import annotations

import os
import socketserver
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from runner.gateway.dialects import Dialect
from runner.gateway.handler import Handler
from runner.gateway.meter import Meter, Spend
from runner.gateway.record import Recorder
from runner.gateway.upstream import Pool, Upstream


@dataclass
class Stats:
    """What happened at the gateway, for the generator's report (guarded by the gateway's lock)."""

    denied: list[str] = field(default_factory=list)  # "POST /v1/other (403)", "GET /v1/models (401)"
    upstream_failures: list[str] = field(default_factory=list)


class Gateway:
    """One task's model gateway; start it, hand the CLI its endpoint, then close it."""

    def __init__(
        self,
        *,
        upstreams: Mapping[Dialect, Upstream],
        meter: Meter,
        token: str,
        recorder: Recorder | None = None,
        log: Any = None,
        models: frozenset[str] = frozenset(),
        read_timeout_s: float = 300.0,
    ) -> None:
        if not upstreams:
            raise ValueError("a gateway needs at least one upstream")
        self.upstreams = dict(upstreams)
        self.meter = meter
        self.token = token
        self.recorder = recorder or Recorder(None, secrets=())
        self.log = log
        self.models = models
        self.read_timeout_s = read_timeout_s
        self.stats = Stats()
        self.socket_path: Path | None = None
        self.tcp_port: int | None = None
        self.pools = {d: Pool(u) for d, u in self.upstreams.items()}
        self._servers: list[socketserver.BaseServer] = []
        self._lock = threading.Lock()
        self._calls = 0
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0

    # Lifecycle ---------------------------------------------------------------

    def serve_unix(self, path: Path) -> Path:
        """Listen on a Unix socket at ``path`` (only this user may connect); return it."""
        server = _UnixServer(str(path), self._handler())
        os.chmod(path, 0o600)
        self.socket_path = path
        self._start(server)
        return path

    def serve_tcp(self, host: str = "127.0.0.1") -> int:
        """Listen on a loopback TCP port (SANDBOX=off or a shared network); return the port."""
        server = _TcpServer((host, 0), self._handler())
        self.tcp_port = server.server_address[1]
        self._start(server)
        return self.tcp_port

    def close(self, drain_s: float = 5.0) -> Spend:
        """Stop serving; calls still passing (their last bytes already with the CLI) settle first."""
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=drain_s)
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        for pool in self.pools.values():
            pool.close()
        if self.socket_path is not None:
            self.socket_path.unlink(missing_ok=True)
        self.recorder.close()
        return self.meter.spend

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start(self, server: socketserver.BaseServer) -> None:
        self._servers.append(server)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                         name="model-gateway", daemon=True).start()

    def _handler(self) -> type[Handler]:
        return type("GatewayHandler", (Handler,), {"gateway": self})

    # Bookkeeping -------------------------------------------------------------

    def next_call(self) -> int:
        with self._lock:
            self._calls += 1
            self._in_flight += 1
            return self._calls

    def call_done(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def note_denied(self, what: str) -> None:
        with self._lock:
            self.stats.denied.append(what)
        self.emit("warning", "gateway_denied", request=what)

    def note_upstream_failure(self, what: str) -> None:
        with self._lock:
            self.stats.upstream_failures.append(what)
        self.emit("warning", "gateway_upstream_failed", detail=what)

    def emit(self, level: str, event: str, **fields: Any) -> None:
        """Log through the task's logger, when there is one."""
        if self.log is not None:
            getattr(self.log, level)(event, **fields)


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False


class _TcpServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
