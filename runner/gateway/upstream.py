"""Hold where each dialect's calls go and the real key they carry, with a few kept-alive connections.

An :class:`Upstream` is built from the settings only (``ANTHROPIC_BASE_URL``,
``OPENAI_BASE_URL``, ``GEMINI_BASE_URL`` and their keys): nothing a client sends can change its
host, port or scheme. The connection pool keeps idle HTTP(S) connections so a
task's calls do not pay a new TLS handshake each.

Every call goes through its upstream's circuit breaker (``model:<dialect>:<host>``
in :data:`runner.breakers.MODEL_UPSTREAMS`, the one the API generators' turns use
too): after BREAKER_THRESHOLD outage answers in a row (408, 409, 429, 5xx, 529,
a timeout, a refused connection) it opens, and the pool hands out no connection
but one probe at a time; the others are refused at once, so the gateway answers
the CLI with a quick 502 instead of forwarding, and the task waits for the
upstream (issue #29). The first probe that gets an answer closes it.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from runner.breakers import MODEL_UPSTREAMS, Breaker, model_upstream
from runner.gateway.dialects import TABLE, Dialect

ANTHROPIC_DEFAULT = TABLE["anthropic"].default_url
OPENAI_DEFAULT = TABLE["openai"].default_url
_POOL_SIZE = 4
#: Upstream answers that say the model server is down or overloaded, not that the call was wrong.
OUTAGE_STATUSES = frozenset({408, 409, 429})


def is_outage(status: int) -> bool:
    """Whether an upstream's answer says it is down or overloaded (408, 409, 429, 5xx), not that the call was wrong."""
    return status in OUTAGE_STATUSES or status >= 500


@dataclass(frozen=True)
class Upstream:
    """One configured model server: where a dialect's calls go, and with which key."""

    dialect: Dialect
    scheme: str
    host: str
    port: int
    base_path: str  # "/v1" for OPENAI_BASE_URL's usual form, "" for Anthropic's and Gemini's
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

    @property
    def breaker_name(self) -> str:
        """Its breaker's name, the one the API generators use for the same server."""
        default = self.port == (443 if self.scheme == "https" else 80)
        return model_upstream(self.dialect, f"//{self.host}" if default else f"//{self.host}:{self.port}")

    @property
    def service(self) -> str:
        return {"anthropic": "the Anthropic API", "openai": "the OpenAI API"}.get(self.dialect,
                                                                                f"the {self.dialect} model API")

    def target(self, path: str, query: str) -> str:
        """The upstream's request target for a client path such as ``/v1/chat/completions``.

        OpenAI base URLs end in ``/v1`` (the SDKs append ``/chat/completions``);
        Anthropic and Gemini ones do not (the SDKs append ``/v1/messages``, ``/v1beta/models/…``).
        """
        prefix = TABLE[self.dialect].strip_prefix
        tail = path.removeprefix(prefix) if prefix else path
        return f"{self.base_path}{tail}" + (f"?{query}" if query else "")


def upstreams_from(settings: object, dialects: tuple[Dialect, ...]) -> dict[Dialect, Upstream]:
    """The upstream of each dialect the CLI needs, from the settings."""
    found: dict[Dialect, Upstream] = {}
    for dialect in dialects:
        url = getattr(settings, f"{dialect}_base_url", None) or TABLE[dialect].default_url
        secret = getattr(settings, f"{dialect}_api_key", None)
        key = secret.get_secret_value() if secret is not None else None
        found[dialect] = Upstream.from_url(dialect, url, key or None)
    return found


def missing_keys(upstreams: dict[Dialect, Upstream]) -> list[str]:
    """The key settings a hosted provider needs but that are not set (a local server needs none)."""
    hosted = {urlsplit(spec.default_url).hostname for spec in TABLE.values()}
    return [f"{d.upper()}_API_KEY" for d, u in upstreams.items() if u.host in hosted and not u.key]


class Pool:
    """A few idle connections to one upstream, reused across a task's calls, behind the upstream's breaker."""

    def __init__(self, upstream: Upstream, *, connect_timeout: float = 10.0) -> None:
        self.upstream = upstream
        self.connect_timeout = connect_timeout
        self.breaker = MODEL_UPSTREAMS.get(upstream.breaker_name, service=upstream.service)
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._context = ssl.create_default_context() if upstream.scheme == "https" else None

    def get(self) -> tuple[http.client.HTTPConnection, bool]:
        """A connection, and whether it was reused (a reused one may have been closed by the server).

        Raises ConnectionRefusedError, sending nothing, while the upstream's breaker is open and
        this is not the call that probes it."""
        breaker = self.breaker
        if not breaker.admit():
            raise ConnectionRefusedError(
                f"the gateway did not forward the call: {breaker.service} failed {breaker.threshold} times "
                f"in a row and has been unavailable for {breaker.open_seconds():.0f} s; one call at a time "
                "probes it")
        if not breaker.up:
            self.close()  # a probe goes on a fresh connection: the idle ones date from before the outage
        with self._lock:
            if self._idle:
                conn = self._idle.pop()
                conn.settled = False  # type: ignore[attr-defined]
                return conn, True
        u = self.upstream
        if self._context is not None:
            return _Https(breaker, u.host, u.port, timeout=self.connect_timeout, context=self._context), False
        return _Http(breaker, u.host, u.port, timeout=self.connect_timeout), False

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


class _Watched(http.client.HTTPConnection):
    """A connection that tells its upstream's breaker how each call it carries ended.

    An answer settles the call (an outage status counts a failure, any other closes the
    breaker); so does a connection that cannot be made or an answer that never comes.
    A call closed before either (a send that broke) lets the next caller probe."""

    def __init__(self, breaker: Breaker, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.breaker = breaker
        self.settled = False

    def connect(self) -> None:
        try:
            super().connect()
        except OSError:
            self._settle(failed=True)
            raise

    def getresponse(self) -> http.client.HTTPResponse:
        try:
            response = super().getresponse()
        except (OSError, http.client.HTTPException):
            self._settle(failed=True)
            raise
        self._settle(failed=is_outage(response.status))
        return response

    def close(self) -> None:
        if not self.settled:
            self.settled = True
            self.breaker.release()
        super().close()

    def _settle(self, *, failed: bool) -> None:
        if self.settled:
            return
        self.settled = True
        if failed:
            self.breaker.failure()
        else:
            self.breaker.success()


class _Http(_Watched):
    pass


class _Https(_Watched, http.client.HTTPSConnection):
    pass
