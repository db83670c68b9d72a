"""Render what people read: the result comment, the PR title and body, the commit message.

Pure functions over plain values. The hidden markers let the runner find its own
comment again and edit it instead of posting a second one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from runner.core.task import DispatchTask, render_metadata

RESULT_MARKER = "<!-- agent-runner:result -->"
STAGES: tuple[str, ...] = ("claimed", "cloned", "generated", "validated", "pushed", "pr opened")
MAX_LIST = 20

ResultStatus = Literal["running", "succeeded", "failed", "retrying", "refused"]


@dataclass(frozen=True)
class ResultView:
    """Everything the result comment shows; built by the pipeline, rendered here."""

    status: ResultStatus
    task_id: str
    agent_name: str
    attempt: int = 1
    stages_done: tuple[str, ...] = ()
    progress: str | None = None
    pr_url: str | None = None
    pr_number: int | None = None
    branch: str | None = None
    files: tuple[str, ...] = ()
    summary: str | None = None
    error: str | None = None
    hint: str | None = None
    notes: tuple[str, ...] = ()
    summary_by: str | None = None  # who wrote the summary when it is not the runner's own sentence
    no_change: str | None = None  # why the generator changed nothing, in its own words
    generator: str | None = None
    fell_back: tuple[str, ...] = ()  # generators that failed before `generator` ran
    rounds: tuple[str, ...] = ()  # one line per feedback round (runner.core.feedback.round_line)


@dataclass(frozen=True)
class PullView:
    """Everything the PR body shows."""

    task: DispatchTask
    summary: str
    files: tuple[str, ...]
    generator: str
    usage_line: str | None = None
    validation_md: str | None = None
    transcript_excerpt: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    summary_by: str | None = None


def is_result_comment(body: str) -> bool:
    return body.lstrip().startswith(RESULT_MARKER)


def render_result(view: ResultView) -> str:
    """The single result comment, edited in place as the task moves along."""
    lines = [RESULT_MARKER]
    task = f"`{_code(view.task_id)}`"
    if view.status == "running":
        lines.append(f"⏳ **{view.agent_name}** is working on task {task} (attempt {view.attempt}).")
        lines.append("")
        lines += [f"- [{'x' if s in view.stages_done else ' '}] {s}" for s in STAGES]
        if view.progress:
            lines += ["", f"_{_plain(view.progress)}_"]
    elif view.status == "succeeded":
        lines.append(_success_line(view, task))
        lines.append("")
        if view.pr_url:
            lines.append(f"Pull request: {view.pr_url}")
        if view.branch:
            lines.append(f"Branch: `{view.branch}`")
        if view.no_change:
            lines += ["", f"No code change was made: {_plain(view.no_change)}"]
        elif view.summary:
            lines += ["", *_summary_lines(view.summary, view.summary_by)]
        if view.files:
            lines += ["", "Files changed:", *_bullets(view.files)]
        if view.rounds:
            lines += ["", "Feedback rounds:", *[f"- {r}" for r in view.rounds]]
    elif view.status == "retrying":
        lines.append(f"🔁 **{view.agent_name}** hit a temporary problem on task {task} "
                     f"(attempt {view.attempt}) and will try again.")
        lines += ["", f"> {_plain(view.error or 'unknown error')}"]
    else:
        verb = "refused" if view.status == "refused" else "could not complete"
        lines.append(f"❌ **{view.agent_name}** {verb} task {task}.")
        lines += ["", f"**What went wrong:** {_plain(view.error or 'unknown error')}"]
        if view.hint:
            lines += ["", f"**How to retry:** {_plain(view.hint)}"]
        if view.pr_url:
            lines += ["", f"Pull request: {view.pr_url}"]
    if view.notes:
        lines += ["", *[f"> {_plain(n)}" for n in view.notes]]
    return "\n".join(lines) + "\n"


def pull_title(task: DispatchTask, issue_title: str) -> str:
    title = " ".join(issue_title.split()) or task.instruction.splitlines()[0]
    title = title[:200]
    return f"[agent] {title}"


def render_pull_body(view: PullView) -> str:
    """The PR body: metadata (so the branch's owner can be found again), summary, Fixes line."""
    task = view.task
    parts = [
        render_metadata(task.metadata),
        "",
        "## What changed",
        "",
        *(_summary_lines(view.summary, view.summary_by) if view.summary.strip() else ["No summary."]),
    ]
    if view.files:
        parts += ["", "Files:", *_bullets(view.files)]
    if view.validation_md:
        parts += ["", "## Validation", "", view.validation_md]
    if view.notes:
        parts += ["", "## Notes", "", *[f"- {_plain(n)}" for n in view.notes]]
    if view.usage_line:
        parts += ["", f"_{_plain(view.usage_line)}_"]
    if view.transcript_excerpt:
        parts += ["", "<details><summary>Transcript excerpt</summary>", "", "```text",
                  view.transcript_excerpt.replace("```", "ʼʼʼ"), "```", "", "</details>"]
    parts += [
        "",
        f"Generated by `{view.generator}` for task `{_code(task.task_id)}`.",
        "",
        f"Fixes {task.dispatch_repo}#{task.issue_number}",
    ]
    return "\n".join(parts) + "\n"


def commit_message(task: DispatchTask, summary: str) -> str:
    first = task.instruction.strip().splitlines()[0] if task.instruction.strip() else task.task_id
    subject = " ".join(first.split())[:60]
    return (
        f"agent: {subject}\n\n{summary.strip()[:2000]}\n\n"
        f"Task: {task.task_id}\nDispatch: {task.dispatch_repo}#{task.issue_number}\n"
    )


def _success_line(view: ResultView, task: str) -> str:
    """Say plainly whether the task was done, done with no change needed, or only recorded after failures."""
    failed = ", ".join(f"`{_code(name)}`" for name in view.fell_back)
    if view.no_change is None and view.fell_back:  # a fallback made the change: say which, and that the first did not
        return (f"✅ **{view.agent_name}** finished task {task} with `{_code(view.generator or '?')}`, "
                f"after {failed} failed (why is below).")
    if view.no_change is None:
        return f"✅ **{view.agent_name}** finished task {task}."
    if view.fell_back:
        return (f"⚠️ **{view.agent_name}** did not make the change for task {task}: {failed} failed, "
                f"and `{_code(view.generator or '?')}` ran instead.")
    return f"✅ **{view.agent_name}** finished task {task} with no code change."


def _summary_lines(summary: str, summary_by: str | None) -> list[str]:
    """The summary; a model's own words are quoted as its claim, not stated as the runner's."""
    if summary_by is None:
        return [_plain(summary)]
    quoted = [f"> {line}" if line.strip() else ">" for line in _plain(summary).strip().splitlines()]
    return [f"{_plain(summary_by)} described its change as follows (its own words, not checked by the runner):",
            "", *quoted]


def _bullets(items: Sequence[str]) -> list[str]:
    shown = [f"- `{_code(i)}`" for i in items[:MAX_LIST]]
    if len(items) > MAX_LIST:
        shown.append(f"- … and {len(items) - MAX_LIST} more")
    return shown


def _code(text: str) -> str:
    return text.replace("`", "'")


def _plain(text: str) -> str:
    """Neutralise HTML comments so user text cannot forge our markers or hide text.

    Inside a closed code fence or a code span GitHub shows ``<!--`` as it is
    and does not decode entities, so there the text is left alone (except our
    own markers): an example such as the metadata comment stays copyable.
    """
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        fence = _FENCE_RE.match(lines[i])
        end = _fence_end(lines, i, fence.group(1)) if fence else None
        if end is not None:
            out += [_escape_markers(line) for line in lines[i:end + 1]]
            i = end + 1
            continue
        out.append(_CODE_SPAN_RE.sub(lambda m: _escape_markers(m.group(0)) if m.group(1) else _escape_comments(m.group(0)),
                                     lines[i]))
        i += 1
    return "\n".join(out)


_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# A code span (group 1), or a run of anything else up to the next backtick.
_CODE_SPAN_RE = re.compile(r"(`+)[^`](?:.*?[^`])?\1(?!`)|[^`]+|`+")


def _fence_end(lines: list[str], start: int, opener: str) -> int | None:
    """The index of the line closing the fence opened at ``start``, or None if it never closes."""
    closer = re.compile(rf"^ {{0,3}}{re.escape(opener[0])}{{{len(opener)},}}\s*$")
    for j in range(start + 1, len(lines)):
        if closer.match(lines[j]):
            return j
    return None


def _escape_markers(code: str) -> str:
    """In code, only our own markers are neutralised: nobody needs to copy those."""
    return _escape_comments(code) if "agent-runner:" in code else code


def _escape_comments(text: str) -> str:
    return text.replace("<!--", "&lt;!--").replace("-->", "--&gt;")
