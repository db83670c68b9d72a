"""The distribution has a name of its own, plugins depend on that name, and types ship."""

from __future__ import annotations

import re
import tomllib

from tests.conftest import REPO_ROOT


def project(path: str) -> dict[str, object]:
    return tomllib.loads((REPO_ROOT / path).read_text("utf-8"))  # type: ignore[no-any-return]


def test_the_example_plugin_depends_on_this_distribution_not_the_pypi_namesake() -> None:
    ours = project("pyproject.toml")["project"]
    plugin = project("examples/generator-plugin/pyproject.toml")["project"]
    assert isinstance(ours, dict) and isinstance(plugin, dict)
    assert ours["name"] != "agent-runner"  # that name on PyPI is an unrelated project
    names = [re.split(r"[<>=!~\[ ;]", dep, maxsplit=1)[0] for dep in plugin["dependencies"]]
    assert names == [ours["name"]]
    assert "pytest" in " ".join(plugin["optional-dependencies"]["test"])
    assert ours["scripts"] == {"agent-runner": "runner.cli:main"}  # the command keeps its name


def test_the_package_is_typed() -> None:
    assert (REPO_ROOT / "runner" / "py.typed").exists()
    package_data = project("pyproject.toml")["tool"]["setuptools"]["package-data"]  # type: ignore[index]
    assert "py.typed" in package_data["runner"]


def test_the_runtime_image_and_wheel_carry_no_emulator() -> None:
    """The emulators are their own distribution (emulator/): tests and the demo install it, the image does not."""
    dockerfile = (REPO_ROOT / "Dockerfile").read_text("utf-8")
    copied = [line.split()[1:-1] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    sources = {src for args in copied for src in args if not src.startswith("--")}
    assert sources == {"pyproject.toml", "README.md", "runner", "docker/slim_venv.py", "/git-root/", "/opt/venv"}
    ignored = (REPO_ROOT / ".dockerignore").read_text("utf-8").splitlines()
    assert "emulator" in ignored and "tests" in ignored
    runtime = project("pyproject.toml")["project"]
    assert isinstance(runtime, dict)
    names = {re.split(r"[<>=!~\[ ;]", dep, maxsplit=1)[0].lower() for dep in runtime["dependencies"]}
    assert not names & {"github-emulator", "graphql-core"}
    # In the runner, only the thin re-export for plugin authors imports the emulator (the demo and
    # `emulator` commands load it through runner.ops.demo.load_emulator, with an install hint).
    naming = {path.relative_to(REPO_ROOT).as_posix() for path in (REPO_ROOT / "runner").rglob("*.py")
              if re.search(r"^\s*(from|import) github_emulator", path.read_text("utf-8"), re.M)}
    assert naming == {"runner/testing/__init__.py"}
