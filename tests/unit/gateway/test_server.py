"""The gateway over real HTTP (loopback TCP and its Unix socket) in front of the model emulators."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from github_emulator.llm import AnthropicEmulator, OpenAIEmulator, Reply

from runner.gateway.meter import Meter
from runner.gateway.record import Recorder
from runner.gateway.server import Gateway
from runner.gateway.upstream import Upstream

TOKEN = "agent-runner-gateway-test-placeholder"
KEY = "sk-ant-real-key-for-the-upstream-000000"


def gateway(upstream_url: str, dialect: str = "anthropic", *, timeout: float = 5.0, tmp: Path | None = None,
            **meter: object) -> Gateway:
    limits: dict = {"max_tokens": None, "max_cost_usd": None, "default_output": 1000, **meter}
    return Gateway(upstreams={dialect: Upstream.from_url(dialect, upstream_url, KEY)},  # type: ignore[dict-item]
                   meter=Meter(**limits), token=TOKEN, read_timeout_s=timeout,
                   recorder=Recorder(tmp, secrets=[KEY, TOKEN]) if tmp else None)


def post(port: int, path: str, body: object, headers: dict[str, str] | None = None,
         method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    payload = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, payload, {"x-api-key": TOKEN, "content-type": "application/json", **(headers or {})})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


MESSAGE = {"model": "claude-haiku-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture()
def claude() -> Iterator[AnthropicEmulator]:
    with AnthropicEmulator(api_key=KEY) as emu:
        yield emu


def test_a_streamed_answer_passes_through_and_is_metered(claude: AnthropicEmulator, tmp_path: Path) -> None:
    claude.script([Reply.text("Hello there, streaming", input_tokens=321, output_tokens=12)])
    with gateway(claude.base_url, tmp=tmp_path) as gw:
        port = gw.serve_tcp()
        status, headers, data = post(port, "/v1/messages?beta=true", {**MESSAGE, "stream": True},
                                     {"authorization": "Bearer also-stripped", "cookie": "a=b"})
    spend = gw.meter.spend  # closing waits for the call to settle
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert headers["transfer-encoding"] == "chunked"
    assert data.startswith(b"event: message_start") and data.rstrip().endswith(b'{"type": "message_stop"}')
    assert (spend.calls, spend.input_tokens, spend.output_tokens) == (1, 321, 12)
    recorded = claude.requests[0]
    assert recorded.path == "/v1/messages?beta=true"
    assert "cookie" not in recorded.headers and TOKEN not in json.dumps(dict(recorded.headers))
    text = (tmp_path / "gateway.jsonl").read_text()
    assert KEY not in text and TOKEN not in text and "message_stop" in text


def test_the_unix_socket_serves_the_same(claude: AnthropicEmulator, tmp_path: Path) -> None:
    claude.script([Reply.text("over the socket")])
    with gateway(claude.base_url) as gw:
        path = gw.serve_unix(tmp_path / "g.sock")
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(str(path))
            body = json.dumps(MESSAGE).encode()
            conn.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: " + TOKEN.encode()
                         + f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b"over the socket" in data
    assert not path.exists()


def test_keep_alive_connections_carry_several_calls(claude: AnthropicEmulator) -> None:
    claude.script([Reply.text("one"), Reply.text("two"), Reply.text("three")])
    with gateway(claude.base_url) as gw:
        conn = http.client.HTTPConnection("127.0.0.1", gw.serve_tcp(), timeout=10)
        answers = []
        for _ in range(3):
            conn.request("POST", "/v1/messages", json.dumps(MESSAGE), {"x-api-key": TOKEN})
            answers.append(json.loads(conn.getresponse().read())["content"][0]["text"])
        conn.close()
    assert answers == ["one", "two", "three"]


def test_probes_and_refusals(claude: AnthropicEmulator) -> None:
    with gateway(claude.base_url) as gw:
        port = gw.serve_tcp()
        assert post(port, "/", None, method="HEAD")[0] == 200
        wrong = post(port, "/v1/messages", MESSAGE, {"x-api-key": "nope"})
        route = post(port, "/v1/files", MESSAGE)
        denied = list(gw.stats.denied)
    assert wrong[0] == 401 and json.loads(wrong[2])["error"]["type"] == "authentication_error"
    assert wrong[1]["x-should-retry"] == "false"
    assert route[0] == 403 and "only model API routes" in json.loads(route[2])["error"]["message"]
    assert denied == ["POST /v1/messages (401)", "POST /v1/files (403)"]
    assert claude.requests == []


def test_a_model_off_the_allowlist_is_refused(claude: AnthropicEmulator) -> None:
    with gateway(claude.base_url) as gw:
        gw.models = frozenset({"claude-sonnet-4-5"})
        status, _, data = post(gw.serve_tcp(), "/v1/messages", MESSAGE)
    assert status == 403 and "not on this runner's allowlist" in data.decode()
    assert claude.requests == []


def test_an_unreachable_upstream_is_a_502_in_the_dialects_shape() -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        dead = spare.getsockname()[1]
    with gateway(f"http://127.0.0.1:{dead}/v1", "openai") as gw:
        started = time.monotonic()
        status, headers, data = post(gw.serve_tcp(), "/v1/chat/completions", MESSAGE,
                                     {"authorization": f"Bearer {TOKEN}"})
        failures = list(gw.stats.upstream_failures)
    assert time.monotonic() - started < 5
    assert status == 502 and headers["x-should-retry"] == "false"
    assert json.loads(data)["error"]["type"] == "server_error"
    assert "could not be reached" in failures[0]


def test_a_silent_upstream_is_a_504_not_a_hang(claude: AnthropicEmulator) -> None:
    claude.script([Reply.slow(30)])
    with gateway(claude.base_url, timeout=0.5) as gw:
        started = time.monotonic()
        status, _, data = post(gw.serve_tcp(), "/v1/messages", MESSAGE)
    spend = gw.meter.spend
    assert time.monotonic() - started < 5
    assert status == 504 and json.loads(data)["error"]["type"] == "timeout_error"
    assert spend.calls == 0  # nothing was generated, nothing is charged


def test_an_upstream_error_passes_through_uncharged(claude: AnthropicEmulator) -> None:
    claude.script([Reply.error(429, "slow down", retry_after=2)])
    with gateway(claude.base_url, max_tokens=10_000) as gw:
        status, headers, data = post(gw.serve_tcp(), "/v1/messages", MESSAGE)
    spend = gw.meter.spend
    assert status == 429 and headers["retry-after"] == "2" and b"slow down" in data
    assert spend.calls == 0


def test_the_budget_refusal_is_an_error_the_cli_shows(claude: AnthropicEmulator) -> None:
    claude.script([Reply.text("first", input_tokens=400, output_tokens=100)])
    with gateway(claude.base_url, max_tokens=800) as gw:
        port = gw.serve_tcp()
        first = post(port, "/v1/messages", MESSAGE)
        second = post(port, "/v1/messages", MESSAGE)
        refusal = gw.meter.refused
    assert first[0] == 200
    error = json.loads(second[2])
    assert second[0] == 400 and error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith("agent-runner: The task's token budget would be crossed")
    assert refusal is not None and refusal.kind == "tokens"
    assert len(claude.completions) == 1


def test_calls_in_parallel_are_all_metered(claude: AnthropicEmulator) -> None:
    claude.script([Reply.text(f"answer {i}", input_tokens=10, output_tokens=1) for i in range(8)])
    with gateway(claude.base_url) as gw:
        port = gw.serve_tcp()
        threads = [threading.Thread(target=post, args=(port, "/v1/messages", {**MESSAGE, "stream": i % 2 == 0}))
                   for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    spend = gw.meter.spend
    assert (spend.calls, spend.input_tokens, spend.output_tokens) == (8, 80, 8)


def test_openai_chat_and_model_listing_go_to_the_v1_base(tmp_path: Path) -> None:
    with OpenAIEmulator(api_key=KEY) as gpt:
        gpt.script([Reply.text("streamed", input_tokens=50, output_tokens=5)])
        with gateway(f"{gpt.base_url}/v1", "openai") as gw:
            port = gw.serve_tcp()
            auth = {"authorization": f"Bearer {TOKEN}"}
            models = post(port, "/v1/models", None, auth, method="GET")
            chat = post(port, "/v1/chat/completions", {**MESSAGE, "stream": True}, auth)
        spend = gw.meter.spend
    assert models[0] == 200 and json.loads(models[2])["object"] == "list"
    assert chat[0] == 200 and b'"usage"' in chat[2]
    assert (spend.input_tokens, spend.output_tokens) == (50, 5)
