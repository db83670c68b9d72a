"""The compose files start what their headers say, and nothing else."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.conftest import REPO_ROOT

SINGLE = REPO_ROOT / "docker-compose.agent-runner.yml"
SCALE = REPO_ROOT / "docker-compose.agent-runner-scale.yml"


def started_by_up(compose: dict[str, Any], profiles: set[str]) -> set[str]:
    """What `docker compose up` with no service names starts: services with no profile or an active one."""
    return {name for name, service in compose["services"].items()
            if not service.get("profiles") or profiles & set(service["profiles"])}


def header_commands(path: Any) -> list[str]:
    return [line.lstrip("# ").strip() for line in path.read_text().splitlines()
            if line.startswith("#") and "docker compose" in line]


def test_the_scale_file_starts_postgres_and_replicas_and_no_sqlite_runner() -> None:
    compose = yaml.safe_load(SCALE.read_text())
    assert any("-f docker-compose.agent-runner-scale.yml up -d" in c for c in header_commands(SCALE))
    started = started_by_up(compose, set())
    assert started == {"postgres", "agent-runner"}
    runner = compose["services"]["agent-runner"]
    assert runner["environment"]["LEDGER_URL"].startswith("postgresql://")
    assert "ports" not in runner  # replicas would fight over one host port


def test_the_single_file_starts_one_sqlite_runner() -> None:
    compose = yaml.safe_load(SINGLE.read_text())
    assert started_by_up(compose, set()) == {"agent-runner"}
    assert "LEDGER_URL" not in (compose["services"]["agent-runner"].get("environment") or {})


def test_both_files_run_the_runner_the_same_way() -> None:
    """The scale file repeats the runner block (YAML anchors do not cross files); keep them equal."""
    single = yaml.safe_load(SINGLE.read_text())["services"]["agent-runner"]
    scaled = yaml.safe_load(SCALE.read_text())["services"]["agent-runner"]
    per_file = {"volumes", "ports", "environment", "depends_on", "deploy"}
    assert {k: v for k, v in single.items() if k not in per_file} == \
        {k: v for k, v in scaled.items() if k not in per_file}, \
        "Change x-runner in both docker-compose files the same way."


def test_docs_name_the_right_compose_commands() -> None:
    docs = (REPO_ROOT / "docs" / "scaling.md").read_text() + (REPO_ROOT / "README.md").read_text()
    assert "--profile scale" not in docs
    for command in re.findall(r"docker compose -f (\S+)", docs):
        assert (REPO_ROOT / command).exists(), command


def test_every_runner_listens_on_all_interfaces_inside_its_container() -> None:
    """HEALTH_HOST defaults to 127.0.0.1; in the container the published port and the HEALTHCHECK need 0.0.0.0.

    `environment:` wins over `env_file: .env`, so a .env copied from .env.example cannot undo it.
    """
    for path in (SINGLE, SCALE):
        for name, service in yaml.safe_load(path.read_text())["services"].items():
            if "agent-runner" in str(service.get("image", "")):
                assert (service.get("environment") or {}).get("HEALTH_HOST") == "0.0.0.0", (path.name, name)
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "HEALTH_HOST=0.0.0.0" in dockerfile and "EXPOSE 8080" in dockerfile
