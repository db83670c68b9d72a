"""Errors the emulator answers with, shaped like GitHub's client errors.

One class carries the HTTP status so the same exception serves both the
HTTP layer (rendered as ``{"message", "documentation_url"}``) and Python
callers of :class:`~github_emulator.GitHubEmulator`.

    EmulatorError
    ├── Unauthorized            401 "Bad credentials", "Requires authentication"
    ├── Forbidden               403
    ├── ResourceNotFound        404 "Not Found"
    └── UnprocessableEntity     422 "Validation Failed" (carries ``errors``)

The names are HTTP's, not those of :mod:`runner.errors`: an emulator error is
an answer the emulator gives, while the runner's ``NotFound`` or
``BadCredentials`` is what the runner makes of such an answer.
"""

from __future__ import annotations

from typing import Any

DOCS_URL = "https://docs.github.com/rest"


class EmulatorError(Exception):
    """Raise to answer a request with a GitHub-style error body."""

    status: int = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def body(self) -> dict[str, Any]:
        """Render the JSON body GitHub sends for this error."""
        return {"message": self.message, "documentation_url": DOCS_URL}


class Unauthorized(EmulatorError):
    """401: no token, or one GitHub does not know."""

    status = 401

    def __init__(self, message: str = "Bad credentials") -> None:
        super().__init__(message)


class Forbidden(EmulatorError):
    """403: the caller is known but may not do this."""

    status = 403


class ResourceNotFound(EmulatorError):
    """404: no such resource, or one hidden from the caller (GitHub does not say which)."""

    status = 404

    def __init__(self, message: str = "Not Found") -> None:
        super().__init__(message)


class UnprocessableEntity(EmulatorError):
    """422 with an ``errors`` list, as for a duplicate pull request."""

    status = 422

    def __init__(self, errors: list[dict[str, Any]] | list[str], message: str = "Validation Failed") -> None:
        super().__init__(message)
        self.errors = errors

    def body(self) -> dict[str, Any]:
        # Some 422s ("No commit found for SHA") carry only a message.
        return {**super().body(), "errors": self.errors} if self.errors else super().body()
