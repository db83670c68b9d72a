"""Routes under ``/_emulator/`` that drive fault injection and read the request log
from another process; only a site admin (the emulator's admin token) may call them."""

from __future__ import annotations

from dataclasses import asdict

from .errors import EmulatorError, ResourceNotFound, UnprocessableEntity
from .routing import Context, Request, Response, Router

router = Router()

_FAULT_FIELDS = ("status", "count", "path_regex", "method", "retry_after", "delay",
                 "probability", "seed", "include_git", "message", "hang", "after_action")


def _require_admin(app: Context, req: Request) -> None:
    users = app.backend.store.users()
    user = users.get((req.user or "").lower())
    if user is None or not user.site_admin:
        raise ResourceNotFound()


@router.route("GET", "/_emulator/faults")
def list_faults(app: Context, req: Request) -> Response:
    _require_admin(app, req)
    return Response(200, [rule.as_json() for rule in app.faults.rules])


@router.route("POST", "/_emulator/faults")
def add_fault(app: Context, req: Request) -> Response:
    _require_admin(app, req)
    data = req.json_object()
    unknown = sorted(set(data) - set(_FAULT_FIELDS))
    if unknown:
        raise UnprocessableEntity([{"resource": "Fault", "code": "invalid", "field": f} for f in unknown])
    try:
        rule = app.faults.inject(**data)
    except (TypeError, ValueError) as exc:
        raise EmulatorError(str(exc), status=422) from exc
    return Response(201, rule.as_json())


@router.route("DELETE", "/_emulator/faults")
def clear_faults(app: Context, req: Request) -> Response:
    _require_admin(app, req)
    app.faults.clear()
    return Response(204)


@router.route("GET", "/_emulator/requests")
def list_requests(app: Context, req: Request) -> Response:
    _require_admin(app, req)
    return Response(200, [asdict(record) for record in app.request_log])


@router.route("DELETE", "/_emulator/requests")
def clear_requests(app: Context, req: Request) -> Response:
    _require_admin(app, req)
    app.clear_request_log()
    return Response(204)


@router.route("GET", "/_emulator/limits")
def list_limit_hits(app: Context, req: Request) -> Response:
    """Every request refused for a rate limit (secondary or primary), and the limits in force."""
    _require_admin(app, req)
    limits = app.limits
    return Response(200, {"enabled": limits is not None,
                          "config": asdict(limits.config) if limits else None,
                          "hits": [hit.as_json() for hit in limits.hits] if limits else []})


@router.route("DELETE", "/_emulator/limits")
def clear_limit_hits(app: Context, req: Request) -> Response:
    _require_admin(app, req)
    if app.limits is not None:
        app.limits.clear_hits()
    return Response(204)
