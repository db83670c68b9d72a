"""REST routes for pull request reviews, review comments and reactions.

Reviews and review comments are stored and announced to webhooks
(``pull_request_review``, ``pull_request_review_comment``) like GitHub does.
Reactions are kept once per user and content: a second identical reaction is
answered 200 with the existing one instead of 201.
"""

from __future__ import annotations

from .api_issues import since_arg
from .errors import ResourceNotFound, UnprocessableEntity
from .routing import Context, Request, Response, Router, body_field, paginate

router = Router()

# https://docs.github.com/rest/pulls/reviews#create-a-review-for-a-pull-request
_EVENT_STATE = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")


def _pull_number(app: Context, req: Request) -> int:
    repo = app.repo(req)
    number = int(req.params["number"])
    if app.backend.store.issue(repo.full_name, number).pull is None:
        raise ResourceNotFound()
    return number


@router.route("GET", "/repos/{owner}/{repo}/pulls/{number:int}/reviews")
def list_reviews(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    reviews = app.backend.store.reviews(repo.full_name, _pull_number(app, req))
    renderer = app.backend.renderer()
    return paginate(app, req, reviews, lambda r: renderer.review(repo, r))


@router.route("GET", "/repos/{owner}/{repo}/pulls/{number:int}/reviews/{id:int}")
def get_review(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    number = _pull_number(app, req)
    review = app.backend.store.review(repo.full_name, int(req.params["id"]))
    if review.pull_number != number:
        raise ResourceNotFound()
    return Response(200, app.backend.renderer().review(repo, review))


@router.route("GET", "/repos/{owner}/{repo}/pulls/{number:int}/reviews/{id:int}/comments")
def list_comments_for_review(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/pulls/reviews#list-comments-for-a-pull-request-review
    repo = app.repo(req)
    number, review_id = _pull_number(app, req), int(req.params["id"])
    if app.backend.store.review(repo.full_name, review_id).pull_number != number:
        raise ResourceNotFound()
    comments = [c for c in app.backend.store.review_comments(repo.full_name, number) if c.review_id == review_id]
    renderer = app.backend.renderer()
    return paginate(app, req, comments, lambda c: renderer.review_comment(repo, c))


@router.route("POST", "/repos/{owner}/{repo}/pulls/{number:int}/reviews")
def create_review(app: Context, req: Request) -> Response:
    repo = app.repo(req, "read")
    assert req.user is not None
    number = _pull_number(app, req)
    data = req.json_object()
    event = body_field(data, "event", str, resource="PullRequestReview") or "COMMENT"
    state = _EVENT_STATE.get(event.upper())
    body = body_field(data, "body", str, resource="PullRequestReview") or ""
    if state is None:
        raise UnprocessableEntity([f"Unknown review event {event!r}"], "Unprocessable Entity")
    if state != "APPROVED" and not body:
        # GitHub: "Body is required when using REQUEST_CHANGES or COMMENT events" (validation_failed_simple)
        raise UnprocessableEntity(["Body is required when using REQUEST_CHANGES or COMMENT events"],
                               "Unprocessable Entity")
    review = app.backend.submit_review(repo, number, body=body, state=state, actor=req.user,
                                       comments=data.get("comments") or [])
    return Response(200, app.backend.renderer().review(repo, review))


@router.route("GET", "/repos/{owner}/{repo}/pulls/comments")
def list_repo_review_comments(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/pulls/comments#list-review-comments-in-a-repository
    repo = app.repo(req)
    since = since_arg(req, "PullRequestReviewComment")
    comments = [c for c in app.backend.store.review_comments(repo.full_name)
                if since is None or c.updated_at >= since]
    comments.sort(key=lambda c: (c.updated_at if req.arg("sort") == "updated" else c.created_at, c.id),
                  reverse=req.arg("direction", "asc") == "desc")
    renderer = app.backend.renderer()
    return paginate(app, req, comments, lambda c: renderer.review_comment(repo, c))


@router.route("GET", "/repos/{owner}/{repo}/pulls/{number:int}/comments")
def list_review_comments(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    comments = app.backend.store.review_comments(repo.full_name, _pull_number(app, req))
    renderer = app.backend.renderer()
    return paginate(app, req, comments, lambda c: renderer.review_comment(repo, c))


@router.route("POST", "/repos/{owner}/{repo}/pulls/{number:int}/comments")
def create_review_comment(app: Context, req: Request) -> Response:
    repo = app.repo(req, "read")
    assert req.user is not None
    number = _pull_number(app, req)
    data = req.json_object()
    comment = app.backend.comment_on_diff(
        repo, number, actor=req.user,
        body=body_field(data, "body", str, resource="PullRequestReviewComment", required=True),
        path=body_field(data, "path", str, resource="PullRequestReviewComment", required=True),
        line=body_field(data, "line", int, resource="PullRequestReviewComment"),
    )
    return Response(201, app.backend.renderer().review_comment(repo, comment))


@router.route("GET", "/repos/{owner}/{repo}/pulls/comments/{id:int}")
def get_review_comment(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    comment = app.backend.store.review_comment(repo.full_name, int(req.params["id"]))
    return Response(200, app.backend.renderer().review_comment(repo, comment))


def _react(app: Context, req: Request, subject: str) -> Response:
    repo = app.repo(req, "read")
    assert req.user is not None
    subject_id = int(req.params["id"])
    if subject == "issue_comment":
        app.backend.store.comment(repo.full_name, subject_id)
    else:
        app.backend.store.review_comment(repo.full_name, subject_id)
    content = body_field(req.json_object(), "content", str, resource="Reaction", required=True)
    if content not in REACTIONS:
        raise UnprocessableEntity([{"resource": "Reaction", "code": "invalid", "field": "content"}])
    reaction, created = app.backend.store.add_reaction(repo.full_name, subject, subject_id, content,
                                                       actor=req.user)
    return Response(201 if created else 200, app.backend.renderer().reaction(reaction))


@router.route("POST", "/repos/{owner}/{repo}/issues/comments/{id:int}/reactions")
def react_to_issue_comment(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/reactions/reactions#create-reaction-for-an-issue-comment
    return _react(app, req, "issue_comment")


@router.route("GET", "/repos/{owner}/{repo}/issues/comments/{id:int}/reactions")
def list_issue_comment_reactions(app: Context, req: Request) -> Response:
    repo = app.repo(req)
    app.backend.store.comment(repo.full_name, int(req.params["id"]))
    reactions = app.backend.store.reactions(repo.full_name, "issue_comment", int(req.params["id"]))
    content = req.arg("content")
    return paginate(app, req, [r for r in reactions if content in (None, r.content)],
                    app.backend.renderer().reaction)


@router.route("POST", "/repos/{owner}/{repo}/pulls/comments/{id:int}/reactions")
def react_to_review_comment(app: Context, req: Request) -> Response:
    # https://docs.github.com/rest/reactions/reactions#create-reaction-for-a-pull-request-review-comment
    return _react(app, req, "review_comment")

