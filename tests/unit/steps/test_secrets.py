"""The secret scan: what it flags, where it says it is, and that it never repeats the value."""

from __future__ import annotations

import base64
import urllib.parse

import pytest

from runner.errors import SecretsFound
from runner.log import Redactor
from runner.steps.secrets import added_lines, check, mask, scan_diff, scan_lines

TOKEN = "tok-9f8e7d6c5b4a39281706"
AWS = "AKIA" + "Q3EGRT5YUI7OP2ZX"

DIFF = f"""diff --git a/a.py b/a.py
--- a/a.py
+++ b/a.py
@@ -3,0 +4,2 @@ def f():
+KEY = "{AWS}"
+ok = 1
diff --git a/b.txt b/b.txt
new file mode 100644
--- /dev/null
+++ b/b.txt
@@ -0,0 +1 @@
+{TOKEN[::-1]}
"""


def test_added_lines_are_numbered_like_the_new_file() -> None:
    assert list(added_lines(DIFF)) == [("a.py", [(4, f'KEY = "{AWS}"'), (5, "ok = 1")]), ("b.txt", [(1, TOKEN[::-1])])]


def test_findings_name_file_line_and_rule_but_never_the_value() -> None:
    findings = scan_diff(DIFF, [TOKEN])
    assert [(f.path, f.line, f.rule) for f in findings] == [
        ("a.py", 4, "AWS Access Key"), ("b.txt", 1, "runner credential, reversed")]
    with pytest.raises(SecretsFound) as info:
        check(findings)
    assert "`a.py` line 4 (AWS Access Key)" in str(info.value)
    assert AWS not in str(info.value) and TOKEN[::-1] not in str(info.value)


@pytest.mark.parametrize("encoded", [
    TOKEN, TOKEN[::-1], TOKEN.encode().hex(), TOKEN.encode().hex().upper(),
    base64.b64encode(TOKEN.encode()).decode(), base64.b64encode(b"ab" + TOKEN.encode()).decode(),
    base64.urlsafe_b64encode(b"x-access-token:" + TOKEN.encode()).decode(), urllib.parse.quote("a/" + TOKEN + "/b", safe=""),
])
def test_the_runner_token_is_found_and_redacted_in_every_encoding(encoded: str) -> None:
    assert scan_lines("f", [(1, f"prefix {encoded} suffix")], [TOKEN])
    assert TOKEN not in Redactor([TOKEN])(encoded)
    redacted = Redactor([TOKEN])(f"x {encoded} y")
    assert "***" in redacted


def test_a_gemini_key_is_flagged_as_a_google_api_key() -> None:
    key = "AIza" + "SyD3xAmPl3-k3y_0123456789abcdefGHIJK"
    assert "Google API Key" in [f.rule for f in scan_lines("config.js", [(3, f'const key = "{key}";')], [])]


def test_mask_removes_flagged_values_from_text_for_the_trace() -> None:
    text = mask(f"keep this\nrotate {AWS} and {TOKEN}", [TOKEN])
    assert AWS not in text and TOKEN not in text
    assert text.startswith("keep this\nrotate [secret removed: AWS Access Key]")


def test_ordinary_code_is_not_flagged() -> None:
    lines = [(i, f"value_{i} = compute({i})  # see https://example.org/docs") for i in range(1, 200)]
    assert scan_lines("a.py", lines, [TOKEN]) == []
