"""Answer one REST request the way api.github.com does, independent of the socket.

The pipeline is: authenticate, maybe inject a fault, enforce the rate limit,
route, then add ETag/304, rate-limit headers and a request-log entry. The
HTTP server only moves bytes in and out of :meth:`App.handle`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import structlog

from . import (
    api_actions,
    api_apps,
    api_checks,
    api_control,
    api_graphql,
    api_issues,
    api_pulls,
    api_repos,
    api_reviews,
)
from .api_graphql import count_mutations
from .backend import Backend
from .ci import LOG_PREFIX
from .errors import EmulatorError, Forbidden, Unauthorized
from .faults import FaultRule, Faults
from .limits import SECONDARY_DOCS, SECONDARY_MESSAGE, LimitConfig, LimitHit, SecondaryLimits
from .records import Permission, Repo
from .routing import Request, Response, Router
from .store import Principal
from .traffic import RateLimiter, RequestRecord, loggable_headers, parse_authorization, rate_bucket

_log = structlog.get_logger(__name__)

CONTROL_PREFIX = "/_emulator/"
_UNCOUNTED = ("/rate_limit",)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes = b""


def build_router() -> Router:
    """Combine every module's routes, in matching order, in this one place."""
    # Checks first: their `commits/{ref}/check-runs` would otherwise match `commits/{ref:path}`.
    return Router(api_checks.router, api_actions.router, api_repos.router, api_issues.router, api_pulls.router,
                  api_reviews.router, api_apps.router, api_graphql.router, api_control.router)


@dataclass
class App:
    """The REST side of the emulator: a backend plus faults, rate limits and a request log."""

    backend: Backend
    rate_limit: int = 5000
    faults: Faults = field(default_factory=Faults)
    #: How long an installation access token works (GitHub: one hour).
    token_lifetime: timedelta = timedelta(hours=1)
    #: GitHub's secondary limits (None: off); their time_scale shortens the primary window too.
    limit_config: LimitConfig | None = field(default_factory=LimitConfig)

    def __post_init__(self) -> None:
        self.router = build_router()
        scale = self.limit_config.time_scale if self.limit_config else 1.0
        self.limiter = RateLimiter(self.rate_limit, window=max(1, round(3600 / scale)))
        self.graphql_limiter = RateLimiter(self.rate_limit, window=max(1, round(3600 / scale)), resource="graphql")
        self.limits = SecondaryLimits(self.limit_config) if self.limit_config else None
        self._log: list[RequestRecord] = []
        self._log_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return self.backend.base_url

    @property
    def request_log(self) -> list[RequestRecord]:
        with self._log_lock:
            return list(self._log)

    def clear_request_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    @property
    def limit_hits(self) -> list[LimitHit]:
        return self.limits.hits if self.limits else []

    def record(self, method: str, path: str, query: str, status: int, user: str | None,
               headers: Mapping[str, str], *, fault: bool = False, git: bool = False,
               at: float | None = None, acted: bool = False, limit: str | None = None) -> None:
        entry = RequestRecord(method, path, query, status, user, loggable_headers(headers), fault, git,
                              time.time() if at is None else at, acted, limit)
        with self._log_lock:
            self._log.append(entry)

    def login_for(self, authorization: str | None) -> str | None:
        principal = self.principal_for(authorization)
        return principal.login if principal else None

    def principal_for(self, authorization: str | None) -> Principal | None:
        """A user or an installation's bot; a JWT is no principal here (see :meth:`handle`)."""
        token = parse_authorization(authorization)
        if not token or api_apps.looks_like_jwt(token):
            return None
        return self.backend.store.principal_for_token(token)

    def repo(self, request: Request, need: Permission = "read") -> Repo:
        """The repository named by the route's ``owner``/``repo``, if the caller may use it."""
        full_name = f"{request.params['owner']}/{request.params['repo']}"
        return self.backend.authorize(full_name, request.user, need, installation_id=request.installation_id)

    def handle(self, request: Request) -> Reply:
        arrived = time.time()
        principal = self.principal_for(request.headers.get("authorization"))
        request.user = principal.login if principal else None
        request.installation_id = principal.installation_id if principal else None
        bucket = self._bucket(request)
        if self.limits is not None and bucket is not None and not request.path.startswith(CONTROL_PREFIX):
            hit = self.limits.admit(bucket, request.method, request.path, mutations=_mutations(request))
            if hit is not None:
                reply = self._limit_reply(hit, bucket)
                self.record(request.method, request.path, request.query_string, reply.status, request.user,
                            request.headers, at=arrived, limit=hit.limit)
                return reply
            try:
                return self._handle(request, arrived)
            finally:
                self.limits.leave(bucket)
        return self._handle(request, arrived)

    @staticmethod
    def _bucket(request: Request) -> str | None:
        return rate_bucket(request.user, request.installation_id)

    def _limit_reply(self, hit: LimitHit, bucket: str) -> Reply:
        """403 with the documented message and Retry-After, as GitHub answers a secondary limit."""
        headers = {**self._common_headers(), "Content-Type": "application/json; charset=utf-8",
                   **self.limiter.headers(bucket), "Retry-After": str(hit.retry_after)}
        message = SECONDARY_MESSAGE.format(request_id=headers["X-GitHub-Request-Id"])
        body = {"message": message, "documentation_url": SECONDARY_DOCS, "status": str(hit.status)}
        return Reply(hit.status, headers, json.dumps(body).encode())

    def _handle(self, request: Request, arrived: float) -> Reply:
        rule = None
        if not request.path.startswith(CONTROL_PREFIX):
            rule = self.faults.take(request.method, request.path)
            if rule is not None:
                rule.sleep()
        acted = False
        if rule is not None and rule.status is not None:
            if rule.after_action:  # carry it out, then answer as if it had failed
                acted = self._finish(request, self._dispatch(request)).status < 400
            reply = self._fault_reply(rule, request.user)
        else:
            reply = self._finish(request, self._dispatch(request))
        self.record(request.method, request.path, request.query_string, reply.status,
                    request.user, request.headers, fault=rule is not None, at=arrived, acted=acted)
        return reply

    def _dispatch(self, request: Request) -> Response:
        try:
            token = parse_authorization(request.headers.get("authorization")) or ""
            if api_apps.looks_like_jwt(token):
                # An app's JWT reaches only the app routes:
                # https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app/authenticating-as-a-github-app
                request.app_id = api_apps.verify_jwt(self, token)
                handler = self.router.resolve(request)
                if handler not in api_apps.JWT_HANDLERS:
                    raise Forbidden("A JSON web token cannot be used here; use an installation access token.")
                return handler(self, request)
            if request.path.startswith(LOG_PREFIX):  # a job log's URL carries its own secret, like GitHub's
                return api_actions.serve_log(self, request)
            if request.user is None:
                missing = "authorization" not in request.headers
                raise Unauthorized("Requires authentication" if missing else "Bad credentials")
            limiter = self.graphql_limiter if request.path == "/graphql" else self.limiter
            if limiter.exhausted(self._bucket(request)):
                who = (f"installation ID {request.installation_id}" if request.installation_id is not None
                       else f"user {request.user}")
                if self.limits is not None:
                    self.limits.note(LimitHit("primary", self._bucket(request) or "", request.method, request.path,
                                              403, int(limiter.reset_in(self._bucket(request))), time.time()))
                raise EmulatorError(f"API rate limit exceeded for {who}.", status=403)
            handler = self.router.resolve(request)
            if handler in api_apps.JWT_HANDLERS:
                raise Unauthorized("A JSON web token could not be decoded")
            return handler(self, request)
        except EmulatorError as exc:
            return Response(exc.status, exc.body())
        except Exception as exc:  # the server boundary: a bug here must still answer, like GitHub's 500
            _log.exception("emulator handler failed", method=request.method, path=request.path)
            return Response(500, EmulatorError(f"Emulator error: {exc!r}").body())

    def _finish(self, request: Request, response: Response) -> Reply:
        raw = isinstance(response.body, bytes)  # a log or other file, not JSON
        body = b"" if response.body is None else response.body if raw else json.dumps(response.body).encode()
        headers = {**self._common_headers(), **response.headers}
        if body and not raw:
            headers["Content-Type"] = "application/json; charset=utf-8"
        status = response.status
        if request.method == "GET" and status == 200:
            etag = f'W/"{hashlib.sha256(body).hexdigest()[:40]}"'
            headers["ETag"] = etag
            wanted = {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}
            if etag in wanted or "*" in wanted:
                # A conditional request answered with 304 does not count against the limit:
                # https://docs.github.com/rest/using-the-rest-api/best-practices-for-using-the-rest-api
                status, body = 304, b""
                headers.pop("Content-Type", None)
        limiter = self.graphql_limiter if request.path == "/graphql" else self.limiter
        if status != 304 and request.path not in _UNCOUNTED and not request.path.startswith(CONTROL_PREFIX):
            limiter.charge(self._bucket(request))
        return Reply(status, {**headers, **limiter.headers(self._bucket(request))}, body)

    def _fault_reply(self, rule: FaultRule, user: str | None) -> Reply:
        assert rule.status is not None
        headers = {**self._common_headers(), "Content-Type": "application/json; charset=utf-8",
                   **self.limiter.headers(rate_bucket(user, None))}
        if rule.retry_after is not None:
            headers["Retry-After"] = str(int(rule.retry_after))
        if rule.status == 403:
            wait = rule.retry_after if rule.retry_after is not None else 60
            headers["X-RateLimit-Remaining"] = "0"
            headers["X-RateLimit-Reset"] = str(int(time.time() + wait))
        body = EmulatorError(rule.error_message(), status=rule.status).body()
        return Reply(rule.status, headers, json.dumps(body).encode())

    @staticmethod
    def _common_headers() -> dict[str, str]:
        return {
            "X-GitHub-Media-Type": "github.v3; format=json",
            "X-GitHub-Request-Id": uuid.uuid4().hex[:20].upper(),
            "X-OAuth-Scopes": "repo, workflow",
            "Vary": "Accept, Authorization",
        }


def _mutations(request: Request) -> int:
    """How many mutations a GraphQL request carries: each is one content-creating request."""
    if request.path != "/graphql" or request.method != "POST":
        return 0
    try:
        document = json.loads(request.body or b"{}").get("query") or ""
        return count_mutations(document)
    except (ValueError, AttributeError):
        return 0
