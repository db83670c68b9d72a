"""The gateway speaks Gemini: the model from the path, the placeholder in ``x-goog-api-key`` or ``?key=``.

Over real HTTP, with the Gemini emulator behind the gateway accepting only the
real key: the key is swapped both ways a client may send its placeholder, the
placeholder never leaves, a stream passes event by event (the emulator holds
the rest of its answer until the client has the first event), usage comes from
``usageMetadata`` (a stream's last event), and the cap refuses a call before
it is sent. The last test runs a CLI stand-in in the real sandbox, with
``COMMAND_GATEWAY=gemini``, through the whole dispatch flow.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from github_emulator.llm import GeminiEmulator, Reply
from google import genai
from google.genai import errors, types

from runner.gateway.meter import Meter
from runner.gateway.record import Recorder
from runner.gateway.server import Gateway
from runner.gateway.upstream import Upstream
from tests.conftest import TARGET, World, dispatch_body

GEMINI_KEY = "AIzaSyRealGeminiKey0123456789abcdefABCDE"
TOKEN = "agent-runner-gateway-gemini-placeholder"
MODEL = "gemini-2.5-flash"
GENERATE = f"/v1beta/models/{MODEL}:generateContent"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
ASK = {"contents": [{"role": "user", "parts": [{"text": "say hello"}]}],
       "generationConfig": {"maxOutputTokens": 200}}


@pytest.fixture()
def gem() -> Iterator[GeminiEmulator]:
    with GeminiEmulator(api_key=GEMINI_KEY) as emu:
        yield emu


def gateway(emu: GeminiEmulator, tmp: Path | None = None, **limits: object) -> Gateway:
    meter = Meter(**{"max_tokens": None, "max_cost_usd": None, "default_output": 1000, **limits})  # type: ignore[arg-type]
    return Gateway(upstreams={"gemini": Upstream.from_url("gemini", emu.base_url, GEMINI_KEY)}, meter=meter,
                   token=TOKEN, recorder=Recorder(tmp, secrets=[GEMINI_KEY, TOKEN]) if tmp else None)


def post(port: int, target: str, body: object, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    conn.request("POST", target, json.dumps(body), {"content-type": "application/json", **headers})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def upstream_saw_no_placeholder(emu: GeminiEmulator) -> None:
    for request in emu.requests:
        assert request.auth_present and "key=" not in request.path
        assert TOKEN not in json.dumps(dict(request.headers)) + request.raw + request.path


def test_the_placeholder_in_the_header_or_the_query_becomes_the_real_key(gem: GeminiEmulator,
                                                                          tmp_path: Path) -> None:
    gem.script([Reply.text("Hello from Gemini", input_tokens=700, output_tokens=30),
                Reply.text("Streamed Gemini, in pieces", input_tokens=800, output_tokens=40)])
    with gateway(gem, tmp_path) as gw:
        port = gw.serve_tcp()
        whole = post(port, GENERATE, ASK, {"x-goog-api-key": TOKEN})
        streamed = post(port, f"{STREAM}&key={TOKEN}", ASK, {})
        wrong = post(port, GENERATE, ASK, {"x-goog-api-key": "agent-runner-gateway-guessed"})
        wrong_query = post(port, f"{GENERATE}?key={GEMINI_KEY[:-1]}", ASK, {})
        denied = list(gw.stats.denied)
    spend = gw.meter.spend
    assert whole[0] == 200 and "Hello from Gemini" in whole[2].decode()
    assert streamed[0] == 200 and streamed[1]["content-type"] == "text/event-stream"
    assert b"Streamed Gemini" in streamed[2] and streamed[2].count(b"data: ") >= 2
    # The emulator accepts only the real key: both calls reached it with it, and never with the placeholder.
    assert [r.path for r in gem.completions] == [GENERATE, STREAM]
    upstream_saw_no_placeholder(gem)
    for status, _, body in (wrong, wrong_query):
        error = json.loads(body)["error"]
        assert status == 401 and error["status"] == "UNAUTHENTICATED" and "did not accept" in error["message"]
    assert denied == [f"POST {GENERATE} (401)"] * 2 and len(gem.requests) == 2
    # Usage from usageMetadata: the whole answer's, and the stream's last event.
    assert (spend.calls, spend.input_tokens, spend.output_tokens) == (2, 1500, 70)
    text = (tmp_path / "gateway.jsonl").read_text()
    assert GEMINI_KEY not in text and TOKEN not in text and "Streamed" in text


def test_a_stream_passes_event_by_event(gem: GeminiEmulator) -> None:
    """The emulator sends the first event and holds the rest until the client has read it."""
    gate = threading.Event()
    gem.script([Reply.gated(gate, Reply.tool_call("write_file", {"file_path": "a.txt", "content": "hi"},
                                                  text="Writing the file now, as asked.", input_tokens=90,
                                                  output_tokens=12))])
    with gateway(gem) as gw:
        conn = http.client.HTTPConnection("127.0.0.1", gw.serve_tcp(), timeout=30)
        conn.request("POST", STREAM, json.dumps(ASK), {"x-goog-api-key": TOKEN})
        response = conn.getresponse()
        first = b""
        while b"\r\n\r\n" not in first:
            first += response.read1(65536)
        gate.set()  # only now may the emulator send the rest
        rest = response.read()
        conn.close()
    spend = gw.meter.spend
    assert response.status == 200 and first.startswith(b"data: {") and gem.gate_timeouts == 0
    events = [json.loads(e[len(b"data: "):]) for e in (first + rest).split(b"\r\n\r\n") if e.strip()]
    assert events[-1]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "write_file"
    assert (spend.input_tokens, spend.output_tokens) == (90, 12)


def test_count_tokens_and_listing_pass_unmetered_and_the_allowlist_reads_the_path(gem: GeminiEmulator) -> None:
    with gateway(gem) as gw:
        port = gw.serve_tcp()
        counted = post(port, f"/v1beta/models/{MODEL}:countTokens", ASK, {"x-goog-api-key": TOKEN})
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/v1beta/models", headers={"x-goog-api-key": TOKEN})
        listing = json.loads(conn.getresponse().read())
        conn.close()
        gw.models = frozenset({"gemini-2.5-pro"})
        off_list = post(port, GENERATE, {**ASK, "model": "gemini-2.5-pro"}, {"x-goog-api-key": TOKEN})
    assert counted[0] == 200 and json.loads(counted[2])["totalTokens"] > 0
    assert listing["models"][0]["name"] == f"models/{MODEL}"
    assert gw.meter.spend.calls == 0
    error = json.loads(off_list[2])["error"]
    assert off_list[0] == 403 and error["status"] == "PERMISSION_DENIED" and f"`{MODEL}`" in error["message"]
    assert gem.completions == []  # the body's model does not override the path's


def test_the_cap_refuses_the_call_that_would_cross_it_before_it_is_sent(gem: GeminiEmulator) -> None:
    gem.script([Reply.text("Working.", input_tokens=1000, output_tokens=100)] * 5)
    with gateway(gem, max_tokens=2500) as gw:
        port = gw.serve_tcp()
        answers = [post(port, GENERATE, ASK, {"x-goog-api-key": TOKEN}) for _ in range(3)]
    assert [a[0] for a in answers] == [200, 200, 400]
    error = json.loads(answers[2][2])["error"]
    assert error["status"] == "INVALID_ARGUMENT" and error["details"][0]["reason"] == "BUDGET_EXCEEDED"
    assert error["message"].startswith("agent-runner: ") and answers[2][1]["x-should-retry"] == "false"
    assert len(gem.completions) == 2 and gw.meter.spend.tokens == 2200


def test_googles_own_sdk_works_through_the_gateway_with_the_placeholder(gem: GeminiEmulator) -> None:
    gem.script([Reply.tool_call("read_file", {"path": "README.md"}, input_tokens=50, output_tokens=5),
                Reply.text("Done reading.", input_tokens=60, output_tokens=6), Reply.error(503, "overloaded")])
    with gateway(gem) as gw:
        options = types.HttpOptions(base_url=f"http://127.0.0.1:{gw.serve_tcp()}", api_version="v1beta",
                                    retry_options=types.HttpRetryOptions(attempts=1))
        with genai.Client(api_key=TOKEN, http_options=options) as sdk:
            first = sdk.models.generate_content(model=MODEL, contents="read it")
            streamed = list(sdk.models.generate_content_stream(model=MODEL, contents="go on"))
            with pytest.raises(errors.ServerError) as info:
                sdk.models.generate_content(model=MODEL, contents="again")
    assert [c.name for c in first.function_calls or []] == ["read_file"]
    assert "".join(c.text or "" for c in streamed) == "Done reading."
    assert info.value.code == 503 and info.value.status == "UNAVAILABLE"  # the upstream's error, as it was
    assert gw.meter.spend.tokens == 121
    upstream_saw_no_placeholder(gem)


CLIENT = '''
import hashlib, json, os, sys, urllib.error, urllib.request

def gemini(path, body, query_key=False):
    base, token = os.environ["GOOGLE_GEMINI_BASE_URL"], os.environ["GEMINI_API_KEY"]
    headers = {"content-type": "application/json"}
    if query_key:
        path += ("&" if "?" in path else "?") + "key=" + token
    else:
        headers["x-goog-api-key"] = token
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()

results = {
    "whole": gemini("/v1beta/models/gemini-2.5-flash:generateContent",
                    {"contents": [{"role": "user", "parts": [{"text": "say hello"}]}]}),
    "stream": gemini("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
                     {"contents": [{"role": "user", "parts": [{"text": "stream it"}]}]}, query_key=True),
}
report = {"results": results, "names": sorted(os.environ),
          "env": {n: hashlib.sha256(v.encode()).hexdigest()[:6] for n, v in os.environ.items()},
          "placeholder": os.environ["GEMINI_API_KEY"].startswith("agent-runner-gateway-"),
          "base": os.environ["GOOGLE_GEMINI_BASE_URL"]}
open("agent-report.json", "w").write(json.dumps(report, indent=1))
print("Called Gemini.")
'''


def test_a_cli_in_the_sandbox_reaches_gemini_only_through_the_gateway(world: World, gem: GeminiEmulator) -> None:
    gem.script([Reply.text("Hello from Gemini", input_tokens=1200, output_tokens=80),
                Reply.text("Streamed Gemini", input_tokens=1300, output_tokens=40)])
    folder = world.root / "agent"
    folder.mkdir()
    agent = folder / "agent.py"
    agent.write_text(textwrap.dedent(CLIENT))
    number = world.file_issue(dispatch_body(instruction="Call Gemini."))

    outcomes = world.run_once(generators="command", sandbox_ro_paths=str(folder), command_gateway="gemini",
                              command_template=f"python3 {agent} {{instruction_file}}",
                              gemini_api_key=GEMINI_KEY, gemini_base_url=gem.base_url,
                              generator_timeout_seconds=30)

    assert [o.status for o in outcomes] == ["succeeded"]
    pull = world.pulls()[0]
    report = json.loads(world.emu.file_at(TARGET, pull["head"]["ref"], "agent-report.json"))
    (whole_status, whole), (stream_status, stream) = report["results"]["whole"], report["results"]["stream"]
    assert whole_status == 200 and "Hello from Gemini" in whole
    assert stream_status == 200 and "Streamed Gemini" in stream and "usageMetadata" in stream
    # The CLI held only a placeholder and a loopback URL; the emulator saw only the real key.
    assert report["placeholder"] and re.fullmatch(r"http://127\.0\.0\.1:\d+", report["base"])
    assert hashlib.sha256(GEMINI_KEY.encode()).hexdigest()[:6] not in report["env"].values()
    assert "GITHUB_TOKEN" not in report["names"] and "GOOGLE_GEMINI_API_KEY" not in report["names"]
    assert len(gem.completions) == 2
    for request in gem.requests:
        assert request.auth_present and "agent-runner-gateway-" not in request.raw + request.path
        assert "agent-runner-gateway-" not in json.dumps(dict(request.headers))
    comment = world.comments(number)[-1]["body"]
    assert "Model calls through the gateway: 2, 2620 tokens (2500 input, 120 output)" in comment, comment
    transcript = (world.root / "data" / "transcripts").rglob("gateway.jsonl")
    text = "".join(p.read_text() for p in transcript)
    assert "Streamed Gemini" in text and GEMINI_KEY not in text and "agent-runner-gateway-" not in text
