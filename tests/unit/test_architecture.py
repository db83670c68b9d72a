"""The architecture holds: the layer contracts in .importlinter, and one Executor interface."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from runner.executors.base import Executor
from runner.executors.temporal.executor import TemporalExecutor
from runner.executors.threads import ThreadExecutor

ROOT = Path(__file__).resolve().parents[2]


def test_imports_keep_the_layers_and_have_no_cycles() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


@pytest.mark.parametrize("executor", [ThreadExecutor, TemporalExecutor])
def test_both_executors_have_the_executor_interface(executor: type) -> None:
    members = [name for name, value in vars(Executor).items()
               if callable(value) and not name.startswith("_")]
    assert members
    for name in members:
        ours, theirs = inspect.signature(getattr(executor, name)), inspect.signature(getattr(Executor, name))
        assert list(ours.parameters)[:len(theirs.parameters)] == list(theirs.parameters), name
