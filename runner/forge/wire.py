"""Read GitHub's wire format into our values and errors, with no I/O (gidgethub's ``sansio``).

Everything here is a pure function of what GitHub sent: an HTTP status and its
headers become one class of :mod:`runner.errors` with a sentence for humans
(:func:`error_for_status`, and :func:`translate` around a PyGithub call); the
``Link``, ``Retry-After`` and ``X-OAuth-Scopes`` headers become numbers and
tuples; REST JSON, GraphQL JSON and PyGithub's objects become the frozen values
of :mod:`runner.forge.base`. :mod:`runner.forge.github` does the requests and
:mod:`runner.forge.auth` the tokens; both translate errors through here, so
neither imports the other for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Callable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from github import GithubException

from runner.errors import (
    BadCredentials,
    ForgeError,
    NotFound,
    PermissionDenied,
    RateLimited,
    Rejected,
)
from runner.forge.base import (
    Annotation,
    Check,
    Comment,
    CommitChecks,
    ContentEdit,
    FeedbackItem,
    Issue,
    IssueTrail,
    LabelEvent,
    PullRequest,
    RepoAccess,
    TokenInfo,
)

#: The methods that take a write slot of the pacer (GitHub's "content-creating" requests).
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


#: Writes that notify people, after octokit's throttling plugin (``triggersNotificationPaths``):
#: they get a pacing lane of their own besides the write lane.
_NOTIFYING = re.compile(
    r"^(/api/v3)?(/orgs/[^/]+/invitations|/repos/[^/]+/[^/]+/(collaborators/[^/]+|commits/[^/]+/comments"
    r"|issues|issues/\d+/comments|pulls|pulls/\d+/(comments|comments/\d+/replies|merge"
    r"|requested_reviewers|reviews)|releases)|/teams/\d+/discussions(/\d+/comments)?)/?$")


def notifies(method: str, url: str) -> bool:
    """Whether a request notifies people (a comment, an issue, a PR, a review): POST to those paths."""
    if method.upper() != "POST":
        return False
    path = urlsplit(url).path if "://" in url else url.split("?", 1)[0]
    return bool(_NOTIFYING.match(path))


def graphql_mutations(document: str) -> int:
    """How many content-creating requests a GraphQL document counts as: one per mutation field.

    GitHub documents no cheaper rule for a request with several mutations, so
    each top-level field of each ``mutation`` operation counts as one write.
    """
    text = re.sub(r"#[^\n]*", "", document)
    count, depth, parens, in_mutation = 0, 0, 0, False
    tokens = re.finditer(r'"(?:\\.|[^"\\])*"|[{}()]|[A-Za-z_][A-Za-z0-9_]*(?:\s*:\s*[A-Za-z_][A-Za-z0-9_]*)?',
                         text)
    for match in tokens:
        tok = match.group(0)
        if tok.startswith('"'):
            continue
        if tok == "(":
            parens += 1
        elif tok == ")":
            parens -= 1
        elif parens:
            continue
        elif tok == "{":
            depth += 1
        elif tok == "}":
            depth -= 1
            if depth == 0:
                in_mutation = False
        elif depth == 0 and tok in ("mutation", "query", "subscription", "fragment"):
            in_mutation = tok == "mutation"
        elif depth == 1 and in_mutation:
            count += 1
    return count
def host_of(url: str) -> str:
    """The host (and port) of a URL: what a breaker is per."""
    return urlsplit(url).netloc or url


def pacer_bucket(credential: str, base_url: str) -> str:
    """The pacer's key for one credential on one GitHub: a hash, so no token is ever stored."""
    return hashlib.sha256(f"{base_url}\n{credential}".encode()).hexdigest()[:20]


# -- errors -----------------------------------------------------------------------


@contextlib.contextmanager
def translate(action: str, observe: Callable[[Mapping[str, str]], None] | None = None) -> Iterator[None]:
    """Map PyGithub and requests exceptions onto our tree, with a sentence for humans."""
    try:
        yield
    except GithubException as exc:
        if observe is not None:
            observe(exc.headers or {})
        raise error_for_status(exc.status, exc.headers or {}, exc.data, action) from exc
    except requests.exceptions.RequestException as exc:
        raise ForgeError(
            f"Could not reach GitHub at {_request_url(exc)} to {action} ({type(exc).__name__}). "
            "Check GITHUB_API_URL and the network."
        ) from exc


def _request_url(exc: requests.exceptions.RequestException) -> str:
    """The failed request's URL without its query string; PyGithub sends the token in a header."""
    url = getattr(exc.request, "url", None) if exc.request is not None else None
    return str(url).split("?", 1)[0] if url else "GITHUB_API_URL"


def error_for_status(
    status: int, headers: Mapping[str, Any], data: Any, action: str, *, now: float | None = None
) -> ForgeError:
    """The error for GitHub's answer ``status`` to the attempt to ``action``; ``now`` is epoch seconds."""
    message = data.get("message", "") if isinstance(data, dict) else str(data or "")
    detail = error_detail(data)
    lowered = {k.lower(): v for k, v in headers.items()}
    if status == 429 or (status == 403 and ("retry-after" in lowered or lowered.get("x-ratelimit-remaining") == "0")):
        return RateLimited(f"GitHub rate-limited the request to {action}.", retry_after=retry_after(lowered, now=now))
    if status == 401:
        return BadCredentials(f"GitHub rejected the token while trying to {action} (401 Bad credentials). "
                              "Check GITHUB_TOKEN: it may be mistyped, expired or revoked.")
    if status == 403:
        return PermissionDenied(f"The token may not {action} (403: {message}).")
    if status == 404:
        return NotFound(f"GitHub found nothing when trying to {action} (404).")
    if status == 422:
        return Rejected(f"GitHub refused to {action} (422: {detail or message}).", detail=detail or message)
    error = ForgeError(f"GitHub failed to {action} ({status}: {message or 'no message'}).")
    if status < 500:
        error.service = None  # GitHub answered: a retry may help, but GitHub is not down
    return error


def error_detail(data: Any) -> str:
    """The messages of a 422's ``errors`` list, joined: what GitHub actually objected to."""
    if not isinstance(data, dict):
        return ""
    parts = [str(e.get("message", "")) for e in data.get("errors", []) if isinstance(e, dict)]
    return "; ".join(p for p in parts if p)


# -- headers ----------------------------------------------------------------------


def retry_after(headers: Mapping[str, Any], *, now: float | None = None) -> float:
    """Seconds to wait from lower-cased headers: ``Retry-After``, else until ``X-RateLimit-Reset``, else 60."""
    if "retry-after" in headers:
        try:
            return max(1.0, float(headers["retry-after"]))
        except ValueError:
            pass
    reset = headers.get("x-ratelimit-reset")
    if reset:
        try:
            return max(1.0, float(reset) - (time.time() if now is None else now))
        except ValueError:
            pass
    return 60.0


def next_link(headers: Mapping[str, Any]) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header: the next page, or None on the last one."""
    link = {k.lower(): v for k, v in headers.items()}.get("link", "")
    for part in link.split(","):
        if 'rel="next"' in part:
            return part.split(";")[0].strip().strip("<>")
    return None


def token_info(headers: Mapping[str, Any] | None, data: Mapping[str, Any]) -> TokenInfo:
    """``GET /user``'s answer as a TokenInfo: classic scopes from ``X-OAuth-Scopes``, GitHub's clock from ``Date``.

    Fine-grained and app tokens send no scopes header, hence ``scopes=None``:
    https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/scopes-for-oauth-apps
    """
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    raw = lowered.get("x-oauth-scopes")
    scopes = None if raw is None else tuple(s.strip() for s in raw.split(",") if s.strip())
    try:
        server_time = parsedate_to_datetime(lowered["date"]) if "date" in lowered else None
    except (TypeError, ValueError):
        server_time = None
    return TokenInfo(login=str(data.get("login", "")), scopes=scopes, server_time=server_time)


# -- REST JSON --------------------------------------------------------------------


def issue_from_json(repo: str, item: Mapping[str, Any]) -> Issue:
    """An issue (or a PR listed as one) from REST or webhook JSON."""
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


def comment_from_json(data: Mapping[str, Any]) -> Comment:
    """An issue comment from REST JSON."""
    return Comment(id=int(data["id"]), body=data.get("body") or "",
                   author=(data.get("user") or {}).get("login", ""), html_url=data.get("html_url") or "")


def access_from_json(data: Mapping[str, Any]) -> RepoAccess:
    """A repository and the token's permissions on it (the ``permissions`` object's true keys)."""
    perms = data.get("permissions") or {}
    return RepoAccess(full_name=str(data.get("full_name", "")),
                      permissions=frozenset(k for k, v in perms.items() if v),
                      private=bool(data.get("private")))


def feedback_item(repo: str, kind: str, row: Mapping[str, Any]) -> FeedbackItem:
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


# -- PyGithub's objects -------------------------------------------------------------


def issue_value(repo: str, issue: Any) -> Issue:
    """A PyGithub ``Issue`` as our value."""
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


def comment_value(comment: Any) -> Comment:
    """A PyGithub ``IssueComment`` as our value."""
    return Comment(
        id=comment.id,
        body=comment.body or "",
        author=comment.user.login if comment.user else "",
        html_url=comment.html_url or "",
    )


def pull_value(pull: Any) -> PullRequest:
    """A PyGithub ``PullRequest`` as our value."""
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
        head_sha=pull.head.sha or "",
    )


def pull_from_json(data: Mapping[str, Any]) -> PullRequest:
    """A ``pull-request`` as GitHub's JSON has it (a conditional read skips PyGithub's objects)."""
    head, base = data.get("head") or {}, data.get("base") or {}
    return PullRequest(
        number=int(data["number"]), html_url=str(data.get("html_url") or ""), state=str(data.get("state") or ""),
        merged=bool(data.get("merged") or data.get("merged_at")), head=str(head.get("ref") or ""),
        base=str(base.get("ref") or ""), title=str(data.get("title") or ""), body=str(data.get("body") or ""),
        draft=bool(data.get("draft")), head_sha=str(head.get("sha") or ""),
    )


# -- checks (runner.core.ci) ----------------------------------------------------------

_STATUS_STATE = {"pending": ("in_progress", None), "success": ("completed", "success"),
                 "failure": ("completed", "failure"), "error": ("completed", "error")}


def commit_checks(runs: Mapping[str, Any], combined: Mapping[str, Any]) -> CommitChecks:
    """A commit's check runs (``check_runs`` of the listing) and statuses (the combined status) as one value."""
    checks: list[Check] = []
    sha = str(combined.get("sha") or "")
    for row in runs.get("check_runs") or []:
        if not isinstance(row, dict):
            continue
        output, app = row.get("output") or {}, row.get("app") or {}
        sha = sha or str(row.get("head_sha") or "")
        checks.append(Check(
            name=str(row.get("name") or ""), source="check_run", status=str(row.get("status") or ""),
            conclusion=_opt_text(row.get("conclusion")), id=int(row.get("id") or 0),
            app=str(app.get("slug") or ""), title=str(output.get("title") or ""),
            summary=str(output.get("summary") or ""), text=str(output.get("text") or ""),
            details_url=str(row.get("details_url") or row.get("html_url") or "")))
    for row in combined.get("statuses") or []:
        if not isinstance(row, dict):
            continue
        status, conclusion = _STATUS_STATE.get(str(row.get("state")), ("completed", "error"))
        checks.append(Check(
            name=str(row.get("context") or "default"), source="status", status=status, conclusion=conclusion,
            id=int(row.get("id") or 0), description=str(row.get("description") or ""),
            details_url=str(row.get("target_url") or "")))
    return CommitChecks(sha=sha, checks=tuple(checks))


def annotation_from_json(row: Mapping[str, Any]) -> Annotation:
    return Annotation(path=str(row.get("path") or ""), start_line=int(row.get("start_line") or 0),
                      level=str(row.get("annotation_level") or "notice"), message=str(row.get("message") or ""),
                      title=str(row.get("title") or ""))


def _opt_text(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None


# -- GraphQL: an issue's trail ----------------------------------------------------------

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


def trail_from_json(data: Mapping[str, Any]) -> IssueTrail | None:
    """:data:`TRAIL_QUERY`'s answer as an IssueTrail; None when GitHub found no such issue.

    The entry GitHub adds for the original text is dropped (it is not an edit),
    and ``complete`` is False when there were more edits than one page holds.
    """
    issue = ((data.get("data") or {}).get("repository") or {}).get("issue")
    if not isinstance(issue, dict):
        return None
    edits_page = issue.get("userContentEdits") or {}
    edit_nodes = [n for n in edits_page.get("nodes") or [] if isinstance(n, dict)]
    timeline = issue.get("timelineItems") or {}
    events = tuple(
        LabelEvent(action="labeled" if n.get("__typename") == "LabeledEvent" else "unlabeled",
                   label=str((n.get("label") or {}).get("name", "")), actor=actor_login(n.get("actor")),
                   at=str(n.get("createdAt") or ""))
        for n in timeline.get("nodes") or [] if isinstance(n, dict)
    )
    author = actor_login(issue.get("author"))
    edits = [ContentEdit(editor=actor_login(n.get("editor")), at=str(n.get("editedAt") or ""))
             for n in edit_nodes]
    complete = int(edits_page.get("totalCount") or 0) <= len(edit_nodes)
    if issue.get("includesCreatedEdit") and edits and complete:
        del edits[_original_text(edits, author)]
    return IssueTrail(
        author=author,
        body=issue.get("body") or "",
        created_at=str(issue.get("createdAt") or ""),
        last_edited_at=issue.get("lastEditedAt"),
        edits=tuple(edits),
        label_events=events,
        complete=complete,
    )


def _original_text(edits: list[ContentEdit], author: str | None) -> int:
    """Where the entry GitHub adds for the text as first written is: the oldest, by the author on a tie.

    GitHub lists the edits newest first, so among entries of the same second (and the same
    editor, which compare equal) the original is the last one; the others keep their order.
    """
    oldest = min(e.at for e in edits)
    tied = [i for i, e in enumerate(edits) if e.at == oldest]
    return next((i for i in reversed(tied) if edits[i].editor == author), tied[-1])


def actor_login(actor: Any) -> str | None:
    """An actor's login as REST spells it: GraphQL says ``name`` for a bot, REST ``name[bot]``."""
    if not isinstance(actor, dict) or not actor.get("login"):
        return None
    login = str(actor["login"])
    if actor.get("__typename") == "Bot" and not login.endswith("[bot]"):
        login += "[bot]"
    return login
