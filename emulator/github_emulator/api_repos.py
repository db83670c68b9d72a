"""REST routes for users, repositories, permissions, labels, branches, refs and contents."""

from __future__ import annotations

from .errors import ResourceNotFound, UnprocessableEntity
from .records import PERMISSION_ORDER, Permission
from .routing import Context, Request, Response, Router, body_field, paginate
from .traffic import rate_bucket

router = Router()


@router.route("GET", "/user")
def get_authenticated_user(app: Context, req: Request) -> Response:
    assert req.user is not None
    return Response(200, app.backend.renderer().authenticated_user(req.user))


@router.route("GET", "/rate_limit")
def get_rate_limit(app: Context, req: Request) -> Response:
    who = rate_bucket(req.user, req.installation_id)

    def resource(headers: dict[str, str]) -> dict[str, int]:
        return {"limit": int(headers["X-RateLimit-Limit"]), "remaining": int(headers["X-RateLimit-Remaining"]),
                "reset": int(headers["X-RateLimit-Reset"]), "used": int(headers["X-RateLimit-Used"])}

    core, graphql = resource(app.limiter.headers(who)), resource(app.graphql_limiter.headers(who))
    # core and graphql are enforced; the others are reported as untouched, like an idle account.
    others = {name: {"limit": limit, "remaining": limit, "reset": core["reset"], "used": 0}
              for name, limit in (("search", 30), ("code_search", 10), ("integration_manifest", 5000))}
    return Response(200, {"resources": {"core": core, "graphql": graphql, **others}, "rate": core})


@router.route("GET", "/user/repos")
def list_user_repos(app: Context, req: Request) -> Response:
    """Repositories the user owns or collaborates on, with permissions, oldest first (like `sort=created`)."""
    assert req.user is not None
    store = app.backend.store
    login = req.user.lower()
    mine = [r for r in store.repos() if r.owner.lower() == login or login in r.collaborators]
    renderer = app.backend.renderer()
    return paginate(app, req, mine, lambda repo: renderer.repo(repo, permission=store.permission(repo.full_name, req.user)))


@router.route("POST", "/user/repos")
def create_repo(app: Context, req: Request) -> Response:
    assert req.user is not None
    data = req.json_object()
    name = body_field(data, "name", str, resource="Repository", required=True)
    # auto_init makes the first commit (a README); without it the repository is empty.
    repo = app.backend.create_repo(
        f"{req.user}/{name}",
        private=bool(data.get("private", False)),
        default_branch=body_field(data, "default_branch", str, resource="Repository") or "main",
        description=body_field(data, "description", str, resource="Repository"),
        files={"README.md": f"# {name}\n"} if data.get("auto_init") else None,
    )
    return Response(201, app.backend.renderer().full_repo(repo, permission="admin"))


@router.route("GET", "/repos/{owner}/{repo}")
def get_repo(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    store = app.backend.store
    role = store.permission(repo.full_name, req.user)
    open_issues = sum(issue.state == "open" for issue in store.issues(repo.full_name))
    return Response(200, app.backend.renderer().full_repo(repo, permission=role, open_issues=open_issues))


@router.route("GET", "/repos/{owner}/{repo}/collaborators/{user}/permission")
def get_permission(app: Context, req: Request) -> Response:
    repo = app.repo(req, "write")
    users = app.backend.store.users()
    if req.params["user"].lower() not in users:
        raise ResourceNotFound()
    login = users[req.params["user"].lower()].login
    role = app.backend.store.permission(repo.full_name, login)
    return Response(200, app.backend.renderer().permission(repo, login, role))


LEGACY_ROLES: dict[str, Permission] = {"pull": "read", "push": "write"}


@router.route("PUT", "/repos/{owner}/{repo}/collaborators/{user}")
def add_collaborator(app: Context, req: Request) -> Response:
    repo = app.repo(req, "admin")
    data = req.json_object()
    asked = data.get("permission") or "push"
    # GitHub's docs name pull, triage, push, maintain and admin (what older clients send);
    # read and write are the newer names of pull and push, and GitHub takes both.
    role: Permission = LEGACY_ROLES.get(asked, asked)
    if role not in PERMISSION_ORDER or role == "none":
        raise UnprocessableEntity([{"resource": "Repository", "code": "invalid", "field": "permission"}])
    # GitHub sends an invitation; the emulator grants the role at once.
    app.backend.store.set_permission(repo.full_name, req.params["user"], role)
    return Response(204)


@router.route("GET", "/repos/{owner}/{repo}/labels")
def list_repo_labels(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    renderer = app.backend.renderer()
    return paginate(app, req, list(repo.labels.values()), lambda label: renderer.label(repo, label))


@router.route("GET", "/repos/{owner}/{repo}/labels/{name}")
def get_repo_label(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    label = repo.labels.get(req.params["name"].lower())
    if label is None:
        raise ResourceNotFound()
    return Response(200, app.backend.renderer().label(repo, label))


@router.route("POST", "/repos/{owner}/{repo}/labels")
def create_repo_label(app: Context, req: Request) -> Response:
    repo = app.repo(req, "write")
    data = req.json_object()
    label = app.backend.store.create_label(
        repo.full_name,
        body_field(data, "name", str, resource="Label", required=True),
        body_field(data, "color", str, resource="Label") or "ededed",
        body_field(data, "description", str, resource="Label"),
    )
    return Response(201, app.backend.renderer().label(app.backend.store.repo(repo.full_name), label))


@router.route("GET", "/repos/{owner}/{repo}/branches")
def list_branches(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    branches = sorted(app.backend.git(repo).branches().items())
    renderer = app.backend.renderer()
    return paginate(app, req, branches, lambda b: renderer.short_branch(repo, *b))


@router.route("GET", "/repos/{owner}/{repo}/branches/{branch:path}")
def get_branch(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    git = app.backend.git(repo)
    sha = git.branch_sha(req.params["branch"])
    if sha is None:
        raise ResourceNotFound("Branch not found")
    return Response(200, app.backend.renderer().branch(repo, req.params["branch"], git.commit(sha)))


@router.route("GET", "/repos/{owner}/{repo}/commits/{ref:path}")
def get_commit(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    git = app.backend.git(repo)
    sha = git.rev_parse(req.params["ref"])
    if sha is None:
        # GitHub answers an unknown ref here with 422, not 404.
        raise UnprocessableEntity([], "No commit found for SHA: " + req.params["ref"])
    return Response(200, app.backend.renderer().commit(repo, git.commit(sha)))


# PyGithub asks for git/ref/{ref}; older clients use git/refs/{ref}.
@router.route("GET", "/repos/{owner}/{repo}/git/ref/{ref:path}")
@router.route("GET", "/repos/{owner}/{repo}/git/refs/{ref:path}")
def get_ref(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    refname = "refs/" + req.params["ref"].strip("/")
    sha = app.backend.git(repo).rev_parse(refname)
    if sha is None:
        raise ResourceNotFound()
    return Response(200, app.backend.renderer().ref(repo, refname, sha))


@router.route("DELETE", "/repos/{owner}/{repo}/git/refs/{ref:path}")
def delete_ref(app: Context, req: Request) -> Response:
    """204, or 422 "Reference does not exist" as GitHub answers for a missing ref."""
    repo = app.repo(req, "write")
    if not app.backend.git(repo).delete_ref("refs/" + req.params["ref"].strip("/")):
        raise UnprocessableEntity([], "Reference does not exist")
    return Response(204)


@router.route("GET", "/repos/{owner}/{repo}/contents")
@router.route("GET", "/repos/{owner}/{repo}/contents/{path:path}")
def get_contents(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    git, renderer = app.backend.git(repo), app.backend.renderer()
    ref = req.arg("ref") or repo.default_branch
    path = req.params.get("path", "").strip("/")
    entry = git.entry(ref, path)
    if entry is None:
        raise ResourceNotFound()
    if entry.type == "tree":
        return Response(200, [renderer.content(repo, e, ref) for e in git.list_dir(ref, path)])
    data = git.read_blob(entry.sha) if entry.type == "blob" else None
    return Response(200, renderer.content(repo, entry, ref, data))
