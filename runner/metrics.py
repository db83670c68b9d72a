"""Count what the runner does, for /metrics, /healthz and /readyz: one Metrics per process.

It sits low (beside the logger) so that intake and executors record into it;
:mod:`runner.ops.health` serves it over HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

#: Polls in a row that GitHub refuses (401/403) before /healthz fails.
AUTH_FAILURES_UNHEALTHY = 3


class Metrics:
    """The runner's counters, in a registry of its own so tests can make many."""

    def __init__(self, *, stale_after_s: float = 300.0) -> None:
        self.registry = CollectorRegistry()
        self.tasks = Counter("agent_runner_tasks_total", "Jobs by outcome", ["outcome"], registry=self.registry)
        self.task_seconds = Histogram("agent_runner_task_seconds", "Wall time of one job", registry=self.registry,
                                      buckets=(1, 5, 15, 30, 60, 120, 300, 900, 1800))
        self.stage_seconds = Histogram("agent_runner_stage_seconds", "Wall time of one stage", ["stage"],
                                       registry=self.registry)
        self.in_flight = Gauge("agent_runner_jobs_in_flight", "Jobs running now", registry=self.registry)
        self.polls = Counter("agent_runner_polls_total", "Polls of the dispatch repository", ["result"],
                             registry=self.registry)
        self.last_poll = Gauge("agent_runner_last_poll_timestamp", "Unix time of the last good poll",
                               registry=self.registry)
        self.webhooks = Counter("agent_runner_webhook_deliveries_total", "Webhook deliveries by event and outcome",
                                ["event", "outcome"], registry=self.registry)
        self.submissions = Counter("agent_runner_task_submissions_total",
                                   "Tasks handed to the executor, by result (started, duplicate, stale)",
                                   ["result"], registry=self.registry)
        self.progress_decisions = Counter(
            "agent_runner_progress_decisions_total",
            "Progress edits of result comments, posted or skipped, by reason (runner/core/progress.py)",
            ["decision", "reason"], registry=self.registry)
        #: Each dependency's breaker as (name, up, seconds open), read at scrape time (runner.breakers).
        self.dependencies: Callable[[], list[tuple[str, bool, float]]] = list
        self.registry.register(_Dependencies(self))
        self.stale_after_s = stale_after_s
        #: Which sandbox backend runs untrusted commands, as /readyz reports it.
        self.sandbox = "unknown"
        #: The health_check hook (runner/hooks/commands.py): why the runner is not ready, or None.
        self.readiness_check: Callable[[], str | None] | None = None
        self._last_tick = time.monotonic()
        self._last_good_poll: float | None = None
        self._auth_failures = 0
        self.auth_error = ""

    def loop_tick(self) -> None:
        self._last_tick = time.monotonic()

    def poll_done(self, seconds: float, issues: int) -> None:
        self.polls.labels("ok").inc()
        self.last_poll.set(time.time())
        self._last_good_poll = time.monotonic()
        self._auth_failures = 0
        self.auth_error = ""

    def webhook_delivery(self, event: str, outcome: str) -> None:
        self.webhooks.labels(event, outcome).inc()

    def poll_failed(self, *, auth_error: str | None = None) -> None:
        """A failed poll; ``auth_error`` when GitHub refused the token (401/403), which no retry fixes."""
        self.polls.labels("auth_error" if auth_error else "error").inc()
        if auth_error:
            self._auth_failures += 1
            self.auth_error = auth_error

    def submitted(self, result: str) -> None:
        self.submissions.labels(result).inc()

    def job_started(self) -> None:
        self.in_flight.inc()

    def job_finished(self) -> None:
        self.in_flight.dec()

    def job_done(self, outcome: str, seconds: float, stages: Mapping[str, float]) -> None:
        self.tasks.labels(outcome).inc()
        self.task_seconds.observe(seconds)
        self.stages_done(stages)

    def stages_done(self, stages: Mapping[str, float]) -> None:
        """Stage timings of a part of a task (an executor that runs the stages one by one)."""
        for stage, value in stages.items():
            self.stage_seconds.labels(stage).observe(value)

    def alive(self) -> bool:
        return self.health_problem() is None

    def health_problem(self) -> str | None:
        """Why /healthz fails, or None: the loop stalled, or GitHub keeps refusing the token."""
        if time.monotonic() - self._last_tick >= self.stale_after_s:
            return "stalled"
        if self._auth_failures >= AUTH_FAILURES_UNHEALTHY:
            return f"GitHub refused the last {self._auth_failures} polls: {self.auth_error}"
        return None

    def ready(self) -> bool:
        return self._last_good_poll is not None and time.monotonic() - self._last_good_poll < self.stale_after_s

    def degraded(self) -> str | None:
        """Which dependencies are down (their breakers open), for /readyz; /healthz stays healthy,
        since a restart cures nothing."""
        down = [f"{name} down for {seconds:.0f} s" for name, up, seconds in self.dependencies() if not up]
        return "degraded: " + ", ".join(down) if down else None

    def ready_problem(self) -> str | None:
        """Why /readyz fails, or None: no recent good poll, or the health_check hook said no."""
        if not self.ready():
            return "no successful poll yet"
        problem = self.readiness_check() if self.readiness_check is not None else None
        return f"the health_check hook {problem}" if problem else None


class _Dependencies(Collector):
    """``agent_runner_dependency_up`` and ``agent_runner_dependency_open_seconds``, one sample per breaker."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("agent_runner_dependency_up", "1 while the dependency answers (its breaker is closed)",
                               labels=["dependency"])
        opened = GaugeMetricFamily("agent_runner_dependency_open_seconds",
                                   "How long the dependency's breaker has been open (0 while it answers)",
                                   labels=["dependency"])
        for name, is_up, seconds in self._metrics.dependencies():
            up.add_metric([name], 1.0 if is_up else 0.0)
            opened.add_metric([name], seconds)
        yield up
        yield opened
