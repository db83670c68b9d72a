"""The model gateway: the sandbox's only way out, holding the model keys and the task's budget.

A CLI in the sandbox gets ``http://127.0.0.1:PORT`` and a per-task placeholder
token. The gateway (:mod:`.server`) serves only model API routes, checks the
placeholder, strips whatever credentials the client sent, adds the real key,
forwards to the configured upstream only, meters tokens and cost as the answer
streams past (:mod:`.wire`, :mod:`.meter`), refuses the call that would cross
the task's budget before it is sent, and records every exchange, redacted
(:mod:`.record`). Inside the sandbox, a relay (:mod:`.sandbox_relay`) pipes the
port to the gateway's Unix socket; the sandbox's network namespace stays empty.

Generators use it through :class:`GatewaySession` (see
:mod:`runner.generators.command` for the preset API: :class:`GatewaySpec`).
"""

from __future__ import annotations

from runner.gateway.dialects import Dialect
from runner.gateway.meter import Meter, Refusal, Spend
from runner.gateway.session import (
    EgressSession,
    Endpoint,
    GatewayReport,
    GatewaySession,
    GatewaySpec,
    SandboxWiring,
    egress_note,
)

__all__ = ["Dialect", "EgressSession", "Endpoint", "GatewayReport", "GatewaySession", "GatewaySpec", "Meter", "Refusal",
           "SandboxWiring", "Spend", "egress_note"]
