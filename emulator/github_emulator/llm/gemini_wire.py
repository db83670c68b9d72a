"""Speak the Gemini API (``generativelanguage`` v1beta), so Google's SDK and the Gemini CLI talk to a script.

Shapes follow the v1beta REST reference and the google-genai SDK's types
(``GenerateContentResponse``, ``Candidate``, ``Content``, ``Part``,
``FunctionCall``, ``GenerateContentResponseUsageMetadata``, ``CountTokensResponse``):

- the model is in the path: ``POST /v1beta/models/{model}:generateContent``,
  ``:streamGenerateContent?alt=sse`` and ``:countTokens``;
- the key arrives in ``x-goog-api-key`` or ``?key=``; without one Google answers
  403 ``PERMISSION_DENIED``, with a wrong one 400 ``INVALID_ARGUMENT`` whose
  ``ErrorInfo`` reason is ``API_KEY_INVALID``;
- a reply is one candidate whose ``content`` (role ``model``) holds ``text`` and
  ``functionCall`` parts; function-call ``args`` are JSON *objects*, and
  ``finishReason`` is ``STOP`` even after a function call (``MAX_TOKENS`` when
  cut, ``SAFETY`` and no content when blocked);
- a stream is ``data: <GenerateContentResponse>`` events separated by a blank
  line (``\\r\\n\\r\\n``, as Google sends them): text in pieces, function calls
  whole, every event with ``usageMetadata`` and the last one with the final counts;
- errors are ``{"error": {"code", "message", "status", "details"}}``; a 429
  carries a ``RetryInfo`` detail besides the ``Retry-After`` header.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from github_emulator.llm.script import Reply, next_id, pieces
from github_emulator.llm.server import LLMEmulator

_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED",
           503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
#: ``/v1beta/models/gemini-2.5-flash:generateContent`` → version, model, method.
ROUTE = re.compile(r"^/(v1beta|v1|v1alpha)/models/([^/:]+):(generateContent|streamGenerateContent|countTokens)$")
_MODEL = re.compile(r"^/(v1beta|v1|v1alpha)/models(?:/([^/:]+))?$")
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


class GeminiEmulator(LLMEmulator):
    """A Gemini API server: ``generateContent``, its SSE stream, ``countTokens`` and the model listing.

    Point the SDK at ``genai.Client(api_key="test", http_options={"base_url": emu.base_url})``,
    or the Gemini CLI at ``GOOGLE_GEMINI_BASE_URL=emu.base_url``.
    """

    provider = "gemini"
    auth_headers = ("x-goog-api-key",)
    default_model = "gemini-2.5-flash"

    # Routing and the key.

    def is_completion(self, path: str) -> bool:
        match = ROUTE.match(path)
        return bool(match) and match.group(3) != "countTokens"  # type: ignore[union-attr]

    def is_stream(self, path: str, body: Mapping[str, Any]) -> bool:
        return path.endswith(":streamGenerateContent")

    def request_key(self, headers: Mapping[str, str], target: str) -> str | None:
        header = self.api_key_from(headers)
        if header:
            return header
        query = target.partition("?")[2]
        return next((v for k, v in parse_qsl(query) if k == "key" and v), None)

    def logged_target(self, target: str) -> str:
        """The target with a ``key`` parameter's value masked: that one was sent, but not what it was."""
        path, _, query = target.partition("?")
        kept = [(k, "***" if k == "key" else v) for k, v in parse_qsl(query, keep_blank_values=True)]
        return path + (f"?{urlencode(kept, safe='*')}" if kept else "")

    def auth_failure(self, key: str | None) -> tuple[int, dict[str, Any]]:
        if key is None:
            return 403, self.error_body(403, "Method doesn't allow unregistered callers (callers without "
                                             "established identity). Please use API Key or other form of API "
                                             "consumer identity to call this API.")
        body = self.error_body(400, "API key not valid. Please pass a valid API key.")
        body["error"]["details"] = [{"@type": _ERROR_INFO, "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                                     "metadata": {"service": "generativelanguage.googleapis.com"}}]
        return 400, body

    # Fixed answers.

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Mapping[str, Any]] | None:
        """``countTokens`` (about one token per four bytes) and ``GET /v1beta/models[/{model}]``."""
        match = ROUTE.match(path)
        if method == "POST" and match and match.group(3) == "countTokens":
            size = len(json.dumps(body)) if body is not None else 0
            tokens = max(1, size // 4)
            return 200, {"totalTokens": tokens, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}]}
        listing = _MODEL.match(path)
        if method == "GET" and listing:
            if listing.group(2):
                return 200, self._model(listing.group(2))
            return 200, self.models()
        return None

    def models(self) -> dict[str, Any]:
        return {"models": [self._model(self.default_model)]}

    def _model(self, name: str) -> dict[str, Any]:
        return {"name": f"models/{name}", "version": "001", "displayName": "Emulated Gemini",
                "description": "A scripted model on 127.0.0.1.", "inputTokenLimit": 1048576,
                "outputTokenLimit": 65536, "supportedGenerationMethods": ["generateContent", "countTokens"],
                "temperature": 1, "maxTemperature": 2, "topP": 0.95, "topK": 64, "thinking": True}

    # Errors.

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = _STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
        return {"error": {"code": status, "message": message, "status": kind}}

    def error_for(self, reply: Reply, message: str) -> dict[str, Any]:
        body = self.error_body(reply.status, message)
        if reply.retry_after is not None:
            body["error"]["details"] = [{"@type": _RETRY_INFO, "retryDelay": f"{max(1, round(reply.retry_after))}s"}]
        return body

    # Replies.

    def render_at(self, path: str, reply: Reply, body: Mapping[str, Any]) -> Mapping[str, Any] | Iterator[bytes]:
        match = ROUTE.match(path)
        model = match.group(2) if match else self.default_model
        if self.is_stream(path, body):
            return self._stream(reply, model)
        return self._response(reply, model, self._parts(reply), final=True)

    def render(self, reply: Reply, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._response(reply, self.default_model, self._parts(reply), final=True)

    def render_stream(self, reply: Reply, body: Mapping[str, Any]) -> Iterator[bytes]:
        return self._stream(reply, self.default_model)

    def _stream(self, reply: Reply, model: str) -> Iterator[bytes]:
        texts = pieces(reply.content, 16) if not reply.blocked else []
        calls = [] if reply.blocked else self._calls(reply)
        chunks: list[list[dict[str, Any]]] = [[{"text": t}] for t in texts]
        if calls:
            chunks.append(calls)  # Gemini sends function calls whole, in one event
        chunks = chunks or [[]]
        for index, parts in enumerate(chunks):
            final = index == len(chunks) - 1
            yield _event(self._response(reply, model, parts if parts or not final or reply.blocked
                                        else [{"text": ""}], final=final))

    def _parts(self, reply: Reply) -> list[dict[str, Any]]:
        if reply.blocked:
            return []
        parts: list[dict[str, Any]] = [{"text": reply.content}] if reply.content else []
        return (parts + self._calls(reply)) or [{"text": ""}]

    def _calls(self, reply: Reply) -> list[dict[str, Any]]:
        out = []
        for call in reply.calls:
            function: dict[str, Any] = {"name": call.name, "args": call.arguments_object()}
            if call.id:
                function["id"] = call.id
            out.append({"functionCall": function})
        return out

    def _response(self, reply: Reply, model: str, parts: list[dict[str, Any]], *, final: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {"index": 0}
        if parts or not reply.blocked:
            candidate["content"] = {"role": "model", "parts": parts}
        if final:
            candidate["finishReason"] = reply.blocked or ("MAX_TOKENS" if reply.truncated else "STOP")
            if reply.blocked:
                candidate["safetyRatings"] = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                                               "probability": "HIGH", "blocked": True}]
        usage: dict[str, Any] = {"promptTokenCount": reply.input_tokens,
                                 "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.input_tokens}]}
        if final:
            usage["candidatesTokenCount"] = reply.output_tokens
            usage["totalTokenCount"] = reply.input_tokens + reply.output_tokens
        else:
            usage["totalTokenCount"] = reply.input_tokens
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model,
                "responseId": next_id("resp-")}


def _event(payload: Mapping[str, Any]) -> bytes:
    """One SSE event as Google frames it: ``data: {json}`` and a CRLF blank line."""
    return b"data: " + json.dumps(payload).encode() + b"\r\n\r\n"
