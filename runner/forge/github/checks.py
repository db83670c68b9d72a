"""Read a commit's checks from GitHub: check runs, statuses, annotations and Actions job logs.

Part of :class:`runner.forge.github.GitHubForge`, over its session's pacer, error
translation and ETag cache. Everything here is a read, and the two a poll makes
for every open task PR (the PR, and its head's check runs and combined status)
are conditional: while nothing changed GitHub answers 304, which costs no rate limit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from urllib.parse import quote

import requests

from runner.errors import ForgeError, NotFound
from runner.forge import wire
from runner.forge.base import Annotation, CommitChecks, PullRequest
from runner.forge.github.session import GitHubSession

#: A log is read in pieces of this size, and only its end is kept.
_CHUNK = 64 * 1024
LOG_TIMEOUT_S = 30.0


class ChecksReads(GitHubSession):
    """A commit's checks and statuses, a check run's annotations, a job's log; a pull request, conditionally."""

    def get_pull(self, repo: str, number: int) -> PullRequest:
        # https://docs.github.com/rest/pulls/pulls#get-a-pull-request
        data = self._conditional(repo, f"/repos/{repo}/pulls/{number}", f"read pull request #{number}")
        return wire.pull_from_json(data)

    def commit_checks(self, repo: str, ref: str) -> CommitChecks:
        # https://docs.github.com/rest/checks/runs#list-check-runs-for-a-git-reference
        # https://docs.github.com/rest/commits/statuses#get-the-combined-status-for-a-specific-reference
        ref_path = quote(ref, safe="")
        runs = self._conditional(repo, f"/repos/{repo}/commits/{ref_path}/check-runs", f"list the checks of {ref}",
                                 {"filter": "latest", "per_page": 100})
        combined = self._conditional(repo, f"/repos/{repo}/commits/{ref_path}/status",
                                     f"read the combined status of {ref}", {"per_page": 100})
        return wire.commit_checks(runs or {}, combined or {})

    def check_annotations(self, repo: str, check_run_id: int) -> Sequence[Annotation]:
        # https://docs.github.com/rest/checks/runs#list-check-run-annotations
        with self._request(f"list the annotations of check run {check_run_id}", repo) as gh:
            _, rows = gh.requester.requestJsonAndCheck(
                "GET", f"/repos/{repo}/check-runs/{check_run_id}/annotations", parameters={"per_page": 50})
        return [wire.annotation_from_json(row) for row in rows or [] if isinstance(row, dict)]

    def job_log(self, repo: str, job_id: int, max_bytes: int) -> str:
        """GitHub answers 302 to a short-lived URL; that URL is fetched without our token."""
        # https://docs.github.com/rest/actions/workflow-jobs#download-job-logs-for-a-workflow-run
        with self._request(f"read the log of job {job_id}", repo) as gh:
            status, headers, _ = gh.requester.requestJson("GET", f"/repos/{repo}/actions/jobs/{job_id}/logs",
                                                          follow_302_redirect=False)
        location = {k.lower(): v for k, v in headers.items()}.get("location")
        if status == 404 or status == 410:
            raise NotFound(f"The log of job {job_id} in {repo} is gone (GitHub keeps logs for a limited time).")
        if status != 302 or not location:
            raise ForgeError(f"GitHub answered {status} instead of a log URL for job {job_id} in {repo}.")
        try:
            with requests.get(location, stream=True, timeout=LOG_TIMEOUT_S, allow_redirects=False) as resp:
                resp.raise_for_status()
                return _tail(resp.iter_content(_CHUNK), max_bytes)
        except requests.RequestException as exc:
            raise ForgeError(f"Could not read the log of job {job_id} in {repo}: {type(exc).__name__}.") from None


def _tail(chunks: Iterator[bytes], max_bytes: int) -> str:
    kept = b""
    for chunk in chunks:
        kept = (kept + chunk)[-max_bytes:]
    return kept.decode("utf-8", errors="replace")
