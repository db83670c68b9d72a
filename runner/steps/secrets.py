"""Find credentials in what is about to be pushed, so that no secret leaves through a commit.

The scanner is detect-secrets (Yelp), with the plugins for formats that are
precise enough to block a push on: GitHub, AWS, OpenAI, Slack, private keys,
high-entropy strings and the other vendor token formats it knows. On top of
it, three rules of our own: Anthropic keys, newer OpenAI project keys and
GitHub fine-grained tokens (detect-secrets 1.5 does not know them), and the
runner's own credentials in every encoding :func:`runner.log.secret_variants`
produces (plain, reversed, base64, hex, URL-encoded).

Only *added* lines of the staged change are scanned (plus the whole trace
file), so a repository that already holds a test fixture does not block every
task. A line saying ``pragma: allowlist secret`` is not exempt: the text is
written by whoever filed the issue or by a model, not by a reviewer.

A :class:`Finding` names the file, the line and the rule, never the value.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from detect_secrets.core.scan import _process_line_based_plugins
from detect_secrets.settings import get_settings, transient_settings

from runner.errors import SecretsFound
from runner.log import secret_variants

#: Regexes never see more than this much of a line at once; longer lines are cut with an overlap.
CHUNK_CHARS = 4096
_OVERLAP = 256
LOCK_FILES = frozenset({
    "package-lock.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock", "Pipfile.lock", "Cargo.lock",
    "go.sum", "composer.lock", "Gemfile.lock", "uv.lock", "npm-shrinkwrap.json", "flake.lock",
})
_ENTROPY_RULES = frozenset({"Base64 High Entropy String", "Hex High Entropy String"})

_PLUGINS: list[dict[str, Any]] = [
    {"name": name} for name in (
        "AWSKeyDetector", "ArtifactoryDetector", "AzureStorageKeyDetector", "BasicAuthDetector",
        "DiscordBotTokenDetector", "GitHubTokenDetector", "GitLabTokenDetector", "MailchimpDetector",
        "NpmDetector", "OpenAIDetector", "PrivateKeyDetector", "PypiTokenDetector", "SendGridDetector",
        "SlackDetector", "SquareOAuthDetector", "StripeDetector", "TelegramBotTokenDetector",
        "TwilioKeyDetector",
    )
] + [{"name": "Base64HighEntropyString", "limit": 4.5}, {"name": "HexHighEntropyString", "limit": 3.0}]
# Filters that would let the text being scanned exempt itself.
_SELF_EXEMPTING_FILTERS = ("detect_secrets.filters.allowlist.is_line_allowlisted",)

_OWN_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Anthropic API Key", re.compile(r"sk-ant-[A-Za-z0-9]{2,12}-[A-Za-z0-9_-]{20,}")),
    ("OpenAI Project Key", re.compile(r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}")),
    ("Google API Key", re.compile(r"AIza[0-9A-Za-z_-]{35}")),  # Gemini API keys are Google API keys
    ("GitHub Fine-grained Token", re.compile(r"github_pat_[A-Za-z0-9_]{22,}")),
    ("GitHub Token", re.compile(r"gh[pousr]_[A-Za-z0-9]{36,}")),
)
# detect-secrets keeps its settings in a process-wide object; one scan at a time.
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Finding:
    """A flagged line: where and which rule, never the value."""

    path: str
    line: int
    rule: str

    def describe(self) -> str:
        return f"`{self.path}` line {self.line} ({self.rule})"


@dataclass(frozen=True)
class _Hit:
    finding: Finding
    value: str


def scan_lines(path: str, lines: Iterable[tuple[int, str]], own: Sequence[str] = ()) -> list[Finding]:
    """Scan ``(line number, text)`` pairs of one file; ``own`` are the runner's secrets."""
    return _unique(hit.finding for hit in _hits([(path, list(lines))], own))


def scan_diff(diff: str, own: Sequence[str] = ()) -> list[Finding]:
    """Scan the added lines of a unified diff (``git diff -U0``), file by file."""
    return _unique(hit.finding for hit in _hits(added_lines(diff), own))


def mask(text: str, own: Sequence[str] = (), path: str = "instruction") -> str:
    """Replace every flagged value in ``text`` with ``[secret removed: rule]`` (for the trace file)."""
    lines = text.split("\n")
    hits = _hits([(path, list(enumerate(lines, start=1)))], own)
    for hit in sorted(hits, key=lambda h: len(h.value), reverse=True):
        index = hit.finding.line - 1
        lines[index] = lines[index].replace(hit.value, f"[secret removed: {hit.finding.rule}]")
    return "\n".join(lines)


def check(findings: Sequence[Finding]) -> None:
    """Refuse the push when anything was flagged, naming each place (never the value)."""
    if not findings:
        return
    shown = "; ".join(f.describe() for f in findings[:20])
    more = f"; and {len(findings) - 20} more" if len(findings) > 20 else ""
    raise SecretsFound(
        f"Nothing was pushed: the secret scan flagged {len(findings)} line(s) that look like "
        f"credentials: {shown}{more}. The values are not shown here."
    )


def added_lines(diff: str) -> Iterator[tuple[str, list[tuple[int, str]]]]:
    """Yield ``(path, [(line number, text)])`` for the added lines of each file in a diff."""
    path: str | None = None
    lines: list[tuple[int, str]] = []
    number = 0
    for raw in diff.split("\n"):
        if raw.startswith("+++ "):
            if path is not None and lines:
                yield path, lines
            target = raw[4:]
            path = None if target == "/dev/null" else _unquote(target).removeprefix("b/")
            lines = []
        elif raw.startswith("@@ "):
            number = _hunk_start(raw)
        elif raw.startswith("+") and path is not None:
            lines.append((number, raw[1:]))
            number += 1
        elif raw.startswith(" "):
            number += 1
    if path is not None and lines:
        yield path, lines


def _hits(files: Iterable[tuple[str, list[tuple[int, str]]]], own: Sequence[str]) -> list[_Hit]:
    """Every flagged value in ``(path, [(line number, text)])`` files, under one detect-secrets set-up."""
    hits: list[_Hit] = []
    variants = [(v, encoding) for secret in own for v, encoding in secret_variants(secret)]
    with _LOCK, transient_settings({"plugins_used": _PLUGINS}):  # setting it up costs more than a small scan
        get_settings().disable_filters(*_SELF_EXEMPTING_FILTERS)
        for path, lines in files:
            chunks = [(number, chunk) for number, text in lines for chunk in _chunks(text)]
            for number, chunk in chunks:
                for value, encoding in variants:
                    if value in chunk:
                        hits.append(_Hit(Finding(path, number, f"runner credential, {encoding}"), value))
                for rule, pattern in _OWN_RULES:
                    hits += [_Hit(Finding(path, number, rule), m.group(0)) for m in pattern.finditer(chunk)]
            lock_file = path.rsplit("/", 1)[-1] in LOCK_FILES
            for secret in _process_line_based_plugins(chunks, filename=path):
                if lock_file and secret.type in _ENTROPY_RULES:
                    continue  # integrity hashes, not credentials
                hits.append(_Hit(Finding(path, secret.line_number, secret.type), secret.secret_value or ""))
    return [h for h in hits if h.value]


def _chunks(text: str) -> list[str]:
    if len(text) <= CHUNK_CHARS:
        return [text]
    step = CHUNK_CHARS - _OVERLAP
    return [text[i:i + CHUNK_CHARS] for i in range(0, len(text), step)]


def _unique(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(set(findings), key=lambda f: (f.path, f.line, f.rule))


def _hunk_start(header: str) -> int:
    # "@@ -a,b +c,d @@": added lines are numbered from c.
    plus = header.split(" ", 3)[2] if header.count(" ") >= 2 else "+1"
    try:
        return int(plus.lstrip("+").split(",")[0])
    except ValueError:
        return 1


def _unquote(path: str) -> str:
    """Git quotes unusual paths as C strings; the raw name is good enough to point at a file."""
    path = path.rstrip("\t")
    if path.startswith('"') and path.endswith('"'):
        return path[1:-1]
    return path
