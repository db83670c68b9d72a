"""Keep the emulator's world behind one lock and on disk after every change.

Both the HTTP handlers and the Python API of :class:`GitHubEmulator` mutate
state only through these methods, so a rule such as "adding a label records a
``labeled`` event" is written once. Methods hand out deep copies, so callers
may render them without holding the lock.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .errors import EmulatorError, ResourceNotFound, UnprocessableEntity
from .records import (
    Comment,
    ContentEdit,
    Event,
    GitHubAppRecord,
    Installation,
    InstallationToken,
    Issue,
    Label,
    Permission,
    PullInfo,
    Reaction,
    Repo,
    Review,
    ReviewComment,
    User,
    World,
    permits,
    token_digest,
)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Notice:
    """Something happened that GitHub would send a webhook about (rendered by the listener)."""

    event: str  # "issues", "issue_comment", "pull_request"
    action: str
    repo: str
    number: int
    actor: str
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Principal:
    """Who a token authenticates: a user, or an app's bot limited to one installation."""

    login: str
    installation_id: int | None = None


def iso(moment: datetime) -> str:
    """Format a moment the way GitHub does: ``2024-01-31T12:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    """Own the :class:`World`; every public method is atomic and durable."""

    def __init__(self, path: Path, clock: Clock | None = None) -> None:
        self._path = path
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self._world = self._load()
        self._depth = 0
        self._outbox: list[Notice] = []
        self.listeners: list[Callable[[Notice], None]] = []

    def _load(self) -> World:
        return World.model_validate_json(self._path.read_bytes()) if self._path.exists() else World()

    def now(self) -> str:
        return iso(self._clock())

    @contextmanager
    def _reading(self) -> Iterator[World]:
        with self._lock:
            yield self._world

    @contextmanager
    def _mutating(self) -> Iterator[World]:
        """Commit a change to disk, or roll back to the file if it failed half-way.

        Notices raised during the change go to the listeners after it is saved,
        outside the lock, so a webhook never describes a change that was rolled back."""
        with self._lock:
            self._depth += 1
            try:
                yield self._world
            except BaseException:
                self._world = self._load()  # the file always holds the last good state
                if self._depth == 1:
                    self._outbox.clear()
                raise
            finally:
                self._depth -= 1
            self._save()
            notices: list[Notice] = []
            if self._depth == 0:
                notices, self._outbox = self._outbox, []
        for notice in notices:
            for listener in list(self.listeners):
                listener(notice)

    def _notify(self, event: str, action: str, repo: Repo, number: int, actor: str, **extra: object) -> None:
        self._outbox.append(Notice(event, action, repo.full_name, number, actor, dict(extra)))

    def _save(self) -> None:
        """Write via a temp file and rename, so a crash never leaves half a file."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".state-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(self._world.model_dump_json(indent=1))
        os.replace(tmp, self._path)

    @staticmethod
    def _new_id(world: World) -> int:
        world.next_id += 1
        return world.next_id - 1

    # -- users -----------------------------------------------------------

    def add_user(self, login: str, token: str | None = None, *, admin: bool = False) -> User:
        """Create or update a user; a token, when given, authenticates as them."""
        with self._mutating() as w:
            user = self._ensure_user(w, login)
            user.site_admin = user.site_admin or admin
            if token is not None:
                w.tokens[token_digest(token)] = login.lower()
            return user.model_copy(deep=True)

    def _ensure_user(self, world: World, login: str) -> User:
        key = login.lower()
        if key not in world.users:
            world.users[key] = User(login=login, id=self._new_id(world), created_at=self.now())
        return world.users[key]

    def login_for_token(self, token: str) -> str | None:
        principal = self.principal_for_token(token)
        return principal.login if principal else None

    def users(self) -> dict[str, User]:
        with self._reading() as w:
            return {k: u.model_copy() for k, u in w.users.items()}

    # -- repositories ----------------------------------------------------

    def create_repo(
        self,
        owner: str,
        name: str,
        *,
        private: bool = True,
        default_branch: str = "main",
        description: str | None = None,
    ) -> Repo:
        with self._mutating() as w:
            key = f"{owner}/{name}".lower()
            if key in w.repos:
                raise UnprocessableEntity(
                    [{"resource": "Repository", "code": "custom", "field": "name",
                      "message": "name already exists on this account"}],
                    "Repository creation failed.",
                )
            owner_user = self._ensure_user(w, owner)
            now = self.now()
            w.repos[key] = Repo(
                id=self._new_id(w), owner=owner_user.login, name=name, private=private,
                description=description, default_branch=default_branch,
                created_at=now, updated_at=now,
            )
            w.issues[key], w.comments[key] = {}, {}
            return w.repos[key].model_copy(deep=True)

    def repos(self) -> list[Repo]:
        with self._reading() as w:
            return [r.model_copy(deep=True) for r in w.repos.values()]

    def has_repo(self, full_name: str) -> bool:
        with self._reading() as w:
            return full_name.lower() in w.repos

    def repo(self, full_name: str) -> Repo:
        with self._reading() as w:
            return self._repo(w, full_name).model_copy(deep=True)

    @staticmethod
    def _repo(world: World, full_name: str) -> Repo:
        try:
            return world.repos[full_name.lower()]
        except KeyError:
            raise ResourceNotFound() from None

    def permission(self, full_name: str, login: str | None) -> Permission:
        """Resolve a user's effective role: site admin, owner, collaborator, or public read."""
        with self._reading() as w:
            repo = self._repo(w, full_name)
            user = w.users.get(login.lower()) if login else None
            if user is None:
                return "none"
            if user.bot:
                # An app's bot may write (contents, issues, pulls) where the app is installed;
                # which installation a token belongs to is checked by the caller.
                installed = any(i.covers(repo.full_name) for i in w.installations.values()
                                if w.apps[i.app_id].bot_login.lower() == user.login.lower())
                return "write" if installed else ("none" if repo.private else "read")
            if user.site_admin or user.login.lower() == repo.owner.lower():
                return "admin"
            granted = repo.collaborators.get(user.login.lower(), "none")
            return granted if repo.private or permits(granted, "read") else "read"

    def set_permission(self, full_name: str, login: str, permission: Permission) -> None:
        with self._mutating() as w:
            repo = self._repo(w, full_name)
            self._ensure_user(w, login)
            repo.collaborators[login.lower()] = permission

    # -- labels ----------------------------------------------------------

    def create_label(
        self, full_name: str, name: str, color: str = "ededed", description: str | None = None
    ) -> Label:
        with self._mutating() as w:
            repo = self._repo(w, full_name)
            if name.lower() in repo.labels:
                raise UnprocessableEntity(
                    [{"resource": "Label", "code": "already_exists", "field": "name"}]
                )
            return self._ensure_label(w, repo, name, color, description).model_copy()

    def _ensure_label(
        self, world: World, repo: Repo, name: str, color: str = "ededed",
        description: str | None = None,
    ) -> Label:
        if not name.strip():
            raise UnprocessableEntity([{"resource": "Label", "code": "missing_field", "field": "name"}])
        if name.lower() not in repo.labels:
            repo.labels[name.lower()] = Label(
                id=self._new_id(world), name=name, color=color.lstrip("#"), description=description
            )
        return repo.labels[name.lower()]

    # -- issues ----------------------------------------------------------

    def _issue(self, world: World, full_name: str, number: int) -> tuple[Repo, Issue]:
        repo = self._repo(world, full_name)
        issue = world.issues[repo.full_name.lower()].get(number)
        if issue is None:
            raise ResourceNotFound()
        return repo, issue

    def issue(self, full_name: str, number: int) -> Issue:
        with self._reading() as w:
            return self._issue(w, full_name, number)[1].model_copy(deep=True)

    def issues(self, full_name: str) -> list[Issue]:
        with self._reading() as w:
            repo = self._repo(w, full_name)
            return [i.model_copy(deep=True) for i in w.issues[repo.full_name.lower()].values()]

    def create_issue(
        self,
        full_name: str,
        *,
        title: str,
        body: str | None,
        actor: str,
        labels: Iterable[str] = (),
        pull: tuple[str, str, bool] | None = None,
    ) -> Issue:
        """Open an issue, or a pull request when ``pull`` is ``(head, base, draft)``."""
        if not title:
            raise UnprocessableEntity([{"resource": "Issue", "code": "missing_field", "field": "title"}])
        with self._mutating() as w:
            repo = self._repo(w, full_name)
            user = self._ensure_user(w, actor)
            now = self.now()
            info = None
            if pull is not None:
                head, base, draft = pull
                self._refuse_duplicate_pull(w, repo, head, base)
                info = PullInfo(id=self._new_id(w), head=head, base=base, draft=draft)
            issue = Issue(
                number=repo.next_number, id=self._new_id(w), title=title, body=body,
                user=user.login, created_at=now, updated_at=now, pull=info,
            )
            repo.next_number += 1
            w.issues[repo.full_name.lower()][issue.number] = issue
            self._notify("pull_request" if info else "issues", "opened", repo, issue.number, user.login)
            self._change_labels(w, repo, issue, add=labels, actor=user.login)
            return issue.model_copy(deep=True)

    def update_issue(
        self,
        full_name: str,
        number: int,
        *,
        actor: str,
        title: str | None = None,
        body: str | None = None,
        state: str | None = None,
        state_reason: str | None = None,
        labels: Iterable[str] | None = None,
        base: str | None = None,
    ) -> Issue:
        """Apply a PATCH; ``None`` leaves a field alone. ``base`` only applies to PRs."""
        with self._mutating() as w:
            repo, issue = self._issue(w, full_name, number)
            changes = {name: {"from": old} for name, old, new in
                       (("title", issue.title, title), ("body", issue.body, body))
                       if new is not None and new != old}
            if title is not None:
                issue.title = title
            if body is not None and body != (issue.body or ""):
                self._record_edit(issue, body, actor)
            if changes:
                self._notify("pull_request" if issue.pull else "issues", "edited", repo, number, actor,
                             changes=changes)
            if base is not None and issue.pull is not None:
                issue.pull.base = base
            if state == "open" and issue.state == "closed" and issue.pull is not None:
                if issue.pull.merged_at is not None:
                    raise UnprocessableEntity([{"resource": "PullRequest", "code": "custom", "field": "state",
                                             "message": "state cannot be changed. The pull request has been merged."}])
                self._refuse_duplicate_pull(w, repo, issue.pull.head, issue.pull.base)
            if state is not None:
                was = issue.state
                self._set_state(issue, state, state_reason, actor)
                if issue.state != was:
                    self._notify("pull_request" if issue.pull else "issues",
                                 "closed" if issue.state == "closed" else "reopened", repo, number, actor)
            if labels is not None:
                labels = list(labels)
                keep = {n.lower() for n in labels}
                drop = [n for n in issue.labels if n.lower() not in keep]
                self._change_labels(w, repo, issue, add=labels, remove=drop, actor=actor)
            issue.updated_at = self.now()
            return issue.model_copy(deep=True)

    def _record_edit(self, issue: Issue, body: str, actor: str) -> None:
        """Change the body and keep its history, as GitHub's ``userContentEdits`` does.

        The first edit also records the original text (``includesCreatedEdit``),
        dated when the issue was created and attributed to its author.
        """
        if not issue.edits:
            issue.edits.append(ContentEdit(id=self._new_id(self._world), editor=issue.user,
                                           edited_at=issue.created_at, diff=issue.body or ""))
        now = self.now()
        issue.edits.append(ContentEdit(id=self._new_id(self._world), editor=actor, edited_at=now, diff=body))
        issue.body, issue.last_edited_at, issue.editor = body, now, actor

    def _set_state(self, issue: Issue, state: str, reason: str | None, actor: str) -> None:
        if state not in ("open", "closed"):
            raise UnprocessableEntity([{"resource": "Issue", "code": "invalid", "field": "state"}])
        if reason not in (None, "completed", "not_planned", "duplicate", "reopened"):
            raise UnprocessableEntity([{"resource": "Issue", "code": "invalid", "field": "state_reason"}])
        if state == issue.state:
            return
        issue.state = "open" if state == "open" else "closed"
        if state == "closed":
            issue.closed_at, issue.closed_by = self.now(), actor
            issue.state_reason = reason or "completed"
        else:
            issue.closed_at, issue.closed_by = None, None
            issue.state_reason = "reopened"
        self._record(issue, "closed" if state == "closed" else "reopened", actor)

    def _record(self, issue: Issue, event: str, actor: str, label: Label | None = None) -> None:
        issue.events.append(Event(
            id=self._new_id(self._world), event=event, actor=actor, created_at=self.now(),
            label={"name": label.name, "color": label.color} if label else None,
        ))

    def _change_labels(
        self, world: World, repo: Repo, issue: Issue, *, actor: str,
        add: Iterable[str] = (), remove: Iterable[str] = (),
    ) -> None:
        """Add and remove labels, creating repo labels on demand and recording events."""
        for name in remove:
            current = [n for n in issue.labels if n.lower() == name.lower()]
            if not current:
                raise ResourceNotFound("Label does not exist")
            issue.labels.remove(current[0])
            self._record(issue, "unlabeled", actor, repo.labels.get(name.lower()))
            self._notify("pull_request" if issue.pull else "issues", "unlabeled", repo, issue.number, actor,
                         label=current[0])
        for name in add:
            label = self._ensure_label(world, repo, name)
            if label.name.lower() not in {n.lower() for n in issue.labels}:
                issue.labels.append(label.name)
                self._record(issue, "labeled", actor, label)
                self._notify("pull_request" if issue.pull else "issues", "labeled", repo, issue.number, actor,
                             label=label.name)
        issue.updated_at = self.now()

    def add_labels(self, full_name: str, number: int, names: Iterable[str], *, actor: str) -> Issue:
        with self._mutating() as w:
            repo, issue = self._issue(w, full_name, number)
            self._change_labels(w, repo, issue, add=names, actor=actor)
            return issue.model_copy(deep=True)

    def remove_label(self, full_name: str, number: int, name: str, *, actor: str) -> Issue:
        with self._mutating() as w:
            repo, issue = self._issue(w, full_name, number)
            self._change_labels(w, repo, issue, remove=[name], actor=actor)
            return issue.model_copy(deep=True)

    # -- comments --------------------------------------------------------

    def add_comment(self, full_name: str, number: int, body: str, *, actor: str) -> Comment:
        if not body:
            raise UnprocessableEntity([{"resource": "IssueComment", "code": "missing_field", "field": "body"}])
        with self._mutating() as w:
            repo, issue = self._issue(w, full_name, number)
            user = self._ensure_user(w, actor)
            now = self.now()
            comment = Comment(
                id=self._new_id(w), issue_number=number, user=user.login, body=body,
                created_at=now, updated_at=now,
            )
            w.comments[repo.full_name.lower()][comment.id] = comment
            issue.comment_count += 1
            issue.updated_at = now
            self._notify("issue_comment", "created", repo, number, user.login, comment_id=comment.id)
            return comment.model_copy()

    def comment(self, full_name: str, comment_id: int) -> Comment:
        with self._reading() as w:
            repo = self._repo(w, full_name)
            found = w.comments[repo.full_name.lower()].get(comment_id)
            if found is None:
                raise ResourceNotFound()
            return found.model_copy()

    def comments(self, full_name: str, number: int | None = None) -> list[Comment]:
        """Comments on issue ``number``, or on every issue of the repository."""
        with self._reading() as w:
            repo = self._repo(w, full_name) if number is None else self._issue(w, full_name, number)[0]
            found = w.comments[repo.full_name.lower()].values()
            return [c.model_copy() for c in found if number in (None, c.issue_number)]

    def edit_comment(self, full_name: str, comment_id: int, body: str) -> Comment:
        with self._mutating() as w:
            repo = self._repo(w, full_name)
            found = w.comments[repo.full_name.lower()].get(comment_id)
            if found is None:
                raise ResourceNotFound()
            changes = {"body": {"from": found.body}}
            found.body, found.updated_at = body, self.now()
            self._notify("issue_comment", "edited", repo, found.issue_number, found.user,
                         comment_id=comment_id, changes=changes)
            return found.model_copy()

    # -- GitHub Apps -----------------------------------------------------

    def create_app(self, slug: str, *, name: str, owner: str, public_key_pem: str,
                   webhook_url: str | None, webhook_secret: str | None,
                   events: Iterable[str]) -> GitHubAppRecord:
        """Register an app and its ``<slug>[bot]`` user."""
        with self._mutating() as w:
            if any(a.slug.lower() == slug.lower() for a in w.apps.values()):
                raise UnprocessableEntity([{"resource": "Integration", "code": "already_exists", "field": "slug"}])
            self._ensure_user(w, owner)
            app = GitHubAppRecord(id=self._new_id(w), slug=slug, name=name, owner=owner,
                                  public_key_pem=public_key_pem, created_at=self.now(),
                                  webhook_url=webhook_url, webhook_secret=webhook_secret, events=list(events))
            w.apps[app.id] = app
            self._ensure_user(w, app.bot_login).bot = True
            return app.model_copy(deep=True)

    def app(self, app_id: int) -> GitHubAppRecord:
        with self._reading() as w:
            if app_id not in w.apps:
                raise ResourceNotFound("Integration not found")
            return w.apps[app_id].model_copy(deep=True)

    def apps(self) -> list[GitHubAppRecord]:
        with self._reading() as w:
            return [a.model_copy(deep=True) for a in w.apps.values()]

    def update_app(self, app_id: int, **fields: object) -> GitHubAppRecord:
        with self._mutating() as w:
            if app_id not in w.apps:
                raise ResourceNotFound("Integration not found")
            for name, value in fields.items():
                setattr(w.apps[app_id], name, value)
            return w.apps[app_id].model_copy(deep=True)

    def install_app(self, app_id: int, account: str, repositories: Iterable[str] | None) -> Installation:
        with self._mutating() as w:
            if app_id not in w.apps:
                raise ResourceNotFound("Integration not found")
            self._ensure_user(w, account)
            chosen = None if repositories is None else [r.lower() for r in repositories]
            installation = Installation(id=self._new_id(w), app_id=app_id, account=account,
                                        repositories=chosen, created_at=self.now())
            w.installations[installation.id] = installation
            return installation.model_copy(deep=True)

    def uninstall(self, installation_id: int) -> None:
        with self._mutating() as w:
            w.installations.pop(installation_id, None)
            w.installation_tokens = {k: t for k, t in w.installation_tokens.items()
                                     if t.installation_id != installation_id}

    def installations(self, app_id: int | None = None) -> list[Installation]:
        with self._reading() as w:
            return [i.model_copy(deep=True) for i in w.installations.values() if app_id in (None, i.app_id)]

    def installation(self, installation_id: int) -> Installation:
        with self._reading() as w:
            if installation_id not in w.installations:
                raise ResourceNotFound()
            return w.installations[installation_id].model_copy(deep=True)

    def issue_installation_token(self, installation_id: int, token: str, lifetime: timedelta) -> InstallationToken:
        """Record a new token for the installation; it stops working at ``expires_at``."""
        with self._mutating() as w:
            if installation_id not in w.installations:
                raise ResourceNotFound()
            record = InstallationToken(installation_id=installation_id,
                                       expires_at=iso(self._clock() + lifetime))
            w.installation_tokens[token_digest(token)] = record
            return record.model_copy()

    def expire_installation_tokens(self, installation_id: int | None = None) -> int:
        """Make tokens (of one installation, or all) expire now; returns how many."""
        with self._mutating() as w:
            hit = [t for t in w.installation_tokens.values() if installation_id in (None, t.installation_id)]
            for token in hit:
                token.expires_at = self.now()
            return len(hit)

    def principal_for_token(self, token: str) -> Principal | None:
        """The user a token authenticates as; an expired installation token is nobody."""
        digest = token_digest(token)
        with self._reading() as w:
            key = w.tokens.get(digest)
            if key:
                return Principal(w.users[key].login)
            record = w.installation_tokens.get(digest)
            if record is None or record.expires_at <= self.now():
                return None
            installation = w.installations.get(record.installation_id)
            if installation is None:
                return None
            return Principal(w.apps[installation.app_id].bot_login, installation.id)

    # -- pull requests ---------------------------------------------------

    @staticmethod
    def _refuse_duplicate_pull(world: World, repo: Repo, head: str, base: str) -> None:
        """GitHub allows one open PR per head and base; a second one is a 422."""
        for issue in world.issues[repo.full_name.lower()].values():
            pull = issue.pull
            if pull and issue.state == "open" and (pull.head, pull.base) == (head, base):
                raise UnprocessableEntity([{
                    "resource": "PullRequest", "code": "custom",
                    "message": f"A pull request already exists for {repo.owner}:{head}.",
                }])

    def merge_pull(self, full_name: str, number: int, *, actor: str, merge_commit_sha: str | None) -> Issue:
        with self._mutating() as w:
            repo, issue = self._issue(w, full_name, number)
            if issue.pull is None:
                raise ResourceNotFound()
            if issue.pull.merged_at is not None or issue.state != "open":
                raise EmulatorError("Pull Request is not mergeable", status=405)
            issue.pull.merged_at, issue.pull.merged_by = self.now(), actor
            issue.pull.merge_commit_sha = merge_commit_sha
            self._record(issue, "merged", actor)
            self._set_state(issue, "closed", None, actor)
            issue.updated_at = self.now()
            # GitHub announces a merge as pull_request "closed" with merged: true.
            self._notify("pull_request", "closed", repo, number, actor)
            return issue.model_copy(deep=True)

    # -- reviews, review comments, reactions -------------------------------

    def add_review(self, full_name: str, number: int, *, body: str, state: str, actor: str,
                   commit_id: str | None) -> Review:
        """Store a submitted review and announce ``pull_request_review.submitted``."""
        with self._mutating() as w:
            repo, issue = self._issue(w, full_name, number)
            if issue.pull is None:
                raise ResourceNotFound()
            user = self._ensure_user(w, actor)
            review = Review(id=self._new_id(w), pull_number=number, user=user.login, body=body,
                            state=state, commit_id=commit_id, submitted_at=self.now())  # type: ignore[arg-type]
            w.reviews.setdefault(repo.full_name.lower(), {})[review.id] = review
            issue.updated_at = review.submitted_at
            self._notify("pull_request_review", "submitted", repo, number, user.login, review_id=review.id)
            return review.model_copy()

    def reviews(self, full_name: str, number: int) -> list[Review]:
        with self._reading() as w:
            repo, _ = self._issue(w, full_name, number)
            found = w.reviews.get(repo.full_name.lower(), {}).values()
            return [r.model_copy() for r in found if r.pull_number == number]

    def review(self, full_name: str, review_id: int) -> Review:
        with self._reading() as w:
            found = w.reviews.get(self._repo(w, full_name).full_name.lower(), {}).get(review_id)
            if found is None:
                raise ResourceNotFound()
            return found.model_copy()

    def add_review_comment(self, full_name: str, number: int, *, body: str, path: str, line: int | None,
                           actor: str, diff_hunk: str, commit_id: str | None, review_id: int | None = None,
                           in_reply_to_id: int | None = None) -> ReviewComment:
        """Store a comment on the PR's diff and announce ``pull_request_review_comment.created``."""
        if not body:
            raise UnprocessableEntity([{"resource": "PullRequestReviewComment", "code": "missing_field",
                                     "field": "body"}])
        with self._mutating() as w:
            repo, issue = self._issue(w, full_name, number)
            if issue.pull is None:
                raise ResourceNotFound()
            user = self._ensure_user(w, actor)
            now = self.now()
            comment = ReviewComment(id=self._new_id(w), pull_number=number, review_id=review_id, user=user.login,
                                    body=body, path=path, line=line, diff_hunk=diff_hunk, commit_id=commit_id,
                                    in_reply_to_id=in_reply_to_id, created_at=now, updated_at=now)
            w.review_comments.setdefault(repo.full_name.lower(), {})[comment.id] = comment
            issue.updated_at = now
            self._notify("pull_request_review_comment", "created", repo, number, user.login,
                         review_comment_id=comment.id)
            return comment.model_copy()

    def review_comments(self, full_name: str, number: int | None = None) -> list[ReviewComment]:
        """Review comments on PR ``number``, or on every PR of the repository."""
        with self._reading() as w:
            repo = self._repo(w, full_name)
            found = w.review_comments.get(repo.full_name.lower(), {}).values()
            return [c.model_copy() for c in found if number in (None, c.pull_number)]

    def review_comment(self, full_name: str, comment_id: int) -> ReviewComment:
        with self._reading() as w:
            found = w.review_comments.get(self._repo(w, full_name).full_name.lower(), {}).get(comment_id)
            if found is None:
                raise ResourceNotFound()
            return found.model_copy()

    def add_reaction(self, full_name: str, subject: str, subject_id: int, content: str, *,
                     actor: str) -> tuple[Reaction, bool]:
        """React to a comment once per user and content; (reaction, created)."""
        with self._mutating() as w:
            repo = self._repo(w, full_name)
            key = f"{repo.full_name.lower()}|{subject}|{subject_id}"
            user = self._ensure_user(w, actor)
            for reaction in w.reactions.get(key, []):
                if reaction.user.lower() == user.login.lower() and reaction.content == content:
                    return reaction.model_copy(), False
            reaction = Reaction(id=self._new_id(w), user=user.login, content=content,  # type: ignore[arg-type]
                                created_at=self.now())
            w.reactions.setdefault(key, []).append(reaction)
            return reaction.model_copy(), True

    def reactions(self, full_name: str, subject: str, subject_id: int) -> list[Reaction]:
        with self._reading() as w:
            key = f"{self._repo(w, full_name).full_name.lower()}|{subject}|{subject_id}"
            return [r.model_copy() for r in w.reactions.get(key, [])]
