"""Answer ``POST /graphql`` for the slice of GitHub's GraphQL schema the runner reads.

The query is executed for real by graphql-core against an SDL subset of
GitHub's schema, so a client sends the same document it sends to GitHub and
gets the same shapes back: ``Issue.userContentEdits`` (body revisions, newest
first, the original text included once the body was edited),
``Issue.lastEditedAt`` and ``Issue.timelineItems`` filtered by ``itemTypes``.
Errors follow GitHub's format: HTTP 200 with ``errors[].type`` such as
``NOT_FOUND``, and connections refuse to run without ``first`` or ``last``.
https://docs.github.com/en/graphql/reference/objects#issue
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    build_schema,
    execute_sync,
    parse,
    validate,
)

from .errors import EmulatorError, ResourceNotFound
from .records import Comment, Event, Issue, Repo
from .routing import Context, Request, Response, Router

router = Router()

SCHEMA_SDL = """
scalar DateTime
scalar URI

type Query {
  repository(owner: String!, name: String!): Repository
  viewer: User!
}

interface Actor { login: String! url: URI! }
type User implements Actor { login: String! url: URI! databaseId: Int }
type Bot implements Actor { login: String! url: URI! databaseId: Int }

type PageInfo { hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String endCursor: String }

type Repository { nameWithOwner: String! issue(number: Int!): Issue }

type Label { name: String! color: String! }

type UserContentEdit { id: ID! createdAt: DateTime! editedAt: DateTime! editor: Actor diff: String }
type UserContentEditConnection { totalCount: Int! nodes: [UserContentEdit] pageInfo: PageInfo! }

type LabeledEvent { id: ID! createdAt: DateTime! actor: Actor label: Label! }
type UnlabeledEvent { id: ID! createdAt: DateTime! actor: Actor label: Label! }
type ClosedEvent { id: ID! createdAt: DateTime! actor: Actor }
type ReopenedEvent { id: ID! createdAt: DateTime! actor: Actor }
type IssueComment { id: ID! databaseId: Int createdAt: DateTime! author: Actor body: String! }
union IssueTimelineItems = LabeledEvent | UnlabeledEvent | ClosedEvent | ReopenedEvent | IssueComment
enum IssueTimelineItemsItemType { LABELED_EVENT UNLABELED_EVENT CLOSED_EVENT REOPENED_EVENT ISSUE_COMMENT }
type IssueTimelineItemsConnection {
  totalCount: Int! filteredCount: Int! nodes: [IssueTimelineItems] pageInfo: PageInfo!
}

type Issue {
  id: ID! number: Int! title: String! body: String! createdAt: DateTime! updatedAt: DateTime!
  author: Actor editor: Actor lastEditedAt: DateTime includesCreatedEdit: Boolean!
  userContentEdits(first: Int, last: Int): UserContentEditConnection
  timelineItems(first: Int, last: Int, itemTypes: [IssueTimelineItemsItemType!]): IssueTimelineItemsConnection!
}
"""

SCHEMA = build_schema(SCHEMA_SDL)
_EVENT_TYPES = {"labeled": "LabeledEvent", "unlabeled": "UnlabeledEvent", "closed": "ClosedEvent",
                "reopened": "ReopenedEvent"}


def _typename(value: Any, *_: Any) -> str:
    return str(value["__typename"])


for _name in ("Actor", "IssueTimelineItems"):
    SCHEMA.get_type(_name).resolve_type = _typename  # type: ignore[union-attr]


class _Error(GraphQLError):
    """A GraphQL error carrying GitHub's top-level ``type`` field."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message, extensions={"type": kind})


@router.route("POST", "/graphql")
def graphql(app: Context, req: Request) -> Response:
    data = req.json_object()
    query = data.get("query")
    if not isinstance(query, str):
        raise EmulatorError("A query attribute must be specified and must be a string.", status=400)
    variables = data.get("variables") or {}
    document, errors = _prepared(query)
    result = (ExecutionResult(None, list(errors)) if document is None else
              execute_sync(SCHEMA, document, root_value=_Root(app, req.user), variable_values=variables))
    body: dict[str, Any] = {}
    if result.data is not None:
        body["data"] = result.data
    if result.errors:
        body["errors"] = [_format(error) for error in result.errors]
    return Response(200, body)


@functools.lru_cache(maxsize=64)
def count_mutations(query: str) -> int:
    """Top-level fields of the document's mutation operations: each one content-creating request."""
    try:
        document = parse(query)
    except GraphQLError:
        return 0
    return sum(len(op.selection_set.selections) for op in document.definitions
               if isinstance(op, OperationDefinitionNode) and op.operation == OperationType.MUTATION)


@functools.lru_cache(maxsize=64)
def _prepared(query: str) -> tuple[DocumentNode | None, tuple[GraphQLError, ...]]:
    """The query parsed and validated once (a client sends the same few documents): what
    ``graphql_sync`` does before it executes, without redoing it on every request."""
    try:
        document = parse(query)
    except GraphQLError as exc:
        return None, (exc,)
    errors = validate(SCHEMA, document)
    return (None, tuple(errors)) if errors else (document, ())


def _format(error: GraphQLError) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    extensions: dict[str, Any] = formatted.pop("extensions", None) or {}
    if "type" in extensions:
        formatted["type"] = extensions["type"]
    return formatted


class _Root:
    def __init__(self, app: Context, user: str | None) -> None:
        self._app, self._user = app, user

    def viewer(self, _info: Any) -> dict[str, Any]:
        assert self._user is not None
        return _actor(self._app, self._user) or {}

    def repository(self, _info: Any, owner: str, name: str) -> dict[str, Any]:
        full_name = f"{owner}/{name}"
        try:
            repo = self._app.backend.authorize(full_name, self._user, "read")
        except ResourceNotFound:
            raise _Error(f"Could not resolve to a Repository with the name '{full_name}'.", "NOT_FOUND") from None
        return {"nameWithOwner": repo.full_name, "issue": lambda _i, number: _issue(self._app, repo, number)}


def _actor(app: Context, login: str | None) -> dict[str, Any] | None:
    if not login:
        return None
    known = app.backend.store.users().get(login.lower())
    bot = login.endswith("[bot]")
    return {
        "__typename": "Bot" if bot else "User",
        "login": login.removesuffix("[bot]") if bot else (known.login if known else login),
        "url": f"{app.base_url}/{login}",
        "databaseId": known.id if known else None,
    }


def _issue(app: Context, repo: Repo, number: int) -> dict[str, Any]:
    try:
        issue = app.backend.store.issue(repo.full_name, number)
    except ResourceNotFound:
        raise _Error(f"Could not resolve to an Issue with the number of {number}.", "NOT_FOUND") from None
    if issue.pull is not None:
        raise _Error(f"Could not resolve to an Issue with the number of {number}.", "NOT_FOUND")
    comments = app.backend.store.comments(repo.full_name, number)
    return {
        "id": f"I_{issue.id}", "number": issue.number, "title": issue.title, "body": issue.body or "",
        "createdAt": issue.created_at, "updatedAt": issue.updated_at,
        "author": _actor(app, issue.user), "editor": _actor(app, issue.editor),
        "lastEditedAt": issue.last_edited_at, "includesCreatedEdit": bool(issue.edits),
        "userContentEdits": lambda _i, first=None, last=None: _edits(app, issue, first, last),
        "timelineItems": lambda _i, first=None, last=None, itemTypes=None: _timeline(
            app, issue, comments, first, last, itemTypes),
    }


def _edits(app: Context, issue: Issue, first: int | None, last: int | None) -> dict[str, Any]:
    newest_first = [
        {"id": f"UCE_{e.id}", "createdAt": e.edited_at, "editedAt": e.edited_at,
         "editor": _actor(app, e.editor), "diff": e.diff}
        for e in reversed(issue.edits)
    ]
    return _connection("userContentEdits", newest_first, first, last)


def _timeline(app: Context, issue: Issue, comments: Sequence[Comment], first: int | None, last: int | None,
              item_types: Sequence[str] | None) -> dict[str, Any]:
    items: list[tuple[str, int, dict[str, Any]]] = [(e.created_at, e.id, _event(app, e))
                                                    for e in issue.events if e.event in _EVENT_TYPES]
    items += [(c.created_at, c.id, {"__typename": "IssueComment", "id": f"IC_{c.id}", "databaseId": c.id,
                                    "createdAt": c.created_at, "author": _actor(app, c.user), "body": c.body})
              for c in comments]
    items.sort(key=lambda item: (item[0], item[1]))
    nodes = [node for _, _, node in items]
    wanted = {_enum_to_type(t) for t in item_types} if item_types else None
    filtered = [n for n in nodes if wanted is None or n["__typename"] in wanted]
    page = _connection("timelineItems", filtered, first, last)
    return {**page, "totalCount": len(nodes) if wanted is None else len(filtered), "filteredCount": len(filtered)}


def _event(app: Context, event: Event) -> dict[str, Any]:
    node: dict[str, Any] = {"__typename": _EVENT_TYPES[event.event], "id": f"E_{event.id}",
                            "createdAt": event.created_at, "actor": _actor(app, event.actor)}
    if event.label is not None:
        node["label"] = {"name": event.label.get("name", ""), "color": event.label.get("color", "ededed")}
    return node


def _enum_to_type(value: str) -> str:
    return "".join(part.capitalize() for part in value.split("_"))


def _connection(field: str, nodes: list[dict[str, Any]], first: int | None, last: int | None) -> dict[str, Any]:
    """One page of a connection; GitHub insists on ``first`` or ``last`` between 1 and 100."""
    if first is None and last is None:
        raise _Error(f"You must provide a `first` or `last` value to properly paginate the `{field}` connection.",
                     "MISSING_PAGINATION_BOUNDARIES")
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 0 <= value <= 100:
            raise _Error(f"Requesting {value} records on the `{field}` connection exceeds the `{name}` limit "
                         "of 100 records.", "EXCESSIVE_PAGINATION")
    chosen = nodes[:first] if first is not None else nodes
    chosen = chosen[-last:] if last else (chosen if last is None else [])
    return {
        "totalCount": len(nodes), "nodes": chosen,
        "pageInfo": {"hasNextPage": first is not None and len(nodes) > len(chosen),
                     "hasPreviousPage": last is not None and len(nodes) > len(chosen),
                     "startCursor": None, "endCursor": None},
    }

