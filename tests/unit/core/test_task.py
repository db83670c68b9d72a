"""The dispatch format, pinned down by a corpus of good and bad bodies."""

from __future__ import annotations

import pytest

from runner.core.task import (
    choose_names,
    is_valid_ref_name,
    parse_metadata,
    parse_task,
    render_metadata,
    task_names,
)
from runner.errors import TaskSpecError

CANONICAL = """<!-- agent_task_metadata {"task_id": "test-task-12345678"} -->

## Instruction

Create a simple test file to verify the agent runner is working.

Target Repository: owner/target-repo
"""


def parse(body: str):
    return parse_task(body, dispatch_repo="owner/dispatch", issue_number=7)


GOOD = [
    pytest.param(CANONICAL, "test-task-12345678", "owner/target-repo",
                 "Create a simple test file to verify the agent runner is working.", id="canonical"),
    pytest.param(CANONICAL.replace("\n", "\r\n"), "test-task-12345678", "owner/target-repo",
                 "Create a simple test file to verify the agent runner is working.", id="crlf"),
    pytest.param(CANONICAL.replace("\n", "\r"), "test-task-12345678", "owner/target-repo",
                 "Create a simple test file to verify the agent runner is working.", id="old-mac-cr"),
    pytest.param('<!--   agent_task_metadata   {"task_id":"t1"}   -->\n\n##   Instruction  \n\n   Do it.   \n\n'
                 "Target Repository:    a/b   \n", "t1", "a/b", "   Do it.   ", id="extra-whitespace"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t2", "priority": 3, "labels": ["x"]} -->\n'
                 "## Instruction\nDo.\nTarget Repository: a/b", "t2", "a/b", "Do.", id="extra-keys"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t3", "target_repo": "meta/repo"} -->\n'
                 "## Instruction\nDo.", "t3", "meta/repo", "Do.", id="target-from-metadata"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t4", "target_repo": "A/B"} -->\n'
                 "## Instruction\nDo.\nTarget Repository: a/b", "t4", "a/b", "Do.", id="both-agree-case"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t5"} -->\n## Instruction\nDo.\n'
                 "Target Repository: https://github.com/a/b.git", "t5", "a/b", "Do.", id="target-url"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t6"} -->\n## Instruction\nDo.\n'
                 "**Target Repository:** `a/b`", "t6", "a/b", "Do.", id="target-bold-code"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t7"} -->\n## instruction\nDo.\n'
                 "target repository: a/b", "t7", "a/b", "Do.", id="lowercase"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t8"} -->\n## Instruction\nFirst.\n\n'
                 "## Notes\nignored\n\nTarget Repository: a/b", "t8", "a/b", "First.", id="stops-at-next-heading"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t9"} -->\n## Instruction\nApply:\n```diff\n'
                 "## not a heading\n-a\n+b\n```\nTarget Repository: a/b", "t9", "a/b",
                 "Apply:\n```diff\n## not a heading\n-a\n+b\n```", id="heading-inside-fence"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t10"} -->\n## Instruction\n```diff\n'
                 " context\n-old\n+new\n```\nTarget Repository: a/b", "t10", "a/b",
                 "```diff\n context\n-old\n+new\n```", id="patch-keeps-leading-space"),
    pytest.param('<!-- agent_task_metadata {"task_id": 12345678} -->\n## Instruction\nDo.\n'
                 "Target Repository: a/b", "12345678", "a/b", "Do.", id="numeric-task-id"),
    pytest.param('Intro text\n<!-- agent_task_metadata\n{\n  "task_id": "t11"\n}\n-->\n'
                 "## Instruction\nDo.\n<!-- private note -->\nTarget Repository: a/b", "t11", "a/b", "Do.",
                 id="multiline-json-and-comment"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t12"} -->\n## Instruction ##\nDo.\n'
                 "Target Repository: a/b", "t12", "a/b", "Do.", id="closing-hashes"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t13"} -->\n## Instruction\nDo.\n'
                 "Target Repository: git@github.com:a/b.git", "t13", "a/b", "Do.", id="ssh-remote"),
    pytest.param('<!-- agent_task_metadata {"task_id": "ü-ñ"} -->\n## Instruction\nÇa va.\n'
                 "Target Repository: a/b.c_d-e", "ü-ñ", "a/b.c_d-e", "Ça va.", id="unicode"),
]


@pytest.mark.parametrize(("body", "task_id", "target", "instruction"), GOOD)
def test_good_bodies_parse(body: str, task_id: str, target: str, instruction: str) -> None:
    task = parse(body)
    assert task.task_id == task_id
    assert task.target_repo == target
    assert task.instruction == instruction
    assert task.dispatch_repo == "owner/dispatch" and task.issue_number == 7


BAD = [
    pytest.param("", "empty", id="empty"),
    pytest.param("   \n\t ", "empty", id="blank"),
    pytest.param("## Instruction\nDo.\nTarget Repository: a/b", "no `agent_task_metadata`", id="no-metadata"),
    pytest.param("<!-- agent_task_metadata {task_id: x} -->\n## Instruction\nDo.\nTarget Repository: a/b",
                 "not valid JSON", id="bad-json"),
    pytest.param('<!-- agent_task_metadata ["x"] -->\n## Instruction\nDo.\nTarget Repository: a/b',
                 "JSON object", id="json-array"),
    pytest.param('<!-- agent_task_metadata {"id": "x"} -->\n## Instruction\nDo.\nTarget Repository: a/b',
                 "no `task_id`", id="missing-task-id"),
    pytest.param('<!-- agent_task_metadata {"task_id": "  "} -->\n## Instruction\nDo.\nTarget Repository: a/b',
                 "no `task_id`", id="blank-task-id"),
    pytest.param('<!-- agent_task_metadata {"task_id": true} -->\n## Instruction\nDo.\nTarget Repository: a/b',
                 "no `task_id`", id="bool-task-id"),
    pytest.param('<!-- agent_task_metadata {"task_id": "' + "x" * 1025 + '"} -->\n## Instruction\nDo.\n'
                 "Target Repository: a/b", "limit is 1024", id="long-task-id"),
    pytest.param('<!-- agent_task_metadata {"task_id": "a\\nb"} -->\n## Instruction\nDo.\nTarget Repository: a/b',
                 "control characters", id="control-chars"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t"} -->\nDo.\nTarget Repository: a/b',
                 "no `## Instruction`", id="no-instruction"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t"} -->\n## Instruction\n\nTarget Repository: a/b',
                 "is empty", id="empty-instruction"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t"} -->\n## Instruction\nDo.', "which repository",
                 id="no-target"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t"} -->\n## Instruction\nDo.\nTarget Repository: ../../etc',
                 "not a repository", id="target-traversal"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t"} -->\n## Instruction\nDo.\nTarget Repository: a/..',
                 "not a valid", id="target-dotdot"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t"} -->\n## Instruction\nDo.\nTarget Repository: a b/c',
                 "not a valid", id="target-space"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t"} -->\n## Instruction\nDo.\nTarget Repository: a/b;rm -rf',
                 "not a valid", id="target-shell"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t", "target_repo": "x/y"} -->\n## Instruction\nDo.\n'
                 "Target Repository: a/b", "two target repositories", id="targets-disagree"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t", "target_repo": 5} -->\n## Instruction\nDo.',
                 "must be a string", id="target-not-string"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t", "base_branch": "a..b"} -->\n## Instruction\nDo.\n'
                 "Target Repository: a/b", "not a valid branch", id="bad-base-branch"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t", "generator": "rm -rf /"} -->\n## Instruction\nDo.\n'
                 "Target Repository: a/b", "`generator`", id="bad-generator"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t", "model": "gpt 4; echo"} -->\n## Instruction\nDo.\n'
                 "Target Repository: a/b", "`model`", id="bad-model"),
    pytest.param('<!-- agent_task_metadata {"task_id": "t"} -->\n## Instruction\n' + "x" * 60_001
                 + "\nTarget Repository: a/b", "limit is 60000", id="huge-instruction"),
]


@pytest.mark.parametrize(("body", "fragment"), BAD)
def test_bad_bodies_raise_a_postable_sentence(body: str, fragment: str) -> None:
    with pytest.raises(TaskSpecError) as info:
        parse(body)
    message = str(info.value)
    assert fragment in message
    assert message[0].isupper() or message[0] in "`@"  # a sentence to post as is
    assert info.value.hint and "agent-failed" in info.value.hint


def test_canonical_names_keep_the_documented_prefix() -> None:
    names = task_names(parse(CANONICAL))
    assert names.branch == "agent-task-test-tas"
    assert names.trace_path == "agent-tasks/test-tas.md"


@pytest.mark.parametrize("task_id", [
    "../../x", "a b~c^:", "ü" * 500, "..", ".lock.lock", "-rf", "x/../../y", "@{-1}", "a\\b*?[c", "~~~~~~~~~~",
    "foo.lock", "中文任务标识符号码",
])
def test_hostile_task_ids_give_valid_refs_and_safe_paths(task_id: str) -> None:
    import json
    body = f"<!-- agent_task_metadata {json.dumps({'task_id': task_id})} -->\n## Instruction\nDo.\nTarget Repository: a/b"
    names = task_names(parse(body))
    assert is_valid_ref_name(names.branch), names.branch
    stem = names.trace_path.removeprefix("agent-tasks/").removesuffix(".md")
    assert "/" not in stem and ".." not in stem and stem and not stem.startswith(".")
    assert len(names.branch) < 60


def test_hostile_ids_that_clean_up_alike_still_differ() -> None:
    def branch(task_id: str) -> str:
        return task_names(parse(f'<!-- agent_task_metadata {{"task_id": "{task_id}"}} -->\n## Instruction\nx\n'
                                "Target Repository: a/b")).branch
    assert branch("a b") != branch("a~b")
    assert branch("ü" * 10) != branch("ö" * 10)


def test_colliding_prefixes_are_disambiguated_deterministically() -> None:
    one = parse(CANONICAL.replace("test-task-12345678", "test-task-1"))
    two = parse(CANONICAL.replace("test-task-12345678", "test-task-2"))
    assert task_names(one).branch == task_names(two).branch == "agent-task-test-tas"
    first = choose_names(one, owner_of_primary=None)
    second = choose_names(two, owner_of_primary="test-task-1")
    assert first.branch == "agent-task-test-tas" and not first.disambiguated
    assert second.branch != first.branch and second.disambiguated
    assert second == choose_names(two, owner_of_primary="test-task-1")  # deterministic
    assert choose_names(one, owner_of_primary="test-task-1") == first  # its own branch is not a collision
    assert second.trace_path != first.trace_path and is_valid_ref_name(second.branch)


def test_metadata_round_trips_and_cannot_close_the_comment() -> None:
    hostile = {"task_id": "x-->y<!--", "note": "<script>"}
    rendered = render_metadata(hostile)
    assert rendered.count("-->") == 1 and rendered.endswith("-->")
    assert parse_metadata(rendered) == hostile


def test_metadata_is_read_from_the_raw_body_and_kept_whole() -> None:
    task = parse('<!-- agent_task_metadata {"task_id": "t", "seniority": "senior", "model": "gpt-4o", '
                 '"custom": {"deep": [1, 2]}} -->\n## Instruction\n<!-- hidden -->\nDo.\nTarget Repository: a/b')
    assert task.metadata["custom"] == {"deep": [1, 2]}
    assert task.model == "gpt-4o" and task.seniority == "senior"
    assert task.instruction == "Do."


# -- hidden text, limits and linear time (issue #8) -------------------------------------------

def test_only_visible_text_counts_for_target_and_instruction() -> None:
    body = ('<!-- agent_task_metadata {"task_id": "t"} -->\n<!--\n## Instruction\nhidden\n'
            "Target Repository: evil/repo\n-->\n## Instruction\nVisible <!-- inline hidden --> text.\n"
            "Target Repository: a/b <!-- x/y -->\n")
    task = parse(body)
    assert task.target_repo == "a/b"
    assert task.instruction == "Visible  text."


def test_invisible_unicode_is_removed_everywhere() -> None:
    smuggled = "".join(chr(0xE0000 + ord(c)) for c in "rm -rf")
    body = ('<!-- agent_task_metadata {"task_id": "t", "note": "a\\u200bb"} -->\n## Instruction\n'
            f"Do\u200b it\u202e now{smuggled}.\ufeff\nTarget Repository: a/b")
    task = parse(body)
    assert task.instruction == "Do it now."
    assert task.metadata["note"] == "ab"


def test_two_metadata_comments_are_refused_and_a_fenced_one_is_text() -> None:
    with pytest.raises(TaskSpecError, match="2 `agent_task_metadata` comments"):
        parse('<!-- agent_task_metadata {"task_id": "a"} -->\n' + CANONICAL)
    fenced = '```\n<!-- agent_task_metadata {"task_id": "example"} -->\n```\n' + CANONICAL
    assert parse(fenced).task_id == "test-task-12345678"
    with pytest.raises(TaskSpecError, match="no `agent_task_metadata`"):
        parse('```\n<!-- agent_task_metadata {"task_id": "t"} -->\n```\n## Instruction\nDo.\nTarget Repository: a/b')


def test_deep_json_is_refused_without_recursion() -> None:
    deep = '{"task_id": "t", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(TaskSpecError, match="nests"):
        parse_metadata(f"<!-- agent_task_metadata {deep[:16_000]} -->")
    with pytest.raises(TaskSpecError, match="limit is 16384"):
        parse_metadata(f"<!-- agent_task_metadata {deep} -->")


def test_comments_inside_fences_are_kept_for_patches() -> None:
    body = ('<!-- agent_task_metadata {"task_id": "t"} -->\n## Instruction\n```diff\n+<!-- keep -->\n```\n'
            "Target Repository: a/b")
    assert "+<!-- keep -->" in parse(body).instruction


ADVERSARIAL_100KB = [
    pytest.param(" " * 100_000, id="spaces"),
    pytest.param("Target Repository:" + " " * 100_000 + "x", id="target-spaces"),
    pytest.param("## " + " " * 100_000 + "#" * 100, id="heading-spaces"),
    pytest.param("#" * 100_000, id="hashes"),
    pytest.param("<!--" * 25_000, id="comment-openers"),
    pytest.param("<!-- -->" * 12_500, id="comment-pairs"),
    pytest.param("```\n" * 25_000, id="fences"),
    pytest.param("[x]:" * 25_000, id="link-definitions"),
    pytest.param("*_" * 50_000 + ":", id="emphasis"),
    pytest.param('<!-- agent_task_metadata {"task_id": "' + "\\\\" * 7_000 + '"} -->', id="escapes"),
    pytest.param('<!-- agent_task_metadata ' + '{"a":' * 3_000 + "1" + "}" * 3_000 + " -->", id="nesting"),
    pytest.param("\u200b" * 100_000, id="zero-width"),
    pytest.param(("Target Repository: a/b\n" * 5_000), id="many-targets"),
]


@pytest.mark.timeout(10)  # a stall guard, not a measurement: bench/parser.py prints the figures
@pytest.mark.parametrize("noise", ADVERSARIAL_100KB)
def test_adversarial_100kb_bodies_parse_or_fail_cleanly(noise: str) -> None:
    for body in (noise, CANONICAL + noise, noise + CANONICAL):
        try:
            parse(body)
        except TaskSpecError as exc:
            assert str(exc)[0].isupper() or str(exc)[0] in "`@"
