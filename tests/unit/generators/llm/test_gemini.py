"""The `gemini` backend's translation, on the SDK's own types: thought signatures, ids, usage, waits."""

from __future__ import annotations

from google.genai import errors, types

from runner.generators.llm.conversation import AssistantTurn, ToolOutcome, ToolResults, UserText
from runner.generators.llm.gemini import GeminiBackend, retry_after


def reply(*parts: types.Part, usage: types.GenerateContentResponseUsageMetadata | None = None,
          finish: types.FinishReason = types.FinishReason.STOP) -> types.GenerateContentResponse:
    candidate = types.Candidate(content=types.Content(role="model", parts=list(parts)), finish_reason=finish)
    return types.GenerateContentResponse(candidates=[candidate], usage_metadata=usage)


def test_thoughts_are_not_the_answer_and_their_signatures_go_back_with_the_calls() -> None:
    backend = GeminiBackend(None, "models/gemini-3-pro-preview")  # type: ignore[arg-type]
    usage = types.GenerateContentResponseUsageMetadata(prompt_token_count=900, tool_use_prompt_token_count=100,
                                                       candidates_token_count=30, thoughts_token_count=70)
    answer = backend._reply(reply(
        types.Part(text="Let me think about the files.", thought=True),
        types.Part(text="Reading it."),
        types.Part(function_call=types.FunctionCall(name="read_file", args={"path": "a.py"}),
                   thought_signature=b"sig-1"),
        types.Part(function_call=types.FunctionCall(name="list_files", args={}, id="fc-9")),
        usage=usage))
    assert backend.model == "gemini-3-pro-preview"
    assert answer.text == "Reading it." and (answer.input_tokens, answer.output_tokens) == (1000, 100)
    first, second = answer.calls
    assert (first.name, first.arguments, second.id) == ("read_file", {"path": "a.py"}, "fc-9")

    contents = backend.to_contents((UserText("go"), AssistantTurn(answer.text, answer.calls),
                                    ToolResults((ToolOutcome(first, "x = 1"), ToolOutcome(second, "ERROR: no", True)))))
    assert [c.role for c in contents] == ["user", "model", "user"]
    model_parts = contents[1].parts or []
    assert model_parts[1].thought_signature == b"sig-1" and model_parts[1].function_call is not None
    assert model_parts[1].function_call.id is None  # an id we made up is never sent
    assert model_parts[2].function_call is not None and model_parts[2].function_call.id == "fc-9"
    results = [p.function_response for p in contents[2].parts or []]
    assert [(r.name, r.id, r.response) for r in results if r] == [
        ("read_file", None, {"output": "x = 1"}), ("list_files", "fc-9", {"error": "ERROR: no"})]


def test_consecutive_user_turns_are_merged_and_a_cut_answer_says_so() -> None:
    backend = GeminiBackend(None, "gemini-2.5-flash")  # type: ignore[arg-type]
    contents = backend.to_contents((UserText("a"), UserText("b"), AssistantTurn("")))
    assert [(c.role, [p.text for p in c.parts or []]) for c in contents] == [("user", ["a", "b"]),
                                                                          ("model", ["(no reply)"])]
    assert backend._reply(reply(types.Part(text="cut"), finish=types.FinishReason.MAX_TOKENS)).truncated


def test_the_wait_comes_from_retry_after_or_googles_retry_info() -> None:
    info = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "slow down",
                      "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}}
    assert retry_after(errors.ClientError(429, info)) == 37.0
    assert retry_after(errors.ServerError(503, {"error": {"code": 503, "message": "x"}})) == 0.0
