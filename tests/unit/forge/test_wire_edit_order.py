"""Dropping the original-text entry keeps the edits in GitHub's order (newest first), even within one second."""

from __future__ import annotations

from runner.forge.wire import trail_from_json


def test_the_original_text_entry_is_the_oldest_and_the_rest_keep_their_order() -> None:
    at = "2026-12-07T23:44:04Z"
    nodes = [{"editedAt": at, "editor": {"__typename": "User", "login": login}}
             for login in ("hubot", "octocat", "mallory", "octocat")]  # newest first; the last is the original
    data = {"data": {"repository": {"issue": {
        "author": {"__typename": "User", "login": "octocat"}, "body": "b", "createdAt": at, "lastEditedAt": at,
        "includesCreatedEdit": True, "userContentEdits": {"totalCount": 4, "nodes": nodes},
        "timelineItems": {"nodes": []}}}}}
    trail = trail_from_json(data)
    assert trail is not None
    assert [e.editor for e in trail.edits] == ["hubot", "octocat", "mallory"]
