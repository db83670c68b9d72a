"""Read and shape the model APIs' wire format, so the gateway can route, meter and refuse without I/O.

Pure functions over bytes, headers and JSON: the request's path, the
placeholder token it carries, the headers that may go upstream, what the
request asks for, and the token usage in a response, whole or streamed
(:class:`UsageReader` is fed the SSE bytes as they pass). What differs by
dialect (routes, key headers, error shapes) is in :mod:`.dialects`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from runner.gateway.dialects import TABLE, Dialect, Route, max_output, query_key

#: Probes answered by the gateway itself (Claude Code's ``HEAD /`` before its first call).
PROBES = frozenset({("HEAD", "/"), ("GET", "/")})

#: Headers that carry credentials or proxy state: never forwarded, whatever the client sends.
AUTH_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie",
                          "proxy-authorization", "proxy-authenticate", "proxy-connection"})
#: Hop-by-hop headers (RFC 9110 §7.6.1) and those the gateway sets itself.
HOP_HEADERS = frozenset({"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
                         "host", "content-length", "accept-encoding", "expect"})
_RESPONSE_DROP = HOP_HEADERS | {"set-cookie", "content-encoding"}


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


def client_token(headers: Mapping[str, str], query: str = "") -> str | None:
    """The placeholder the client presents: ``x-api-key``, ``authorization: Bearer``, ``x-goog-api-key`` or ``?key=``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in ("x-api-key", "x-goog-api-key"):
        if lowered.get(name):
            return lowered[name].strip()
    auth = lowered.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return query_key(query) if query else None


def upstream_headers(headers: Iterable[tuple[str, str]], dialect: Dialect, key: str | None) -> list[tuple[str, str]]:
    """The client's headers minus credentials, proxy and hop-by-hop ones, plus the real key."""
    kept = [(name, value) for name, value in headers
            if (low := name.lower()) not in AUTH_HEADERS and low not in HOP_HEADERS
            and not low.startswith("proxy-")]
    kept.append(("Accept-Encoding", "identity"))  # plain bytes, so usage can be read as they pass
    if key:
        kept.append(TABLE[dialect].key_header(key))
    return kept


def client_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The upstream's response headers that may reach the client (framing is the gateway's own)."""
    return [(n, v) for n, v in headers if n.lower() not in _RESPONSE_DROP]


@dataclass(frozen=True)
class RequestFacts:
    """What the gateway needs to know about a model request before forwarding it."""

    model: str | None
    max_output: int | None  # max_tokens / max_output_tokens / max_completion_tokens, when given
    stream: bool


def request_facts(body: Any, found: Route | None = None) -> RequestFacts:
    """The model (from the path when the route names it, else the body), the output limit, streaming."""
    in_path = found.model if found is not None else None
    if not isinstance(body, Mapping):
        return RequestFacts(in_path, None, False)
    model = in_path or body.get("model")
    return RequestFacts(str(model) if isinstance(model, str) else None, max_output(body), body.get("stream") is True)


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
    """Usage in a whole (non-streamed) response of any dialect, or None when it carries none.

    Gemini's ``usageMetadata``; a Gemini stream asked for as one JSON array
    (no ``alt=sse``) counts at its last element that carries usage.
    """
    if isinstance(body, list):
        return next((c for item in reversed(body) if (c := usage_from_json(item)) is not None), None)
    if not isinstance(body, Mapping):
        return None
    if isinstance(body.get("usageMetadata"), Mapping):
        return _google_count(body["usageMetadata"])
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


def _google_count(usage: Mapping[str, Any]) -> TokenCount:
    """Gemini's counts: tool-use prompt tokens are input; thinking tokens are billed as output."""
    def num(*names: str) -> int:
        return sum(int(v) for n in names if isinstance(v := usage.get(n), int | float) and not isinstance(v, bool))

    return TokenCount(num("promptTokenCount", "toolUsePromptTokenCount"),
                      num("candidatesTokenCount", "thoughtsTokenCount"))


class UsageReader:
    """Find the usage in a streamed (SSE) response, fed chunk by chunk as it passes to the client.

    Anthropic: ``message_start`` carries the input tokens, ``message_delta`` the
    (cumulative) output tokens. OpenAI chat: the chunk with ``usage`` (sent with
    ``stream_options.include_usage``). Responses: ``response.completed`` (or
    ``.incomplete`` / ``.failed``) carries ``response.usage``. Gemini: every
    event may carry ``usageMetadata``; the last one's counts are the call's.
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
        if isinstance(payload.get("usageMetadata"), Mapping):  # Gemini: the last event's counts stand
            count = _google_count(payload["usageMetadata"])
            self.seen = True
            self.input_tokens, self.output_tokens = count.input_tokens, count.output_tokens
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
