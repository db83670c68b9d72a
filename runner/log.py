"""Configure one structlog chain for the whole process, with secrets redacted first.

Redaction is a processor that runs before any renderer, so no log line, traceback
or exception message ever carries a configured secret. The same :class:`Redactor`
cleans issue comments, PR bodies and ledger errors before they leave the process.
"""

from __future__ import annotations

import base64
import logging
import re
import sys
import threading
import urllib.parse
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

MASK = "***"
# Tokens GitHub and LLM vendors hand out, redacted even when not configured.
_TOKEN_PATTERNS = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|sk-(?:ant-)?[A-Za-z0-9_-]{20,})\b"
)
_AUTH_HEADER = re.compile(r"(?i)(authorization:\s*(?:bearer|token|basic)\s+)[^\s'\"]+")


#: Secrets shorter than this get no encoded variants: they would match ordinary text.
MIN_VARIANT_CHARS = 8


def secret_variants(secret: str) -> list[tuple[str, str]]:
    """The secret as it could appear when someone tries to sneak it out: ``(text, encoding)``.

    Base64 depends on where in the encoded string the secret starts, so each of
    the three alignments contributes the part of the output that only the
    secret's own bytes determine (what ``grep`` would find in a longer blob).
    """
    variants = [(secret, "plain")]
    if len(secret) < MIN_VARIANT_CHARS:
        return variants
    raw = secret.encode()
    variants += [(secret[::-1], "reversed"), (raw.hex(), "hex"), (raw.hex().upper(), "hex")]
    quoted = urllib.parse.quote(secret, safe="")
    if quoted != secret:
        variants.append((quoted, "URL-encoded"))
    for pad in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * pad + raw).decode()
            start = 4 if pad else 0
            end = 4 * ((pad + len(raw)) // 3)
            core = text[start:end]
            if len(core) >= MIN_VARIANT_CHARS:
                variants.append((core, "base64"))
    unique: dict[str, str] = {}
    for value, encoding in variants:
        unique.setdefault(value, encoding)
    return list(unique.items())


class Redactor:
    """Replace every known secret (and anything shaped like a token) with ***."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            wanted = [s for s in secrets if s and len(s) >= 4]
            merged = set(self._secrets) | {v for s in wanted for v, _ in secret_variants(s)}
            # Longest first, so a secret containing another is masked whole.
            self._secrets = tuple(sorted(merged, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        text = _AUTH_HEADER.sub(lambda m: m.group(1) + MASK, text)
        return _TOKEN_PATTERNS.sub(MASK, text)

    def value(self, value: Any) -> Any:
        """Redact inside strings, exceptions and nested containers."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, BaseException):
            return self(f"{type(value).__name__}: {value}")
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.value(v) for v in value)
        return value

    def processor(self, _logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """The structlog processor: runs after tracebacks are formatted, before rendering."""
        for key, item in list(event_dict.items()):
            event_dict[key] = self.value(item)
        return event_dict


#: The process-wide redactor; `configure_logging` adds the configured secrets.
REDACTOR = Redactor()


def configure_logging(level: str = "INFO", fmt: str = "auto", secrets: Iterable[str] = ()) -> None:
    """Set up one pipeline: structlog and stdlib records alike are redacted, then rendered.

    structlog events go through the stdlib root handler, whose
    ``ProcessorFormatter`` also formats records from libraries (PyGithub,
    urllib3, openai), so JSON mode is JSON on every line. Tracebacks are
    structured (``exception`` as a list of frames) in JSON and readable on a
    console; both are redacted.
    """
    REDACTOR.add(secrets)
    numeric = logging.getLevelName(level.upper())
    numeric = numeric if isinstance(numeric, int) else logging.INFO
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if use_console:
        # Tracebacks become text before redaction, so they are redacted too.
        final: list[Any] = [structlog.processors.format_exc_info, REDACTOR.processor,
                            structlog.dev.ConsoleRenderer(colors=True)]
    else:
        final = [structlog.processors.dict_tracebacks, REDACTOR.processor,
                 structlog.processors.JSONRenderer()]
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # Libraries below WARNING are noise at INFO; at DEBUG they are what you asked for.
    for name in ("urllib3", "github", "git", "httpx", "httpcore", "openai", "anthropic",
                 "google_genai", "httpx2"):
        logging.getLogger(name).setLevel(max(logging.WARNING, numeric) if numeric > logging.DEBUG else numeric)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one handler we install; it looks up sys.stderr on every record (pytest swaps it)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def get_logger(**bound: Any) -> Any:
    """The runner's logger with context bound (repo, issue, task_id, attempt, generator)."""
    return structlog.get_logger("agent-runner").bind(**bound)
