"""Let sandboxed tools reach a few named hosts through an HTTP(S) proxy, and report every other attempt.

With ``SANDBOX_EGRESS_ALLOW=pypi.org,files.pythonhosted.org``, the sandbox's
relay serves a second port, and ``HTTPS_PROXY`` / ``HTTP_PROXY`` point there.
:class:`EgressProxy`, outside the sandbox on its own Unix socket, accepts
``CONNECT host:443`` (and absolute-form ``http://host/...`` requests) only for
those hosts and ports 443 and 80, then pipes the bytes; TLS stays end to end.
Every attempt is logged and kept, with the command that made it (the relay
names the peer process), so the result comment can say which host was blocked
and who tried it. A host that resolves to a loopback, private or link-local
address is refused unless the allowlist names that address itself.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

#: The first line the relay sends on an egress connection: the peer's command line.
PEER_PREFIX = b"AGENT-RUNNER-PEER "
DEFAULT_PORTS = frozenset({80, 443})
_MAX_LINE = 8192
_MAX_HEADERS = 100
_CHUNK = 65536


@dataclass(frozen=True)
class Attempt:
    """One connection a sandboxed process asked the proxy for."""

    host: str
    port: int
    method: str
    allowed: bool
    command: str = ""
    reason: str = ""

    def describe(self) -> str:
        who = f" by `{self.command}`" if self.command else ""
        return f"`{self.host}:{self.port}`{who} ({self.reason or 'allowed'})"


def host_allowed(host: str, allow: Iterable[str]) -> bool:
    """Whether ``host`` is on the allowlist: exact names, or ``*.example.com`` for subdomains."""
    host = host.lower().rstrip(".")
    return any(fnmatch.fnmatchcase(host, pattern.lower().rstrip(".")) for pattern in allow)


def split_target(method: str, target: str, default_port: int = 443) -> tuple[str, int] | None:
    """``(host, port)`` of a CONNECT authority or an absolute ``http://`` URI; None if it names neither."""
    if method == "CONNECT":
        parts = urlsplit(f"//{target}")
    elif target.lower().startswith("http://"):
        parts, default_port = urlsplit(target), 80
    else:
        return None
    try:
        port = parts.port or default_port
    except ValueError:
        return None
    return (parts.hostname, port) if parts.hostname else None


class EgressProxy:
    """The allowlisting proxy for one task; ``attempts`` holds every connection asked for."""

    def __init__(self, allow: Iterable[str], *, ports: Iterable[int] = DEFAULT_PORTS, log: Any = None,
                 connect_timeout: float = 10.0) -> None:
        self.allow = tuple(a.strip() for a in allow if a.strip())
        self.ports = frozenset(ports)
        self.log = log
        self.connect_timeout = connect_timeout
        self.attempts: list[Attempt] = []
        self.socket_path: Path | None = None
        self._lock = threading.Lock()
        self._server: socketserver.BaseServer | None = None

    def serve_unix(self, path: Path) -> Path:
        handler = type("EgressHandler", (_Handler,), {"proxy": self})
        self._server = _Server(str(path), handler)
        os.chmod(path, 0o600)
        self.socket_path = path
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                         name="egress-proxy", daemon=True).start()
        return path

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.socket_path is not None:
            self.socket_path.unlink(missing_ok=True)

    @property
    def blocked(self) -> list[Attempt]:
        with self._lock:
            return [a for a in self.attempts if not a.allowed]

    def decide(self, host: str, port: int) -> tuple[str | None, str]:
        """``(address to connect to, "")`` when allowed, else ``(None, why not)``."""
        if port not in self.ports:
            return None, f"port {port} is not allowed"
        if not host_allowed(host, self.allow):
            return None, "not in SANDBOX_EGRESS_ALLOW"
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return None, "the name does not resolve"
        for *_, sockaddr in infos:
            address = str(sockaddr[0])
            ip = ipaddress.ip_address(address.split("%")[0])
            if (ip.is_loopback or ip.is_private or ip.is_link_local) and not host_allowed(address, self.allow):
                continue
            return address, ""
        return None, "it resolves only to a local or private address"

    def record(self, attempt: Attempt) -> None:
        with self._lock:
            self.attempts.append(attempt)
        if self.log is not None:
            level = "info" if attempt.allowed else "warning"
            getattr(self.log, level)("egress_attempt", host=attempt.host, port=attempt.port,
                                     method=attempt.method, allowed=attempt.allowed, command=attempt.command,
                                     reason=attempt.reason)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False


class _Handler(socketserver.StreamRequestHandler):
    proxy: EgressProxy

    def handle(self) -> None:
        command = ""
        line = self.rfile.readline(_MAX_LINE)
        if line.startswith(PEER_PREFIX):
            command = line[len(PEER_PREFIX):].decode("utf-8", "replace").strip()[:200]
            line = self.rfile.readline(_MAX_LINE)
        head = [line]
        while len(head) < _MAX_HEADERS:
            header = self.rfile.readline(_MAX_LINE)
            head.append(header)
            if header in (b"\r\n", b"\n", b""):
                break
        words = line.decode("latin-1").split()
        if len(words) != 3:
            return self._answer(400, "The proxy did not understand the request.")
        method, target, version = words
        found = split_target(method, target)
        if found is None:
            return self._answer(400, "Only CONNECT host:port and http:// requests go through this proxy.")
        host, port = found
        address, reason = self.proxy.decide(host, port)
        self.proxy.record(Attempt(host, port, method, address is not None, command, reason))
        if address is None:
            return self._answer(403, f"agent-runner: egress to {host}:{port} is blocked ({reason}).")
        try:
            upstream = socket.create_connection((address, port), timeout=self.proxy.connect_timeout)
        except OSError as exc:
            return self._answer(502, f"agent-runner: {host}:{port} could not be reached ({exc.strerror or exc}).")
        with upstream:
            upstream.settimeout(None)
            if method == "CONNECT":
                self.wfile.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            else:
                path = urlsplit(target)
                origin = (path.path or "/") + (f"?{path.query}" if path.query else "")
                kept = [h for h in head[1:-1] if not h.lower().startswith((b"proxy-", b"connection:"))]
                upstream.sendall(f"{method} {origin} {version}\r\n".encode() + b"".join(kept)
                                 + b"Connection: close\r\n\r\n")
            self._splice(upstream)

    def _splice(self, upstream: socket.socket) -> None:
        back = threading.Thread(target=_pipe, args=(upstream.recv, self.connection), daemon=True)
        back.start()
        _pipe(self.rfile.read1, upstream)  # read1 hands over what the head's reads buffered first
        back.join()

    def _answer(self, status: int, message: str) -> None:
        reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
        body = (message + "\n").encode()
        self.wfile.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)


def _pipe(read: Callable[[int], bytes], sink: socket.socket) -> None:
    """Copy until end of stream, then half-close ``sink``; ``read`` is a socket's recv or a file's read1."""
    try:
        while data := read(_CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass
