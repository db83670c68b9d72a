"""Talk to GitHub (or GitHub Enterprise, or the emulator) through PyGithub.

This is the only module that imports PyGithub. It converts PyGithub objects into
our frozen values and PyGithub/requests exceptions into :mod:`runner.errors`
at the boundary, so nothing above it needs to know the library.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests
from github import Auth, Github, GithubException, GithubRetry
from github.GithubObject import NotSet
from github.Issue import Issue as GhIssue
from github.PullRequest import PullRequest as GhPull

from runner.core.feedback import FeedbackItem
from runner.errors import (
    BadCredentials,
    ForgeError,
    NotFound,
    PermissionDenied,
    RateLimited,
    Rejected,
)
from runner.forge.base import (
    Comment,
    ContentEdit,
    Issue,
    IssueTrail,
    LabelEvent,
    PullRequest,
    RepoAccess,
    RepoInfo,
    TokenInfo,
)
from runner.forge.cache import TtlCache
from runner.forge.pacer import GITHUB_LIMITS, Pacer, SlotStore, WriteLimits

if TYPE_CHECKING:
    from runner.forge.auth import TokenSource

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def pacer_bucket(credential: str, base_url: str) -> str:
    """The pacer's key for one credential on one GitHub: a hash, so no token is ever stored."""
    return hashlib.sha256(f"{base_url}\n{credential}".encode()).hexdigest()[:20]


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
        method = self.history[-1].method if self.history else None
        pacer.before(write=(method or "").upper() in WRITE_METHODS)


class GitHubForge:
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
    ) -> None:
        if isinstance(token, str):
            from runner.forge.auth import PersonalToken

            token = PersonalToken(token)
        self._source: TokenSource = token
        self._base_url = base_url
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
        self._etags: dict[tuple[str, str], tuple[str, list[Issue], bool]] = {}
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
                pacer = Pacer(self._limits, bucket=pacer_bucket(credential, self._base_url), store=self._slots,
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
                client = Github(auth=_SourcedToken(self._source, key), retry=retry, **self._client_options)
                found = self._clients[key] = (client, pacer)
            return found

    @contextlib.contextmanager
    def _request(self, action: str, repo: str, *, write: bool = False) -> Iterator[Github]:
        """Pace one request for ``repo``'s token, translate its errors, learn the rate limit from its answer."""
        client, pacer = self._client(repo)
        pacer.before(write=write)
        try:
            with translate(action, observe=pacer.observe):
                yield client
        finally:
            remaining, limit = client.requester.rate_limiting
            if limit > 0:
                pacer.observe_quota(remaining, limit, float(client.requester.rate_limiting_resettime))

    def interrupt(self) -> None:
        """Shutdown: cut every wait on GitHub short and refuse every later request (ShuttingDown)."""
        self._stop.set()

    def write_wait(self) -> float:
        with self._clients_lock:
            pacers = [pacer for _, pacer in self._clients.values()]
        return max((pacer.write_wait() for pacer in pacers), default=0.0)

    def authenticated_login(self, repo: str) -> str:
        """Who the runner is on GitHub: the token's user (``GET /user``), or the app's ``<slug>[bot]``."""
        if self._login is None:
            login = self._source.bot_login
            if login is None:
                with self._request("read the token's user (GET /user)", repo) as gh:
                    login = gh.get_user().login
            self._login = login
        return self._login

    def user_id(self, login: str, repo: str) -> int:
        """The numeric id of a user or bot (``GET /users/{login}``), asked with ``repo``'s token."""
        with self._request(f"read the user {login}", repo) as gh:
            _, data = gh.requester.requestJsonAndCheck("GET", f"/users/{quote(login)}")
            return int(data["id"])

    # -- issues -----------------------------------------------------------------

    def list_dispatch_issues(self, repo: str, label: str) -> Sequence[Issue]:
        """List open issues with the label, re-using the last answer when GitHub says 304.

        A conditional request answered with 304 does not count against the rate
        limit, so polling every minute stays cheap:
        https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#use-conditional-requests-if-appropriate
        """
        url = f"/repos/{repo}/issues"
        params = {"labels": label, "state": "open", "per_page": 100, "sort": "created", "direction": "asc"}
        cache_key = (repo, label)
        with self._etag_lock:
            cached = self._etags.get(cache_key)
        # The ETag covers page 1 only, so a 304 proves nothing when there were more pages.
        headers = {"If-None-Match": cached[0]} if cached and cached[2] else {}
        with self._request(f"list issues in {repo}", repo) as gh:
            resp_headers, data = gh.requester.requestJsonAndCheck("GET", url, parameters=params, headers=headers)
        if data is None and cached:  # 304 Not Modified
            return list(cached[1])
        pages = [data or []]
        next_url = _next_link(resp_headers)
        single_page = next_url is None
        while next_url:
            with self._request(f"list issues in {repo}", repo) as gh:
                page_headers, page = gh.requester.requestJsonAndCheck("GET", next_url)
            pages.append(page or [])
            next_url = _next_link(page_headers)
        issues = [issue_from_json(repo, item) for page in pages for item in page]
        issues = [i for i in issues if not i.is_pull_request]
        etag = resp_headers.get("etag")
        if etag:
            with self._etag_lock:
                self._etags[cache_key] = (etag, issues, single_page)
        return issues

    # -- feedback (runner.core.feedback) -------------------------------------------------

    def comments_since(self, repo: str, since: str) -> Sequence[FeedbackItem]:
        # https://docs.github.com/rest/issues/comments#list-issue-comments-for-a-repository
        rows = self._changed_since(repo, f"/repos/{repo}/issues/comments", since, "list comments")
        return [_comment_item(repo, "issue_comment", row) for row in rows]

    def review_comments_since(self, repo: str, since: str) -> Sequence[FeedbackItem]:
        # https://docs.github.com/rest/pulls/comments#list-review-comments-in-a-repository
        rows = self._changed_since(repo, f"/repos/{repo}/pulls/comments", since, "list review comments")
        return [_comment_item(repo, "review_comment", row) for row in rows]

    def review_thread(self, review: FeedbackItem) -> Sequence[FeedbackItem]:
        # https://docs.github.com/rest/pulls/reviews#list-comments-for-a-pull-request-review
        url = f"/repos/{review.repo}/pulls/{review.number}/reviews/{review.id}/comments"
        with self._request(f"list the comments of review {review.id} in {review.repo}", review.repo) as gh:
            _, rows = gh.requester.requestJsonAndCheck("GET", url, parameters={"per_page": 100})
            rows = list(rows or [])
        return [_comment_item(review.repo, "review_comment", row) for row in rows]

    def add_reaction(self, item: FeedbackItem, content: str) -> None:
        # https://docs.github.com/rest/reactions/reactions (200 when it already exists)
        where = "pulls" if item.kind == "review_comment" else "issues"
        with self._request(f"react to comment {item.id} in {item.repo}", item.repo, write=True) as gh:
            gh.requester.requestJsonAndCheck(
                "POST", f"/repos/{item.repo}/{where}/comments/{item.id}/reactions", input={"content": content})

    def _changed_since(self, repo: str, url: str, since: str, what: str) -> list[dict[str, Any]]:
        """Every row updated since ``since``, or ``[]`` when GitHub answers 304 to the cached ETag."""
        params = {"since": since, "sort": "updated", "direction": "asc", "per_page": 100}
        cache_key = (repo, f"{url}?since={since}")
        with self._etag_lock:
            cached = self._etags.get(cache_key)
        headers = {"If-None-Match": cached[0]} if cached and cached[2] else {}
        with self._request(f"{what} in {repo}", repo) as gh:
            resp_headers, data = gh.requester.requestJsonAndCheck("GET", url, parameters=params, headers=headers)
        if data is None and cached:
            return []
        rows = list(data or [])
        next_url = _next_link(resp_headers)
        single_page = next_url is None
        while next_url:
            with self._request(f"{what} in {repo}", repo) as gh:
                page_headers, page = gh.requester.requestJsonAndCheck("GET", next_url)
            rows += page or []
            next_url = _next_link(page_headers)
        etag = resp_headers.get("etag")
        if etag:
            with self._etag_lock:
                self._etags[cache_key] = (etag, [], single_page)
        return rows

    def get_issue(self, repo: str, number: int) -> Issue:
        with self._request(f"read issue {repo}#{number}", repo) as gh:
            issue = gh.get_repo(repo).get_issue(number)
            return _issue_value(repo, issue)

    def list_comments(self, repo: str, number: int) -> Sequence[Comment]:
        with self._request(f"list comments on {repo}#{number}", repo) as gh:
            issue = gh.get_repo(repo).get_issue(number)
            return [_comment_value(c) for c in issue.get_comments()]

    def create_comment(self, repo: str, number: int, body: str) -> Comment:
        with self._request(f"comment on {repo}#{number}", repo, write=True) as gh:
            issue = gh.get_repo(repo).get_issue(number)
            return _comment_value(issue.create_comment(body))

    def edit_comment(self, repo: str, comment_id: int, body: str) -> Comment:
        with self._request(f"edit comment {comment_id} in {repo}", repo, write=True) as gh:
            _, data = gh.requester.requestJsonAndCheck(
                "PATCH", f"/repos/{repo}/issues/comments/{comment_id}", input={"body": body}
            )
            return Comment(id=int(data["id"]), body=data.get("body") or "",
                           author=(data.get("user") or {}).get("login", ""), html_url=data.get("html_url") or "")

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
        with self._request(f"read events of {repo}#{number}", repo) as gh:
            actor: str | None = None
            for event in gh.get_repo(repo).get_issue(number).get_events():
                if event.event == "labeled" and event.label is not None and event.label.name == label:
                    actor = event.actor.login if event.actor else None
            return actor

    def permission(self, repo: str, user: str) -> str:
        """Cached for GITHUB_CACHE_SECONDS: a revoked permission counts again within that time."""
        return self._permissions.get_or_load((repo.lower(), user.lower()), lambda: self._permission(repo, user))

    def _permission(self, repo: str, user: str) -> str:
        with self._request(f"read {user}'s permission on {repo}", repo) as gh:
            try:
                return gh.get_repo(repo).get_collaborator_permission(user)
            except GithubException as exc:
                if exc.status == 404:
                    return "none"
                raise

    def issue_trail(self, repo: str, number: int) -> IssueTrail:
        """Label events and body edits in one GraphQL request.

        The REST timeline records no body edits (a body change is only in
        GraphQL's ``Issue.userContentEdits``; a title change is a ``renamed``
        event), so this is the one reliable source:
        https://docs.github.com/en/graphql/reference/objects#issue
        """
        owner, name = repo.split("/", 1)
        with self._request(f"read the history of {repo}#{number}", repo) as gh:
            _, data = gh.requester.graphql_query(
                TRAIL_QUERY, {"owner": owner, "name": name, "number": number})
        issue = ((data.get("data") or {}).get("repository") or {}).get("issue")
        if not isinstance(issue, dict):
            raise NotFound(f"GitHub found no issue {repo}#{number} when reading its history.")
        edits_page = issue.get("userContentEdits") or {}
        edit_nodes = [n for n in edits_page.get("nodes") or [] if isinstance(n, dict)]
        timeline = issue.get("timelineItems") or {}
        events = tuple(
            LabelEvent(action="labeled" if n.get("__typename") == "LabeledEvent" else "unlabeled",
                       label=str((n.get("label") or {}).get("name", "")), actor=_actor_login(n.get("actor")),
                       at=str(n.get("createdAt") or ""))
            for n in timeline.get("nodes") or [] if isinstance(n, dict)
        )
        author = _actor_login(issue.get("author"))
        edits = [ContentEdit(editor=_actor_login(n.get("editor")), at=str(n.get("editedAt") or ""))
                 for n in edit_nodes]
        complete = int(edits_page.get("totalCount") or 0) <= len(edit_nodes)
        if issue.get("includesCreatedEdit") and edits and complete:
            edits.remove(_original_text(edits, author))
        return IssueTrail(
            author=author,
            body=issue.get("body") or "",
            created_at=str(issue.get("createdAt") or ""),
            last_edited_at=issue.get("lastEditedAt"),
            edits=tuple(edits),
            label_events=events,
            complete=complete,
        )

    def repo_info(self, repo: str) -> RepoInfo:
        """Cached for GITHUB_CACHE_SECONDS: the default branch and clone URL rarely change."""
        return self._repos.get_or_load(repo.lower(), lambda: self._repo_info(repo))

    def _repo_info(self, repo: str) -> RepoInfo:
        with self._request(f"read repository {repo}", repo) as gh:
            r = gh.get_repo(repo)
            return RepoInfo(
                full_name=r.full_name,
                default_branch=r.default_branch,
                clone_url=r.clone_url,
                private=bool(r.private),
            )

    # -- what `agent-runner doctor` asks --------------------------------------------

    def token_info(self, repo: str) -> TokenInfo:
        """GET /user: the login, the classic scopes and GitHub's clock.

        Classic tokens list their scopes in `X-OAuth-Scopes`; fine-grained and
        app tokens send no such header:
        https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/scopes-for-oauth-apps
        """
        with self._request("read the authenticated user", repo) as gh:
            headers, data = gh.requester.requestJsonAndCheck("GET", "/user")
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        raw = lowered.get("x-oauth-scopes")
        scopes = None if raw is None else tuple(s.strip() for s in raw.split(",") if s.strip())
        try:
            server_time = parsedate_to_datetime(lowered["date"]) if "date" in lowered else None
        except (TypeError, ValueError):
            server_time = None
        return TokenInfo(login=str(data.get("login", "")), scopes=scopes, server_time=server_time)

    def repo_access(self, repo: str) -> RepoAccess:
        with self._request(f"read repository {repo}", repo) as gh:
            _, data = gh.requester.requestJsonAndCheck("GET", f"/repos/{repo}")
        return _access_value(data)

    def accessible_repos(self, repo: str) -> list[RepoAccess]:
        """GET /user/repos with ``repo``'s token: every repository it can use, with its permissions."""
        found: list[RepoAccess] = []
        with self._request("list the token's repositories", repo) as gh:
            headers, page = gh.requester.requestJsonAndCheck(
                "GET", "/user/repos", parameters={"per_page": 100})
            found += [_access_value(item) for item in page or []]
            next_url = _next_link(headers)
            while next_url:
                headers, page = gh.requester.requestJsonAndCheck("GET", next_url)
                found += [_access_value(item) for item in page or []]
                next_url = _next_link(headers)
        return found

    def list_labels(self, repo: str) -> list[str]:
        with self._request(f"list labels of {repo}", repo) as gh:
            return [label.name for label in gh.get_repo(repo).get_labels()]

    def create_label(self, repo: str, name: str, color: str, description: str) -> None:
        with self._request(f"create the label `{name}` in {repo}", repo, write=True) as gh:
            gh.get_repo(repo).create_label(name, color, description)

    # -- what `agent-runner smoke-test` does -----------------------------------------

    def create_issue(self, repo: str, title: str, body: str, labels: Sequence[str]) -> int:
        with self._request(f"open an issue in {repo}", repo, write=True) as gh:
            return int(gh.get_repo(repo).create_issue(title=title, body=body, labels=list(labels)).number)

    def close_issue(self, repo: str, number: int) -> None:
        with self._request(f"close {repo}#{number}", repo, write=True) as gh:
            gh.get_repo(repo).get_issue(number).edit(state="closed")

    def branch_head(self, repo: str, branch: str) -> str | None:
        """The branch's commit sha, or None when there is no such branch."""
        try:
            with self._request(f"read branch {branch} of {repo}", repo) as gh:
                return str(gh.get_repo(repo).get_git_ref(f"heads/{branch}").object.sha)
        except NotFound:
            return None

    def file_text(self, repo: str, ref: str, path: str) -> str | None:
        try:
            with self._request(f"read {path} at {ref} in {repo}", repo) as gh:
                found = gh.get_repo(repo).get_contents(path, ref=ref)
        except NotFound:
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
        with self._request(f"find the pull request for {head_branch} in {repo}", repo) as gh:
            pulls = gh.get_repo(repo).get_pulls(state="all", head=f"{owner}:{head_branch}")
            found = [_pull_value(p) for p in pulls]
        # GitHub lists newest first; an open PR wins over older closed ones.
        found.sort(key=lambda p: (p.state != "open", -p.number))
        return found[0] if found else None

    def create_pull(
        self, repo: str, *, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequest:
        try:
            with self._request(f"open a pull request from {head} in {repo}", repo, write=True) as gh:
                pull = gh.get_repo(repo).create_pull(
                    base=base, head=head, title=title, body=body, draft=draft
                )
                return _pull_value(pull)
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
            return _pull_value(pull)  # PyGithub refreshes the object from the PATCH response


class _SourcedToken(Auth.Auth):
    """PyGithub auth that asks the token source on every request, so a refreshed token is used at once."""

    def __init__(self, source: TokenSource, key: str) -> None:
        self._source = source
        self._key = key

    @property
    def token_type(self) -> str:
        return "token"

    @property
    def token(self) -> str:
        return self._source.token(self._key)

    @property
    def _masked_token(self) -> str:
        return "token (removed)"


@contextlib.contextmanager
def translate(action: str, observe: Callable[[Mapping[str, str]], None] | None = None) -> Iterator[None]:
    """Map PyGithub and requests exceptions onto our tree, with a sentence for humans."""
    try:
        yield
    except GithubException as exc:
        if observe is not None:
            observe(exc.headers or {})
        raise _from_status(exc.status, exc.headers or {}, exc.data, action) from exc
    except requests.exceptions.RequestException as exc:
        raise ForgeError(
            f"Could not reach GitHub at {_request_url(exc)} to {action} ({type(exc).__name__}). "
            "Check GITHUB_API_URL and the network."
        ) from exc


def _request_url(exc: requests.exceptions.RequestException) -> str:
    """The failed request's URL without its query string; PyGithub sends the token in a header."""
    url = getattr(exc.request, "url", None) if exc.request is not None else None
    return str(url).split("?", 1)[0] if url else "GITHUB_API_URL"


_translate = translate  # the old name


def _from_status(status: int, headers: dict[str, Any], data: Any, action: str) -> ForgeError:
    message = data.get("message", "") if isinstance(data, dict) else str(data or "")
    detail = _error_detail(data)
    lowered = {k.lower(): v for k, v in headers.items()}
    if status == 429 or (status == 403 and ("retry-after" in lowered or lowered.get("x-ratelimit-remaining") == "0")):
        return RateLimited(f"GitHub rate-limited the request to {action}.", retry_after=_retry_after(lowered))
    if status == 401:
        return BadCredentials(f"GitHub rejected the token while trying to {action} (401 Bad credentials). "
                              "Check GITHUB_TOKEN: it may be mistyped, expired or revoked.")
    if status == 403:
        return PermissionDenied(f"The token may not {action} (403: {message}).")
    if status == 404:
        return NotFound(f"GitHub found nothing when trying to {action} (404).")
    if status == 422:
        return Rejected(f"GitHub refused to {action} (422: {detail or message}).", detail=detail or message)
    return ForgeError(f"GitHub failed to {action} ({status}: {message or 'no message'}).")


TRAIL_QUERY = """
query IssueTrail($owner: String!, $name: String!, $number: Int!) {
  repository(owner: $owner, name: $name) {
    issue(number: $number) {
      author { __typename login }
      body
      createdAt
      lastEditedAt
      includesCreatedEdit
      userContentEdits(first: 100) { totalCount nodes { editedAt editor { __typename login } } }
      timelineItems(last: 100, itemTypes: [LABELED_EVENT, UNLABELED_EVENT]) {
        totalCount
        nodes {
          __typename
          ... on LabeledEvent { createdAt actor { __typename login } label { name } }
          ... on UnlabeledEvent { createdAt actor { __typename login } label { name } }
        }
      }
    }
  }
}
"""


def _original_text(edits: list[ContentEdit], author: str | None) -> ContentEdit:
    """The entry GitHub adds for the text as first written: the oldest, by the author on a tie."""
    oldest = min(e.at for e in edits)
    tied = [e for e in edits if e.at == oldest]
    return next((e for e in tied if e.editor == author), tied[0])


def _actor_login(actor: Any) -> str | None:
    """An actor's login as REST spells it: GraphQL says ``name`` for a bot, REST ``name[bot]``."""
    if not isinstance(actor, dict) or not actor.get("login"):
        return None
    login = str(actor["login"])
    if actor.get("__typename") == "Bot" and not login.endswith("[bot]"):
        login += "[bot]"
    return login

def _access_value(data: Any) -> RepoAccess:
    perms = data.get("permissions") or {}
    return RepoAccess(full_name=str(data.get("full_name", "")),
                      permissions=frozenset(k for k, v in perms.items() if v),
                      private=bool(data.get("private")))




def _opt(value: str | None) -> Any:
    return NotSet if value is None else value


def _error_detail(data: Any) -> str:
    if not isinstance(data, dict):
        return ""
    parts = [str(e.get("message", "")) for e in data.get("errors", []) if isinstance(e, dict)]
    return "; ".join(p for p in parts if p)


def _retry_after(headers: dict[str, Any]) -> float:
    if "retry-after" in headers:
        try:
            return max(1.0, float(headers["retry-after"]))
        except ValueError:
            pass
    reset = headers.get("x-ratelimit-reset")
    if reset:
        try:
            return max(1.0, float(reset) - time.time())
        except ValueError:
            pass
    return 60.0


def _next_link(headers: dict[str, Any]) -> str | None:
    link = {k.lower(): v for k, v in headers.items()}.get("link", "")
    for part in link.split(","):
        if 'rel="next"' in part:
            return part.split(";")[0].strip().strip("<>")
    return None


def issue_from_json(repo: str, item: dict[str, Any]) -> Issue:
    return Issue(
        repo=repo,
        number=int(item["number"]),
        title=item.get("title") or "",
        body=item.get("body") or "",
        labels=frozenset(label["name"] for label in item.get("labels", [])),
        author=(item.get("user") or {}).get("login", ""),
        state=item.get("state", "open"),
        updated_at=item.get("updated_at") or "",
        html_url=item.get("html_url") or "",
        is_pull_request="pull_request" in item and item["pull_request"] is not None,
        comment_count=item.get("comments") if isinstance(item.get("comments"), int) else None,
    )


def _issue_value(repo: str, issue: GhIssue) -> Issue:
    return Issue(
        repo=repo,
        number=issue.number,
        title=issue.title or "",
        body=issue.body or "",
        labels=frozenset(label.name for label in issue.labels),
        author=issue.user.login if issue.user else "",
        state=issue.state,
        updated_at=issue.updated_at.isoformat() if issue.updated_at else "",
        html_url=issue.html_url or "",
        is_pull_request=issue.pull_request is not None,
        comment_count=issue.comments if isinstance(issue.comments, int) else None,
    )


def _comment_value(comment: Any) -> Comment:
    return Comment(
        id=comment.id,
        body=comment.body or "",
        author=comment.user.login if comment.user else "",
        html_url=comment.html_url or "",
    )


def _pull_value(pull: GhPull) -> PullRequest:
    return PullRequest(
        number=pull.number,
        html_url=pull.html_url,
        state=pull.state,
        # A listed pull (pull-request-simple) has no `merged`; reading it would cost a GET each.
        merged=pull.merged_at is not None,
        head=pull.head.ref,
        base=pull.base.ref,
        title=pull.title or "",
        body=pull.body or "",
        draft=bool(pull.draft),
    )


def _comment_item(repo: str, kind: str, row: dict[str, Any]) -> FeedbackItem:
    """A listed comment as a feedback item; its issue or PR number comes from its API URL."""
    parent = row.get("pull_request_url") if kind == "review_comment" else row.get("issue_url")
    number = str(parent or "").rstrip("/").rsplit("/", 1)[-1]
    line = row.get("line")
    return FeedbackItem(
        kind=kind,  # type: ignore[arg-type]
        id=int(row["id"]), repo=repo, number=int(number) if number.isdigit() else 0,
        author=(row.get("user") or {}).get("login", ""), body=row.get("body") or "",
        html_url=row.get("html_url") or "", updated_at=row.get("updated_at") or row.get("created_at") or "",
        path=row.get("path"), line=line if isinstance(line, int) else None, diff_hunk=row.get("diff_hunk"),
    )
