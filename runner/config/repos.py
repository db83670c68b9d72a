"""Name repositories one way: settings and task bodies both accept `owner/name` or a URL.

DISPATCH_REPO(S) validate with it here, and the core's task parser
(`runner.core.task`, a layer above) uses the same rule.
"""

from __future__ import annotations

import re

from runner.errors import TaskSpecError

_OWNER_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_REPO_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_GITHUB_URL_RE = re.compile(r"^(?:https?://[^/\s]+/|git@[^:\s]+:)(?P<path>[^\s]+?)(?:\.git)?/?$")


def normalize_repo(value: str) -> str:
    """Accept `owner/name`, a GitHub URL or an SSH remote; return `owner/name` or raise."""
    text = value.strip().strip("`'\"<>").strip()
    url = _GITHUB_URL_RE.match(text)
    if url:
        text = url.group("path")
    text = text.removesuffix(".git").strip("/")
    parts = text.split("/")
    if len(parts) != 2:
        raise TaskSpecError(
            f"`{shorten(value)}` is not a repository. Write it as `owner/name`, "
            "for example `Target Repository: octo-org/website`."
        )
    owner, name = parts
    if not _OWNER_RE.match(owner) or not _REPO_NAME_RE.match(name) or name in {".", ".."}:
        raise TaskSpecError(
            f"`{shorten(value)}` is not a valid GitHub repository name. Use letters, "
            "digits, `-`, `_` and `.` only, as `owner/name`."
        )
    return f"{owner}/{name}"


def shorten(text: str, limit: int = 80) -> str:
    """Quote user text in an error message: one line, no backticks, at most ``limit`` characters."""
    text = text.replace("`", "'").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
