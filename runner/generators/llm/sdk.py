"""Meet the model SDKs at the boundary: their errors as ours, each call's time and retries, the key.

Every SDK failure becomes a :mod:`runner.errors` class here (transient or not is
the class's property), so the loop and the generators catch only our errors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pydantic import SecretStr

from runner.breakers import MODEL_UPSTREAMS, model_upstream
from runner.core.pricing import display_model, price_for
from runner.errors import (
    ConfigError,
    GeneratorError,
    GeneratorTimeout,
    GeneratorUnavailable,
    GeneratorUnreachable,
    ModelRequestRefused,
    ToolCallingUnsupported,
)
from runner.generators.llm.conversation import ModelRequest
from runner.steps.transcript import clip

MAX_TOOL_RESULT_CHARS = 20_000

MAX_CALL_SECONDS = 600.0
MIN_ATTEMPT_SECONDS = 20.0
MAX_SDK_RETRY_AFTER = 20.0
#: Replies without an edit that the model is told about before the loop gives up.
def check_cost_limit(settings: Any, *models: str | None) -> None:
    """Refuse at start-up a cost limit that no known price can enforce for the configured models."""
    if settings.max_cost_usd_per_task is None:
        return
    wanted = {m for m in (*models, settings.default_model, *settings.seniority_models.values()) if m}
    unknown = sorted(m for m in wanted if price_for(m, settings.model_prices) is None)
    if unknown:
        names = ", ".join(f"`{display_model(m)}`" for m in unknown)
        example = json.dumps({display_model(unknown[0]): [0.5, 1.5]})
        raise ConfigError(
            f"MAX_COST_USD_PER_TASK is set, but no price is known for {names}, so the limit could not be "
            f"enforced. Add the price to MODEL_PRICES (dollars per million input and output tokens, "
            f"for example MODEL_PRICES='{example}'; [0, 0] for a local model), or unset MAX_COST_USD_PER_TASK."
        )


def call_limits(seconds_left: float, max_retries: int) -> tuple[float, int, bool]:
    """Split the time left between the SDK's attempts so its retries never outlive the deadline.

    Returns ``(timeout per attempt, retries, whether the timeout is the deadline)``.
    With too little time for several attempts, one attempt gets all of it.
    """
    attempts = max_retries + 1
    share = seconds_left / attempts
    if max_retries > 0 and share >= MIN_ATTEMPT_SECONDS:
        return min(share, MAX_CALL_SECONDS), max_retries, share <= MAX_CALL_SECONDS
    return min(seconds_left, MAX_CALL_SECONDS), 0, seconds_left <= MAX_CALL_SECONDS


def header_wait(headers: Mapping[str, str]) -> float | None:
    """How long a reply's ``Retry-After-Ms`` or ``Retry-After`` (seconds) asks to wait, if it says."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return float(headers[name]) / divisor
        except (KeyError, TypeError, ValueError):
            continue
    return None


def limit_retry_after(response: Any) -> None:
    """An httpx response hook: let the SDK retry only when the server asks for a short wait,
    and never a request the server called invalid.

    The Anthropic SDK sleeps for whatever ``Retry-After`` says (OpenAI's up to
    two minutes), which could outlive the task's deadline. A longer wait is
    better handled by the runner's own retry of the task, so the SDK is told
    not to retry (``x-should-retry``, which both SDKs obey).
    """
    headers = response.headers
    wait = header_wait(headers)
    if wait is not None and wait > MAX_SDK_RETRY_AFTER:
        headers["x-should-retry"] = "false"
    elif response.status_code >= 500 and "x-should-retry" not in headers:
        # A 5xx whose body says the request is invalid fails the same way every time.
        response.read()
        if says_request_invalid(response.text):
            headers["x-should-retry"] = "false"


@contextmanager
def sdk_errors(sdk: Any, provider: str, key_setting: str, request: ModelRequest) -> Iterator[None]:
    """Translate an OpenAI/Anthropic SDK exception (same class names in both) into our errors."""
    try:
        yield
    except sdk.APITimeoutError as exc:
        if request.deadline_bound:
            raise GeneratorTimeout(f"The {provider} API did not answer before the generator's deadline.") from exc
        raise GeneratorUnavailable(f"The {provider} API timed out; try again later.") from exc
    except sdk.APIConnectionError as exc:
        raise _unreachable(exc, provider, key_setting) from exc
    except sdk.APIStatusError as exc:
        raise status_error(provider, key_setting, exc.status_code, _error_text(exc), bool(request.tools)) from exc
    except sdk.APIResponseValidationError as exc:
        raise GeneratorError(f"The {provider} API sent a reply the SDK could not read ({exc.message}).") from exc


def check_credentials(sdk: Any, client: Any, provider: str, key_setting: str) -> str:
    """The cheap call `agent-runner doctor` makes: list the models (GET /v1/models)."""
    try:
        models = [m.id for m in client.models.list().data]
    except sdk.APIConnectionError as exc:
        raise _unreachable(exc, provider, key_setting) from exc
    except sdk.APIStatusError as exc:
        raise status_error(provider, key_setting, exc.status_code, _error_text(exc), False) from exc
    shown = ", ".join(models[:3]) + (", …" if len(models) > 3 else "")
    return f"{provider} answered with {len(models)} model{'s' if len(models) != 1 else ''} ({shown})"


def _unreachable(exc: Any, provider: str, key_setting: str) -> GeneratorUnreachable:
    url_setting = key_setting.replace("_API_KEY", "_BASE_URL")
    return GeneratorUnreachable(
        f"Could not reach the {provider} API at {_request_origin(exc)} ({exc.message}). "
        f"Check {url_setting} and the network."
    )


def _request_origin(exc: Any) -> str:
    """Scheme, host and path of the failed request (no query string), or `its URL` if unknown."""
    url = getattr(getattr(exc, "request", None), "url", None)
    if url is None:
        return "its URL"
    text = str(url)
    return text.split("?", 1)[0]


def status_error(provider: str, key_setting: str, status: int, message: str, had_tools: bool) -> GeneratorError:
    """Pick the error class for an HTTP status: transient for 408/409/429/5xx, permanent otherwise."""
    text = clip(message, 300)
    lowered = message.lower()
    if status in (401, 403):
        return GeneratorError(
            f"The {provider} API rejected the credentials (HTTP {status}: {text}). "
            f"Check {key_setting} and that the key may use the model."
        )
    invalid = status in (400, 404, 413, 422) or (status >= 500 and says_request_invalid(message))
    if had_tools and invalid and status != 413 and ("tool" in lowered or "function" in lowered):
        return ToolCallingUnsupported(f"The {provider} server refused tool calling (HTTP {status}: {text}).")
    if invalid:
        return ModelRequestRefused(f"The {provider} server refused the request as invalid (HTTP {status}: {text}).")
    if status in (408, 409, 429) or status >= 500:
        return GeneratorUnavailable(f"The {provider} API is unavailable (HTTP {status}: {text}); try again later.")
    return ModelRequestRefused(f"The {provider} API refused the request (HTTP {status}: {text}).")


#: What a server says when the request itself is wrong, even under a 5xx status
#: (llama-cpp-python answers a pydantic validation error with HTTP 500).


_INVALID_REQUEST = re.compile(
    r"input should be|should be a valid|validation error|invalid[ _]request|field required|"
    r"extra inputs are not permitted|missing required|is not supported|not supported by|unsupported|"
    r"bad request|invalid (?:type|value|argument|parameter|json|schema|tool|message)|could not parse|"
    r"failed to parse|unknown (?:field|parameter)|unexpected (?:field|keyword)",
    re.IGNORECASE,
)
def says_request_invalid(message: str) -> bool:
    """Whether an error body says the request is invalid, so sending it again cannot help."""
    return bool(_INVALID_REQUEST.search(message))


def _error_text(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        message = body.get("message") or (body.get("error") or {}).get("message")
        if isinstance(message, str):
            return message
    return str(getattr(exc, "message", exc))


LOCAL_SERVER_KEY = "not-needed"
def resolve_api_key(key: SecretStr | None, base_url: str | None, *, generator: str, prefix: str) -> str:
    """The API key to send; a local compatible server (a base URL and no key) gets a placeholder."""
    value = key.get_secret_value() if key is not None else ""
    if value:
        return value
    if base_url:
        return LOCAL_SERVER_KEY
    raise ConfigError(
        f"The {generator} generator needs {prefix}_API_KEY. Set it in `.env`, or set "
        f"{prefix}_BASE_URL to a compatible server that needs no key."
    )


#: One breaker per model upstream, for the whole process: every task's turns go through it, and the
#: model gateway's forwarding too (issue #29).
UPSTREAMS = MODEL_UPSTREAMS


def upstream_of(provider: str, base_url: str | None, default: str) -> str:
    """The name of a model upstream's breaker (without its ``model:``): the provider and its host."""
    return model_upstream(provider, base_url or default).removeprefix("model:")
