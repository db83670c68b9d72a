"""What counts as visible text: comments, fences, link definitions and invisible characters."""

from __future__ import annotations

import unicodedata

from runner.core.markdown import scan, strip_invisible, visible_text


def test_every_unicode_format_character_is_invisible_and_removed() -> None:
    format_chars = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf"]
    assert strip_invisible("".join(format_chars)) == ""
    assert strip_invisible("a\tb\nc\r\x00\x1b[0m\x85") == "a\tb\nc\r[0m"


def test_comments_are_hidden_but_not_inside_fences() -> None:
    text = "a <!-- x --> b\n<!--\nhidden\n-->after\n```\n<!-- code -->\n```\n[//]: # (note)\n"
    scanned = scan(text)
    assert [line.text for line in scanned.lines] == ["a  b", "after", "```", "<!-- code -->", "```", ""]
    assert scanned.comments == (" x ", "\nhidden\n")


def test_an_unterminated_comment_hides_the_rest() -> None:
    scanned = scan("shown\n<!-- open\nTarget Repository: a/b\n")
    assert visible_text("shown\n<!-- open\nTarget Repository: a/b\n") == "shown"
    assert scanned.unterminated_comment


def test_fences_follow_commonmark_length_and_character() -> None:
    lines = scan("````\n```\n## inside\n````\n## outside\n").lines
    assert [(line.text, line.code) for line in lines] == [
        ("````", True), ("```", True), ("## inside", True), ("````", True), ("## outside", False), ("", False)]
