"""Tell the model APIs' wire dialects apart: their routes, where their key goes, their error shapes.

One row of :data:`TABLE` per dialect the gateway speaks, so the handler asks
the table instead of branching on names:

- **anthropic**: Messages (``/v1/messages``, ``count_tokens``); the key in ``x-api-key``;
- **openai**: Chat Completions and Responses; the key as ``Authorization: Bearer``;
  its base URLs end in ``/v1``, so that prefix is dropped before the base path;
- **gemini**: the Gemini API, ``/v1beta/models/{model}:generateContent``,
  ``:streamGenerateContent`` and ``:countTokens``. The model is in the *path*,
  the output limit in ``generationConfig.maxOutputTokens``, and the key goes
  upstream in ``x-goog-api-key`` (a client may send its placeholder as ``?key=``
  too; :func:`forward_query` never lets it through).

:func:`route` turns a request line into a :class:`Route`: its dialect (or
``None`` when only the headers can tell, ``GET /v1/models``), whether it is
metered, and the model named in the path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

Dialect = Literal["anthropic", "openai", "gemini"]
DIALECTS: tuple[Dialect, ...] = ("anthropic", "openai", "gemini")


@dataclass(frozen=True)
class Route:
    """What one model API request is, from its method and path alone."""

    dialect: Dialect | None  # None: decided by the client's headers
    metered: bool = False  # it produces a model answer, so it is metered and capped
    model: str | None = None  # the model named in the path (Gemini), else in the body
    listing: bool = False  # a model listing: no model to check against the allowlist


#: (method, path) → route, for the dialects whose paths are fixed.
_FIXED: Mapping[tuple[str, str], Route] = {
    ("POST", "/v1/messages"): Route("anthropic", metered=True),
    ("POST", "/v1/messages/count_tokens"): Route("anthropic"),
    ("POST", "/v1/chat/completions"): Route("openai", metered=True),
    ("POST", "/v1/responses"): Route("openai", metered=True),
    ("GET", "/v1/models"): Route(None, listing=True),
    ("GET", "/v1beta/models"): Route("gemini", listing=True),
}
_GEMINI_CALL = re.compile(r"^/(?:v1beta|v1)/models/([A-Za-z0-9._-]+):"
                          r"(generateContent|streamGenerateContent|countTokens)$")
_GEMINI_MODEL = re.compile(r"^/v1beta/models/([A-Za-z0-9._-]+)$")


def route(method: str, path: str) -> Route | None:
    """The model API route of a request, or None when it is not one (the gateway answers 403)."""
    fixed = _FIXED.get((method, path))
    if fixed is not None:
        return fixed
    if method == "POST" and (call := _GEMINI_CALL.match(path)):
        return Route("gemini", metered=call.group(2) != "countTokens", model=call.group(1))
    if method == "GET" and (one := _GEMINI_MODEL.match(path)):
        return Route("gemini", model=one.group(1), listing=True)
    return None


def dialect_of(found: Route | None, headers: Mapping[str, str], offered: Iterable[Dialect]) -> Dialect:
    """The dialect a request speaks: from its route, else from its headers, else the only one offered."""
    offered = tuple(offered) or DIALECTS
    if found is not None and found.dialect is not None:
        return found.dialect
    if len(offered) == 1:
        return offered[0]
    lowered = {k.lower() for k in headers}
    if {"anthropic-version", "x-api-key"} & lowered:
        return "anthropic"
    return "gemini" if "x-goog-api-key" in lowered and "gemini" in offered else "openai"


def forward_query(query: str) -> str:
    """The query string that may go upstream: a ``key`` (the client's placeholder) never does."""
    if "key=" not in query:
        return query
    return urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "key"])


def query_key(query: str) -> str | None:
    """A key sent as ``?key=`` (Google's API and its SDKs accept it there)."""
    return next((v.strip() for k, v in parse_qsl(query) if k == "key" and v.strip()), None)


def max_output(body: Mapping[str, Any]) -> int | None:
    """The largest output limit a request names (each dialect spells it its own way)."""
    config = body.get("generationConfig")
    values = [body.get(n) for n in ("max_tokens", "max_output_tokens", "max_completion_tokens")]
    values.append(config.get("maxOutputTokens") if isinstance(config, Mapping) else None)
    limits = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0]
    return max(limits) if limits else None


# Each dialect's own shapes ---------------------------------------------------

_ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                     404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                     502: "api_error", 504: "timeout_error"}
_OPENAI_ERRORS = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
                  404: "invalid_request_error", 413: "invalid_request_error", 502: "server_error",
                  504: "server_error"}
#: google.rpc.Code names, as Google's APIs put them in ``error.status``.
_GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                  413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
                  504: "DEADLINE_EXCEEDED"}


def _anthropic_error(status: int, message: str, code: str | None) -> dict[str, Any]:
    return {"type": "error", "error": {"type": _ANTHROPIC_ERRORS.get(status, "api_error"), "message": message}}


def _openai_error(status: int, message: str, code: str | None) -> dict[str, Any]:
    kind = _OPENAI_ERRORS.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _google_error(status: int, message: str, code: str | None) -> dict[str, Any]:
    kind = _GOOGLE_STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    error: dict[str, Any] = {"code": status, "message": message, "status": kind}
    if code:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": code.upper(),
                             "domain": "agent-runner"}]
    return {"error": error}


def _anthropic_stream_error(message: str) -> bytes:
    data = {"type": "error", "error": {"type": "api_error", "message": message}}
    return b"event: error\ndata: " + json.dumps(data).encode() + b"\n\n"


@dataclass(frozen=True)
class Spec:
    """How one dialect is spoken: where its calls go by default, its key header, its error shapes."""

    name: Dialect
    default_url: str
    key_header: Callable[[str], tuple[str, str]]
    error: Callable[[int, str, str | None], dict[str, Any]]
    #: Dropped from the client's path before the upstream's base path is put in front.
    strip_prefix: str = ""
    #: An SSE error event, for an upstream failure after the stream's headers went out.
    stream_error: Callable[[str], bytes] | None = None

    def stream_error_event(self, message: str) -> bytes:
        if self.stream_error is not None:
            return self.stream_error(message)
        return b"data: " + json.dumps(self.error(502, message, None)).encode() + b"\n\n"


TABLE: Mapping[Dialect, Spec] = {
    "anthropic": Spec("anthropic", "https://api.anthropic.com", lambda key: ("x-api-key", key),
                      _anthropic_error, stream_error=_anthropic_stream_error),
    "openai": Spec("openai", "https://api.openai.com/v1", lambda key: ("Authorization", f"Bearer {key}"),
                   _openai_error, strip_prefix="/v1"),
    "gemini": Spec("gemini", "https://generativelanguage.googleapis.com", lambda key: ("x-goog-api-key", key),
                   _google_error),
}


def error_body(dialect: Dialect, status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """An error in the dialect's own JSON shape, so the CLI shows ``message``."""
    return TABLE[dialect].error(status, message, code)


def stream_error_event(dialect: Dialect, message: str) -> bytes:
    return TABLE[dialect].stream_error_event(message)
