"""Serve scripted model replies over real HTTP on 127.0.0.1, like a provider would.

:class:`LLMEmulator` is the provider-neutral part: a threaded stdlib server on a
free port, the reply queue, the request log, the API-key check and the fault
switches. Subclasses only translate a :class:`Reply` into their wire format.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from github_emulator.llm.script import Reply

SSE_CONTENT_TYPE = "text/event-stream"


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator received; the API key's value is never kept."""

    method: str
    path: str
    body: Mapping[str, Any] | None
    raw: str
    auth_present: bool
    headers: Mapping[str, str] = field(default_factory=dict)
    provider: str = "llm"
    #: When it arrived (time.time()), so a test can count what reached the server during an outage.
    at: float = field(default_factory=time.time)

    @property
    def stream(self) -> bool:
        return bool(self.body and self.body.get("stream")) or ":streamGenerateContent" in self.path

    @property
    def model(self) -> str | None:
        """The model asked for: in the body, or in the path (Gemini's ``/models/{model}:generateContent``)."""
        named = (self.body or {}).get("model")
        if isinstance(named, str):
            return named
        path = self.path.split("?")[0]
        return path.rsplit("/models/", 1)[1].split(":", 1)[0] if "/models/" in path else None

    @property
    def tool_results(self) -> list[str]:
        """The tool results this request sends back (those after the model's last turn)."""
        if isinstance((self.body or {}).get("input"), list):  # OpenAI Responses
            return function_call_outputs(self.body or {})
        if isinstance((self.body or {}).get("contents"), list):  # Gemini
            return function_responses(self.body or {})
        messages = list((self.body or {}).get("messages") or [])
        if self.provider == "openai":
            results: list[str] = []
            while messages and messages[-1].get("role") == "tool":
                results.insert(0, _text(messages.pop().get("content")))
            return results
        last = messages[-1] if messages else {}
        blocks = last.get("content") if last.get("role") == "user" else None
        return [_text(b.get("content")) for b in blocks or [] if isinstance(b, dict) and b.get("type") == "tool_result"]

    def contains(self, text: str) -> bool:
        """Whether ``text`` occurs anywhere in the request body (JSON-decoded strings included)."""
        return text in self.raw or text in json.dumps(self.body, ensure_ascii=False)


class LLMEmulator:
    """A scripted model server; use as a context manager or call start()/stop()."""

    provider = "llm"
    auth_headers: tuple[str, ...] = ()
    completion_path = ""
    #: Every path that takes a scripted reply (the first is ``completion_path``).
    completion_paths: tuple[str, ...] = ()
    default_model = "emulated-model"

    #: How long a gated stream waits for its gate (:meth:`Reply.gated`) before it sends the rest anyway.
    gate_timeout_s = 10.0

    def __init__(self, *, api_key: str | None = None, reject_tools: bool = False, host: str = "127.0.0.1") -> None:
        self.expected_key = api_key
        self.reject_tools = reject_tools
        self.requests: list[RecordedRequest] = []
        self.gate_timeouts = 0
        self._queue: deque[Reply] = deque()
        #: While set, every completion gets this error reply and the script waits (see :meth:`go_down`).
        self.down: Reply | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._host = host
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle.

    def start(self) -> Self:
        handler = type("Handler", (_Handler,), {"emulator": self})
        self._server = ThreadingHTTPServer((self._host, 0), handler)
        self._server.daemon_threads = True
        self._stopping.clear()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self.provider}-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes slow replies
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() or use it as a context manager")
        host = self._server.server_address[0]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{self._server.server_port}"

    # Script and log.

    def script(self, replies: Iterable[Reply]) -> None:
        """Queue replies; each completion request takes the next one."""
        with self._lock:
            self._queue.extend(replies)

    def go_down(self, status: int = 529, message: str | None = None) -> None:
        """A model outage: answer every completion ``status`` until :meth:`come_back`; the script keeps its place."""
        self.down = Reply.error(status, message or ("Overloaded" if status == 529 else "Service Unavailable"))

    def come_back(self) -> None:
        self.down = None

    @property
    def remaining(self) -> int:
        return len(self._queue)

    @property
    def completions(self) -> list[RecordedRequest]:
        """Only the completion requests, in order."""
        return [r for r in self.requests if self.is_completion(r.path.split("?")[0].rstrip("/"))]

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self.requests.clear()

    def _next_reply(self) -> Reply | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    # Provider-specific rendering, overridden by subclasses.

    def is_completion(self, path: str) -> bool:
        """Whether ``path`` (no query) takes a scripted reply."""
        return path in (self.completion_paths or (self.completion_path,))

    def is_stream(self, path: str, body: Mapping[str, Any]) -> bool:
        """Whether the request at ``path`` asks for server-sent events."""
        return body.get("stream") is True

    def error_for(self, reply: Reply, message: str) -> dict[str, Any]:
        """The error body of a scripted error reply (a wire may add retry details)."""
        return self.error_body(reply.status, message)

    def auth_failure(self, key: str | None) -> tuple[int, dict[str, Any]]:
        """The answer to a request without the right key: status and body."""
        return 401, self.error_body(401, "Invalid or missing API key.")

    def request_key(self, headers: Mapping[str, str], target: str) -> str | None:
        """The API key a request carries (in a header; a wire may also take it from the query)."""
        return self.api_key_from(headers)

    def logged_target(self, target: str) -> str:
        """The request target as recorded: a wire whose key may ride in the query drops it here."""
        return target

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError

    def render(self, reply: Reply, body: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def render_stream(self, reply: Reply, body: Mapping[str, Any]) -> Iterator[bytes]:
        raise NotImplementedError

    def render_at(self, path: str, reply: Reply, body: Mapping[str, Any]) -> Mapping[str, Any] | Iterator[bytes]:
        """The reply in the wire format of ``path`` (one of ``completion_paths``): a body, or SSE events."""
        return self.render_stream(reply, body) if self.is_stream(path, body) else self.render(reply, body)

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Mapping[str, Any]] | None:
        """A fixed answer for an unscripted route (token counting, say), or None."""
        return None

    def models(self) -> dict[str, Any]:
        raise NotImplementedError

    def refuse(self, body: Mapping[str, Any]) -> tuple[int, str] | None:
        """A ``(status, message)`` for a request this server kind would refuse, or None."""
        return None

    def shape(self, reply: Reply, body: Mapping[str, Any]) -> Reply:
        """The scripted reply as this server kind would send it (a profile may drop tool calls)."""
        return reply

    def api_key_from(self, headers: Mapping[str, str]) -> str | None:
        for name in self.auth_headers:
            value = headers.get(name)
            if value:
                return value.removeprefix("Bearer ").strip() or None
        return None


class _Handler(BaseHTTPRequestHandler):
    emulator: LLMEmulator
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output (and keys) quiet
        return None

    def do_GET(self) -> None:
        self._handle(None)

    def do_HEAD(self) -> None:
        """Claude Code probes ``HEAD /`` before its first call; any 2xx will do."""
        emu = self.emulator
        headers = {k.lower(): v for k, v in self.headers.items()}
        kept = {k: v for k, v in headers.items() if k not in emu.auth_headers}
        emu.requests.append(RecordedRequest("HEAD", emu.logged_target(self.path), None, "",
                                            emu.request_key(headers, self.path) is not None, kept, emu.provider))
        self.send_response(200 if self.path.split("?")[0] in ("", "/") else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(self.rfile.read(length) if length else b"")

    def _handle(self, raw: bytes | None) -> None:
        emu = self.emulator
        headers = {k.lower(): v for k, v in self.headers.items()}
        key = emu.request_key(headers, self.path)
        text = (raw or b"").decode("utf-8", "replace")
        try:
            body = json.loads(text) if text else None
        except json.JSONDecodeError:
            body = None
        kept = {k: v for k, v in headers.items() if k not in emu.auth_headers}
        emu.requests.append(RecordedRequest(self.command, emu.logged_target(self.path), body, text, key is not None,
                                            kept, emu.provider))

        if key is None or (emu.expected_key is not None and key != emu.expected_key):
            return self._json(*emu.auth_failure(key))
        path = self.path.split("?")[0].rstrip("/")
        if self.command == "GET" and path == "/v1/models":
            return self._json(200, emu.models())
        fixed = emu.answer(self.command, path, body)
        if fixed is not None:
            return self._json(*fixed)
        if self.command != "POST" or not emu.is_completion(path):
            return self._json(404, emu.error_body(404, f"Unknown endpoint {self.command} {path}."))
        if not isinstance(body, dict):
            return self._json(400, emu.error_body(400, "The request body is not a JSON object."))
        if emu.reject_tools and body.get("tools"):
            return self._json(400, emu.error_body(400, "tools is not supported by this server (tool calling unsupported)."))
        refusal = emu.refuse(body)
        if refusal is not None:
            return self._json(refusal[0], emu.error_body(*refusal))
        reply = emu.down or emu._next_reply()
        if reply is None:
            message = f"The {emu.provider} emulator has no scripted reply left ({len(emu.requests)} requests served)."
            return self._json(500, emu.error_body(500, message), {"x-should-retry": "false"})
        if reply.delay and emu._stopping.wait(reply.delay):
            return None
        if reply.is_error:
            extra = {}
            if reply.retry_after is not None:
                extra = {"retry-after": str(max(1, round(reply.retry_after))),
                         "retry-after-ms": str(int(reply.retry_after * 1000))}
            message = reply.error_message or f"Emulated error {reply.status}."
            return self._json(reply.status, emu.error_for(reply, message), extra)
        if reply.raw is not None:  # a malformed answer: what a broken proxy or a cut connection leaves
            if emu.is_stream(path, body):
                return self._stream(iter([f"data: {reply.raw}".encode()]))
            return self._send_bytes(200, reply.raw.encode(), "application/json")
        reply = emu.shape(reply, body)
        rendered = emu.render_at(path, reply, body)
        if isinstance(rendered, Mapping):
            return self._json(200, rendered)
        return self._stream(_gated(rendered, reply.gate, emu) if reply.gate is not None else rendered)

    def _json(self, status: int, payload: Mapping[str, Any], extra: Mapping[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode("utf-8"), "application/json", extra)

    def _send_bytes(self, status: int, data: bytes, content_type: str,
                    extra: Mapping[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (it timed out); nothing to answer

    def _stream(self, events: Iterator[bytes]) -> None:
        try:
            self.send_response(200)
            self.send_header("Content-Type", SSE_CONTENT_TYPE)
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for event in events:
                self.wfile.write(event)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


def _gated(events: Iterator[bytes], gate: threading.Event, emu: LLMEmulator) -> Iterator[bytes]:
    """The first event, then the rest once ``gate`` is set (or its wait timed out, which is counted)."""
    for index, event in enumerate(events):
        if index == 1 and not gate.wait(emu.gate_timeout_s):
            emu.gate_timeouts += 1
        yield event


def _text(content: Any) -> str:
    """Tool result content is a string or a list of text blocks, depending on the provider."""
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def function_call_outputs(body: Mapping[str, Any]) -> list[str]:
    """The tool results a Responses request sends back: its trailing ``function_call_output`` items."""
    items = body.get("input")
    if not isinstance(items, list):
        return []
    results: list[str] = []
    for item in reversed(items):
        if not isinstance(item, Mapping) or item.get("type") != "function_call_output":
            break
        output = item.get("output")
        if isinstance(output, list):  # content parts
            output = "".join(str(p.get("text", "")) for p in output if isinstance(p, Mapping))
        results.insert(0, "" if output is None else str(output))
    return results


def function_responses(body: Mapping[str, Any]) -> list[str]:
    """The tool results a Gemini request sends back: the ``functionResponse`` parts of its last turn."""
    contents = body.get("contents")
    last = contents[-1] if isinstance(contents, list) and contents else {}
    parts = last.get("parts") if isinstance(last, Mapping) and last.get("role", "user") == "user" else None
    results: list[str] = []
    for part in parts or []:
        answer = part.get("functionResponse") if isinstance(part, Mapping) else None
        if not isinstance(answer, Mapping):
            continue
        response = answer.get("response")
        value = response.get("output", response.get("error")) if isinstance(response, Mapping) else response
        results.append(value if isinstance(value, str) else json.dumps(value))
    return results


def sse(data: Mapping[str, Any] | str, event: str | None = None) -> bytes:
    """Encode one server-sent event."""
    payload = data if isinstance(data, str) else json.dumps(data)
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {payload}\n\n".encode()
