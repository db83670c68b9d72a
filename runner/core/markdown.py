"""Split a Markdown body into what a reader sees and what is hidden from them, in one linear pass.

Only text a person can see on the rendered issue may steer a task, so the
parser needs to know which parts are visible. This module answers that for
the few constructs that hide text on GitHub:

- HTML comments (``<!-- ... -->``), on one line or many; an unterminated
  comment hides the rest of the body (when in doubt, text counts as hidden);
- link reference definitions (``[//]: # (note)``), which render as nothing;
- invisible Unicode: zero-width characters, tag characters, bidi controls,
  variation selectors and other format or control characters.

Code fences (````` ``` ````` or ``~~~``) are visible, and inside them nothing is
a comment: a patch that adds ``<!-- -->`` to an HTML file keeps it.

Everything here is pure and runs in time linear in the input: no regex sees
more than a short, capped prefix of a line, and no pattern can backtrack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Matchers never see more of a line than this, so no input can make them slow.
MATCH_CHARS = 512

_INVISIBLE_RANGES = (
    (0x0000, 0x0008), (0x000B, 0x000C), (0x000E, 0x001F), (0x007F, 0x009F),  # controls but \t \n \r
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # Arabic letter mark (bidi)
    (0x115F, 0x1160), (0x3164, 0x3164), (0xFFA0, 0xFFA0),  # Hangul fillers, rendered blank
    (0x17B4, 0x17B5), (0x180B, 0x180F),  # Khmer vowels, Mongolian selectors and vowel separator
    (0x200B, 0x200F),  # zero-width space, non-joiner, joiner, LRM, RLM
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, bidi isolates, deprecated formats
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFEFF, 0xFEFF),  # zero-width no-break space (BOM)
    (0xFFF9, 0xFFFB),  # interlinear annotations
    (0x1D173, 0x1D17A),  # musical formatting
    (0xE0000, 0xE007F),  # tag characters ("ASCII smuggling")
    (0xE0100, 0xE01EF),  # variation selectors supplement
    # The rest of Unicode's format characters (category Cf), so none renders as nothing unseen.
    (0x0600, 0x0605), (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2),
    (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3),
)
_INVISIBLE = dict.fromkeys(c for lo, hi in _INVISIBLE_RANGES for c in range(lo, hi + 1))
# Tabs, newlines and carriage returns are kept; they are layout, not hiding.
for _keep in (0x09, 0x0A, 0x0D):
    _INVISIBLE.pop(_keep, None)

_LINK_DEFINITION_RE = re.compile(r" {0,3}\[[^\]\n]{1,999}\]:")


@dataclass(frozen=True)
class Line:
    """One visible line (comments removed); ``code`` when it is inside a fence or is the fence."""

    text: str
    code: bool = False


@dataclass(frozen=True)
class Scanned:
    """The visible lines of a body and the HTML comments found outside code fences."""

    lines: tuple[Line, ...]
    comments: tuple[str, ...]
    unterminated_comment: bool = False


def strip_invisible(text: str) -> str:
    """Remove characters that render as nothing (zero-width, tags, bidi, controls); keep the rest."""
    return text.translate(_INVISIBLE)


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def fence_opening(line: str) -> tuple[str, int] | None:
    """``(char, length)`` when ``line`` opens a code fence (at most 3 spaces of indent)."""
    head = line[:MATCH_CHARS]
    stripped = head.lstrip(" ")
    if len(head) - len(stripped) > 3 or stripped[:1] not in ("`", "~"):
        return None
    char = stripped[0]
    run = len(stripped) - len(stripped.lstrip(char))
    if run < 3:
        return None
    if char == "`" and "`" in stripped[run:]:
        return None  # CommonMark: a backtick fence's info string has no backticks
    return char, run


def closes_fence(line: str, fence: tuple[str, int]) -> bool:
    head = line[:MATCH_CHARS]
    stripped = head.lstrip(" ")
    if len(head) - len(stripped) > 3:
        return False
    char, length = fence
    run = len(stripped) - len(stripped.lstrip(char))
    return run >= length and not stripped[run:].strip()


def scan(text: str) -> Scanned:
    """Walk the body once, separating visible lines from comments; fences are kept whole."""
    lines: list[Line] = []
    comments: list[str] = []
    fence: tuple[str, int] | None = None
    open_comment: list[str] | None = None
    for raw in normalize_newlines(text).split("\n"):
        if open_comment is not None:
            end = raw.find("-->")
            if end < 0:
                open_comment.append(raw)
                continue
            open_comment.append(raw[:end])
            comments.append("\n".join(open_comment))
            open_comment = None
            rest = raw[end + 3:]
            visible, open_comment = _strip_inline_comments(rest, comments)
            if visible.strip():
                lines.append(Line(visible))
            continue
        if fence is not None:
            if closes_fence(raw, fence):
                fence = None
            lines.append(Line(raw, code=True))
            continue
        opening = fence_opening(raw)
        if opening is not None:
            fence = opening
            lines.append(Line(raw, code=True))
            continue
        if _LINK_DEFINITION_RE.match(raw[:MATCH_CHARS]):
            continue  # renders as nothing
        visible, open_comment = _strip_inline_comments(raw, comments)
        if open_comment is None or visible.strip():
            lines.append(Line(visible))
    if open_comment is not None:
        comments.append("\n".join(open_comment))
    return Scanned(tuple(lines), tuple(comments), unterminated_comment=open_comment is not None)


def _strip_inline_comments(line: str, comments: list[str]) -> tuple[str, list[str] | None]:
    """Remove complete comments from one line; return the text left and an open comment, if any."""
    parts: list[str] = []
    pos = 0
    while True:
        start = line.find("<!--", pos)
        if start < 0:
            parts.append(line[pos:])
            return "".join(parts), None
        parts.append(line[pos:start])
        end = line.find("-->", start + 4)
        if end < 0:
            return "".join(parts), [line[start + 4:]]
        comments.append(line[start + 4:end])
        pos = end + 3


def visible_text(text: str) -> str:
    """The body as a reader sees it: invisible characters, comments and link definitions removed."""
    return "\n".join(line.text for line in scan(strip_invisible(text)).lines)
