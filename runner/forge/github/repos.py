"""Read repositories and change pull requests on GitHub: facts, branches, files, PRs, and the token's reach.

Part of :class:`runner.forge.github.GitHubForge`, over its session. A pull
request is opened at most once per branch (a 422 "already exists" finds the
one an earlier attempt opened); pushes themselves go through git
(:mod:`runner.steps.workspace`), not through this API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from github.GithubObject import NotSet

from runner.errors import NotFound, Rejected
from runner.forge import wire
from runner.forge.base import PullRequest, RepoAccess, RepoInfo, TokenInfo
from runner.forge.github.session import GitHubSession


class RepoCalls(GitHubSession):
    """A repository's facts, branches and files, its pull requests, and what the token is and may use."""

    def repo_info(self, repo: str) -> RepoInfo:
        """Cached for GITHUB_CACHE_SECONDS: the default branch and clone URL rarely change."""
        return self._repos.get_or_load(repo.lower(), lambda: self._repo_info(repo))

    def _repo_info(self, repo: str) -> RepoInfo:
        def read() -> RepoInfo:
            with self._request(f"read repository {repo}", repo) as gh:
                r = gh.get_repo(repo)
                return RepoInfo(full_name=r.full_name, default_branch=r.default_branch, clone_url=r.clone_url,
                                private=bool(r.private))
        return self._read(repo, read)

    def branch_head(self, repo: str, branch: str) -> str | None:
        """The branch's commit sha, or None when there is no such branch."""
        def read() -> str | None:
            try:
                with self._request(f"read branch {branch} of {repo}", repo) as gh:
                    return str(gh.get_repo(repo).get_git_ref(f"heads/{branch}").object.sha)
            except NotFound:
                return None
        return self._read(repo, read)

    def file_text(self, repo: str, ref: str, path: str) -> str | None:
        def read() -> Any:
            try:
                with self._request(f"read {path} at {ref} in {repo}", repo) as gh:
                    return gh.get_repo(repo).get_contents(path, ref=ref)
            except NotFound:
                return None
        found = self._read(repo, read)
        if found is None:
            return None
        if isinstance(found, list):
            return None
        return found.decoded_content.decode("utf-8", errors="replace")

    def delete_branch(self, repo: str, branch: str) -> None:
        with self._request(f"delete branch {branch} of {repo}", repo, write=True) as gh:
            # https://docs.github.com/en/rest/git/refs#delete-a-reference (a lazy GitRef would
            # address the singular git/ref/ path, which has no DELETE)
            gh.requester.requestJsonAndCheck("DELETE", f"/repos/{repo}/git/refs/heads/{quote(branch)}")

    # -- pull requests -----------------------------------------------------------

    def find_pull(self, repo: str, head_branch: str) -> PullRequest | None:
        owner = repo.split("/")[0]

        def read() -> list[PullRequest]:
            with self._request(f"find the pull request for {head_branch} in {repo}", repo) as gh:
                pulls = gh.get_repo(repo).get_pulls(state="all", head=f"{owner}:{head_branch}")
                return [wire.pull_value(p) for p in pulls]
        found = self._read(repo, read)
        # GitHub lists newest first; an open PR wins over older closed ones.
        found.sort(key=lambda p: (p.state != "open", -p.number))
        return found[0] if found else None

    def create_pull(
        self, repo: str, *, head: str, base: str, title: str, body: str, draft: bool = False
    ) -> PullRequest:
        try:
            with self._request(f"open a pull request from {head} in {repo}", repo, write=True, notify=True) as gh:
                pull = gh.get_repo(repo).create_pull(
                    base=base, head=head, title=title, body=body, draft=draft
                )
                return wire.pull_value(pull)
        except Rejected as exc:
            # 422 "A pull request already exists for owner:branch" means a previous
            # attempt got this far: that PR is the one we want.
            if "already exists" not in exc.detail:
                raise
            existing = self.find_pull(repo, head)
            if existing is None:
                raise
            return existing

    def update_pull(
        self,
        repo: str,
        number: int,
        *,
        title: str | None = None,
        body: str | None = None,
        state: str | None = None,
    ) -> PullRequest:
        with self._request(f"update pull request {repo}#{number}", repo, write=True) as gh:
            pull = gh.get_repo(repo).get_pull(number)
            pull.edit(title=_opt(title), body=_opt(body), state=_opt(state))
            return wire.pull_value(pull)  # PyGithub refreshes the object from the PATCH response

    # -- who the token is, and what it may use (`agent-runner doctor`) ------------------

    def authenticated_login(self, repo: str) -> str:
        """Who the runner is on GitHub: the token's user (``GET /user``), or the app's ``<slug>[bot]``."""
        if self._login is None:
            login = self._source.bot_login
            if login is None:
                def read() -> str:
                    with self._request("read the token's user (GET /user)", repo) as gh:
                        return str(gh.get_user().login)
                login = self._read(repo, read)
            self._login = login
        return self._login

    def user_id(self, login: str, repo: str) -> int:
        """The numeric id of a user or bot (``GET /users/{login}``), asked with ``repo``'s token."""
        def read() -> int:
            with self._request(f"read the user {login}", repo) as gh:
                _, data = gh.requester.requestJsonAndCheck("GET", f"/users/{quote(login)}")
                return int(data["id"])
        return self._read(repo, read)

    def token_info(self, repo: str) -> TokenInfo:
        """GET /user: the login, the classic scopes and GitHub's clock (see :func:`wire.token_info`)."""
        with self._request("read the authenticated user", repo) as gh:
            headers, data = gh.requester.requestJsonAndCheck("GET", "/user")
        return wire.token_info(headers, data)

    def repo_access(self, repo: str) -> RepoAccess:
        with self._request(f"read repository {repo}", repo) as gh:
            _, data = gh.requester.requestJsonAndCheck("GET", f"/repos/{repo}")
        return wire.access_from_json(data)

    def accessible_repos(self, repo: str) -> list[RepoAccess]:
        """GET /user/repos with ``repo``'s token: every repository it can use, with its permissions."""
        found: list[RepoAccess] = []
        with self._request("list the token's repositories", repo) as gh:
            headers, page = gh.requester.requestJsonAndCheck(
                "GET", "/user/repos", parameters={"per_page": 100})
            found += [wire.access_from_json(item) for item in page or []]
            next_url = wire.next_link(headers)
            while next_url:
                headers, page = gh.requester.requestJsonAndCheck("GET", next_url)
                found += [wire.access_from_json(item) for item in page or []]
                next_url = wire.next_link(headers)
        return found


def _opt(value: str | None) -> Any:
    return NotSet if value is None else value
