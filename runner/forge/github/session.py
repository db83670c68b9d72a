"""Send every GitHub request through one place: a client, a write pacer and a breaker per credential.

The session is what every call of :class:`runner.forge.github.GitHubForge`
stands on: one PyGithub client and one :class:`~runner.forge.pacer.Pacer` per
credential (GitHub's limits are per token), the breaker that holds requests
while GitHub is down, the translation of errors (:func:`runner.forge.wire.translate`),
in-place retries of reads, and the ETag cache of conditional reads (a 304
costs no rate limit). The calls themselves are in ``issues``, ``repos`` and
``checks``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import requests
from github import Github, GithubRetry
from urllib3.exceptions import MaxRetryError, ResponseError

from runner.breakers import Breaker, Breakers, retrying
from runner.errors import ForgeError, RateLimited
from runner.forge import wire
from runner.forge.auth import PersonalToken, SourcedAuth, TokenSource
from runner.forge.base import RepoInfo
from runner.forge.cache import TtlCache
from runner.forge.pacer import GITHUB_LIMITS, BudgetView, Pacer, SlotStore, WriteLimits

T = TypeVar("T")


class PacedRetry(GithubRetry):  # type: ignore[misc]
    """GithubRetry whose waits go through the pacer: cut short by shutdown, shared by all threads.

    A Retry-After (or an exhausted primary limit) holds every request of the
    token, not only the one being retried, and a retried write takes a write
    slot like any other write.
    """

    pacer: Pacer | None = None
    #: The credential's breaker: once it is open, its probes check GitHub and no request retries here.
    breaker: Breaker | None = None

    def new(self, **kw: Any) -> PacedRetry:
        retry: PacedRetry = super().new(**kw)
        retry.pacer, retry.breaker = self.pacer, self.breaker
        return retry

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if self._held():
            return False  # the answer goes up as it is (raise_on_status=False) and is counted there
        return bool(super().is_retry(method, status_code, has_retry_after))

    def increment(self, method: str | None = None, url: str | None = None, *args: Any, **kwargs: Any) -> PacedRetry:
        error = kwargs.get("error")
        if error is not None and self._held():  # a connection error while GitHub is known to be down
            raise MaxRetryError(kwargs.get("_pool"), url or "", error)  # type: ignore[arg-type]
        return cast(PacedRetry, super().increment(method, url, *args, **kwargs))

    def _held(self) -> bool:
        """GitHub is down (the breaker opened while this request retried): stop retrying it in place."""
        return self.breaker is not None and not self.breaker.up

    def sleep(self, response: Any = None) -> None:
        pacer = self.pacer
        if pacer is None:
            super().sleep(response)
        else:
            retry_after = None
            if response is not None:
                pacer.observe(dict(response.headers))
                if self.respect_retry_after_header:
                    retry_after = self.get_retry_after(response)
            if retry_after is None:
                pacer.wait(self.get_backoff_time())
        url = (self.history[-1].url if self.history else None) or ""
        if self._held():  # GitHub went down while this request waited to retry: its probes check it now
            raise MaxRetryError(None, url, ResponseError("GitHub is down; the breaker's probes check it"))  # type: ignore[arg-type]
        if pacer is not None:
            method = (self.history[-1].method if self.history else None) or ""
            pacer.before(write=method.upper() in wire.WRITE_METHODS, notify=wire.notifies(method, url))

class GitHubSession:
    """Paced, translated, breaker-guarded requests per credential, and the caches the calls share."""

    def __init__(
        self,
        token: str | TokenSource,
        *,
        base_url: str = "https://api.github.com",
        timeout: float = 30.0,
        max_retries: int = 5,
        throttle: bool = True,
        limits: WriteLimits | None = GITHUB_LIMITS,
        slots: SlotStore | None = None,
        cache_ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        log: Any = None,
        breakers: Breakers | None = None,
    ) -> None:
        self._source: TokenSource = PersonalToken(token) if isinstance(token, str) else token
        self._base_url = base_url
        self._timeout = timeout
        # One breaker per host and credential (a PAT, or one per app installation): while it is
        # open no request goes out but one probe at a time (runner.breakers).
        self.breakers = breakers or Breakers(log=log)
        self._max_retries = max_retries
        # Our pacer replaces PyGithub's throttle, which has no lock and so does not
        # hold across threads.
        self._client_options: dict[str, Any] = dict(
            base_url=base_url, per_page=100, timeout=int(timeout), lazy=True,
            seconds_between_requests=None, seconds_between_writes=None)
        self._limits = limits if throttle else None
        self._slots = slots
        self._log = log
        # Shutdown: one flag for every pacer, those made later included.
        self._stop = threading.Event()
        # One client and one pacer per credential (the PAT, or one per app installation):
        # GitHub's limits are per token.
        self._clients: dict[str, tuple[Github, Pacer]] = {}
        self._clients_lock = threading.Lock()
        self._login: str | None = None
        self._etags: dict[tuple[str, str], tuple[str, list[Any], bool]] = {}
        self._etag_lock = threading.Lock()
        self._repos: TtlCache[RepoInfo] = TtlCache(cache_ttl, clock=clock)
        self._permissions: TtlCache[str] = TtlCache(cache_ttl, clock=clock)

    def _client(self, repo: str) -> tuple[Github, Pacer]:
        """The client and pacer whose token may act on ``repo`` (raises AppNotInstalled when none may)."""
        key = self._source.key_for(repo)
        with self._clients_lock:
            found = self._clients.get(key)
            if found is None:
                credential = self._source.token(key) if self._source.mode == "token" else key
                pacer = Pacer(self._limits, bucket=wire.pacer_bucket(credential, self._base_url), store=self._slots,
                              stop=self._stop, log=self._log)
                # GithubRetry retries 5xx and 403s that carry Retry-After or an exhausted
                # rate limit (waiting for X-RateLimit-Reset); we add 429, which GitHub
                # documents for secondary limits:
                # https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api
                # Never POST twice: GithubRetry adds POST to urllib3's idempotent methods, and a
                # POST retried after GitHub acted (a 502 after the write, a read timeout) makes a
                # second comment or PR. Creation is retried one level up, in runner.steps.retry, which
                # looks for the comment or PR first. Connection errors (nothing was sent) are
                # still retried here for every method.
                retry = PacedRetry(
                    total=self._max_retries,
                    allowed_methods=GithubRetry.DEFAULT_ALLOWED_METHODS,
                    backoff_factor=0.5,
                    status_forcelist=[*range(500, 600), 429],
                    max_rate_limit_wait=900,
                    raise_on_status=False,  # when retries run out, map the last response, not a RetryError
                )
                retry.pacer, retry.breaker = pacer, self._breaker_of(key)
                client = Github(auth=SourcedAuth(self._source, key), retry=retry, **self._client_options)
                found = self._clients[key] = (client, pacer)
            return found

    def breaker(self, repo: str) -> Breaker:
        """The breaker of the GitHub API for ``repo``'s credential on this host."""
        return self._breaker_of(self._source.key_for(repo))

    def _breaker_of(self, key: Any) -> Breaker:
        bucket = wire.pacer_bucket(key, self._base_url)[:8]
        return self.breakers.get(f"github-api:{wire.host_of(self._base_url)}:{bucket}", service="GitHub",
                                 probe=self._probe)

    def _probe(self) -> None:
        """Ask GitHub whether it answers at all: ``GET /rate_limit``, once, unauthenticated, never counted.

        Any answer below 500 (a 401 included) means the API is back."""
        url = f"{self._base_url.rstrip('/')}/rate_limit"
        try:
            status = requests.get(url, timeout=min(self._timeout, 10.0)).status_code
        except requests.exceptions.RequestException as exc:
            raise ForgeError(f"GitHub did not answer the probe at {url} ({type(exc).__name__}).") from None
        if status >= 500:
            raise ForgeError(f"GitHub answered the probe at {url} with {status}.")

    @contextlib.contextmanager
    def _request(self, action: str, repo: str, *, write: bool = False, notify: bool = False,
                 cost: int = 1) -> Iterator[Github]:
        """Pace one request for ``repo``'s token, translate its errors, learn the rate limit from its answer.

        ``notify``: the write notifies people (its own lane); ``cost``: content-creating
        requests it counts as (a GraphQL request: one per mutation). While GitHub is down
        (the breaker is open) the request waits here, sending nothing."""
        client, pacer = self._client(repo)
        with self.breaker(repo).guard():
            pacer.before(write=write, notify=notify, cost=cost)
            try:
                with wire.translate(action, observe=pacer.observe):
                    yield client
            finally:
                remaining, limit = client.requester.rate_limiting
                if limit > 0:
                    pacer.observe_quota(remaining, limit, float(client.requester.rate_limiting_resettime))

    def _read(self, repo: str, action: Callable[[], T]) -> T:
        """An idempotent read, retried in place while GitHub fails (writes retry one level up, with a recheck)."""
        return retrying(action, breaker=self.breaker(repo),
                        wait_for=lambda exc: exc.retry_after if isinstance(exc, RateLimited) else 0.0)

    def interrupt(self) -> None:
        """Shutdown: cut every wait on GitHub short and refuse every later request (ShuttingDown)."""
        self._stop.set()
        self.breakers.interrupt()

    def write_wait(self, repo: str | None = None) -> float:
        if repo is not None:
            return self._client(repo)[1].write_wait()
        with self._clients_lock:
            pacers = [pacer for _, pacer in self._clients.values()]
        return max((pacer.write_wait() for pacer in pacers), default=0.0)

    def writes_used(self, repo: str) -> int:
        """Writes of ``repo``'s token (installation) in the trailing hour, every replica's with a shared ledger."""
        return self._client(repo)[1].writes_used()

    def graphql(self, action: str, repo: str, query: str, variables: dict[str, Any]) -> Any:
        """One GraphQL request; a document with mutations takes one write slot per mutation."""
        cost = wire.graphql_mutations(query)
        with self._request(action, repo, write=cost > 0, cost=cost) as gh:
            _, data = gh.requester.graphql_query(query, variables)
        return data

    def write_budgets(self) -> list[tuple[str, BudgetView]]:
        """Each credential's write budget from its pacer's memory (``token`` or ``installation:N``); no request."""
        with self._clients_lock:
            pacers = [(key, pacer) for key, (_, pacer) in self._clients.items()]
        return [(key, pacer.view()) for key, pacer in sorted(pacers, key=lambda kv: kv[0])]

    # -- conditional reads: a 304 costs no rate limit ------------------------------

    def _conditional_pages(self, repo: str, url: str, params: dict[str, Any], what: str, cache_key: tuple[str, str],
                           *, convert: Callable[[list[dict[str, Any]]], list[T]], keep: bool) -> list[T]:
        """Every page of a conditional GET, converted; on a 304 the kept answer (``keep``) or ``[]``."""
        with self._etag_lock:
            cached = self._etags.get(cache_key)
        # The ETag covers page 1 only, so a 304 proves nothing when there were more pages.
        headers = {"If-None-Match": cached[0]} if cached and cached[2] else {}
        with self._request(f"{what} in {repo}", repo) as gh:
            resp_headers, data = gh.requester.requestJsonAndCheck("GET", url, parameters=params, headers=headers)
        if data is None and cached:  # 304 Not Modified
            return list(cached[1])
        rows = list(data or [])
        next_url = wire.next_link(resp_headers)
        single_page = next_url is None
        while next_url:
            with self._request(f"{what} in {repo}", repo) as gh:
                page_headers, page = gh.requester.requestJsonAndCheck("GET", next_url)
            rows += page or []
            next_url = wire.next_link(page_headers)
        found = convert(rows)
        etag = resp_headers.get("etag")
        if etag:
            with self._etag_lock:
                self._etags[cache_key] = (etag, found if keep else [], single_page)
        return found

    def _conditional(self, repo: str, url: str, what: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``url`` with the last ETag; on 304 the last answer again (one request, free when unchanged)."""
        key = (repo, f"{url}?{sorted((params or {}).items())}")
        with self._etag_lock:
            cached = self._etags.get(key)
        headers = {"If-None-Match": cached[0]} if cached else {}
        with self._request(f"{what} in {repo}", repo) as gh:
            resp_headers, data = gh.requester.requestJsonAndCheck("GET", url, parameters=params, headers=headers)
        if data is None and cached:
            return cached[1][0]
        etag = resp_headers.get("etag")
        if etag:
            with self._etag_lock:
                self._etags[key] = (etag, [data], True)
        return data
