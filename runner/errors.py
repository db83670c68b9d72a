"""Say what went wrong in a sentence a person can act on, and whether a retry may help.

Every error the runner raises on purpose is a :class:`RunnerError`. Its message
is written to be posted on the dispatch issue as it is, so it never contains a
secret and always says what to do next. Whether an error is worth retrying is a
property of its class (``transient``), never a match on its text; so is whether
it is an *outage* (``service``): a dependency that is down (GitHub, git transport,
a model API, the ledger, disk space) says nothing about the task, so the task
waits for it instead of spending one of ``MAX_ATTEMPTS`` (:mod:`runner.core.policy`).

The tree::

    RunnerError
    ├── ConfigError                  bad settings; the CLI exits 2
    │   └── CliNotInstalled          an agent preset's CLI is missing (a fallback in the chain runs instead)
    ├── TaskSpecError                the issue body cannot be turned into a task
    ├── PolicyRefused                the task is well-formed but not allowed
    │   ├── TargetNotAllowed         target outside ALLOWED_TARGET_REPOS
    │   ├── LabelerNotTrusted        whoever labeled it lacks write permission
    │   ├── AppNotInstalled          the GitHub App is not installed on the target
    │   ├── RerunNotTrusted          a non-writer removed the result label
    │   ├── TextNotApproved          a non-writer edited the body after the label
    │   └── HookVetoed               the operator's pre_task hook said no
    ├── ForgeError                   the GitHub API failed              (transient)
    │   ├── RateLimited              403/429 with a reset time          (transient)
    │   ├── PermissionDenied         our token may not do this          (permanent)
    │   │   └── BadCredentials       401: the token itself is invalid   (permanent)
    │   ├── Rejected                 GitHub refused the request (422)   (permanent)
    │   └── NotFound                 repository, issue or ref missing   (permanent)
    ├── WorkspaceError               git failed locally or over the wire (transient)
    │   ├── GitTransportFailed       the git server did not answer      (outage: git transport)
    │   └── HumanCommitsOnBranch     a person pushed to the task branch (permanent)
    ├── GeneratorError               a generator could not make the change
    │   ├── GeneratorUnavailable     a backend is overloaded or failing (transient)
    │   │   └── GeneratorUnreachable the backend cannot be reached      (transient)
    │   ├── ModelRequestRefused      the server says the request is invalid
    │   ├── ToolCallingUnsupported   the server refused tools; the loop switches to JSON
    │   ├── NoChangeMade             the generator finished without changing a file
    │   ├── BudgetExceeded           tokens or cost over the limit
    │   │   └── TurnLimitReached     MAX_TURNS model calls without finishing
    │   └── GeneratorTimeout         the wall-clock deadline passed
    ├── GuardRefused                 the change touches what it may not
    │   └── SecretsFound             the change or trace holds a secret; nothing pushed
    ├── ValidationFailed             the validation commands did not pass
    ├── SandboxUnavailable           no backend can isolate untrusted commands
    ├── LeaseLost                    another worker owns the task now   (transient)
    ├── ShuttingDown                 SIGTERM cut a wait on GitHub short (transient)
    ├── HookFailed                   a gating plugin hook refused the task
    ├── LedgerUnavailable            the ledger database is unreachable (outage: the ledger)
    │   └── LedgerHeld               its breaker is open; the write was not sent (outage: the ledger)
    ├── DiskFull                     WORKSPACE_DIR or DATA_DIR is full  (outage: disk space)
    ├── DependencyDown               a breaker is open; nothing was sent (outage: its dependency)
    ├── OutageTooLong                an outage outlasted TRANSIENT_RETRY_HOURS (permanent)
    ├── CrashLoop                    workers keep dying on this task
    └── InternalError                a bug in the runner or a plugin    (transient)

Three signals stay inside one component and never reach an issue, so they are
not RunnerErrors (a broad ``except RunnerError`` must not swallow them)::

    ToolInputError      a tool call the model can fix; the loop answers it with the message
    WebhookRejected     a delivery not taken; its status goes back to GitHub
    SmokeFailed         a smoke-test step failed; the smoke test reports it
"""

from __future__ import annotations


class RunnerError(Exception):
    """Base of every error the runner raises on purpose."""

    #: A retry later may succeed (network, 5xx, rate limits, lost leases).
    transient: bool = False
    #: The dependency whose outage this error reports (a transient error with a service is an
    #: outage: the task waits for it, spending no attempt); None when it says something about the task.
    service: str | None = None
    #: A short hint appended to the issue comment: how a person can retry.
    hint: str = "Fix the problem, then remove the `agent-failed` label to run the task again."

    def __init__(self, message: str, *, hint: str | None = None, service: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint
        if service is not None:
            self.service = service

    @property
    def outage(self) -> bool:
        """A dependency is down: the task waits (up to TRANSIENT_RETRY_HOURS) without spending an attempt."""
        return self.transient and self.service is not None

    def __str__(self) -> str:
        return self.message


class ConfigError(RunnerError):
    """A setting is missing or invalid; the message names the setting."""

    hint = "Fix the setting in the environment or in `.env`, then start the runner again."


class CliNotInstalled(ConfigError):
    """An agent preset's CLI is not where its setting (or PATH) says; the message says how to install it."""


class TaskSpecError(RunnerError):
    """The dispatch issue body does not describe a valid task."""

    hint = (
        "Edit the issue body so it follows the dispatch format, then remove the "
        "`agent-failed` label to run it again."
    )


class PolicyRefused(RunnerError):
    """The task is well-formed, but the runner is not allowed to act on it."""


class TargetNotAllowed(PolicyRefused):
    """The target repository is outside ALLOWED_TARGET_REPOS."""

    hint = (
        "Ask the runner's operator to add the repository to `ALLOWED_TARGET_REPOS`, "
        "then remove the `agent-failed` label."
    )


class LabelerNotTrusted(PolicyRefused):
    """Whoever added the trigger label may not dispatch work."""

    hint = (
        "Ask someone with write access to the dispatch repository to remove and "
        "re-add the trigger label."
    )


class AppNotInstalled(PolicyRefused):
    """The runner authenticates as a GitHub App that is not installed on the repository."""

    hint = (
        "Install the app on the repository with the link above (or ask an owner of the "
        "repository to), then remove the `agent-failed` label."
    )

    def __init__(self, message: str, *, install_url: str = "") -> None:
        super().__init__(message)
        self.install_url = install_url


class RerunNotTrusted(PolicyRefused):
    """Whoever removed the result label to ask for a re-run may not dispatch work."""

    hint = (
        "Ask someone with write access to the dispatch repository to remove the "
        "result label (`processed` or `agent-failed`)."
    )


class TextNotApproved(PolicyRefused):
    """The body was edited by someone without write access after a writer approved it."""

    hint = (
        "Ask someone with write access to read the issue body, then remove and re-add "
        "the trigger label to approve the text as it is now."
    )


class HookVetoed(PolicyRefused):
    """The pre_task command of HOOK_COMMANDS exited non-zero (or could not run), so the task did not start."""

    hint = (
        "The runner's operator set this check up (`HOOK_COMMANDS`); do what its output asks, or ask "
        "the operator, then remove the `agent-failed` label to run the task again."
    )


class ForgeError(RunnerError):
    """The GitHub API failed in a way that may pass (5xx, timeouts, connection errors): an outage of GitHub."""

    transient = True
    service: str | None = "GitHub"
    hint = "The runner retries this by itself; nothing to do unless it keeps failing."


class RateLimited(ForgeError):
    """GitHub asked us to slow down; ``retry_after`` says for how long."""

    def __init__(self, message: str, *, retry_after: float = 60.0, service: str | None = None) -> None:
        super().__init__(message, service=service)
        self.retry_after = retry_after


class PermissionDenied(ForgeError):
    """The runner's token may not do what was asked."""

    transient = False
    hint = "Give the runner's token access to the repository, then remove the `agent-failed` label."


class BadCredentials(PermissionDenied):
    """GitHub answered 401: the token is wrong, expired or revoked, so nothing can work."""

    hint = "Replace GITHUB_TOKEN with a valid token and restart the runner."


class Rejected(ForgeError):
    """GitHub understood the request and refused it (422 Validation Failed)."""

    transient = False

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class NotFound(ForgeError):
    """A repository, issue, branch or file does not exist (or is hidden from us)."""

    transient = False
    hint = (
        "Check that the repository exists and that the runner's token can see it, "
        "then remove the `agent-failed` label."
    )


class WorkspaceError(RunnerError):
    """A local or remote git operation failed."""

    transient = True
    hint = "The runner retries this by itself; nothing to do unless it keeps failing."


class GitTransportFailed(WorkspaceError):
    """A fetch, ls-remote or push could not reach the git server (5xx, refused, timed out): an outage."""

    service = "git transport"


class HumanCommitsOnBranch(WorkspaceError):
    """Someone other than the bot pushed to the task branch; we will not overwrite it."""

    transient = False
    hint = (
        "Merge or close the pull request yourself, or delete the branch and remove "
        "the `processed` label to let the runner start over."
    )


class GeneratorError(RunnerError):
    """A generator could not produce the change."""

    hint = "Refine the instruction, then remove the `agent-failed` label to run it again."


class GeneratorUnavailable(GeneratorError):
    """The generator's backend is overloaded or failing (408/409/429/5xx/529, overloaded): an outage of the model API."""

    transient = True
    service = "the model API"
    hint = (
        "The runner retries this by itself. If it keeps failing, check the model server's "
        "health and logs, then remove the `agent-failed` label."
    )


class GeneratorUnreachable(GeneratorUnavailable):
    """The generator's backend could not be reached at all (refused, DNS, TLS)."""

    hint = (
        "Check that the model server is running and that its URL (`OPENAI_BASE_URL` / "
        "`ANTHROPIC_BASE_URL` / `GEMINI_BASE_URL`) is right, then remove the `agent-failed` label."
    )


class ModelRequestRefused(GeneratorError):
    """The model server says the request itself is invalid, so sending it again cannot help."""

    hint = (
        "Check the model name and that the server supports tool calling (for an OpenAI-compatible "
        "server, set `OPENAI_COMPAT` to its kind; see docs/generators.md), then remove the "
        "`agent-failed` label."
    )


class NoChangeMade(GeneratorError):
    """The generator finished without changing any file, so there is nothing to claim."""

    hint = (
        "Make the instruction more specific (name the files and the change), or use a more "
        "capable model or generator, then remove the `agent-failed` label."
    )


class BudgetExceeded(GeneratorError):
    """The task used more tokens or money than allowed."""

    hint = (
        "Raise `MAX_TOKENS_PER_TASK` / `MAX_COST_USD_PER_TASK`, or make the instruction "
        "smaller, then remove the `agent-failed` label."
    )


class TurnLimitReached(BudgetExceeded):
    """The model made MAX_TURNS calls without finishing."""

    hint = (
        "Raise `MAX_TURNS`, or split the instruction into smaller tasks, then remove the "
        "`agent-failed` label."
    )


class GeneratorTimeout(GeneratorError):
    """The generator ran past its wall-clock deadline."""

    hint = (
        "Raise `GENERATOR_TIMEOUT_SECONDS` (a slow local model may need much more), or narrow the "
        "instruction, then remove the `agent-failed` label."
    )


class GuardRefused(RunnerError):
    """The change writes where it may not (outside the tree, .git, workflows, secrets)."""

    hint = "Change the instruction so it stays inside the repository, then remove the `agent-failed` label."


class SecretsFound(GuardRefused):
    """The secret scan found something that looks like a credential; nothing was pushed."""

    hint = (
        "Remove the secret from the instruction or the change (and rotate it if it was real), "
        "then remove the `agent-failed` label."
    )


class ValidationFailed(RunnerError):
    """The configured validation commands failed on the change."""

    hint = "Fix the instruction or the validation commands, then remove the `agent-failed` label."


class SandboxUnavailable(RunnerError):
    """No sandbox backend can run an untrusted command here, so it is not run at all."""

    hint = (
        "Ask the runner's operator to make the sandbox work (see docs/security.md) or to set "
        "`SANDBOX=off`, then remove the `agent-failed` label."
    )


class LeaseLost(RunnerError):
    """Another worker took over this task; this one must stop touching it."""

    transient = True
    hint = "Nothing to do: another worker is handling the task."


class ShuttingDown(RunnerError):
    """The process is stopping: a wait on GitHub (pacer, retry) was cut short; the lease is released."""

    transient = True
    hint = "Nothing to do: the task runs again when a runner picks it up."


class LedgerUnavailable(RunnerError):
    """The ledger database could not be reached or stayed locked; the loop retries."""

    transient = True
    service = "the ledger database"
    hint = "The runner retries this by itself; check the ledger database if it keeps failing."


class LedgerHeld(LedgerUnavailable):
    """The ledger's breaker is open, so the write was not sent: one probe at a time checks the database."""


class DiskFull(RunnerError):
    """WORKSPACE_DIR or DATA_DIR has no space left; the task waits for space, its partial worktree removed."""

    transient = True
    service = "disk space"
    hint = "Free space in WORKSPACE_DIR / DATA_DIR (or give them a bigger volume); the task goes on by itself."


class DependencyDown(RunnerError):
    """A dependency's circuit breaker is open, so the request was not sent (:mod:`runner.breakers`)."""

    transient = True
    hint = "The runner waits for the service by itself; nothing to do unless the outage lasts."


class OutageTooLong(RunnerError):
    """A dependency stayed down longer than TRANSIENT_RETRY_HOURS; the task stops waiting."""

    hint = ("When the service is back (see its status page), remove the `agent-failed` label to run the task "
            "again; raise `TRANSIENT_RETRY_HOURS` to wait longer next time.")


class CrashLoop(RunnerError):
    """Workers keep dying on this task; it is marked dead instead of claimed forever."""

    hint = "Check the runner's logs and resources, then remove the `agent-failed` label to retry."


class InternalError(RunnerError):
    """A bug in the runner or a plugin; retried a few times, then reported."""

    transient = True
    hint = "This is a bug in the runner. Check its logs; remove the `agent-failed` label to retry."


class HookFailed(RunnerError):
    """A gating hook refused the task."""


class ToolCallingUnsupported(GeneratorError):
    """The server refused a request because it carried tools; switch to the JSON protocol."""


# -- signals inside one component (see the module docstring) -------------------------------------


class ToolInputError(Exception):
    """A tool call the model can fix: say what was wrong, never crash the loop."""


class WebhookRejected(Exception):
    """A delivery that is not taken: ``status`` goes back to GitHub, ``outcome`` to the metric."""

    def __init__(self, status: int, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.outcome, self.reason = status, outcome, reason


class SmokeFailed(Exception):
    """A step failed; the smoke test stops and reports it."""
