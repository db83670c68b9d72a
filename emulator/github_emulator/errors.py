"""Errors the emulator answers with, shaped like GitHub's client errors.

One class carries the HTTP status so the same exception serves both the
HTTP layer (rendered as ``{"message", "documentation_url"}``) and Python
callers of :class:`~github_emulator.GitHubEmulator`.

    EmulatorError
    ├── BadCredentials      401
    ├── Forbidden           403
    ├── NotFound            404
    └── ValidationFailed    422 (carries ``errors``)
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


class BadCredentials(EmulatorError):
    status = 401

    def __init__(self, message: str = "Bad credentials") -> None:
        super().__init__(message)


class Forbidden(EmulatorError):
    status = 403


class NotFound(EmulatorError):
    status = 404

    def __init__(self, message: str = "Not Found") -> None:
        super().__init__(message)


class ValidationFailed(EmulatorError):
    """422 with an ``errors`` list, as for a duplicate pull request."""

    status = 422

    def __init__(self, errors: list[dict[str, Any]] | list[str], message: str = "Validation Failed") -> None:
        super().__init__(message)
        self.errors = errors

    def body(self) -> dict[str, Any]:
        # Some 422s ("No commit found for SHA") carry only a message.
        return {**super().body(), "errors": self.errors} if self.errors else super().body()
