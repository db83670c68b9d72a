"""Route REST requests to handlers, sans I/O: requests and responses are plain values.

Each ``api_*`` module builds its own :class:`Router`; the app combines them
explicitly in one place (bedevere's ``Router(a.router, b.router)``), so no
route is registered as a side effect of an import.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs, unquote, urlencode

from .backend import Backend
from .errors import EmulatorError, ResourceNotFound, UnprocessableEntity
from .faults import Faults
from .limits import SecondaryLimits
from .records import Permission, Repo
from .traffic import RateLimiter, RequestRecord

T = TypeVar("T")


@dataclass
class Request:
    """An HTTP request as the handlers see it; header names are lower-case."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes = b""
    user: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    installation_id: int | None = None  # set when an installation token authenticated
    app_id: int | None = None  # set when an app's JWT authenticated

    @classmethod
    def parse(cls, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Request:
        path, _, query = target.partition("?")
        return cls(
            method=method.upper(), path=path, body=body,
            query=parse_qs(query, keep_blank_values=True),
            headers={k.lower(): v for k, v in headers.items()},
        )

    @property
    def query_string(self) -> str:
        return urlencode(self.query, doseq=True)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def int_arg(self, name: str, default: int, *, low: int, high: int) -> int:
        """Read an integer parameter the lenient way GitHub does: junk means the default."""
        try:
            value = int(self.arg(name) or default)
        except ValueError:
            value = default
        return max(low, min(high, value))

    def json(self) -> Any:
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except ValueError:
            raise EmulatorError("Problems parsing JSON", status=400) from None

    def json_object(self) -> dict[str, Any]:
        data = self.json()
        if not isinstance(data, dict):
            raise EmulatorError("Problems parsing JSON", status=400)
        return data


def body_field(
    data: Mapping[str, Any], name: str, kind: type[T] | tuple[type, ...], *,
    resource: str, required: bool = False,
) -> Any:
    """Read one field of a JSON body, answering 422 like GitHub when it is missing or mistyped."""
    value = data.get(name)
    if value is None:
        if required:
            raise UnprocessableEntity([{"resource": resource, "code": "missing_field", "field": name}])
        return None
    if not isinstance(value, kind):
        raise UnprocessableEntity([{"resource": resource, "code": "invalid", "field": name}])
    return value


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class Context(Protocol):
    """What a route handler may use of the app (:class:`~.app.App` is the one implementation).

    Handlers take this, not the app, so that the route modules sit below the app
    that combines them and import nothing from it.
    """

    backend: Backend
    faults: Faults
    limiter: RateLimiter
    graphql_limiter: RateLimiter
    limits: SecondaryLimits | None
    token_lifetime: timedelta

    @property
    def base_url(self) -> str: ...

    @property
    def request_log(self) -> list[RequestRecord]: ...

    def clear_request_log(self) -> None: ...

    def repo(self, request: Request, need: Permission = "read") -> Repo:
        """The repository named by the route's ``owner``/``repo``, if the caller may use it."""
        ...


Handler = Callable[[Context, Request], Response]


def _compile(pattern: str) -> re.Pattern[str]:
    """Turn ``/repos/{owner}/{number:int}/{path:path}`` into an anchored regex."""
    kinds = {"": "[^/]+", "int": r"\d+", "path": ".*"}

    def group(m: re.Match[str]) -> str:
        return f"(?P<{m.group(1)}>{kinds[m.group(2) or '']})"

    return re.compile("^" + re.sub(r"\{(\w+)(?::(\w+))?\}", group, pattern) + "/?$")


class Router:
    """Match method and path to a handler; path parameters arrive URL-decoded."""

    def __init__(self, *others: Router) -> None:
        self._routes: list[tuple[str, str, re.Pattern[str], Handler]] = []
        for other in others:
            self._routes.extend(other._routes)

    def routes(self) -> list[tuple[str, str]]:
        """Every (METHOD, pattern) served, in matching order; the contract tests cover each one."""
        return [(method, pattern) for method, pattern, _, _ in self._routes]

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self._routes.append((method.upper(), pattern, _compile(pattern), handler))
            return handler

        return register

    def resolve(self, request: Request) -> Handler:
        for method, _, regex, handler in self._routes:
            match = regex.match(request.path)
            if match and (method == request.method or (method, request.method) == ("GET", "HEAD")):
                request.params = {k: unquote(v) for k, v in match.groupdict().items()}
                return handler
        raise ResourceNotFound()


def paginate(
    app: Context, request: Request, items: Sequence[T], render: Callable[[T], Any]
) -> Response:
    """Answer one page of ``items`` with a GitHub-style ``Link`` header."""
    # https://docs.github.com/rest/using-the-rest-api/using-pagination-in-the-rest-api
    per_page = request.int_arg("per_page", 30, low=1, high=100)
    page = request.int_arg("page", 1, low=1, high=10**9)
    last = max(1, math.ceil(len(items) / per_page))
    chunk = items[(page - 1) * per_page : page * per_page]

    def link(target: int, rel: str) -> str:
        query = urlencode({**request.query, "page": [str(target)]}, doseq=True)
        return f'<{app.base_url}{request.path}?{query}>; rel="{rel}"'

    rels = []
    if page > 1:
        rels += [link(min(page - 1, last), "prev")]
    if page < last:
        rels += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        rels += [link(1, "first")]
    headers = {"Link": ", ".join(rels)} if rels else {}
    return Response(200, [render(item) for item in chunk], headers)
