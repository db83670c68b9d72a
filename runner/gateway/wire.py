"""Read and shape the model APIs' wire format, so the gateway can route, meter and refuse without I/O.

Pure functions over bytes, headers and JSON: which route a request is, which
dialect it speaks, the placeholder token it carries, the headers that may go
upstream, the error body a CLI understands, and the token usage in a response,
whole or streamed (:class:`UsageReader` is fed the SSE bytes as they pass).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

Dialect = Literal["anthropic", "openai"]
DIALECTS: tuple[Dialect, ...] = ("anthropic", "openai")

#: (method, path) → dialect; ``None`` means "either: decided by the client's headers".
ROUTES: Mapping[tuple[str, str], Dialect | None] = {
    ("POST", "/v1/messages"): "anthropic",
    ("POST", "/v1/messages/count_tokens"): "anthropic",
    ("POST", "/v1/chat/completions"): "openai",
    ("POST", "/v1/responses"): "openai",
    ("GET", "/v1/models"): None,
}
#: Routes that produce a model answer, so they are metered and capped.
METERED = frozenset({"/v1/messages", "/v1/chat/completions", "/v1/responses"})
#: Probes answered by the gateway itself (Claude Code's ``HEAD /`` before its first call).
PROBES = frozenset({("HEAD", "/"), ("GET", "/")})

#: Headers that carry credentials or proxy state: never forwarded, whatever the client sends.
AUTH_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie",
                          "proxy-authorization", "proxy-authenticate", "proxy-connection"})
#: Hop-by-hop headers (RFC 9110 §7.6.1) and those the gateway sets itself.
HOP_HEADERS = frozenset({"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
                         "host", "content-length", "accept-encoding", "expect"})
_RESPONSE_DROP = HOP_HEADERS | {"set-cookie", "content-encoding"}

_ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                     404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                     502: "api_error", 504: "timeout_error"}
_OPENAI_ERRORS = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
                  404: "invalid_request_error", 413: "invalid_request_error", 502: "server_error",
                  504: "server_error"}


def route_of(method: str, target: str) -> tuple[str, str]:
    """The request's path and query, whatever form its target takes.

    An absolute-form target (``http://elsewhere/v1/messages``) keeps only its
    path: the client never chooses where the gateway forwards.
    """
    if target.startswith("/"):  # origin-form, even `//host/x`: a path, never an authority
        path, _, query = target.partition("?")
        path = path.partition("#")[0]
    else:
        parts = urlsplit(target)
        path, query = parts.path or "/", parts.query
    if not path.startswith("/"):
        path = "/" + path
    if path != "/":
        path = path.rstrip("/")
    while "//" in path:
        path = path.replace("//", "/")
    return path, query


def is_model_route(method: str, path: str) -> bool:
    return (method, path) in ROUTES


def dialect_for(method: str, path: str, headers: Mapping[str, str], offered: Iterable[Dialect]) -> Dialect:
    """The dialect a request speaks: from its route, else from its headers, else the only one offered."""
    offered = tuple(offered) or DIALECTS
    fixed = ROUTES.get((method, path))
    if fixed is not None:
        return fixed
    if len(offered) == 1:
        return offered[0]
    lowered = {k.lower() for k in headers}
    return "anthropic" if {"anthropic-version", "x-api-key"} & lowered else "openai"


def client_token(headers: Mapping[str, str]) -> str | None:
    """The placeholder the client presents, from ``x-api-key``, ``authorization: Bearer`` or ``x-goog-api-key``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in ("x-api-key", "x-goog-api-key"):
        if lowered.get(name):
            return lowered[name].strip()
    auth = lowered.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def upstream_headers(headers: Iterable[tuple[str, str]], dialect: Dialect, key: str | None) -> list[tuple[str, str]]:
    """The client's headers minus credentials, proxy and hop-by-hop ones, plus the real key."""
    kept = [(name, value) for name, value in headers
            if (low := name.lower()) not in AUTH_HEADERS and low not in HOP_HEADERS
            and not low.startswith("proxy-")]
    kept.append(("Accept-Encoding", "identity"))  # plain bytes, so usage can be read as they pass
    if key:
        kept.append(("x-api-key", key) if dialect == "anthropic" else ("Authorization", f"Bearer {key}"))
    return kept


def client_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The upstream's response headers that may reach the client (framing is the gateway's own)."""
    return [(n, v) for n, v in headers if n.lower() not in _RESPONSE_DROP]


def error_body(dialect: Dialect, status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """An error in the dialect's own JSON shape, so the CLI shows ``message``."""
    if dialect == "anthropic":
        kind = _ANTHROPIC_ERRORS.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind = _OPENAI_ERRORS.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def stream_error_event(dialect: Dialect, message: str) -> bytes:
    """An SSE error event, for an upstream failure after the stream's headers went out."""
    if dialect == "anthropic":
        data = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + json.dumps(data).encode() + b"\n\n"
    return b"data: " + json.dumps(error_body("openai", 502, message)).encode() + b"\n\n"


@dataclass(frozen=True)
class RequestFacts:
    """What the gateway needs to know about a model request before forwarding it."""

    model: str | None
    max_output: int | None  # max_tokens / max_output_tokens / max_completion_tokens, when given
    stream: bool


def request_facts(body: Any) -> RequestFacts:
    if not isinstance(body, Mapping):
        return RequestFacts(None, None, False)
    model = body.get("model")
    limit = None
    for name in ("max_tokens", "max_output_tokens", "max_completion_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            limit = value if limit is None else max(limit, value)
    return RequestFacts(str(model) if isinstance(model, str) else None, limit, body.get("stream") is True)


def with_stream_usage(body: dict[str, Any], path: str) -> dict[str, Any] | None:
    """A streamed chat request made to report its usage (``stream_options.include_usage``), or None if it does."""
    if path != "/v1/chat/completions" or body.get("stream") is not True:
        return None
    options = body.get("stream_options")
    if isinstance(options, Mapping) and options.get("include_usage"):
        return None
    return {**body, "stream_options": {**(options if isinstance(options, Mapping) else {}), "include_usage": True}}


@dataclass(frozen=True)
class TokenCount:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


def usage_from_json(body: Any) -> TokenCount | None:
    """Usage in a whole (non-streamed) response of any dialect, or None when it carries none."""
    if not isinstance(body, Mapping):
        return None
    usage = body.get("usage")
    if not isinstance(usage, Mapping):
        response = body.get("response")  # a Responses stream event wraps the response
        usage = response.get("usage") if isinstance(response, Mapping) else None
    if not isinstance(usage, Mapping):
        return None
    return _count(usage)


def _count(usage: Mapping[str, Any]) -> TokenCount:
    def num(*names: str) -> int:
        return sum(int(v) for n in names if isinstance(v := usage.get(n), int | float) and not isinstance(v, bool))

    # Anthropic counts cache reads and writes apart from input_tokens; all of it is input the task pays for.
    inputs = num("input_tokens", "prompt_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    return TokenCount(inputs, num("output_tokens", "completion_tokens"))


class UsageReader:
    """Find the usage in a streamed (SSE) response, fed chunk by chunk as it passes to the client.

    Anthropic: ``message_start`` carries the input tokens, ``message_delta`` the
    (cumulative) output tokens. OpenAI chat: the chunk with ``usage`` (sent with
    ``stream_options.include_usage``). Responses: ``response.completed`` (or
    ``.incomplete`` / ``.failed``) carries ``response.usage``.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self.input_tokens = 0
        self.output_tokens = 0
        self.seen = False
        self.events = 0

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        if b"\n\n" not in self._buffer and b"\r\n\r\n" not in self._buffer:
            return
        text = self._buffer.replace(b"\r\n", b"\n")
        *done, self._buffer = text.split(b"\n\n")
        for event in done:
            self.events += 1
            if b"usage" in event:
                self._read_event(event)

    def close(self) -> None:
        if self._buffer.strip():
            self.feed(b"\n\n")

    def result(self) -> TokenCount | None:
        return TokenCount(self.input_tokens, self.output_tokens) if self.seen else None

    def _read_event(self, event: bytes) -> None:
        data = b"\n".join(line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:"))
        try:
            payload = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return
        if not isinstance(payload, Mapping):
            return
        usage: Any = payload.get("usage")
        for holder in ("message", "response"):  # Anthropic's message_start, the Responses API's events
            inner = payload.get(holder)
            if usage is None and isinstance(inner, Mapping):
                usage = inner.get("usage")
        if not isinstance(usage, Mapping):
            return
        count = _count(usage)
        self.seen = True
        # Anthropic's message_delta repeats cumulative counts; the largest seen is the call's.
        self.input_tokens = max(self.input_tokens, count.input_tokens)
        self.output_tokens = max(self.output_tokens, count.output_tokens)
