"""The public face of the GitHub emulator: start a server, seed state, inspect results.

Like ``moto`` for AWS: tests and plugin authors run a real HTTP server on
127.0.0.1 and talk to it with real clients (PyGithub, gidgethub, git), while
this class seeds and inspects its state directly.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, get_args

from .app import App, RequestRecord
from .backend import Backend, split_full_name
from .ci import CiRule
from .faults import FaultRule, Faults
from .hookshot import Delivery
from .limits import LimitConfig, LimitHit
from .records import Permission
from .server import EmulatorServer
from .store import Clock

ADMIN_LOGIN = "octocat"
ADMIN_TOKEN = "emulator-token"
#: The events the runner's app subscribes to (docs/github-app.md).
APP_EVENTS = ("issues", "issue_comment", "pull_request_review", "pull_request_review_comment",
              "check_suite", "check_run", "status", "workflow_run")


@dataclass(frozen=True)
class EmulatedApp:
    """A registered app and the private key that signs its JWTs (PEM, PKCS#8)."""

    id: int
    slug: str
    private_key_pem: str
    html_url: str

    @property
    def bot_login(self) -> str:
        return f"{self.slug}[bot]"


def _new_key_pair() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


class GitHubEmulator:
    """A stateful GitHub (REST subset + git smart HTTP) persisted under ``state_dir``.

    The socket is bound on construction, so :attr:`base_url` is known at once;
    :meth:`start` begins serving in a background thread.
    """

    def __init__(
        self, state_dir: Path | str, host: str = "127.0.0.1", port: int = 0, *,
        rate_limit: int = 5000, clock: Clock | None = None,
        token_lifetime: timedelta = timedelta(hours=1),
        limits: LimitConfig | bool = True, time_scale: float = 1.0,
    ) -> None:
        """``limits``: GitHub's secondary limits (on by default; False turns them off, a
        :class:`LimitConfig` changes them); ``time_scale`` runs every limit window that many
        times faster (benchmarks; the runner's GITHUB_LIMIT_TIME_SCALE must match)."""
        self.state_dir = Path(state_dir)
        self._backend = Backend(self.state_dir, clock=clock)
        config = (LimitConfig(time_scale=time_scale) if limits is True else
                  replace(limits, time_scale=time_scale) if isinstance(limits, LimitConfig) and time_scale != 1.0
                  else limits or None)
        self._app = App(self._backend, rate_limit=rate_limit, token_lifetime=token_lifetime, limit_config=config)
        self._server = EmulatorServer((host, port), self._app)
        bound_host, bound_port = self._server.server_address[:2]
        self._backend.base_url = f"http://{bound_host!s}:{bound_port}"
        self._thread: threading.Thread | None = None
        self.add_user(ADMIN_LOGIN, ADMIN_TOKEN, admin=True)

    # -- lifecycle -------------------------------------------------------

    def start(self) -> GitHubEmulator:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                name="github-emulator", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._app.faults.clear()  # release requests held by a hang rule
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> GitHubEmulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The API root; pass it as PyGithub's ``base_url`` (no ``/api/v3`` suffix)."""
        return self._backend.base_url

    def git_url(self, full_name: str) -> str:
        owner, name = split_full_name(full_name)
        return f"{self.base_url}/git/{owner}/{name}.git"

    # -- seeding ---------------------------------------------------------

    def add_user(self, login: str, token: str | None = None, *, admin: bool = False) -> None:
        """Create a user; ``token`` authenticates as them, ``admin`` makes a site admin."""
        self._backend.store.add_user(login, token, admin=admin)

    def create_repo(
        self, full_name: str, *, owner_token: str | None = None, default_branch: str = "main",
        files: Mapping[str, str | bytes] | None = None, private: bool = True,
        description: str | None = None,
    ) -> None:
        """Create a repository whose first commit holds ``files`` (default: a README)."""
        owner, name = split_full_name(full_name)
        self._backend.store.add_user(owner, owner_token)
        self._backend.create_repo(full_name, private=private, default_branch=default_branch,
                                  description=description, files=files or {"README.md": f"# {name}\n"})

    def has_repo(self, full_name: str) -> bool:
        return self._backend.store.has_repo(full_name)

    def set_permission(self, full_name: str, login: str, permission: Permission) -> None:
        if permission not in get_args(Permission):
            raise ValueError(f"unknown permission {permission!r}; use one of {get_args(Permission)}")
        self._backend.store.set_permission(full_name, login, permission)

    def create_issue(self, full_name: str, title: str, body: str | None,
                     labels: tuple[str, ...] | list[str] = (), *, as_user: str = ADMIN_LOGIN) -> int:
        """Open an issue as ``as_user``; its labels are recorded as ``labeled`` events."""
        return self._backend.store.create_issue(
            full_name, title=title, body=body, labels=labels, actor=as_user).number

    def add_label(self, full_name: str, number: int, label: str, *, as_user: str = ADMIN_LOGIN) -> None:
        self._backend.store.add_labels(full_name, number, [label], actor=as_user)

    def remove_label(self, full_name: str, number: int, label: str, *, as_user: str = ADMIN_LOGIN) -> None:
        self._backend.store.remove_label(full_name, number, label, actor=as_user)

    def add_comment(self, full_name: str, number: int, body: str, *, as_user: str = ADMIN_LOGIN) -> int:
        return self._backend.store.add_comment(full_name, number, body, actor=as_user).id

    def update_issue(self, full_name: str, number: int, *, as_user: str = ADMIN_LOGIN,
                     title: str | None = None, body: str | None = None,
                     state: str | None = None) -> None:
        self._backend.store.update_issue(full_name, number, actor=as_user, title=title,
                                         body=body, state=state)

    def close_pull(self, full_name: str, number: int, *, as_user: str = ADMIN_LOGIN) -> None:
        """Close a pull request without merging it (as a reviewer would)."""
        self.update_issue(full_name, number, as_user=as_user, state="closed")

    def merge_pull(self, full_name: str, number: int, *, as_user: str = ADMIN_LOGIN,
                   update_base: bool = True) -> dict[str, Any]:
        """Merge a PR (fast-forward or merge commit); ``update_base=False`` only flips its state."""
        issue = self._backend.merge_pull(full_name, number, actor=as_user, update_base=update_base)
        return self._backend.pull_json(self._backend.store.repo(full_name), issue)

    # -- GitHub Apps and webhooks -------------------------------------------

    def create_app(self, slug: str, *, owner: str = ADMIN_LOGIN, name: str | None = None,
                   webhook_url: str | None = None, webhook_secret: str | None = None,
                   events: Iterable[str] = APP_EVENTS) -> EmulatedApp:
        """Register a GitHub App with a fresh RSA key pair; its JWTs are checked against it."""
        private, public = _new_key_pair()
        record = self._backend.store.create_app(slug, name=name or slug, owner=owner, public_key_pem=public,
                                                webhook_url=webhook_url, webhook_secret=webhook_secret,
                                                events=events)
        return EmulatedApp(record.id, record.slug, private, f"{self.base_url}/apps/{record.slug}")

    def set_webhook(self, app_id: int, url: str | None, secret: str | None = None) -> None:
        """Point the app's webhook at ``url`` (None turns deliveries off)."""
        self._backend.store.update_app(app_id, webhook_url=url, webhook_secret=secret)

    def install_app(self, app_id: int, account: str, repositories: Iterable[str] | None = None) -> int:
        """Install the app on ``account`` (all its repositories, or only those named); the id."""
        return self._backend.store.install_app(app_id, account, repositories).id

    def uninstall_app(self, installation_id: int) -> None:
        self._backend.store.uninstall(installation_id)

    def expire_installation_tokens(self, installation_id: int | None = None) -> int:
        """Make installation tokens stop working now, as an hour passing would."""
        return self._backend.store.expire_installation_tokens(installation_id)

    @property
    def token_lifetime(self) -> timedelta:
        return self._app.token_lifetime

    @token_lifetime.setter
    def token_lifetime(self, value: timedelta) -> None:
        self._app.token_lifetime = value

    @property
    def deliveries(self) -> list[Delivery]:
        """Every webhook delivery attempted so far, oldest first."""
        return self._backend.hookshot.deliveries

    def wait_for_deliveries(self, timeout: float = 30.0) -> list[Delivery]:
        self._backend.hookshot.wait(timeout)
        return self.deliveries

    def redeliver(self, delivery_id: int) -> Delivery:
        """Send a delivery again with the same GUID and body (GitHub's "Redeliver" button)."""
        return self._backend.hookshot.redeliver(delivery_id)

    def submit_review(self, full_name: str, number: int, body: str, *, state: str = "commented",
                      as_user: str = ADMIN_LOGIN, comments: list[dict[str, Any]] | None = None) -> int:
        """Submit a review as ``as_user`` (state ``changes_requested``, ``approved`` or ``commented``).

        It is stored, listed by the reviews API and announced as ``pull_request_review``;
        ``comments`` (``{"path", "line", "body"}``) become its inline review comments. The id."""
        backend = self._backend
        review = backend.submit_review(backend.store.repo(full_name), number, body=body,
                                       state=state.upper(), actor=as_user, comments=comments)
        return review.id

    def add_review_comment(self, full_name: str, number: int, body: str, *, path: str, line: int | None = None,
                           as_user: str = ADMIN_LOGIN) -> int:
        """Comment on ``line`` of ``path`` in the PR's diff (announced as ``pull_request_review_comment``)."""
        backend = self._backend
        return backend.comment_on_diff(backend.store.repo(full_name), number, body=body, path=path, line=line,
                                       actor=as_user).id

    def edit_comment(self, full_name: str, comment_id: int, body: str) -> None:
        self._backend.store.edit_comment(full_name, comment_id, body)

    def reactions(self, full_name: str, comment_id: int, *, review_comment: bool = False) -> list[dict[str, Any]]:
        """Reactions on an issue comment (or a review comment), in GitHub's JSON."""
        subject = "review_comment" if review_comment else "issue_comment"
        renderer = self._backend.renderer()
        return [renderer.reaction(r) for r in self._backend.store.reactions(full_name, subject, comment_id)]

    def reviews(self, full_name: str, number: int) -> list[dict[str, Any]]:
        repo, renderer = self._backend.store.repo(full_name), self._backend.renderer()
        return [renderer.review(repo, r) for r in self._backend.store.reviews(full_name, number)]

    # -- CI: checks, statuses and Actions (ci.py) ----------------------------

    def set_ci(self, full_name: str, rules: Iterable[CiRule | Mapping[str, Any]]) -> None:
        """The checks that run on every push to ``full_name`` (see :class:`CiRule`), e.g. one
        that fails while a file lacks a line: ``{"name": "tests", "path": "app.py", "line": "ok()"}``."""
        self._backend.ci.set_rules(full_name, [r if isinstance(r, CiRule) else dict(r) for r in rules])

    def run_ci(self, full_name: str, ref: str) -> str:
        """Run the rules now on ``ref``'s head (a push does this by itself); the commit's sha."""
        return self._backend.ci.run(full_name, ref)

    def release_ci(self, full_name: str, *, fail: bool | None = None) -> int:
        """Complete the checks held in progress (``hold``), by their rules or as ``fail`` says."""
        return self._backend.ci.release(full_name, fail=fail)

    def check_runs(self, full_name: str, ref: str) -> list[dict[str, Any]]:
        """The check runs of ``ref``'s head, newest first, in GitHub's JSON."""
        from .shapes_ci import CiShapes

        repo = self._backend.store.repo(full_name)
        git = self._backend.git(repo)
        sha = git.branch_sha(ref) or git.rev_parse(ref)
        shapes = CiShapes(self._backend, repo)
        return [shapes.check_run(r) for r in sorted(shapes.state.runs.values(), key=lambda r: -r.id)
                if r.head_sha == sha]

    # -- inspection (GitHub JSON shapes) -----------------------------------

    def issue(self, full_name: str, number: int) -> dict[str, Any]:
        repo = self._backend.store.repo(full_name)
        return self._backend.renderer().issue(repo, self._backend.store.issue(full_name, number))

    def comments(self, full_name: str, number: int) -> list[dict[str, Any]]:
        repo, renderer = self._backend.store.repo(full_name), self._backend.renderer()
        return [renderer.comment(repo, c) for c in self._backend.store.comments(full_name, number)]

    def events(self, full_name: str, number: int) -> list[dict[str, Any]]:
        repo, renderer = self._backend.store.repo(full_name), self._backend.renderer()
        return [renderer.event(repo, e) for e in self._backend.store.issue(full_name, number).events]

    def pulls(self, full_name: str) -> list[dict[str, Any]]:
        """Every pull request, open or closed, oldest first."""
        repo = self._backend.store.repo(full_name)
        return [self._backend.pull_json(repo, issue)
                for issue in self._backend.store.issues(full_name) if issue.pull is not None]

    def labels(self, full_name: str, number: int) -> list[str]:
        return list(self._backend.store.issue(full_name, number).labels)

    def branch_sha(self, full_name: str, branch: str) -> str | None:
        return self._backend.git(self._backend.store.repo(full_name)).branch_sha(branch)

    def file_at(self, full_name: str, ref: str, path: str) -> str | None:
        data = self._backend.git(self._backend.store.repo(full_name)).read_file(ref, path)
        return None if data is None else data.decode("utf-8", errors="replace")

    def bare_repo_path(self, full_name: str) -> Path:
        return self._backend.bare_path(full_name)

    # -- request log and faults ------------------------------------------

    @property
    def request_log(self) -> list[RequestRecord]:
        return self._app.request_log

    def clear_request_log(self) -> None:
        self._app.clear_request_log()

    @property
    def limit_hits(self) -> list[LimitHit]:
        """Every request refused for a rate limit, secondary or primary (also ``GET /_emulator/limits``)."""
        return self._app.limit_hits

    def clear_limit_hits(self) -> None:
        if self._app.limits is not None:
            self._app.limits.clear_hits()

    @property
    def faults(self) -> Faults:
        return self._app.faults

    def inject(self, status: int | None = 500, count: int | None = 1, path_regex: str | None = None,
               method: str | None = None, retry_after: float | None = None,
               delay: float | None = None, probability: float | None = None,
               seed: int | None = None, *, include_git: bool = False,
               message: str | None = None, after_action: bool = False) -> FaultRule:
        """Fail matching requests; see :class:`FaultRule` for the fields."""
        return self._app.faults.inject(status, count, path_regex, method, retry_after, delay,
                                       probability, seed, include_git=include_git, message=message,
                                       after_action=after_action)

    def clear_faults(self) -> None:
        self._app.faults.clear()


def serve_forever(host: str, port: int, state_dir: Path | str,
                  print_fn: Callable[[str], None] = print, repos: Iterable[str] = (), *,
                  limits: bool = True, time_scale: float = 1.0) -> None:
    """Run an emulator until SIGTERM or SIGINT; print one line with the base URL when ready.

    ``repos`` (``owner/name``) are created, owned by octocat with a README, unless they exist;
    ``limits`` and ``time_scale`` as for :class:`GitHubEmulator`."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with GitHubEmulator(state_dir, host, port, limits=limits, time_scale=time_scale) as emu:
            for full_name in repos:
                if not emu.has_repo(full_name):
                    emu.create_repo(full_name, files={"README.md": f"# {full_name.split('/')[-1]}\n"})
                    print_fn(f"Created repository {full_name}")
            print_fn(f"GitHub emulator listening on {emu.base_url} (admin token: {ADMIN_TOKEN})")
            sys.stdout.flush()  # the caller may read this line through a pipe
            stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
