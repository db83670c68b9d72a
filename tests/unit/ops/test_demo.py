"""Without the emulator distribution, `agent-runner demo` says how to install it instead of a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# A fresh interpreter (-I: no PYTHON* variables, no user site, no current directory on the path)
# in which importing github_emulator fails as it does where the distribution is not installed.
HIDE_EMULATOR = textwrap.dedent("""
    import sys

    class HideEmulator:
        def find_spec(self, name, path=None, target=None):
            if name == "github_emulator" or name.startswith("github_emulator."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, HideEmulator())
""")

INSTALL = "run `pip install -e ./emulator` in a checkout of agent-runner (`make venv` does it)."


def run_hidden(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-I", "-c", HIDE_EMULATOR + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_demo_module_imports_without_the_emulator_and_says_how_to_install_it() -> None:
    done = run_hidden("""
        import runner.ops.demo as demo
        from runner.errors import ConfigError

        assert "github_emulator" not in sys.modules
        for command in ("demo", "emulator"):
            try:
                demo.load_emulator(command)
            except ConfigError as exc:
                print(exc)
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"`agent-runner {command}` needs the GitHub emulator, a separate distribution: {INSTALL}"
        for command in ("demo", "emulator")
    ]


def test_agent_runner_demo_without_the_emulator_is_a_configuration_error() -> None:
    done = run_hidden("""
        from runner.cli import main

        sys.exit(main(["demo"]))
    """)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == ("agent-runner: configuration error: `agent-runner demo` needs the GitHub emulator, "
                           f"a separate distribution: {INSTALL}\n")
    assert "Traceback" not in done.stderr


def test_the_emulator_loads_where_it_is_installed() -> None:
    from runner.ops.demo import load_emulator

    assert load_emulator("demo").GitHubEmulator.__name__ == "GitHubEmulator"
