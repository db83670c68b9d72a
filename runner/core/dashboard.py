"""Render the dashboard issue from the status document, and read its ticked boxes, purely.

The dashboard (DASHBOARD_ISSUE=true) is one issue in the dispatch repository,
kept up to date Renovate-style: running, failed and recent tasks, and a
checkbox on each failed task that a person with write access ticks to retry
it. The runner finds its own issue by :data:`MARKER`, so a restart edits the
same one. Issue-derived text is neutralised here (no HTML, no mention, no
link markup), and nothing secret is in the document to begin with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MARKER = "<!-- agent-runner:dashboard -->"
TITLE = "agent-runner dashboard"
#: Finished tasks listed under "Recent".
RECENT_SHOWN = 10
_TICK = re.compile(r"^\s*[-*] \[[xX]\] <!-- agent-runner:retry:(\d+) -->", re.MULTILINE)
_WIDTH = 120


def render_dashboard(doc: Mapping[str, Any], *, status_url: str | None = None) -> str:
    """The issue body: what runs, what failed (with a retry box each), what finished lately."""
    repo = doc["runner"]["dispatch_repo"]
    lines = [MARKER, "", f"What the runner is doing for `{repo}`. Tick a box under **Failed** to retry that "
             "task (people with write access only); the runner acts on it at its next poll.", ""]
    if status_url:
        lines += [f"Live view: {status_url}", ""]
    lines += ["## Running", ""]
    lines += [f"- #{r['issue']} {_inline(r.get('title'))} — {_inline(r['step'])}" for r in doc["running"]] or ["None."]
    failed = [r for r in doc["recent"] if r["outcome"] == "failed"]
    lines += ["", "## Failed", ""]
    lines += [f"- [ ] <!-- agent-runner:retry:{int(r['issue'])} --> #{r['issue']} {_inline(r.get('title'))}: "
              f"{_inline(r.get('reason'))}" for r in failed] or ["None."]
    lines += ["", "## Recent", ""]
    lines += [f"- #{r['issue']} {r['outcome']}" + (f" {r['pr_url']}" if r.get("pr_url") else "")
              for r in doc["recent"][:RECENT_SHOWN]] or ["None."]
    queued = len(doc["queued"])
    lines += ["", f"{queued} task(s) waiting. This issue is edited at most once every few minutes, and only "
              "from write budget no task needs."]
    return "\n".join(lines) + "\n"


def ticked(body: str) -> set[int]:
    """The issues whose retry box is ticked in ``body``."""
    return {int(number) for number in _TICK.findall(body or "")}


def _inline(text: str | None) -> str:
    """One line of untrusted text that renders as itself: no HTML, no mention, no link, no emphasis."""
    if not text:
        return "-"
    line = " ".join(str(text).split())
    line = line if len(line) <= _WIDTH else line[: _WIDTH - 1] + "…"
    line = line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    line = re.sub(r"([\\`*_\[\]()|~!])", r"\\\1", line)
    return line.replace("@", "@\u200b")  # no notification for anyone named in an issue title
