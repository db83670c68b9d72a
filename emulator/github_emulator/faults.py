"""Inject failures on demand, so retry and chaos tests need no mocks.

A rule matches requests by method and path and then answers with an error
status (optionally after a delay) or, with ``status=None``, only delays the
real answer to simulate a slow or timing-out GitHub. A ``hang`` rule holds
matching requests unanswered until the rules are cleared: a frozen GitHub
(:meth:`Faults.freeze`). With ``after_action`` the request is carried out
first and the error answered after, as when GitHub wrote the comment and then
a proxy returned 502: the case that makes a blind retry of a POST create a
second comment. Rules apply to the REST API; git smart-HTTP traffic is only
affected when ``include_git`` is set (``after_action`` is REST only).
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any

_MESSAGES = {
    403: "API rate limit exceeded for user.",
    429: "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
    500: "Server Error",
    502: "Server Error",
    503: "Service Unavailable",
    504: "We couldn't respond to your request in time. Sorry about that. Please try resubmitting your request and contact us if the problem persists.",
}


@dataclass
class FaultRule:
    """One failure to inject.

    ``count`` is how many matching requests fire (``None``: no limit);
    ``probability`` makes each match fire at random, from a ``seed``-ed RNG.
    """

    status: int | None = 500
    count: int | None = 1
    path_regex: str | None = None
    method: str | None = None
    retry_after: float | None = None
    delay: float | None = None
    probability: float | None = None
    seed: int | None = None
    include_git: bool = False
    message: str | None = None
    hang: bool = False
    after_action: bool = False
    fired: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)
    _released: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP error (400-599) or None, got {self.status}")
        if self.status is None and not self.delay and not self.hang:
            raise ValueError("a rule without a status must set a delay or hang")
        if self.after_action and self.status is None:
            raise ValueError("after_action needs a status to answer with")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1, or None for no limit")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if self.path_regex is not None:
            re.compile(self.path_regex)
        self._rng.seed(self.seed)

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def _matches(self, method: str, path: str, is_git: bool) -> bool:
        if is_git and not self.include_git:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_regex is None or re.search(self.path_regex, path) is not None

    def error_message(self) -> str:
        if self.message:
            return self.message
        return _MESSAGES.get(self.status or 500, "Injected fault")

    def sleep(self) -> None:
        """Wait out the rule's delay (or hang until cleared); call it without holding any lock."""
        if self.hang:
            self._released.wait()
        if self.delay:
            time.sleep(self.delay)

    def as_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


class Faults:
    """The emulator's thread-safe list of fault rules."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def inject(
        self,
        status: int | None = 500,
        count: int | None = 1,
        path_regex: str | None = None,
        method: str | None = None,
        retry_after: float | None = None,
        delay: float | None = None,
        probability: float | None = None,
        seed: int | None = None,
        *,
        include_git: bool = False,
        message: str | None = None,
        hang: bool = False,
        after_action: bool = False,
    ) -> FaultRule:
        """Add a rule; rules are tried in the order they were added."""
        rule = FaultRule(
            status=status, count=count, path_regex=path_regex, method=method,
            retry_after=retry_after, delay=delay, probability=probability, seed=seed,
            include_git=include_git, message=message, hang=hang, after_action=after_action,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def freeze(self, *, include_git: bool = False) -> FaultRule:
        """Leave every request unanswered (a GitHub that hangs) until :meth:`clear`."""
        return self.inject(status=None, count=None, hang=True, include_git=include_git)

    def clear(self) -> None:
        """Remove every rule; requests held by a hang rule get their real answer."""
        with self._lock:
            for rule in self._rules:
                rule._released.set()
            self._rules.clear()

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(self, method: str, path: str, *, is_git: bool = False) -> FaultRule | None:
        """Return the first rule that fires for this request, counting the firing."""
        with self._lock:
            for rule in self._rules:
                if rule.exhausted or not rule._matches(method, path, is_git):
                    continue
                if rule.probability is not None and rule._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                return rule
        return None
