"""Keep the record of the REST traffic: who asked (the token), what was logged, how much is left.

:class:`RequestRecord` is one entry of the request log (never the
``Authorization`` header), :class:`RateLimiter` counts requests per user in
fixed windows like GitHub's primary rate limit, and
:func:`parse_authorization` reads a token from the header the way GitHub
accepts it. The app and the control routes use them; nothing here knows HTTP.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_ANONYMOUS_LIMIT = 60


@dataclass(frozen=True)
class RequestRecord:
    """One logged request; ``headers`` have lower-case names and never ``authorization``.

    ``acted`` is True when the request took effect although its answer was an
    injected error (a fault with ``after_action``)."""

    method: str
    path: str
    query: str
    status: int
    user: str | None
    headers: dict[str, str]
    fault: bool = False
    git: bool = False  # git smart HTTP, not the REST API
    at: float = 0.0  # time.time() when the request arrived
    acted: bool = False
    limit: str | None = None  # the rate limit that refused it (github_emulator.limits), if one did

    @property
    def is_write(self) -> bool:
        """A content-creating REST request, as GitHub's secondary limits count them.

        ``POST /graphql`` is a read here: the emulated schema has queries only, no mutations
        (a document with mutations still counts against the secondary limits, see limits.py).
        """
        return not self.git and self.method in {"POST", "PATCH", "PUT", "DELETE"} and self.path != "/graphql"


def parse_authorization(value: str | None) -> str | None:
    """Extract the token from ``token X``, ``Bearer X`` or Basic (token as password)."""
    if not value:
        return None
    scheme, _, credentials = value.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() in ("token", "bearer"):
        return credentials or None
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(credentials).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        # GitHub accepts the token as password, or as user with an x-oauth-basic password.
        return password if password not in ("", "x-oauth-basic") else (user or None)
    return None


def rate_bucket(user: str | None, installation_id: int | None) -> str | None:
    """Whose limits a request counts against: the App installation's, else the token's user's (None: anonymous)."""
    if installation_id is not None:
        return f"installation:{installation_id}"
    return f"user:{user.lower()}" if user else None


def loggable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in ("authorization", "cookie")}


class RateLimiter:
    """Count requests per user in fixed windows, like GitHub's primary rate limit."""

    def __init__(self, limit: int, *, window: int = 3600, clock: Callable[[], float] = time.time,
                 resource: str = "core") -> None:
        self.limit, self._window, self._clock, self._resource = limit, window, clock, resource
        self._lock = threading.Lock()
        self._buckets: dict[str | None, tuple[int, int]] = {}  # user -> (window reset, used)

    def _bucket(self, user: str | None) -> tuple[int, int]:
        now = int(self._clock())
        reset, used = self._buckets.get(user, (0, 0))
        return (reset, used) if now < reset else (now + self._window, 0)

    def limit_for(self, user: str | None) -> int:
        return self.limit if user else _ANONYMOUS_LIMIT

    def reset_in(self, user: str | None) -> float:
        """Seconds until the user's window resets."""
        with self._lock:
            return max(0.0, self._bucket(user)[0] - self._clock())

    def exhausted(self, user: str | None) -> bool:
        with self._lock:
            return self._bucket(user)[1] >= self.limit_for(user)

    def charge(self, user: str | None) -> None:
        with self._lock:
            reset, used = self._bucket(user)
            self._buckets[user] = (reset, used + 1)

    def headers(self, user: str | None) -> dict[str, str]:
        with self._lock:
            reset, used = self._bucket(user)
        limit = self.limit_for(user)
        return {
            "X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(max(0, limit - used)),
            "X-RateLimit-Reset": str(reset), "X-RateLimit-Used": str(used),
            "X-RateLimit-Resource": self._resource,
        }
