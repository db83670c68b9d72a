"""Keep a record of what a model saw and did, so a reviewer can tell why the PR looks as it does.

:class:`Transcript` appends one JSON object per event to ``transcript.jsonl``
as the conversation happens (a crash still leaves a record) and renders
``transcript.md`` for people when it is closed. Secrets are replaced by
``***`` before anything reaches disk, and every long string is clipped so a
hostile 50 MB tool argument cannot fill the volume.

:func:`excerpt` is pure: it turns a transcript into a collapsed, redacted,
length-bounded block for a PR body.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

MAX_FIELD_CHARS = 20_000
DEFAULT_EXCERPT_CHARS = 6_000
_BACKTICKS_RE = re.compile(r"`+")


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret string with ``***`` (longest first, so overlaps cannot leak)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def clip(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """Shorten ``text`` to ``limit`` characters and say how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"


class Transcript:
    """Record one generation as JSONL events plus a markdown rendering."""

    def __init__(self, directory: Path | None, *, secrets: Sequence[str] = (), name: str = "transcript") -> None:
        self._secrets = tuple(s for s in secrets if s)
        self.events: list[dict[str, Any]] = []
        self.jsonl_path: Path | None = None
        self.markdown_path: Path | None = None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self.jsonl_path = directory / f"{name}.jsonl"
            self.markdown_path = directory / f"{name}.md"
            self.jsonl_path.write_text("", encoding="utf-8")

    def add(self, kind: str, **fields: Any) -> None:
        """Record one event: ``system``, ``user``, ``assistant``, ``tool``, ``usage``, ``note`` or ``error``."""
        event = {"kind": kind, "at": round(time.time(), 3), **self._clean(fields)}
        self.events.append(event)
        if self.jsonl_path is not None:
            with self.jsonl_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(event, ensure_ascii=False, default=str) + "\n")

    def close(self) -> Path | None:
        """Write the markdown rendering; return its path (None when nothing is kept on disk)."""
        if self.markdown_path is None:
            return None
        self.markdown_path.write_text(self.render_markdown(), encoding="utf-8")
        return self.markdown_path

    def render_markdown(self) -> str:
        return render_markdown(self.events)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return clip(redact(value, self._secrets))
        if isinstance(value, Mapping):
            return {str(k): self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value


def render_markdown(events: Iterable[Mapping[str, Any]]) -> str:
    """Render recorded events as markdown, one section per event."""
    out: list[str] = ["# Generator transcript", ""]
    for event in events:
        kind = event.get("kind", "?")
        if kind == "assistant":
            out.append(f"## assistant (turn {event.get('turn', '?')})")
            if event.get("text"):
                out += ["", _fenced(str(event["text"]))]
            for call in event.get("tool_calls") or []:
                args = call.get("arguments")
                shown = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
                out += ["", f"**call** `{call.get('name')}`", "", _fenced(clip(shown, 2_000), "json")]
        elif kind == "tool":
            status = "error" if event.get("is_error") else "ok"
            out += [f"## tool result: `{event.get('name')}` ({status})", "", _fenced(str(event.get("content", "")))]
        elif kind == "usage":
            out.append(
                f"_usage: {event.get('input_tokens', 0)} in / {event.get('output_tokens', 0)} out tokens, "
                f"cost so far {event.get('cost', 'unknown')}_"
            )
        else:
            out += [f"## {kind}", "", _fenced(str(event.get("text", "")))]
        out.append("")
    return "\n".join(out)


def excerpt(
    transcript_text: str, secrets: Iterable[str], limit: int = DEFAULT_EXCERPT_CHARS, *, collapse: bool = True
) -> str:
    """Make a collapsed, redacted, truncated transcript block for a PR body, at most ``limit`` chars.

    HTML comment openers are broken up so that text from a model can never
    look like one of the runner's hidden markers. With ``collapse=False`` only
    the redacted, truncated text comes back, for a caller that wraps it itself.
    """
    text = redact(transcript_text, secrets).replace("<!--", "<!\u200b--").strip()
    if not collapse:
        return _truncate(text, limit)
    head = "<details><summary>Generator transcript</summary>\n\n"
    tail = "\n\n</details>"
    fence = "`" * max(3, _longest_backticks(text) + 1)
    overhead = len(head) + len(tail) + 2 * len(fence) + len("text\n") + 2
    room = limit - overhead
    if room <= 0:
        return ""
    return f"{head}{fence}text\n{_truncate(text, room)}\n{fence}{tail}"


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    note = f"\n… (truncated, {len(text)} characters in full)"
    return text[: max(0, limit - len(note))] + note if limit > len(note) else text[:limit]


def _fenced(text: str, lang: str = "") -> str:
    fence = "`" * max(3, _longest_backticks(text) + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def _longest_backticks(text: str) -> int:
    return max((len(m.group(0)) for m in _BACKTICKS_RE.finditer(text)), default=0)
