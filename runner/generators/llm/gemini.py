"""Make the change with a Gemini model through Google's own SDK, google-genai, and its function calling.

Only translation lives here: the neutral conversation into Gemini ``contents``
(``functionCall`` parts in ``model`` turns, ``functionResponse`` parts in
``user`` turns, same-role turns merged), the tools as ``parametersJsonSchema``
declarations, and the reply back. The loop, budgets and tools are shared
(:mod:`runner.generators.llm.loop`).

The SDK's own retries are off (``HttpRetryOptions(attempts=1)``): it would
retry a 429 without reading ``Retry-After`` and outlive the deadline. Instead
each turn is sent at most ``max_retries + 1`` times here, as the OpenAI and
Anthropic SDKs do it: after a 408/409/429/5xx, a connection failure or a reply
cut short, waiting what the server asks (``Retry-After`` or a ``RetryInfo``
detail) when that is short, and not at all when it is long (the loop's breaker
then holds the turn, or the task waits for the upstream).
"""

from __future__ import annotations

import importlib
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from runner.config import Settings
from runner.core.policy import backoff_delay
from runner.errors import (
    GeneratorError,
    GeneratorTimeout,
    GeneratorUnavailable,
    GeneratorUnreachable,
)
from runner.generators.base import Changes, GenerationContext
from runner.generators.llm.conversation import (
    AssistantTurn,
    Call,
    LoopOptions,
    Message,
    ModelReply,
    ModelRequest,
    ToolResults,
    UserText,
)
from runner.generators.llm.loop import run_agent
from runner.generators.llm.sdk import (
    MAX_SDK_RETRY_AFTER,
    check_cost_limit,
    header_wait,
    resolve_api_key,
    status_error,
    upstream_of,
)
from runner.generators.llm.tools import ToolSpec

GEMINI_DEFAULT_URL = "https://generativelanguage.googleapis.com"
API_VERSION = "v1beta"
KEY_SETTING = "GEMINI_API_KEY"
#: Why a candidate may come back without content: the model declined, or a filter blocked it.
BLOCKED = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "LANGUAGE", "OTHER",
                     "IMAGE_SAFETY", "MODEL_ARMOR"})
#: Ids we made up for calls the model sent without one; never sent back to the API.
LOCAL_ID = "local-call-"


def _transport_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """httpx's (and its fork httpx2's, which newer SDKs use) timeout and transport exception classes."""
    timeouts: list[type[BaseException]] = []
    transport: list[type[BaseException]] = []
    for name in ("httpx", "httpx2"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        timeouts.append(module.TimeoutException)
        transport.append(module.TransportError)
    return tuple(timeouts), tuple(transport)


_TIMEOUTS, _TRANSPORT = _transport_errors()


class GeminiGenerator:
    """The ``gemini`` generator: a tool-using agent over the Gemini API."""

    name = "gemini"

    def __init__(self, settings: Settings, *, max_retries: int = 2) -> None:
        self._key = resolve_api_key(settings.gemini_api_key, settings.gemini_base_url, generator="gemini",
                                    prefix="GEMINI")
        self._settings = settings
        self._options = LoopOptions.from_settings(
            settings, self.name, max_retries=max_retries, service="the Gemini API",
            upstream=upstream_of("gemini", settings.gemini_base_url, GEMINI_DEFAULT_URL))
        check_cost_limit(settings, settings.gemini_model)

    def _client(self, timeout_s: float | None = None) -> genai.Client:
        # An explicit key, API version and vertexai=False: nothing is read from the environment or disk.
        options = types.HttpOptions(base_url=self._settings.gemini_base_url or None, api_version=API_VERSION,
                                    retry_options=types.HttpRetryOptions(attempts=1),
                                    timeout=int(timeout_s * 1000) if timeout_s else None)
        return genai.Client(api_key=self._key, vertexai=False, http_options=options)

    def check(self) -> str:
        """What `agent-runner doctor` asks: do the key and the base URL work? (one cheap call: list the models)"""
        client = self._client(timeout_s=15.0)
        try:
            with gemini_errors(ModelRequest("", (), (), 1, 15.0, 0, False)):
                models = [str(m.name).removeprefix("models/") for m in client.models.list(config={"page_size": 50})]
        finally:
            _close(client)
        shown = ", ".join(models[:3]) + (", …" if len(models) > 3 else "")
        return f"Gemini answered with {len(models)} model{'s' if len(models) != 1 else ''} ({shown})"

    def generate(self, ctx: GenerationContext) -> Changes:
        client = self._client()  # one per task, closed when it ends
        try:
            return run_agent(ctx, GeminiBackend(client, ctx.model or self._settings.gemini_model), self._options)
        finally:
            _close(client)


def _close(client: genai.Client) -> None:
    close = getattr(client, "close", None)  # google-genai 1.3x has none; its connections go with the client
    if close is not None:
        close()


def build(settings: Settings) -> GeminiGenerator:
    """Registry factory for ``gemini``."""
    return GeminiGenerator(settings)


class GeminiBackend:
    """Translate between the loop's neutral messages and the Gemini API."""

    def __init__(self, client: genai.Client, model: str) -> None:
        self._client = client
        self.model = model.removeprefix("models/")
        #: Gemini's thought signatures, by call id: echoed back with their calls, as the API requires.
        self._signatures: dict[str, bytes] = {}
        self._calls = 0

    def complete(self, request: ModelRequest) -> ModelReply:
        config = types.GenerateContentConfig(
            system_instruction=request.system, max_output_tokens=request.max_output_tokens,
            http_options=types.HttpOptions(timeout=max(1, int(request.timeout * 1000))))
        if request.tools:
            config.tools = [types.Tool(function_declarations=[to_declaration(s) for s in request.tools])]
            mode = types.FunctionCallingConfigMode.ANY if request.tool_choice == "required" else \
                types.FunctionCallingConfigMode.AUTO
            config.tool_config = types.ToolConfig(function_calling_config=types.FunctionCallingConfig(mode=mode))
        contents = self.to_contents(request.messages)
        attempt = 0
        while True:
            try:
                with gemini_errors(request):
                    response = self._client.models.generate_content(model=self.model, contents=contents,
                                                                    config=config)
                return self._reply(response)
            except GeneratorUnavailable as exc:  # another try may help: wait what the server asks, if short
                cause = exc.__cause__
                attempt += 1
                wait = (retry_after(cause) if isinstance(cause, genai_errors.APIError) else 0.0) or \
                    backoff_delay(attempt, base=0.5, cap=8.0)
                if attempt > request.max_retries or wait > MAX_SDK_RETRY_AFTER:
                    raise
                time.sleep(wait)

    def _reply(self, response: types.GenerateContentResponse) -> ModelReply:
        usage = response.usage_metadata
        inputs = ((usage.prompt_token_count or 0) + (usage.tool_use_prompt_token_count or 0)) if usage else 0
        outputs = ((usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)) if usage else 0
        feedback = response.prompt_feedback
        if not response.candidates:
            why = feedback.block_reason if feedback is not None and feedback.block_reason else "no candidate"
            raise _refused(str(getattr(why, "value", why)))
        candidate = response.candidates[0]
        reason = getattr(candidate.finish_reason, "value", candidate.finish_reason)
        parts = list(candidate.content.parts or []) if candidate.content is not None else []
        if not parts and reason in BLOCKED:
            raise _refused(str(reason))
        texts, calls = [], []
        for part in parts:
            if part.function_call is not None and part.function_call.name:
                self._calls += 1
                ident = part.function_call.id or f"{LOCAL_ID}{self._calls}"
                if part.thought_signature:
                    self._signatures[ident] = part.thought_signature
                calls.append(Call(id=ident, name=part.function_call.name, arguments=dict(part.function_call.args or {})))
            elif part.text and not part.thought:
                texts.append(part.text)
        return ModelReply(text="".join(texts), calls=tuple(calls), input_tokens=inputs, output_tokens=outputs,
                          truncated=reason == "MAX_TOKENS")

    def to_contents(self, messages: tuple[Message, ...]) -> list[types.Content]:
        out: list[types.Content] = []
        for message in messages:
            role, parts = self._parts(message)
            if out and out[-1].role == role:
                out[-1].parts = [*(out[-1].parts or []), *parts]  # the API wants user/model turns to alternate
            else:
                out.append(types.Content(role=role, parts=parts))
        return out

    def _parts(self, message: Message) -> tuple[str, list[types.Part]]:
        if isinstance(message, UserText):
            return "user", [types.Part(text=message.text)]
        if isinstance(message, AssistantTurn):
            parts = [types.Part(text=message.text)] if message.text else []
            for call in message.calls:
                function = types.FunctionCall(name=call.name, args=_args(call.arguments), id=_wire_id(call.id))
                parts.append(types.Part(function_call=function, thought_signature=self._signatures.get(call.id)))
            return "model", parts or [types.Part(text="(no reply)")]
        assert isinstance(message, ToolResults)
        return "user", [types.Part(function_response=types.FunctionResponse(
            name=o.call.name, id=_wire_id(o.call.id), response={"error" if o.is_error else "output": o.content}))
            for o in message.outcomes]


def to_declaration(spec: ToolSpec) -> types.FunctionDeclaration:
    """A tool as Gemini declares it: its JSON Schema as is (``parametersJsonSchema``)."""
    return types.FunctionDeclaration(name=spec.name, description=spec.description,
                                     parameters_json_schema=dict(spec.parameters))


@contextmanager
def gemini_errors(request: ModelRequest) -> Iterator[None]:
    """Translate a google-genai failure into our errors: transient (GeneratorUnavailable) or not by class."""
    try:
        yield
    except genai_errors.APIError as exc:
        status, message = int(exc.code or 0), str(exc.message or exc)
        if _bad_key(exc):
            status = 401  # Google answers a wrong key 400 API_KEY_INVALID: a credentials error, permanent
        raise status_error("Gemini", KEY_SETTING, status, message, bool(request.tools)) from exc
    except _TIMEOUTS as exc:
        if request.deadline_bound:
            raise GeneratorTimeout("The Gemini API did not answer before the generator's deadline.") from exc
        raise GeneratorUnavailable("The Gemini API timed out; try again later.") from exc
    except _TRANSPORT as exc:
        where = str(getattr(getattr(exc, "request", None), "url", "its URL")).split("?", 1)[0]
        raise GeneratorUnreachable(f"Could not reach the Gemini API at {where} ({type(exc).__name__}: {exc}). "
                                   "Check GEMINI_BASE_URL and the network.") from exc
    except ValueError as exc:  # the SDK's JSON parse errors: a body cut short, or not the API's at all
        raise GeneratorUnavailable(f"The Gemini API sent a reply that could not be read ({exc}).") from exc


def retry_after(exc: genai_errors.APIError) -> float | None:
    """How long the server asks to wait: ``Retry-After(-Ms)``, else a ``RetryInfo`` detail (``"7s"``), else 0."""
    wait = header_wait(getattr(getattr(exc, "response", None), "headers", None) or {})
    if wait is not None:
        return wait
    details = exc.details.get("error", {}).get("details") if isinstance(exc.details, dict) else None
    for detail in details or []:
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and (match := re.fullmatch(r"(\d+(?:\.\d+)?)s", delay.strip())):
            return float(match.group(1))
    return 0.0


def _bad_key(exc: genai_errors.APIError) -> bool:
    details = exc.details.get("error", {}).get("details") if isinstance(exc.details, dict) else None
    reasons = {d.get("reason") for d in details or [] if isinstance(d, dict)}
    return "API_KEY_INVALID" in reasons or "api key not valid" in str(exc.message or "").lower()


def _refused(reason: str) -> GeneratorError:
    return GeneratorError(f"The Gemini API gave no answer: the model or its safety filters blocked it "
                          f"(finishReason {reason}).",
                          hint="Rephrase the instruction, or pick another model, then remove the "
                               "`agent-failed` label.")


def _args(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments)
    except (TypeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _wire_id(ident: str) -> str | None:
    return None if ident.startswith(LOCAL_ID) else ident
