"""Talk to GitHub (or GitHub Enterprise, or the emulator) through PyGithub.

This module makes the requests: one PyGithub client and one write pacer per
credential, conditional polling and short caches. What GitHub's answers mean,
PyGithub objects into our frozen values and PyGithub/requests exceptions into
:mod:`runner.errors`, is the pure :mod:`runner.forge.wire`; the tokens come from
:mod:`runner.forge.auth`. Nothing above the forge needs to know the library.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from github import Github, GithubException, GithubRetry
from github.GithubObject import NotSet

from runner.breakers import Breaker, Breakers, retrying
from runner.errors import ForgeError, NotFound, RateLimited, Rejected
from runner.forge import wire
from runner.forge.auth import PersonalToken, SourcedAuth, TokenSource
from runner.forge.base import (
    Comment,
    FeedbackItem,
    Issue,
    IssueTrail,
    PullRequest,
    RepoAccess,
    RepoInfo,
    TokenInfo,
)
from runner.forge.cache import TtlCache
from runner.forge.github_checks import ChecksReads
from runner.forge.pacer import GITHUB_LIMITS, BudgetView, Pacer, SlotStore, WriteLimits

T = TypeVar("T")


class PacedRetry(GithubRetry):  # type: ignore[misc]
    """GithubRetry whose waits go through the pacer: cut short by shutdown, shared by all threads.

    A Retry-After (or an exhausted primary limit) holds every request of the
    token, not only the one being retried, and a retried write takes a write
    slot like any other write.
    """

    pacer: Pacer | None = None

    def new(self, **kw: Any) -> PacedRetry:
        retry: PacedRetry = super().new(**kw)
        retry.pacer = self.pacer
        return retry

    def sleep(self, response: Any = None) -> None:
        pacer = self.pacer
        if pacer is None:
            super().sleep(response)
            return
        retry_after = None
        if response is not None:
            pacer.observe(dict(response.headers))
            if self.respect_retry_after_header:
                retry_after = self.get_retry_after(response)
        if retry_after is None:
            pacer.wait(self.get_backoff_time())
        method = (self.history[-1].method if self.history else None) or ""
        url = (self.history[-1].url if self.history else None) or ""
        pacer.before(write=method.upper() in wire.WRITE_METHODS, notify=wire.notifies(method, url))


class GitHubForge(ChecksReads):
    """The Forge protocol over PyGithub, with a write pacer per token, short caches and conditional polling."""

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
                retry.pacer = pacer
                client = Github(auth=SourcedAuth(self._source, key), retry=retry, **self._client_options)
                found = self._clients[key] = (client, pacer)
            return found

    def breaker(self, repo: str) -> Breaker:
        """The breaker of the GitHub API for ``repo``'s credential on this host."""
        key = self._source.key_for(repo)
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

    def authenticated_login(self, repo: str) -> str:
        """Who the runner is on GitHub: the token's user (``GET /user``), or the app's ``<slug>[bot]``."""
        if self._login is None:
            login = self._source.bot_login
            if login is None:
                def read() -> str:
                    with self._request("read the token's user (GET /user)", repo) as gh:
                        return str(gh.get_user().login)
                login = self._read(repo, read)
            self._login = login
        return self._login

    def user_id(self, login: str, repo: str) -> int:
        """The numeric id of a user or bot (``GET /users/{login}``), asked with ``repo``'s token."""
        def read() -> int:
            with self._request(f"read the user {login}", repo) as gh:
                _, data = gh.requester.requestJsonAndCheck("GET", f"/users/{quote(login)}")
                return int(data["id"])
        return self._read(repo, read)

    # -- issues -----------------------------------------------------------------

    def list_dispatch_issues(self, repo: str, label: str) -> Sequence[Issue]:
        """List open issues with the label, re-using the last answer when GitHub says 304.

        A conditional request answered with 304 does not count against the rate
        limit, so polling every minute stays cheap:
        https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#use-conditional-requests-if-appropriate
        """
        params = {"labels": label, "state": "open", "per_page": 100, "sort": "created", "direction": "asc"}
        return self._conditional_pages(
            repo, f"/repos/{repo}/issues", params, "list issues", (repo, label), keep=True,
            convert=lambda rows: [i for i in (wire.issue_from_json(repo, r) for r in rows) if not i.is_pull_request])

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

    # -- feedback (runner.core.feedback) -------------------------------------------------

    def comments_since(self, repo: str, since: str) -> Sequence[FeedbackItem]:
        # https://docs.github.com/rest/issues/comments#list-issue-comments-for-a-repository
        rows = self._changed_since(repo, f"/repos/{repo}/issues/comments", since, "list comments")
        return [wire.feedback_item(repo, "issue_comment", row) for row in rows]

    def review_comments_since(self, repo: str, since: str) -> Sequence[FeedbackItem]:
        # https://docs.github.com/rest/pulls/comments#list-review-comments-in-a-repository
        rows = self._changed_since(repo, f"/repos/{repo}/pulls/comments", since, "list review comments")
        return [wire.feedback_item(repo, "review_comment", row) for row in rows]

    def review_thread(self, review: FeedbackItem) -> Sequence[FeedbackItem]:
        # https://docs.github.com/rest/pulls/reviews#list-comments-for-a-pull-request-review
        url = f"/repos/{review.repo}/pulls/{review.number}/reviews/{review.id}/comments"
        def read() -> list[Any]:
            with self._request(f"list the comments of review {review.id} in {review.repo}", review.repo) as gh:
                _, rows = gh.requester.requestJsonAndCheck("GET", url, parameters={"per_page": 100})
                return list(rows or [])
        rows = self._read(review.repo, read)
        return [wire.feedback_item(review.repo, "review_comment", row) for row in rows]

    def add_reaction(self, item: FeedbackItem, content: str) -> None:
        # https://docs.github.com/rest/reactions/reactions (200 when it already exists)
        where = "pulls" if item.kind == "review_comment" else "issues"
        with self._request(f"react to comment {item.id} in {item.repo}", item.repo, write=True) as gh:
            gh.requester.requestJsonAndCheck(
                "POST", f"/repos/{item.repo}/{where}/comments/{item.id}/reactions", input={"content": content})

    def _changed_since(self, repo: str, url: str, since: str, what: str) -> list[dict[str, Any]]:
        """Every row updated since ``since``, or ``[]`` when GitHub answers 304 to the cached ETag."""
        params = {"since": since, "sort": "updated", "direction": "asc", "per_page": 100}
        return self._conditional_pages(repo, url, params, what, (repo, f"{url}?since={since}"),
                                       convert=lambda rows: rows, keep=False)

    def get_issue(self, repo: str, number: int) -> Issue:
        def read() -> Issue:
            with self._request(f"read issue {repo}#{number}", repo) as gh:
                return wire.issue_value(repo, gh.get_repo(repo).get_issue(number))
        return self._read(repo, read)

    def edit_issue_body(self, repo: str, number: int, body: str) -> Issue:
        with self._request(f"edit issue {repo}#{number}", repo, write=True) as gh:
            _, data = gh.requester.requestJsonAndCheck("PATCH", f"/repos/{repo}/issues/{number}",
                                                       input={"body": body})
            return wire.issue_from_json(repo, data)

    def list_comments(self, repo: str, number: int) -> Sequence[Comment]:
        def read() -> list[Comment]:
            with self._request(f"list comments on {repo}#{number}", repo) as gh:
                issue = gh.get_repo(repo).get_issue(number)
                return [wire.comment_value(c) for c in issue.get_comments()]
        return self._read(repo, read)

    def create_comment(self, repo: str, number: int, body: str) -> Comment:
        with self._request(f"comment on {repo}#{number}", repo, write=True, notify=True) as gh:
            issue = gh.get_repo(repo).get_issue(number)
            return wire.comment_value(issue.create_comment(body))

    def edit_comment(self, repo: str, comment_id: int, body: str) -> Comment:
        with self._request(f"edit comment {comment_id} in {repo}", repo, write=True) as gh:
            _, data = gh.requester.requestJsonAndCheck(
                "PATCH", f"/repos/{repo}/issues/comments/{comment_id}", input={"body": body}
            )
            return wire.comment_from_json(data)

    def add_labels(self, repo: str, number: int, labels: Sequence[str]) -> None:
        with self._request(f"label {repo}#{number}", repo, write=True) as gh:
            gh.get_repo(repo).get_issue(number).add_to_labels(*labels)

    def remove_label(self, repo: str, number: int, label: str) -> None:
        try:
            with self._request(f"unlabel {repo}#{number}", repo, write=True) as gh:
                gh.get_repo(repo).get_issue(number).remove_from_labels(label)
        except NotFound:
            return  # Already gone: the outcome we wanted.

    def label_actor(self, repo: str, number: int, label: str) -> str | None:
        def read() -> str | None:
            with self._request(f"read events of {repo}#{number}", repo) as gh:
                actor: str | None = None
                for event in gh.get_repo(repo).get_issue(number).get_events():
                    if event.event == "labeled" and event.label is not None and event.label.name == label:
                        actor = event.actor.login if event.actor else None
                return actor
        return self._read(repo, read)

    def permission(self, repo: str, user: str) -> str:
        """Cached for GITHUB_CACHE_SECONDS: a revoked permission counts again within that time."""
        return self._permissions.get_or_load((repo.lower(), user.lower()), lambda: self._permission(repo, user))

    def _permission(self, repo: str, user: str) -> str:
        def read() -> str:
            with self._request(f"read {user}'s permission on {repo}", repo) as gh:
                try:
                    return str(gh.get_repo(repo).get_collaborator_permission(user))
                except GithubException as exc:
                    if exc.status == 404:
                        return "none"
                    raise
        return self._read(repo, read)

    def issue_trail(self, repo: str, number: int) -> IssueTrail:
        """Label events and body edits in one GraphQL request.

        The REST timeline records no body edits (a body change is only in
        GraphQL's ``Issue.userContentEdits``; a title change is a ``renamed``
        event), so this is the one reliable source:
        https://docs.github.com/en/graphql/reference/objects#issue
        """
        owner, name = repo.split("/", 1)
        # A GraphQL query is a POST, but this one only reads: safe to send again.
        data = self._read(repo, lambda: self.graphql(f"read the history of {repo}#{number}", repo,
                                                     wire.TRAIL_QUERY, {"owner": owner, "name": name,
                                                                        "number": number}))
        trail = wire.trail_from_json(data)
        if trail is None:
            raise NotFound(f"GitHub found no issue {repo}#{number} when reading its history.")
        return trail

    def repo_info(self, repo: str) -> RepoInfo:
        """Cached for GITHUB_CACHE_SECONDS: the default branch and clone URL rarely change."""
        return self._repos.get_or_load(repo.lower(), lambda: self._repo_info(repo))

    def _repo_info(self, repo: str) -> RepoInfo:
        def read() -> RepoInfo:
            with self._request(f"read repository {repo}", repo) as gh:
                r = gh.get_repo(repo)
                return RepoInfo(full_name=r.full_name, default_branch=r.default_branch, clone_url=r.clone_url,
                                private=bool(r.private))
        return self._read(repo, read)

    # -- what `agent-runner doctor` asks --------------------------------------------

    def token_info(self, repo: str) -> TokenInfo:
        """GET /user: the login, the classic scopes and GitHub's clock (see :func:`wire.token_info`)."""
        with self._request("read the authenticated user", repo) as gh:
            headers, data = gh.requester.requestJsonAndCheck("GET", "/user")
        return wire.token_info(headers, data)

    def repo_access(self, repo: str) -> RepoAccess:
        with self._request(f"read repository {repo}", repo) as gh:
            _, data = gh.requester.requestJsonAndCheck("GET", f"/repos/{repo}")
        return wire.access_from_json(data)

    def accessible_repos(self, repo: str) -> list[RepoAccess]:
        """GET /user/repos with ``repo``'s token: every repository it can use, with its permissions."""
        found: list[RepoAccess] = []
        with self._request("list the token's repositories", repo) as gh:
            headers, page = gh.requester.requestJsonAndCheck(
                "GET", "/user/repos", parameters={"per_page": 100})
            found += [wire.access_from_json(item) for item in page or []]
            next_url = wire.next_link(headers)
            while next_url:
                headers, page = gh.requester.requestJsonAndCheck("GET", next_url)
                found += [wire.access_from_json(item) for item in page or []]
                next_url = wire.next_link(headers)
        return found

    def list_labels(self, repo: str) -> list[str]:
        with self._request(f"list labels of {repo}", repo) as gh:
            return [label.name for label in gh.get_repo(repo).get_labels()]

    def create_label(self, repo: str, name: str, color: str, description: str) -> None:
        with self._request(f"create the label `{name}` in {repo}", repo, write=True) as gh:
            gh.get_repo(repo).create_label(name, color, description)

    # -- what `agent-runner smoke-test` does -----------------------------------------

    def create_issue(self, repo: str, title: str, body: str, labels: Sequence[str]) -> int:
        with self._request(f"open an issue in {repo}", repo, write=True, notify=True) as gh:
            return int(gh.get_repo(repo).create_issue(title=title, body=body, labels=list(labels)).number)

    def close_issue(self, repo: str, number: int) -> None:
        with self._request(f"close {repo}#{number}", repo, write=True) as gh:
            gh.get_repo(repo).get_issue(number).edit(state="closed")

    def branch_head(self, repo: str, branch: str) -> str | None:
        """The branch's commit sha, or None when there is no such branch."""
        def read() -> str | None:
            try:
                with self._request(f"read branch {branch} of {repo}", repo) as gh:
                    return str(gh.get_repo(repo).get_git_ref(f"heads/{branch}").object.sha)
            except NotFound:
                return None
        return self._read(repo, read)

    def file_text(self, repo: str, ref: str, path: str) -> str | None:
        def read() -> Any:
            try:
                with self._request(f"read {path} at {ref} in {repo}", repo) as gh:
                    return gh.get_repo(repo).get_contents(path, ref=ref)
            except NotFound:
                return None
        found = self._read(repo, read)
        if found is None:
            return None
        if isinstance(found, list):
            return None
        return found.decoded_content.decode("utf-8", errors="replace")

    def delete_branch(self, repo: str, branch: str) -> None:
        with self._request(f"delete branch {branch} of {repo}", repo, write=True) as gh:
            # https://docs.github.com/en/rest/git/refs#delete-a-reference (a lazy GitRef would
            # address the singular git/ref/ path, which has no DELETE)
            gh.requester.requestJsonAndCheck("DELETE", f"/repos/{repo}/git/refs/heads/{quote(branch)}")

    # -- pull requests -----------------------------------------------------------

    def find_pull(self, repo: str, head_branch: str) -> PullRequest | None:
        owner = repo.split("/")[0]

        def read() -> list[PullRequest]:
            with self._request(f"find the pull request for {head_branch} in {repo}", repo) as gh:
                pulls = gh.get_repo(repo).get_pulls(state="all", head=f"{owner}:{head_branch}")
                return [wire.pull_value(p) for p in pulls]
        found = self._read(repo, read)
        # GitHub lists newest first; an open PR wins over older closed ones.
        found.sort(key=lambda p: (p.state != "open", -p.number))
        return found[0] if found else None

    def create_pull(
        self, repo: str, *, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequest:
        try:
            with self._request(f"open a pull request from {head} in {repo}", repo, write=True, notify=True) as gh:
                pull = gh.get_repo(repo).create_pull(
                    base=base, head=head, title=title, body=body, draft=draft
                )
                return wire.pull_value(pull)
        except Rejected as exc:
            # 422 "A pull request already exists for owner:branch" means a previous
            # attempt got this far: that PR is the one we want.
            if "already exists" not in exc.detail:
                raise
            existing = self.find_pull(repo, head)
            if existing is None:
                raise
            return existing

    def update_pull(
        self,
        repo: str,
        number: int,
        *,
        title: str | None = None,
        body: str | None = None,
        state: str | None = None,
    ) -> PullRequest:
        with self._request(f"update pull request {repo}#{number}", repo, write=True) as gh:
            pull = gh.get_repo(repo).get_pull(number)
            pull.edit(title=_opt(title), body=_opt(body), state=_opt(state))
            return wire.pull_value(pull)  # PyGithub refreshes the object from the PATCH response


def _opt(value: str | None) -> Any:
    return NotSet if value is None else value
