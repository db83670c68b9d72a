"""REST routes for GitHub Apps: the app itself, its installations, and installation tokens.

A JWT signed with the app's private key (RS256) authenticates as the app, and
only reaches these routes; an installation token authenticates as the app's
``<slug>[bot]`` user, limited to the repositories of that installation:
https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app/about-authentication-with-a-github-app
"""

from __future__ import annotations

import secrets
import string
import time
from typing import Any

import jwt

from .errors import ResourceNotFound, Unauthorized
from .records import GitHubAppRecord, Installation
from .routing import Context, Handler, Request, Response, Router, paginate

router = Router()
#: Handlers that take a JWT (and nothing else).
JWT_HANDLERS: set[Handler] = set()

#: What every emulated app may do; the runner's documented permissions.
APP_PERMISSIONS = {"contents": "write", "issues": "write", "pull_requests": "write", "metadata": "read"}
_MAX_JWT_LIFETIME_S = 600  # GitHub: "no more than 10 minutes into the future"
_CLOCK_DRIFT_S = 60


def _jwt_route(method: str, pattern: str) -> Any:
    def register(handler: Handler) -> Handler:
        JWT_HANDLERS.add(handler)
        return router.route(method, pattern)(handler)

    return register


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def verify_jwt(app: Context, token: str, now: float | None = None) -> int:
    """Return the app id a JWT proves, or raise 401 with GitHub's wording."""
    now = time.time() if now is None else now
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        app_id = int(claims["iss"])
        record = app.backend.store.app(app_id)
        claims = jwt.decode(token, record.public_key_pem, algorithms=["RS256"],
                            options={"require": ["iat", "exp", "iss"], "verify_exp": False,
                                     "verify_iat": False})
    except (jwt.PyJWTError, KeyError, ValueError, TypeError, ResourceNotFound):
        raise Unauthorized("A JSON web token could not be decoded") from None
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or iat > now + _CLOCK_DRIFT_S:
        raise Unauthorized("'Issued at' claim ('iat') must be an Integer representing the time "
                             "that the assertion was issued.")
    if not isinstance(exp, int) or exp <= now:
        raise Unauthorized("'Expiration time' claim ('exp') must be a numeric value representing "
                             "the future time at which the assertion expires.")
    if exp - max(iat, int(now) - _CLOCK_DRIFT_S) > _MAX_JWT_LIFETIME_S + _CLOCK_DRIFT_S:
        raise Unauthorized("'Expiration time' claim ('exp') is too far in the future.")
    return app_id


def new_installation_token() -> str:
    alphabet = string.ascii_letters + string.digits
    return "ghs_" + "".join(secrets.choice(alphabet) for _ in range(36))


def app_json(app: Context, record: GitHubAppRecord) -> dict[str, Any]:
    base = app.base_url
    return {
        "id": record.id, "slug": record.slug, "node_id": f"A_{record.id}", "name": record.name,
        "owner": app.backend.renderer().user(record.owner), "description": None,
        "external_url": f"{base}/apps/{record.slug}", "html_url": f"{base}/apps/{record.slug}",
        "created_at": record.created_at, "updated_at": record.created_at,
        "permissions": dict(APP_PERMISSIONS), "events": list(record.events),
        "installations_count": len(app.backend.store.installations(record.id)),
    }


def installation_json(app: Context, installation: Installation) -> dict[str, Any]:
    record = app.backend.store.app(installation.app_id)
    base = app.base_url
    account = app.backend.renderer().user(installation.account) or {}
    return {
        "id": installation.id, "account": account, "app_id": record.id, "app_slug": record.slug,
        "client_id": f"Iv1.{record.id:016x}",
        "target_id": account.get("id", 0), "target_type": "User",
        "repository_selection": "all" if installation.repositories is None else "selected",
        "access_tokens_url": f"{base}/app/installations/{installation.id}/access_tokens",
        "repositories_url": f"{base}/installation/repositories",
        "html_url": f"{base}/settings/installations/{installation.id}",
        "permissions": dict(APP_PERMISSIONS), "events": list(record.events),
        "created_at": installation.created_at, "updated_at": installation.created_at,
        "single_file_name": None, "has_multiple_single_files": False, "single_file_paths": [],
        "suspended_by": None, "suspended_at": None,
    }


def _own_installation(app: Context, req: Request, installation_id: int) -> Installation:
    installation = app.backend.store.installation(installation_id)
    if installation.app_id != req.app_id:
        raise ResourceNotFound()
    return installation


@_jwt_route("GET", "/app")
def get_app(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/apps/apps#get-the-authenticated-app
    assert req.app_id is not None
    return Response(200, app_json(app, app.backend.store.app(req.app_id)))


@_jwt_route("GET", "/app/installations")
def list_installations(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/apps/apps#list-installations-for-the-authenticated-app
    found = app.backend.store.installations(req.app_id)
    return paginate(app, req, found, lambda i: installation_json(app, i))


@_jwt_route("GET", "/app/installations/{id:int}")
def get_installation(app: Context, req: Request) -> Response:
    return Response(200, installation_json(app, _own_installation(app, req, int(req.params["id"]))))


@_jwt_route("POST", "/app/installations/{id:int}/access_tokens")
def create_access_token(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app
    installation = _own_installation(app, req, int(req.params["id"]))
    token = new_installation_token()
    record = app.backend.store.issue_installation_token(installation.id, token, app.token_lifetime)
    return Response(201, {
        "token": token, "expires_at": record.expires_at, "permissions": dict(APP_PERMISSIONS),
        "repository_selection": "all" if installation.repositories is None else "selected",
    })


@_jwt_route("GET", "/repos/{owner}/{repo}/installation")
def get_repo_installation(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/apps/apps#get-a-repository-installation-for-the-authenticated-app
    full_name = f"{req.params['owner']}/{req.params['repo']}"
    store = app.backend.store
    if not store.has_repo(full_name):
        raise ResourceNotFound()
    for installation in store.installations(req.app_id):
        if installation.covers(store.repo(full_name).full_name):
            return Response(200, installation_json(app, installation))
    raise ResourceNotFound()


@router.route("GET", "/users/{username}")
def get_user(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/users/users#get-a-user
    users = app.backend.store.users()
    if req.params["username"].lower() not in users:
        raise ResourceNotFound()
    return Response(200, app.backend.renderer().public_user(req.params["username"]))
