"""Run an agent CLI behind the task's model gateway: start it, check it, and say what it cost.

A CLI that needs a model gets it through the model gateway
(:mod:`runner.gateway`), never with the real key. ``COMMAND_GATEWAY=anthropic,openai``
turns it on for a plain ``COMMAND_TEMPLATE``; a preset passes a spec::

    from runner.gateway import GatewaySpec
    from runner.generators.command import CommandGenerator

    class ClaudeCode(CommandGenerator):
        name = "claude-code"

        def __init__(self, settings):
            super().__init__(settings, gateway=GatewaySpec.for_dialects(
                "anthropic", env={"CLAUDE_CODE_MAX_RETRIES": "1"}))

        def prepare(self, ctx, endpoint, scratch):
            # Write config files that need the endpoint; return more environment.
            (scratch / "config.toml").write_text(f'base_url = "{endpoint.base_url}/v1"\n')
            return {"CODEX_HOME": str(scratch)}

For each run the generator then starts a gateway for the task, and the CLI gets:

- ``GatewaySpec.for_dialects("anthropic")``: ``ANTHROPIC_BASE_URL=http://127.0.0.1:PORT``
  and ``ANTHROPIC_API_KEY=<placeholder>``;
- ``GatewaySpec.for_dialects("openai")``: ``OPENAI_BASE_URL`` and ``OPENAI_API_BASE``
  (both ``http://127.0.0.1:PORT/v1``) and ``OPENAI_API_KEY=<placeholder>``;
- any ``env`` of the spec, templates over ``{base_url}``, ``{token}`` and ``{port}``
  (``{"GATEWAY_API_KEY": "{token}"}`` for a CLI that reads a key from a named variable).

:meth:`CommandGenerator.prepare` receives the :class:`runner.gateway.Endpoint`
(``base_url``, ``port``, ``token``; None without a gateway) and the run's scratch
directory (read-only inside the sandbox, at the same path, like the instruction
file), and returns extra environment. The gateway meters every call; when it
refused one over ``MAX_TOKENS_PER_TASK`` / ``MAX_COST_USD_PER_TASK`` the run ends
with :class:`runner.errors.BudgetExceeded`, whatever the CLI's exit status, and
the spend is in ``Changes.usage``. Every exchange is in ``gateway.jsonl`` /
``gateway.md`` beside ``command.log`` in the task's transcript directory.
The presets in :mod:`runner.generators.agents` are built this way.
"""

from __future__ import annotations

from typing import Any

from runner.errors import BudgetExceeded, ConfigError, GeneratorError
from runner.gateway import GatewayReport, GatewaySession, GatewaySpec, egress_note
from runner.gateway.upstream import missing_keys, upstreams_from
from runner.generators.base import GenerationContext, Usage


def open_gateway(settings: Any, spec: GatewaySpec, sandbox: Any, ctx: GenerationContext) -> GatewaySession:
    """Start one run's gateway, reached through the sandbox's relay unless the sandbox shares a network."""
    relay = sandbox.mode == "bwrap" and not sandbox.network
    try:
        session = GatewaySession(settings, spec, budget=ctx.budget, transcript_dir=ctx.transcript_dir,
                                 log=ctx.log, relay=relay)
    except ValueError as exc:
        raise ConfigError(f"The model gateway cannot start: {exc}.") from exc
    except OSError as exc:  # its socket or temporary directory
        raise GeneratorError(f"The model gateway could not start here ({exc.strerror or exc}); nothing was run.",
                             hint="Check that the runner can write its temporary directory (TMPDIR), then "
                                  "remove the `agent-failed` label.") from exc
    ctx.log.info("gateway_started", dialects=list(spec.dialects), relay=relay, port=session.endpoint.port)
    session.gateway.meter.on_spend = lambda spend: ctx.report_usage(Usage(
        input_tokens=spend.input_tokens, output_tokens=spend.output_tokens,
        cost_usd=spend.cost_usd if spend.calls else None, model=spend.model))
    return session


def raise_for_budget(who: str, ctx: GenerationContext, report: GatewayReport | None) -> None:
    """End the run as over budget when the gateway refused a call (or the usage passed the budget)."""
    if report is None or (report.refusal is None and not report.over_budget):
        return
    spent = report.spend.describe()
    ctx.log.warning("gateway_budget_exceeded", spent=spent, refusal=report.refusal.kind if report.refusal else None)
    if report.refusal is not None and report.refusal.kind == "price":
        raise GeneratorError(f"{who} used {spent}; then {report.refusal.message}",
                             hint="Add the model's price to `MODEL_PRICES` (`[0, 0]` for a local model), or "
                                  "unset `MAX_COST_USD_PER_TASK`, then remove the `agent-failed` label.")
    if report.refusal is not None:
        which = "token" if report.refusal.kind == "tokens" else "cost"
        raise BudgetExceeded(f"{who} used {spent} through the model gateway, which then refused its next "
                             f"model call over the task's {which} budget: {report.refusal.message}")
    raise BudgetExceeded(f"{who} used {spent} through the model gateway, over the task's budget.")


def gateway_notes(report: GatewayReport) -> tuple[str, ...]:
    """What the result comment says about the gateway besides the usage line."""
    notes: tuple[str, ...] = ()
    if report.spend.calls:
        notes += (f"Model calls through the gateway: {report.spend.calls}, {report.spend.describe()}.",)
    if report.denied:
        shown = ", ".join(f"`{d}`" for d in report.denied[:5])
        more = f" and {len(report.denied) - 5} more" if len(report.denied) > 5 else ""
        notes += (f"The model gateway refused {len(report.denied)} request(s) that were not model calls "
                  f"with this task's key: {shown}{more}.",)
    if (blocked := egress_note(report.egress_blocked)) is not None:
        notes += (blocked,)
    if report.spend.estimated_calls:
        notes += (f"{report.spend.estimated_calls} model call(s) reported no usage; they are counted at "
                  "their estimate.",)
    return notes


def check_gateway(settings: Any, spec: GatewaySpec) -> None:
    """Fail at start-up, not mid-task, when the gateway could not reach or authenticate upstream."""
    try:
        missing = missing_keys(upstreams_from(settings, spec.dialects))
    except ValueError as exc:
        raise ConfigError(f"The model gateway cannot forward: {exc}. Fix ANTHROPIC_BASE_URL / "
                          "OPENAI_BASE_URL.") from exc
    if missing:
        raise ConfigError(
            f"The model gateway needs {' and '.join(missing)} to call the provider (the CLI only ever gets a "
            "placeholder). Set it, or point the base URL at a server that needs no key."
        )


def gateway_from_settings(settings: Any) -> GatewaySpec | None:
    dialects = tuple(getattr(settings, "command_gateway", ()) or ())
    return GatewaySpec.for_dialects(*dialects) if dialects else None  # type: ignore[arg-type]
