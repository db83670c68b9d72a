"""Turn what people say on a task's issue and PR into feedback rounds, purely.

A feedback round is a second entry into the same pipeline: the runner checks out
the task branch again, runs the generator chain with :class:`RoundContext` in the
:class:`~runner.generators.base.GenerationContext`, and pushes one more commit to
the same PR. This module holds everything about it that needs no network, git or
clock:

- **triggers** (:func:`trigger_text`): a comment whose first visible line starts
  with ``FEEDBACK_COMMAND`` (default ``/agent``), on the dispatch issue or on the
  task's PR; a review with state ``changes_requested``; a review comment that
  mentions the bot. Only *visible* text counts: HTML comments are removed first,
  and a command inside a code fence is not at the start of the comment.
- **limits** (:func:`refusal`): the round limit, the task's token and cost budget
  over every run and round, and the size of the feedback.
- **rendering**: the rounds section of the PR body and of the result comment,
  the commit trailer that makes a round's push findable after a crash, and the
  feedback text handed to generators (prompt or file).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from runner.core.render import is_result_comment
from runner.forge.base import FeedbackItem

RoundOutcome = Literal["pushed", "unchanged", "failed", "refused"]

ROUNDS_START = "<!-- agent-runner:rounds -->"
ROUNDS_END = "<!-- /agent-runner:rounds -->"
_RECORDS_RE = re.compile(r"<!-- agent-runner:rounds-data ([A-Za-z0-9+/=]{1,200000}) -->")
TRAILER = "Feedback-Item"
#: Feedback longer than this is refused rather than cut (a cut diff would not apply).
MAX_FEEDBACK_CHARS = 60_000
MAX_DIFF_CHARS = 20_000
FEEDBACK_FILE = ".agent-feedback.md"

_COMMENT_RE = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_FENCE_RE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_KIND_LABEL = {"issue_comment": "comment on the issue", "pr_comment": "comment on the PR",
               "review": "review", "review_comment": "review comment", "ci": "failing checks"}


@dataclass(frozen=True)
class RoundRecord:
    """What one round did, kept in the ledger and shown in the PR body and result comment."""

    number: int
    item_key: str
    kind: str
    author: str
    outcome: RoundOutcome
    html_url: str = ""
    summary: str = ""
    sha: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    ci: str = ""  # kind "ci": "round" (ran), "stopped" (gave up), "base-red" (said once, no round)
    fingerprint: str = ""  # kind "ci": the failure's fingerprint ("base-red": the check names)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RoundRecord:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass(frozen=True)
class RoundContext:
    """What a generator gets in a feedback round (``GenerationContext.round``)."""

    number: int
    items: tuple[FeedbackItem, ...]
    text: str  # everything below, ready for a prompt or a file
    diff: str  # the branch's current diff against the base (maybe cut)
    feedback: str  # only what the people wrote (the patch generator applies its diff blocks)
    #: A CI round's full check logs, (file name, text): written outside the repository for agent CLIs.
    logs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Spent:
    """The task's usage over its first run and every round so far."""

    tokens: int = 0
    cost_usd: float = 0.0
    rounds: int = 0  # every round that ran (numbering)
    ci_rounds: int = 0  # of them CI rounds (MAX_FEEDBACK_ROUNDS counts the others)


@dataclass(frozen=True)
class Limits:
    max_rounds: int
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_chars: int = MAX_FEEDBACK_CHARS


# -- triggers ------------------------------------------------------------------


def visible_text(body: str) -> str:
    """The text GitHub shows: HTML comments (even an unterminated one) removed."""
    return _COMMENT_RE.sub("", body or "")


def command_text(body: str, command: str) -> str | None:
    """The feedback after ``command`` when the comment's first visible line starts with it.

    ``/agent`` must be followed by a space, a newline or the end, so ``/agents`` is
    not a command. A command inside a code fence or an HTML comment does not count."""
    text = visible_text(body).lstrip()
    if not command or not text.startswith(command):
        return None
    rest = text[len(command):]
    if rest and not rest[0].isspace():
        return None
    return rest.strip()


def mentions(body: str, login: str) -> bool:
    """Whether the visible text outside code fences mentions ``@login`` as a whole word."""
    if not login:
        return False
    name = re.escape(login.removesuffix("[bot]"))
    pattern = re.compile(rf"(?<![\w@/-])@{name}(?:\[bot\])?(?![\w-])", re.IGNORECASE)
    return any(pattern.search(line) for line in _outside_fences(visible_text(body)))


def is_own(item: FeedbackItem, posted: frozenset[str] = frozenset()) -> bool:
    """Whether the runner wrote this item: its hidden result marker, or a key it recorded when posting.

    Never the author: with a personal access token the token's owner is a person,
    and their own ``/agent`` is feedback like anyone else's."""
    return item.key in posted or is_result_comment(item.body)


def own_comment_key(repo: str, comment_id: int) -> str:
    """The feedback key of a comment the runner posted on an issue (see :attr:`FeedbackItem.key`)."""
    return f"{repo.lower()}:issue_comment:{comment_id}"


def trigger_text(item: FeedbackItem, *, command: str, bot_login: str | None) -> str | None:
    """The feedback this item carries when it asks for a round, else None."""
    explicit = command_text(item.body, command)
    if item.kind in ("issue_comment", "pr_comment"):
        return explicit
    if explicit is not None:
        return explicit
    if item.kind == "review":
        if (item.state or "").lower() == "changes_requested":
            return visible_text(item.body).strip()
        return None
    if bot_login and mentions(item.body, bot_login):
        return visible_text(item.body).strip()
    return None


def refusal(item: FeedbackItem, text: str, spent: Spent, limits: Limits) -> str | None:
    """Why this round must not run (said on the issue instead), or None."""
    if spent.rounds - spent.ci_rounds >= limits.max_rounds:
        return (f"This task has had {spent.rounds - spent.ci_rounds} feedback round(s), the limit (`MAX_FEEDBACK_ROUNDS`"
                f"={limits.max_rounds}). Open a new dispatch issue for further changes.")
    if limits.max_tokens is not None and spent.tokens >= limits.max_tokens:
        return (f"This task has used {spent.tokens} tokens over all its rounds, the budget "
                f"(`MAX_TOKENS_PER_TASK`={limits.max_tokens}). Open a new dispatch issue to go on.")
    if limits.max_cost_usd is not None and spent.cost_usd >= limits.max_cost_usd:
        return (f"This task has cost ${spent.cost_usd:.4f} over all its rounds, the budget "
                f"(`MAX_COST_USD_PER_TASK`={limits.max_cost_usd}). Open a new dispatch issue to go on.")
    if len(text) > limits.max_chars:
        return (f"The feedback in {item.html_url or item.key} is {len(text)} characters long; the limit is "
                f"{limits.max_chars}. Split it into smaller requests.")
    return None


# -- rendering -----------------------------------------------------------------


def round_context(number: int, items: Sequence[FeedbackItem], texts: Sequence[str], instruction: str,
                  diff: str, logs: Sequence[tuple[str, str]] = ()) -> RoundContext:
    """Build the generator's view of a round: the text is the same for a prompt and for a file."""
    cut = diff if len(diff) <= MAX_DIFF_CHARS else diff[:MAX_DIFF_CHARS] + "\n… (diff cut)\n"
    parts = [f"# Feedback round {number}", "", "## Original instruction", "", instruction.strip(), "",
             "## Feedback", ""]
    for item, text in zip(items, texts, strict=True):
        where = _KIND_LABEL[item.kind]
        by = f" by @{item.author}" if item.author else ""
        parts.append(f"### {where}{by}" + (f" ({item.html_url})" if item.html_url else ""))
        if item.state:
            parts.append(f"Review state: {item.state}")
        if item.path:
            parts.append(f"File: `{item.path}`" + (f", line {item.line}" if item.line else ""))
        if item.diff_hunk:
            parts += ["", "```diff", item.diff_hunk.replace("```", "ʼʼʼ"), "```"]
        parts += ["", text, ""]
    parts += ["## Current change (diff against the base branch)", "", "```diff", cut.replace("```", "ʼʼʼ"),
              "```", ""]
    return RoundContext(number=number, items=tuple(items), text="\n".join(parts), diff=cut,
                        feedback="\n\n".join(texts), logs=tuple(logs))


def trailer(item_key: str) -> str:
    """The commit-message line that proves a round's commit was pushed (found again after a crash)."""
    return f"{TRAILER}: {item_key}"


def commit_message(base_message: str, number: int, item: FeedbackItem) -> str:
    subject, _, rest = base_message.partition("\n")
    if item.kind == "ci":
        return (f"{subject[:60]} (CI round {number})\n\nFixes the failing checks of {(item.sha or '')[:12]}: "
                f"{item.html_url or item.key}\n{rest.strip()}\n{trailer(item.key)}\n")
    return (f"{subject[:60]} (feedback round {number})\n\nFeedback from @{item.author}: "
            f"{item.html_url or item.key}\n{rest.strip()}\n{trailer(item.key)}\n")


def round_line(record: RoundRecord) -> str:
    """One line per round, the same in the PR body and in the result comment."""
    what = _KIND_LABEL.get(record.kind, record.kind)
    source = f"[{what}]({record.html_url})" if record.html_url.startswith("http") else what
    head = f"Round {record.number}: {source}" + (f" by @{record.author}: " if record.author else ": ")
    outcome = {"pushed": f"pushed `{(record.sha or '')[:7]}`", "unchanged": "no new change",
               "failed": "failed", "refused": "not run"}[record.outcome]
    usage = ""
    if record.input_tokens or record.output_tokens:
        usage = f" ({record.input_tokens} in / {record.output_tokens} out tokens"
        usage += f", ${record.cost_usd:.4f})" if record.cost_usd is not None else ")"
    summary = f" — {_plain(_one_line(record.summary))}" if record.summary else ""
    return head + outcome + usage + summary


def render_rounds(records: Sequence[RoundRecord]) -> str:
    """The ``## Feedback rounds`` section, between markers so a later round replaces it."""
    if not records:
        return ""
    lines = [ROUNDS_START, "## Feedback rounds", "", *[f"- {round_line(r)}" for r in records],
             _records_marker(records), ROUNDS_END]
    return "\n".join(lines)


def recorded(body: str | None) -> list[RoundRecord]:
    """The rounds a PR body's rounds section records (its hidden data line); [] when it has none.

    Under Temporal this is the durable record of handled items across workflow
    runs; the ledger executors keep theirs in the ledger. The data is base64 JSON,
    so no text a person wrote can close the HTML comment it sits in."""
    found = _RECORDS_RE.search(body or "")
    if found is None:
        return []
    try:
        data = json.loads(base64.b64decode(found.group(1), validate=True))
        return [RoundRecord.from_json(r) for r in data if isinstance(r, dict)]
    except (ValueError, TypeError, KeyError):
        return []


def _records_marker(records: Sequence[RoundRecord]) -> str:
    data = json.dumps([r.to_json() for r in records], separators=(",", ":"))
    return f"<!-- agent-runner:rounds-data {base64.b64encode(data.encode()).decode()} -->"


def with_rounds(body: str, records: Sequence[RoundRecord]) -> str:
    """The PR body with its rounds section replaced (or added before the ``Fixes`` line)."""
    section = render_rounds(records)
    start, end = body.find(ROUNDS_START), body.find(ROUNDS_END)
    if start != -1 and end > start:
        return body[:start] + section + body[end + len(ROUNDS_END):]
    marker = body.rfind("\nGenerated by `")
    if marker == -1:
        marker = body.rfind("\nFixes ")
    if marker == -1:
        return body.rstrip("\n") + "\n\n" + section + "\n"
    return body[:marker].rstrip("\n") + "\n\n" + section + "\n" + body[marker:]


def spent_from(first_run_usage: Mapping[str, Any], records: Sequence[RoundRecord]) -> Spent:
    tokens = int(first_run_usage.get("input_tokens", 0)) + int(first_run_usage.get("output_tokens", 0))
    cost = float(first_run_usage.get("cost_usd") or 0.0)
    ran = [r for r in records if r.outcome != "refused"]
    for r in records:
        tokens += r.input_tokens + r.output_tokens
        cost += r.cost_usd or 0.0
    return Spent(tokens=tokens, cost_usd=cost, rounds=len(ran), ci_rounds=sum(r.kind == "ci" for r in ran))


def pull_ref(pr_url: str) -> tuple[str, int] | None:
    """``owner/repo`` and number from a PR's web URL (``.../owner/repo/pull/7``)."""
    parts = pr_url.split("#")[0].rstrip("/").split("/")
    if len(parts) < 4 or parts[-2] != "pull" or not parts[-1].isdigit():
        return None
    return f"{parts[-4]}/{parts[-3]}", int(parts[-1])


def _outside_fences(text: str) -> list[str]:
    lines, fence = [], None
    for line in text.split("\n"):
        match = _FENCE_RE.match(line)
        if fence is None and match:
            fence = match.group(1)[0] * 3
            continue
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            continue
        lines.append(line)
    return lines


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _plain(text: str) -> str:
    return text.replace("<!--", "&lt;!--").replace("-->", "--&gt;")

