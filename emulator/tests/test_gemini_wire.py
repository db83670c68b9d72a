"""The Gemini emulator answers in Google's published shapes: the google-genai SDK's own types validate every body.

Each raw answer is checked with the SDK's pydantic models (``extra="forbid"``,
camelCase aliases, so an unknown or misspelt field fails), and the SDK's client
reads the same answers end to end: text, function calls, streams, usage,
``countTokens``, the model listing, and the errors it raises for each fault.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from github_emulator.llm import GeminiEmulator, Reply, ToolCall
from google import genai
from google.genai import errors, types

KEY = "AIza-emulated-gemini-key-0123456789"
MODEL = "gemini-2.5-flash"
GENERATE = f"/v1beta/models/{MODEL}:generateContent"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
COUNT = f"/v1beta/models/{MODEL}:countTokens"
USER = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


@pytest.fixture()
def gem() -> Iterator[GeminiEmulator]:
    with GeminiEmulator(api_key=KEY) as emu:
        yield emu


def raw(emu: GeminiEmulator, target: str, body: Any = USER, headers: dict[str, str] | None = None,
        method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    """One request over plain HTTP, so the exact bytes can be checked."""
    conn = http.client.HTTPConnection(urlsplit(emu.base_url).netloc, timeout=10)
    data = json.dumps(body).encode() if method == "POST" else None
    conn.request(method, target, data, {"content-type": "application/json", **({"x-goog-api-key": KEY}
                                                                               if headers is None else headers)})
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, payload


def events(payload: bytes) -> list[dict[str, Any]]:
    frames = [f for f in payload.split(b"\r\n\r\n") if f.strip()]
    assert all(f.startswith(b"data: ") for f in frames), payload
    return [json.loads(f[len(b"data: "):]) for f in frames]


def client(emu: GeminiEmulator, key: str = KEY) -> genai.Client:
    options = types.HttpOptions(base_url=emu.base_url, api_version="v1beta",
                                retry_options=types.HttpRetryOptions(attempts=1))
    return genai.Client(api_key=key, http_options=options)


def test_a_whole_answer_validates_as_a_generate_content_response(gem: GeminiEmulator) -> None:
    gem.script([Reply.tool_calls(("write_file", {"path": "a.txt", "content": "hi"}), ("list_files", {}),
                                 text="Writing.", input_tokens=120, output_tokens=17),
                Reply.text("cut", truncated=True)])
    status, headers, body = raw(gem, GENERATE)
    assert status == 200 and headers["content-type"] == "application/json"
    answer = types.GenerateContentResponse.model_validate(json.loads(body))
    [candidate] = answer.candidates or []
    assert candidate.finish_reason == types.FinishReason.STOP and candidate.content is not None
    assert candidate.content.role == "model"
    assert [p.text for p in candidate.content.parts or []][:1] == ["Writing."]
    assert [(c.name, c.args) for c in answer.function_calls or []] == [
        ("write_file", {"path": "a.txt", "content": "hi"}), ("list_files", {})]
    usage = answer.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (120, 17, 137)
    assert answer.model_version == MODEL and answer.response_id
    cut = types.GenerateContentResponse.model_validate(json.loads(raw(gem, GENERATE)[2]))
    assert cut.candidates and cut.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS


def test_a_stream_is_sse_events_each_a_whole_response_and_the_last_holds_the_usage(gem: GeminiEmulator) -> None:
    gem.script([Reply.tool_call("edit_file", {"path": "src/app.py", "search": "a", "replace": "b"},
                                text="Editing the file now, carefully.", input_tokens=900, output_tokens=31)])
    status, headers, body = raw(gem, STREAM)
    assert status == 200 and headers["content-type"] == "text/event-stream"
    chunks = [types.GenerateContentResponse.model_validate(e) for e in events(body)]
    assert len(chunks) == 3  # two text pieces, then the function call, whole
    assert "".join(c.text or "" for c in chunks[:2]) == "Editing the file now, carefully."
    assert [(f.name, f.args) for f in chunks[-1].function_calls or []] == [
        ("edit_file", {"path": "src/app.py", "search": "a", "replace": "b"})]
    assert all(c.usage_metadata and c.usage_metadata.prompt_token_count == 900 for c in chunks)
    assert [c.candidates[0].finish_reason for c in chunks if c.candidates] == [None, None, types.FinishReason.STOP]
    last = chunks[-1].usage_metadata
    assert last is not None and (last.candidates_token_count, last.total_token_count) == (31, 931)
    assert gem.completions[0].stream and gem.completions[0].path == STREAM


def test_the_sdk_reads_text_calls_streams_and_usage(gem: GeminiEmulator) -> None:
    gem.script([Reply.tool_call("read_file", {"path": "README.md"}, id="call-7"),
                Reply.text("A streamed answer in several pieces.", input_tokens=33, output_tokens=8)])
    with client(gem) as sdk:
        first = sdk.models.generate_content(model=MODEL, contents="hi")
        [call] = first.function_calls or []
        assert (call.name, call.args, call.id) == ("read_file", {"path": "README.md"}, "call-7")
        chunks = list(sdk.models.generate_content_stream(model=MODEL, contents="more"))
    assert "".join(c.text or "" for c in chunks) == "A streamed answer in several pieces."
    usage = chunks[-1].usage_metadata
    assert usage is not None and (usage.prompt_token_count, usage.candidates_token_count) == (33, 8)
    assert [r.path for r in gem.completions] == [GENERATE, STREAM]


def test_function_responses_are_read_back_as_tool_results(gem: GeminiEmulator) -> None:
    gem.script([Reply.text("ok")])
    contents = [
        {"role": "user", "parts": [{"text": "go"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "list_files", "args": {}}},
                                    {"functionCall": {"name": "read_file", "args": {"path": "x"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "list_files", "response": {"output": "a\nb"}}},
                                   {"functionResponse": {"name": "read_file", "response": {"error": "ERROR: no"}}}]},
    ]
    types.GenerateContentConfig.model_validate({})  # the SDK's request types take the same camelCase parts
    for item in contents:
        types.Content.model_validate(item)
    assert raw(gem, GENERATE, {"contents": contents})[0] == 200
    assert gem.completions[0].tool_results == ["a\nb", "ERROR: no"]


def test_count_tokens_and_the_model_listing(gem: GeminiEmulator) -> None:
    status, _, body = raw(gem, COUNT, {"contents": [{"role": "user", "parts": [{"text": "x" * 400}]}]})
    counted = types.CountTokensResponse.model_validate({k: v for k, v in json.loads(body).items()
                                                        if k != "promptTokensDetails"})
    assert status == 200 and (counted.total_tokens or 0) > 100
    with client(gem) as sdk:
        assert (sdk.models.count_tokens(model=MODEL, contents="hello").total_tokens or 0) > 0
        assert [m.name for m in sdk.models.list()] == [f"models/{MODEL}"]
        assert sdk.models.get(model=MODEL).name == f"models/{MODEL}"
    assert gem.remaining == 0 and gem.completions == []  # counting and listing take no scripted reply


def test_the_key_is_taken_from_the_header_or_the_query_and_never_recorded(gem: GeminiEmulator) -> None:
    gem.script([Reply.text("one"), Reply.text("two")])
    assert raw(gem, GENERATE)[0] == 200
    assert raw(gem, f"{STREAM}&key={KEY}", headers={})[0] == 200
    assert all(r.auth_present for r in gem.requests)
    assert gem.requests[1].path == f"{STREAM}&key=***"  # the key's value is masked in the recorded target
    assert KEY not in json.dumps([[r.path, dict(r.headers)] for r in gem.requests])


def test_a_missing_or_wrong_key_gets_googles_error_shapes(gem: GeminiEmulator) -> None:
    status, _, body = raw(gem, GENERATE, headers={})
    error = json.loads(body)["error"]
    assert status == 403 and error["status"] == "PERMISSION_DENIED" and error["code"] == 403
    status, _, body = raw(gem, GENERATE, headers={"x-goog-api-key": "wrong"})
    error = json.loads(body)["error"]
    assert status == 400 and error["status"] == "INVALID_ARGUMENT"
    assert error["details"][0]["reason"] == "API_KEY_INVALID"
    with client(gem, key="wrong") as sdk, pytest.raises(errors.ClientError) as info:
        sdk.models.generate_content(model=MODEL, contents="hi")
    assert info.value.code == 400 and info.value.message == "API key not valid. Please pass a valid API key."


def test_faults_503_429_with_retry_after_and_malformed(gem: GeminiEmulator) -> None:
    gem.script([Reply.error(503, "The model is overloaded. Please try again later."),
                Reply.error(429, "Resource has been exhausted (e.g. check quota).", retry_after=7),
                Reply.malformed(), Reply.malformed(), Reply.error(401)])
    with client(gem) as sdk:
        with pytest.raises(errors.ServerError) as down:
            sdk.models.generate_content(model=MODEL, contents="hi")
        assert (down.value.code, down.value.status) == (503, "UNAVAILABLE")
        with pytest.raises(errors.ClientError) as limited:
            sdk.models.generate_content(model=MODEL, contents="hi")
        assert (limited.value.code, limited.value.status) == (429, "RESOURCE_EXHAUSTED")
        assert limited.value.details["error"]["details"][0]["retryDelay"] == "7s"
        assert limited.value.response.headers["retry-after"] == "7"
        with pytest.raises(ValueError, match="Unterminated string"):  # the SDK's JSON parse error
            sdk.models.generate_content(model=MODEL, contents="hi")
    status, _, body = raw(gem, STREAM)
    assert status == 200 and body.startswith(b"data: {") and not body.rstrip().endswith(b"}")
    status, _, body = raw(gem, GENERATE)
    assert status == 401 and json.loads(body)["error"]["status"] == "UNAUTHENTICATED"


def test_a_refusal_is_a_blocked_candidate_without_content(gem: GeminiEmulator) -> None:
    gem.script([Reply.refusal(), Reply.refusal("PROHIBITED_CONTENT")])
    answer = types.GenerateContentResponse.model_validate(json.loads(raw(gem, GENERATE)[2]))
    [candidate] = answer.candidates or []
    assert candidate.finish_reason == types.FinishReason.SAFETY and candidate.content is None
    [streamed] = [types.GenerateContentResponse.model_validate(e) for e in events(raw(gem, STREAM)[2])]
    assert streamed.candidates and streamed.candidates[0].finish_reason == types.FinishReason.PROHIBITED_CONTENT


def test_rejected_tools_and_an_exhausted_script(gem: GeminiEmulator) -> None:
    gem.reject_tools = True
    tools = {**USER, "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT"}}]}]}
    status, _, body = raw(gem, GENERATE, tools)
    assert status == 400 and "tool" in json.loads(body)["error"]["message"]
    status, _, body = raw(gem, GENERATE)
    assert status == 500 and "no scripted reply left" in json.loads(body)["error"]["message"]


def test_cli_tool_helpers() -> None:
    write = Reply.gemini_write("/w/a.py", "x = 1\n")
    assert write.calls[0] == ToolCall("write_file", {"file_path": "/w/a.py", "content": "x = 1\n"})
    assert Reply.gemini_shell("ls").calls[0].arguments_object()["command"] == "ls"


def test_a_gated_stream_holds_its_rest_until_the_gate_opens(gem: GeminiEmulator) -> None:
    import threading

    gate = threading.Event()
    gem.script([Reply.gated(gate, Reply.text("first piece, then the rest of it", input_tokens=5))])
    conn = http.client.HTTPConnection(urlsplit(gem.base_url).netloc, timeout=20)
    conn.request("POST", STREAM, json.dumps(USER), {"x-goog-api-key": KEY})
    response = conn.getresponse()
    first = b""
    while b"\r\n\r\n" not in first:  # the first event arrives while the gate is shut
        first += response.read1(65536)
    assert first.count(b"\r\n\r\n") == 1 and not gate.is_set()
    gate.set()
    rest = response.read()
    conn.close()
    assert len(events(first + rest)) == 2 and gem.gate_timeouts == 0
