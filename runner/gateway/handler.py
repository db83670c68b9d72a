"""Handle one request at the gateway: the order of checks, the forwarding, and the streaming back.

In order: a probe answered here (``HEAD /``), a route that is not a model API
(403), a wrong or missing placeholder (401), a dialect this task's gateway does
not serve (403), a model off the allowlist (403), a call that would cross the
task's budget (400, not forwarded), else the call goes to the dialect's
configured upstream with the client's credentials replaced by the real key.
The answer streams back chunk by chunk; the call is metered once its whole
answer is read, before the last bytes reach the client.
"""

from __future__ import annotations

import hmac
import http.client
import json
import socket
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any

from runner.gateway import dialects, wire
from runner.gateway.body import BadBody, discard_body, read_body
from runner.gateway.dialects import Dialect, Route
from runner.gateway.meter import Refusal
from runner.gateway.upstream import Upstream, is_outage

_CHUNK = 65536


class Handler(BaseHTTPRequestHandler):
    """One client connection: route, authenticate, meter and relay each request on it."""

    #: The :class:`runner.gateway.server.Gateway` this handler serves (set by its subclass; not
    #: imported here, so that the server imports the handler and not the other way round).
    gateway: Any
    protocol_version = "HTTP/1.1"
    server_version = "agent-runner-gateway"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def setup(self) -> None:
        super().setup()
        if self.connection.family in (socket.AF_INET, socket.AF_INET6):  # headers and body are sent apart
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def address_string(self) -> str:  # a Unix socket peer has no address
        return "sandbox"

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_CONNECT = do_TRACE = do_POST

    # The request -------------------------------------------------------------

    def _handle(self) -> None:
        gw = self.gateway
        method = self.command
        path, query = wire.route_of(method, self.path)
        if (method, path) in wire.PROBES:
            return self._reply(200, b"", "text/plain")
        headers = dict(self.headers.items())
        found = dialects.route(method, path)
        dialect = dialects.dialect_of(found, headers, gw.upstreams)
        token = wire.client_token(headers, query)
        if found is None:
            refusal = (403, f"The model gateway serves only model API routes; {method} {path} is not one.", "403")
        elif token is None or not hmac.compare_digest(token.encode(), gw.token.encode()):
            refusal = (401, "The model gateway did not accept this API key; use the one the runner set in this "
                            "task's environment.", "401")
        elif dialect not in gw.upstreams:
            refusal = (403, f"This task's gateway serves only {', '.join(gw.upstreams)} calls.",
                       f"403, {dialect} not served")
        else:
            body = read_body(self.rfile, self.headers)
            if isinstance(body, BadBody):
                self.close_connection = True
                return self._error(dialect, body.status, body.message)
            return self._forward(found, dialect, method, path, dialects.forward_query(query), body)
        if not discard_body(self.rfile, self.headers):
            self.close_connection = True
        gw.note_denied(f"{method} {path} ({refusal[2]})")
        return self._error(dialect, refusal[0], refusal[1])

    def _forward(self, found: Route, dialect: Dialect, method: str, path: str, query: str, body: bytes) -> None:
        call = self.gateway.next_call()
        try:
            self._exchange(call, found, dialect, method, path, query, body)
        finally:
            self.gateway.call_done()

    def _exchange(self, call: int, found: Route, dialect: Dialect, method: str, path: str, query: str,
                  body: bytes) -> None:
        gw = self.gateway
        parsed: Any = None
        if method == "POST":
            try:
                parsed = json.loads(body) if body else None
            except (json.JSONDecodeError, UnicodeDecodeError):
                return self._error(dialect, 400, "The request body is not JSON.")
        facts = wire.request_facts(parsed, found)
        gw.recorder.request(call, method=method, path=path, dialect=dialect, headers=self.headers.items(),
                            body=body)
        if gw.models and not (found.listing and found.model is None) and facts.model not in gw.models:
            reason = f"The model `{facts.model}` is not on this runner's allowlist ({', '.join(sorted(gw.models))})."
            gw.note_denied(f"{method} {path} (403, model {facts.model})")
            gw.recorder.refused(call, method=method, path=path, status=403, reason=reason)
            return self._error(dialect, 403, reason)
        ticket = None
        if found.metered:
            admitted = gw.meter.admit(facts.model, len(body), facts.max_output)
            if isinstance(admitted, Refusal):
                gw.emit("warning", "gateway_refused_budget", kind=admitted.kind, model=facts.model)
                gw.recorder.refused(call, method=method, path=path, status=400, reason=admitted.message)
                return self._error(dialect, 400, "agent-runner: " + admitted.message, code="budget_exceeded")
            ticket = admitted
            changed = wire.with_stream_usage(parsed, path) if isinstance(parsed, dict) else None
            if changed is not None:
                body = json.dumps(changed).encode()
        upstream = gw.upstreams[dialect]
        started = time.monotonic()
        try:
            response, conn = self._send(upstream, method, upstream.target(path, query), body, dialect)
        except TimeoutError:
            return self._fail(ticket, dialect, 504, f"The model server at {upstream.origin} did not answer "
                                                    f"within {gw.read_timeout_s:g} s.", call, path)
        except (OSError, http.client.HTTPException) as exc:
            return self._fail(ticket, dialect, 502, f"The model server at {upstream.origin} could not be "
                                                    f"reached ({type(exc).__name__}: {exc}).", call, path)
        streamed = "text/event-stream" in (response.getheader("content-type") or "")
        reader = wire.UsageReader() if streamed else None
        kept = bytearray()
        settled: list[Any] = []

        def settle(complete: bool) -> None:
            """Meter the call once: when its whole answer is read (before the CLI gets the last bytes)."""
            if settled:
                return
            # An answer cut short (either side broke off) is charged at its estimate: the model may have
            # finished it.
            usage = reader.result() if reader is not None and complete else None
            if reader is None and complete and response.status < 400:
                try:
                    usage = wire.usage_from_json(json.loads(kept))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    usage = None
            spend = None
            if ticket is not None:
                if response.status >= 400 and complete and usage is None:
                    gw.meter.release(ticket)  # refused by the model server: nothing generated
                else:
                    spend = gw.meter.settle(ticket, usage, len(body))
            settled.append((usage, spend))

        ok = self._relay(response, reader, kept, dialect, lambda: settle(True))
        settle(False)
        response.close()  # read to its end; closing it lets the connection carry the next call
        if ok and not response.will_close:
            gw.pools[dialect].put(conn)
        else:
            conn.close()
        usage, spend = settled[0]
        if is_outage(response.status):  # a CLI that gives up on it makes the task wait (#29)
            gw.note_upstream_failure(f"{method} {path}: the model server answered {response.status}")
        duration_ms = (time.monotonic() - started) * 1000
        gw.recorder.response(call, status=response.status, body=bytes(kept), streamed=streamed,
                             usage=None if usage is None else {"input_tokens": usage.input_tokens,
                                                               "output_tokens": usage.output_tokens},
                             duration_ms=duration_ms)
        gw.emit("info", "gateway_call", call=call, path=path, status=response.status, model=facts.model,
                input_tokens=usage.input_tokens if usage else None,
                output_tokens=usage.output_tokens if usage else None, ms=round(duration_ms, 1),
                task_tokens=spend.tokens if spend else None)

    def _send(self, upstream: Upstream, method: str, target: str, body: bytes,
              dialect: Dialect) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
        """Send the call upstream; a kept-alive connection the server had closed is retried once, fresh."""
        pool = self.gateway.pools[dialect]
        headers = wire.upstream_headers(self.headers.items(), dialect, upstream.key)
        while True:
            conn, reused = pool.get()
            try:
                if conn.sock is None:
                    conn.connect()
                sock: socket.socket = conn.sock  # type: ignore[assignment]
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(self.gateway.read_timeout_s)
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                conn.putheader("Host", upstream.host if upstream.port in (80, 443) else
                               f"{upstream.host}:{upstream.port}")
                for name, value in headers:
                    conn.putheader(name, value)
                if method in ("POST", "PUT", "PATCH") or body:
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body or None)
                return conn.getresponse(), conn
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                if not reused:
                    raise
            except BaseException:
                conn.close()
                raise

    def _relay(self, response: http.client.HTTPResponse, reader: wire.UsageReader | None, kept: bytearray,
               dialect: Dialect, on_end: Callable[[], None]) -> bool:
        """Pass the upstream's answer to the client as it arrives; False when either side broke off.

        ``on_end`` runs once the whole answer is read, before its last bytes go out, so the
        call is metered before the CLI can send the next one.
        """
        length = response.getheader("content-length")
        chunked = length is None or response.getheader("transfer-encoding") is not None
        try:
            self.send_response(response.status)
            for name, value in wire.client_headers(response.getheaders()):
                self.send_header(name, value)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(length))
            self.end_headers()
        except OSError:
            self.close_connection = True
            return False
        while True:
            try:
                data = response.read1(_CHUNK) if not response.isclosed() else b""
            except (OSError, http.client.HTTPException) as exc:
                self.gateway.note_upstream_failure(f"the model server broke off its answer ({type(exc).__name__})")
                if chunked and reader is not None:
                    self._write_chunk(dialects.stream_error_event(dialect, "The model server broke off its answer."))
                self.close_connection = True
                return False
            if not data:
                break
            if reader is not None:
                reader.feed(data)
            if len(kept) < 4 * 1024 * 1024:
                kept += data
            if not chunked and response.length == 0:  # the last bytes of a sized answer
                on_end()
            client_ok = self._write_chunk(data) if chunked else self._write(data)
            if not client_ok:  # the CLI is gone: stop paying for an answer nobody reads
                self.close_connection = True
                return False
        if reader is not None:
            reader.close()
        on_end()
        if chunked and not self._write(b"0\r\n\r\n"):
            self.close_connection = True
            return False
        return True

    def _write_chunk(self, data: bytes) -> bool:
        return self._write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def _write(self, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            self.wfile.flush()
            return True
        except OSError:
            return False

    # Answers the gateway gives itself ----------------------------------------

    def _fail(self, ticket: Any, dialect: Dialect, status: int, message: str, call: int, path: str) -> None:
        if ticket is not None:
            self.gateway.meter.release(ticket)
        self.gateway.note_upstream_failure(message)
        self.gateway.recorder.refused(call, method=self.command, path=path, status=status, reason=message)
        self._error(dialect, status, message)

    def _error(self, dialect: Dialect, status: int, message: str, code: str | None = None) -> None:
        payload = json.dumps(dialects.error_body(dialect, status, message, code)).encode()
        self._reply(status, payload, "application/json", {"x-should-retry": "false"})

    def _reply(self, status: int, payload: bytes, content_type: str, extra: Mapping[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
