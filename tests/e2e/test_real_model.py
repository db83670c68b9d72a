"""One real model end to end: mini-swe-agent in the sandbox → gateway → llama.cpp serving Gemma 3 270M.

Every other preset test scripts its model; this one asks a real one, so the
result is whatever the model makes of the task. A 270M model usually fails it
(mini-swe-agent ends with ``RepeatedFormatError`` or ``LimitsExceeded``):
that is a result, and the test accepts it. What it never accepts is a false
report: a ✅ must come with the asked-for change on the branch, and exactly
the files it lists; a ❌ with no pull request and a reason.

mini-swe-agent is the preset used because it behaves best with so small a
model: its calls are not streamed, so llama.cpp's own usage is metered (aider
streams, and llama.cpp sends no usage in streams: its calls are counted at
their estimate), and ``MAX_TURNS`` bounds its calls (aider reflects on its
malformed edits, and with this model wrote an unrelated file from its own
examples). Two turns keep the wall time to about a minute on 2 cores.

Between the gateway and llama.cpp sits a byte-for-byte relay that records what
the upstream received: llama.cpp needs no key, so no ``OPENAI_API_KEY`` is
set, and the upstream must see no auth header at all, never the placeholder.
The server comes from ``.ci/run`` (``REAL_LLM_PYTHON``, ``REAL_LLM_MODEL``;
:mod:`tests.real_llm_server`); without it the test skips, except with
CI=true, where it fails.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.gateway.session import RELAY_MOUNT
from runner.generators.agents.install import installation
from tests.conftest import DISPATCH, TARGET, World, dispatch_body
from tests.e2e.netrecord import NetworkRecorder, assert_only_the_gateway
from tests.e2e.test_agent_presets import (
    PLACEHOLDER_PREFIX,
    PRESETS,
    EnvWatcher,
    cli_path,
    gateway_port,
)
from tests.real_llm_server import (
    ALIAS,
    DEFAULT_DIR,
    VERSION,
    ServerUnavailable,
    installed,
    llama_server,
)

FILE, TEXT = "hello.txt", "Hello from agent-runner"
INSTRUCTION = f"Create a file named `{FILE}` that contains exactly this line: {TEXT}"
TURNS = 2
_TOKENS = re.compile(r"Model calls through the gateway: (\d+), (\d+) tokens \((\d+) input, (\d+) output\)")


def server_install() -> tuple[Path, Path]:
    python, model = os.environ.get("REAL_LLM_PYTHON"), os.environ.get("REAL_LLM_MODEL")
    if python and model and Path(python).is_file() and Path(model).is_file():
        return Path(python), Path(model)
    found = installed(Path(os.environ.get("REAL_LLM_DIR") or DEFAULT_DIR) / f"venv-{VERSION}")
    if found:
        return found
    message = ("the real model server is not installed (eval \"$(python3 tests/real_llm_server.py)\", "
               "which sets REAL_LLM_PYTHON and REAL_LLM_MODEL)")
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


class UpstreamRecorder:
    """A loopback relay in front of the model server that keeps every byte the gateway sent it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.received = bytearray()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        try:
            while data := source.recv(65536):
                if record:
                    with self._lock:
                        self.received += data
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (sink, source):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def real_model(tmp_path: Path) -> Iterator[tuple[str, UpstreamRecorder]]:
    python, model = server_install()
    try:
        with llama_server(python, model, tmp_path / "llama-server.log", n_ctx=4096) as base_url:
            port = int(re.search(r":(\d+)/v1$", base_url).group(1))  # type: ignore[union-attr]
            recorder = UpstreamRecorder(port)
            try:
                yield f"http://127.0.0.1:{recorder.port}/v1", recorder
            finally:
                recorder.close()
    except ServerUnavailable as exc:
        pytest.fail(str(exc))


def test_mini_swe_agent_with_a_real_model_reports_honestly(world: World, real_model: tuple[str, UpstreamRecorder],
                                                           tmp_path: Path) -> None:
    base_url, upstream = real_model
    preset = PRESETS["mini-swe-agent"]
    program = cli_path(preset)
    number = world.file_issue(dispatch_body(instruction=INSTRUCTION, model=ALIAS))
    recorder = NetworkRecorder(program, tmp_path / "netrecord")
    with recorder, EnvWatcher(str(installation(Path(program)).paths[-1])) as watcher, \
            EnvWatcher(RELAY_MOUNT) as relay:
        outcomes = world.run_once(generators=preset.name, **recorder.overrides(preset.variable.lower()),
                                  openai_base_url=base_url, openai_api_key=None, max_turns=TURNS,
                                  generator_timeout_seconds=300)

    comment = world.comments(number)[-1]["body"]
    pulls = world.pulls()
    folder = world.root / "data" / "transcripts" / DISPATCH / str(number)
    events = [json.loads(line) for line in (folder / "gateway.jsonl").read_text().splitlines()]
    responses = [e for e in events if e["kind"] == "response"]
    print(f"\nreal model: outcome {[(o.status, o.error) for o in outcomes]}; {len(responses)} call(s); "
          f"usage {[e['usage'] for e in responses]}\n{comment}")

    # The model was really asked, through the gateway, and answered; its usage was metered from its answers.
    assert 1 <= len(responses) <= TURNS and all(e["status"] == 200 for e in responses), responses
    assert all(e["usage"].get("input_tokens", 0) > 0 for e in responses), responses
    assert INSTRUCTION in next(e["text"] for e in events if e["kind"] == "request")
    # The report agrees with the branch: a ✅ only with the reported change on it, a ❌ with none and a reason.
    [outcome] = outcomes
    if outcome.status == "succeeded":
        assert "✅" in comment and "❌" not in comment and len(pulls) == 1, comment
        branch = pulls[0]["head"]["ref"]
        listed = set(re.findall(r"^- `([^`]+)`$", comment, re.MULTILINE))
        diff = subprocess.run(["git", "-C", str(world.emu.bare_repo_path(TARGET)), "diff", "--name-only",
                               f"main...{branch}"], capture_output=True, text=True, check=True).stdout
        assert listed and listed == set(diff.split()), (listed, diff)
        # ... and the change is the one asked for: a ✅ for an unrelated edit would be a false success.
        assert TEXT in (world.emu.file_at(TARGET, branch, FILE) or ""), diff
        match = _TOKENS.search(comment)
        assert match and int(match.group(2)) > 0 and "reported no usage" not in comment, comment
    else:
        assert outcome.status == "failed", outcome
        assert "✅" not in comment and "❌" in comment and "What went wrong" in comment, comment
        assert "mini-swe-agent changed no file" in comment, comment
        assert pulls == [] and world.emu.file_at(TARGET, "main", FILE) is None
        assert "agent-failed" in world.labels(number)
    # llama.cpp needs no key and none is set: the upstream saw no auth header, never the placeholder.
    sent = bytes(upstream.received).decode("utf-8", "replace")
    assert sent.count("POST /v1/chat/completions") == len(responses), sent[:2000]
    assert PLACEHOLDER_PREFIX not in sent
    assert not re.search(r"^(authorization|x-api-key|proxy-authorization):", sent, re.IGNORECASE | re.MULTILINE)
    # The CLI had only the placeholder, and reached nothing but the gateway.
    assert watcher.seen and all(env.get("OPENAI_API_KEY", "").startswith(PLACEHOLDER_PREFIX)
                                for env in watcher.seen.values())
    assert_only_the_gateway(recorder, gateway_port(relay))
