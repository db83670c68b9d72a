"""Record every exchange that passes the gateway, redacted, in the task's transcript.

Each model call becomes two events in ``gateway.jsonl`` (and ``gateway.md``
once the task ends): the request as the client sent it, minus its headers'
credentials, and the response as the upstream answered it, with its usage.
The real keys and the placeholder token are replaced by ``***`` before
anything reaches disk (:class:`runner.log.Redactor`, which also masks anything
shaped like a provider key), and long bodies are clipped.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from runner.gateway.wire import AUTH_HEADERS
from runner.log import Redactor

TRANSCRIPT_NAME = "gateway"
#: Request headers worth keeping in the record (the rest is framing or noise).
_KEPT_HEADERS = ("user-agent", "content-type", "anthropic-version", "anthropic-beta", "openai-beta", "accept",
                 "x-stainless-lang", "x-stainless-package-version")
_BODY_CHARS = 60_000


class Recorder:
    """Append the gateway's exchanges to one task's transcript; safe to call from many threads.

    Redacting and writing a 100 KB request takes milliseconds, so a writer thread does it,
    in order, off the calls' path; :meth:`close` waits for it. A body is redacted whole
    before it is clipped, so no cut can leave part of a secret behind.
    """

    def __init__(self, directory: Path | None, *, secrets: Sequence[str]) -> None:
        self._lock = threading.Lock()
        self._redact = Redactor(secrets)
        self.events: list[dict[str, Any]] = []
        self.path: Path | None = None
        self._queue: queue.SimpleQueue[tuple[dict[str, Any], bytes | None] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self.path = directory / f"{TRANSCRIPT_NAME}.jsonl"
            self.path.touch()
            self._writer = threading.Thread(target=self._write_all, name="gateway-recorder", daemon=True)
            self._writer.start()

    def request(self, call: int, *, method: str, path: str, dialect: str, headers: Iterable[tuple[str, str]],
                body: bytes) -> None:
        kept = {n.lower(): v for n, v in headers if n.lower() in _KEPT_HEADERS and n.lower() not in AUTH_HEADERS}
        self._add("request", body, call=call, method=method, path=path, dialect=dialect, headers=kept)

    def response(self, call: int, *, status: int, body: bytes, usage: Mapping[str, Any] | None,
                 duration_ms: float, streamed: bool) -> None:
        self._add("response", body, call=call, status=status, streamed=streamed, usage=dict(usage or {}),
                  duration_ms=round(duration_ms, 1))

    def refused(self, call: int, *, method: str, path: str, status: int, reason: str) -> None:
        self._add("refused", None, call=call, method=method, path=path, status=status, text=reason)

    def close(self) -> Path | None:
        """Write what is queued, then ``gateway.md``, one section per event, for people; return its path."""
        if self.path is None or self._writer is None:
            return None
        self._queue.put(None)
        self._writer.join(timeout=30)
        with self._lock:
            events = list(self.events)
        out = ["# Model gateway transcript", ""]
        for event in events:
            head = f"## {event['kind']} #{event.get('call', '?')}"
            detail = {k: v for k, v in event.items() if k not in ("kind", "call", "text", "at")}
            out += [head, "", "`" + json.dumps(detail, ensure_ascii=False) + "`", "",
                    "~~~~~~~~", str(event.get("text", "")), "~~~~~~~~", ""]
        markdown = self.path.with_suffix(".md")
        markdown.write_text("\n".join(out), encoding="utf-8")
        return markdown

    def _add(self, kind: str, body: bytes | None, **fields: Any) -> None:
        if self.path is not None:
            self._queue.put(({"kind": kind, "at": round(time.time(), 3), **fields}, body))

    def _write_all(self) -> None:
        assert self.path is not None
        while (item := self._queue.get()) is not None:
            event, body = item
            clean = json.loads(self._redact(json.dumps(event, ensure_ascii=False, default=str)))
            if body is not None:
                clean["text"] = clip_text(self._redact(body.decode("utf-8", "replace")))
            with self._lock:
                self.events.append(clean)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(clean, ensure_ascii=False) + "\n")


def clip_text(text: str, limit: int = _BODY_CHARS) -> str:
    """The text with its middle cut when long: a request's head (system prompt, tools) and its
    tail (the newest turns, which each call resends the history before) say the most."""
    if len(text) <= limit:
        return text
    head, tail = limit // 3, limit - limit // 3
    return f"{text[:head]} … [{len(text) - head - tail} characters omitted] … {text[-tail:]}"
