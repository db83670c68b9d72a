"""Run the README's smoke test as a command: file a dispatch issue and check what a user would see.

`agent-runner smoke-test` works against real GitHub or the emulator. It files
the smoke issue, waits for a runner (one already running, or its own
``process`` of that issue), then checks the branch, the PR (metadata and
``Fixes`` line), the trace file, the one result comment and the label. It
removes the label to check that a re-run changes nothing, cleans up unless
told to keep, and ends with a verdict.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from runner.config import Settings
from runner.core.render import is_result_comment
from runner.core.task import BRANCH_PREFIX, TRACE_DIR, parse_metadata, task_prefix
from runner.errors import RunnerError, SmokeFailed
from runner.forge.github import GitHubForge

INSTRUCTION = "Create a simple test file to verify the agent runner is working."


@dataclass
class SmokeReport:
    """What the smoke test saw: one entry per step, and whether all passed."""

    steps: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(ok for _, ok, _ in self.steps)


@dataclass
class SmokeTest:
    """One smoke run. ``run_runner`` processes an issue (our own runner), or None to wait for one."""

    settings: Settings
    forge: GitHubForge
    target: str
    run_runner: Callable[[int], None] | None
    timeout_s: float = 600.0
    keep: bool = False
    out: TextIO = sys.stdout
    report: SmokeReport = field(default_factory=SmokeReport)

    def run(self) -> SmokeReport:
        dispatch = self.settings.require_dispatch_repo()
        task_id = f"{secrets.token_hex(4)}-smoke"  # the first 8 characters name the branch: unique
        prefix = task_prefix(task_id)
        branch, trace = f"{BRANCH_PREFIX}{prefix}", f"{TRACE_DIR}/{prefix}.md"
        body = (f'<!-- agent_task_metadata {{"task_id": "{task_id}"}} -->\n\n## Instruction\n\n'
                f"{INSTRUCTION}\n\nTarget Repository: {self.target}\n")
        number: int | None = None
        pull_number: int | None = None
        try:
            number = self.forge.create_issue(dispatch, f"agent-runner smoke test {task_id}", body,
                                             [self.settings.trigger_label])
            self._ok("issue filed", f"{dispatch}#{number} → {self.target}")
            self._wait_processed(dispatch, number, "first run")
            pull_number, head = self._verify(dispatch, number, task_id, branch, trace)
            self.forge.remove_label(dispatch, number, self.settings.processed_label)
            self._ok("re-run requested", f"removed `{self.settings.processed_label}`")
            self._wait_processed(dispatch, number, "re-run")
            again, head_again = self._verify(dispatch, number, task_id, branch, trace)
            self._check("re-run changed nothing", again == pull_number and head_again == head,
                        f"same PR #{again}, branch still at {head_again[:12]}" if again == pull_number
                        else f"a second PR #{again} appeared")
        except SmokeFailed:
            pass
        except RunnerError as exc:
            self._record("GitHub", False, str(exc))
        finally:
            if number is not None and not self.keep:
                self._clean_up(dispatch, number, pull_number, branch)
        return self.report

    # -- steps ----------------------------------------------------------------------

    def _wait_processed(self, dispatch: str, number: int, phase: str) -> None:
        done = {self.settings.processed_label, self.settings.failed_label}
        if self.run_runner is not None:
            self._progress(f"{phase}: running the runner on #{number} …")
            self.run_runner(number)
        started = time.monotonic()
        last_shown = -10.0
        while True:
            labels = self.forge.get_issue(dispatch, number).labels
            if labels & done:
                break
            waited = time.monotonic() - started
            if waited > self.timeout_s:
                self._check(f"{phase}: runner answered", False,
                            f"no `{self.settings.processed_label}` label after {waited:.0f} s. Is a runner "
                            f"running against {dispatch}? (Without one, leave out --wait.)")
            if waited - last_shown >= (1 if self.out.isatty() else 10):
                self._progress(f"{phase}: waiting for a runner to process #{number} ({waited:.0f} s)")
                last_shown = waited
            time.sleep(min(2.0, max(0.2, self.settings.poll_interval_seconds / 10)))
        self._check(f"{phase}: issue labeled", self.settings.processed_label in labels,
                    f"`{self.settings.processed_label}`" if self.settings.processed_label in labels
                    else f"`{self.settings.failed_label}`: {self._result_text(dispatch, number)}")

    def _verify(self, dispatch: str, number: int, task_id: str, branch: str, trace: str) -> tuple[int, str]:
        head = self.forge.branch_head(self.target, branch)
        self._check("branch", head is not None, f"{self.target}:{branch} at {(head or '')[:12]}"
                    if head else f"no branch {branch} in {self.target}")
        assert head is not None
        pull = self.forge.find_pull(self.target, branch)
        self._check("pull request", pull is not None and pull.state == "open",
                    f"#{pull.number} {pull.html_url}" if pull else f"no pull request from {branch}")
        assert pull is not None
        metadata = parse_metadata(pull.body) or {}
        self._check("PR metadata", metadata.get("task_id") == task_id, f"task_id {metadata.get('task_id')}")
        fixes = f"Fixes {dispatch}#{number}"
        self._check("PR Fixes line", fixes in pull.body, fixes if fixes in pull.body else f"no `{fixes}` line")
        text = self.forge.file_text(self.target, branch, trace)
        self._check("trace file", text is not None and task_id in text,
                    trace if text is not None else f"no {trace} on {branch}")
        results = [c for c in self.forge.list_comments(dispatch, number) if is_result_comment(c.body)]
        self._check("one result comment", len(results) == 1 and pull.html_url in results[0].body,
                    f"{len(results)} result comment(s)" + ("" if len(results) != 1 else ", linking the PR"))
        return pull.number, head

    def _clean_up(self, dispatch: str, number: int, pull_number: int | None, branch: str) -> None:
        done = []
        try:
            if pull_number is not None:
                self.forge.update_pull(self.target, pull_number, state="closed")
                done.append(f"closed PR #{pull_number}")
            if self.forge.branch_head(self.target, branch) is not None:
                self.forge.delete_branch(self.target, branch)
                done.append(f"deleted {branch}")
            self.forge.close_issue(dispatch, number)
            done.append(f"closed #{number}")
            self._ok("cleaned up", ", ".join(done))
        except RunnerError as exc:
            self._record("cleaned up", False, f"{', '.join(done) or 'nothing'} before: {exc}")

    # -- output ---------------------------------------------------------------------

    def _result_text(self, dispatch: str, number: int) -> str:
        results = [c.body for c in self.forge.list_comments(dispatch, number) if is_result_comment(c.body)]
        return " ".join(results[-1].split()[:60]) if results else "no result comment"

    def _check(self, step: str, ok: bool, detail: str) -> None:
        self._record(step, ok, detail)
        if not ok:
            raise SmokeFailed(step)

    def _ok(self, step: str, detail: str) -> None:
        self._record(step, True, detail)

    def _record(self, step: str, ok: bool, detail: str) -> None:
        self.report.steps.append((step, ok, detail))
        self._clear_progress()
        print(f"{'✓' if ok else '✗'} {step}: {detail}", file=self.out, flush=True)

    def _progress(self, text: str) -> None:
        if self.out.isatty():
            print(f"\r\033[K… {text}", end="", file=self.out, flush=True)
        else:
            print(f"… {text}", file=self.out, flush=True)

    def _clear_progress(self) -> None:
        if self.out.isatty():
            print("\r\033[K", end="", file=self.out, flush=True)
