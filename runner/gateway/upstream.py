"""Hold where each dialect's calls go and the real key they carry, with a few kept-alive connections.

An :class:`Upstream` is built from the settings only (``ANTHROPIC_BASE_URL`` /
``OPENAI_BASE_URL`` and their keys): nothing a client sends can change its
host, port or scheme. The connection pool keeps idle HTTP(S) connections so a
task's calls do not pay a new TLS handshake each.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from runner.gateway.wire import Dialect

ANTHROPIC_DEFAULT = "https://api.anthropic.com"
OPENAI_DEFAULT = "https://api.openai.com/v1"
_POOL_SIZE = 4


@dataclass(frozen=True)
class Upstream:
    """One configured model server: where a dialect's calls go, and with which key."""

    dialect: Dialect
    scheme: str
    host: str
    port: int
    base_path: str  # "/v1" for OPENAI_BASE_URL's usual form, "" for Anthropic's
    key: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, dialect: Dialect, url: str, key: str | None) -> Upstream:
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(dialect, parts.scheme, parts.hostname, port, parts.path.rstrip("/"), key)

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def target(self, path: str, query: str) -> str:
        """The upstream's request target for a client path such as ``/v1/chat/completions``.

        OpenAI base URLs end in ``/v1`` (the SDKs append ``/chat/completions``);
        Anthropic ones do not (the SDK appends ``/v1/messages``).
        """
        tail = path.removeprefix("/v1") if self.dialect == "openai" else path
        return f"{self.base_path}{tail}" + (f"?{query}" if query else "")


def upstreams_from(settings: object, dialects: tuple[Dialect, ...]) -> dict[Dialect, Upstream]:
    """The upstream of each dialect the CLI needs, from the settings."""
    found: dict[Dialect, Upstream] = {}
    for dialect in dialects:
        url = getattr(settings, f"{dialect}_base_url", None) or (
            ANTHROPIC_DEFAULT if dialect == "anthropic" else OPENAI_DEFAULT)
        secret = getattr(settings, f"{dialect}_api_key", None)
        key = secret.get_secret_value() if secret is not None else None
        found[dialect] = Upstream.from_url(dialect, url, key or None)
    return found


def missing_keys(upstreams: dict[Dialect, Upstream]) -> list[str]:
    """The key settings a hosted provider needs but that are not set (a local server needs none)."""
    hosted = {"api.anthropic.com", "api.openai.com"}
    return [f"{d.upper()}_API_KEY" for d, u in upstreams.items() if u.host in hosted and not u.key]


class Pool:
    """A few idle connections to one upstream, reused across a task's calls."""

    def __init__(self, upstream: Upstream, *, connect_timeout: float = 10.0) -> None:
        self.upstream = upstream
        self.connect_timeout = connect_timeout
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._context = ssl.create_default_context() if upstream.scheme == "https" else None

    def get(self) -> tuple[http.client.HTTPConnection, bool]:
        """A connection, and whether it was reused (a reused one may have been closed by the server)."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        u = self.upstream
        if self._context is not None:
            return http.client.HTTPSConnection(u.host, u.port, timeout=self.connect_timeout,
                                               context=self._context), False
        return http.client.HTTPConnection(u.host, u.port, timeout=self.connect_timeout), False

    def put(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < _POOL_SIZE:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
