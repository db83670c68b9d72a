"""Start one task's gateway, tell the CLI where it is, and say afterwards what it cost and refused.

:class:`GatewaySession` is what a generator holds while its CLI runs: the
gateway (and, with ``SANDBOX_EGRESS_ALLOW``, the egress proxy), the
:class:`Endpoint` the CLI is given, the :class:`SandboxWiring` that makes the
gateway reachable inside the sandbox, and, once closed, a :class:`GatewayReport`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runner.gateway.dialects import DIALECTS, Dialect
from runner.gateway.egress import Attempt, EgressProxy
from runner.gateway.meter import Meter, Refusal, Spend
from runner.gateway.record import Recorder
from runner.gateway.server import Gateway
from runner.gateway.upstream import upstreams_from

#: Where the sockets and the relay appear inside the sandbox.
MOUNT_DIR = "/run/agent-runner/gateway"
SOCKET_MOUNT = f"{MOUNT_DIR}/model.sock"
EGRESS_MOUNT = f"{MOUNT_DIR}/egress.sock"
RELAY_MOUNT = f"{MOUNT_DIR}/relay.py"
RELAY_SCRIPT = Path(__file__).with_name("sandbox_relay.py")
TOKEN_PREFIX = "agent-runner-gateway-"

#: The environment each dialect's CLIs read (values are templates, see :meth:`Endpoint.render`).
ANTHROPIC_ENV: Mapping[str, str] = {"ANTHROPIC_BASE_URL": "{base_url}", "ANTHROPIC_API_KEY": "{token}"}
OPENAI_ENV: Mapping[str, str] = {"OPENAI_BASE_URL": "{base_url}/v1", "OPENAI_API_BASE": "{base_url}/v1",
                                 "OPENAI_API_KEY": "{token}"}
#: The Gemini CLI reads both (it sends the key as ``x-goog-api-key``); the google-genai SDK takes a base URL
#: only in code (``http_options``).
GEMINI_ENV: Mapping[str, str] = {"GOOGLE_GEMINI_BASE_URL": "{base_url}", "GEMINI_API_KEY": "{token}"}
_DIALECT_ENV = {"anthropic": ANTHROPIC_ENV, "openai": OPENAI_ENV, "gemini": GEMINI_ENV}


@dataclass(frozen=True)
class GatewaySpec:
    """What a CLI needs from the gateway: the wire dialects it speaks, and the variables that point it there.

    ``env`` values are templates over ``{base_url}`` (``http://127.0.0.1:PORT``),
    ``{token}`` (the per-task placeholder) and ``{port}``.
    """

    dialects: tuple[Dialect, ...]
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [d for d in self.dialects if d not in DIALECTS]
        if unknown or not self.dialects:
            raise ValueError(f"dialects must be among {DIALECTS}, got {self.dialects}")

    @classmethod
    def for_dialects(cls, *dialects: Dialect, env: Mapping[str, str] | None = None) -> GatewaySpec:
        """The standard variables of each dialect (``ANTHROPIC_BASE_URL``, ``OPENAI_API_KEY``, ...) plus ``env``."""
        merged: dict[str, str] = {}
        for dialect in dialects:
            merged.update(_DIALECT_ENV[dialect])
        return cls(tuple(dialects), {**merged, **(env or {})})


@dataclass(frozen=True)
class Endpoint:
    """Where the CLI finds the gateway from where it runs, and the placeholder it must present."""

    base_url: str
    port: int
    token: str = field(repr=False)

    def render(self, template: str) -> str:
        return template.format(base_url=self.base_url, token=self.token, port=self.port)

    def env(self, spec: GatewaySpec) -> dict[str, str]:
        return {name: self.render(value) for name, value in spec.env.items()}


@dataclass(frozen=True)
class SandboxWiring:
    """What the sandbox needs so that ``127.0.0.1:PORT`` inside reaches the gateway outside."""

    binds: tuple[tuple[Path, str], ...] = ()  # read-only: host path → path inside
    wrap: tuple[str, ...] = ()  # argv run inside before the command (the relay), or nothing


@dataclass(frozen=True)
class GatewayReport:
    """What the gateway saw during one run."""

    spend: Spend
    refusal: Refusal | None
    over_budget: bool
    denied: tuple[str, ...] = ()
    upstream_failures: tuple[str, ...] = ()
    transcript: Path | None = None
    egress_blocked: tuple[Attempt, ...] = ()
    egress_allowed: int = 0


class GatewaySession:
    """Serve the gateway for one CLI run; ``relay=True`` reaches it through a Unix socket and a relay."""

    def __init__(
        self,
        settings: Any,
        spec: GatewaySpec,
        *,
        budget: Any,
        transcript_dir: Path | None,
        log: Any = None,
        relay: bool = True,
    ) -> None:
        upstreams = upstreams_from(settings, spec.dialects)
        self.token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        keys = [u.key for u in upstreams.values() if u.key]
        meter = Meter(max_tokens=getattr(budget, "max_tokens", None),
                      max_cost_usd=getattr(budget, "max_cost_usd", None),
                      default_output=getattr(budget, "max_output_tokens", 4096),
                      prices=getattr(settings, "model_prices", None))
        self.gateway = Gateway(upstreams=upstreams, meter=meter, token=self.token, log=log,
                               recorder=Recorder(transcript_dir, secrets=[*keys, self.token]),
                               models=frozenset(getattr(settings, "gateway_models", ()) or ()),
                               read_timeout_s=getattr(settings, "gateway_timeout_seconds", 300.0))
        self._scratch = Path(tempfile.mkdtemp(prefix="agent-runner-gw-", dir=socket_dir()))
        self.egress: EgressProxy | None = None
        self.proxy_env: dict[str, str] = {}
        try:
            if relay:
                socket_path = self.gateway.serve_unix(self._scratch / "model.sock")
                port = 20000 + secrets.randbelow(40000)  # the sandbox's own loopback: nothing else listens there
                binds = [(socket_path, SOCKET_MOUNT), (RELAY_SCRIPT, RELAY_MOUNT)]
                listen = ["--listen", f"127.0.0.1:{port}={SOCKET_MOUNT}"]
                allow = tuple(getattr(settings, "sandbox_egress_allow", ()) or ())
                if allow:
                    self.egress = EgressProxy(allow, log=log)
                    binds.append((self.egress.serve_unix(self._scratch / "egress.sock"), EGRESS_MOUNT))
                    listen += ["--listen-peer", f"127.0.0.1:{port + 1}={EGRESS_MOUNT}"]
                    self.proxy_env = proxy_env(f"http://127.0.0.1:{port + 1}")
                self.wiring = SandboxWiring(
                    binds=tuple(binds), wrap=("python3", "-I", "-S", RELAY_MOUNT, *listen, "--"))
            else:
                port = self.gateway.serve_tcp("127.0.0.1")
                self.wiring = SandboxWiring()
        except BaseException:
            self.close()
            raise
        self.endpoint = Endpoint(f"http://127.0.0.1:{port}", port, self.token)
        self.spec = spec

    def env(self) -> dict[str, str]:
        """The variables that point the CLI at the gateway, placeholder included (and the egress proxy)."""
        return {**self.proxy_env, **self.endpoint.env(self.spec)}

    def close(self) -> GatewayReport:
        spend = self.gateway.close()
        attempts: list[Attempt] = []
        if self.egress is not None:
            self.egress.close()
            attempts = list(self.egress.attempts)
        shutil.rmtree(self._scratch, ignore_errors=True)
        meter, stats = self.gateway.meter, self.gateway.stats
        return GatewayReport(spend=spend, refusal=meter.refused, over_budget=meter.over_budget(),
                             denied=tuple(stats.denied), upstream_failures=tuple(stats.upstream_failures),
                             transcript=self.gateway.recorder.path,
                             egress_blocked=tuple(a for a in attempts if not a.allowed),
                             egress_allowed=sum(1 for a in attempts if a.allowed))


class EgressSession:
    """The egress proxy alone, for the sandbox's setup and validation commands (no model gateway).

    :meth:`open` returns None unless ``SANDBOX_EGRESS_ALLOW`` names hosts and the sandbox
    has its own empty network; otherwise :attr:`sandbox` runs every command behind the relay,
    with :attr:`env` pointing ``HTTPS_PROXY``-aware tools at it.
    """

    def __init__(self, allow: tuple[str, ...], sandbox: Any, log: Any = None) -> None:
        self._scratch = Path(tempfile.mkdtemp(prefix="agent-runner-egress-", dir=socket_dir()))
        self.proxy = EgressProxy(allow, log=log)
        try:
            socket_path = self.proxy.serve_unix(self._scratch / "egress.sock")
        except BaseException:
            self.close()
            raise
        port = 20000 + secrets.randbelow(40000)
        self.env = proxy_env(f"http://127.0.0.1:{port}")
        wrap = ("python3", "-I", "-S", RELAY_MOUNT, "--listen-peer", f"127.0.0.1:{port}={EGRESS_MOUNT}", "--")
        self.sandbox = replace(sandbox, binds=((socket_path, EGRESS_MOUNT), (RELAY_SCRIPT, RELAY_MOUNT)), wrap=wrap)

    @classmethod
    def open(cls, settings: Any, sandbox: Any, log: Any = None) -> EgressSession | None:
        allow = tuple(getattr(settings, "sandbox_egress_allow", ()) or ())
        if not allow or getattr(sandbox, "mode", "off") != "bwrap" or getattr(sandbox, "network", True):
            return None
        return cls(allow, sandbox, log)

    def close(self) -> tuple[Attempt, ...]:
        """Stop the proxy; return the blocked attempts."""
        self.proxy.close()
        shutil.rmtree(self._scratch, ignore_errors=True)
        return tuple(self.proxy.blocked)


def egress_note(blocked: tuple[Attempt, ...]) -> str | None:
    """The sentence the result comment carries about blocked connections, if any."""
    if not blocked:
        return None
    shown = "; ".join(a.describe() for a in blocked[:5])
    more = f"; and {len(blocked) - 5} more" if len(blocked) > 5 else ""
    return (f"The sandbox's egress proxy blocked {len(blocked)} connection(s): {shown}{more}. "
            "Add a host to `SANDBOX_EGRESS_ALLOW` if the task needs it.")


def socket_dir() -> str:
    """Where the sockets go: the temporary directory, unless its path is too long for a socket's."""
    tmp = tempfile.gettempdir()
    return tmp if len(os.fsencode(tmp)) <= 60 else "/tmp"


def proxy_env(url: str) -> dict[str, str]:
    """Point HTTPS_PROXY-aware tools at the egress proxy, but never the model calls on 127.0.0.1."""
    env = {"HTTPS_PROXY": url, "HTTP_PROXY": url, "NO_PROXY": "127.0.0.1,localhost"}
    return {**env, **{name.lower(): value for name, value in env.items()}}
