"""Move bytes between sockets and the emulator: REST to :class:`App`, git to ``http-backend``.

A ``ThreadingHTTPServer`` speaking HTTP/1.1, so clients keep their
connections alive, and git's chunked uploads and streamed packs both work.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO

import structlog

from .app import App
from .errors import EmulatorError
from .git_http import GIT_PREFIX, CgiReply, authorize_git, parse_target, run_backend
from .routing import Request

_CHUNK = 64 * 1024
_log = structlog.get_logger(__name__)


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that went away (killed, timed out) is not an error worth a traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: EmulatorServer
    server_version = "GitHub.com"

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_GET

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet; the request log is the record."""

    def _handle(self) -> None:
        try:
            if self.path.startswith(GIT_PREFIX):
                self._git()
            else:
                self._api()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _copy_body(self, sink: IO[bytes]) -> int:
        """Copy the request body into ``sink``, undoing chunked transfer encoding."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            total = 0
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                sink.write(self.rfile.read(size))
                self.rfile.readline()
                total += size
            while self.rfile.readline().strip():  # trailers
                pass
            return total
        remaining = length = int(self.headers.get("Content-Length") or 0)
        while remaining:
            data = self.rfile.read(min(remaining, _CHUNK))
            if not data:
                break
            sink.write(data)
            remaining -= len(data)
        return length - remaining

    def _api(self) -> None:
        with tempfile.SpooledTemporaryFile() as body:
            self._copy_body(body)
            body.seek(0)
            request = Request.parse(self.command, self.path, dict(self.headers.items()), body.read())
        reply = self.server.app.handle(request)
        body_bytes = b"" if self.command == "HEAD" else reply.body
        self._send(reply.status, reply.headers.items(), [body_bytes], length=len(reply.body))

    def _send(self, status: int, headers: Iterable[tuple[str, str]], body: Iterable[bytes],
              *, length: int | None = None) -> None:
        """Write a response; without a known length the body goes out chunked."""
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length" if length is not None else "Transfer-Encoding",
                         str(length) if length is not None else "chunked")
        self.end_headers()
        for chunk in body:
            if length is not None:
                self.wfile.write(chunk)
            elif chunk:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        if length is None:
            self.wfile.write(b"0\r\n\r\n")

    def _then_ci(self, cgi: CgiReply, full_name: str, before: dict[str, str] | None, user: str) -> Iterator[bytes]:
        """Stream git's answer; after a push (refs updated), run the repository's CI before the answer ends,
        so a client sees the new commit's checks as soon as its push returns."""
        yield from cgi.body()
        if before is not None:
            try:
                self.server.app.backend.ci.after_push(full_name, before, user)
            except Exception:  # noqa: BLE001 - CI must never break a push
                _log.exception("emulated CI failed after a push", repo=full_name)

    def _git(self) -> None:
        app = self.server.app
        path, _, query = self.path.partition("?")
        principal = app.principal_for(self.headers.get("Authorization"))
        login = principal.login if principal else None
        headers = {k.lower(): v for k, v in self.headers.items()}
        with tempfile.TemporaryFile() as body:
            length = self._copy_body(body)
            body.seek(0)
            rule = app.faults.take(self.command, path, is_git=True)
            if rule is not None:
                rule.sleep()
            try:
                if rule is not None and rule.status is not None:
                    raise EmulatorError(rule.error_message(), status=rule.status)
                target = parse_target(path, query)
                if target is None:
                    raise EmulatorError("Not Found", status=404)
                full_name, user = authorize_git(app.backend, target, login,
                                                principal.installation_id if principal else None)
                pushed = self.command == "POST" and target.rest.endswith("/git-receive-pack")
                before = app.backend.git(app.backend.store.repo(full_name)).branches() if pushed else None
                cgi = run_backend(
                    app.backend.git_root, full_name=full_name, target=target, method=self.command,
                    query=query, headers=headers, body=body, content_length=length, remote_user=user,
                )
            except EmulatorError as exc:
                extra = [("WWW-Authenticate", 'Basic realm="GitHub"')] if exc.status == 401 else []
                if rule is not None and rule.retry_after is not None:
                    extra.append(("Retry-After", str(int(rule.retry_after))))
                text = f"{exc.message}\n".encode()
                self._send(exc.status, [("Content-Type", "text/plain"), *extra], [text], length=len(text))
                app.record(self.command, path, query, exc.status, login, headers, fault=rule is not None, git=True)
                return
            try:
                self._send(cgi.status, cgi.headers, self._then_ci(cgi, full_name, before, user))
            finally:
                cgi.close()
        app.record(self.command, path, query, cgi.status, login, headers, fault=rule is not None, git=True)
