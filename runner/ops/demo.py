"""Show the whole flow in under a minute: emulator, dispatch issue, one pass, pull request.

Everything runs on 127.0.0.1 against the GitHub emulator, with its default
token; no credentials, no network. The emulator is a separate distribution
(``github-emulator``, in ``emulator/``) that the runtime image leaves out, so it
is imported only when a command needs it (:func:`load_emulator`), and its
absence is a sentence that says how to install it.
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from runner.config import Settings, load_settings
from runner.errors import ConfigError, SandboxUnavailable
from runner.log import configure_logging
from runner.sandbox import Sandbox
from runner.steps.git import run_git

DISPATCH = "octocat/dispatch"
TARGET = "octocat/hello-world"
TOKEN = "emulator-token"

DEMO_BODY = """\
<!-- agent_task_metadata {"task_id": "demo-task-0001", "requested_by": "make demo"} -->

## Instruction

Add a greeting for new contributors to the README.

```diff
--- a/README.md
+++ b/README.md
@@ -1,3 +1,5 @@
 # hello-world

 A tiny repository used by the agent-runner demo.
+
+Welcome, new contributor! Start with `CONTRIBUTING.md`.
```

Target Repository: octocat/hello-world
"""


def load_emulator(command: str = "demo") -> ModuleType:
    """Import ``github_emulator`` for ``agent-runner <command>``, or say how to install it (ConfigError).

    Only a missing emulator (or one of its own dependencies) becomes the
    sentence; any other error inside it is a bug and propagates as it is.
    """
    try:
        return importlib.import_module("github_emulator")
    except ModuleNotFoundError as exc:
        missing = "" if exc.name == "github_emulator" else f" (it is installed, but {exc.name} is missing)"
        raise ConfigError(
            f"`agent-runner {command}` needs the GitHub emulator, a separate distribution{missing}: "
            "run `pip install -e ./emulator` in a checkout of agent-runner (`make venv` does it)."
        ) from exc


def run_demo(*, build_app: Callable[[Settings], Any], state_dir: Path | None, verbose: bool,
             out: Callable[[str], None]) -> int:
    """Run the demo; returns the process exit code."""
    load_emulator("demo")  # before any output: a missing emulator is the first thing said
    if state_dir is None:
        with tempfile.TemporaryDirectory(prefix="agent-runner-demo-") as tmp:
            return _demo(build_app, Path(tmp), verbose, out)
    state_dir.mkdir(parents=True, exist_ok=True)
    return _demo(build_app, state_dir, verbose, out)


def missing_sandbox() -> str | None:
    """One plain line when the sandbox cannot run here: what is missing, what it affects, how to install it."""
    try:
        Sandbox().backend()
    except SandboxUnavailable as exc:
        return (f"● Note: the sandbox is not available here ({exc.message.split(': ', 1)[-1].split('. ')[0]}). "
                "The demo does not need it (its generator runs nothing untrusted), but `agent-runner run` refuses "
                "agent CLIs, setup and validation commands without it. Install bubblewrap "
                "(`sudo apt-get install bubblewrap`; see docs/security.md).")
    return None


def _demo(build_app: Callable[[Settings], Any], root: Path, verbose: bool, out: Callable[[str], None]) -> int:
    missing = missing_sandbox()
    # The demo explains a missing sandbox in words, once; the runner's own log line about it
    # (a JSON warning among the friendly output) stays out unless --verbose asks for the log.
    configure_logging("INFO" if verbose else ("CRITICAL" if missing else "WARNING"),
                      "console" if verbose else "auto", [TOKEN])
    if missing:
        out(missing)
    with load_emulator("demo").GitHubEmulator(root / "github") as emu:
        out(f"● GitHub emulator at {emu.base_url} (user octocat)")
        emu.create_repo(DISPATCH)
        emu.create_repo(TARGET, files={
            "README.md": "# hello-world\n\nA tiny repository used by the agent-runner demo.\n",
        })
        number = emu.create_issue(DISPATCH, "Greet new contributors", DEMO_BODY, labels=("copilot-agent",))
        out(f"● Filed dispatch issue {DISPATCH}#{number} labeled `copilot-agent`")

        settings = load_settings(
            env_file=None,
            github_token=TOKEN,
            github_api_url=emu.base_url,
            dispatch_repo=DISPATCH,
            workspace_dir=root / "workspace",
            data_dir=root / "data",
            generators="patch",
            poll_interval_seconds=1,
        )
        app = build_app(settings)
        try:
            out("● Running one pass of the runner …")
            outcomes = app.executor.run_once()
        finally:
            app.close()

        pulls = emu.pulls(TARGET)
        comments = emu.comments(DISPATCH, number)
        labels = emu.labels(DISPATCH, number)
        if not outcomes or outcomes[0].status != "succeeded" or len(pulls) != 1:
            out(f"✗ The demo did not produce a pull request: {[o.error for o in outcomes]}")
            return 1
        pull = pulls[0]
        branch = pull["head"]["ref"]
        out(f"● Branch {branch} pushed to {TARGET} (head {pull['head']['sha'][:10]})")
        out(f"● Pull request #{pull['number']}: {pull['html_url']}")
        out("  Files changed (git diff --stat):")
        stat = run_git(emu.bare_repo_path(TARGET), "diff", "--stat", f"{pull['base']['ref']}...{branch}")
        for line in stat.splitlines():
            out(f"    {line.strip()}")
        out(f"● Comment posted on {DISPATCH}#{number}:")
        for line in comments[-1]["body"].splitlines():
            if line.strip() and not line.startswith("<!--"):
                out(f"    {line}")
        out(f"● Labels on the issue: {', '.join(sorted(labels))}")
        out("✓ Done. Run it again any time: `make demo`.")
    return 0
