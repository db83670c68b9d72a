"""What the model gateway adds to a model call: whole answers and time to the first streamed byte.

The same stdlib client (run by the system ``python3``) makes N Anthropic Messages calls,
non-streamed and streamed, against the project's Anthropic emulator three ways:

- directly, from the host;
- through the gateway on loopback TCP (``SANDBOX=off``);
- from inside the bubblewrap sandbox, through the relay on 127.0.0.1 and the gateway's Unix socket
  (the shipped path).

It prints p50 and p95 of each, and what the gateway adds over the direct call (goals: <= 5 ms per
call, <= 10 ms to the first streamed byte).

    .venv/bin/python bench/gateway.py [N] [PROMPT_KB]

``PROMPT_KB`` (default 2) sizes each request; Claude Code sends about 90-130 KB.
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

from github_emulator.llm import AnthropicEmulator, Reply
from github_emulator.llm import server as emulator_server

from runner.gateway import GatewaySession, GatewaySpec
from runner.generators.base import Budget
from runner.sandbox.bwrap import Sandbox, detect_backend

KEY = "sk-ant-bench-real-key-0000000000000000"
CLIENT = r'''
import http.client, json, os, sys, time
from urllib.parse import urlsplit

base = urlsplit(os.environ["ANTHROPIC_BASE_URL"])
key, n, size = os.environ["ANTHROPIC_API_KEY"], int(sys.argv[1]), int(sys.argv[2])
body = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "x" * size}]}
headers = {"x-api-key": key, "anthropic-version": "2023-06-01", "content-type": "application/json"}
conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
out = {"call": [], "first_byte": []}
for stream in (False, True):
    payload = json.dumps({**body, "stream": stream}).encode()
    for _ in range(n):
        started = time.perf_counter()
        conn.request("POST", "/v1/messages", payload, headers)
        response = conn.getresponse()
        first = response.read1(1) if stream else b""
        if stream:
            out["first_byte"].append(time.perf_counter() - started)
        response.read()
        if not stream:
            out["call"].append(time.perf_counter() - started)
        if response.will_close:
            conn.close()
            conn = http.client.HTTPConnection(base.hostname, base.port, timeout=30)
print(json.dumps(out))
'''


def _nodelay_emulator() -> None:
    """Make the emulator answer without Nagle's delay, as a provider's server does.

    It writes a non-streamed answer's headers and body apart; with Nagle on, the body waits
    for the client's delayed ACK, about 40 ms, on every path alike. That hides the milliseconds
    measured here, so this process's emulator sets TCP_NODELAY on its connections.
    """
    handler = emulator_server._Handler
    plain_setup = handler.setup

    def setup(self: emulator_server._Handler) -> None:
        plain_setup(self)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    handler.setup = setup  # type: ignore[method-assign]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(0.95 * (len(ordered) - 1))] * 1000


def host_client(script: Path, n: int, size: int, base_url: str, key: str) -> dict[str, list[float]]:
    env = {"PATH": "/usr/bin:/bin", "ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": key}
    done = subprocess.run(["python3", str(script), str(n), str(size)], env=env, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def main() -> int:
    _nodelay_emulator()
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    size = int(sys.argv[2]) * 1024 if len(sys.argv) > 2 else 2048
    print(f"backend: {detect_backend()}; {n} calls of each kind per path, {size // 1024} KB prompts")
    settings = SimpleNamespace(anthropic_base_url=None, anthropic_api_key=SimpleNamespace(
        get_secret_value=lambda: KEY), model_prices={}, gateway_models=(), gateway_timeout_seconds=60.0,
        sandbox_egress_allow=())
    spec = GatewaySpec.for_dialects("anthropic")
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="agent-runner-bench-gateway-") as scratch, \
            AnthropicEmulator(api_key=KEY) as emu:
        emu.script([Reply.text("ok " * 40, input_tokens=500, output_tokens=40)] * (n * 2 * 3 + 10))
        settings.anthropic_base_url = emu.base_url
        client = Path(scratch) / "client.py"
        client.write_text(CLIENT)
        results["direct (host → emulator)"] = host_client(client, n, size, emu.base_url, KEY)

        tcp = GatewaySession(settings, spec, budget=Budget(), transcript_dir=None, relay=False)
        try:
            results["gateway, loopback TCP"] = host_client(client, n, size, tcp.endpoint.base_url, tcp.token)
        finally:
            tcp.close()

        # The shipped path records every exchange, as a task does.
        relayed = GatewaySession(settings, spec, budget=Budget(), transcript_dir=Path(scratch) / "t", relay=True)
        try:
            worktree = Path(scratch) / "worktree"
            worktree.mkdir()
            env = {"PATH": "/usr/bin:/bin", **relayed.env()}
            done = Sandbox().run(["python3", str(client), str(n), str(size)], worktree=worktree, env=env, deadline_s=600,
                                 extra_ro=(Path(scratch),), secrets_allowed=set(env), merge_stderr=False,
                                 binds=relayed.wiring.binds, wrap=relayed.wiring.wrap)
            if done.exit_code != 0:
                print(done.output, done.stderr, file=sys.stderr)
                return 1
            results["sandbox → relay → Unix socket → gateway"] = json.loads(done.output)
        finally:
            report = relayed.close()
        print(f"metered through the sandboxed gateway: {report.spend.describe()} in {report.spend.calls} calls")

    direct = results["direct (host → emulator)"]
    base_call, base_first = percentiles(direct["call"]), percentiles(direct["first_byte"])
    print(f"\n{'path':42} {'call p50':>9} {'p95':>7} {'added p50':>10} {'p95':>7}"
          f" {'1st byte p50':>13} {'p95':>7} {'added p50':>10} {'p95':>7}   (ms)")
    for name, samples in results.items():
        call, first = percentiles(samples["call"]), percentiles(samples["first_byte"])
        print(f"{name:42} {call[0]:9.2f} {call[1]:7.2f} {call[0] - base_call[0]:10.2f} "
              f"{call[1] - base_call[1]:7.2f} {first[0]:13.2f} {first[1]:7.2f} "
              f"{first[0] - base_first[0]:10.2f} {first[1] - base_first[1]:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
