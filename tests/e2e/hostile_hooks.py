"""A hook for the hostile corpus: edit the dispatch issue while its task runs, as a given user.

It runs inside the runner process (HOOKS=tests.e2e.hostile_hooks:EditDuringRun) and
talks to the GitHub emulator over real HTTP with that user's own token, exactly
as a person editing the issue in their browser would.
"""

from __future__ import annotations

import os
from typing import Any

import requests

from runner.hooks.plugins import Hook

#: task-id prefix -> the token of the user who edits the body while the task runs
EDITORS = {"edit-r": "reader-token", "edit-w": "writer-token"}


class EditDuringRun(Hook):
    def on_generated(self, *, task: Any, changes: Any) -> None:
        for prefix, token in EDITORS.items():
            if task.task_id.split("-", 1)[-1].startswith(prefix):
                api = os.environ["HOSTILE_API_URL"]
                url = f"{api}/repos/{task.dispatch_repo}/issues/{task.issue_number}"
                body = requests.get(url, headers={"Authorization": f"token {token}"}, timeout=10).json()["body"]
                reply = requests.patch(url, json={"body": body + "\n\nEdited while the task ran."},
                                       headers={"Authorization": f"token {token}"}, timeout=10)
                reply.raise_for_status()
