"""The `agent-runner` command: parse arguments, load settings once, wire the app, run.

Exit codes: 0 success, 1 a task failed (`process`), 2 bad configuration or usage.

This module imports only the standard library at the top, so that `run` can
install its SIGTERM handler within milliseconds of the process starting: the
heavy imports (pydantic, PyGithub, structlog) take most of a second, and a
signal then would kill the process instead of ending in a clean exit 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner import __version__
from runner.cli import commands
from runner.errors import BadCredentials, ConfigError, RunnerError

EPILOG = """\
Settings come from environment variables and from ./.env (see .env.example and
docs/configuration.md); an empty value (NAME=) means unset. The essentials: GITHUB_TOKEN
(or GITHUB_APP_ID + GITHUB_APP_PRIVATE_KEY_FILE to run as a GitHub App, see
docs/github-app.md), DISPATCH_REPO; GITHUB_API_URL for GitHub Enterprise.

examples:
  agent-runner demo                      # the whole flow against the built-in emulator
  agent-runner once                      # one pass over the dispatch repository, then exit
  agent-runner run                       # poll forever (what the container runs)
  agent-runner serve                     # take webhooks on WEBHOOK_PORT, poll as a safety net
  agent-runner process 42                # run dispatch issue #42 now, even if processed
  agent-runner emulator --port 8000      # a local GitHub for trying things out
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-runner",
        description="Turn dispatch issues labeled `copilot-agent` into one pull request each.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"agent-runner {__version__}")
    parser.add_argument("--env-file", default=".env", metavar="PATH",
                        help="read settings from this file as well as the environment (default: .env)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sub.add_parser("run", help="poll the dispatch repository and process issues until stopped",
                   description="Poll DISPATCH_REPO every POLL_INTERVAL_SECONDS and run WORKERS jobs in "
                   "parallel. SIGTERM or SIGINT stops claiming, lets running jobs finish for "
                   "SHUTDOWN_GRACE_SECONDS, releases the rest and exits 0. Serves /healthz, /readyz "
                   "and /metrics on HEALTH_PORT.")
    sub.add_parser("serve", help="take GitHub webhooks (and poll as a safety net) until stopped",
                   description="Like `run`, and also listen for GitHub webhook deliveries on "
                   "WEBHOOK_HOST:WEBHOOK_PORT at /webhook. Needs WEBHOOK_SECRET (the secret set on the "
                   "GitHub App or repository webhook). Deliveries are verified (X-Hub-Signature-256), "
                   "recorded once by X-GitHub-Delivery and answered within milliseconds; the poll "
                   "keeps running every WEBHOOK_POLL_INTERVAL_SECONDS. `run` does the same whenever "
                   "WEBHOOK_SECRET is set.")
    sub.add_parser("worker", help="host a Temporal worker only (EXECUTOR=temporal): no polling",
                   description="Take dispatch tasks from TEMPORAL_TASK_QUEUE and run them, WORKERS at a "
                   "time, until SIGTERM or SIGINT. Another process (`agent-runner run`, or webhooks) starts "
                   "the workflows. Needs EXECUTOR=temporal and TEMPORAL_ADDRESS. Serves /healthz, /readyz "
                   "and /metrics on HEALTH_PORT.")
    sub.add_parser("once", help="one pass: queue eligible issues, process what is due, exit",
                   description="Poll once, run every job that is due, print a summary and exit 0. "
                   "Useful from cron or CI. On a terminal each task has a live status line, then a ✓/✗ "
                   "line with its PR URL or reason.")
    process = sub.add_parser("process", help="process exactly one dispatch issue now",
                             description="Run one issue through the pipeline, re-queueing it first if it "
                             "had finished, with a live status line on a terminal. Exits 1 if the task "
                             "failed.")
    process.add_argument("issue", type=int, help="the dispatch issue number")

    demo = sub.add_parser("demo", help="run the whole flow against the built-in GitHub emulator",
                          description="Start the GitHub emulator, create a dispatch and a target "
                          "repository, file a dispatch issue, run one pass and show the pull request. "
                          "Needs no credentials and no network.")
    demo.add_argument("--state-dir", type=Path, default=None,
                      help="keep the emulator's repositories here (default: a temporary directory)")
    demo.add_argument("--verbose", action="store_true", help="show the runner's log lines")

    emulator = sub.add_parser("emulator", help="serve a local GitHub emulator (REST API and git)",
                              description="Serve the GitHub emulator until stopped. The admin user is "
                              "`octocat` with token `emulator-token`. Point GITHUB_API_URL at the "
                              "printed URL.")
    emulator.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    emulator.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    emulator.add_argument("--state-dir", type=Path, required=True,
                          help="where repositories, issues and PRs are kept across restarts")
    emulator.add_argument("--repo", action="append", default=[], metavar="OWNER/NAME",
                          help="create this repository (owned by octocat, with a README) unless it "
                               "exists; repeat for more, e.g. --repo octocat/dispatch --repo octocat/target")

    status = sub.add_parser("status", help="show the ledger: each task's status, attempt, owner, PR",
                            description="Read the ledger at LEDGER_URL and print one row per task.")
    status.add_argument("--json", action="store_true",
                        help="print the status document (what /api/status serves; docs/operations.md) as JSON")
    status.add_argument("--limit", type=int, default=100, help="rows to show; with --json, recent tasks (default 100)")

    retry = sub.add_parser("retry", help="re-queue a task (also done by removing `agent-failed`)")
    retry.add_argument("issue", type=int, help="the dispatch issue number")

    sub.add_parser("generators", help="list the installed generators, built-in and plugins",
                   description="List every generator name you can put in GENERATORS: the built-ins "
                   "and those installed by plugins under the `agent_runner.generators` entry point group.")
    check = sub.add_parser("check-config", help="validate the settings offline, the way start-up does",
                           description="Load the settings from the environment and .env and check them the "
                           "way `run` does at start-up, without side effects: required settings, the "
                           "directories (writable, created by nobody), the ledger (opened read-only), the "
                           "generator chain and plugins, the commands' programs, and the hooks. Prints one "
                           "✓/✗ line per check and exits 2 if any fails. Nothing is sent to GitHub: "
                           "`agent-runner doctor` does the online checks.")
    check.add_argument("--json", action="store_true",
                       help="also print the settings as JSON on stdout (secrets hidden)")
    doctor = sub.add_parser("doctor", help="check the token, repositories, labels and generators online",
                            description="Everything check-config checks, then against the real services: "
                            "the token (valid, its scopes), DISPATCH_REPO (access), the labels, the "
                            "allowlist resolved against real repositories, each generator's credentials "
                            "(one cheap call), git and the clock. One ✓/✗ line per check, each ✗ with its "
                            "fix; exits 1 if any check fails.")
    doctor.add_argument("--fix", action="store_true",
                        help="create missing labels (in the runner's colours) instead of failing")
    smoke = sub.add_parser("smoke-test", help="file a smoke-test issue and check the whole round trip",
                           description="File the README's smoke-test issue in DISPATCH_REPO, let a runner "
                           "process it (its own, or with --wait one already running), and check what a user "
                           "sees: the branch, the PR with its metadata and Fixes line, the trace file, one "
                           "result comment and the label. Then remove the label and check that the re-run "
                           "changes nothing. Closes the PR, deletes the branch and closes the issue unless "
                           "--keep. Works against GitHub and the emulator; exits 1 if any step fails.")
    smoke.add_argument("--target", default=None, metavar="OWNER/REPO",
                       help="the target repository (default: the first exact name in ALLOWED_TARGET_REPOS)")
    smoke.add_argument("--wait", action="store_true",
                       help="wait for a runner that is already running instead of processing the issue here")
    smoke.add_argument("--keep", action="store_true", help="leave the issue, branch and PR for inspection")
    smoke.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                       help="how long to wait for the runner each time (default 600)")
    docs = sub.add_parser("config-docs", help="regenerate .env.example, docs/configuration.md and the README summary",
                          description="Write the settings reference from the settings model in "
                          "runner/config/: .env.example, docs/configuration.md and the settings summary "
                          "in README.md. Run it after adding or changing a setting; a test fails until you do.")
    docs.add_argument("--root", type=Path, default=None,
                      help="the checkout to write into (default: the one this runner is installed from)")
    docs.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file is stale")
    health = sub.add_parser("healthcheck", help="exit 0 if the local runner answers /healthz (for Docker)")
    health.add_argument("--url", default=None, help="default: http://127.0.0.1:$HEALTH_PORT/healthz")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    code = _main(argv)
    if argv is None and "temporalio.bridge.runtime" in sys.modules:
        _exit_past_temporals_threads(code)
    return code


def _exit_past_temporals_threads(code: int) -> None:
    """End the process without the interpreter's teardown once Temporal's client has run.

    Its Rust runtime's threads can call into Python while the interpreter
    finalizes, which aborts the process ("PyGILState_Release: thread state ...
    must be current", SIGABRT) after the command has done its work:
    https://github.com/temporalio/sdk-python/issues/300. Everything the
    command holds is closed by then; what is buffered is flushed here.
    """
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    stop = _Stop().install() if args.command in {"run", "serve", "worker"} else _Stop()
    try:
        return _dispatch(args, stop)
    except (ConfigError, BadCredentials) as exc:  # a token GitHub rejects is a configuration error
        print(f"agent-runner: configuration error: {exc}", file=sys.stderr)
        return 2
    except RunnerError as exc:
        print(f"agent-runner: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        from runner import tempdirs

        tempdirs.release()  # nothing of the runner's stays under TMPDIR


def _dispatch(args: argparse.Namespace, stop: _Stop) -> int:
    command = args.command
    if command == "demo":
        from runner import tempdirs
        from runner.app import build_app
        from runner.ops.demo import run_demo

        tempdirs.claim()

        return run_demo(build_app=build_app, state_dir=args.state_dir, verbose=args.verbose, out=print)
    if command == "emulator":
        from runner.ops.demo import load_emulator

        load_emulator("emulator").serve_forever(host=args.host, port=args.port, state_dir=args.state_dir,
                                                print_fn=print, repos=args.repo)
        return 0
    if command == "generators":
        return commands.list_generators()
    if command == "config-docs":
        return commands.config_docs(args.root, check=args.check)

    if stop.is_set():
        return 0  # stopped before start-up began: nothing to load, nothing held
    from runner.config import load_settings
    from runner.log import configure_logging, get_logger

    settings = load_settings(args.env_file)
    configure_logging(settings.log_level, settings.log_format, settings.secrets())
    stop.logging_ready(get_logger())
    from runner.sandbox.bwrap import contain_credentials

    contain_credentials(settings)
    if command == "healthcheck":
        from runner.ops.health import probe

        ok, detail = probe(args.url or f"http://127.0.0.1:{settings.health_port}/healthz")
        print(detail)
        return 0 if ok else 1
    from runner import tempdirs

    tempdirs.claim(fallback=settings.data_dir)  # every temporary file of this process, removed at exit
    if command == "check-config":
        return commands.check_config(settings, as_json=args.json)
    if command == "smoke-test":
        return commands.smoke_test(settings, args)
    if command == "doctor":
        return commands.doctor(settings, fix=args.fix)
    if command in {"status", "retry"}:
        return commands.ledger_command(settings, args)

    if stop.is_set():
        return 0  # stopped during start-up: nothing is held yet
    from runner.app import build_app

    if command == "serve" and not settings.webhooks_enabled:
        raise ConfigError("`serve` needs WEBHOOK_SECRET: the secret configured on the GitHub App's (or the "
                          "repository's) webhook. Without webhooks, use `run`.")
    if command == "worker" and settings.executor != "temporal":
        raise ConfigError("`agent-runner worker` hosts a Temporal worker: set EXECUTOR=temporal and "
                          "TEMPORAL_ADDRESS. With the SQLite or PostgreSQL ledger, `agent-runner run` is "
                          "both the poller and the worker.")
    app = build_app(settings)
    try:
        if command in {"run", "serve", "worker"}:
            code = 0 if stop.is_set() else _serve(app, stop.event, poll=command != "worker")
            if app.executor.waiting_on_github():
                # A job or the poll still hangs on GitHub past the grace period (leases released).
                # Do not let interpreter shutdown wait on their threads and sockets.
                app.close()
                from runner import tempdirs

                tempdirs.release()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
            return code
        if command == "once":
            with _status_line(app):
                outcomes = app.executor.run_once()
            counts: dict[str, int] = {}
            for outcome in outcomes:
                counts[outcome.status] = counts.get(outcome.status, 0) + 1
            summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing to do"
            print(f"agent-runner: one pass done: {summary}")
            return 0
        if command == "process":
            with _status_line(app):
                result = app.executor.process_issue(args.issue)
            if result is None:
                print(f"agent-runner: issue #{args.issue} is being processed by another worker")
                return 1
            print(f"agent-runner: issue #{args.issue}: {result.status}"
                  + (f" {result.pr_url}" if result.pr_url else "")
                  + (f" ({result.error})" if result.error and result.status != "succeeded" else ""))
            return 0 if result.status in {"succeeded", "skipped"} else 1
    finally:
        app.close()
    raise AssertionError(f"unhandled command {command}")


def _status_line(app: Any) -> Any:
    """Live progress per task on a terminal; plain log lines elsewhere (runner/ops/status_line.py)."""
    from runner.log import get_logger
    from runner.ops.status_line import StatusLine

    # On a terminal, INFO lines would scroll the live line away; LOG_LEVEL set on purpose still wins.
    status = StatusLine(sys.stderr, live=sys.stderr.isatty(), log=get_logger(),
                        quiet="log_level" not in app.settings.model_fields_set)
    app.pipeline.deps.hooks.add(status)
    return status


class _Stop:
    """SIGTERM and SIGINT as a stop request, from the first moments of `run` on.

    The handler only sets an event (and logs once logging is configured): it
    never imports, because it may interrupt an import in progress.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self._signal: str | None = None
        self._log: Any = None

    def install(self) -> _Stop:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        return self

    def is_set(self) -> bool:
        return self.event.is_set()

    def logging_ready(self, log: Any) -> None:
        self._log = log
        if self._signal is not None:
            log.info("shutting down", signal=self._signal, during="start-up")

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signal = signal.Signals(signum).name
        self.event.set()
        if self._log is not None:
            self._log.info("shutting down", signal=self._signal)


def _serve(app: Any, stop: threading.Event, *, poll: bool = True) -> int:
    from runner.log import get_logger
    from runner.ops.health import HealthServer
    from runner.ops.preflight import write_pacing

    log = get_logger()
    settings = app.settings
    try:
        app.executor.poll()  # a token GitHub rejects (401) exits 2 now, instead of idling "healthy"
    except BadCredentials:
        raise
    except RunnerError as exc:
        log.warning("first poll failed; will try again", error=str(exc))
    from runner.app import dashboard, status_page

    page = status_page(app)
    health = HealthServer(app.metrics, settings.health_host, settings.health_port, status=page).start()
    if settings.dashboard_issue:
        threading.Thread(target=dashboard(app, page).run, args=(stop, min(60.0, settings.effective_poll_interval)),
                         name="dashboard", daemon=True).start()
    webhooks = None
    if settings.webhooks_enabled:
        from runner.intake.webhooks import serve_webhooks

        webhooks = serve_webhooks(app)
    app.workspace.cleanup()
    log.info("runner started", dispatch=",".join(settings.require_dispatch_repos()), workers=settings.workers,
             generators=",".join(settings.generators), health_port=health.port, owner=app.executor.owner,
             auth=settings.auth_mode, webhook_port=webhooks.port if webhooks else None,
             poll_interval=settings.effective_poll_interval, executor=settings.executor, polling=poll,
             write_pacing=write_pacing(settings))
    try:
        if poll:
            app.executor.serve(stop)
        else:
            app.executor.serve(stop, poll=False)
    finally:
        if webhooks is not None:
            webhooks.stop()
        health.stop()
    log.info("runner stopped")
    return 0
