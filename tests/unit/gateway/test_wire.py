"""The gateway's pure wire handling: routes, tokens, header stripping, error shapes and usage in streams."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.gateway import dialects, wire

ANTHROPIC_STREAM = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
    b'"role":"assistant","content":[],"model":"claude-haiku-4-5","usage":{"input_tokens":1200,'
    b'"cache_creation_input_tokens":30,"cache_read_input_tokens":70,"output_tokens":1}}}\n\n'
    b'event: ping\ndata: {"type":"ping"}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"the word usage in text"}}\n\n'
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
    b'"usage":{"output_tokens":87}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)
CHAT_STREAM = (
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":321,'
    b'"completion_tokens":12,"total_tokens":333}}\n\n'
    b"data: [DONE]\n\n"
)
RESPONSES_STREAM = (
    b'event: response.created\ndata: {"type":"response.created","response":{"id":"resp_1","status":"in_progress",'
    b'"usage":null}}\n\n'
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"ok"}\n\n'
    b'event: response.completed\ndata: {"type":"response.completed","response":{"id":"resp_1",'
    b'"status":"completed","usage":{"input_tokens":900,"input_tokens_details":{"cached_tokens":100},'
    b'"output_tokens":40,"total_tokens":940}}}\n\n'
)

#: Every event carries usageMetadata; the last one's counts (thinking billed as output) are the call's.
GEMINI_STREAM = (
    b'data: {"candidates":[{"content":{"role":"model","parts":[{"text":"the word usage"}]},"index":0}],'
    b'"usageMetadata":{"promptTokenCount":1200,"totalTokenCount":1200},"modelVersion":"gemini-2.5-flash"}\r\n\r\n'
    b'data: {"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"f","args":{}}}]},'
    b'"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":1200,"candidatesTokenCount":40,'
    b'"thoughtsTokenCount":56,"toolUsePromptTokenCount":50,"totalTokenCount":1346}}\r\n\r\n'
)


@pytest.mark.parametrize(("stream", "expected"), [
    (ANTHROPIC_STREAM, (1300, 87)),
    (CHAT_STREAM, (321, 12)),
    (RESPONSES_STREAM, (900, 40)),
    (ANTHROPIC_STREAM.replace(b"\n", b"\r\n"), (1300, 87)),
    (GEMINI_STREAM, (1250, 96)),
])
@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_usage_is_read_from_a_stream_cut_anywhere(stream: bytes, expected: tuple[int, int], size: int) -> None:
    reader = wire.UsageReader()
    for start in range(0, len(stream), size):
        reader.feed(stream[start:start + size])
    reader.close()
    usage = reader.result()
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens) == expected


def test_a_stream_without_usage_says_so() -> None:
    reader = wire.UsageReader()
    reader.feed(CHAT_STREAM.split(b'data: {"id":"c1","object":"chat.completion.chunk","choices":[],')[0])
    assert reader.result() is None


@pytest.mark.parametrize(("body", "expected"), [
    ({"usage": {"input_tokens": 10, "output_tokens": 3}}, (10, 3)),
    ({"usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}}, (10, 3)),
    ({"object": "response", "usage": {"input_tokens": 7, "output_tokens": 2}}, (7, 2)),
    ({"usage": {"input_tokens": 5, "cache_read_input_tokens": 95, "output_tokens": 1}}, (100, 1)),
    ({"candidates": [], "usageMetadata": {"promptTokenCount": 70, "cachedContentTokenCount": 50,
                                          "candidatesTokenCount": 9, "thoughtsTokenCount": 11}}, (70, 20)),
    ([{"usageMetadata": {"promptTokenCount": 70}}, {"usageMetadata": {"promptTokenCount": 70,
                                                                       "candidatesTokenCount": 4}}, {}], (70, 4)),
])
def test_usage_is_read_from_whole_answers(body: dict, expected: tuple[int, int]) -> None:
    usage = wire.usage_from_json(body)
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == expected


def test_no_usage_in_an_error_body() -> None:
    assert wire.usage_from_json({"error": {"message": "no"}}) is None
    assert wire.usage_from_json([1, 2]) is None


def test_every_credential_and_proxy_header_is_stripped_and_the_real_key_added() -> None:
    sent = [("Authorization", "Bearer placeholder"), ("X-Api-Key", "placeholder"), ("x-goog-api-key", "p"),
            ("Proxy-Authorization", "Basic abc"), ("Proxy-Foo", "x"), ("Cookie", "a=b"), ("api-key", "p"),
            ("Host", "evil.example"), ("Connection", "keep-alive"), ("Content-Length", "3"),
            ("Accept-Encoding", "gzip"), ("anthropic-version", "2023-06-01"), ("User-Agent", "claude-cli")]

    anthropic = wire.upstream_headers(sent, "anthropic", "sk-ant-real")
    openai = wire.upstream_headers(sent, "openai", "sk-real")

    assert anthropic == [("anthropic-version", "2023-06-01"), ("User-Agent", "claude-cli"),
                         ("Accept-Encoding", "identity"), ("x-api-key", "sk-ant-real")]
    assert openai[-1] == ("Authorization", "Bearer sk-real")
    assert "placeholder" not in json.dumps(openai) and "evil" not in json.dumps(openai)
    assert wire.upstream_headers(sent, "openai", None)[-1] == ("Accept-Encoding", "identity")


@pytest.mark.parametrize(("headers", "token"), [
    ({"x-api-key": "tok"}, "tok"),
    ({"Authorization": "Bearer tok"}, "tok"),
    ({"authorization": "bearer  tok "}, "tok"),
    ({"x-goog-api-key": "tok"}, "tok"),
    ({"Authorization": "Basic tok"}, None),
    ({}, None),
])
def test_the_placeholder_is_found_where_each_cli_sends_it(headers: dict, token: str | None) -> None:
    assert wire.client_token(headers) == token


@pytest.mark.parametrize(("target", "path"), [
    ("/v1/messages?beta=true", "/v1/messages"),
    ("http://evil.example:8080/v1/messages", "/v1/messages"),
    ("//v1//chat/completions/", "/v1/chat/completions"),
    ("/", "/"),
])
def test_an_absolute_target_keeps_only_its_path(target: str, path: str) -> None:
    assert wire.route_of("POST", target)[0] == path


def test_only_model_routes_are_routes() -> None:
    assert dialects.route("POST", "/v1/messages") == dialects.Route("anthropic", metered=True)
    assert dialects.route("GET", "/v1/models") == dialects.Route(None, listing=True)
    assert dialects.route("GET", "/v1/messages") is None
    assert dialects.route("POST", "/repos/octocat/target/pulls") is None


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("POST", "/v1beta/models/gemini-2.5-flash:generateContent", dialects.Route("gemini", True, "gemini-2.5-flash")),
    ("POST", "/v1beta/models/gemini-2.5-pro:streamGenerateContent", dialects.Route("gemini", True, "gemini-2.5-pro")),
    ("POST", "/v1/models/gemini-2.5-flash:countTokens", dialects.Route("gemini", False, "gemini-2.5-flash")),
    ("GET", "/v1beta/models", dialects.Route("gemini", listing=True)),
    ("GET", "/v1beta/models/gemini-2.5-flash", dialects.Route("gemini", model="gemini-2.5-flash", listing=True)),
    ("POST", "/v1beta/models/gemini-2.5-flash:embedContent", None),
    ("POST", "/v1beta/models/../x:generateContent", None),
    ("GET", "/v1beta/models/gemini-2.5-flash:generateContent", None),
    ("POST", "/v1beta/files", None),
])
def test_gemini_routes_take_the_model_from_the_path(method: str, path: str, expected: dialects.Route | None) -> None:
    assert dialects.route(method, path) == expected


def test_a_query_key_is_a_placeholder_and_never_goes_upstream() -> None:
    assert wire.client_token({}, "alt=sse&key=tok") == "tok"
    assert wire.client_token({"x-goog-api-key": "hdr"}, "key=tok") == "hdr"
    assert wire.client_token({}, "alt=sse") is None
    assert dialects.forward_query("alt=sse&key=tok") == "alt=sse"
    assert dialects.forward_query("key=tok") == "" and dialects.forward_query("beta=true") == "beta=true"
    sent = [("x-goog-api-key", "placeholder"), ("x-goog-api-client", "genai-js/1.0")]
    assert wire.upstream_headers(sent, "gemini", "AIza-real") == [
        ("x-goog-api-client", "genai-js/1.0"), ("Accept-Encoding", "identity"), ("x-goog-api-key", "AIza-real")]


def test_errors_come_in_each_dialects_shape() -> None:
    assert dialects.error_body("anthropic", 400, "no")["error"] == {"type": "invalid_request_error", "message": "no"}
    assert dialects.error_body("openai", 502, "down") == {
        "error": {"message": "down", "type": "server_error", "param": None, "code": None}}
    assert dialects.error_body("gemini", 401, "who") == {"error": {"code": 401, "message": "who",
                                                                  "status": "UNAUTHENTICATED"}}
    capped = dialects.error_body("gemini", 400, "over", "budget_exceeded")["error"]
    assert capped["status"] == "INVALID_ARGUMENT" and capped["details"][0]["reason"] == "BUDGET_EXCEEDED"
    assert dialects.stream_error_event("gemini", "cut").startswith(b'data: {"error": {"code": 502')


def test_a_streamed_chat_request_is_made_to_report_usage() -> None:
    body = {"model": "m", "stream": True, "messages": []}
    assert wire.with_stream_usage(body, "/v1/chat/completions")["stream_options"] == {"include_usage": True}
    assert wire.with_stream_usage({**body, "stream_options": {"include_usage": True}}, "/v1/chat/completions") is None
    assert wire.with_stream_usage(body, "/v1/responses") is None
    assert wire.with_stream_usage({**body, "stream": False}, "/v1/chat/completions") is None


def test_request_facts_take_the_largest_output_limit() -> None:
    facts = wire.request_facts({"model": "gpt-4o", "max_tokens": 100, "max_completion_tokens": 300, "stream": True})
    assert (facts.model, facts.max_output, facts.stream) == ("gpt-4o", 300, True)
    assert wire.request_facts({"max_output_tokens": True}).max_output is None
    gemini = dialects.route("POST", "/v1beta/models/gemini-2.5-pro:generateContent")
    facts = wire.request_facts({"model": "spoofed", "generationConfig": {"maxOutputTokens": 8192}}, gemini)
    assert (facts.model, facts.max_output) == ("gemini-2.5-pro", 8192)  # the path names the model


def test_a_long_body_keeps_its_head_and_its_newest_turns() -> None:
    from runner.gateway.record import clip_text

    body = '{"system": "SYSTEM", "messages": [' + '"old", ' * 20_000 + '"NEWEST"]}'
    text = clip_text(body, 3000)
    assert text.startswith('{"system": "SYSTEM"') and text.endswith('"NEWEST"]}')
    assert f"[{len(body) - 3000} characters omitted]" in text
    assert clip_text("short") == "short"


def test_a_secret_across_the_cut_is_still_redacted(tmp_path: Path) -> None:
    from runner.gateway.record import Recorder

    secret = "sk-ant-api03-" + "S" * 40
    body = ("a" * 19_990 + secret + "b" * 50_000).encode()  # the cut (at 20,000) falls inside the secret
    recorder = Recorder(tmp_path, secrets=[secret])
    recorder.request(1, method="POST", path="/v1/messages", dialect="anthropic", headers=[], body=body)
    recorder.close()
    text = (tmp_path / "gateway.jsonl").read_text()
    assert "sk-ant-api" not in text and "SSSSSSSSSS" not in text
